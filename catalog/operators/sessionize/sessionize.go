// Package sessionize provides the sessionize operator: per key, sessions of
// activity separated by gaps of event time, each summarised once when it
// closes. It is a keyed state machine (catalog/operators/internal/keyed)
// with its state in the task's store.
package sessionize

import (
	"context"
	"encoding/json"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["gap", "grace"],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the visitor or device sessions are kept per, such as user_id; the record key when left out. Records are repartitioned by it."},
    "gap": {"type": "string", "description": "Inactivity that ends a session: a record more than gap after the previous one starts a new session. A duration like 30m."},
    "path": {"type": "string", "minLength": 1, "description": "Expression whose values, in event-time order, make the session's path (such as url); entry and exit are its first and last values."},
    "max_path": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50, "description": "Keep at most this many path values (the first ones); entry, exit and events still count them all."},
    "grace": {"type": "string", "description": "How far behind the stream time a record may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Records further behind go to the DLQ with reason late."}
  }
}`

// Register adds the sessionize operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "sessionize",
		Summary: "Groups a key's records into sessions separated by a gap of inactivity and emits one summary per session.",
		Description: "Per key (`by`, else the record key), records are applied in event-time order. A record more than " +
			"`gap` after the key's previous record starts a new session (one exactly `gap` later continues it). A session " +
			"closes when the event-time frontier (stream time minus `grace`, moved by any record of the task and by idle " +
			"time) passes its last record plus `gap`; then the step emits `{event: session, key, start, end, duration_ms, " +
			"events}` with the end as its event time, keyed by the grouping key. With `path`, the summary also has " +
			"`entry`, `exit` and `path` (the first `max_path` values).\n\n" +
			"Unlike a `window` with `session:`, sessions never merge after the fact: records are put in event-time order " +
			"first, so a record arriving out of order within `grace` lands in the right session, and each session is " +
			"emitted once. Older records go to the DLQ with reason `late`. State is one entry per key with an open " +
			"session, in the task's store.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"gap"}},
		Examples: []catalog.Example{{
			Title: "Visits with their landing and exit pages",
			Summary: "u1 browses for 6 minutes, goes quiet for more than 30 minutes and comes back: two sessions. The " +
				"first closes when u2's click at 10:40 moves the stream time past 10:36; the others at the end of the input.",
			Step: "by: user\ngap: 30m\npath: url\ngrace: 0s\n",
			Input: []any{
				map[string]any{"user": "u1", "url": "/", "ts": "2026-01-01T10:00:00Z"},
				map[string]any{"user": "u1", "url": "/shoes", "ts": "2026-01-01T10:02:00Z"},
				map[string]any{"user": "u1", "url": "/cart", "ts": "2026-01-01T10:06:00Z"},
				map[string]any{"user": "u2", "url": "/blog", "ts": "2026-01-01T10:40:00Z"},
				map[string]any{"user": "u1", "url": "/cart", "ts": "2026-01-01T11:00:00Z"},
			},
			Output: []any{
				map[string]any{"event": "session", "key": "u1", "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:06:00Z",
					"duration_ms": 360000, "events": 3, "entry": "/", "exit": "/cart", "path": []any{"/", "/shoes", "/cart"}},
				map[string]any{"event": "session", "key": "u2", "start": "2026-01-01T10:40:00Z", "end": "2026-01-01T10:40:00Z",
					"duration_ms": 0, "events": 1, "entry": "/blog", "exit": "/blog", "path": []any{"/blog"}},
				map[string]any{"event": "session", "key": "u1", "start": "2026-01-01T11:00:00Z", "end": "2026-01-01T11:00:00Z",
					"duration_ms": 0, "events": 1, "entry": "/cart", "exit": "/cart", "path": []any{"/cart"}},
			},
		}, {
			Title:   "Out of order within grace; late clicks",
			Summary: "With 1m of grace, the 10:00:30 click arriving last still joins the session; a click 10 minutes behind is late.",
			Step:    "gap: 5m\ngrace: 1m\n",
			Input: []any{
				map[string]any{"ts": "2026-01-01T10:00:00Z"},
				map[string]any{"ts": "2026-01-01T10:01:00Z"},
				map[string]any{"ts": "2026-01-01T10:00:30Z"},
				map[string]any{"ts": "2026-01-01T09:51:00Z"},
			},
			Output: []any{
				map[string]any{"event": "session", "key": "", "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:01:00Z",
					"duration_ms": 60000, "events": 3},
			},
			DLQ: []catalog.Reason{catalog.ReasonLate},
		}},
		New: newSessionize,
	})
}

type op struct {
	keyed.Step
	path *expression.Program
}

func newSessionize(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "sessionize"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	m := &machine{maxPath: 50}
	var err error
	if m.gap, err = keyed.Duration(conf, "gap"); err != nil {
		return nil, err
	}
	if p, ok := conf.Get("path"); ok {
		if o.path, err = p.Expr(expression.Any); err != nil {
			return nil, err
		}
		m.hasPath = true
	}
	if c, ok := conf.Get("max_path"); ok {
		if err := c.Decode(&m.maxPath); err != nil {
			return nil, err
		}
	}
	o.Runner.Machine = m
	return o, nil
}

// ProcessTask evaluates the path value now, so a failing expression sends
// this record to the DLQ, and hands the record to the key's session.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	var payload []byte
	if o.path != nil {
		v, err := o.path.Eval(r)
		if err != nil {
			return err
		}
		if payload, err = record.EncodeJSON(record.Plain(v)); err != nil {
			return catalog.Reject(catalog.ReasonType, err)
		}
	}
	return o.Ingest(ctx, task, key, r, payload, out)
}

// FieldDemand implements engine.FieldDemander.
func (o *op) FieldDemand([]string, bool) ([]string, bool) {
	return expression.FieldsOf(o.By, o.path)
}

type session struct {
	Start  int64             `json:"s"`
	Last   int64             `json:"l"`
	Events int               `json:"n"`
	Path   []json.RawMessage `json:"p,omitempty"`
	Exit   json.RawMessage   `json:"x,omitempty"`
}

type machine struct {
	gap     int64
	hasPath bool
	maxPath int
}

func (m *machine) Event(_, st []byte, t int64, payload []byte) (keyed.Result, error) {
	// Sessions close on their timer (last + gap + 1 ms), which fires
	// before any record after it: a record here always continues st.
	s := session{Start: t}
	if st != nil {
		if err := json.Unmarshal(st, &s); err != nil {
			return keyed.Result{}, err
		}
	}
	s.Last = t
	s.Events++
	if m.hasPath {
		if len(s.Path) < m.maxPath {
			s.Path = append(s.Path, payload)
		}
		s.Exit = payload
	}
	b, err := json.Marshal(s)
	if err != nil {
		return keyed.Result{}, err
	}
	return keyed.Result{State: b, Timer: t + m.gap + 1, HasTimer: true}, nil
}

func decode(raw json.RawMessage) any {
	v, err := record.DecodeJSON(raw)
	if err != nil {
		return nil
	}
	return v
}

// Timer closes the session and emits its summary.
func (m *machine) Timer(key, st []byte, _ int64) (keyed.Result, error) {
	var s session
	if err := json.Unmarshal(st, &s); err != nil {
		return keyed.Result{}, err
	}
	v := map[string]any{
		"event": "session", "key": string(key), "start": keyed.FormatTime(s.Start), "end": keyed.FormatTime(s.Last),
		"duration_ms": int(s.Last - s.Start), "events": s.Events,
	}
	if m.hasPath {
		path := make([]any, len(s.Path))
		for i, p := range s.Path {
			path[i] = decode(p)
		}
		v["path"], v["entry"], v["exit"] = path, path[0], decode(s.Exit)
	}
	return keyed.Result{Out: []keyed.Emit{{Time: s.Last, Value: v}}}, nil
}
