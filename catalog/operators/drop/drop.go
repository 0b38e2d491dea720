// Package drop provides the drop operator, which removes the named fields
// from each record's value.
package drop

import (
	"context"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/fieldpath"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "description": "The fields to remove; every other field is kept.",
  "type": "array",
  "minItems": 1,
  "items": {
    "description": "A field name, or a dotted path such as pos.alt for a field of a nested object.",
    "type": "string",
    "minLength": 1
  }
}`

// Register adds the drop operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "drop",
		Summary: "Removes the listed fields from each record's value.",
		Description: "The step lists the fields to remove. A dotted path such as `pos.alt` removes one field " +
			"of a nested object and keeps the object and its other fields. The key, headers and timestamp are " +
			"kept.\n\n" +
			"Missing fields are not an error, nor is a path through a field that is not an object: there is " +
			"nothing to remove. A value that is not a JSON object sends the record to the DLQ with reason `type`.",
		Config: schema,
		ScalarHint: func(s string) string {
			return "drop removes fields; to drop records use filter: " + s
		},
		Examples: []catalog.Example{
			{
				Title:   "Remove personal data",
				Summary: "Listed fields are removed; missing ones are ignored.",
				Step:    "[driver, phone]",
				Input: []any{
					map[string]any{"vehicle_id": "v1", "driver": "ann", "phone": "555-0100"},
					map[string]any{"vehicle_id": "v2"},
				},
				Output: []any{
					map[string]any{"vehicle_id": "v1"},
					map[string]any{"vehicle_id": "v2"},
				},
			},
			{
				Title:   "Remove a nested field",
				Summary: "A dotted path removes one field of a nested object; a value that is not an object is rejected.",
				Step:    "[pos.alt, debug]",
				Input: []any{
					map[string]any{"id": 1, "pos": map[string]any{"lat": 52.1, "alt": 3}, "debug": true},
					map[string]any{"id": 2, "pos": "unknown"},
					"raw line",
				},
				Output: []any{
					map[string]any{"id": 1, "pos": map[string]any{"lat": 52.1}},
					map[string]any{"id": 2, "pos": "unknown"},
				},
				DLQ: []catalog.Reason{catalog.ReasonType},
			},
		},
		New: newDrop,
	})
}

type dropper struct {
	paths []fieldpath.Path
}

func newDrop(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	paths, err := fieldpath.ParseList(conf)
	if err != nil {
		return nil, err
	}
	return &dropper{paths: paths}, nil
}

// Process removes the fields in place.
func (d *dropper) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	obj, err := catalog.ObjectValue(r)
	if err != nil {
		return err
	}
	for _, p := range d.paths {
		p.Delete(obj)
	}
	return out.Next(ctx, r)
}
