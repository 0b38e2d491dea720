// Package mapop provides the map operator, which replaces each record's value
// with a new object computed from it (a projection, like mapValues in Kafka
// Streams). The directory is named map after the operator; the package is
// mapop because map is a Go keyword.
package mapop

import (
	"context"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/objexpr"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://sluice.dev/schemas/operators/map.json",
  "description": "The fields of the new value: each key is an output field name, each value an expression computed from the input record, or a mapping that builds a nested object.",
  "type": "object",
  "minProperties": 1,
  "additionalProperties": {"$ref": "#/$defs/field"},
  "$defs": {
    "field": {
      "description": "An expression such as speed * 3.6 (numbers and booleans are constant expressions), or a mapping of nested field names to expressions.",
      "anyOf": [
        {"description": "An expression computing the field's value.", "type": ["string", "number", "boolean"]},
        {"description": "A nested object, built field by field.", "type": "object", "minProperties": 1, "additionalProperties": {"$ref": "#/$defs/field"}}
      ]
    }
  }
}`

// Register adds the map operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "map",
		Summary: "Replaces each record's value with an object of computed fields.",
		Description: "Each key of the step is a field of the new value and each value an expression evaluated on " +
			"the input record; a nested mapping builds a nested object. The new value has exactly the fields " +
			"named, in the manner of Kafka Streams' `mapValues`; to keep the other fields, use `set`. " +
			"The record's key, headers and timestamp are kept.\n\n" +
			"Every expression sees the input record, not the fields computed before it. A field whose expression " +
			"is `nil` (a missing input field) is present with a null value. Numbers keep their kind " +
			"(`id + 1` is an integer, `id / 2` and `speed * 3.6` are floats, written with a fraction), and " +
			"objects and arrays are copied. Constant strings need quotes inside the expression: " +
			"`source: '\"gps\"'`; `source: gps` reads the field `gps`.\n\n" +
			"The input does not have to be an object: for a raw or array value the fields are all missing, but " +
			"`value` holds the whole value, so `{line: value}` wraps a raw line in an object. An expression that " +
			"fails on a record sends the record, unchanged, to the DLQ with reason `expression`.",
		Config: schema,
		Examples: []catalog.Example{
			{
				Title:   "Project telemetry",
				Summary: "Rename, convert and drop fields in one step.",
				Step:    "{vehicle: vehicle_id, kmh: speed * 3.6, lat: lat, lon: lon}",
				Input: []any{
					map[string]any{"vehicle_id": "v1", "speed": 10, "lat": 52.1, "lon": 4.3, "driver": "ann"},
					map[string]any{"vehicle_id": "v2", "speed": 5, "lat": 52.2},
				},
				Output: []any{
					map[string]any{"vehicle": "v1", "kmh": 36, "lat": 52.1, "lon": 4.3},
					map[string]any{"vehicle": "v2", "kmh": 18, "lat": 52.2, "lon": nil},
				},
			},
			{
				Title:   "Build a nested object",
				Summary: "A nested mapping builds a nested object; constants need no quotes when they are numbers or booleans, and strings are quoted inside the expression.",
				Step: "vehicle: vehicle_id\n" +
					"position:\n" +
					"  lat: lat\n" +
					"  lon: lon\n" +
					"version: 2\n" +
					"source: '\"gps\"'\n",
				Input: []any{
					map[string]any{"vehicle_id": "v1", "lat": 52.1, "lon": 4.3},
				},
				Output: []any{
					map[string]any{"vehicle": "v1", "position": map[string]any{"lat": 52.1, "lon": 4.3}, "version": 2, "source": "gps"},
				},
			},
			{
				Title:   "Wrap raw lines",
				Summary: "A raw value is available as value; a failing expression sends the record to the DLQ.",
				Step:    "{line: value, length: len(value)}",
				Input:   []any{"disk full", 42},
				Output: []any{
					map[string]any{"line": "disk full", "length": 9},
				},
				DLQ: []catalog.Reason{catalog.ReasonExpression},
			},
		},
		New: newMap,
	})
}

type mapper struct {
	t *objexpr.Template
}

func newMap(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	t, err := objexpr.Compile(conf)
	if err != nil {
		return nil, err
	}
	return &mapper{t: t}, nil
}

// Process replaces r's value. An object value's map is reused for the result,
// which is safe because every expression has been evaluated first and no
// result shares memory with the input (record.Plain copies objects).
func (m *mapper) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	vals, err := m.t.Eval(r)
	if err != nil {
		return err
	}
	obj, ok := r.Value.(map[string]any)
	if ok {
		clear(obj)
	} else {
		obj = make(map[string]any, m.t.Len())
	}
	m.t.Write(obj, vals, false)
	m.t.Release(vals)
	r.Value = obj
	return out.Next(ctx, r)
}

// FieldDemand implements engine.FieldDemander: the new value is computed
// from the fields the expressions read alone, so nothing after the map
// needs any other field of its input.
func (m *mapper) FieldDemand(_ []string, _ bool) ([]string, bool) {
	return m.t.Fields()
}

// Projection implements engine.Projection for a mapping without nested
// objects.
func (m *mapper) Projection() ([]string, []*expression.Program, bool) { return m.t.Flat() }

// Transient implements engine.Transient: the new value is encoded by the
// steps after the map; the map itself keeps nothing of a record.
func (m *mapper) Transient() bool { return true }
