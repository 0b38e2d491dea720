// Package anomaly provides the anomaly operator: per key, an exponentially
// weighted moving mean and variance of a value (in event-time order), and
// an alert for a value whose z-score against them is at least a threshold.
// It is a keyed state machine (catalog/operators/internal/keyed) with its
// state in the task's store.
package anomaly

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
  "required": ["value", "alpha", "z", "warmup", "grace"],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the series the statistics are kept per, such as sensor_id; the record key when left out. Records are repartitioned by it."},
    "value": {"type": "string", "minLength": 1, "description": "Numeric expression for the observed value, such as temperature."},
    "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description": "Weight of each new value in the moving mean and variance: 0.1 remembers about the last 10 to 20 values, 0.01 about the last 100 to 200."},
    "z": {"type": "number", "exclusiveMinimum": 0, "description": "Alert when |value - mean| / standard deviation is at least this, such as 3."},
    "warmup": {"type": "integer", "minimum": 1, "description": "How many values a key must have had before it can alert, so the statistics have settled."},
    "direction": {"enum": ["both", "above", "below"], "default": "both", "description": "Which side of the mean alerts."},
    "grace": {"type": "string", "description": "How far behind the stream time a record may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Records further behind go to the DLQ with reason late."}
  }
}`

// Register adds the anomaly operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "anomaly",
		Summary: "Alerts on values far from a key's exponentially weighted moving mean (EWMA z-score).",
		Description: "Per key (`by`, else the record key), values are taken in event-time order. Each value x is first " +
			"scored against the statistics of the values before it: z = (x - mean) / stddev. When the key has had at " +
			"least `warmup` values, the standard deviation is above zero and |z| >= `z` (or z >= `z` with " +
			"`direction: above`, z <= -`z` with `below`), the step emits `{event: anomaly, key, at, observed, mean, " +
			"stddev, z, record}` with the record's event time, keyed by the grouping key; `record` is the record's value. Then x " +
			"updates the statistics, anomalous or not: with d = x - mean, mean += alpha d and " +
			"variance = (1 - alpha)(variance + alpha d²) (the exponentially weighted variance, Finch 2009). The first " +
			"value starts the mean at itself with variance 0.\n\n" +
			"Records up to `grace` behind the stream time are reordered; older ones go to the DLQ with reason `late`. A " +
			"value that is not a number (null included) sends the record to the DLQ with reason `type`. State is three " +
			"numbers per key in the task's store.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"alpha"}},
		Examples: []catalog.Example{{
			Title: "A pressure reading far from the usual",
			Summary: "After five readings around 100, 130 is more than 3 standard deviations above the moving mean. " +
				"The second pump's first readings are still warming up.",
			Step: "by: pump\nvalue: bar\nalpha: 0.2\nz: 3\nwarmup: 5\ngrace: 0s\n",
			Input: []any{
				map[string]any{"pump": "p1", "bar": 100, "ts": "2026-01-01T10:00:00Z"},
				map[string]any{"pump": "p1", "bar": 102, "ts": "2026-01-01T10:01:00Z"},
				map[string]any{"pump": "p1", "bar": 98, "ts": "2026-01-01T10:02:00Z"},
				map[string]any{"pump": "p1", "bar": 101, "ts": "2026-01-01T10:03:00Z"},
				map[string]any{"pump": "p1", "bar": 99, "ts": "2026-01-01T10:04:00Z"},
				map[string]any{"pump": "p2", "bar": 50, "ts": "2026-01-01T10:04:30Z"},
				map[string]any{"pump": "p2", "bar": 90, "ts": "2026-01-01T10:04:40Z"},
				map[string]any{"pump": "p1", "bar": 130, "ts": "2026-01-01T10:05:00Z"},
			},
			Output: []any{
				map[string]any{"event": "anomaly", "key": "p1", "at": "2026-01-01T10:05:00Z", "observed": 130,
					"mean": 99.9088, "stddev": 1.1284, "z": 26.6672,
					"record": map[string]any{"pump": "p1", "bar": 130, "ts": "2026-01-01T10:05:00Z"}},
			},
		}, {
			Title:   "Values that are not numbers, and late ones",
			Summary: "A text reading goes to the DLQ with reason type; with no grace a reading behind the stream time is late.",
			Step:    "value: bar\nalpha: 0.1\nz: 3\nwarmup: 10\ngrace: 0s\n",
			Input: []any{
				map[string]any{"bar": "high", "ts": "2026-01-01T10:00:00Z"},
				map[string]any{"bar": 1, "ts": "2026-01-01T10:01:00Z"},
				map[string]any{"bar": 2, "ts": "2026-01-01T10:00:30Z"},
			},
			DLQ: []catalog.Reason{catalog.ReasonType, catalog.ReasonLate},
		}},
		New: newAnomaly,
	})
}

type op struct {
	keyed.Step
	value *expression.Program
}

func newAnomaly(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "anomaly"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	v, _ := conf.Get("value")
	var err error
	if o.value, err = v.Expr(expression.Any); err != nil {
		return nil, err
	}
	m := &machine{above: true, below: true}
	for name, dst := range map[string]any{"alpha": &m.alpha, "z": &m.z, "warmup": &m.warmup} {
		c, _ := conf.Get(name)
		if err := c.Decode(dst); err != nil {
			return nil, err
		}
	}
	if d, ok := conf.Get("direction"); ok {
		m.above, m.below = d.String() != "below", d.String() != "above"
	}
	o.Runner.Machine = m
	return o, nil
}

type sample struct {
	X     float64         `json:"x"`
	Value json.RawMessage `json:"v"`
}

// ProcessTask reads the value now, so a bad one sends this record to the
// DLQ, and hands it to the key's statistics.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	v, err := o.value.Eval(r)
	if err != nil {
		return err
	}
	x, ok := keyed.Number(v)
	if !ok {
		return catalog.Rejectf(catalog.ReasonType, "anomaly value %s must be a number, got %s", o.value.Source(), record.Describe(v))
	}
	s := sample{X: x}
	if s.Value, err = record.EncodeJSON(record.Plain(r.Value)); err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	payload, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return o.Ingest(ctx, task, key, r, payload, out)
}

// Stats are a key's moving statistics.
type Stats struct {
	N    int     `json:"n"`
	Mean float64 `json:"m"`
	Var  float64 `json:"v"`
}

// Add updates s with x: the exponentially weighted mean and variance.
func (s *Stats) Add(x, alpha float64) {
	if s.N == 0 {
		s.N, s.Mean, s.Var = 1, x, 0
		return
	}
	d := x - s.Mean
	s.Mean += alpha * d
	s.Var = (1 - alpha) * (s.Var + alpha*d*d)
	s.N++
}

type machine struct {
	alpha, z     float64
	warmup       int
	above, below bool
}

func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }

func (m *machine) Event(key, st []byte, t int64, payload []byte) (keyed.Result, error) {
	var s sample
	if err := json.Unmarshal(payload, &s); err != nil {
		return keyed.Result{}, err
	}
	var stats Stats
	if st != nil {
		if err := json.Unmarshal(st, &stats); err != nil {
			return keyed.Result{}, err
		}
	}
	var out []keyed.Emit
	if sd := math.Sqrt(stats.Var); stats.N >= m.warmup && sd > 0 {
		z := (s.X - stats.Mean) / sd
		if (m.above && z >= m.z) || (m.below && z <= -m.z) {
			v, err := record.DecodeJSON(s.Value)
			if err != nil {
				return keyed.Result{}, err
			}
			out = append(out, keyed.Emit{Time: t, Value: map[string]any{
				"event": "anomaly", "key": string(key), "at": keyed.FormatTime(t), "observed": s.X,
				"mean": round4(stats.Mean), "stddev": round4(sd), "z": round4(z), "record": v,
			}})
		}
	}
	stats.Add(s.X, m.alpha)
	b, err := json.Marshal(stats)
	if err != nil {
		return keyed.Result{}, err
	}
	return keyed.Result{State: b, Out: out}, nil
}

func (m *machine) Timer(_, st []byte, _ int64) (keyed.Result, error) {
	return keyed.Result{State: st}, nil
}
