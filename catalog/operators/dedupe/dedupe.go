// Package dedupe provides the dedupe operator: it drops records whose id (an
// expression) was already seen within a time horizon of event time. The
// model is internal/window's Dedupe; state is the task's store.
package dedupe

import (
	"context"
	"errors"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
	win "github.com/sluicehq/sluice/internal/window"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["by", "within"],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the id that identifies a duplicate, such as order_id. Records are repartitioned by it, so every copy of an id reaches the same task."},
    "within": {"type": "string", "description": "The horizon, a duration like 10m or 24h: a record is dropped when a record with the same id passed less than this much event time before (or after) it."}
  }
}`

// Register adds the dedupe operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "dedupe",
		Summary: "Drops records whose id was already seen within a horizon of event time.",
		Description: "Each record's `by` expression is its id. The first record with an id passes; another record with the " +
			"same id whose event time is less than `within` away from it is dropped. An id is forgotten once the task's " +
			"stream time has passed its last passing record by `within`, so state stays bounded and replays dedupe the " +
			"same way as the first run (the horizon is event time, not the wall clock).\n\n" +
			"A `by` that evaluates to null sends the record to the DLQ with reason `expression`, since it cannot be compared.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"within"}},
		Examples: []catalog.Example{
			{
				Title:   "Drop redelivered orders within an hour",
				Summary: "The second o1 is 10 minutes after the first and is dropped; the third is more than an hour later and passes.",
				Step:    "by: order_id\nwithin: 1h\n",
				Input: []any{
					map[string]any{"order_id": "o1", "ts": "2026-01-01T10:00:00Z"},
					map[string]any{"order_id": "o2", "ts": "2026-01-01T10:05:00Z"},
					map[string]any{"order_id": "o1", "ts": "2026-01-01T10:10:00Z"},
					map[string]any{"order_id": "o1", "ts": "2026-01-01T11:30:00Z"},
				},
				Output: []any{
					map[string]any{"order_id": "o1", "ts": "2026-01-01T10:00:00Z"},
					map[string]any{"order_id": "o2", "ts": "2026-01-01T10:05:00Z"},
					map[string]any{"order_id": "o1", "ts": "2026-01-01T11:30:00Z"},
				},
			},
			{
				Title:   "Records without an id go to the DLQ",
				Step:    "by: order_id\nwithin: 10m\n",
				Input:   []any{map[string]any{"sku": "x", "ts": "2026-01-01T10:00:00Z"}},
				DLQ:     []catalog.Reason{catalog.ReasonExpression},
				Summary: "A null id cannot be compared with anything.",
			},
		},
		New: newDedupe,
	})
}

type op struct {
	by      *expression.Program
	horizon int64 // ms
}

func newDedupe(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	by, _ := conf.Get("by")
	p, err := by.Expr(expression.Any)
	if err != nil {
		return nil, err
	}
	w, _ := conf.Get("within")
	d, err := time.ParseDuration(w.String())
	if err != nil || d < time.Millisecond || d%time.Millisecond != 0 {
		return nil, w.Errorf("within %q must be a positive duration like 10m or 24h", w.String())
	}
	return &op{by: p, horizon: d.Milliseconds()}, nil
}

// KeepsValue implements engine.ValueKeeper: dedupe passes records on
// unchanged or drops them.
func (o *op) KeepsValue() {}

// FieldDemand implements engine.FieldDemander: dedupe reads the fields of
// its id expression and passes the value on unchanged.
func (o *op) FieldDemand(after []string, afterAll bool) ([]string, bool) {
	return o.by.FieldsAnd(after, afterAll)
}

// Process is not used: dedupe runs through ProcessTask with the task's store.
func (o *op) Process(context.Context, *record.Record, catalog.Output) error {
	return errors.New("dedupe is stateful and runs only through ProcessTask")
}

// ProcessTask passes r on unless its id was seen within the horizon.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	v, err := o.by.Eval(r)
	if err != nil {
		return err
	}
	if v == nil {
		return &expression.EvalError{Source: o.by.Source(), Err: errors.New("the id is null")}
	}
	d, err := o.open(task)
	if err != nil {
		return err
	}
	// The model copies the id into its own keys: one buffer serves every
	// record of the task.
	d.id, err = record.AppendIdentityJSON(d.id[:0], v) // 4 and 4.0 are one id
	if err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	if err := advance(d.Dedupe, task); err != nil {
		return o.failed(task, d, err)
	}
	pass, err := d.Process(d.id, r.Timestamp.UnixMilli())
	if err != nil {
		return o.failed(task, d, err)
	}
	if !pass {
		return nil
	}
	return out.Next(ctx, r)
}

// Transient implements engine.Transient: dedupe keeps the bytes of a
// record's id, copied into its store, and passes the record on.
func (o *op) Transient() bool { return true }

// OnWatermark forgets ids whose horizon the stream time has passed.
func (o *op) OnWatermark(_ context.Context, task catalog.Task, _ catalog.Output) error {
	d, err := o.open(task)
	if err != nil {
		return err
	}
	if err := advance(d.Dedupe, task); err != nil {
		return o.failed(task, d, err)
	}
	return nil
}

// open returns the task's dedupe model: the one kept with the task
// (catalog.TaskCache), which follows its own writes and holds its
// watermark back until the runtime flushes it before a commit, or one
// read from the task's store.
func (o *op) open(task catalog.Task) (*taskModel, error) {
	c, ok := task.(catalog.TaskCache)
	if !ok {
		d, err := win.NewDedupe(o.horizon, task.Store())
		return &taskModel{Dedupe: d}, err
	}
	if m, ok := c.Cached().(*taskModel); ok {
		return m, nil
	}
	d, err := win.NewDedupe(o.horizon, task.Store())
	if err != nil {
		return nil, err
	}
	d.HoldWatermark()
	m := &taskModel{Dedupe: d}
	c.SetCached(m)
	return m, nil
}

// taskModel is what dedupe keeps with a task: its model, and a buffer for
// the id of the record being processed.
type taskModel struct {
	*win.Dedupe
	id []byte
}

// failed forgets the task's model after a store error, writing what it
// held back first (see the window step's failed).
func (o *op) failed(task catalog.Task, d *taskModel, err error) error {
	if c, ok := task.(catalog.TaskCache); ok {
		err = errors.Join(err, d.FlushState())
		c.SetCached(nil)
	}
	return err
}

// StoredStreamTime implements catalog.StreamTimeRecorder.
func (o *op) StoredStreamTime(task catalog.Task) (time.Time, bool, error) {
	ms, ok, err := win.StoredStreamTime(task.Store())
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	return catalog.TimeFromMillis(ms), true, nil
}

func advance(d *win.Dedupe, task catalog.Task) error {
	st := task.StreamTime()
	switch {
	case st.IsZero():
		return nil
	case st.Equal(catalog.EndOfTime):
		return d.Advance(1<<63 - 1)
	}
	return d.Advance(st.UnixMilli())
}
