package agent

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/sketch"
)

// dlqReader reads the DLQ topics of the pipelines the agent runs, from
// their start, with its own read_committed client (no consumer group: it
// commits nothing), and keeps per topic the totals per reason and the
// last agentproto.MaxDeadLetters records. It keeps the records as read;
// what of them leaves the runner is decided when a report is built
// (deadLetterReport), under the pipeline's record previews setting.
type dlqReader struct {
	opts []kgo.Opt

	mu     sync.Mutex
	topics map[string]*dlqTopic
	cancel context.CancelFunc
	done   chan struct{}
}

type dlqTopic struct {
	total   int64
	reasons map[string]int64
	last    []*kgo.Record // ring, oldest first once full
	next    int
	sampled time.Time
}

func newDLQReader(opts []kgo.Opt) *dlqReader {
	return &dlqReader{opts: opts, topics: map[string]*dlqTopic{}}
}

// set makes the reader follow topics: an unchanged set keeps the running
// client and what it read; another restarts it from the topics' start.
func (d *dlqReader) set(ctx context.Context, topics []string, log func(string, ...any)) {
	sort.Strings(topics)
	d.mu.Lock()
	same := len(topics) == len(d.topics)
	for _, t := range topics {
		if _, ok := d.topics[t]; !ok {
			same = false
		}
	}
	d.mu.Unlock()
	if same && (d.cancel != nil || len(topics) == 0) {
		return
	}
	d.stop()
	d.mu.Lock()
	d.topics = map[string]*dlqTopic{}
	for _, t := range topics {
		d.topics[t] = &dlqTopic{reasons: map[string]int64{}}
	}
	d.mu.Unlock()
	if len(topics) == 0 {
		return
	}
	opts := append([]kgo.Opt{
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.MetadataMinAge(500 * time.Millisecond),
		kgo.MetadataMaxAge(5 * time.Second),
	}, d.opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		log("the DLQ reader cannot start", "err", err)
		return
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel, d.done = cancel, make(chan struct{})
	go d.run(rctx, cl, d.done)
}

func (d *dlqReader) run(ctx context.Context, cl *kgo.Client, done chan struct{}) {
	defer close(done)
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollRecords(ctx, 1000)
		now := time.Now()
		d.mu.Lock()
		for _, t := range d.topics {
			t.sampled = now
		}
		fs.EachRecord(func(r *kgo.Record) {
			t := d.topics[r.Topic]
			if t == nil {
				return
			}
			t.total++
			t.reasons[header(r, engine.HeaderReason)]++
			if len(t.last) < agentproto.MaxDeadLetters {
				t.last = append(t.last, r)
			} else {
				t.last[t.next] = r
				t.next = (t.next + 1) % agentproto.MaxDeadLetters
			}
		})
		d.mu.Unlock()
		if fs.IsClientClosed() {
			return
		}
	}
}

// stop ends the client, if any.
func (d *dlqReader) stop() {
	if d.cancel != nil {
		d.cancel()
		<-d.done
		d.cancel, d.done = nil, nil
	}
}

// view returns what the reader holds of topic, rendered for a report
// under previews (nil: off, and then no key, value or non-sluice header
// value is in it); nil when the topic is not followed.
func (d *dlqReader) view(topic string, previews *agentproto.RecordPreviews) *agentproto.DLQView {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.topics[topic]
	if t == nil || t.sampled.IsZero() {
		return nil
	}
	v := &agentproto.DLQView{Topic: topic, SampledAt: t.sampled, Total: t.total, Reasons: map[string]int64{},
		Letters: make([]agentproto.DeadLetter, 0, len(t.last)), Previews: effectivePreviews(previews) != nil}
	for k, n := range t.reasons {
		v.Reasons[k] = n
	}
	for i := len(t.last) - 1; i >= 0; i-- {
		v.Letters = append(v.Letters, deadLetterReport(t.last[(t.next+i)%len(t.last)], previews))
	}
	return v
}

// deadLetterReport describes r for a report. With previews off it holds
// offsets, the timestamp, the sluice.* headers, the other headers' names
// and the key's hash: never the key, the value or another header's value.
func deadLetterReport(r *kgo.Record, previews *agentproto.RecordPreviews) agentproto.DeadLetter {
	dl := agentproto.DeadLetter{
		Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Reason: header(r, engine.HeaderReason), Error: capText(header(r, engine.HeaderError), 1024),
		Step: header(r, engine.HeaderStep), Revision: header(r, engine.HeaderRevision),
		ReplayedFrom: header(r, agentproto.HeaderReplayedFrom),
		Headers:      []agentproto.HeaderReport{},
	}
	dl.SourceTopic, dl.SourcePartition, dl.SourceOffset, _ = parseSource(header(r, engine.HeaderSource))
	if r.Key != nil {
		dl.KeyHash = fmt.Sprintf("%016x", sketch.Hash64(r.Key))
	}
	dl.Key = keyPreviewOf(r.Key, previews)
	dl.Value = previewOf(r.Value, previews)
	on := effectivePreviews(previews) != nil
	for _, h := range r.Headers {
		hr := agentproto.HeaderReport{Name: capText(h.Key, 256)}
		if h.Key == engine.HeaderInput {
			// The origin of a repartitioned record encodes its key and
			// value: never reported.
		} else if strings.HasPrefix(h.Key, "sluice.") {
			v := capText(string(h.Value), 1024)
			hr.Value = &v
		} else if on {
			if p := previewOf(h.Value, &agentproto.RecordPreviews{Enabled: true, MaxBytes: min(previews.MaxBytes, 256)}); p != nil {
				hr.Value = &p.Text
			}
		}
		dl.Headers = append(dl.Headers, hr)
		if len(dl.Headers) == 32 {
			break
		}
	}
	return dl
}

// parseSource splits a sluice.source header, "topic/partition/offset".
func parseSource(s string) (topic string, partition int32, offset int64, ok bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return s, 0, 0, false
	}
	j := strings.LastIndexByte(s[:i], '/')
	if j < 0 {
		return s, 0, 0, false
	}
	p, err1 := strconv.ParseInt(s[j+1:i], 10, 32)
	o, err2 := strconv.ParseInt(s[i+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return s, 0, 0, false
	}
	return s[:j], int32(p), o, true
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// capText cuts s to n bytes on a rune boundary.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
