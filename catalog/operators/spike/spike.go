// Package spike provides the spike operator: per key, an alert for a value
// far above the key's rolling mean over a sliding window of event time. It
// is a keyed state machine (catalog/operators/internal/keyed) with its
// state in the task's store.
package spike

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
  "required": ["value", "within", "factor", "min_count", "grace"],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the key the mean is kept per, such as merchant_id; the record key when left out. Records are repartitioned by it."},
    "value": {"type": "string", "minLength": 1, "description": "Numeric expression, such as amount."},
    "within": {"type": "string", "description": "The rolling window: the mean is over the key's earlier records of the last within of event time, a duration like 1h or 7d."},
    "factor": {"type": "number", "exclusiveMinimum": 0, "description": "Alert when the value is more than factor times the rolling mean, such as 5."},
    "min_count": {"type": "integer", "minimum": 1, "description": "How many earlier records the window must hold for the mean to count."},
    "grace": {"type": "string", "description": "How far behind the stream time a record may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Records further behind go to the DLQ with reason late."}
  }
}`

// Register adds the spike operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "spike",
		Summary: "Alerts on a value more than a factor above the key's rolling mean over a sliding window of event time.",
		Description: "Per key (`by`, else the record key), records are taken in event-time order. For a record with value x " +
			"at t, the rolling mean is over the key's earlier records with event times in (t - `within`, t] (the record " +
			"itself excluded). When that window holds at least `min_count` records, its mean is above zero and x is more " +
			"than `factor` times it, the step emits `{event: spike, key, at, observed, mean, ratio, count, record}` with " +
			"the record's event time, keyed by the grouping key; `record` is the record's value. Every record then joins " +
			"the window, spikes included.\n\n" +
			"Records up to `grace` behind the stream time are reordered; older ones go to the DLQ with reason `late`. A " +
			"value that is not a number (null included) sends the record to the DLQ with reason `type`. State per key is " +
			"the times and values of its last `within`, in the task's store, dropped once the window is empty.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"within"}},
		Examples: []catalog.Example{{
			Title: "A payment five times the card's usual",
			Summary: "Card c1 pays about 20 a time; 150 is 7.5 times its mean over the last day. The card with one " +
				"earlier payment has too few to compare.",
			Step: "by: card\nvalue: eur\nwithin: 24h\nfactor: 5\nmin_count: 3\ngrace: 0s\n",
			Input: []any{
				map[string]any{"card": "c1", "eur": 20, "ts": "2026-01-01T09:00:00Z"},
				map[string]any{"card": "c1", "eur": 25, "ts": "2026-01-01T12:00:00Z"},
				map[string]any{"card": "c2", "eur": 10, "ts": "2026-01-01T12:30:00Z"},
				map[string]any{"card": "c1", "eur": 15, "ts": "2026-01-01T18:00:00Z"},
				map[string]any{"card": "c2", "eur": 500, "ts": "2026-01-01T19:00:00Z"},
				map[string]any{"card": "c1", "eur": 150, "ts": "2026-01-01T20:00:00Z"},
			},
			Output: []any{
				map[string]any{"event": "spike", "key": "c1", "at": "2026-01-01T20:00:00Z", "observed": 150, "mean": 20, "ratio": 7.5, "count": 3,
					"record": map[string]any{"card": "c1", "eur": 150, "ts": "2026-01-01T20:00:00Z"}},
			},
		}},
		New: newSpike,
	})
}

type op struct {
	keyed.Step
	value *expression.Program
}

func newSpike(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "spike"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	v, _ := conf.Get("value")
	var err error
	if o.value, err = v.Expr(expression.Any); err != nil {
		return nil, err
	}
	m := &machine{}
	if m.within, err = keyed.Duration(conf, "within"); err != nil {
		return nil, err
	}
	for name, dst := range map[string]any{"factor": &m.factor, "min_count": &m.minCount} {
		c, _ := conf.Get(name)
		if err := c.Decode(dst); err != nil {
			return nil, err
		}
	}
	o.Runner.Machine = m
	return o, nil
}

type sample struct {
	X     float64         `json:"x"`
	Value json.RawMessage `json:"v"`
}

// ProcessTask reads the value now, so a bad one sends this record to the
// DLQ, and hands it to the key's window.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	v, err := o.value.Eval(r)
	if err != nil {
		return err
	}
	var s sample
	var ok bool
	if s.X, ok = keyed.Number(v); !ok {
		return catalog.Rejectf(catalog.ReasonType, "spike value %s must be a finite number, got %s", o.value.Source(), record.Describe(v))
	}
	if s.Value, err = record.EncodeJSON(record.Plain(r.Value)); err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	payload, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return o.Ingest(ctx, task, key, r, payload, out)
}

type window struct {
	Times  []int64   `json:"t"`
	Values []float64 `json:"v"`
}

type machine struct {
	within   int64
	factor   float64
	minCount int
}

func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }

func (m *machine) Event(key, st []byte, t int64, payload []byte) (keyed.Result, error) {
	var s sample
	if err := json.Unmarshal(payload, &s); err != nil {
		return keyed.Result{}, err
	}
	var w window
	if st != nil {
		if err := json.Unmarshal(st, &w); err != nil {
			return keyed.Result{}, err
		}
	}
	i := 0
	for i < len(w.Times) && w.Times[i] <= t-m.within {
		i++
	}
	w.Times, w.Values = w.Times[i:], w.Values[i:]
	var out []keyed.Emit
	if n := len(w.Values); n >= m.minCount {
		sum := 0.0
		for _, v := range w.Values {
			sum += v
		}
		if mean := sum / float64(n); mean > 0 && s.X > m.factor*mean {
			v, err := record.DecodeJSON(s.Value)
			if err != nil {
				return keyed.Result{}, err
			}
			out = append(out, keyed.Emit{Time: t, Value: map[string]any{
				"event": "spike", "key": string(key), "at": keyed.FormatTime(t), "observed": s.X,
				"mean": round4(mean), "ratio": round4(s.X / mean), "count": n, "record": v,
			}})
		}
	}
	w.Times, w.Values = append(w.Times, t), append(w.Values, s.X)
	b, err := json.Marshal(w)
	if err != nil {
		return keyed.Result{}, err
	}
	return keyed.Result{State: b, Timer: t + m.within, HasTimer: true, Out: out}, nil
}

// Timer forgets the key: its newest record has left the window.
func (m *machine) Timer(_, _ []byte, _ int64) (keyed.Result, error) {
	return keyed.Result{}, nil
}
