package runtime

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/record"
)

const (
	// minParallel is the smallest poll that is split over workers; smaller
	// ones are processed on the run's goroutine.
	minParallel = 64
	// chunkMin and chunkMax bound how many consecutive records a worker
	// takes at a time.
	chunkMin, chunkMax = 16, 512
	// maxWorkers bounds the workers of one pipeline.
	maxWorkers = 8
)

// executor runs polled records through a pipeline's stages for one
// attempt, with one worker per core (started for a poll) when there is
// more than one.
//
// A stateless pipeline processes small polls on the run's goroutine,
// record by record. A larger poll is cut into chunks of consecutive
// records that the workers process at the same time into buffers, while
// the run's goroutine hands the outputs to the producer chunk by chunk, in
// input order: the producer sees exactly the sequence a record-by-record
// pass would have produced, only sooner. Operators are safe for concurrent
// use by contract (catalog.Operator).
//
// A stateful pipeline needs each task's records in order, in one place:
// records of partition p (of every topic: a stage's input and side inputs
// share task numbers) always go to worker p mod n, whose stages hold the
// task's stream time and use its stores, and which emits straight to the
// producer. Partitions are independent, so the workers need no ordering
// between them; within a partition, one worker processes and produces in
// input order. The run's goroutine hands each worker its records of a poll
// and polls on while they are processed (dispatch), since a poll often
// holds a single partition: waiting for it left the other cores, and the
// next fetch, idle. A worker has at most two polls' records in flight, and
// the run waits for all of them (wait) before it ends a batch, restores or
// drops a task, or moves on idle ones.
type executor struct {
	ru      *run
	work    context.Context
	emit    engine.Emit // hands an output to the producer
	serialL lane        // stages that emit directly; for the serial path
	workers []*worker   // nil: serial only
	// byPartition: a stateful pipeline's records go to the worker of
	// their partition (see executor), never to serialL.
	byPartition bool

	recs   []*kgo.Record
	chunks []chunk

	// byPartition: the dispatched batches not processed yet, the first
	// failure of one, and the time per record of the last one finished
	// (ns; 0 once taken).
	inflight  sync.WaitGroup
	failure   atomic.Pointer[error]
	perRecord atomic.Int64
}

// worker is one worker's own lane, whose stages emit into the chunk it is
// on.
type worker struct {
	lane
	cur *chunk

	// byPartition: the worker's batches in flight, oldest first, each
	// with its records and a channel closed when it is processed; a
	// finished batch's buffer holds the next one.
	batches [2]batch
}

// batch is a worker's records of one poll (byPartition).
type batch struct {
	recs []*kgo.Record
	done chan struct{}
}

// lane is what one goroutine processes records with: its stages, a cache
// of the last input topic's stage and counter, counts not yet added to the
// shared counters, and its state for the watchdog.
type lane struct {
	stages map[string]*engine.Stage

	topic   string
	stage   *engine.Stage
	counter prometheus.Counter
	counted int // records of topic not yet added to counter
	total   int // records not yet added to run.processed

	// state is seq<<1 | busy: seq counts the records that entered the
	// chain, busy is set while one is in it. The watchdog reads it to
	// tell a record that stays in the chain from a lane that moves on,
	// without taking the time for every record.
	state atomic.Uint64
	// rec and cur are the record in the chain and its stage, for the
	// watchdog to name a stuck record and its step.
	rec atomic.Pointer[kgo.Record]
	cur atomic.Pointer[engine.Stage]
}

// chunk is a run of consecutive polled records and the outputs of
// processing them.
type chunk struct {
	recs []*kgo.Record
	out  []engine.Message
	err  error
	done chan struct{}
}

func (ru *run) newExecutor(work context.Context, emit engine.Emit) (*executor, error) {
	ex := &executor{ru: ru, work: work, emit: emit}
	var err error
	if ex.serialL.stages, err = ru.newStages(emit); err != nil {
		return nil, err
	}
	n := min(goruntime.GOMAXPROCS(0), maxWorkers)
	if n < 2 {
		return ex, nil
	}
	ex.byPartition = ru.st != nil
	for range n {
		w := &worker{}
		out := w.collect
		if ex.byPartition {
			out = emit
		}
		if w.lane.stages, err = ru.newStages(out); err != nil {
			return nil, err
		}
		ex.workers = append(ex.workers, w)
	}
	return ex, nil
}

// stage returns the stage of input that holds the task of partition.
func (ex *executor) stage(input string, partition int32) *engine.Stage {
	if ex.byPartition {
		return ex.workers[int(partition)%len(ex.workers)].stages[input]
	}
	return ex.serialL.stages[input]
}

// stages returns input's stage in every lane that processes tasks.
func (ex *executor) stages(input string) []*engine.Stage {
	if !ex.byPartition {
		return []*engine.Stage{ex.serialL.stages[input]}
	}
	out := make([]*engine.Stage, 0, len(ex.workers))
	for _, w := range ex.workers {
		out = append(out, w.stages[input])
	}
	return out
}

func (ru *run) newStages(emit engine.Emit) (map[string]*engine.Stage, error) {
	stages := map[string]*engine.Stage{}
	for i, st := range ru.p.Plan.Stages {
		opts := []engine.StageOption{engine.WithRevision(ru.p.Revision)}
		if ru.st != nil {
			opts = append(opts, engine.WithStores(ru.st.factory(st.Input)))
		}
		s, err := engine.NewStage(ru.p.Plan, i, emit, opts...)
		if err != nil {
			return nil, err
		}
		stages[st.Input] = s
		for _, t := range st.Tables {
			stages[t] = s // its side inputs go through the same stage
		}
	}
	return stages, nil
}

// collect is a worker stage's Emit: it keeps the output for the run's
// goroutine to produce. Like the producer's Emit, it fails once the work
// context is cancelled.
func (w *worker) collect(ctx context.Context, m engine.Message) error {
	w.cur.out = append(w.cur.out, m)
	return ctx.Err()
}

// lanes returns every lane, for the watchdog.
func (ex *executor) lanes() []*lane {
	ls := []*lane{&ex.serialL}
	for _, w := range ex.workers {
		ls = append(ls, &w.lane)
	}
	return ls
}

// process runs one consumed record through its stage. A panic is caught and
// becomes the pipeline's failure.
func (ex *executor) process(l *lane, r *kgo.Record) (err error) {
	if r.Topic != l.topic {
		l.flush(ex.ru)
		st, ok := l.stages[r.Topic]
		if !ok {
			return fmt.Errorf("record from unexpected topic %s", r.Topic)
		}
		l.topic, l.stage, l.counter = r.Topic, st, ex.ru.inCounters[r.Topic]
		l.cur.Store(st)
	}
	l.rec.Store(r)
	seq := l.state.Load()>>1 + 1
	l.state.Store(seq<<1 | 1)
	defer func() {
		l.state.Store(seq << 1)
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	m := engine.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	if len(r.Headers) > 0 {
		m.Headers = make([]record.Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = record.Header{Key: h.Key, Value: h.Value}
		}
	}
	l.counted++
	l.total++
	if err := l.stage.Process(ex.work, m); err != nil {
		return err
	}
	return ex.work.Err()
}

// flush adds the lane's counts to the run's counters.
func (l *lane) flush(ru *run) {
	if l.counted > 0 {
		l.counter.Add(float64(l.counted))
		l.counted = 0
	}
	if l.total > 0 {
		ru.processed.Add(uint64(l.total))
		l.total = 0
	}
}

// processFetches processes every record of f, stopping at the first error;
// see executor.
func (ex *executor) processFetches(f kgo.Fetches) error {
	ru := ex.ru
	if ex.byPartition {
		err := ex.dispatch(f)
		// Until a batch has finished, ru.perRecord stays unknown and
		// the run polls one record at a time (run.batch).
		if d := time.Duration(ex.perRecord.Swap(0)); d > 0 {
			ru.timed(d)
		}
		return err
	}
	start := time.Now()
	ex.recs = ex.recs[:0]
	f.EachRecord(func(r *kgo.Record) { ex.recs = append(ex.recs, r) })
	recs := ex.recs
	defer clear(ex.recs) // do not keep the records alive until the next poll
	var n int
	var err error
	if len(ex.workers) == 0 || len(recs) < minParallel {
		n, err = ex.serial(recs)
		ex.serialL.flush(ru)
	} else {
		n, err = ex.parallel(recs)
	}
	if n > 0 {
		ru.timed(time.Since(start) / time.Duration(n))
	}
	return err
}

// timed takes in how long a record took to process: a slowdown at once,
// a speed-up gradually.
func (ru *run) timed(d time.Duration) {
	if d > ru.perRecord {
		ru.perRecord = d
	} else {
		ru.perRecord = (ru.perRecord + d) / 2
	}
}

// serial processes recs one by one on the run's goroutine.
func (ex *executor) serial(recs []*kgo.Record) (n int, err error) {
	for _, r := range recs {
		if ex.ru.ctx.Err() != nil {
			return n, errStopping
		}
		n++
		if err := ex.process(&ex.serialL, r); err != nil {
			return n, err
		}
	}
	return n, nil
}

// dispatch hands f's records to the workers of their partitions and
// returns without waiting for them, unless a worker still has two batches
// in flight: then it waits for the older. It returns the first failure of
// a batch dispatched before, if any; once one failed, the workers skip
// the rest.
func (ex *executor) dispatch(f kgo.Fetches) error {
	if err := ex.failed(); err != nil {
		return err
	}
	nw := len(ex.workers)
	var busy uint64 // bit i: worker i has records in f (maxWorkers <= 64)
	f.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			busy |= 1 << (int(p.Partition) % nw)
		}
	})
	for i, w := range ex.workers {
		if busy&(1<<i) == 0 {
			continue
		}
		// The oldest batch's buffer takes this poll's records.
		old := &w.batches[0]
		if old.done != nil {
			<-old.done
		}
		recs := old.recs[:0]
		f.EachPartition(func(p kgo.FetchTopicPartition) {
			if int(p.Partition)%nw == i {
				recs = append(recs, p.Records...)
			}
		})
		prev := w.batches[1].done
		done := make(chan struct{})
		w.batches[0], w.batches[1] = w.batches[1], batch{recs: recs, done: done}
		ex.inflight.Add(1)
		go ex.runBatch(w, recs, prev, done)
	}
	return nil
}

// runBatch processes recs on w once w's batch before (prev) is done.
func (ex *executor) runBatch(w *worker, recs []*kgo.Record, prev <-chan struct{}, done chan<- struct{}) {
	defer ex.inflight.Done()
	defer close(done)
	defer clear(recs) // do not keep the records alive until the next poll
	if prev != nil {
		<-prev
	}
	defer w.flush(ex.ru)
	start := time.Now()
	for _, r := range recs {
		if ex.ru.ctx.Err() != nil {
			ex.fail(errStopping)
			return
		}
		if ex.failure.Load() != nil {
			return
		}
		if err := ex.process(&w.lane, r); err != nil {
			ex.fail(err)
			return
		}
	}
	ex.perRecord.Store(int64(time.Since(start) / time.Duration(len(recs))))
}

// fail keeps the first failure of a batch.
func (ex *executor) fail(err error) { ex.failure.CompareAndSwap(nil, &err) }

// failed returns the first failure of a batch, if any.
func (ex *executor) failed() error {
	if p := ex.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// wait waits until every dispatched batch is processed, or given up after
// a failure, and returns the first failure. Without workers in byPartition
// mode it returns at once.
func (ex *executor) wait() error {
	ex.inflight.Wait()
	return ex.failed()
}

// errSkipped marks a chunk (parallel) that a worker did not process
// because another had failed.
var errSkipped = errors.New("skipped after a failure")

// parallel processes recs in chunks on the workers and emits their outputs
// in order. From the first chunk that failed or was skipped on, nothing is
// emitted; the workers finish the chunks they are on and skip the rest. The
// error is the first failure in input order.
func (ex *executor) parallel(recs []*kgo.Record) (n int, err error) {
	size := min(max(len(recs)/(len(ex.workers)*8), chunkMin), chunkMax)
	count := (len(recs) + size - 1) / size
	if cap(ex.chunks) < count {
		ex.chunks = make([]chunk, count)
	}
	chunks := ex.chunks[:count]
	for i := range chunks {
		c := &chunks[i]
		c.recs = recs[i*size : min((i+1)*size, len(recs))]
		c.out = c.out[:0]
		c.err = nil
		c.done = make(chan struct{})
	}
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for _, w := range ex.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(chunks) {
					return
				}
				c := &chunks[i]
				if failed.Load() {
					c.err = errSkipped
				} else {
					w.cur = c
					c.err = ex.runChunk(w, c)
					w.cur = nil
					if c.err != nil {
						failed.Store(true)
					}
				}
				close(c.done)
			}
		}()
	}
	emitting := true // until a chunk failed or was skipped
	for i := range chunks {
		c := &chunks[i]
		<-c.done
		if c.err == errSkipped {
			emitting = false
			continue
		}
		if err == nil {
			err = c.err
		}
		if c.err != nil {
			emitting = false
		}
		if emitting {
			n += len(c.recs)
			for j := range c.out {
				if err = ex.emit(ex.work, c.out[j]); err != nil {
					emitting = false
					break
				}
			}
		}
		clear(c.out) // the producer owns the outputs now
	}
	wg.Wait()
	return n, err
}

// runChunk processes one chunk's records in order on worker w.
func (ex *executor) runChunk(w *worker, c *chunk) error {
	defer w.flush(ex.ru)
	for _, r := range c.recs {
		if ex.ru.ctx.Err() != nil {
			return errStopping
		}
		if err := ex.process(&w.lane, r); err != nil {
			return err
		}
	}
	return nil
}
