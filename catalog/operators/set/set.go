// Package set provides the set operator, which adds computed fields to each
// record's value or overwrites them, keeping every other field.
package set

import (
	"context"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/objexpr"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://sluice.dev/schemas/operators/set.json",
  "description": "The fields to add or overwrite: each key is a field name, each value an expression computed from the input record, or a mapping that sets fields of a nested object.",
  "type": "object",
  "minProperties": 1,
  "additionalProperties": {"$ref": "#/$defs/field"},
  "$defs": {
    "field": {
      "description": "An expression such as speed * 3.6 (numbers and booleans are constant expressions), or a mapping of nested field names to expressions.",
      "anyOf": [
        {"description": "An expression computing the field's value.", "type": ["string", "number", "boolean"]},
        {"description": "Fields of a nested object; other fields of that object are kept.", "type": "object", "minProperties": 1, "additionalProperties": {"$ref": "#/$defs/field"}}
      ]
    }
  }
}`

// Register adds the set operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "set",
		Summary: "Adds or overwrites fields of each record's value, keeping all other fields.",
		Description: "Each key of the step is a field and each value an expression evaluated on the record; " +
			"the field is added, or overwritten when it exists. All other fields, the key, the headers and the " +
			"timestamp are kept. A nested mapping sets fields inside a nested object and keeps that object's " +
			"other fields; when the field is missing or is not an object, a new object replaces it.\n\n" +
			"Every expression sees the record as it was before the step, so `{a: b, b: a}` swaps two fields. " +
			"A field whose expression is `nil` is set to null, not removed (use `drop` for that). Numbers keep " +
			"their kind (`id + 1` is an integer, `id / 2` and `speed * 3.6` are floats, written with a fraction), " +
			"and objects and arrays are copied. Constant strings need quotes inside the expression: " +
			"`source: '\"gps\"'`.\n\n" +
			"A value that is not a JSON object sends the record to the DLQ with reason `type`; an expression " +
			"that fails sends it, unchanged, with reason `expression`.",
		Config: schema,
		Examples: []catalog.Example{
			{
				Title:   "Add a computed field",
				Summary: "Converts the speed to km/h and stamps a constant, keeping every other field.",
				Step:    "{kmh: speed * 3.6, source: '\"gps\"'}",
				Input: []any{
					map[string]any{"vehicle_id": "v1", "speed": 10},
					map[string]any{"vehicle_id": "v2", "speed": 5, "source": "manual"},
				},
				Output: []any{
					map[string]any{"vehicle_id": "v1", "speed": 10, "kmh": 36, "source": "gps"},
					map[string]any{"vehicle_id": "v2", "speed": 5, "kmh": 18, "source": "gps"},
				},
			},
			{
				Title:   "Set fields of a nested object",
				Summary: "A nested mapping merges into the existing object; a value that is not an object is rejected.",
				Step: "position:\n" +
					"  valid: lat != nil && lon != nil\n" +
					"checked: true\n",
				Input: []any{
					map[string]any{"lat": 52.1, "lon": 4.3, "position": map[string]any{"source": "gps"}},
					map[string]any{"lat": 52.1},
					"not an object",
				},
				Output: []any{
					map[string]any{"lat": 52.1, "lon": 4.3, "position": map[string]any{"source": "gps", "valid": true}, "checked": true},
					map[string]any{"lat": 52.1, "position": map[string]any{"valid": false}, "checked": true},
				},
				DLQ: []catalog.Reason{catalog.ReasonType},
			},
		},
		New: newSet,
	})
}

type setter struct {
	t *objexpr.Template
}

func newSet(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	t, err := objexpr.Compile(conf)
	if err != nil {
		return nil, err
	}
	return &setter{t: t}, nil
}

// Process writes the computed fields into r's value in place.
func (s *setter) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	obj, err := catalog.ObjectValue(r)
	if err != nil {
		return err
	}
	vals, err := s.t.Eval(r)
	if err != nil {
		return err
	}
	s.t.Write(obj, vals, true)
	s.t.Release(vals)
	return out.Next(ctx, r)
}
