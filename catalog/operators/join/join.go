// Package join provides the join operator: a stream-table join that
// enriches each stream record with the current value of its key in a
// table, a compacted topic read into the task's store.
package join

import (
	"context"
	"errors"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["table", "on", "as"],
  "properties": {
    "table": {"type": "string", "minLength": 1, "description": "The table: a compacted topic whose record key is the join key and whose JSON value is the row. It must have as many partitions as the stream it joins (checked when the pipeline starts)."},
    "on": {"type": "string", "minLength": 1, "description": "Expression for each stream record's join key; the stream is repartitioned by it, so records meet the table partition holding their key."},
    "as": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": "Field of the stream record that receives the table's row."},
    "type": {"enum": ["inner", "left"], "default": "inner", "description": "inner: a record with no row in the table is dropped. left: it passes with the field set to null."}
  }
}`

// Register adds the join operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "join",
		Summary: "Enriches each record with its key's current row in a table (a compacted topic).",
		Description: "A stream-table join, as Kafka Streams' KStream-KTable join: the table topic is read into the task's store " +
			"(a null value deletes the row) and each stream record is joined with the row the table holds for its `on` key " +
			"when the record arrives; later table updates do not change records already joined. The row is set as field `as` " +
			"of the record's value, which must be an object (reason `type` otherwise). With `type: inner` a record without a row " +
			"is dropped; with `type: left` it passes with the field null.\n\n" +
			"The table topic must be keyed by the join key and have as many partitions as the stream; records from the table " +
			"topic never pass through the pipeline themselves.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "on", ShapeFields: []string{"table"}},
		Examples: []catalog.Example{{
			Title:   "Orders with their customer",
			Summary: "Table rows come from the customers topic (not shown here: examples feed only the stream, so the table is empty and only type: left lets the order through).",
			Step:    "table: customers\non: customer_id\nas: customer\ntype: left\n",
			Input:   []any{map[string]any{"order": "o1", "customer_id": "c1"}},
			Output:  []any{map[string]any{"order": "o1", "customer_id": "c1", "customer": nil}},
		}},
		New: newJoin,
	})
}

type op struct {
	table string
	on    *expression.Program
	as    string
	left  bool
}

func newJoin(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	on, _ := conf.Get("on")
	p, err := on.Expr(expression.Any)
	if err != nil {
		return nil, err
	}
	tc, _ := conf.Get("table")
	ac, _ := conf.Get("as")
	o := &op{table: tc.String(), on: p, as: ac.String()}
	if t, ok := conf.Get("type"); ok && t.String() == "left" {
		o.left = true
	}
	return o, nil
}

// Tables names the table topic.
func (o *op) Tables() []string { return []string{o.table} }

func rowKey(k []byte) []byte { return append([]byte{'t'}, k...) }

// UpdateTable stores or deletes one row.
func (o *op) UpdateTable(_ context.Context, task catalog.Task, _ string, key []byte, value any) error {
	if value == nil {
		return task.Store().Delete(rowKey(key))
	}
	b, err := record.EncodeJSON(value)
	if err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	return task.Store().Put(rowKey(key), b)
}

// Process is not used: join runs through ProcessTask with the task's store.
func (o *op) Process(context.Context, *record.Record, catalog.Output) error {
	return errors.New("join is stateful and runs only through ProcessTask")
}

// ProcessTask joins r with its row.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	obj, err := catalog.ObjectValue(r)
	if err != nil {
		return err
	}
	k, err := o.on.Eval(r)
	if err != nil {
		return err
	}
	var row any
	if k != nil {
		kb, err := record.KeyBytes(k)
		if err != nil {
			return catalog.Reject(catalog.ReasonType, err)
		}
		b, ok, err := task.Store().Get(rowKey(kb))
		if err != nil {
			return err
		}
		if ok {
			if row, err = record.DecodeJSON(b); err != nil {
				return err
			}
		}
	}
	if row == nil && !o.left {
		return nil
	}
	obj[o.as] = row
	return out.Next(ctx, r)
}

// OnWatermark does nothing: a table row lives until it is deleted.
func (o *op) OnWatermark(context.Context, catalog.Task, catalog.Output) error { return nil }
