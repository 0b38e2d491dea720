package catalog

import (
	"context"
	"math"
	"time"

	"github.com/sluicehq/sluice/internal/record"
)

// Store is one stateful step's state in one task: byte keys in order, byte
// values. The runtime backs it with memory or disk and records every write
// in the step's changelog topic inside the task's transaction, so a restored
// store equals the store as of the last committed input.
type Store interface {
	// Get does not keep key, so a caller may reuse its buffer.
	Get(key []byte) (value []byte, ok bool, err error)
	Put(key, value []byte) error
	Delete(key []byte) error
	// Scan calls fn for each key in [lo, hi) in key order (nil hi: to the
	// end). fn must not write to the store; collect keys and write after.
	Scan(lo, hi []byte, fn func(key, value []byte) error) error
}

// Task is what a stateful operator sees of the task (input partition) that
// runs it.
type Task interface {
	// Store is this step's store in this task.
	Store() Store
	// StreamTime is the task's event-time clock, as in Kafka Streams: the
	// largest event time its inputs have shown (the least of them when a
	// task reads several partitions, skipping idle ones), moved on by
	// processing time while every input is idle. A window closes when its
	// end plus its grace is at or before StreamTime; a record for a closed
	// window is late.
	StreamTime() time.Time
}

// TaskCache is implemented by the Tasks the engine hands to stateful
// operators: one value a step may keep with its task between calls, such
// as a model read from the task's store, so that it need not be read
// again for every record. The value is forgotten with the task, which the
// runtime drops whenever the store changes other than through the step
// (a restore, an aborted transaction), so a value that follows the step's
// own writes stays true. A step whose writes may have stopped halfway (an
// error that is not a rejection) must forget it (SetCached(nil)).
type TaskCache interface {
	Cached() any
	SetCached(v any)
}

// StateFlusher is implemented by a value kept with a task (TaskCache)
// that holds writes back from the task's store between records, such as
// decoded window accumulators that many records update between two
// commits. The runtime calls FlushState before every commit, so that the
// store, and so its changelog, has them; a value whose writes are lost
// (an aborted transaction) is forgotten with its task, unflushed.
type StateFlusher interface {
	FlushState() error
}

// StatefulOperator is implemented by the operators of specs with State. The
// runtime calls ProcessTask instead of Process, with the record's task, and
// OnWatermark after the task's stream time advanced, which is when windows
// close and dedupe horizons expire. Both are called from one goroutine per
// task; state lives in the Store, never in the operator, which is shared by
// every task of the pipeline.
type StatefulOperator interface {
	Operator
	ProcessTask(ctx context.Context, task Task, r *record.Record, out Output) error
	OnWatermark(ctx context.Context, task Task, out Output) error
}

// EndOfTime as a task's stream time closes every window and expires every
// horizon: the end of a bounded input, as at the end of a test.
var EndOfTime = time.Unix(0, 0).Add(math.MaxInt64)

// SideInputOperator is a stateful operator that reads more topics than
// its stream: a join's table (a compacted topic) or other stream. The
// runtime reads each side topic in the same task as the stream partition
// with the same number and hands its records to ProcessSide, in arrival
// order with the stream's records. r.Topic names the side; r.Key is the
// Kafka key as a string; r.Value is the decoded JSON value, nil for a
// tombstone. What ProcessSide emits goes to the steps after this one.
type SideInputOperator interface {
	StatefulOperator
	// SideInputs names the topics the step reads besides its stream.
	SideInputs() []string
	ProcessSide(ctx context.Context, task Task, r *record.Record, out Output) error
}

// TimeFromMillis turns a stream time stored in Unix milliseconds back into
// a time; math.MaxInt64, how EndOfTime is stored, is EndOfTime.
func TimeFromMillis(ms int64) time.Time {
	if ms == math.MaxInt64 {
		return EndOfTime
	}
	return time.UnixMilli(ms).UTC()
}

// StreamTimeRecorder is a StatefulOperator that keeps, in its task's
// store, the stream time it last acted on. A task's stream time starts
// from the latest of its steps' stored ones when the task is opened again
// (after a restart or a move to another runner), so stream time never goes
// back, and a partition that stays quiet after a restart still has its
// windows closed by idle time rather than held open until its next record.
type StreamTimeRecorder interface {
	StatefulOperator
	StoredStreamTime(task Task) (t time.Time, ok bool, err error)
}

// TableInputOperator is a SideInputOperator some of whose side inputs are
// tables (compacted topics of current rows) rather than streams. When a
// task is assigned, the runtime reads its partition of each table up to
// the table's end before it processes the task's stream, so a stream
// record meets the table as it was when the task started rather than half
// loaded, as Kafka Streams bootstraps a GlobalKTable. Stream side inputs
// are read in arrival order with the stream, with no such wait.
type TableInputOperator interface {
	SideInputOperator
	// Tables names the side inputs that are tables.
	Tables() []string
}
