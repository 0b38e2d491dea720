// Package aggregate provides the aggregate operator: a running, un-windowed
// aggregate per key whose accumulator is a JSON object updated by
// expressions, like Kafka Streams' aggregate into a KTable.
package aggregate

import (
	"context"
	"errors"
	"maps"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/objexpr"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["initial", "update"],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the grouping key; the record key when left out."},
    "initial": {"type": "object", "minProperties": 1, "description": "The accumulator of a key before its first record: a JSON object of constants."},
    "update": {"type": "object", "minProperties": 1, "description": "Fields of the accumulator to compute from each record: expressions that see the record's fields and acc, the accumulator so far. Fields not named keep their value.",
      "additionalProperties": {"type": ["string", "number", "boolean", "object"]}}
  }
}`

// Register adds the aggregate operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "aggregate",
		Summary: "Keeps a running aggregate per key, updated by expressions, and emits it after every record.",
		Description: "Each key's accumulator starts as `initial`. For every record, the `update` expressions are evaluated with the " +
			"record's fields and `acc`, the key's accumulator so far (a record field named `acc` is hidden by it); " +
			"their results replace those fields of the accumulator, which is stored and emitted as the record's new value, keyed by " +
			"the grouping key. There is no window: the aggregate runs for as long as the pipeline does.\n\n" +
			"A failing expression sends the record to the DLQ with reason `expression` and leaves the accumulator unchanged. " +
			"The value must be a JSON object (reason `type` otherwise).",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"initial"}},
		Examples: []catalog.Example{{
			Title:   "Orders and revenue per customer",
			Summary: "The accumulator counts orders and sums amounts; the largest order is kept with max().",
			Step:    "by: customer\ninitial: {orders: 0, total: 0, largest: 0}\nupdate:\n  orders: acc.orders + 1\n  total: acc.total + amount\n  largest: max(acc.largest, amount)\n",
			Input: []any{
				map[string]any{"customer": "c1", "amount": 20},
				map[string]any{"customer": "c2", "amount": 5},
				map[string]any{"customer": "c1", "amount": 30},
				map[string]any{"customer": "c1", "amount": "thirty"},
			},
			Output: []any{
				map[string]any{"orders": 1, "total": 20, "largest": 20},
				map[string]any{"orders": 1, "total": 5, "largest": 5},
				map[string]any{"orders": 2, "total": 50, "largest": 30},
			},
			DLQ: []catalog.Reason{catalog.ReasonExpression},
		}},
		New: newAggregate,
	})
}

type op struct {
	by      *expression.Program
	initial map[string]any
	update  *objexpr.Template
}

func newAggregate(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{}
	if by, ok := conf.Get("by"); ok {
		p, err := by.Expr(expression.Any)
		if err != nil {
			return nil, err
		}
		o.by = p
	}
	ic, _ := conf.Get("initial")
	v, err := ic.Value()
	if err != nil {
		return nil, err
	}
	init, ok := record.Plain(v).(map[string]any)
	if !ok {
		return nil, ic.Errorf("initial must be a mapping of constants")
	}
	o.initial = init
	uc, _ := conf.Get("update")
	if o.update, err = objexpr.Compile(uc); err != nil {
		return nil, err
	}
	return o, nil
}

// Process is not used: aggregate runs through ProcessTask with the task's store.
func (o *op) Process(context.Context, *record.Record, catalog.Output) error {
	return errors.New("aggregate is stateful and runs only through ProcessTask")
}

// ProcessTask updates the key's accumulator with r and emits it.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	obj, err := catalog.ObjectValue(r)
	if err != nil {
		return err
	}
	group := r.Key
	if o.by != nil {
		if group, err = o.by.Eval(r); err != nil {
			return err
		}
	}
	kb, err := record.KeyBytes(group)
	if err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	skey := append([]byte{'a'}, kb...)
	acc := maps.Clone(o.initial)
	if b, ok, err := task.Store().Get(skey); err != nil {
		return err
	} else if ok {
		v, err := record.DecodeJSON(b)
		if err != nil {
			return err
		}
		if m, ok := v.(map[string]any); ok {
			acc = m
		}
	}
	// The update expressions see the record's fields plus acc.
	env := maps.Clone(obj)
	env["acc"] = acc
	scratch := *r
	scratch.Value = env
	vals, err := o.update.Eval(&scratch)
	if err != nil {
		return err
	}
	next := maps.Clone(acc)
	o.update.Write(next, vals, true)
	o.update.Release(vals)
	enc, err := record.EncodeJSON(next)
	if err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	if err := task.Store().Put(skey, enc); err != nil {
		return err
	}
	var key any
	if len(kb) > 0 {
		key = string(kb)
	}
	return out.Next(ctx, &record.Record{Key: key, Value: record.Plain(next), Timestamp: r.Timestamp, Headers: r.Headers})
}

// OnWatermark does nothing: a running aggregate never closes.
func (o *op) OnWatermark(context.Context, catalog.Task, catalog.Output) error { return nil }
