package window

import (
	"encoding/json"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
	win "github.com/sluicehq/sluice/internal/window"
)

// topNSchema is the window schema without aggregates, plus what to rank.
func topNSchema() string {
	var m map[string]any
	if err := json.Unmarshal([]byte(schema), &m); err != nil {
		panic(err) // a constant; covered by the tests
	}
	props := m["properties"].(map[string]any)
	delete(props, "aggregates")
	props["n"] = map[string]any{"type": "integer", "minimum": 1, "description": "How many entries to keep per window."}
	props["rank"] = map[string]any{"type": "string", "minLength": 1, "description": "The number entries are ranked by, largest first."}
	props["value"] = map[string]any{"type": "string", "minLength": 1, "description": "What to keep of each entry; the whole record value when left out."}
	m["required"] = []string{"grace", "n", "rank"}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// RegisterTopN adds the top_n operator to r: the N largest entries per key
// and window, a window step with one top_n aggregate.
func RegisterTopN(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "top_n",
		Summary: "Keeps the N entries with the largest rank per key and window.",
		Description: "A `window` step with a single aggregate: the `n` records (or their `value`) with the largest `rank`, " +
			"as the list `top`, largest first; ties keep the earlier arrival first. Windows, grace, emit modes and lateness are " +
			"those of `window`. A rank that is not a number sends the record to the DLQ with reason `type`; a null rank skips it.",
		Config: topNSchema(),
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"tumbling", "hopping", "session", "n", "rank", "value"}},
		Examples: []catalog.Example{{
			Title:   "The two slowest pages per minute",
			Summary: "One result per minute: the two page loads with the largest load time.",
			Step:    "tumbling: 1m\ngrace: 0s\nn: 2\nrank: load_ms\nvalue: url\n",
			Input: []any{
				map[string]any{"url": "/a", "load_ms": 120, "ts": "2026-01-01T00:00:05Z"},
				map[string]any{"url": "/b", "load_ms": 900, "ts": "2026-01-01T00:00:15Z"},
				map[string]any{"url": "/c", "load_ms": 450, "ts": "2026-01-01T00:00:25Z"},
			},
			Output: []any{
				map[string]any{"window": map[string]any{"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"}, "top": []any{"/b", "/c"}},
			},
		}},
		New: newTopN,
	})
}

func newTopN(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o, err := windowed(conf)
	if err != nil {
		return nil, err
	}
	a := win.Aggregate{Name: "top", Func: win.TopN}
	nc, _ := conf.Get("n")
	if err := nc.Decode(&a.N); err != nil {
		return nil, err
	}
	rc, _ := conf.Get("rank")
	rank, err := rc.Expr(expression.Any)
	if err != nil {
		return nil, err
	}
	a.By = evaluator(rank)
	o.reads = append(o.reads, rank)
	o.whole = true // until value names what to keep
	a.Input = func(v any) (any, error) {
		if r, ok := v.(*record.Record); ok {
			return r.Value, nil
		}
		return v, nil
	}
	if vc, ok := conf.Get("value"); ok {
		p, err := vc.Expr(expression.Any)
		if err != nil {
			return nil, err
		}
		a.Input = evaluator(p)
		o.reads = append(o.reads, p)
		o.whole = false
	}
	o.cfg.Aggregates = []win.Aggregate{a}
	return o.validate(conf)
}
