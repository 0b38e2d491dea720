// Package threshold provides the threshold operator: per key, an alert when
// a condition has held for at least a duration of event time, re-armed only
// once a clear condition ends the episode (hysteresis). It is a keyed state
// machine (catalog/operators/internal/keyed); state is the task's store.
package threshold

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
  "required": ["when", "for", "grace"],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the device or entity the condition is tracked for; the record key when left out. Records are repartitioned by it."},
    "when": {"type": "string", "minLength": 1, "description": "Predicate that starts an episode, such as temperature > 80. Null counts as false."},
    "clear": {"type": "string", "minLength": 1, "description": "Predicate that ends an episode, such as temperature < 75 (hysteresis: readings in between keep the episode going). Default: the negation of when."},
    "for": {"type": "string", "description": "How long an episode must last, in event time, before the alert: a duration like 30s or 5m."},
    "grace": {"type": "string", "description": "How far behind the stream time a reading may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Readings further behind go to the DLQ with reason late."},
    "value": {"type": "string", "minLength": 1, "description": "Expression for the reading to report as reading: the latest one in the alert, the clearing one in a clear event."},
    "emit": {"enum": ["alerts", "transitions"], "default": "alerts", "description": "alerts: only alert events. transitions: also a clear event when an alerted episode ends."}
  }
}`

// Register adds the threshold operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "threshold",
		Summary: "Alerts when a condition has held for a key for at least a duration of event time, with re-arm.",
		Description: "Per key (`by`, else the record key), readings are applied in event-time order. A reading for which " +
			"`when` is true starts an **episode**, unless one is going on; a reading for which `clear` is true ends it " +
			"(`clear` defaults to `!(when)`; a separate `clear` gives hysteresis, so readings that jitter around one " +
			"threshold do not start and end episodes). Between readings the last one holds.\n\n" +
			"Once an episode has lasted `for` (its start plus `for` is reached by the event-time frontier, the stream " +
			"time minus `grace`, with no reading clearing it before), one `alert` is emitted with event time " +
			"start + `for`: `{event: alert, key, since, at, reading}`, where `reading` is the `value` of the latest reading. A reading clearing the episode at exactly " +
			"start + `for` comes after the alert (the condition held for the whole duration). No other alert " +
			"comes for the key until the episode ends and a new one starts: that is the re-arm. With " +
			"`emit: transitions` the end of an alerted episode emits `{event: clear, key, since, at, duration_ms, reading}` with the clearing reading.\n\n" +
			"Outputs are keyed by the grouping key. Readings up to `grace` behind the stream time are reordered by " +
			"event time; a reading further behind goes to the DLQ with reason `late`. A `when` or `clear` that is not a " +
			"boolean (or null) sends the reading to the DLQ with reason `expression`. State is one small entry per key " +
			"with an episode going on, in the task's store, so it survives a restart.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"for"}},
		Examples: []catalog.Example{
			{
				Title: "Overheating for five minutes",
				Summary: "Sensor s1 is above 80 from 10:00 to past 10:05 and alerts at 10:05; sensor s2 cools down " +
					"after two minutes. The alert for s1 fires when a reading at 10:06 moves the stream time past 10:05.",
				Step: "by: sensor\nwhen: temp > 80\nfor: 5m\ngrace: 0s\nvalue: temp\n",
				Input: []any{
					map[string]any{"sensor": "s1", "temp": 85, "ts": "2026-01-01T10:00:00Z"},
					map[string]any{"sensor": "s2", "temp": 90, "ts": "2026-01-01T10:01:00Z"},
					map[string]any{"sensor": "s2", "temp": 70, "ts": "2026-01-01T10:03:00Z"},
					map[string]any{"sensor": "s1", "temp": 88, "ts": "2026-01-01T10:04:00Z"},
					map[string]any{"sensor": "s1", "temp": 86, "ts": "2026-01-01T10:06:00Z"},
				},
				Output: []any{
					map[string]any{"event": "alert", "key": "s1", "since": "2026-01-01T10:00:00Z", "at": "2026-01-01T10:05:00Z", "reading": 88},
				},
			},
			{
				Title: "Hysteresis, re-arm and clear events",
				Summary: "An episode starts above 80 and ends only below 75, so 78 does not end it. After the clear at " +
					"10:08 the alert is re-armed, and the episode from 10:09 alerts again (at the end of input).",
				Step: "when: temp > 80\nclear: temp < 75\nfor: 2m\ngrace: 0s\nvalue: temp\nemit: transitions\n",
				Input: []any{
					map[string]any{"temp": 82, "ts": "2026-01-01T10:00:00Z"},
					map[string]any{"temp": 78, "ts": "2026-01-01T10:01:00Z"},
					map[string]any{"temp": 83, "ts": "2026-01-01T10:03:00Z"},
					map[string]any{"temp": 74, "ts": "2026-01-01T10:08:00Z"},
					map[string]any{"temp": 81, "ts": "2026-01-01T10:09:00Z"},
				},
				Output: []any{
					map[string]any{"event": "alert", "key": "", "since": "2026-01-01T10:00:00Z", "at": "2026-01-01T10:02:00Z", "reading": 78},
					map[string]any{"event": "clear", "key": "", "since": "2026-01-01T10:00:00Z", "at": "2026-01-01T10:08:00Z", "duration_ms": 480000, "reading": 74},
					map[string]any{"event": "alert", "key": "", "since": "2026-01-01T10:09:00Z", "at": "2026-01-01T10:11:00Z", "reading": 81},
				},
			},
			{
				Title: "Out-of-order readings within grace, late ones to the DLQ",
				Summary: "With 1m of grace the 10:01 reading arriving after 10:02 is applied in event-time order, so the " +
					"episode starts at 10:01. The 09:58 reading is more than a minute behind the stream time: late.",
				Step: "by: sensor\nwhen: temp > 80\nfor: 2m\ngrace: 1m\n",
				Input: []any{
					map[string]any{"sensor": "s1", "temp": 85, "ts": "2026-01-01T10:02:00Z"},
					map[string]any{"sensor": "s1", "temp": 85, "ts": "2026-01-01T10:01:00Z"},
					map[string]any{"sensor": "s1", "temp": 20, "ts": "2026-01-01T09:58:00Z"},
					map[string]any{"sensor": "s1", "temp": 90, "ts": "2026-01-01T10:05:00Z"},
				},
				Output: []any{
					map[string]any{"event": "alert", "key": "s1", "since": "2026-01-01T10:01:00Z", "at": "2026-01-01T10:03:00Z", "reading": nil},
				},
				DLQ: []catalog.Reason{catalog.ReasonLate},
			},
		},
		New: newThreshold,
	})
}

type op struct {
	keyed.Step
	when, clear, value *expression.Program
}

func newThreshold(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "threshold"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	w, _ := conf.Get("when")
	var err error
	if o.when, err = w.Expr(expression.Bool); err != nil {
		return nil, err
	}
	if c, ok := conf.Get("clear"); ok {
		if o.clear, err = c.Expr(expression.Bool); err != nil {
			return nil, err
		}
	}
	if v, ok := conf.Get("value"); ok {
		if o.value, err = v.Expr(expression.Any); err != nil {
			return nil, err
		}
	}
	m := &machine{transitions: false}
	if m.dur, err = keyed.Duration(conf, "for"); err != nil {
		return nil, err
	}
	if e, ok := conf.Get("emit"); ok && e.String() == "transitions" {
		m.transitions = true
	}
	o.Runner.Machine = m
	return o, nil
}

// ProcessTask evaluates the predicates now (so a failing expression sends
// this record to the DLQ) and hands the reading to the state machine.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	var rd reading
	if rd.When, err = o.when.Bool(r); err != nil {
		return err
	}
	if o.clear != nil {
		if rd.Clear, err = o.clear.Bool(r); err != nil {
			return err
		}
	} else {
		rd.Clear = !rd.When
	}
	if o.value != nil {
		v, err := o.value.Eval(r)
		if err != nil {
			return err
		}
		if rd.Value, err = record.EncodeJSON(record.Plain(v)); err != nil {
			return catalog.Reject(catalog.ReasonType, err)
		}
	}
	payload, err := json.Marshal(rd)
	if err != nil {
		return err
	}
	return o.Ingest(ctx, task, key, r, payload, out)
}

// FieldDemand implements engine.FieldDemander.
func (o *op) FieldDemand([]string, bool) ([]string, bool) {
	return expression.FieldsOf(o.when, o.By, o.clear, o.value)
}

// reading is what the machine keeps of a record.
type reading struct {
	When  bool            `json:"w,omitempty"`
	Clear bool            `json:"c,omitempty"`
	Value json.RawMessage `json:"v,omitempty"`
}

// episode is a key's state while its condition holds.
type episode struct {
	Since   int64           `json:"s"`
	Alerted bool            `json:"a,omitempty"`
	Last    json.RawMessage `json:"v,omitempty"`
}

type machine struct {
	dur         int64
	transitions bool
}

func decodeValue(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	v, err := record.DecodeJSON(raw)
	if err != nil {
		return nil
	}
	return v
}

func (m *machine) Event(key, st []byte, t int64, payload []byte) (keyed.Result, error) {
	var rd reading
	if err := json.Unmarshal(payload, &rd); err != nil {
		return keyed.Result{}, err
	}
	if st == nil {
		if !rd.When {
			return keyed.Result{}, nil
		}
		return m.save(episode{Since: t, Last: rd.Value}, nil)
	}
	var ep episode
	if err := json.Unmarshal(st, &ep); err != nil {
		return keyed.Result{}, err
	}
	if rd.Clear {
		res := keyed.Result{}
		if ep.Alerted && m.transitions {
			res.Out = []keyed.Emit{{Time: t, Value: map[string]any{
				"event": "clear", "key": string(key), "since": keyed.FormatTime(ep.Since), "at": keyed.FormatTime(t),
				"duration_ms": int(t - ep.Since), "reading": decodeValue(rd.Value),
			}}}
		}
		return res, nil
	}
	ep.Last = rd.Value
	return m.save(ep, nil)
}

func (m *machine) Timer(key, st []byte, at int64) (keyed.Result, error) {
	var ep episode
	if err := json.Unmarshal(st, &ep); err != nil {
		return keyed.Result{}, err
	}
	ep.Alerted = true
	return m.save(ep, []keyed.Emit{{Time: at, Value: map[string]any{
		"event": "alert", "key": string(key), "since": keyed.FormatTime(ep.Since), "at": keyed.FormatTime(at),
		"reading": decodeValue(ep.Last),
	}}})
}

func (m *machine) save(ep episode, out []keyed.Emit) (keyed.Result, error) {
	b, err := json.Marshal(ep)
	if err != nil {
		return keyed.Result{}, err
	}
	res := keyed.Result{State: b, Out: out}
	if !ep.Alerted {
		res.Timer, res.HasTimer = ep.Since+m.dur, true
	}
	return res, nil
}
