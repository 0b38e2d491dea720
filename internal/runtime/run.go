package runtime

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/observability"
)

// WaitError means the pipeline cannot start yet and will retry by itself
// (its input topic does not exist). It is not counted as a failure.
type WaitError struct{ Err error }

func (e *WaitError) Error() string { return e.Err.Error() }
func (e *WaitError) Unwrap() error { return e.Err }

// PanicError is an operator panic, caught so that it fails one pipeline
// and not the process.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("operator panicked: %v", e.Value) }

// ErrStuck means one record spent longer than StuckAfter in the operator chain.
var ErrStuck = errors.New("a record has been in the operator chain for too long; restarting the pipeline")

// StuckError is a record found in the operator chain longer than
// StuckAfter: the step it is in and where it was read. It is the
// pipeline's failure from the moment it is found, also while an operator
// that ignores its context holds the record; the pipeline restarts once
// the step returns. It matches ErrStuck.
type StuckError struct {
	Step      string // "" when the record is between steps (decoding, writing)
	Topic     string
	Partition int32
	Offset    int64
	After     time.Duration // the stuck timeout
}

func (e *StuckError) Error() string {
	step := "step " + e.Step
	if e.Step == "" {
		step = "the operator chain"
	}
	return fmt.Sprintf("the record at %s/%d offset %d has been in %s for more than %v; the pipeline restarts when the step returns",
		e.Topic, e.Partition, e.Offset, step, e.After)
}

func (e *StuckError) Unwrap() error { return ErrStuck }

// run is one pipeline's life in this process: its goroutine, its clients
// and its status.
type run struct {
	rt     *Runtime
	p      Pipeline
	ctx    context.Context // cancelled to stop; polling honours it
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	state    State
	lastErr  string
	restarts int
	since    time.Time
	// groupErr says why the runner is out of its consumer group while
	// franz-go rejoins it ("" while it is in; see fetchErr). assignments
	// counts the assignments received, and lostAfter is its value when
	// the partitions were last lost: a poll may report the loss only after
	// the rejoin, which must not leave groupErr set.
	groupErr    string
	assignments uint64
	lostAfter   uint64
	parts       map[int32]bool

	// perRecord estimates how long one record takes in the operator chain,
	// to size polls (see batch). Only the run's goroutine uses it.
	perRecord time.Duration

	// stuck is the current attempt's stuck record (guarded by mu), and
	// abandon closes that attempt's client so that a stop need not wait
	// for an operator that ignores its context; stuckSig wakes a stop
	// when a record is found stuck. A run stopped that way is abandoned:
	// its goroutine ends when the operator returns, and it no longer
	// touches the gauges of its pipeline, which a new run may own.
	stuck     *StuckError
	abandon   func()
	stuckSig  chan struct{}
	abandoned atomic.Bool

	processed atomic.Uint64
	dead      atomic.Uint64

	inCounters map[string]prometheus.Counter // by input topic

	// st holds the state stores of a stateful pipeline (nil otherwise).
	// epochs numbers each assignment of an input partition (guarded by
	// mu): a store is restored whenever its partition's epoch changed.
	st       *stores
	tb       *tables // nil without side inputs
	epochs   map[topicPartition]uint64
	epochSeq uint64
	// resets names the stateful steps whose state this revision starts
	// from empty; done by the first attempt that gets that far.
	resets []string

	// lag samples the group's lag and counts hot keys (lag.go); stageOf
	// maps each stage's input topic to its index.
	lag     *lagTracker
	stageOf map[string]int
}

func newRun(rt *Runtime, p Pipeline) *run {
	ctx, cancel := context.WithCancel(context.Background())
	ru := &run{rt: rt, p: p, ctx: ctx, cancel: cancel, done: make(chan struct{}), state: Starting, since: time.Now(), parts: map[int32]bool{}}
	ru.epochs = map[topicPartition]uint64{}
	ru.stuckSig = make(chan struct{}, 1)
	ru.st = newStores(ru)
	ru.tb = newTables(ru)
	ru.inCounters = map[string]prometheus.Counter{}
	ru.lag = ru.newLagTracker()
	ru.stageOf = map[string]int{}
	for _, st := range p.Plan.Stages {
		ru.stageOf[st.Input] = st.Index
		// A stage counts the records of its side inputs with its stream's.
		c := rt.metrics.in.WithLabelValues(p.Plan.Name, strconv.Itoa(st.Index))
		ru.inCounters[st.Input] = c
		for _, t := range st.Tables {
			ru.inCounters[t] = c
		}
	}
	return ru
}

// stop stops the run, letting the record in flight finish, within ctx.
// A run with a record stuck in the chain (found by the watchdog, now or
// while stop waits) is abandoned instead of waited for: its client is
// closed, which leaves the group and drops its open transaction, so the
// pipeline's next revision, and other Applies, do not wait for an
// operator that may never return.
func (ru *run) stop(ctx context.Context) error {
	ru.cancel()
	for {
		if ru.abandonIfStuck() {
			return nil
		}
		select {
		case <-ru.done:
			return nil
		case <-ru.stuckSig:
		case <-ctx.Done():
			return fmt.Errorf("pipeline %s did not stop in time: %w", ru.p.Plan.Name, ctx.Err())
		}
	}
}

func (ru *run) abandonIfStuck() bool {
	ru.mu.Lock()
	se, abandon := ru.stuck, ru.abandon
	ru.abandon = nil
	ru.mu.Unlock()
	if se == nil {
		return false
	}
	select {
	case <-ru.done:
		return true // it returned meanwhile
	default:
	}
	ru.abandoned.Store(true)
	ru.rt.cfg.logger.Warn("pipeline stopped with a record stuck in it; its goroutine is left behind until the step returns, and commits nothing",
		"pipeline", ru.p.Plan.Name, "revision", ru.p.Revision, "err", se)
	if abandon != nil {
		abandon()
	}
	return true
}

// setAbandon sets how to close the attempt's client (nil when it ends).
func (ru *run) setAbandon(f func()) {
	ru.mu.Lock()
	ru.abandon = f
	ru.mu.Unlock()
}

// stuckFound makes a stuck record the pipeline's visible failure at once:
// status, /readyz, metrics and the log.
func (ru *run) stuckFound(se *StuckError) {
	ru.mu.Lock()
	ru.stuck = se
	ru.mu.Unlock()
	ru.rt.metrics.stuckTotal.WithLabelValues(ru.p.Plan.Name).Inc()
	ru.rt.metrics.stuck.WithLabelValues(ru.p.Plan.Name).Set(1)
	ru.rt.cfg.logger.Error("pipeline failed: a record is stuck", "pipeline", ru.p.Plan.Name, "revision", ru.p.Revision, "err", se)
	ru.setState(Failed, se)
	select {
	case ru.stuckSig <- struct{}{}:
	default:
	}
}

func (ru *run) setState(s State, err error) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	if ru.state != s {
		ru.since = time.Now()
	}
	ru.state = s
	// Restarting keeps the last failure visible until the pipeline runs.
	if s != Starting || err != nil {
		ru.lastErr = ""
	}
	if err != nil {
		ru.lastErr = err.Error()
	}
	up := 0.0
	if s == Running || s == Starting {
		up = 1
	}
	if !ru.abandoned.Load() {
		ru.rt.metrics.up.WithLabelValues(ru.p.Plan.Name).Set(up)
	}
}

func (ru *run) status() Status {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	parts := make([]int32, 0, len(ru.parts))
	for p := range ru.parts {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	st := Status{
		Name: ru.p.Plan.Name, Revision: ru.p.Revision, State: ru.state, Error: ru.lastErr,
		Restarts: ru.restarts, Partitions: parts, Processed: ru.processed.Load(), DeadLetter: ru.dead.Load(), Since: ru.since,
	}
	if st.Error == "" {
		st.Error = ru.groupErr
	}
	if ru.st != nil {
		st.Restores = ru.st.restores()
		st.Stores = ru.st.storeSizes()
	}
	return st
}

// lagView is the last lag sample; status adds it outside ru.mu, which
// the tracker takes to ask which tasks this runner holds.
func (ru *run) lagView() *observability.PipelineLag { return ru.lag.view() }

// loop runs attempts until the pipeline is stopped, backing off after
// failures. A long healthy run resets the back-off.
func (ru *run) loop() {
	defer close(ru.done)
	if ru.st != nil {
		defer ru.st.closeAll()
	}
	log := ru.rt.cfg.logger.With("pipeline", ru.p.Plan.Name, "revision", ru.p.Revision)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		ru.lag.run(ru.ctx, log.Warn)
	}()
	defer func() { <-lagDone }() // before done closes: a stopped run leaves no sampler behind
	failures, waits := 0, 0
	for {
		started := time.Now()
		err := ru.attempt()
		if ru.ctx.Err() != nil {
			if err != nil {
				log.Warn("pipeline stopped with an error", "err", err)
			}
			ru.setState(Stopped, err)
			return
		}
		if time.Since(started) > time.Minute {
			failures = 0
		}
		var wait *WaitError
		if errors.As(err, &wait) {
			// Waiting is normal until someone creates the topic: log it once
			// and look again less and less often, not four times a second.
			if waits == 0 {
				log.Info("pipeline waiting", "reason", err)
			}
			waits++
			ru.setState(Waiting, err)
		} else {
			waits = 0
			failures++
			ru.mu.Lock()
			ru.restarts++
			ru.mu.Unlock()
			ru.rt.metrics.restarts.WithLabelValues(ru.p.Plan.Name).Inc()
			var pe *PanicError
			if errors.As(err, &pe) {
				log.Error("pipeline failed: operator panicked", "err", err, "stack", string(pe.Stack))
			} else {
				log.Error("pipeline failed", "err", err)
			}
			ru.setState(Failed, err)
		}
		select {
		case <-ru.ctx.Done():
			ru.setState(Stopped, nil)
			return
		case <-time.After(ru.retryAfter(failures, waits)):
		}
	}
}

// retryAfter is the back-off after a failure, or, while waiting for a topic,
// a back-off capped at 5s so a newly created topic is picked up soon.
func (ru *run) retryAfter(failures, waits int) time.Duration {
	if waits > 0 {
		return min(ru.backoff(waits), 5*time.Second)
	}
	return ru.backoff(failures)
}

func (ru *run) backoff(failures int) time.Duration {
	d := ru.rt.cfg.backoffMin
	for i := 1; i < failures && d < ru.rt.cfg.backoffMax; i++ {
		d *= 2
	}
	return min(d, ru.rt.cfg.backoffMax)
}

func (ru *run) attempt() error {
	ru.setState(Starting, nil)
	if !ru.abandoned.Load() {
		// A run it replaced may have left its record stuck.
		ru.rt.metrics.stuck.WithLabelValues(ru.p.Plan.Name).Set(0)
	}
	if err := ru.rt.ensureTopics(ru.ctx, ru.p.Plan); err != nil {
		return err
	}
	for len(ru.resets) > 0 {
		if err := ru.rt.resetState(ru.ctx, ru.p.Plan.Name, ru.resets[0]); err != nil {
			return err
		}
		ru.rt.cfg.logger.Info("state reset", "pipeline", ru.p.Plan.Name, "step", ru.resets[0])
		ru.resets = ru.resets[1:]
	}
	// work is the context records are processed and produced under: not
	// cancelled by stop, so in-flight work finishes, but cancelled by the
	// watchdog when a record is stuck.
	work, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	var prod producer
	ex, err := ru.newExecutor(work, prod.emit(ru))
	if err != nil {
		return err
	}
	var stuck atomic.Pointer[StuckError]
	go ru.watchdog(work, cancelWork, ex, &stuck)

	if ru.p.Plan.Delivery == pipeline.AtLeastOnce {
		err = ru.atLeastOnce(ex, &prod)
	} else {
		err = ru.exactlyOnce(ex, &prod)
	}
	ru.mu.Lock()
	ru.stuck, ru.abandon = nil, nil
	ru.mu.Unlock()
	if se := stuck.Load(); se != nil {
		if !ru.abandoned.Load() {
			ru.rt.metrics.stuck.WithLabelValues(ru.p.Plan.Name).Set(0)
		}
		return se
	}
	return err
}

// watchdog cancels work when one record has been in the chain longer than
// the stuck timeout; operators that honour ctx (script) then return. Lanes
// do not take the time for every record: a lane whose state (which counts
// the records it starts) has not changed while a record is in its chain
// has had that record in it since at least the tick that first saw the
// state: a record is reported stuck at most two ticks (one second) late,
// and never early.
func (ru *run) watchdog(work context.Context, cancel context.CancelFunc, ex *executor, stuck *atomic.Pointer[StuckError]) {
	limit := ru.rt.cfg.stepTimeout
	t := time.NewTicker(min(limit/8+time.Millisecond, time.Second/2))
	defer t.Stop()
	lanes := ex.lanes()
	seen := make([]uint64, len(lanes))
	since := make([]time.Time, len(lanes))
	for {
		select {
		case <-work.Done():
			return
		case now := <-t.C:
			for i, l := range lanes {
				st := l.state.Load()
				if st&1 == 0 || st != seen[i] {
					seen[i], since[i] = st, now
					continue
				}
				if now.Sub(since[i]) > limit {
					se := &StuckError{After: limit, Offset: -1}
					if r := l.rec.Load(); r != nil {
						se.Topic, se.Partition, se.Offset = r.Topic, r.Partition, r.Offset
					}
					if st := l.cur.Load(); st != nil {
						se.Step = st.BusyStep()
					}
					stuck.Store(se)
					ru.stuckFound(se)
					cancel()
					return
				}
			}
		}
	}
}

func (ru *run) baseOpts(topics []string) []kgo.Opt {
	cfg := ru.rt.cfg
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.brokers...),
		// Client telemetry (KIP-714) allocates a large gzip writer per push
		// per client; with a client per pipeline that dominated idle memory,
		// and the runner exports its own metrics.
		kgo.DisableClientMetrics(),
		kgo.ConsumerGroup(ru.p.group()),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers tell how far a table partition has been
		// read (tables); polled drops them before anything else sees
		// the records.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(DefaultFetchMaxBytes),
		kgo.FetchMaxPartitionBytes(DefaultFetchMaxPartitionBytes),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) { ru.assign(cl, m, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, cl *kgo.Client, m map[string][]int32) { ru.assign(cl, m, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			ru.assign(cl, m, false)
			ru.mu.Lock()
			ru.lostAfter = ru.assignments
			ru.mu.Unlock()
		}),
	}
	if ru.tb != nil {
		opts = append(opts, kgo.Balancers(copartitionBalancer{}))
	}
	if ru.st != nil {
		opts = append(opts, kgo.RecordPartitioner(newChangelogPartitioner(ru.p.Plan)))
	}
	if cfg.sessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.sessionTimeout), kgo.HeartbeatInterval(cfg.sessionTimeout/10))
	}
	return append(opts, cfg.kafkaOpts...)
}

// assign tracks the source partitions (tasks) this runner holds, gives
// every assigned input partition a new epoch, and holds back the streams of
// tasks until their tables are caught up.
func (ru *run) assign(cl *kgo.Client, m map[string][]int32, add bool) {
	if ru.tb != nil {
		if add {
			ru.tb.assigned(cl, m)
		} else {
			ru.tb.revoked(cl, m)
		}
	}
	ru.mu.Lock()
	for t, ps := range m {
		for _, p := range ps {
			if add {
				ru.epochSeq++
				ru.epochs[topicPartition{t, p}] = ru.epochSeq
			} else {
				delete(ru.epochs, topicPartition{t, p})
			}
		}
	}
	for _, p := range m[ru.p.Plan.Source.Topic] {
		if add {
			ru.parts[p] = true
		} else {
			delete(ru.parts, p)
		}
	}
	n := len(ru.parts)
	if add {
		ru.groupErr = "" // back in the group
		ru.assignments++
	}
	ru.mu.Unlock()
	if !ru.abandoned.Load() {
		ru.rt.metrics.partitions.WithLabelValues(ru.p.Plan.Name).Set(float64(n))
	}
}

// assigned lists the partitions of topic this runner holds.
func (ru *run) assigned(topic string) []int32 {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	var out []int32
	for tp := range ru.epochs {
		if tp.topic == topic {
			out = append(out, tp.partition)
		}
	}
	return out
}

// epoch returns the current assignment's number of partition of topic, 0
// when this runner does not hold it.
func (ru *run) epoch(topic string, partition int32) uint64 {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	return ru.epochs[topicPartition{topic, partition}]
}

// inputs are the topics the pipeline's group reads: each stage's input
// and side inputs.
func (ru *run) inputs() []string {
	var out []string
	for _, st := range ru.p.Plan.Stages {
		out = append(out, st.Input)
		out = append(out, st.Tables...)
	}
	return out
}

// polled is called with every poll's fetches before they are processed.
// The tables see the transaction markers among the records; then they are
// dropped from f.
func (ru *run) polled(ctx context.Context, cl *kgo.Client, f kgo.Fetches) error {
	var err error
	if ru.tb != nil {
		err = ru.tb.polled(ctx, cl, f)
	}
	dropControl(f)
	ru.lag.observe(f, ru.stageOf)
	return err
}

// dropControl removes the control records (transaction markers) from f, in
// place. The client commits past them all the same: it counts every record
// it returned.
func dropControl(f kgo.Fetches) {
	for i := range f {
		for j := range f[i].Topics {
			parts := f[i].Topics[j].Partitions
			for k := range parts {
				recs := parts[k].Records
				n := 0
				for _, r := range recs {
					if !r.Attrs.IsControl() {
						recs[n] = r
						n++
					}
				}
				if n < len(recs) {
					clear(recs[n:])
					parts[k].Records = recs[:n]
				}
			}
		}
	}
}

// errStopping ends a batch when the pipeline is being stopped: the record
// in flight finishes, the rest of the batch is left for whoever processes
// the partition next (the transaction aborts, or offsets stay uncommitted).
var errStopping = errors.New("pipeline stopping")

// batch is how many records to poll so that processing them takes about
// budget. Every polled record must be processed before the transaction (or
// the offset commit) ends, since ending it commits their offsets; so a
// pipeline with slow records polls few at a time, and its transactions stay
// near the commit interval instead of outliving the transaction timeout,
// which would abort them over and over. Until a record has been timed, it
// polls one.
func (ru *run) batch(budget time.Duration) int {
	if ru.perRecord <= 0 {
		return 1
	}
	limit := ru.rt.cfg.maxPoll
	if ru.st != nil {
		// A stateful pipeline's poll is processed a partition per worker
		// (see executor), and a poll takes the fetched records of one
		// partition after another: at 5,000 records it often holds one
		// or two partitions, and a worker idles. A larger poll spans
		// more of them; the budget still bounds it.
		limit *= statefulPollFactor
	}
	n := budget / ru.perRecord
	return int(max(1, min(n, time.Duration(limit))))
}

// statefulPollFactor is how many times maxPoll a stateful pipeline may
// poll at once.
const statefulPollFactor = 4

// fetchErr returns the first fetch error that is not a context ending or
// news about the group session.
//
// A member whose heartbeats missed the session timeout (a pause, a starved
// host) is removed from the group; franz-go says so with an ErrGroupSession
// and rejoins by itself. That is no failure of the pipeline: its
// partitions were revoked as lost, the open transaction aborts (or, at
// least once, the uncommitted records are processed again by their next
// owner), and it goes on with what the group gives it back. Restarting
// would only add a second rebalance. Until it has partitions again, its
// status says why it has none. Other group session errors (not allowed to
// join, an inconsistent protocol, no coordinator) stay failures: they do
// not pass by themselves, and the pipeline is not running.
func (ru *run) fetchErr(f kgo.Fetches) error {
	for _, fe := range f.Errors() {
		if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
			continue
		}
		if gs := (*kgo.ErrGroupSession)(nil); errors.As(fe.Err, &gs) && removedFromGroup(gs.Err) {
			ru.outOfGroup(gs.Err)
			continue
		}
		return fmt.Errorf("fetching %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
	}
	return nil
}

// removedFromGroup reports whether err is the coordinator saying that the
// member is no longer in the group (or in this generation of it).
func removedFromGroup(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.FencedMemberEpoch) || errors.Is(err, kerr.StaleMemberEpoch)
}

// outOfGroup notes that the runner lost its group membership, as err
// from the coordinator says; the first time since it last had partitions
// is logged.
func (ru *run) outOfGroup(err error) {
	ru.rt.metrics.groupLost.WithLabelValues(ru.p.Plan.Name).Inc()
	ru.mu.Lock()
	first := ru.groupErr == ""
	if ru.assignments == ru.lostAfter { // not back yet
		ru.groupErr = "not in the consumer group, rejoining: " + err.Error()
	}
	ru.mu.Unlock()
	if first {
		ru.rt.cfg.logger.Warn("pipeline lost its consumer group membership; rejoining", "pipeline", ru.p.Plan.Name, "err", err)
	}
}

// producer sends a stage's outputs through whichever client the delivery
// mode uses, and remembers the first failure until it is taken.
type producer struct {
	produce func(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	mu      sync.Mutex
	err     error
}

func (p *producer) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *producer) take() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.err
	p.err = nil
	return err
}

func (p *producer) emit(ru *run) engine.Emit {
	name := ru.p.Plan.Name
	dlq := ru.p.Plan.DLQ
	m := ru.rt.metrics
	// A pipeline writes to a few topics, the sink (Topics' first) most: a
	// search from the sink costs less per record than hashing the name.
	type outCounter struct {
		topic string
		c     prometheus.Counter
	}
	var outCounters []outCounter
	for _, t := range ru.p.Plan.Topics() {
		outCounters = append(outCounters, outCounter{t, m.out.WithLabelValues(name, t)})
	}
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			p.fail(fmt.Errorf("producing to %s: %w", r.Topic, err))
		} else {
			// Counted here, where the client's few goroutines call
			// promises, rather than by the workers as they emit: one
			// counter that every worker adds to per record moved its cache
			// line between the cores (2% of a windowed count's CPU).
			for _, oc := range outCounters { // read-only after this function
				if oc.topic == r.Topic {
					oc.c.Inc()
					break
				}
			}
		}
		// The client is done with r once its promise is called.
		*r = kgo.Record{}
		recordPool.Put(r)
	}
	return func(ctx context.Context, msg engine.Message) error {
		r := recordPool.Get().(*kgo.Record)
		r.Topic, r.Key, r.Value, r.Timestamp = msg.Topic, msg.Key, msg.Value, msg.Timestamp
		if len(msg.Headers) > 0 {
			r.Headers = make([]kgo.RecordHeader, len(msg.Headers))
			for i, h := range msg.Headers {
				r.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		if msg.Topic == dlq {
			ru.dead.Add(1)
			m.dlq.WithLabelValues(name, headerValue(msg, engine.HeaderReason), headerValue(msg, engine.HeaderStep)).Inc()
		}
		p.produce(ctx, r, promise)
		return ctx.Err()
	}
}

// recordPool recycles the records a pipeline produces: one per output is
// otherwise a large part of what the per-record path allocates.
var recordPool = sync.Pool{New: func() any { return new(kgo.Record) }}

func headerValue(m engine.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
