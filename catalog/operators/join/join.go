// Package join provides the join operator: a stream-table join that
// enriches each stream record with the current value of its key in a
// table (a compacted topic read into the task's store), and a windowed
// stream-stream join that pairs records of two streams with the same key
// whose event times are at most `within` apart.
package join

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["on", "as"],
  "oneOf": [
    {"required": ["table"], "not": {"anyOf": [{"required": ["stream"]}, {"required": ["within"]}, {"required": ["grace"]}]}},
    {"required": ["stream", "within", "grace"], "not": {"anyOf": [{"required": ["table"]}, {"properties": {"type": {"const": "left"}}, "required": ["type"]}]}}
  ],
  "properties": {
    "table": {"type": "string", "minLength": 1, "description": "Stream-table join: a compacted topic whose record key is the join key and whose JSON value is the row. It must have as many partitions as the stream it joins."},
    "stream": {"type": "string", "minLength": 1, "description": "Stream-stream join: the other stream, a topic keyed by the join key with as many partitions as this one. Each record of either stream is paired with every record of the other with the same key whose event time is at most within apart."},
    "within": {"type": "string", "description": "Stream-stream join: the largest event-time distance between two joined records, like 5m."},
    "grace": {"type": "string", "description": "Stream-stream join: how long after within a record may still arrive out of order (0s for none). Later records go to the DLQ with reason late."},
    "on": {"type": "string", "minLength": 1, "description": "Expression for each stream record's join key; the stream is repartitioned by it, so records meet the table partition holding their key."},
    "as": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": "Field of the stream record that receives the table's row."},
    "type": {"enum": ["inner", "left"], "default": "inner", "description": "inner: a record with no row in the table is dropped. left (tables only): it passes with the field set to null."}
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
			"The table topic must be keyed by the join key and have as many partitions as the stream (the runner refuses to " +
			"start the pipeline otherwise, naming both counts); records from the table topic never pass through the pipeline " +
			"themselves, and their timestamps do not move the stream time of later windows. Whenever a runner takes over a " +
			"partition, it first reads the table's partition to its end, so the stream meets the whole table, not part of it.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "on", ShapeFields: []string{"table"}},
		Examples: []catalog.Example{{
			Title: "Payments with the order they pay, within an hour",
			Summary: "A stream-stream join; the orders stream is not shown (examples feed one stream), so nothing pairs: " +
				"see examples/order-enrichment for both sides.",
			Step:   "stream: orders\non: order_id\nas: order\nwithin: 1h\ngrace: 5m\n",
			Input:  []any{map[string]any{"payment": "p1", "order_id": "o1", "ts": "2026-01-01T10:00:00Z"}},
			Output: nil,
		}, {
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
	table string // stream-table mode
	other string // stream-stream mode
	on    *expression.Program
	as    string
	// asMember is as written as an object key ("as":), for encodeJoined.
	asMember []byte
	left     bool
	// Stream-stream: the join window and grace, ms.
	within, grace int64
}

func newJoin(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	on, _ := conf.Get("on")
	p, err := on.Expr(expression.Any)
	if err != nil {
		return nil, err
	}
	ac, _ := conf.Get("as")
	o := &op{on: p, as: ac.String()}
	o.asMember = record.AppendObjectKey(nil, o.as)
	if tc, ok := conf.Get("table"); ok {
		o.table = tc.String()
		if t, ok := conf.Get("type"); ok && t.String() == "left" {
			o.left = true
		}
		return o, nil
	}
	sc, _ := conf.Get("stream")
	o.other = sc.String()
	wc, _ := conf.Get("within")
	gc, _ := conf.Get("grace")
	if o.within, err = millis(wc, false); err != nil {
		return nil, err
	}
	if o.grace, err = millis(gc, true); err != nil {
		return nil, err
	}
	return o, nil
}

func millis(c catalog.Config, zeroOK bool) (int64, error) {
	d, err := time.ParseDuration(c.String())
	if err != nil || d < 0 || (d == 0 && !zeroOK) || d%time.Millisecond != 0 {
		return 0, c.Errorf("%q must be a duration like 30s or 5m", c.String())
	}
	return d.Milliseconds(), nil
}

// SideInputs names the table or the other stream.
func (o *op) SideInputs() []string {
	if o.table != "" {
		return []string{o.table}
	}
	return []string{o.other}
}

// Tables names the table of a stream-table join, which a task reads to
// its end before the stream; a stream-stream join has none.
func (o *op) Tables() []string {
	if o.table != "" {
		return []string{o.table}
	}
	return nil
}

func rowKey(k []byte) []byte { return append([]byte{'t'}, k...) }

// ProcessSide takes a table row (stored or, for a null value, deleted) or
// a record of the other stream (buffered and joined).
func (o *op) ProcessSide(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := r.EncodedKey()
	if err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	if o.table == "" {
		return o.streamSide(ctx, task, key, r, out)
	}
	if r.Value == nil {
		return task.Store().Delete(rowKey(key))
	}
	b, err := record.EncodeJSON(r.Value)
	if err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	return task.Store().Put(rowKey(key), b)
}

// FieldDemand implements engine.FieldDemander. A stream-table join reads
// the fields of its on expression and passes its input value on with the
// row set in field as, so the steps after it need their fields from its
// input too. A stream-stream join keeps whole values in its store, to
// join them with records of the other stream that come later.
func (o *op) FieldDemand(after []string, afterAll bool) ([]string, bool) {
	if o.table == "" {
		return nil, true
	}
	return o.on.FieldsAnd(after, afterAll)
}

// Process is not used: join runs through ProcessTask with the task's store.
func (o *op) Process(context.Context, *record.Record, catalog.Output) error {
	return errors.New("join is stateful and runs only through ProcessTask")
}

// ProcessTask joins r with its row, or with the other stream's records.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	obj, err := catalog.ObjectValue(r)
	if err != nil {
		return err
	}
	k, err := o.on.Eval(r)
	if err != nil {
		return err
	}
	if o.table == "" {
		if k == nil {
			return nil // a null key never joins
		}
		kb, err := record.KeyBytes(k)
		if err != nil {
			return catalog.Reject(catalog.ReasonType, err)
		}
		return o.streamMain(ctx, task, kb, r, out)
	}
	sc := scratchOf(task)
	var row []byte // the row as stored; nil when there is none
	if k != nil {
		var rk []byte
		if s, ok := k.(string); ok { // rowKey(KeyBytes(k)), in the task's buffer
			rk = append(append(sc.key[:0], 't'), s...)
			sc.key = rk
		} else {
			kb, err := record.KeyBytes(k)
			if err != nil {
				return catalog.Reject(catalog.ReasonType, err)
			}
			rk = rowKey(kb)
		}
		b, ok, err := task.Store().Get(rk)
		if err != nil {
			return err
		}
		if ok {
			row = b
		}
	}
	if row == nil && !o.left {
		return nil
	}
	if enc, last := out.(catalog.EncodedOutput); last {
		if v, ok := o.encodeJoined(&sc.out, r, obj, row); ok {
			return enc.NextEncoded(ctx, r, v)
		}
	}
	if raw := r.RawValue(); raw != nil {
		// Decoded only in the fields the stage reads (engine.FieldSetter):
		// the steps after this one get the whole value.
		v, err := record.DecodeJSON(raw)
		if err != nil {
			return catalog.Reject(catalog.ReasonDecode, err)
		}
		if obj, err = catalog.ObjectValue(&record.Record{Value: v}); err != nil {
			return err
		}
		r.Value = obj
		r.SetRawValue(nil)
	}
	var rowValue any
	if row != nil {
		if rowValue, err = record.DecodeJSON(row); err != nil {
			return err
		}
	}
	obj[o.as] = rowValue
	return out.Next(ctx, r)
}

// Transient implements engine.Transient: a stream-table join looks its
// row up and passes the record on; a stream-stream join keeps records
// for the other stream's to meet.
func (o *op) Transient() bool { return o.table != "" }

// SetsField implements engine.FieldSetter: a stream-table join passes its
// input on with the row set as field as. (A stream-stream join keeps whole
// values; it does not write its outputs from the input's bytes.)
func (o *op) SetsField() string {
	if o.table == "" {
		return ""
	}
	return o.as
}

// encodeJoined writes the joined value, the row (nil: none) set as field
// as, for a join that is the last step before a JSON sink
// (catalog.EncodedOutput), so that the row, stored as JSON, is neither
// decoded nor encoded per record. Given the input's bytes (RawValue: the
// engine decoded only the fields the stage reads, see engine.FieldSetter)
// it appends the field to them, unless the input has the field already;
// otherwise it writes obj as the sink would encode it, members in key
// order, unless obj holds a value the encoder leaves to the JSON library or
// the row is nested so deep that the encoder would, one level further
// down. It returns false when it writes nothing. The value is carved from
// slab, and the output keeps it.
func (o *op) encodeJoined(slab *record.Slab, r *record.Record, obj map[string]any, row []byte) ([]byte, bool) {
	if row == nil {
		row = []byte("null")
	}
	if raw := r.RawValue(); raw != nil {
		if _, ok := obj[o.as]; ok {
			return nil, false // replacing a field: rewritten in full
		}
		// raw is a valid JSON object (it decoded to obj): cut its
		// closing brace and the white space around it.
		body := trimSpace(raw)
		body = trimSpace(body[:len(body)-1])
		b := slab.Buf(len(body) + len(o.asMember) + len(row) + 2)
		b = append(b, body...)
		if body[len(body)-1] != '{' {
			b = append(b, ',')
		}
		b = append(b, o.asMember...)
		b = append(b, row...)
		return slab.Keep(append(b, '}')), true
	}
	if bytes.Count(row, []byte{'{'})+bytes.Count(row, []byte{'['}) >= maxEncodedRowDepth {
		return nil, false
	}
	keys := make([]string, 0, len(obj)+1)
	for k := range obj {
		keys = append(keys, k)
	}
	if _, ok := obj[o.as]; !ok {
		keys = append(keys, o.as)
	}
	slices.Sort(keys)
	b := slab.Buf(len(row) + 24*len(keys))
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = record.AppendObjectKey(b, k)
		if k == o.as {
			b = append(b, row...)
			continue
		}
		var ok bool
		if b, ok = record.AppendObjectValue(b, obj[k]); !ok {
			return nil, false
		}
	}
	return slab.Keep(append(b, '}')), true
}

// trimSpace cuts JSON white space from the end of b.
func trimSpace(b []byte) []byte {
	for len(b) > 0 {
		switch b[len(b)-1] {
		case ' ', '\t', '\r', '\n':
			b = b[:len(b)-1]
		default:
			return b
		}
	}
	return b
}

// taskScratch is what a stream-table join keeps with a task (a
// stream-table join keeps nothing else there): the buffer of the row key
// it looks up, which the store does not keep, and the slab its outputs'
// values are written to, so that neither allocates per record.
type taskScratch struct {
	key []byte
	out record.Slab
}

// scratchOf returns the task's scratch, or a new one for a task that
// keeps none.
func scratchOf(task catalog.Task) *taskScratch {
	c, ok := task.(catalog.TaskCache)
	if !ok {
		return &taskScratch{}
	}
	sc, _ := c.Cached().(*taskScratch)
	if sc == nil {
		sc = &taskScratch{}
		c.SetCached(sc)
	}
	return sc
}

// maxEncodedRowDepth bounds the nesting of a row encodeJoined writes as
// stored, well under the depth at which the encoder hands values to the
// JSON library (whose bytes may differ).
const maxEncodedRowDepth = 256

// OnWatermark forgets buffered stream records no later record can join;
// table rows live until they are deleted.
func (o *op) OnWatermark(_ context.Context, task catalog.Task, _ catalog.Output) error {
	if o.table != "" {
		return nil
	}
	return o.expire(task)
}
