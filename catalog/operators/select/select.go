// Package selectop provides the select operator, which keeps the named fields
// of each record's value and removes all others. The directory is named
// select after the operator; the package is selectop because select is a Go
// keyword.
package selectop

import (
	"context"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/fieldpath"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "description": "The fields to keep; every other field is removed.",
  "type": "array",
  "minItems": 1,
  "items": {
    "description": "A field name, or a dotted path such as pos.lat for a field of a nested object.",
    "type": "string",
    "minLength": 1
  }
}`

// Register adds the select operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "select",
		Summary: "Keeps the listed fields of each record's value and removes all others.",
		Description: "The step lists the fields to keep. A dotted path such as `pos.lat` keeps one field of a " +
			"nested object (and the other fields of `pos` are removed); listing `pos` itself keeps the whole " +
			"object. The key, headers and timestamp are kept.\n\n" +
			"Missing fields are not an error: the output has exactly the listed fields that the input has, with " +
			"the objects that hold them. A nested object none of whose listed fields is present is removed, as is " +
			"a field that a path goes through but that is not an object. " +
			"A value that is not a JSON object sends the record to the DLQ with reason `type`.",
		Config: schema,
		Examples: []catalog.Example{
			{
				Title:   "Keep a few fields",
				Summary: "Fields not listed are removed; a listed field that is missing is simply absent.",
				Step:    "[vehicle_id, speed, lat]",
				Input: []any{
					map[string]any{"vehicle_id": "v1", "speed": 10, "lat": 52.1, "driver": "ann"},
					map[string]any{"vehicle_id": "v2", "driver": "bob"},
				},
				Output: []any{
					map[string]any{"vehicle_id": "v1", "speed": 10, "lat": 52.1},
					map[string]any{"vehicle_id": "v2"},
				},
			},
			{
				Title:   "Keep nested fields",
				Summary: "A dotted path keeps one field of a nested object; a value that is not an object is rejected.",
				Step:    "- id\n- pos.lat\n- pos.lon\n",
				Input: []any{
					map[string]any{"id": 1, "pos": map[string]any{"lat": 52.1, "lon": 4.3, "alt": 3}, "debug": true},
					map[string]any{"id": 2, "pos": "unknown"},
					[]any{1, 2},
				},
				Output: []any{
					map[string]any{"id": 1, "pos": map[string]any{"lat": 52.1, "lon": 4.3}},
					map[string]any{"id": 2},
				},
				DLQ: []catalog.Reason{catalog.ReasonType},
			},
		},
		New: newSelect,
	})
}

// node is one level of the selected paths: either the whole field is kept or
// only the listed children.
type node struct {
	whole    bool
	children map[string]*node
}

func (n *node) add(p fieldpath.Path) {
	for _, name := range p {
		if n.whole {
			return // a prefix is kept whole already
		}
		if n.children == nil {
			n.children = map[string]*node{}
		}
		c := n.children[name]
		if c == nil {
			c = &node{}
			n.children[name] = c
		}
		n = c
	}
	n.whole, n.children = true, nil
}

type selector struct {
	root node
}

func newSelect(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	paths, err := fieldpath.ParseList(conf)
	if err != nil {
		return nil, err
	}
	s := &selector{}
	for _, p := range paths {
		s.root.add(p)
	}
	return s, nil
}

// Process removes the fields that are not selected, in place.
func (s *selector) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	obj, err := catalog.ObjectValue(r)
	if err != nil {
		return err
	}
	prune(obj, &s.root)
	return out.Next(ctx, r)
}

func prune(obj map[string]any, n *node) {
	for k, v := range obj {
		c := n.children[k]
		switch {
		case c == nil:
			delete(obj, k)
		case c.whole:
		default:
			sub, ok := v.(map[string]any)
			if ok {
				prune(sub, c)
			}
			if !ok || len(sub) == 0 {
				delete(obj, k)
			}
		}
	}
}

// FieldDemand implements engine.FieldDemander: the value that select
// passes on holds only (parts of) the top-level fields its paths start
// with.
func (s *selector) FieldDemand(_ []string, _ bool) ([]string, bool) {
	if s.root.whole {
		return nil, true
	}
	names := make([]string, 0, len(s.root.children))
	for n := range s.root.children {
		names = append(names, n)
	}
	return names, false
}
