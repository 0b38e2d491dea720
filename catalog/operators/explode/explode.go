// Package explode provides the explode operator, which turns a record with an
// array field into one record per element (flatMapValues in Kafka Streams).
package explode

import (
	"context"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/fieldpath"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "description": "The array field to explode: its name (each element replaces the array in its own record), or a mapping that also says where to put the element.",
  "oneOf": [
    {
      "description": "The array field's name or dotted path; each output record holds one element in its place.",
      "type": "string",
      "minLength": 1
    },
    {
      "description": "The array field and where each element goes.",
      "type": "object",
      "additionalProperties": false,
      "required": ["field"],
      "properties": {
        "field": {"description": "The array field's name or dotted path; it is removed from the output records.", "type": "string", "minLength": 1},
        "as": {"description": "The field (name or dotted path) that holds the element in each output record; defaults to field.", "type": "string", "minLength": 1}
      }
    }
  ]
}`

// Register adds the explode operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "explode",
		Summary: "Emits one record per element of an array field.",
		Description: "`explode: items` emits, for each element of the array field `items`, a copy of the record " +
			"whose `items` field is that element. The long form `{field: items, as: item}` removes `items` and " +
			"puts the element under `item` instead. Both names may be dotted paths. Every output record keeps " +
			"the input's key, headers and timestamp, and the elements come out in array order.\n\n" +
			"A missing or null field, or an empty array, emits nothing: the record is dropped, not rejected. A " +
			"field that is not an array, a value that is not a JSON object, or an `as` path through a field " +
			"that is not an object sends the record to the DLQ with reason `type`.",
		Config: schema,
		Examples: []catalog.Example{
			{
				Title:   "One record per order line",
				Summary: "Each element replaces the array; empty and missing arrays emit nothing.",
				Step:    "items",
				Input: []any{
					map[string]any{"order": 1, "items": []any{map[string]any{"sku": "a"}, map[string]any{"sku": "b"}}},
					map[string]any{"order": 2, "items": []any{}},
					map[string]any{"order": 3},
				},
				Output: []any{
					map[string]any{"order": 1, "items": map[string]any{"sku": "a"}},
					map[string]any{"order": 1, "items": map[string]any{"sku": "b"}},
				},
			},
			{
				Title:   "Name the element",
				Summary: "The long form puts each element under a new name; a field that is not an array is rejected.",
				Step:    "{field: readings, as: reading}",
				Input: []any{
					map[string]any{"sensor": "s1", "readings": []any{20.5, 21}},
					map[string]any{"sensor": "s2", "readings": "n/a"},
				},
				Output: []any{
					map[string]any{"sensor": "s1", "reading": 20.5},
					map[string]any{"sensor": "s1", "reading": 21},
				},
				DLQ: []catalog.Reason{catalog.ReasonType},
			},
		},
		New: newExplode,
	})
}

type exploder struct {
	field, as fieldpath.Path
}

func newExplode(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	switch {
	case conf.IsScalar():
		p, err := fieldpath.ParseConfig(conf)
		if err != nil {
			return nil, err
		}
		return &exploder{field: p, as: p}, nil
	case conf.IsMap():
		var errs diag.List
		e := &exploder{}
		for _, f := range conf.Fields() {
			var dst *fieldpath.Path
			switch f.Name {
			case "field":
				dst = &e.field
			case "as":
				dst = &e.as
			default:
				errs.Add(f.NamePos, diag.Errorf(f.NamePos, "unknown field %q; explode takes field and as", f.Name))
				continue
			}
			p, err := fieldpath.ParseConfig(f.Value)
			if err != nil {
				errs.Add(f.Value.Pos(), err)
				continue
			}
			*dst = p
		}
		if err := errs.Err(); err != nil {
			return nil, err
		}
		if e.field == nil {
			return nil, conf.Errorf("missing field: name the array field to explode")
		}
		if e.as == nil {
			e.as = e.field
		}
		return e, nil
	}
	return nil, conf.Errorf("expected an array field name or a mapping with field and as, got a %s", conf.KindName())
}

// Process emits one record per element. Every record but the last is a
// clone made after the array was taken out, so the array is never copied;
// the last reuses r.
func (e *exploder) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	obj, err := catalog.ObjectValue(r)
	if err != nil {
		return err
	}
	v, _ := e.field.Get(obj)
	if v == nil {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		return catalog.Rejectf(catalog.ReasonType, "cannot explode %s: it is %s, not an array", e.field, catalog.TypeName(v))
	}
	if len(arr) == 0 {
		return nil
	}
	e.field.Delete(obj)
	last := len(arr) - 1
	for i, el := range arr {
		rec := r
		if i < last {
			rec = r.Clone()
		}
		// The records differ only in the element, so when as cannot be set
		// this fails on the first one, before anything was emitted.
		if err := e.as.Set(rec.Value.(map[string]any), el); err != nil {
			return err
		}
		if err := out.Next(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}
