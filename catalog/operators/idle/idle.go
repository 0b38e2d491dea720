// Package idle provides the idle operator: per vehicle, episodes of standing
// still with the engine on for longer than a duration, one event per
// episode with its start, end, duration and place. It is a keyed state
// machine (catalog/operators/internal/keyed) driven by event time and the
// watermark, with its state in the task's store.
package idle

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
  "required": ["for", "grace"],
  "anyOf": [{"required": ["speed"]}, {"required": ["radius_m"]}],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the vehicle; the record key when left out. Records are repartitioned by it."},
    "lat": {"type": "string", "minLength": 1, "default": "lat", "description": "Expression for the latitude in degrees."},
    "lon": {"type": "string", "minLength": 1, "default": "lon", "description": "Expression for the longitude in degrees."},
    "speed": {"type": "string", "minLength": 1, "description": "Expression for the speed in km/h. With it, a vehicle is stationary while its speed is below stationary_kmh."},
    "stationary_kmh": {"type": "number", "exclusiveMinimum": 0, "default": 3, "description": "Speed below which the vehicle stands still."},
    "radius_m": {"type": "number", "exclusiveMinimum": 0, "description": "With it, a vehicle is stationary while it stays within this many metres of where the episode started (great-circle distance); with speed too, both must hold."},
    "ignition": {"type": "string", "minLength": 1, "description": "Predicate that is true while the engine is on. Left out, every record counts as engine on (for trackers that report only while the engine runs); null counts as off."},
    "for": {"type": "string", "description": "How long the vehicle must stand with the engine on for the episode to be reported: a duration like 5m."},
    "max_gap": {"type": "string", "default": "10m", "description": "A vehicle that sends nothing for this long (a duration) ends its episode at its last record."},
    "emit": {"enum": ["episodes", "transitions"], "default": "episodes", "description": "episodes: one idle event when an episode that lasted for ends. transitions: also an idling event as soon as an episode reaches for, while it goes on."},
    "grace": {"type": "string", "description": "How far behind the stream time a record may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Records further behind go to the DLQ with reason late."}
  }
}`

// Register adds the idle operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "idle",
		Summary: "Reports vehicles standing still with the engine on for longer than a duration, one event per episode.",
		Description: "Per vehicle (`by`, else the record key), records are applied in event-time order. A record is " +
			"*idle* when the engine is on (`ignition`, or always without it) and the vehicle is stationary: its `speed` " +
			"is below `stationary_kmh`, and, with `radius_m`, its position is within that many metres of where the " +
			"episode started. An episode starts at the first idle record and ends at the first record that is not idle " +
			"(engine off, moving, or out of the radius), or at the last record when the vehicle sends nothing for " +
			"`max_gap`. An episode that lasted at least `for` emits, when it has ended and the event-time frontier " +
			"(stream time minus `grace`) has passed its end:\n\n" +
			"`{event: idle, key, start, end, duration_ms, lat, lon, points}` with the place where it started and the " +
			"number of records in it, and the end as event time.\n\n" +
			"With `emit: transitions`, an episode also emits `{event: idling, key, start, at, lat, lon}` when the frontier " +
			"reaches start + `for` with the episode still going on (an alert while the engine still runs), with that " +
			"time as event time. The frontier moves with every vehicle's records and with idle time, so an episode is " +
			"reported even when its own vehicle has gone quiet.\n\n" +
			"Records up to `grace` behind the stream time are reordered; older ones go to the DLQ with reason `late`. A " +
			"speed or position of the wrong type sends the record to the DLQ with reason `type`; an ignition that is " +
			"not a boolean with reason `expression`. State is one small entry per idle vehicle, in the task's store.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"for"}},
		Examples: []catalog.Example{
			{
				Title: "A truck idling at the loading dock",
				Summary: "t1 stops at 07:00 with the engine running and drives off at 07:12: one idle event of 12 " +
					"minutes, with an idling alert once it had stood for 5. The wait at the lights from 07:20 is shorter " +
					"than 5 minutes, and from 07:30 the engine is off: neither is idling.",
				Step: "by: truck\nspeed: kmh\nignition: engine\nfor: 5m\nemit: transitions\ngrace: 0s\n",
				Input: []any{
					map[string]any{"truck": "t1", "kmh": 0, "engine": true, "lat": 51.9, "lon": 4.4, "ts": "2026-01-01T07:00:00Z"},
					map[string]any{"truck": "t1", "kmh": 1, "engine": true, "lat": 51.9, "lon": 4.4, "ts": "2026-01-01T07:06:00Z"},
					map[string]any{"truck": "t1", "kmh": 0, "engine": true, "lat": 51.9, "lon": 4.4, "ts": "2026-01-01T07:10:00Z"},
					map[string]any{"truck": "t1", "kmh": 25, "engine": true, "lat": 51.9, "lon": 4.4, "ts": "2026-01-01T07:12:00Z"},
					map[string]any{"truck": "t1", "kmh": 0, "engine": true, "lat": 51.91, "lon": 4.41, "ts": "2026-01-01T07:20:00Z"},
					map[string]any{"truck": "t1", "kmh": 30, "engine": true, "lat": 51.91, "lon": 4.41, "ts": "2026-01-01T07:23:00Z"},
					map[string]any{"truck": "t1", "kmh": 0, "engine": false, "lat": 51.92, "lon": 4.42, "ts": "2026-01-01T07:30:00Z"},
					map[string]any{"truck": "t1", "kmh": 0, "engine": false, "lat": 51.92, "lon": 4.42, "ts": "2026-01-01T07:45:00Z"},
				},
				Output: []any{
					map[string]any{"event": "idling", "key": "t1", "start": "2026-01-01T07:00:00Z", "at": "2026-01-01T07:05:00Z", "lat": 51.9, "lon": 4.4},
					map[string]any{"event": "idle", "key": "t1", "start": "2026-01-01T07:00:00Z", "end": "2026-01-01T07:12:00Z",
						"duration_ms": 720000, "lat": 51.9, "lon": 4.4, "points": 3},
				},
			},
			{
				Title: "Within a radius, with a silent tracker and a late record",
				Summary: "Without speed, the van is stationary while it stays within 30 m of where it stopped; the tracker " +
					"reports only while the engine runs. It drifts 11 m and then goes silent after 10:08: the episode ends " +
					"there once max_gap (10m) has passed, which the 10:30 record of another van shows. The 09:00 record is late.",
				Step: "by: van\nradius_m: 30\nfor: 5m\ngrace: 0s\n",
				Input: []any{
					map[string]any{"van": "v1", "lat": 52.0, "lon": 4.3, "ts": "2026-01-01T10:00:00Z"},
					map[string]any{"van": "v1", "lat": 52.0001, "lon": 4.3, "ts": "2026-01-01T10:04:00Z"},
					map[string]any{"van": "v1", "lat": 52.0001, "lon": 4.3, "ts": "2026-01-01T10:08:00Z"},
					map[string]any{"van": "v2", "lat": 52.1, "lon": 4.5, "ts": "2026-01-01T10:30:00Z"},
					map[string]any{"van": "v1", "lat": 52.0, "lon": 4.3, "ts": "2026-01-01T09:00:00Z"},
				},
				Output: []any{
					map[string]any{"event": "idle", "key": "v1", "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:08:00Z",
						"duration_ms": 480000, "lat": 52.0, "lon": 4.3, "points": 3},
				},
				DLQ: []catalog.Reason{catalog.ReasonLate},
			},
		},
		New: newIdle,
	})
}

type op struct {
	keyed.Step
	lat, lon, speed, ignition *expression.Program
}

func newIdle(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "idle"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	m := &machine{stationaryKmh: 3, maxGap: 600000}
	var err error
	if m.dur, err = keyed.Duration(conf, "for"); err != nil {
		return nil, err
	}
	if _, ok := conf.Get("max_gap"); ok {
		if m.maxGap, err = keyed.Duration(conf, "max_gap"); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"stationary_kmh", &m.stationaryKmh}, {"radius_m", &m.radius}} {
		if c, ok := conf.Get(f.name); ok {
			if err := c.Decode(f.dst); err != nil {
				return nil, err
			}
		}
	}
	if e, ok := conf.Get("emit"); ok && e.String() == "transitions" {
		m.transitions = true
	}
	for _, f := range []struct {
		name, def string
		dst       **expression.Program
		want      expression.Type
	}{{"lat", "lat", &o.lat, expression.Any}, {"lon", "lon", &o.lon, expression.Any}, {"speed", "", &o.speed, expression.Any}, {"ignition", "", &o.ignition, expression.Bool}} {
		if c, ok := conf.Get(f.name); ok {
			if *f.dst, err = c.Expr(f.want); err != nil {
				return nil, err
			}
		} else if f.def != "" {
			if *f.dst, err = expression.Compile(f.def, f.want); err != nil {
				return nil, conf.Errorf("%v", err)
			}
		}
	}
	m.hasSpeed = o.speed != nil
	o.Runner.Machine = m
	return o, nil
}

// fix is what the machine keeps of a record.
type fix struct {
	Lat float64 `json:"y"`
	Lon float64 `json:"x"`
	Kmh float64 `json:"v,omitempty"`
	On  bool    `json:"o,omitempty"`
}

// ProcessTask reads the position, speed and ignition now, so bad ones send
// this record to the DLQ, and hands them to the vehicle's machine.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	f := fix{On: true}
	for _, c := range []struct {
		p      *expression.Program
		dst    *float64
		lo, hi float64
	}{{o.lat, &f.Lat, -90, 90}, {o.lon, &f.Lon, -180, 180}, {o.speed, &f.Kmh, 0, 2000}} {
		if c.p == nil {
			continue
		}
		v, err := c.p.Eval(r)
		if err != nil {
			return err
		}
		x, ok := keyed.Number(v)
		if !ok || x < c.lo || x > c.hi {
			return catalog.Rejectf(catalog.ReasonType, "idle %s must be a number from %v to %v, got %s", c.p.Source(), c.lo, c.hi, record.Describe(v))
		}
		*c.dst = x
	}
	if o.ignition != nil {
		if f.On, err = o.ignition.Bool(r); err != nil {
			return err
		}
	}
	payload, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return o.Ingest(ctx, task, key, r, payload, out)
}

// FieldDemand implements engine.FieldDemander.
func (o *op) FieldDemand([]string, bool) ([]string, bool) {
	return expression.FieldsOf(o.By, o.lat, o.lon, o.speed, o.ignition)
}

// episode is a vehicle's idling in progress.
type episode struct {
	Start   int64 `json:"s"`
	At      fix   `json:"f"`
	Last    int64 `json:"l"`
	Points  int   `json:"n"`
	Alerted bool  `json:"a,omitempty"`
}

type machine struct {
	hasSpeed              bool
	stationaryKmh, radius float64
	dur, maxGap           int64
	transitions           bool
}

func (m *machine) idle(ep *episode, f fix) bool {
	if !f.On || (m.hasSpeed && f.Kmh >= m.stationaryKmh) {
		return false
	}
	return m.radius == 0 || ep == nil || haversine(ep.At, f) <= m.radius
}

func (m *machine) Event(key, st []byte, t int64, payload []byte) (keyed.Result, error) {
	var f fix
	if err := json.Unmarshal(payload, &f); err != nil {
		return keyed.Result{}, err
	}
	if st == nil {
		if !m.idle(nil, f) {
			return keyed.Result{}, nil
		}
		return m.save(episode{Start: t, At: f, Last: t, Points: 1}, nil)
	}
	var ep episode
	if err := json.Unmarshal(st, &ep); err != nil {
		return keyed.Result{}, err
	}
	if m.idle(&ep, f) {
		ep.Last = t
		ep.Points++
		return m.save(ep, nil)
	}
	out := m.end(key, ep, t)
	// A record out of the radius may start the next episode where it is.
	if m.radius > 0 && m.idle(nil, f) {
		return m.save(episode{Start: t, At: f, Last: t, Points: 1}, out)
	}
	return keyed.Result{Out: out}, nil
}

// Timer raises the idling alert, or ends an episode whose vehicle went
// silent for max_gap at its last record.
func (m *machine) Timer(key, st []byte, at int64) (keyed.Result, error) {
	var ep episode
	if err := json.Unmarshal(st, &ep); err != nil {
		return keyed.Result{}, err
	}
	if at >= ep.Last+m.maxGap {
		return keyed.Result{Out: m.end(key, ep, ep.Last)}, nil
	}
	ep.Alerted = true
	return m.save(ep, []keyed.Emit{{Time: at, Value: map[string]any{
		"event": "idling", "key": string(key), "start": keyed.FormatTime(ep.Start), "at": keyed.FormatTime(at),
		"lat": ep.At.Lat, "lon": ep.At.Lon,
	}}})
}

func (m *machine) end(key []byte, ep episode, end int64) []keyed.Emit {
	if end-ep.Start < m.dur {
		return nil
	}
	return []keyed.Emit{{Time: end, Value: map[string]any{
		"event": "idle", "key": string(key), "start": keyed.FormatTime(ep.Start), "end": keyed.FormatTime(end),
		"duration_ms": int(end - ep.Start), "lat": ep.At.Lat, "lon": ep.At.Lon, "points": ep.Points,
	}}}
}

// save stores ep with its next timer: the idling alert, when due, else the
// silence that ends it.
func (m *machine) save(ep episode, out []keyed.Emit) (keyed.Result, error) {
	b, err := json.Marshal(ep)
	if err != nil {
		return keyed.Result{}, err
	}
	at := ep.Last + m.maxGap
	if m.transitions && !ep.Alerted && ep.Start+m.dur < at {
		at = ep.Start + m.dur
	}
	return keyed.Result{State: b, Timer: at, HasTimer: true, Out: out}, nil
}

const earthRadius = 6371008.8 // metres, the mean radius

func haversine(a, b fix) float64 {
	const rad = math.Pi / 180
	dLat := (b.Lat - a.Lat) * rad
	dLon := (b.Lon - a.Lon) * rad
	s := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadius * math.Asin(math.Min(1, math.Sqrt(s)))
}
