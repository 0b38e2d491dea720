package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/sketch"
	"github.com/sluicehq/sluice/observability"
)

// Lag tracking defaults (see LagInterval, LagWindow, HotKeys).
const (
	defaultLagInterval   = 10 * time.Second
	defaultHotKeys       = 32
	defaultHotKeyWindow  = 30 * time.Second
	headReadTimeout      = 3 * time.Second
	hotKeysPerTask       = 3
	hotKeysPerPipeline   = 10
	minHotKeyRecords     = 20
	minHotKeyShareReport = 0.01
	// hotKeySample: the sketches count the records whose offset is a
	// multiple of it. A key's share of a sample of every 4th offset is its
	// share of the stream (offsets say nothing of keys), and a key with a
	// large share is as sure to be found; tracking costs a quarter.
	hotKeySample = 4
)

// lagConfig configures lag and hot-key tracking. Zero values are the
// defaults.
type lagConfig struct {
	interval  time.Duration // <0: no lag sampling
	window    int
	hotKeys   int // <0: no hot-key sketches
	keyWindow time.Duration
	now       func() time.Time // tests: a deterministic clock
}

// LagInterval is how often each pipeline samples the lag of its consumer
// group on every stage and partition (default 10s); d < 0 turns lag
// tracking off.
func LagInterval(d time.Duration) Opt { return func(c *config) { c.lag.interval = d } }

// LagWindow is how many commits the lag evaluation looks back over
// (Burrow's "intervals", default 10): with the default interval a
// partition is STALLED after 100 s of commits that do not move.
func LagWindow(n int) Opt { return func(c *config) { c.lag.window = n } }

// HotKeys sets the counters of each task's Space-Saving sketch of key
// hashes (default 32) and the window it counts over (default 30s, then it
// starts again); k < 0 turns hot-key tracking off.
func HotKeys(k int, window time.Duration) Opt {
	return func(c *config) { c.lag.hotKeys, c.lag.keyWindow = k, window }
}

func (c lagConfig) withDefaults() lagConfig {
	if c.interval == 0 {
		c.interval = defaultLagInterval
	}
	if c.window < 2 {
		c.window = observability.DefaultWindow
	}
	if c.hotKeys == 0 {
		c.hotKeys = defaultHotKeys
	}
	if c.keyWindow <= 0 {
		c.keyWindow = defaultHotKeyWindow
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// lagStage is a stage whose input the tracker samples.
type lagStage struct {
	index int
	topic string
}

// lagTracker samples one pipeline's consumer group: for each stage's input
// topic and partition, the end offset (last stable offset), log start,
// committed offset and the timestamp of the record at the committed
// offset, which it reads from the topic (one read per new committed
// offset: heads caches them). It also keeps each task's hot-key sketch,
// fed from polls. Sampling runs on its own goroutine; observe on the
// run's; view on any.
type lagTracker struct {
	cfg    lagConfig
	group  string
	stages []lagStage
	admin  *kadm.Client
	reader *headReader
	// owned reports whether this runner holds the task of topic/partition.
	owned   func(topic string, partition int32) bool
	metrics *observability.Metrics
	name    string
	// source marks the views of a watch (observability.SourceMonitor).
	source string

	parts map[topicPartition]*observability.Partition
	heads map[topicPartition]head

	mu   sync.Mutex
	last *observability.PipelineLag
	keys map[topicPartition]*taskKeys
}

// head is what was read at a committed offset.
type head struct {
	offset  int64
	end     int64 // the end when it was read (a drained head is re-read when the end moves)
	ts      time.Time
	drained bool
}

// taskKeys is a task's hot-key sketch: cur counts since started; prev is
// the last full window, reported while cur is young.
type taskKeys struct {
	stage     int
	cur, prev *observability.TopK
	started   time.Time
}

func (ru *run) newLagTracker() *lagTracker {
	rt := ru.rt
	lt := &lagTracker{
		cfg:     rt.cfg.lag.withDefaults(),
		group:   ru.p.group(),
		admin:   rt.admin,
		owned:   func(t string, p int32) bool { return ru.epoch(t, p) != 0 },
		metrics: rt.lagMetrics,
		name:    ru.p.Plan.Name,
		reader:  rt.heads,
	}
	for _, st := range ru.p.Plan.Stages {
		lt.stages = append(lt.stages, lagStage{index: st.Index, topic: st.Input})
	}
	lt.init()
	return lt
}

func (lt *lagTracker) init() {
	lt.parts = map[topicPartition]*observability.Partition{}
	lt.heads = map[topicPartition]head{}
	lt.keys = map[topicPartition]*taskKeys{}
}

// readerOpts configure the client that reads records at committed
// offsets: read_committed like the pipeline, transaction markers kept (so
// that an offset followed only by markers is known to be caught up), and
// small fetches, since one record per partition is all it wants.
func readerOpts(extra []kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.DisableClientMetrics(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.FetchMaxPartitionBytes(64 << 10),
		kgo.FetchMaxBytes(1 << 20),
	}, extra...)
}

// run samples every interval until ctx ends.
func (lt *lagTracker) run(ctx context.Context, log func(msg string, args ...any)) {
	if lt.cfg.interval < 0 {
		return
	}
	t := time.NewTicker(lt.cfg.interval)
	defer t.Stop()
	failing := false
	for {
		if err := lt.sample(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				log("lag sampling failed; retrying every interval", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample reads the group's offsets and the topics' ends, reads the heads
// that changed, and evaluates every partition.
func (lt *lagTracker) sample(ctx context.Context) error {
	topics := make([]string, len(lt.stages))
	for i, st := range lt.stages {
		topics[i] = st.topic
	}
	ctx, cancel := context.WithTimeout(ctx, lt.cfg.interval+headReadTimeout)
	defer cancel()
	ends, err := lt.admin.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("listing end offsets: %w", err)
	}
	// A stage whose topic does not exist yet (a new pipeline's repartition
	// or output topics, created as it starts) has nothing to sample; asking
	// for its group offsets would fail the whole sample.
	topics = slices.DeleteFunc(topics, func(t string) bool {
		for _, lo := range ends[t] {
			if lo.Err == nil {
				return false
			}
		}
		return true
	})
	if len(topics) == 0 {
		return nil
	}
	starts, err := lt.admin.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("listing start offsets: %w", err)
	}
	committed, err := lt.admin.FetchOffsetsForTopics(ctx, lt.group, topics...)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // no commits yet: every partition is no-commit
	}
	if err != nil {
		return fmt.Errorf("fetching the group's offsets: %w", err)
	}
	// Who holds what: a partition some member holds is being committed
	// even when its offset does not move. A group the classic describe
	// cannot see (or an error) leaves only this runner's own tasks.
	var assigned kadm.TopicsSet
	if dg, err := lt.admin.DescribeGroups(ctx, lt.group); err == nil {
		if g, ok := dg[lt.group]; ok && g.Err == nil {
			assigned = g.AssignedPartitions()
		}
	}
	now := lt.cfg.now()
	type cur struct {
		stage int
		tp    topicPartition
		s     observability.Sample
		mine  bool
	}
	var all []cur
	want := map[string]map[int32]kgo.Offset{}
	for si, st := range lt.stages {
		for p, lo := range ends[st.topic] {
			if lo.Err != nil {
				continue
			}
			tp := topicPartition{st.topic, p}
			s := observability.Sample{At: now, End: lo.Offset, Start: -1, Committed: -1}
			if so, ok := starts.Lookup(st.topic, p); ok && so.Err == nil {
				s.Start = so.Offset
			}
			if or, ok := committed.Lookup(st.topic, p); ok && or.Err == nil && or.At >= 0 {
				s.Committed = or.At
			}
			mine := lt.owned != nil && lt.owned(st.topic, p)
			s.Owned = mine || assigned != nil && assigned.Lookup(st.topic, p)
			all = append(all, cur{si, tp, s, mine})
			from := s.Committed
			if s.Start > from {
				from = s.Start // compacted gap: the first record that remains
			}
			if s.Committed < 0 || from >= s.End {
				continue
			}
			if h, ok := lt.heads[tp]; ok && h.offset == from && (!h.drained || h.end == s.End) {
				continue
			}
			if want[st.topic] == nil {
				want[st.topic] = map[int32]kgo.Offset{}
			}
			want[st.topic][p] = kgo.NewOffset().At(from)
		}
	}
	if len(want) > 0 {
		if err := lt.readHeads(ctx, want, ends); err != nil {
			return err
		}
	}
	view := &observability.PipelineLag{SampledAt: now, Stages: make([]observability.StageLag, len(lt.stages)), Source: lt.source}
	byStage := make([][]observability.PartitionLag, len(lt.stages))
	for _, c := range all {
		from := max(c.s.Committed, c.s.Start)
		if h, ok := lt.heads[c.tp]; ok && h.offset == from && c.s.Committed >= 0 {
			c.s.Head, c.s.Drained = h.ts, h.drained
		}
		p := lt.parts[c.tp]
		if p == nil {
			p = observability.NewPartition(lt.cfg.window)
			lt.parts[c.tp] = p
		}
		pl := p.Observe(c.s)
		pl.Partition, pl.Owned = c.tp.partition, c.mine
		byStage[c.stage] = append(byStage[c.stage], pl)
	}
	for i, st := range lt.stages {
		ps := byStage[i]
		sort.Slice(ps, func(a, b int) bool { return ps[a].Partition < ps[b].Partition })
		view.Stages[i] = observability.SummarizeStage(st.index, st.topic, ps)
	}
	view.HotKeys = lt.hotKeys(now)
	observability.Rollup(view)
	lt.mu.Lock()
	lt.last = view
	lt.mu.Unlock()
	if lt.metrics != nil {
		lt.metrics.Set(lt.name, *view)
	}
	return nil
}

// headReader reads the records at committed offsets for every pipeline of
// a runtime, one read at a time, through one client that it makes the
// first time it is needed: a runner with many pipelines keeps one extra
// client, not one per pipeline.
type headReader struct {
	newClient func() (*kgo.Client, error)
	// turn is held by the read in progress: taken with a select on the
	// reader's ctx, so a stopping pipeline never waits out another's read.
	turn   chan struct{}
	cl     *kgo.Client
	closed bool // by Runtime.Close: a straggling sampler makes no new client
}

func newHeadReader(brokers []string, extra []kgo.Opt) *headReader {
	return &headReader{turn: make(chan struct{}, 1), newClient: func() (*kgo.Client, error) {
		return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, readerOpts(extra)...)...)
	}}
}

func (h *headReader) close() {
	h.turn <- struct{}{}
	defer func() { <-h.turn }()
	h.closed = true
	if h.cl != nil {
		h.cl.Close()
		h.cl = nil
	}
}

// readHeads reads, for each wanted partition, the first readable record
// at or after its offset: its timestamp is the time lag's origin. Only
// transaction markers up to the end mean the partition is drained (caught
// up). A partition not resolved before the timeout keeps no head and is
// read again next time.
func (lt *lagTracker) readHeads(ctx context.Context, want map[string]map[int32]kgo.Offset, ends kadm.ListedOffsets) error {
	h := lt.reader
	select {
	case h.turn <- struct{}{}:
		defer func() { <-h.turn }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if h.closed {
		return errors.New("lag reader: the runtime is closed")
	}
	if h.cl == nil {
		cl, err := h.newClient()
		if err != nil {
			return fmt.Errorf("lag reader: %w", err)
		}
		h.cl = cl
	}
	pending := map[topicPartition]int64{}
	remove := map[string][]int32{}
	for t, ps := range want {
		for p, o := range ps {
			pending[topicPartition{t, p}] = o.EpochOffset().Offset
			remove[t] = append(remove[t], p)
		}
	}
	h.cl.AddConsumePartitions(want)
	defer h.cl.RemoveConsumePartitions(remove)
	rctx, cancel := context.WithTimeout(ctx, headReadTimeout)
	defer cancel()
	for len(pending) > 0 {
		f := h.cl.PollFetches(rctx)
		if rctx.Err() != nil {
			break
		}
		for _, fe := range f.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				return fmt.Errorf("reading %s/%d at its committed offset: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		f.EachRecord(func(r *kgo.Record) {
			tp := topicPartition{r.Topic, r.Partition}
			from, ok := pending[tp]
			if !ok || r.Offset < from {
				return
			}
			end, _ := ends.Lookup(r.Topic, r.Partition)
			if r.Attrs.IsControl() {
				if r.Offset+1 >= end.Offset {
					lt.heads[tp] = head{offset: from, end: end.Offset, drained: true}
					delete(pending, tp)
				}
				return
			}
			lt.heads[tp] = head{offset: from, end: end.Offset, ts: r.Timestamp}
			delete(pending, tp)
		})
	}
	return nil
}

// observe counts the keys of a poll's records in their tasks' sketches:
// every hotKeySample-th offset. Records without a key have no key to be
// hot.
func (lt *lagTracker) observe(f kgo.Fetches, stageOf map[string]int) {
	if lt.cfg.hotKeys < 0 {
		return
	}
	now := lt.cfg.now()
	lt.mu.Lock()
	defer lt.mu.Unlock()
	f.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		stage, ok := stageOf[p.Topic]
		if !ok {
			return // a side input
		}
		tp := topicPartition{p.Topic, p.Partition}
		tk := lt.keys[tp]
		if tk == nil {
			tk = &taskKeys{stage: stage, cur: observability.NewTopK(lt.cfg.hotKeys), started: now}
			lt.keys[tp] = tk
		}
		if now.Sub(tk.started) >= lt.cfg.keyWindow {
			if tk.prev == nil {
				tk.prev = observability.NewTopK(lt.cfg.hotKeys)
			}
			tk.prev, tk.cur = tk.cur, tk.prev
			tk.cur.Reset()
			tk.started = now
		}
		for _, r := range p.Records {
			if r.Key != nil && r.Offset%hotKeySample == 0 {
				tk.cur.Add(sketch.Hash64(r.Key))
			}
		}
	})
}

// hotKeys lists the largest keys of the tasks this runner holds, from each
// task's current window, or its last one while the current is young.
// Ownership is asked before lt.mu is taken (owned takes the run's lock).
func (lt *lagTracker) hotKeys(now time.Time) []observability.HotKey {
	lt.mu.Lock()
	tps := make([]topicPartition, 0, len(lt.keys))
	for tp := range lt.keys {
		tps = append(tps, tp)
	}
	lt.mu.Unlock()
	revoked := map[topicPartition]bool{}
	for _, tp := range tps {
		if lt.owned != nil && !lt.owned(tp.topic, tp.partition) {
			revoked[tp] = true
		}
	}
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var out []observability.HotKey
	for tp, tk := range lt.keys {
		if revoked[tp] {
			delete(lt.keys, tp) // revoked: another runner counts it now
			continue
		}
		s := tk.cur
		if tk.prev != nil && now.Sub(tk.started) < lt.cfg.keyWindow/2 && tk.prev.Total() > 0 {
			s = tk.prev
		}
		total := s.Total()
		if total < minHotKeyRecords {
			continue
		}
		for _, kc := range s.Top(hotKeysPerTask) {
			share := float64(kc.Count) / float64(total)
			if share < minHotKeyShareReport {
				break
			}
			out = append(out, observability.HotKey{Hash: fmt.Sprintf("%016x", kc.Key), Stage: tk.stage, Topic: tp.topic,
				Partition: tp.partition, Count: kc.Count, Error: kc.Error, Records: total, Share: share})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Share != out[j].Share {
			return out[i].Share > out[j].Share
		}
		return out[i].Hash < out[j].Hash
	})
	if len(out) > hotKeysPerPipeline {
		out = out[:hotKeysPerPipeline]
	}
	return out
}

// view returns a copy of the last sample (nil before the first).
func (lt *lagTracker) view() *observability.PipelineLag {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.last == nil {
		return nil
	}
	v := *lt.last
	return &v
}

// withState adds the restore progress and the sizes of the stores this
// runner holds (standby copies left out: their partitions are another
// runner's) to a lag view, so they travel with it to the control plane.
func withState(l *observability.PipelineLag, rs []RestoreStatus, sizes []observability.StoreSize) *observability.PipelineLag {
	if l == nil {
		return nil
	}
	l.Stores = sizes
	for _, r := range rs {
		if r.Standby {
			continue
		}
		l.Restores = append(l.Restores, observability.Restore{Step: r.Step, Partition: r.Partition, Restoring: r.Restoring,
			Done: r.Done, Total: r.Total, Rate: r.Rate, ETASeconds: r.ETA})
	}
	return l
}
