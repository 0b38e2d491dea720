// Package trip provides the trip operator: per vehicle, trips from ignition
// or speed, each summarised once it has ended: start and end, duration,
// distance by haversine, idle time and maximum speed. It is a keyed state
// machine (catalog/operators/internal/keyed) with its state in the task's
// store.
package trip

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
  "required": ["stop_after", "grace"],
  "anyOf": [{"required": ["speed"]}, {"required": ["ignition"]}],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the vehicle; the record key when left out. Records are repartitioned by it."},
    "lat": {"type": "string", "minLength": 1, "default": "lat", "description": "Expression for the latitude in degrees."},
    "lon": {"type": "string", "minLength": 1, "default": "lon", "description": "Expression for the longitude in degrees."},
    "speed": {"type": "string", "minLength": 1, "description": "Expression for the speed in km/h. Without ignition, a trip is the time the vehicle moves (speed at least moving_kmh)."},
    "ignition": {"type": "string", "minLength": 1, "description": "Predicate that is true while the engine is on. With it, a trip is the time the engine is on."},
    "moving_kmh": {"type": "number", "exclusiveMinimum": 0, "default": 5, "description": "Speed from which the vehicle counts as moving: below it, time is idle and GPS drift adds no distance."},
    "stop_after": {"type": "string", "description": "How long the vehicle must be stopped (ignition off, or below moving_kmh without ignition), or send nothing, for its trip to end: a duration like 3m. Shorter stops (traffic lights, jams) are idle time within the trip."},
    "grace": {"type": "string", "description": "How far behind the stream time a position may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Records further behind go to the DLQ with reason late."}
  }
}`

// Register adds the trip operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "trip",
		Summary: "Detects vehicle trips from ignition or speed and emits one summary per trip with distance, duration, idle time and top speed.",
		Description: "Per vehicle (`by`, else the record key), positions are applied in event-time order. A vehicle is " +
			"*active* while `ignition` is true, or, without `ignition`, while `speed` is at least `moving_kmh`. A trip starts " +
			"at its first active record. It ends where the vehicle stopped (its first inactive record) once it has stayed " +
			"inactive for `stop_after`, or at its last record when it sends nothing for `stop_after`; the summary is emitted " +
			"when the event-time frontier (stream time minus `grace`) passes that point, with the trip's end as its event " +
			"time:\n\n" +
			"`{event: trip, key, start, end, duration_ms, distance_km, idle_ms, max_kmh, start_lat, start_lon, end_lat, " +
			"end_lon, points}`.\n\n" +
			"Distance is the sum of great-circle (haversine) distances between consecutive positions of the trip, counting " +
			"only steps where the vehicle moves at one end (with `speed`: at least `moving_kmh`), so GPS drift while " +
			"standing adds nothing. Idle time is the time between consecutive records during which the vehicle stood " +
			"(speed below `moving_kmh`) within the trip, stops shorter than `stop_after` included. `max_kmh` is null " +
			"without `speed`; `points` counts the trip's records.\n\n" +
			"Records up to `grace` behind the stream time are reordered; older ones go to the DLQ with reason `late`. A " +
			"position, speed or ignition of the wrong type sends the record to the DLQ with reason `type` (or " +
			"`expression`). State is one entry per vehicle on a trip, in the task's store.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"stop_after"}},
		Examples: []catalog.Example{{
			Title: "A short drive from speed",
			Summary: "The van moves from 08:00:10 and stops at 08:03:00 (speed below 5 km/h); it is still standing five " +
				"minutes later, so the trip ends at 08:03:00. The wait at 08:01 is idle time; the last position adds no " +
				"distance as the van stands at both ends of the step.",
			Step: "by: van\nspeed: kmh\nstop_after: 5m\ngrace: 0s\n",
			Input: []any{
				map[string]any{"van": "v1", "lat": 52.0000, "lon": 4.3000, "kmh": 0, "ts": "2026-01-01T08:00:00Z"},
				map[string]any{"van": "v1", "lat": 52.0000, "lon": 4.3000, "kmh": 20, "ts": "2026-01-01T08:00:10Z"},
				map[string]any{"van": "v1", "lat": 52.0050, "lon": 4.3000, "kmh": 45, "ts": "2026-01-01T08:01:00Z"},
				map[string]any{"van": "v1", "lat": 52.0060, "lon": 4.3000, "kmh": 0, "ts": "2026-01-01T08:01:20Z"},
				map[string]any{"van": "v1", "lat": 52.0060, "lon": 4.3000, "kmh": 30, "ts": "2026-01-01T08:02:00Z"},
				map[string]any{"van": "v1", "lat": 52.0100, "lon": 4.3000, "kmh": 2, "ts": "2026-01-01T08:03:00Z"},
				map[string]any{"van": "v1", "lat": 52.0100, "lon": 4.3001, "kmh": 0, "ts": "2026-01-01T08:09:00Z"},
			},
			Output: []any{
				map[string]any{"event": "trip", "key": "v1", "start": "2026-01-01T08:00:10Z", "end": "2026-01-01T08:03:00Z",
					"duration_ms": 170000, "distance_km": 1.112, "idle_ms": 40000, "max_kmh": 45,
					"start_lat": 52.0, "start_lon": 4.3, "end_lat": 52.01, "end_lon": 4.3, "points": 5},
			},
		}},
		New: newTrip,
	})
}

type op struct {
	keyed.Step
	lat, lon, speed, ignition *expression.Program
}

func newTrip(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "trip"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	m := &machine{movingKmh: 5}
	var err error
	if m.stopAfter, err = keyed.Duration(conf, "stop_after"); err != nil {
		return nil, err
	}
	if c, ok := conf.Get("moving_kmh"); ok {
		if err := c.Decode(&m.movingKmh); err != nil {
			return nil, err
		}
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
	m.hasSpeed, m.hasIgnition = o.speed != nil, o.ignition != nil
	o.Runner.Machine = m
	return o, nil
}

// fix is what the machine keeps of a record.
type fix struct {
	Lat, Lon float64
	Kmh      float64 `json:",omitempty"`
	On       bool    `json:",omitempty"`
}

// ProcessTask reads the position, speed and ignition now, so bad ones send
// this record to the DLQ, and hands them to the vehicle's trip.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	var f fix
	for _, c := range []struct {
		p   *expression.Program
		dst *float64
		lim float64
	}{{o.lat, &f.Lat, 90}, {o.lon, &f.Lon, 180}, {o.speed, &f.Kmh, 2000}} {
		if c.p == nil {
			continue
		}
		v, err := c.p.Eval(r)
		if err != nil {
			return err
		}
		x, ok := keyed.Number(v)
		if !ok || math.Abs(x) > c.lim {
			return catalog.Rejectf(catalog.ReasonType, "trip %s must be a number within ±%v, got %s", c.p.Source(), c.lim, record.Describe(v))
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

// state is a vehicle's trip in progress. While it is stopped (Stop set),
// what happens after the stop is pending: it joins the trip if the vehicle
// moves on before stop_after, and is dropped if the trip ends at the stop.
type state struct {
	Start    int64   `json:"s"`
	StartFix fix     `json:"sf"`
	Last     int64   `json:"l"`
	LastFix  fix     `json:"lf"`
	Dist     float64 `json:"d"`
	Idle     int64   `json:"i"`
	MaxKmh   float64 `json:"m"`
	Points   int     `json:"n"`
	Stop     int64   `json:"st,omitempty"` // first inactive record's time; 0: none
	StopFix  fix     `json:"sx"`
	PDist    float64 `json:"pd,omitempty"`
	PIdle    int64   `json:"pi,omitempty"`
	PMax     float64 `json:"pm,omitempty"`
	PPoints  int     `json:"pn,omitempty"`
}

type machine struct {
	hasSpeed, hasIgnition bool
	movingKmh             float64
	stopAfter             int64
}

func (m *machine) active(f fix) bool {
	if m.hasIgnition {
		return f.On
	}
	return f.Kmh >= m.movingKmh
}

func (m *machine) moving(f fix) bool { return !m.hasSpeed || f.Kmh >= m.movingKmh }

func (m *machine) Event(_, st []byte, t int64, payload []byte) (keyed.Result, error) {
	var f fix
	if err := json.Unmarshal(payload, &f); err != nil {
		return keyed.Result{}, err
	}
	if st == nil {
		if !m.active(f) {
			return keyed.Result{}, nil
		}
		return m.save(state{Start: t, StartFix: f, Last: t, LastFix: f, MaxKmh: f.Kmh, Points: 1})
	}
	var s state
	if err := json.Unmarshal(st, &s); err != nil {
		return keyed.Result{}, err
	}
	dist := 0.0
	if m.moving(s.LastFix) || m.moving(f) {
		dist = haversine(s.LastFix, f)
	}
	idle := int64(0)
	if !m.moving(s.LastFix) {
		idle = t - s.Last
	}
	switch {
	case s.Stop != 0 && m.active(f):
		// The stop was short: it and this step join the trip.
		s.Dist += s.PDist + dist
		s.Idle += s.PIdle + idle
		s.MaxKmh = math.Max(s.MaxKmh, math.Max(s.PMax, f.Kmh))
		s.Points += s.PPoints + 1
		s.Stop, s.PDist, s.PIdle, s.PMax, s.PPoints = 0, 0, 0, 0, 0
	case s.Stop != 0:
		s.PDist += dist
		s.PIdle += idle
		s.PMax = math.Max(s.PMax, f.Kmh)
		s.PPoints++
	default:
		// Moving on, or the first inactive record: where the trip ends if
		// the vehicle stays.
		s.Dist += dist
		s.Idle += idle
		s.MaxKmh = math.Max(s.MaxKmh, f.Kmh)
		s.Points++
		if !m.active(f) {
			s.Stop, s.StopFix = t, f
		}
	}
	s.Last, s.LastFix = t, f
	return m.save(s)
}

func (m *machine) save(s state) (keyed.Result, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return keyed.Result{}, err
	}
	at := s.Last + m.stopAfter
	if s.Stop != 0 {
		at = s.Stop + m.stopAfter
	}
	return keyed.Result{State: b, Timer: at, HasTimer: true}, nil
}

// Timer ends the trip: at its stop, or at its last record when it went
// silent.
func (m *machine) Timer(key, st []byte, _ int64) (keyed.Result, error) {
	var s state
	if err := json.Unmarshal(st, &s); err != nil {
		return keyed.Result{}, err
	}
	end, endFix := s.Last, s.LastFix
	if s.Stop != 0 {
		end, endFix = s.Stop, s.StopFix
	}
	var maxKmh any
	if m.hasSpeed {
		maxKmh = s.MaxKmh
	}
	v := map[string]any{
		"event": "trip", "key": string(key), "start": keyed.FormatTime(s.Start), "end": keyed.FormatTime(end),
		"duration_ms": int(end - s.Start), "distance_km": math.Round(s.Dist) / 1000, "idle_ms": int(s.Idle),
		"max_kmh": maxKmh, "start_lat": s.StartFix.Lat, "start_lon": s.StartFix.Lon, "end_lat": endFix.Lat, "end_lon": endFix.Lon,
		"points": s.Points,
	}
	return keyed.Result{Out: []keyed.Emit{{Time: end, Value: v}}}, nil
}

const earthRadius = 6371008.8 // metres, the mean radius

func haversine(a, b fix) float64 {
	const rad = math.Pi / 180
	dLat := (b.Lat - a.Lat) * rad
	dLon := (b.Lon - a.Lon) * rad
	s := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadius * math.Asin(math.Min(1, math.Sqrt(s)))
}
