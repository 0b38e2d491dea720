// Package velocity provides the velocity operator: per key, an alert for a
// record whose sliding window of event time (the records of the key in the
// last `within`, itself included) holds more than a number of records or
// more than an amount. It is a keyed state machine
// (catalog/operators/internal/keyed); state is the task's store.
package velocity

import (
	"context"
	"encoding/json"
	"math"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["within", "grace"],
  "anyOf": [{"required": ["max_count"]}, {"required": ["max_amount", "amount"]}],
  "dependentRequired": {"max_amount": ["amount"], "amount": ["max_amount"]},
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the key limits apply to, such as card_id; the record key when left out. Records are repartitioned by it."},
    "within": {"type": "string", "description": "The sliding window: a record counts together with the key's records of the last within of event time (itself included), a duration like 10m or 24h."},
    "max_count": {"type": "integer", "minimum": 1, "description": "Alert when the window holds more than this many records."},
    "amount": {"type": "string", "minLength": 1, "description": "Numeric expression summed over the window, such as amount."},
    "max_amount": {"type": "number", "description": "Alert when the window's sum of amount is more than this."},
    "grace": {"type": "string", "description": "How far behind the stream time a record may arrive and still be counted in event-time order (0s for none). Required: there is no hidden default. Records further behind go to the DLQ with reason late."},
    "emit": {"enum": ["every", "first"], "default": "every", "description": "every: an alert for each record over a limit. first: only for the first of a run; the next alert needs a record within the limits first."}
  }
}`

// Register adds the velocity operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "velocity",
		Summary: "Alerts when a key has more than N records or more than an amount within a sliding window of event time.",
		Description: "Per key (`by`, else the record key), records are taken in event-time order. For each record, the window " +
			"is the key's records with an event time in (t - `within`, t], the record itself included. When the window holds " +
			"more than `max_count` records, or their `amount` adds up to more than `max_amount`, the step emits an alert for " +
			"that record: `{event: velocity, key, at, since, count, amount, exceeded, record}`, where `since` is the event " +
			"time of the window's oldest record, `exceeded` lists the limits passed (`count`, `amount`) and `record` is the " +
			"triggering record's value, so a payment can be held or reviewed. Records within the limits emit nothing.\n\n" +
			"With `emit: first` only the first record of a run over the limits alerts; a record within the limits re-arms " +
			"the key. Outputs are keyed by the grouping key and carry the triggering record's event time.\n\n" +
			"Records up to `grace` behind the stream time are put in event-time order first (so the window is the same " +
			"whatever the arrival order); records further behind go to the DLQ with reason `late`. An `amount` that is not " +
			"a number (null included) sends the record to the DLQ with reason `type`. State per key is the event times " +
			"and amounts of its last `within`, in the task's store; a key's state is dropped once its newest record is " +
			"`within` behind the event-time frontier.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"within"}},
		Examples: []catalog.Example{
			{
				Title: "More than three payments by a card in ten minutes",
				Summary: "The fourth payment of card c1 within ten minutes alerts; c2's payments are spread out. The " +
					"payment at 10:20 has only itself in its window.",
				Step: "by: card\nwithin: 10m\nmax_count: 3\ngrace: 0s\n",
				Input: []any{
					map[string]any{"card": "c1", "eur": 5, "ts": "2026-01-01T10:00:00Z"},
					map[string]any{"card": "c1", "eur": 7, "ts": "2026-01-01T10:02:00Z"},
					map[string]any{"card": "c2", "eur": 9, "ts": "2026-01-01T10:03:00Z"},
					map[string]any{"card": "c1", "eur": 3, "ts": "2026-01-01T10:05:00Z"},
					map[string]any{"card": "c1", "eur": 4, "ts": "2026-01-01T10:09:00Z"},
					map[string]any{"card": "c2", "eur": 9, "ts": "2026-01-01T10:15:00Z"},
					map[string]any{"card": "c1", "eur": 2, "ts": "2026-01-01T10:20:00Z"},
				},
				Output: []any{
					map[string]any{"event": "velocity", "key": "c1", "at": "2026-01-01T10:09:00Z", "since": "2026-01-01T10:00:00Z",
						"count": 4, "exceeded": []any{"count"},
						"record": map[string]any{"card": "c1", "eur": 4, "ts": "2026-01-01T10:09:00Z"}},
				},
			},
			{
				Title: "More than 1000 in an hour, alerting once per run",
				Summary: "The 800 at 10:30 brings the hour to 1300 and alerts; the 50 at 10:40 is still over but the run " +
					"has alerted. At 11:10 the hour holds 800, 50 and 10 (860): within the limit, which re-arms; the " +
					"1000 at 11:35 brings the hour to 1060 and alerts again.",
				Step: "by: account\nwithin: 1h\namount: amount\nmax_amount: 1000\ngrace: 0s\nemit: first\n",
				Input: []any{
					map[string]any{"account": "a1", "amount": 500, "ts": "2026-01-01T10:00:00Z"},
					map[string]any{"account": "a1", "amount": 800, "ts": "2026-01-01T10:30:00Z"},
					map[string]any{"account": "a1", "amount": 50, "ts": "2026-01-01T10:40:00Z"},
					map[string]any{"account": "a1", "amount": 10, "ts": "2026-01-01T11:10:00Z"},
					map[string]any{"account": "a1", "amount": 1000, "ts": "2026-01-01T11:35:00Z"},
				},
				Output: []any{
					map[string]any{"event": "velocity", "key": "a1", "at": "2026-01-01T10:30:00Z", "since": "2026-01-01T10:00:00Z",
						"count": 2, "amount": 1300, "exceeded": []any{"amount"},
						"record": map[string]any{"account": "a1", "amount": 800, "ts": "2026-01-01T10:30:00Z"}},
					map[string]any{"event": "velocity", "key": "a1", "at": "2026-01-01T11:35:00Z", "since": "2026-01-01T10:40:00Z",
						"count": 3, "amount": 1060, "exceeded": []any{"amount"},
						"record": map[string]any{"account": "a1", "amount": 1000, "ts": "2026-01-01T11:35:00Z"}},
				},
			},
			{
				Title:   "Late records and amounts that are not numbers go to the DLQ",
				Summary: "With 1m of grace, a payment 5 minutes behind the stream time is late.",
				Step:    "within: 10m\namount: amount\nmax_amount: 100\ngrace: 1m\n",
				Input: []any{
					map[string]any{"amount": 60, "ts": "2026-01-01T10:05:00Z"},
					map[string]any{"amount": 70, "ts": "2026-01-01T10:00:00Z"},
					map[string]any{"amount": "lots", "ts": "2026-01-01T10:05:00Z"},
				},
				DLQ: []catalog.Reason{catalog.ReasonLate, catalog.ReasonType},
			},
		},
		New: newVelocity,
	})
}

type op struct {
	keyed.Step
	amount *expression.Program
}

func newVelocity(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "velocity"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	m := &machine{maxAmount: math.Inf(1)}
	var err error
	if m.within, err = keyed.Duration(conf, "within"); err != nil {
		return nil, err
	}
	if c, ok := conf.Get("max_count"); ok {
		if err := c.Decode(&m.maxCount); err != nil {
			return nil, err
		}
	}
	if a, ok := conf.Get("amount"); ok {
		if o.amount, err = a.Expr(expression.Any); err != nil {
			return nil, err
		}
		c, _ := conf.Get("max_amount")
		if err := c.Decode(&m.maxAmount); err != nil {
			return nil, err
		}
	}
	m.hasAmount = o.amount != nil
	if e, ok := conf.Get("emit"); ok && e.String() == "first" {
		m.first = true
	}
	o.Runner.Machine = m
	return o, nil
}

// payment is what the machine keeps of a record: its amount and value.
type payment struct {
	Amount float64         `json:"a,omitempty"`
	Value  json.RawMessage `json:"v"`
}

// ProcessTask evaluates the amount now, so a bad one sends this record to
// the DLQ, and hands the record to the state machine.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	var p payment
	if o.amount != nil {
		v, err := o.amount.Eval(r)
		if err != nil {
			return err
		}
		f, ok := keyed.Number(v)
		if !ok {
			return catalog.Rejectf(catalog.ReasonType, "velocity amount %s must be a number, got %s", o.amount.Source(), record.Describe(v))
		}
		p.Amount = f
	}
	if p.Value, err = record.EncodeJSON(record.Plain(r.Value)); err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return o.Ingest(ctx, task, key, r, payload, out)
}

// window is a key's state: its records of the last within, oldest first.
type window struct {
	Times   []int64   `json:"t"`
	Amounts []float64 `json:"a,omitempty"`
	Alerted bool      `json:"x,omitempty"`
}

type machine struct {
	within    int64
	maxCount  int
	maxAmount float64
	hasAmount bool
	first     bool
}

func (m *machine) Event(key, st []byte, t int64, payload []byte) (keyed.Result, error) {
	var p payment
	if err := json.Unmarshal(payload, &p); err != nil {
		return keyed.Result{}, err
	}
	var w window
	if st != nil {
		if err := json.Unmarshal(st, &w); err != nil {
			return keyed.Result{}, err
		}
	}
	// Drop what slid out: event times at or before t - within.
	i := 0
	for i < len(w.Times) && w.Times[i] <= t-m.within {
		i++
	}
	w.Times = append(w.Times[i:], t)
	if m.hasAmount {
		w.Amounts = append(w.Amounts[i:], p.Amount)
	}
	sum := 0.0
	for _, a := range w.Amounts {
		sum += a
	}
	var exceeded []any
	if m.maxCount > 0 && len(w.Times) > m.maxCount {
		exceeded = append(exceeded, "count")
	}
	if m.hasAmount && sum > m.maxAmount {
		exceeded = append(exceeded, "amount")
	}
	var out []keyed.Emit
	if exceeded != nil && !(m.first && w.Alerted) {
		v, err := record.DecodeJSON(p.Value)
		if err != nil {
			return keyed.Result{}, err
		}
		alert := map[string]any{
			"event": "velocity", "key": string(key), "at": keyed.FormatTime(t), "since": keyed.FormatTime(w.Times[0]),
			"count": len(w.Times), "exceeded": exceeded, "record": v,
		}
		if m.hasAmount {
			alert["amount"] = plainNumber(sum)
		}
		out = []keyed.Emit{{Time: t, Value: alert}}
	}
	w.Alerted = exceeded != nil
	b, err := json.Marshal(w)
	if err != nil {
		return keyed.Result{}, err
	}
	// The newest record leaves the window at t + within: then the key is
	// forgotten, unless more came.
	return keyed.Result{State: b, Timer: t + m.within, HasTimer: true, Out: out}, nil
}

// Timer forgets the key: its newest record has left the window.
func (m *machine) Timer(_, _ []byte, _ int64) (keyed.Result, error) {
	return keyed.Result{}, nil
}

// plainNumber returns a whole sum as an int, as JSON integers decode, so a
// sum of whole amounts reads 1300, not 1300.0.
func plainNumber(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f)
	}
	return f
}
