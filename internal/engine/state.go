package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/state"
)

// StoreFactory opens the store of a stateful step for one input partition
// (task) of a stage. The runtime's factory returns changelogged stores;
// the default keeps state in memory, which is what tests need.
type StoreFactory func(step string, partition int32) (catalog.Store, error)

// WithStores sets how stateful steps get their stores.
func WithStores(f StoreFactory) StageOption { return func(s *Stage) { s.stores = f } }

func memoryStores(string, int32) (catalog.Store, error) { return state.NewMemory(), nil }

// task is one input partition of a stage: its stateful steps' views of
// it (their stores) and its stream time. Records of one partition are
// processed in order by one goroutine, so a task needs no lock of its own.
type task struct {
	partition  int32
	steps      []*stepTask // by the step's link's slot
	streamTime time.Time
	// ctx is parent with the task as a value (taskOf), kept while
	// records come with the same parent, so that processing one
	// allocates no context.
	parent, ctx context.Context
}

// context returns ctx carrying t. The contexts the runtime processes
// records in are pointers, compared cheaply.
func (t *task) context(ctx context.Context) context.Context {
	if t.ctx == nil || t.parent != ctx {
		t.parent, t.ctx = ctx, context.WithValue(ctx, taskKey{}, t)
	}
	return t.ctx
}

// step returns the task as l's step sees it.
func (t *task) step(l *link) *stepTask { return t.steps[l.slot] }

// stepTask is a task as one stateful step sees it: its own store, and
// what the step keeps with it (catalog.TaskCache).
type stepTask struct {
	t      *task
	store  catalog.Store
	cached any
}

func (st *stepTask) Store() catalog.Store  { return st.store }
func (st *stepTask) StreamTime() time.Time { return st.t.streamTime }
func (st *stepTask) Cached() any           { return st.cached }
func (st *stepTask) SetCached(v any)       { st.cached = v }

type taskKey struct{}

// taskOf returns the task that the record being processed belongs to.
func taskOf(ctx context.Context) *task {
	t, _ := ctx.Value(taskKey{}).(*task)
	return t
}

// stateful reports whether the stage has a stateful step.
func (s *Stage) stateful() bool { return len(s.statefulLinks) > 0 }

// task returns partition's task, opening its stores on first use.
func (s *Stage) task(partition int32) (*task, error) {
	if t := s.openTask(partition); t != nil {
		return t, nil
	}
	s.tasksMu.Lock()
	defer s.tasksMu.Unlock()
	if t := s.openTask(partition); t != nil {
		return t, nil
	}
	t := &task{partition: partition, steps: make([]*stepTask, len(s.statefulLinks))}
	for i, l := range s.statefulLinks {
		st, err := s.stores(l.step.Name, partition)
		if err != nil {
			return nil, fmt.Errorf("open the state of step %s, partition %d: %w", l.step.Name, partition, err)
		}
		t.steps[i] = &stepTask{t: t, store: st}
	}
	// Stream time goes on from where the task's steps last left it.
	for _, l := range s.statefulLinks {
		rec, ok := l.step.Operator.(catalog.StreamTimeRecorder)
		if !ok {
			continue
		}
		at, ok, err := rec.StoredStreamTime(t.step(l))
		if err != nil {
			return nil, fmt.Errorf("read the stream time of step %s, partition %d: %w", l.step.Name, partition, err)
		}
		if ok && at.After(t.streamTime) {
			t.streamTime = at
		}
	}
	s.setTasks(func(m map[int32]*task) { m[partition] = t })
	return t, nil
}

// openTask returns partition's task, or nil when it has none open.
func (s *Stage) openTask(partition int32) *task {
	if m := s.tasks.Load(); m != nil {
		return (*m)[partition]
	}
	return nil
}

// setTasks replaces the tasks with a copy that change has changed. The
// caller holds tasksMu.
func (s *Stage) setTasks(change func(map[int32]*task)) {
	m := map[int32]*task{}
	if old := s.tasks.Load(); old != nil {
		maps.Copy(m, *old)
	}
	change(m)
	s.tasks.Store(&m)
}

// Resume opens partition's task if it is not open, with its stream time
// where its steps last left it, so that idle time can move it on before
// its next record.
func (s *Stage) Resume(partition int32) error {
	if !s.stateful() {
		return nil
	}
	_, err := s.task(partition)
	return err
}

// Partitions lists the partitions the stage has tasks for, in order.
func (s *Stage) Partitions() []int32 {
	out := []int32{}
	if m := s.tasks.Load(); m != nil {
		for p := range *m {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// processState runs a stateful step for the record's task.
func (l *link) processState(ctx context.Context, op catalog.StatefulOperator, r *record.Record) error {
	t := taskOf(ctx)
	if t == nil {
		return errors.New("a stateful step ran outside a task")
	}
	return op.ProcessTask(ctx, t.step(l), r, l.next)
}

// Advance moves partition's stream time to at least to and lets every
// stateful step act on it (close windows, expire horizons), in step order.
// Records emitted on the way that fail in a later step go to the DLQ one
// by one (their input is long committed); Advance returns an error only
// when emitting fails. catalog.EndOfTime closes everything.
func (s *Stage) Advance(ctx context.Context, partition int32, to time.Time) error {
	if !s.stateful() {
		return nil
	}
	t, err := s.task(partition)
	if err != nil {
		return err
	}
	if to.After(t.streamTime) {
		t.streamTime = to
	}
	ctx = context.WithValue(ctx, taskKey{}, t)
	for _, l := range s.statefulLinks {
		op := l.step.Operator.(catalog.StatefulOperator)
		var out catalog.Output = &deadLettering{s: s, partition: partition, next: l.next}
		if enc, ok := l.next.(catalog.EncodedOutput); ok {
			out = &encodedDeadLettering{deadLettering{s: s, partition: partition, next: l.next}, enc}
		}
		if err := op.OnWatermark(ctx, t.step(l), out); err != nil {
			var emitErr *EmitError
			if errors.As(err, &emitErr) {
				return emitErr.Err
			}
			return fmt.Errorf("step %s: %w", l.step.Name, err)
		}
	}
	return nil
}

// AdvanceBy moves the stream time of every task of the stage on by d, as
// processing time passing while no records arrive (the driver's
// `advance:`; the runtime's idle partitions).
func (s *Stage) AdvanceBy(ctx context.Context, d time.Duration) error {
	for _, p := range s.Partitions() {
		t, err := s.task(p)
		if err != nil {
			return err
		}
		if t.streamTime.IsZero() {
			continue // no event time yet: nothing to move on from
		}
		if err := s.Advance(ctx, p, t.streamTime.Add(d)); err != nil {
			return err
		}
	}
	return nil
}

// deadLettering passes what a stateful step emits on a watermark to the
// rest of the chain; a record that fails there goes to the DLQ as JSON
// (there is no input message to keep), and the others go on.
type deadLettering struct {
	s         *Stage
	partition int32
	next      catalog.Output
}

func (d *deadLettering) Next(ctx context.Context, r *record.Record) error {
	return d.handle(ctx, r, d.next.Next(ctx, r))
}

func (d *deadLettering) To(ctx context.Context, topic string, r *record.Record) error {
	return d.handle(ctx, r, d.next.To(ctx, topic, r))
}

func (d *deadLettering) handle(ctx context.Context, r *record.Record, err error) error {
	if err == nil {
		return nil
	}
	val, encErr := record.EncodeJSON(record.Plain(r.Value))
	if encErr != nil {
		val = []byte(fmt.Sprint(r.Value))
	}
	return d.handleValue(ctx, r, val, err)
}

// handleValue is handle for a record whose value is encoded as val.
func (d *deadLettering) handleValue(ctx context.Context, r *record.Record, val []byte, err error) error {
	var emitErr *EmitError
	if err == nil || errors.As(err, &emitErr) {
		return err
	}
	key, _ := r.EncodedKey()
	// The source header names the task; offset -1 says no input record.
	m := Message{Topic: d.s.stage.Input, Key: key, Value: val, Timestamp: r.Timestamp, Partition: d.partition, Offset: -1}
	if e := d.s.emit(ctx, d.s.DeadLetter(m, err)); e != nil {
		return &EmitError{Err: e}
	}
	return nil
}

// encodedDeadLettering is deadLettering for the last step, which may hand
// over encoded values (catalog.EncodedOutput).
type encodedDeadLettering struct {
	deadLettering
	enc catalog.EncodedOutput
}

func (d *encodedDeadLettering) NextEncoded(ctx context.Context, r *record.Record, value []byte) error {
	return d.handleValue(ctx, r, value, d.enc.NextEncoded(ctx, r, value))
}

// FlushState writes what the stateful steps of partition's task hold back
// from their stores (catalog.StateFlusher), before a commit drains the
// stores to their changelogs. A stage without the task has nothing to
// write.
func (s *Stage) FlushState(partition int32) error {
	t := s.openTask(partition)
	if t == nil {
		return nil
	}
	for i, st := range t.steps {
		f, ok := st.cached.(catalog.StateFlusher)
		if !ok {
			continue
		}
		if err := f.FlushState(); err != nil {
			return fmt.Errorf("step %s, partition %d: writing its state: %w", s.statefulLinks[i].step.Name, partition, err)
		}
	}
	return nil
}

// Stateful reports whether the stage has a stateful step, so that its
// runner knows it must keep and restore state.
func (s *Stage) Stateful() bool { return s.stateful() }

// StatefulSteps names the stage's stateful steps in step order.
func (s *Stage) StatefulSteps() []string {
	out := make([]string, len(s.statefulLinks))
	for i, l := range s.statefulLinks {
		out[i] = l.step.Name
	}
	return out
}

// StreamTime returns partition's stream time, and false when the stage has
// no task for it.
func (s *Stage) StreamTime(partition int32) (time.Time, bool) {
	t := s.openTask(partition)
	if t == nil {
		return time.Time{}, false
	}
	return t.streamTime, true
}

// DropTask forgets partition's task (its stores and stream time) when the
// partition moves away; it does not close the stores, which belong to
// whoever the StoreFactory got them from. The next record or Advance for
// the partition opens it again through the StoreFactory.
func (s *Stage) DropTask(partition int32) {
	s.tasksMu.Lock()
	defer s.tasksMu.Unlock()
	if s.openTask(partition) != nil {
		s.setTasks(func(m map[int32]*task) { delete(m, partition) })
	}
}
