package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/engine"
)

// DLQ replays (docs/observability.md): the control plane hands a replay
// request to one runner (its fleet's monitor, which claims it); the agent
// reads the selected dead letters with a read_committed client and
// re-produces each one's key, value, timestamp and original headers to
// the stage input its sluice.source header names, with a
// sluice.replayed-from header, in one Kafka transaction. A request is
// carried out once: its outcome is written to DIR/replays/<id>.json, and
// the file is written ("running") before anything is produced, so a
// runner that stops during a replay does not replay it again after a
// restart; it reports that replay failed (interrupted), and its
// transaction, never committed, is aborted by the broker.

const replaysDir = "replays"

// maxReplayRecords bounds one request.
const maxReplayRecords = 100_000

var replayID = regexp.MustCompile(`^[0-9a-fA-F-]{1,64}$`)

// dlqHeaders are the headers the runtime adds to a dead letter; a replay
// drops them and keeps the record's own.
var dlqHeaders = map[string]bool{
	engine.HeaderReason: true, engine.HeaderSource: true, engine.HeaderPipeline: true,
	engine.HeaderRevision: true, engine.HeaderError: true, engine.HeaderStep: true,
	agentproto.HeaderReplayedFrom: true,
}

// replayer carries out replay requests one at a time.
type replayer struct {
	dir  dataDir
	opts []kgo.Opt
	log  func(string, ...any)

	mu       sync.Mutex
	outcomes map[string]agentproto.ReplayOutcome
	active   string // the request being carried out
	queue    []agentproto.ReplayRequest
	wake     chan struct{}
}

func newReplayer(dir dataDir, opts []kgo.Opt, log func(string, ...any)) *replayer {
	return &replayer{dir: dir, opts: opts, log: log, outcomes: map[string]agentproto.ReplayOutcome{}, wake: make(chan struct{}, 1)}
}

// set takes the requests of the latest assignments: each one not carried
// out before (on disk) is queued. A request found on disk as running was
// interrupted by a restart.
func (r *replayer) set(reqs []agentproto.ReplayRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := map[string]agentproto.ReplayOutcome{}
	for _, q := range reqs {
		if !replayID.MatchString(q.ID) {
			continue
		}
		if o, ok := r.outcomes[q.ID]; ok {
			keep[q.ID] = o
			continue
		}
		if o, ok := r.load(q.ID); ok {
			if o.State == agentproto.ReplayRunning && r.active != q.ID {
				o = agentproto.ReplayOutcome{ID: q.ID, State: agentproto.ReplayFailed, Replayed: 0,
					Errors: []string{"interrupted: the runner stopped during this replay; it is not replayed again, to avoid duplicates (its transaction was not committed, so nothing of it is visible to read_committed consumers); request a new replay"}}
				r.save(o)
			}
			keep[q.ID] = o
			continue
		}
		o := agentproto.ReplayOutcome{ID: q.ID, State: agentproto.ReplayRunning}
		keep[q.ID] = o
		r.queue = append(r.queue, q)
	}
	if r.active != "" {
		if _, ok := keep[r.active]; !ok {
			keep[r.active] = r.outcomes[r.active]
		}
	}
	r.outcomes = keep
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// report lists the outcomes of the requests of the latest assignments.
func (r *replayer) report() []agentproto.ReplayOutcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]agentproto.ReplayOutcome, 0, len(r.outcomes))
	for _, o := range r.outcomes {
		out = append(out, o)
	}
	return out
}

func (r *replayer) run(ctx context.Context) {
	for {
		r.mu.Lock()
		var q *agentproto.ReplayRequest
		if len(r.queue) > 0 {
			q = &r.queue[0]
			r.queue = r.queue[1:]
			r.active = q.ID
		}
		r.mu.Unlock()
		if q == nil {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			}
			continue
		}
		if _, done := r.load(q.ID); done {
			r.mu.Lock()
			r.active = ""
			r.mu.Unlock()
			continue
		}
		o := agentproto.ReplayOutcome{ID: q.ID, State: agentproto.ReplayRunning}
		if err := r.save(o); err != nil {
			o = agentproto.ReplayOutcome{ID: q.ID, State: agentproto.ReplayFailed, Errors: []string{"cannot record the replay on disk, so it is not started: " + err.Error()}}
		} else {
			o = r.replay(ctx, *q)
			if ctx.Err() != nil {
				return // stopped mid-way: reported as interrupted after a restart
			}
			if err := r.save(o); err != nil {
				r.log("recording a replay's outcome", "replay", q.ID, "err", err)
			}
		}
		r.log("DLQ replay finished", "replay", q.ID, "pipeline", q.Pipeline, "state", o.State, "replayed", o.Replayed, "errors", len(o.Errors))
		r.mu.Lock()
		r.outcomes[q.ID] = o
		r.active = ""
		r.mu.Unlock()
	}
}

// replay reads the selected dead letters and produces them in one
// transaction.
func (r *replayer) replay(ctx context.Context, q agentproto.ReplayRequest) agentproto.ReplayOutcome {
	o := agentproto.ReplayOutcome{ID: q.ID, State: agentproto.ReplayFailed}
	if len(r.opts) == 0 {
		o.Errors = []string{"this runner has no Kafka connection for the DLQ"}
		return o
	}
	recs, skipped, err := r.read(ctx, q)
	o.Errors = skipped
	if err != nil {
		o.Errors = append(o.Errors, err.Error())
		return o
	}
	if len(recs) == 0 {
		o.State = agentproto.ReplayDone
		return o
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.TransactionalID("sluice-replay-" + q.ID), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil))}, r.opts...)...)
	if err != nil {
		o.Errors = append(o.Errors, err.Error())
		return o
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		o.Errors = append(o.Errors, err.Error())
		return o
	}
	for _, rec := range recs {
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			o.Errors = append(o.Errors, fmt.Sprintf("producing to %s: %v", rec.Topic, err))
			_ = cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)
			return o
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		o.Errors = append(o.Errors, "committing the replay: "+err.Error())
		return o
	}
	o.State, o.Replayed = agentproto.ReplayDone, len(recs)
	return o
}

// read returns the records to produce for q, and what it skipped.
func (r *replayer) read(ctx context.Context, q agentproto.ReplayRequest) ([]*kgo.Record, []string, error) {
	want := map[int32]map[int64]bool{} // partition -> offsets (Offsets)
	stop := map[int32]int64{}          // partition -> last offset to read
	start := map[int32]int64{}
	for _, o := range q.Offsets {
		if want[o.Partition] == nil {
			want[o.Partition] = map[int64]bool{}
			start[o.Partition] = o.Offset
		}
		want[o.Partition][o.Offset] = true
		start[o.Partition] = min(start[o.Partition], o.Offset)
		stop[o.Partition] = max(stop[o.Partition], o.Offset)
	}
	for _, o := range q.UpTo {
		start[o.Partition] = 0
		stop[o.Partition] = max(stop[o.Partition], o.Offset)
	}
	if len(stop) == 0 {
		return nil, nil, errors.New("the request selects no dead letter")
	}
	adm, err := kgo.NewClient(r.opts...)
	if err != nil {
		return nil, nil, err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, q.DLQTopic)
	adm.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("listing the end of %s: %w", q.DLQTopic, err)
	}
	parts := map[string]map[int32]kgo.Offset{q.DLQTopic: {}}
	for p, last := range stop {
		end, ok := ends.Lookup(q.DLQTopic, p)
		if !ok || end.Err != nil || end.Offset <= start[p] {
			delete(stop, p)
			continue
		}
		stop[p] = min(last, end.Offset-1)
		parts[q.DLQTopic][p] = kgo.NewOffset().At(start[p])
	}
	if len(stop) == 0 {
		return nil, []string{"the DLQ holds none of the selected dead letters"}, nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted())}, r.opts...)...)
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	inputs := map[string]bool{}
	for _, t := range q.Inputs {
		inputs[t] = true
	}
	var out []*kgo.Record
	var skipped []string
	pending := len(stop)
	wait := 10 * time.Second
	for pending > 0 {
		pctx, cancel := context.WithTimeout(ctx, wait)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			// The rest are aborted records or transaction markers.
			break
		}
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				return nil, nil, fmt.Errorf("reading %s/%d: %w", e.Topic, e.Partition, e.Err)
			}
		}
		if fs.NumRecords() > 0 {
			// Once records flow, a quiet poll means the rest up to the
			// end are transaction markers or aborted records.
			wait = 2 * time.Second
		}
		fs.EachRecord(func(rec *kgo.Record) {
			last, ok := stop[rec.Partition]
			if !ok || rec.Offset > last {
				return
			}
			if rec.Offset == last {
				delete(stop, rec.Partition)
				pending--
			}
			if w := want[rec.Partition]; w != nil && !w[rec.Offset] && len(q.Offsets) > 0 && !inUpTo(q.UpTo, rec) {
				return
			}
			topic, _, _, ok := parseSource(header(rec, engine.HeaderSource))
			switch {
			case !ok:
				skipped = append(skipped, fmt.Sprintf("%d/%d: no sluice.source header; skipped", rec.Partition, rec.Offset))
				return
			case !inputs[topic]:
				skipped = append(skipped, fmt.Sprintf("%d/%d: its source %s is not an input of pipeline %s; skipped", rec.Partition, rec.Offset, topic, q.Pipeline))
				return
			}
			if len(out) >= maxReplayRecords {
				return
			}
			nr := &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp}
			for _, h := range rec.Headers {
				if !dlqHeaders[h.Key] {
					nr.Headers = append(nr.Headers, h)
				}
			}
			nr.Headers = append(nr.Headers, kgo.RecordHeader{Key: agentproto.HeaderReplayedFrom,
				Value: []byte(q.DLQTopic + "/" + strconv.Itoa(int(rec.Partition)) + "/" + strconv.FormatInt(rec.Offset, 10))})
			out = append(out, nr)
		})
		if len(out) >= maxReplayRecords {
			skipped = append(skipped, fmt.Sprintf("only the first %d dead letters are replayed by one request", maxReplayRecords))
			break
		}
	}
	if len(skipped) > 20 {
		skipped = append(skipped[:20], fmt.Sprintf("and %d more skipped", len(skipped)-20))
	}
	return out, skipped, nil
}

func inUpTo(up []agentproto.DLQOffset, rec *kgo.Record) bool {
	for _, u := range up {
		if u.Partition == rec.Partition && rec.Offset <= u.Offset {
			return true
		}
	}
	return false
}

func (r *replayer) path(id string) string { return r.dir.path(replaysDir, id+".json") }

func (r *replayer) load(id string) (agentproto.ReplayOutcome, bool) {
	var o agentproto.ReplayOutcome
	data, err := os.ReadFile(r.path(id))
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return o, false
	}
	if json.Unmarshal(data, &o) != nil || o.ID != id {
		return agentproto.ReplayOutcome{ID: id, State: agentproto.ReplayFailed, Errors: []string{"its record on the runner's disk is unreadable"}}, true
	}
	return o, true
}

func (r *replayer) save(o agentproto.ReplayOutcome) error {
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.dir.path(replaysDir), 0o700); err != nil {
		return err
	}
	return writeFile(r.path(o.ID), data)
}
