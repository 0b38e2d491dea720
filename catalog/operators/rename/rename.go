// Package rename provides the rename operator, which gives fields of each
// record's value new names.
package rename

import (
	"context"
	"sync"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/fieldpath"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "description": "A mapping from each field's current name to its new name. Names may be dotted paths such as pos.lat.",
  "type": "object",
  "minProperties": 1,
  "additionalProperties": {
    "description": "The field's new name, or a dotted path such as position.lat to move it into a nested object.",
    "type": "string",
    "minLength": 1
  }
}`

// Register adds the rename operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "rename",
		Summary: "Renames fields of each record's value.",
		Description: "Each key of the step is a field's current name and its value the new name. All renames " +
			"happen at once, so `{lat: lon, lon: lat}` swaps two fields. Names may be dotted paths: " +
			"`{lat: position.lat}` moves a field into a nested object, creating it when it is missing, and " +
			"`{pos.lat: lat}` moves one out (leaving `pos` in place, possibly empty). A field already at the new " +
			"name is overwritten. The key, headers and timestamp are kept.\n\n" +
			"A missing field is not an error: nothing is renamed and nothing is written at the new name. A value " +
			"that is not a JSON object, or a new path that goes through a field that exists but is not an " +
			"object, sends the record to the DLQ with reason `type`. Two fields renamed to the same name, or to " +
			"names inside one another, are a configuration error.",
		Config: schema,
		Examples: []catalog.Example{
			{
				Title:   "Rename fields",
				Summary: "Fields get new names; a missing field is skipped.",
				Step:    "{vehicle_id: vehicle, speed: speed_ms}",
				Input: []any{
					map[string]any{"vehicle_id": "v1", "speed": 10, "lat": 52.1},
					map[string]any{"vehicle_id": "v2"},
				},
				Output: []any{
					map[string]any{"vehicle": "v1", "speed_ms": 10, "lat": 52.1},
					map[string]any{"vehicle": "v2"},
				},
			},
			{
				Title:   "Swap fields and nest them",
				Summary: "Renames happen at once; a dotted new name moves a field into an object; a value that is not an object is rejected.",
				Step:    "lat: position.lon\nlon: position.lat\n",
				Input: []any{
					map[string]any{"id": 1, "lat": 4.3, "lon": 52.1, "position": map[string]any{"source": "gps"}},
					map[string]any{"id": 2, "lat": 4.3, "lon": 52.1},
					"raw",
				},
				Output: []any{
					map[string]any{"id": 1, "position": map[string]any{"source": "gps", "lat": 52.1, "lon": 4.3}},
					map[string]any{"id": 2, "position": map[string]any{"lat": 52.1, "lon": 4.3}},
				},
				DLQ: []catalog.Reason{catalog.ReasonType},
			},
		},
		New: newRename,
	})
}

type move struct {
	from, to fieldpath.Path
}

type renamer struct {
	moves []move
	taken sync.Pool // *[]taken, one per move
}

type taken struct {
	v  any
	ok bool
}

func newRename(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	if !conf.IsMap() || len(conf.Fields()) == 0 {
		kind := "a " + conf.KindName()
		if conf.IsMap() {
			kind = "an empty mapping"
		}
		return nil, conf.Errorf("expected a mapping of current field names to new names, got %s", kind)
	}
	var errs diag.List
	var moves []move
	for _, f := range conf.Fields() {
		from, err := fieldpath.Parse(f.Name, f.NamePos)
		if err != nil {
			errs.Add(f.NamePos, err)
			continue
		}
		to, err := fieldpath.ParseConfig(f.Value)
		if err != nil {
			errs.Add(f.Value.Pos(), err)
			continue
		}
		if from.Overlaps(to) && len(from) == len(to) {
			errs.Add(f.Value.Pos(), f.Value.Errorf("%s is renamed to itself", from))
			continue
		}
		bad := false
		for _, m := range moves {
			switch {
			case m.from.Overlaps(from):
				errs.Add(f.NamePos, diag.Errorf(f.NamePos, "%s overlaps %s, which is renamed too; rename a field or the object holding it, not both", from, m.from))
				bad = true
			case m.to.Overlaps(to) && len(m.to) == len(to):
				errs.Add(f.Value.Pos(), f.Value.Errorf("%s is already the new name of %s", to, m.from))
				bad = true
			case m.to.Overlaps(to):
				errs.Add(f.Value.Pos(), f.Value.Errorf("%s overlaps %s, the new name of %s", to, m.to, m.from))
				bad = true
			}
			if bad {
				break
			}
		}
		if !bad {
			moves = append(moves, move{from: from, to: to})
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	n := len(moves)
	op := &renamer{moves: moves}
	op.taken.New = func() any {
		s := make([]taken, n)
		return &s
	}
	return op, nil
}

// Process takes every renamed field out first and then writes them all at
// their new names, so that renames do not see each other's results.
func (o *renamer) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	obj, err := catalog.ObjectValue(r)
	if err != nil {
		return err
	}
	ts := o.taken.Get().(*[]taken)
	defer func() {
		clear(*ts)
		o.taken.Put(ts)
	}()
	for i, m := range o.moves {
		v, ok := m.from.Delete(obj)
		(*ts)[i] = taken{v: v, ok: ok}
	}
	for i, m := range o.moves {
		if t := (*ts)[i]; t.ok {
			if err := m.to.Set(obj, t.v); err != nil {
				return err
			}
		}
	}
	return out.Next(ctx, r)
}
