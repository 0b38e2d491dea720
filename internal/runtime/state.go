package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/state"
	"github.com/sluicehq/sluice/internal/state/changelog"
	"github.com/sluicehq/sluice/internal/state/pebblestore"
	"github.com/sluicehq/sluice/observability"
)

// ChangelogTopic is the compacted topic that backs the state of a pipeline's
// stateful step: every write to the step's stores is produced to it, to the
// partition of the task that wrote it, inside that task's transaction.
func ChangelogTopic(pipelineName, step string) string {
	return pipelineName + "-" + step + "-changelog"
}

// RestoreStatus is where the restore of one store is, in Status.
type RestoreStatus struct {
	Step      string  `json:"step"`
	Partition int32   `json:"partition"`
	Restoring bool    `json:"restoring"`
	Done      int64   `json:"done"`  // changelog offsets restored
	Total     int64   `json:"total"` // changelog offsets to restore
	Rate      float64 `json:"rate"`  // offsets per second
	ETA       float64 `json:"eta_seconds"`
	// Standby marks a standby copy of a partition another runner holds
	// (`state.standbys`), caught up every few seconds.
	Standby bool `json:"standby,omitempty"`
}

// storeID names one store: a stateful step in one task (partition).
type storeID struct {
	step      string
	partition int32
}

// taskStore is one store of a task and where it is in the commit protocol.
type taskStore struct {
	id     storeID
	input  string // the topic of the step's stage: the task's partition is in it
	topic  string // the changelog
	base   state.Committer
	logged *state.Logged
	// epoch is the assignment of the task's partition the store was last
	// restored for; a store is restored again (from its checkpoint, which
	// is usually a no-op) whenever it does not match the current one.
	epoch uint64
	// next is the offset after the last changelog record produced for the
	// open transaction, -1 when none was.
	next int64
}

// stores is a stateful pipeline's state in this process: the stores of the
// tasks it holds, kept across attempts (a store never holds a write that is
// not committed, so it stays valid; it is caught up from its changelog
// whenever its partition is assigned again). Only the run's goroutine uses
// the stores; mu guards the restore progress shown in Status.
type stores struct {
	ru *run
	// steps lists the stateful steps of each stage, by the stage's input
	// topic.
	steps map[string][]string

	open map[storeID]*taskStore

	// lastSeen is when each task last had records, lastIdle when its
	// stream time was last moved on by idle.
	lastSeen, lastIdle map[topicPartition]time.Time

	// warm are the standby copies this runner keeps (standby.go), last
	// caught up at warmedAt.
	warm     map[storeID]*warmStore
	warmedAt time.Time

	mu           sync.Mutex
	progress     map[storeID]changelog.Progress
	warmProgress map[storeID]changelog.Progress
	// sizes are the open stores' sizes, measured by the run's goroutine
	// after a commit at most every sizeEvery (sizedAt).
	sizes   map[storeID]state.Size
	sizedAt time.Time
}

// sizeEvery is how often a pipeline measures its stores' sizes: a disk
// store's estimate reads its tables' properties.
const sizeEvery = 5 * time.Second

func newStores(ru *run) *stores {
	s := &stores{ru: ru, steps: map[string][]string{}, open: map[storeID]*taskStore{}, lastSeen: map[topicPartition]time.Time{}, lastIdle: map[topicPartition]time.Time{},
		progress: map[storeID]changelog.Progress{}, warm: map[storeID]*warmStore{}, warmProgress: map[storeID]changelog.Progress{},
		sizes: map[storeID]state.Size{}}
	for _, st := range ru.p.Plan.Stages {
		for _, step := range st.Steps {
			if step.Stateful {
				s.steps[st.Input] = append(s.steps[st.Input], step.Name)
			}
		}
	}
	if len(s.steps) == 0 {
		return nil
	}
	return s
}

// changelogs lists the changelog topics of plan's stateful steps.
func changelogs(plan *pipeline.Plan) []string {
	var out []string
	for _, st := range plan.Steps {
		if st.Stateful {
			out = append(out, ChangelogTopic(plan.Name, st.Name))
		}
	}
	return out
}

// factory is the StoreFactory of a stage: the store the run goroutine
// restored for the record's task before handing it to the stage.
func (s *stores) factory(input string) engine.StoreFactory {
	return func(step string, partition int32) (catalog.Store, error) {
		ts, ok := s.open[storeID{step, partition}]
		if !ok || ts.input != input {
			return nil, fmt.Errorf("the state of step %s, partition %d is not restored", step, partition)
		}
		return ts.logged, nil
	}
}

// prepare makes sure that every task f has records for has its stores open
// and restored for the current assignment of its partition, before any of
// its records is processed. Stores of partitions no longer assigned are
// closed first.
func (s *stores) prepare(ctx context.Context, ex *executor, f kgo.Fetches) error {
	s.dropRevoked(ex)
	var err error
	now := time.Now()
	f.EachPartition(func(p kgo.FetchTopicPartition) {
		if err != nil || len(p.Records) == 0 {
			return
		}
		input := p.Topic
		if in, ok := s.ru.tb.stream(p.Topic); ok {
			// A side input's records go to the task of the stream
			// partition with their number, which this runner must hold.
			input = in
			if s.ru.epoch(input, p.Partition) == 0 {
				err = fmt.Errorf("partition %d of side input %s is assigned here without partition %d of %s: the group's assignment is not co-partitioned (is a runner of another version in the group?)", p.Partition, p.Topic, p.Partition, input)
				return
			}
		} else if _, ok := s.steps[input]; ok {
			tp := topicPartition{input, p.Partition}
			s.lastSeen[tp] = now
			delete(s.lastIdle, tp)
		}
		for _, step := range s.steps[input] {
			if err = s.ensure(ctx, ex, input, step, p.Partition); err != nil {
				return
			}
		}
	})
	return err
}

// ensure opens the store of step in partition of input if needed, and
// restores it unless it was restored for the current assignment.
func (s *stores) ensure(ctx context.Context, ex *executor, input, step string, partition int32) error {
	id := storeID{step, partition}
	epoch := s.ru.epoch(input, partition)
	ts := s.open[id]
	if ts != nil && ts.epoch == epoch && epoch != 0 {
		return nil
	}
	// The stage's workers may be processing other tasks' records, or
	// this one's of the last assignment: they finish first.
	if err := ex.wait(); err != nil {
		return err
	}
	if ts == nil {
		// A standby copy kept here is adopted: only its tail is restored.
		base := s.adoptWarm(id)
		if base == nil {
			var err error
			if base, err = s.openBase(step, partition); err != nil {
				return fmt.Errorf("opening the state of step %s, partition %d: %w", step, partition, err)
			}
		}
		ts = &taskStore{id: id, input: input, topic: ChangelogTopic(s.ru.p.Plan.Name, step), base: base, logged: state.NewLogged(base, partition), next: -1}
		s.open[id] = ts
	}
	// A store restored again forgets any writes not committed (there are
	// none outside an aborted transaction), and the stage forgets the
	// task, whose stream time may come from records that are read again.
	ts.logged.Aborted()
	if st := ex.stage(input, partition); st != nil {
		st.DropTask(partition)
	}
	obs := s.ru.rt.restoreMetrics.Observer(s.ru.p.Plan.Name, step, partition)
	res, err := s.ru.rt.restorer.Restore(ctx, ts.topic, partition, ts.base.Checkpoint().Offset(partition), ts.base, func(p changelog.Progress) {
		obs(p)
		s.mu.Lock()
		s.progress[id] = p
		s.mu.Unlock()
	})
	if err != nil {
		// The store may hold part of a restore, each batch with its
		// checkpoint: still valid, and the next attempt resumes.
		if ctx.Err() != nil {
			return errStopping
		}
		return fmt.Errorf("restoring step %s, partition %d from %s: %w", step, partition, ts.topic, err)
	}
	ts.epoch = epoch
	if res.Total > 0 || res.Reset {
		s.ru.rt.cfg.logger.Info("state restored", "pipeline", s.ru.p.Plan.Name, "step", step, "partition", partition,
			"from", res.From, "to", res.End, "records", res.Applied, "reset", res.Reset, "took", res.Elapsed.Round(time.Millisecond))
	}
	return nil
}

// openBase opens the underlying store of the plan's kind.
func (s *stores) openBase(step string, partition int32) (state.Committer, error) {
	if s.ru.p.Plan.StateStore != pipeline.StoreDisk {
		return state.NewMemory(), nil
	}
	dir := filepath.Join(s.ru.rt.cfg.stateDir, s.ru.p.Plan.Name, step, strconv.Itoa(int(partition)))
	p, err := pebblestore.Open(dir, pebblestore.Logger(s.ru.rt.cfg.logger.With("pipeline", s.ru.p.Plan.Name, "step", step, "partition", partition)))
	if err != nil {
		return nil, err
	}
	if why := p.Wiped(); why != "" {
		s.ru.rt.cfg.logger.Info("local state not usable, restoring from the changelog's start", "pipeline", s.ru.p.Plan.Name, "step", step, "partition", partition, "reason", why)
	}
	return p, nil
}

// dropRevoked closes the stores of partitions this runner no longer holds
// and makes their stages forget the tasks.
func (s *stores) dropRevoked(ex *executor) {
	for id, ts := range s.open {
		if s.ru.epoch(ts.input, id.partition) != 0 {
			continue
		}
		// A worker may still be processing the task's records (they
		// are processed in vain: the transaction aborts); the store
		// and the task go once it is done. A failure among them is
		// the executor's to report.
		_ = ex.wait()
		if s.ru.p.Plan.Standbys > 0 {
			// Kept as a standby copy until keepWarm finds this runner is
			// not one of the partition's standbys, with committed writes
			// only: the open transaction, if any, aborts (a revocation
			// aborts it), so its writes, which a memory store holds
			// already, are rolled back.
			ts.logged.Aborted()
			s.warm[id] = &warmStore{input: ts.input, base: ts.base}
			delete(s.open, id)
			s.mu.Lock()
			delete(s.progress, id)
			delete(s.sizes, id)
			s.mu.Unlock()
		} else {
			s.close(ts)
		}
		if st := ex.stage(ts.input, ts.id.partition); st != nil {
			st.DropTask(id.partition)
		}
		tp := topicPartition{ts.input, id.partition}
		delete(s.lastSeen, tp)
		delete(s.lastIdle, tp)
	}
}

func (s *stores) close(ts *taskStore) {
	if err := ts.logged.Close(); err != nil {
		s.ru.rt.cfg.logger.Warn("closing a state store", "pipeline", s.ru.p.Plan.Name, "step", ts.id.step, "partition", ts.id.partition, "err", err)
	}
	delete(s.open, ts.id)
	s.mu.Lock()
	delete(s.progress, ts.id)
	delete(s.sizes, ts.id)
	s.mu.Unlock()
}

// closeAll closes every store, when the pipeline stops. Pebble flushes its
// memtable, so a clean stop restarts with nothing to replay.
func (s *stores) closeAll() {
	for _, ts := range s.open {
		s.close(ts)
	}
	for id, w := range s.warm {
		s.dropWarm(id, w)
	}
}

// flush has the stages write to the stores what their tasks hold back
// from them (engine.Stage.FlushState), so that drain finds every write
// of the batch.
func (s *stores) flush(ex *executor) error {
	for _, ts := range s.open {
		if st := ex.stage(ts.input, ts.id.partition); st != nil {
			if err := st.FlushState(ts.id.partition); err != nil {
				return err
			}
		}
	}
	return nil
}

// drain produces the changelog records of every store's writes since the
// last commit through produce, to the task's changelog partition, and
// waits until all are acknowledged, noting the offset after each store's
// last record. A failure is returned: the transaction must then abort.
//
// Each store's records are produced by one goroutine, in the order Drain
// gives them, and no two stores share a changelog partition, so each
// partition gets them in that order; the stores are drained by up to one
// goroutine per core at once. Handing a record to the client costs about
// as much as processing one, and a commit drains a record per key written
// since the last: done on one goroutine it kept the other cores idle for
// a third of a dedupe pipeline's time.
func (s *stores) drain(ctx context.Context, produce func(context.Context, *kgo.Record, func(*kgo.Record, error)), flush func(context.Context) error) error {
	var wg sync.WaitGroup // one per record produced, done by its promise
	var todo []*taskStore
	for _, ts := range s.open {
		ts.next = -1
		if ts.logged.Pending() > 0 {
			todo = append(todo, ts)
		}
	}
	// Each store's promises write only its own end, without a lock: a
	// mutex shared by every changelog record's promise was a tenth of a
	// dedupe pipeline's lock traffic with the client's goroutines. A
	// store's records go to one partition, whose promises the client calls
	// in order, but one that fails before it is buffered calls its promise
	// at once, on another goroutine: hence atomics.
	ends := make([]drainEnd, len(todo))
	drainOne := func(i int, ts *taskStore) {
		end := &ends[i]
		end.next.Store(-1)
		promise := func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				end.err.CompareAndSwap(nil, &err)
				return
			}
			for next := r.Offset + 1; ; {
				cur := end.next.Load()
				if cur >= next || end.next.CompareAndSwap(cur, next) {
					break
				}
			}
		}
		changes := ts.logged.Drain()
		// One allocation for the store's records rather than one each;
		// the client holds them until their promises, which wg awaits.
		recs := make([]kgo.Record, len(changes))
		wg.Add(len(changes))
		// The client stamps a record without a timestamp with the time
		// of its Produce: a clock read per changelog record, 0.08 s of a
		// dedupe pipeline's 0.25 s of draining. One read per store gives
		// the same times, to the drain's few milliseconds.
		now := time.Now()
		for i, c := range changes {
			r := &recs[i]
			r.Topic, r.Partition, r.Key, r.Value, r.Timestamp = ts.topic, ts.id.partition, c.Key, c.Value, now
			produce(ctx, r, promise)
		}
	}
	eachStore(todo, drainOne)
	ferr := flush(ctx)
	wg.Wait()
	var firstErr error
	for i, ts := range todo {
		if err := ends[i].err.Load(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("producing to %s: %w", ts.topic, *err)
		}
		ts.next = ends[i].next.Load()
	}
	return errors.Join(firstErr, ferr)
}

// drainEnd is what the promises of one store's changelog records found:
// the offset after the last one, and the first error.
type drainEnd struct {
	next atomic.Int64
	err  atomic.Pointer[error]
}

// ended finishes the commit protocol of every store: a committed
// transaction applies the drained writes with the checkpoint after them; an
// aborted or failed one discards every write since the last commit, and the
// stores are restored again before their next record (a failed End may
// have committed, which the restore finds out), while the stages forget
// their tasks' stream time, which came from records that are read again.
func (s *stores) ended(ex *executor, committed bool) error {
	var errs []error
	if committed {
		// Applying a commit interval's writes costs about as much as
		// draining them: the stores apply theirs at the same time.
		var todo []*taskStore
		for _, ts := range s.open {
			if ts.next >= 0 {
				todo = append(todo, ts)
			} else {
				ts.logged.Aborted() // nothing drained (a no-op)
			}
		}
		failed := make([]error, len(todo))
		eachStore(todo, func(i int, ts *taskStore) { failed[i] = ts.logged.Committed(ts.next) })
		for i, ts := range todo {
			ts.next = -1
			if err := failed[i]; err != nil {
				// The transaction committed, the store is behind: close
				// it, and the next record restores it from its checkpoint.
				errs = append(errs, fmt.Errorf("applying committed state of step %s, partition %d: %w", ts.id.step, ts.id.partition, err))
				s.close(ts)
				if st := ex.stage(ts.input, ts.id.partition); st != nil {
					st.DropTask(ts.id.partition)
				}
			}
		}
		s.measure(time.Now())
		return errors.Join(errs...)
	}
	for _, ts := range s.open {
		ts.logged.Aborted()
		ts.next, ts.epoch = -1, 0
		if st := ex.stage(ts.input, ts.id.partition); st != nil {
			st.DropTask(ts.id.partition)
		}
	}
	return nil
}

// eachStore calls f for every store of todo (i its position), on up to one
// goroutine per core, and returns when all calls have.
func eachStore(todo []*taskStore, f func(i int, ts *taskStore)) {
	n := min(len(todo), goruntime.GOMAXPROCS(0))
	if n <= 1 {
		for i, ts := range todo {
			f(i, ts)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(todo)); i = next.Add(1) - 1 {
				f(int(i), todo[i])
			}
		})
	}
	wg.Wait()
}

// measure notes the open stores' sizes for Status, at most every
// sizeEvery. It runs on the run's goroutine, the only one that uses the
// stores.
func (s *stores) measure(now time.Time) {
	if now.Sub(s.sizedAt) < sizeEvery {
		return
	}
	s.sizedAt = now
	sizes := make(map[storeID]state.Size, len(s.open))
	for id, ts := range s.open {
		if sz, ok := ts.base.(state.Sizer); ok {
			sizes[id] = sz.Size()
		}
	}
	s.mu.Lock()
	s.sizes = sizes
	s.mu.Unlock()
}

// storeSizes reports the open stores' last measured sizes, for Status.
func (s *stores) storeSizes() []observability.StoreSize {
	kind := "memory"
	if s.ru.p.Plan.StateStore == pipeline.StoreDisk {
		kind = "disk"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]observability.StoreSize, 0, len(s.sizes))
	for id, sz := range s.sizes {
		out = append(out, observability.StoreSize{Step: id.step, Partition: id.partition, Kind: kind, Keys: sz.Keys, Bytes: sz.Bytes, Estimated: sz.Estimated})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Step != out[j].Step {
			return out[i].Step < out[j].Step
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// restores reports the progress of the stores' last restores, for Status.
func (s *stores) restores() []RestoreStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RestoreStatus, 0, len(s.progress)+len(s.warmProgress))
	for id, p := range s.progress {
		out = append(out, RestoreStatus{Step: id.step, Partition: id.partition, Restoring: !p.Finished, Done: p.Done, Total: p.Total, Rate: p.Rate, ETA: p.ETA.Seconds()})
	}
	for id, p := range s.warmProgress {
		out = append(out, RestoreStatus{Step: id.step, Partition: id.partition, Restoring: !p.Finished, Done: p.Done, Total: p.Total, Rate: p.Rate, ETA: p.ETA.Seconds(), Standby: true})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Step != out[j].Step {
			return out[i].Step < out[j].Step
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// idle moves on the stream time of tasks that have had no record for the
// idle timeout by the processing time that passed, so that windows of a
// quiet partition close. begin is called once before the first task is
// advanced (to open a transaction for what that emits and writes). It
// returns whether any task was advanced.
func (s *stores) idle(ctx context.Context, ex *executor, now time.Time, begin func() error) (bool, error) {
	timeout := s.ru.rt.cfg.idleTimeout
	advanced := false
	for input := range s.steps {
		for _, st := range ex.stages(input) {
			if st == nil {
				continue
			}
			a, err := s.idleStage(ctx, st, input, now, timeout, advanced, begin, ex.wait)
			advanced = advanced || a
			if err != nil {
				return advanced, err
			}
		}
	}
	return advanced, nil
}

// idleStage is idle for the tasks of one stage (of one lane); began says
// whether begin was called already. A task's stream time is read, and the
// task moved on, only after wait: a worker may be processing the stage's
// records (executor.dispatch). Once the workers are done, wait returns at
// once, so calling it per idle task costs nothing more.
func (s *stores) idleStage(ctx context.Context, st *engine.Stage, input string, now time.Time, timeout time.Duration, began bool, begin, wait func() error) (bool, error) {
	advanced := false
	for _, p := range st.Partitions() {
		if !s.current(input, p) {
			// Revoked, or not restored for this assignment yet: its
			// state is not this runner's to write.
			continue
		}
		tp := topicPartition{input, p}
		last, ok := s.lastSeen[tp]
		if !ok {
			s.lastSeen[tp] = now
			continue
		}
		if now.Sub(last) < timeout {
			continue
		}
		if err := wait(); err != nil {
			return advanced, err
		}
		t, ok := st.StreamTime(p)
		if !ok || t.IsZero() {
			continue
		}
		from := last
		if li := s.lastIdle[tp]; li.After(from) {
			from = li
		}
		if !began && !advanced {
			if err := begin(); err != nil {
				return false, err
			}
		}
		advanced = true
		if err := st.Advance(ctx, p, t.Add(now.Sub(from))); err != nil {
			return advanced, err
		}
		s.lastIdle[tp] = now
	}
	return advanced, nil
}

// wake restores the stores of assigned partitions that have no task yet
// and opens their tasks, with the stream time their steps stored, so that
// idle time moves on a partition that has had no record since it was
// assigned (after a restart, say) and closes its windows. It runs between
// transactions, when a poll brought nothing.
func (s *stores) wake(ctx context.Context, ex *executor) error {
	now := time.Now()
	for input, steps := range s.steps {
		for _, p := range s.ru.assigned(input) {
			st := ex.stage(input, p)
			if st == nil {
				continue
			}
			if _, open := st.StreamTime(p); open && s.current(input, p) {
				continue
			}
			for _, step := range steps {
				if err := s.ensure(ctx, ex, input, step, p); err != nil {
					return err
				}
			}
			if err := st.Resume(p); err != nil {
				return err
			}
			if tp := (topicPartition{input, p}); s.lastSeen[tp].IsZero() {
				s.lastSeen[tp] = now
			}
		}
	}
	return nil
}

// current reports whether this runner holds partition of input and has
// restored its stores for the current assignment.
func (s *stores) current(input string, partition int32) bool {
	epoch := s.ru.epoch(input, partition)
	if epoch == 0 {
		return false
	}
	for _, step := range s.steps[input] {
		if ts := s.open[storeID{step, partition}]; ts == nil || ts.epoch != epoch {
			return false
		}
	}
	return true
}

// resetState empties a step's state for a revision that starts it from
// empty: the changelog is truncated to its end (DeleteRecords), and this
// runner's local stores of the step are removed. A restore then finds
// nothing to read, and a store elsewhere whose checkpoint is before the new
// start of the changelog is wiped by the Restorer.
func (rt *Runtime) resetState(ctx context.Context, pipelineName, step string) error {
	topic := ChangelogTopic(pipelineName, step)
	ends, err := rt.admin.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("resetting the state of step %s: %w", step, err)
	}
	offs := kadm.Offsets{}
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		case o.Err != nil:
			errs = append(errs, o.Err)
		case o.Offset > 0:
			offs.Add(kadm.Offset{Topic: topic, Partition: o.Partition, At: o.Offset})
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("resetting the state of step %s: %w", step, errors.Join(errs...))
	}
	if len(offs) > 0 {
		resp, err := rt.admin.DeleteRecords(ctx, offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("resetting the state of step %s: truncating %s: %w", step, topic, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(rt.cfg.stateDir, pipelineName, step)); err != nil {
		return fmt.Errorf("resetting the state of step %s: %w", step, err)
	}
	return nil
}

// topicPartition is a task's partition of its stage's input.
type topicPartition struct {
	topic     string
	partition int32
}

// changelogPartitioner sends changelog records to the partition set on
// them (the task's) and every other record where the client's default
// partitioner would.
type changelogPartitioner struct {
	changelogs map[string]bool
	def        kgo.Partitioner
}

func newChangelogPartitioner(plan *pipeline.Plan) kgo.Partitioner {
	p := changelogPartitioner{changelogs: map[string]bool{}, def: kgo.UniformBytesPartitioner(64<<10, true, true, nil)}
	for _, t := range changelogs(plan) {
		p.changelogs[t] = true
	}
	return p
}

func (p changelogPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if p.changelogs[topic] {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return p.def.ForTopic(topic)
}
