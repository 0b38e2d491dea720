// Package heartbeat provides the heartbeat operator: per key, an event when
// no record has come from the key for a duration of event time, reported
// when the event-time frontier (moved by other keys' records and by idle
// time) passes the deadline, and one when the key is heard from again. It
// is a keyed state machine (catalog/operators/internal/keyed) with its state
// in the task's store.
package heartbeat

import (
	"context"
	"encoding/json"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["timeout", "grace"],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the device or service whose heartbeat this is; the record key when left out. Records are repartitioned by it."},
    "timeout": {"type": "string", "description": "How long a key may stay silent, in event time, before it is reported missing: a duration like 1m or 15m. A record exactly timeout after the last one is in time."},
    "grace": {"type": "string", "description": "How far behind the stream time a record may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Records further behind go to the DLQ with reason late."},
    "emit": {"enum": ["missing", "transitions"], "default": "transitions", "description": "missing: only missing events. transitions: also a resumed event when a missing key is heard from again."}
  }
}`

// Register adds the heartbeat operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "heartbeat",
		Summary: "Reports keys that have sent nothing for a duration of event time, and when they resume.",
		Description: "Per key (`by`, else the record key), each record restarts the key's clock. When the event-time " +
			"frontier (the stream time minus `grace`) passes `timeout` after a key's last record with no record since, " +
			"the step emits `{event: missing, key, last_seen, at}` with `at` = last_seen + timeout as its event time. " +
			"The stream time moves with the records of every key in the task and with idle time (when the whole input is " +
			"quiet, `advance:` in tests), so a key that goes silent is reported even when nothing else arrives. With " +
			"`emit: transitions` (the default), the next record of a missing key emits `{event: resumed, key, last_seen, " +
			"at, silent_ms}`. Outputs are keyed by the grouping key.\n\n" +
			"A key is only known once it has sent a record: a device that never reports is not detected. Records up to " +
			"`grace` behind the stream time are reordered; older ones go to the DLQ with reason `late`. State is one " +
			"small entry per key (its last event time), in the task's store; a missing key keeps its entry until it " +
			"resumes.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"timeout"}},
		Examples: []catalog.Example{{
			Title: "Meters that stop reporting for five minutes",
			Summary: "m2 reports at 10:00 and then only at 10:09: it is reported missing as of 10:05 once m1's reading " +
				"at 10:06 moves the stream time past it, and resumed at 10:09. m1 is missing at the end of the input.",
			Step: "by: meter\ntimeout: 5m\ngrace: 0s\n",
			Input: []any{
				map[string]any{"meter": "m1", "kwh": 1.5, "ts": "2026-01-01T10:00:00Z"},
				map[string]any{"meter": "m2", "kwh": 0.7, "ts": "2026-01-01T10:00:00Z"},
				map[string]any{"meter": "m1", "kwh": 1.6, "ts": "2026-01-01T10:03:00Z"},
				map[string]any{"meter": "m1", "kwh": 1.4, "ts": "2026-01-01T10:06:00Z"},
				map[string]any{"meter": "m2", "kwh": 0.9, "ts": "2026-01-01T10:09:00Z"},
			},
			Output: []any{
				map[string]any{"event": "missing", "key": "m2", "last_seen": "2026-01-01T10:00:00Z", "at": "2026-01-01T10:05:00Z"},
				map[string]any{"event": "resumed", "key": "m2", "last_seen": "2026-01-01T10:00:00Z", "at": "2026-01-01T10:09:00Z", "silent_ms": 540000},
				map[string]any{"event": "missing", "key": "m1", "last_seen": "2026-01-01T10:06:00Z", "at": "2026-01-01T10:11:00Z"},
				map[string]any{"event": "missing", "key": "m2", "last_seen": "2026-01-01T10:09:00Z", "at": "2026-01-01T10:14:00Z"},
			},
		}, {
			Title:   "Late heartbeats go to the DLQ",
			Summary: "With 30s of grace, a record a minute behind the stream time is late; it cannot un-miss a key.",
			Step:    "timeout: 1m\ngrace: 30s\nemit: missing\n",
			Input: []any{
				map[string]any{"ts": "2026-01-01T10:02:00Z"},
				map[string]any{"ts": "2026-01-01T10:01:00Z"},
			},
			Output: []any{
				map[string]any{"event": "missing", "key": "", "last_seen": "2026-01-01T10:02:00Z", "at": "2026-01-01T10:03:00Z"},
			},
			DLQ: []catalog.Reason{catalog.ReasonLate},
		}},
		New: newHeartbeat,
	})
}

type op struct{ keyed.Step }

func newHeartbeat(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "heartbeat"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	m := &machine{resumed: true}
	var err error
	if m.timeout, err = keyed.Duration(conf, "timeout"); err != nil {
		return nil, err
	}
	if e, ok := conf.Get("emit"); ok && e.String() == "missing" {
		m.resumed = false
	}
	o.Runner.Machine = m
	return o, nil
}

// ProcessTask restarts the key's clock.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	return o.Ingest(ctx, task, key, r, []byte{}, out)
}

// FieldDemand implements engine.FieldDemander: only the key is read.
func (o *op) FieldDemand([]string, bool) ([]string, bool) {
	if o.By == nil {
		return nil, false
	}
	return o.By.FieldsAnd(nil, false)
}

type beat struct {
	Last    int64 `json:"t"`
	Missing bool  `json:"m,omitempty"`
}

type machine struct {
	timeout int64
	resumed bool
}

func (m *machine) Event(key, st []byte, t int64, _ []byte) (keyed.Result, error) {
	var out []keyed.Emit
	if st != nil {
		var b beat
		if err := json.Unmarshal(st, &b); err != nil {
			return keyed.Result{}, err
		}
		if b.Missing && m.resumed {
			out = append(out, keyed.Emit{Time: t, Value: map[string]any{
				"event": "resumed", "key": string(key), "last_seen": keyed.FormatTime(b.Last), "at": keyed.FormatTime(t), "silent_ms": int(t - b.Last),
			}})
		}
	}
	st, err := json.Marshal(beat{Last: t})
	if err != nil {
		return keyed.Result{}, err
	}
	// A record exactly timeout later is in time: decide 1 ms after.
	return keyed.Result{State: st, Timer: t + m.timeout + 1, HasTimer: true, Out: out}, nil
}

func (m *machine) Timer(key, st []byte, _ int64) (keyed.Result, error) {
	var b beat
	if err := json.Unmarshal(st, &b); err != nil {
		return keyed.Result{}, err
	}
	at := b.Last + m.timeout
	b.Missing = true
	nb, err := json.Marshal(b)
	if err != nil {
		return keyed.Result{}, err
	}
	return keyed.Result{State: nb, Out: []keyed.Emit{{Time: at, Value: map[string]any{
		"event": "missing", "key": string(key), "last_seen": keyed.FormatTime(b.Last), "at": keyed.FormatTime(at),
	}}}}, nil
}
