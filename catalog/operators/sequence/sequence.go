// Package sequence provides two event-pattern operators on event time, per
// key: sequence (a record matching `first` followed by one matching `then`
// within a duration) and absence (a `first` not followed by a `then` within
// the duration, reported when the event-time frontier passes the deadline).
// Both are keyed state machines (catalog/operators/internal/keyed) with
// their state in the task's store.
package sequence

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schemaFmt = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["first", "then", "within", "grace"],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the key the pattern is matched per, such as user_id; the record key when left out. Records are repartitioned by it."},
    "first": {"type": "string", "minLength": 1, "description": "Predicate for the first event, such as action == \"login_failed\". Null counts as false."},
    "then": {"type": "string", "minLength": 1, "description": "Predicate for the event that %s, such as action == \"password_reset\". Null counts as false."},
    "within": {"type": "string", "description": "The longest time from a first event to its then event, inclusive: a duration like 30s or 10m."},
    "grace": {"type": "string", "description": "How far behind the stream time a record may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Records further behind go to the DLQ with reason late."}
  }
}`

const common = "Per key (`by`, else the record key), records are applied in event-time order; records up to `grace` behind " +
	"the stream time are reordered, older ones go to the DLQ with reason `late`. A record for which `then` is true is " +
	"applied as a then event before it is applied as a first event, so a record matching both closes earlier patterns " +
	"and opens a new one. A `first` or `then` that is not a boolean (or null) sends the record to the DLQ with reason " +
	"`expression`. State per key is its pending first events (event time and value), in the task's store; they are " +
	"dropped once `within` has passed."

// Register adds the sequence operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "sequence",
		Summary: "Emits a match when a key's `first` event is followed by a `then` event within a duration of event time.",
		Description: "A record for which `first` is true becomes pending. A record for which `then` is true, at most `within` " +
			"after a pending first event (its event time minus the first's is at most `within`), emits " +
			"`{event: sequence, key, first_at, at, elapsed_ms, first_record, then_record}` with the earliest such first event, and " +
			"consumes every pending first event of the key: one match per run of firsts. `first_record` and `then_record` " +
			"are the two records' values. The output has the then event's event time and is keyed by the grouping key.\n\n" + common,
		Config: fmt.Sprintf(schemaFmt, "completes the pattern"),
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"within"}},
		Examples: []catalog.Example{{
			Title: "A password reset within ten minutes of a failed login",
			Summary: "u1's two failed logins are followed by a reset 8 minutes after the first: one match, with the first " +
				"of them. u2's reset comes 12 minutes after the failure: no match.",
			Step: "by: user\nfirst: action == \"login_failed\"\nthen: action == \"password_reset\"\nwithin: 10m\ngrace: 0s\n",
			Input: []any{
				map[string]any{"user": "u1", "action": "login_failed", "ts": "2026-01-01T10:00:00Z"},
				map[string]any{"user": "u2", "action": "login_failed", "ts": "2026-01-01T10:01:00Z"},
				map[string]any{"user": "u1", "action": "login_failed", "ts": "2026-01-01T10:03:00Z"},
				map[string]any{"user": "u1", "action": "password_reset", "ts": "2026-01-01T10:08:00Z"},
				map[string]any{"user": "u2", "action": "password_reset", "ts": "2026-01-01T10:13:00Z"},
			},
			Output: []any{
				map[string]any{"event": "sequence", "key": "u1", "first_at": "2026-01-01T10:00:00Z", "at": "2026-01-01T10:08:00Z", "elapsed_ms": 480000,
					"first_record": map[string]any{"user": "u1", "action": "login_failed", "ts": "2026-01-01T10:00:00Z"},
					"then_record":  map[string]any{"user": "u1", "action": "password_reset", "ts": "2026-01-01T10:08:00Z"}},
			},
		}, {
			Title:   "Out of order within grace; late records",
			Summary: "With 1m of grace the then event arriving before its first still matches; a record 5 minutes behind is late.",
			Step:    "first: step == \"a\"\nthen: step == \"b\"\nwithin: 1m\ngrace: 1m\n",
			Input: []any{
				map[string]any{"step": "b", "ts": "2026-01-01T10:00:30Z"},
				map[string]any{"step": "a", "ts": "2026-01-01T10:00:00Z"},
				map[string]any{"step": "a", "ts": "2026-01-01T09:55:00Z"},
			},
			Output: []any{
				map[string]any{"event": "sequence", "key": "", "first_at": "2026-01-01T10:00:00Z", "at": "2026-01-01T10:00:30Z", "elapsed_ms": 30000,
					"first_record": map[string]any{"step": "a", "ts": "2026-01-01T10:00:00Z"},
					"then_record":  map[string]any{"step": "b", "ts": "2026-01-01T10:00:30Z"}},
			},
			DLQ: []catalog.Reason{catalog.ReasonLate},
		}},
		New: func(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) { return build(conf, "sequence") },
	})
}

// RegisterAbsence adds the absence operator to r.
func RegisterAbsence(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "absence",
		Summary: "Emits an event when a key's `first` event is not followed by a `then` event within a duration of event time.",
		Description: "A record for which `first` is true becomes pending with a deadline `within` after it. A record for " +
			"which `then` is true, at or before a pending first's deadline, clears every pending first event of the key. " +
			"When the event-time frontier (stream time minus `grace`) passes a deadline with its first still pending, the " +
			"step emits `{event: absent, key, first_at, deadline, first_record}` (`first_record` is that record's value), with the " +
			"deadline as its event time, keyed by the grouping key. The frontier moves with the task's records and with " +
			"idle time (`advance:` in tests), so an absence is reported even when the key sends nothing more.\n\n" + common,
		Config: fmt.Sprintf(schemaFmt, "must follow in time"),
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"within"}},
		Examples: []catalog.Example{{
			Title: "Orders not paid within 30 minutes",
			Summary: "o1 is paid after 20 minutes; o2 is not paid, which is known once the stream time passes 10:35 " +
				"(the record at 10:40).",
			Step: "by: order_id\nfirst: status == \"placed\"\nthen: status == \"paid\"\nwithin: 30m\ngrace: 0s\n",
			Input: []any{
				map[string]any{"order_id": "o1", "status": "placed", "ts": "2026-01-01T10:00:00Z"},
				map[string]any{"order_id": "o2", "status": "placed", "ts": "2026-01-01T10:05:00Z"},
				map[string]any{"order_id": "o1", "status": "paid", "ts": "2026-01-01T10:20:00Z"},
				map[string]any{"order_id": "o3", "status": "placed", "ts": "2026-01-01T10:40:00Z"},
				map[string]any{"order_id": "o3", "status": "paid", "ts": "2026-01-01T10:41:00Z"},
			},
			Output: []any{
				map[string]any{"event": "absent", "key": "o2", "first_at": "2026-01-01T10:05:00Z", "deadline": "2026-01-01T10:35:00Z",
					"first_record": map[string]any{"order_id": "o2", "status": "placed", "ts": "2026-01-01T10:05:00Z"}},
			},
		}, {
			Title:   "A then event exactly at the deadline is in time",
			Summary: "The heartbeat answer comes exactly 10 seconds after the ping: no absence. The second ping gets no answer.",
			Step:    "first: msg == \"ping\"\nthen: msg == \"pong\"\nwithin: 10s\ngrace: 0s\n",
			Input: []any{
				map[string]any{"msg": "ping", "ts": "2026-01-01T10:00:00Z"},
				map[string]any{"msg": "pong", "ts": "2026-01-01T10:00:10Z"},
				map[string]any{"msg": "ping", "ts": "2026-01-01T10:00:20Z"},
			},
			Output: []any{
				map[string]any{"event": "absent", "key": "", "first_at": "2026-01-01T10:00:20Z", "deadline": "2026-01-01T10:00:30Z",
					"first_record": map[string]any{"msg": "ping", "ts": "2026-01-01T10:00:20Z"}},
			},
		}},
		New: func(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) { return build(conf, "absence") },
	})
}

type op struct {
	keyed.Step
	first, then *expression.Program
}

func build(conf catalog.Config, name string) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: name}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	var err error
	f, _ := conf.Get("first")
	if o.first, err = f.Expr(expression.Bool); err != nil {
		return nil, err
	}
	t, _ := conf.Get("then")
	if o.then, err = t.Expr(expression.Bool); err != nil {
		return nil, err
	}
	m := &machine{absence: name == "absence"}
	if m.within, err = keyed.Duration(conf, "within"); err != nil {
		return nil, err
	}
	o.Runner.Machine = m
	return o, nil
}

type event struct {
	First bool            `json:"a,omitempty"`
	Then  bool            `json:"b,omitempty"`
	Value json.RawMessage `json:"v"`
}

// ProcessTask evaluates the predicates now, so a failing one sends this
// record to the DLQ; records that are neither first nor then are done.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	var ev event
	if ev.First, err = o.first.Bool(r); err != nil {
		return err
	}
	if ev.Then, err = o.then.Bool(r); err != nil {
		return err
	}
	if !ev.First && !ev.Then {
		// It still moves the frontier: other keys' deadlines may be due.
		return o.Advance(ctx, task, r, out)
	}
	if ev.Value, err = record.EncodeJSON(record.Plain(r.Value)); err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return o.Ingest(ctx, task, key, r, payload, out)
}

type pending struct {
	T int64           `json:"t"`
	V json.RawMessage `json:"v"`
}

type machine struct {
	within  int64
	absence bool
}

func decode(raw json.RawMessage) any {
	v, err := record.DecodeJSON(raw)
	if err != nil {
		return nil
	}
	return v
}

func (m *machine) Event(key, st []byte, t int64, payload []byte) (keyed.Result, error) {
	var ev event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return keyed.Result{}, err
	}
	var ps []pending
	if st != nil {
		if err := json.Unmarshal(st, &ps); err != nil {
			return keyed.Result{}, err
		}
	}
	var out []keyed.Emit
	if ev.Then {
		// Pending firsts are never past their deadline here: the timer
		// at deadline + 1 ms drops (or reports) them before any event
		// after the deadline is applied.
		if len(ps) > 0 && !m.absence {
			out = append(out, keyed.Emit{Time: t, Value: map[string]any{
				"event": "sequence", "key": string(key), "first_at": keyed.FormatTime(ps[0].T), "at": keyed.FormatTime(t),
				"elapsed_ms": int(t - ps[0].T), "first_record": decode(ps[0].V), "then_record": decode(ev.Value),
			}})
		}
		ps = nil
	}
	if ev.First {
		ps = append(ps, pending{T: t, V: ev.Value})
	}
	return m.save(ps, out)
}

// Timer drops (sequence) or reports (absence) the first events whose
// deadline is before at.
func (m *machine) Timer(key, st []byte, at int64) (keyed.Result, error) {
	var ps []pending
	if err := json.Unmarshal(st, &ps); err != nil {
		return keyed.Result{}, err
	}
	var out []keyed.Emit
	i := 0
	for ; i < len(ps) && ps[i].T+m.within < at; i++ {
		if m.absence {
			d := ps[i].T + m.within
			out = append(out, keyed.Emit{Time: d, Value: map[string]any{
				"event": "absent", "key": string(key), "first_at": keyed.FormatTime(ps[i].T), "deadline": keyed.FormatTime(d),
				"first_record": decode(ps[i].V),
			}})
		}
	}
	return m.save(ps[i:], out)
}

func (m *machine) save(ps []pending, out []keyed.Emit) (keyed.Result, error) {
	if len(ps) == 0 {
		return keyed.Result{Out: out}, nil
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return keyed.Result{}, err
	}
	// A then event at the deadline is in time, so the oldest first is
	// decided 1 ms after it.
	return keyed.Result{State: b, Timer: ps[0].T + m.within + 1, HasTimer: true, Out: out}, nil
}
