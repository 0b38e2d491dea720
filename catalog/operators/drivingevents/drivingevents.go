// Package drivingevents provides the driving_events operator: per vehicle,
// speeding episodes against a fixed or per-record (per-zone) limit, and
// harsh braking and harsh acceleration from the speed change between
// consecutive positions. Each episode is one output, emitted once it has
// ended. It is a keyed state machine (catalog/operators/internal/keyed) on
// event time, with its state in the task's store.
package drivingevents

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["grace"],
  "properties": {
    "by": {"type": "string", "minLength": 1, "description": "Expression for the vehicle; the record key when left out. Records are repartitioned by it."},
    "speed": {"type": "string", "minLength": 1, "default": "speed", "description": "Expression for the speed in km/h (convert m/s with speed * 3.6)."},
    "lat": {"type": "string", "minLength": 1, "default": "lat", "description": "Expression for the latitude in degrees, reported with each event; null leaves the event without a position."},
    "lon": {"type": "string", "minLength": 1, "default": "lon", "description": "Expression for the longitude in degrees, reported with each event; null leaves the event without a position."},
    "limit_kmh": {"type": "number", "exclusiveMinimum": 0, "description": "The speed limit in km/h, for every position without a limit of its own."},
    "limit": {"type": "string", "minLength": 1, "description": "Expression for the speed limit in km/h at this position, such as the limit of the zone or road segment an earlier step found (zone_limit). Null falls back to limit_kmh; without limit_kmh, a position with a null limit is not speeding."},
    "tolerance_kmh": {"type": "number", "minimum": 0, "default": 0, "description": "How far above the limit a speed may be before it counts as speeding."},
    "min_speeding": {"type": "string", "default": "0s", "description": "Speeding episodes shorter than this (a duration like 10s) are not reported: one fix above the limit is often GPS noise."},
    "harsh_braking_kmh_s": {"type": "number", "exclusiveMinimum": 0, "default": 14, "description": "Deceleration, in km/h per second, at or above which braking is harsh (14 km/h/s is 3.9 m/s², about 0.4 g)."},
    "harsh_acceleration_kmh_s": {"type": "number", "exclusiveMinimum": 0, "default": 11, "description": "Acceleration, in km/h per second, at or above which it is harsh (11 km/h/s is 3.1 m/s², about 0.3 g)."},
    "min_gap": {"type": "string", "default": "1s", "description": "The least time between the two positions a speed change is measured over: a position sooner than this after the last one measured from is not used for braking or acceleration (GPS fixes close together make noisy rates)."},
    "max_gap": {"type": "string", "default": "10s", "description": "A vehicle silent for this long (a duration) ends its episodes at its last position and starts afresh: no speed change is measured across the gap."},
    "detect": {"type": "array", "uniqueItems": true, "minItems": 1, "items": {"enum": ["speeding", "harsh_braking", "harsh_acceleration"]}, "default": ["speeding", "harsh_braking", "harsh_acceleration"], "description": "Which events to report."},
    "grace": {"type": "string", "description": "How far behind the stream time a position may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Positions further behind go to the DLQ with reason late."}
  }
}`

// Register adds the driving_events operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "driving_events",
		Summary: "Detects speeding episodes and harsh braking and acceleration per vehicle, one event per episode.",
		Description: "Per vehicle (`by`, else the record key), positions with a `speed` in km/h are applied in event-time " +
			"order. Each episode is one output, emitted when it has ended, with its end as event time; outputs are keyed " +
			"by the vehicle.\n\n" +
			"**Speeding.** A position is speeding when its speed is above its limit plus `tolerance_kmh`. The limit is " +
			"`limit` evaluated on the record when it is not null, else `limit_kmh`: per-zone or per-road limits come from " +
			"a field an earlier step set (a map-matching service, a lookup by zone), a fixed limit from `limit_kmh`. An " +
			"episode starts at the first speeding position and ends at the first position that is not speeding (or, when " +
			"the vehicle goes silent for `max_gap`, at its last position); it is reported if it lasted at least " +
			"`min_speeding`:\n\n" +
			"`{event: speeding, key, start, end, duration_ms, max_kmh, limit_kmh, lat, lon}` where `max_kmh` is the " +
			"highest speed, `limit_kmh` the limit at that position, and `lat`/`lon` where the episode started.\n\n" +
			"**Harsh braking and acceleration.** The rate between a position and the last one measured from is the " +
			"speed change divided by the time between them, in km/h per second (divide by 3.6 for m/s²). Positions less " +
			"than `min_gap` after the last one measured from are skipped (the next rate spans them), so jittery fixes a " +
			"few hundred milliseconds apart do not make huge rates; no rate spans a silence of `max_gap`. A rate at or " +
			"below -`harsh_braking_kmh_s` is harsh braking, one at or above `harsh_acceleration_kmh_s` harsh acceleration. " +
			"Consecutive harsh rates of one kind are one episode, reported once the next rate is not of its kind:\n\n" +
			"`{event: harsh_braking | harsh_acceleration, key, start, end, duration_ms, from_kmh, to_kmh, peak_kmh_s, " +
			"peak_ms2, lat, lon}` from the position before the change to the last one in it, with the steepest rate, " +
			"and the position where it ended.\n\n" +
			"When one position ends episodes of both kinds, the harsh one comes first. Positions up to `grace` behind the " +
			"stream time are reordered; older ones go to the DLQ with reason `late`. A speed that is not a number from 0 " +
			"to 2000, a limit that is not a positive number or null, or a position out of range sends the record to the " +
			"DLQ with reason `type`. State is one small entry per vehicle heard from within `max_gap`, in the task's " +
			"store, so episodes survive a restart.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"detect"}},
		Examples: []catalog.Example{
			{
				Title: "Speeding through a 50 zone, then a hard stop",
				Summary: "The van's positions carry the limit of the zone it is in (zone_limit), else 80 applies. It drives " +
					"66 and 72 in the 50 zone from 08:00:02 to 08:00:04: one speeding episode, reported when it slows to 48. " +
					"It then brakes from 48 to 10 in two seconds (19 km/h/s): harsh braking, reported with the next " +
					"position, which is steady.",
				Step: "by: van\nspeed: kmh\nlimit: zone_limit\nlimit_kmh: 80\ngrace: 0s\n",
				Input: []any{
					map[string]any{"van": "v1", "kmh": 45, "zone_limit": 50, "lat": 52.0000, "lon": 4.3000, "ts": "2026-01-01T08:00:00Z"},
					map[string]any{"van": "v1", "kmh": 66, "zone_limit": 50, "lat": 52.0001, "lon": 4.3000, "ts": "2026-01-01T08:00:02Z"},
					map[string]any{"van": "v1", "kmh": 72, "zone_limit": 50, "lat": 52.0003, "lon": 4.3000, "ts": "2026-01-01T08:00:03Z"},
					map[string]any{"van": "v1", "kmh": 48, "zone_limit": 50, "lat": 52.0006, "lon": 4.3000, "ts": "2026-01-01T08:00:05Z"},
					map[string]any{"van": "v1", "kmh": 29, "zone_limit": 50, "lat": 52.0007, "lon": 4.3000, "ts": "2026-01-01T08:00:06Z"},
					map[string]any{"van": "v1", "kmh": 10, "zone_limit": 50, "lat": 52.0008, "lon": 4.3000, "ts": "2026-01-01T08:00:07Z"},
					map[string]any{"van": "v1", "kmh": 12, "zone_limit": nil, "lat": 52.0008, "lon": 4.3000, "ts": "2026-01-01T08:00:08Z"},
				},
				Output: []any{
					map[string]any{"event": "speeding", "key": "v1", "start": "2026-01-01T08:00:02Z", "end": "2026-01-01T08:00:05Z",
						"duration_ms": 3000, "max_kmh": 72, "limit_kmh": 50, "lat": 52.0001, "lon": 4.3},
					map[string]any{"event": "harsh_braking", "key": "v1", "start": "2026-01-01T08:00:05Z", "end": "2026-01-01T08:00:07Z",
						"duration_ms": 2000, "from_kmh": 48, "to_kmh": 10, "peak_kmh_s": 19, "peak_ms2": 5.28, "lat": 52.0008, "lon": 4.3},
				},
			},
			{
				Title: "GPS noise, a gap in the signal, and a late position",
				Summary: "Only harsh acceleration is reported. The fix 200 ms after 09:00:01 is skipped (min_gap 1s), so " +
					"its jump to 30 km/h makes no rate; from 0 to 24 over 2 s is 12 km/h/s, harsh. The vehicle is silent for " +
					"more than max_gap after 09:00:03, so the rate from 24 to 60 across the gap is not measured. The position at " +
					"08:59:00 is behind the stream time: late.",
				Step: "speed: kmh\ndetect: [harsh_acceleration]\ngrace: 0s\n",
				Input: []any{
					map[string]any{"kmh": 0, "ts": "2026-01-01T09:00:01Z"},
					map[string]any{"kmh": 30, "ts": "2026-01-01T09:00:01.200Z"},
					map[string]any{"kmh": 24, "ts": "2026-01-01T09:00:03Z"},
					map[string]any{"kmh": 60, "ts": "2026-01-01T09:00:30Z"},
					map[string]any{"kmh": 60, "ts": "2026-01-01T08:59:00Z"},
				},
				Output: []any{
					map[string]any{"event": "harsh_acceleration", "key": "", "start": "2026-01-01T09:00:01Z", "end": "2026-01-01T09:00:03Z",
						"duration_ms": 2000, "from_kmh": 0, "to_kmh": 24, "peak_kmh_s": 12, "peak_ms2": 3.33, "lat": nil, "lon": nil},
				},
				DLQ: []catalog.Reason{catalog.ReasonLate},
			},
		},
		New: newDrivingEvents,
	})
}

type op struct {
	keyed.Step
	speed, lat, lon, limit *expression.Program
}

func newDrivingEvents(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "driving_events"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	m := &machine{brake: 14, accel: 11, minGap: 1000, maxGap: 10000, speeding: true, braking: true, accelerating: true}
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"limit_kmh", &m.limitKmh}, {"tolerance_kmh", &m.tolerance}, {"harsh_braking_kmh_s", &m.brake}, {"harsh_acceleration_kmh_s", &m.accel}} {
		if c, ok := conf.Get(f.name); ok {
			if err := c.Decode(f.dst); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range []struct {
		name string
		dst  *int64
		zero bool
	}{{"min_speeding", &m.minSpeeding, true}, {"min_gap", &m.minGap, true}, {"max_gap", &m.maxGap, false}} {
		c, ok := conf.Get(f.name)
		if !ok {
			continue
		}
		d, err := time.ParseDuration(c.String())
		if err != nil || d < 0 || (d == 0 && !f.zero) || d%time.Millisecond != 0 {
			return nil, c.Errorf("%s %q must be a duration like 1s or 10s", f.name, c.String())
		}
		*f.dst = d.Milliseconds()
	}
	if m.minGap >= m.maxGap {
		return nil, conf.Errorf("min_gap (%dms) must be shorter than max_gap (%dms)", m.minGap, m.maxGap)
	}
	if c, ok := conf.Get("detect"); ok {
		var kinds []string
		if err := c.Decode(&kinds); err != nil {
			return nil, err
		}
		m.speeding, m.braking, m.accelerating = false, false, false
		for _, k := range kinds {
			switch k {
			case "speeding":
				m.speeding = true
			case "harsh_braking":
				m.braking = true
			case "harsh_acceleration":
				m.accelerating = true
			}
		}
	}
	var err error
	for _, f := range []struct {
		name, def string
		dst       **expression.Program
	}{{"speed", "speed", &o.speed}, {"lat", "lat", &o.lat}, {"lon", "lon", &o.lon}, {"limit", "", &o.limit}} {
		if c, ok := conf.Get(f.name); ok {
			if *f.dst, err = c.Expr(expression.Any); err != nil {
				return nil, err
			}
		} else if f.def != "" {
			if *f.dst, err = expression.Compile(f.def, expression.Any); err != nil {
				return nil, conf.Errorf("%v", err)
			}
		}
	}
	o.Runner.Machine = m
	return o, nil
}

// fix is what the machine keeps of a record.
type fix struct {
	Kmh    float64  `json:"v"`
	Limit  float64  `json:"l,omitempty"` // 0: none
	Lat    *float64 `json:"y,omitempty"`
	Lon    *float64 `json:"x,omitempty"`
	HasPos bool     `json:"p,omitempty"`
}

func (o *op) number(r *record.Record, p *expression.Program, lo, hi float64, nullOK bool) (float64, bool, error) {
	v, err := p.Eval(r)
	if err != nil {
		return 0, false, err
	}
	if v == nil && nullOK {
		return 0, false, nil
	}
	x, ok := keyed.Number(v)
	if !ok || x < lo || x > hi {
		return 0, false, catalog.Rejectf(catalog.ReasonType, "driving_events %s must be a number from %v to %v, got %s", p.Source(), lo, hi, record.Describe(v))
	}
	return x, true, nil
}

// ProcessTask reads the speed, limit and position now, so bad ones send
// this record to the DLQ, and hands them to the vehicle's machine.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	var f fix
	if f.Kmh, _, err = o.number(r, o.speed, 0, 2000, false); err != nil {
		return err
	}
	if o.limit != nil {
		if f.Limit, _, err = o.number(r, o.limit, math.SmallestNonzeroFloat64, 2000, true); err != nil {
			return err
		}
	}
	lat, okLat, err := o.number(r, o.lat, -90, 90, true)
	if err != nil {
		return err
	}
	lon, okLon, err := o.number(r, o.lon, -180, 180, true)
	if err != nil {
		return err
	}
	if okLat && okLon {
		f.Lat, f.Lon = &lat, &lon
	}
	payload, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return o.Ingest(ctx, task, key, r, payload, out)
}

// FieldDemand implements engine.FieldDemander.
func (o *op) FieldDemand([]string, bool) ([]string, bool) {
	return expression.FieldsOf(o.By, o.speed, o.lat, o.lon, o.limit)
}

// speeding is an episode above the limit.
type speeding struct {
	Start  int64   `json:"s"`
	Max    float64 `json:"m"`
	Limit  float64 `json:"l"`
	Lat    *float64
	Lon    *float64
	Latest int64 `json:"e"` // last speeding position
}

// harsh is an episode of harsh rates of one kind.
type harsh struct {
	Braking bool     `json:"b,omitempty"`
	Start   int64    `json:"s"`
	End     int64    `json:"e"`
	From    float64  `json:"f"`
	To      float64  `json:"t"`
	Peak    float64  `json:"p"` // km/h/s, positive
	Lat     *float64 `json:"y,omitempty"`
	Lon     *float64 `json:"x,omitempty"`
}

// state is a vehicle heard from within max_gap: the position rates are
// measured from, the last position's time and the open episodes.
type state struct {
	Ref    int64     `json:"r"`
	RefKmh float64   `json:"rv"`
	Last   int64     `json:"t"`
	Speed  *speeding `json:"sp,omitempty"`
	Harsh  *harsh    `json:"h,omitempty"`
}

type machine struct {
	limitKmh, tolerance, brake, accel float64
	minSpeeding, minGap, maxGap       int64
	speeding, braking, accelerating   bool
}

func (m *machine) Event(key, st []byte, t int64, payload []byte) (keyed.Result, error) {
	var f fix
	if err := json.Unmarshal(payload, &f); err != nil {
		return keyed.Result{}, err
	}
	var out []keyed.Emit
	s := state{Ref: t, RefKmh: f.Kmh}
	if st != nil {
		if err := json.Unmarshal(st, &s); err != nil {
			return keyed.Result{}, err
		}
		// Harsh rates, from the reference position at least min_gap back.
		if t-s.Ref >= m.minGap {
			rate := (f.Kmh - s.RefKmh) * 1000 / float64(t-s.Ref)
			braking := m.braking && rate <= -m.brake
			accel := m.accelerating && rate >= m.accel
			if s.Harsh != nil && (!(braking || accel) || braking != s.Harsh.Braking) {
				out = append(out, m.harshEmit(key, s.Harsh))
				s.Harsh = nil
			}
			if braking || accel {
				if s.Harsh == nil {
					s.Harsh = &harsh{Braking: braking, Start: s.Ref, From: s.RefKmh}
				}
				s.Harsh.End, s.Harsh.To, s.Harsh.Lat, s.Harsh.Lon = t, f.Kmh, f.Lat, f.Lon
				s.Harsh.Peak = math.Max(s.Harsh.Peak, math.Abs(rate))
			}
			s.Ref, s.RefKmh = t, f.Kmh
		}
	}
	s.Last = t
	if m.speeding {
		limit := f.Limit
		if limit == 0 {
			limit = m.limitKmh
		}
		over := limit > 0 && f.Kmh > limit+m.tolerance
		switch {
		case over && s.Speed == nil:
			s.Speed = &speeding{Start: t, Max: f.Kmh, Limit: limit, Lat: f.Lat, Lon: f.Lon, Latest: t}
		case over:
			if f.Kmh > s.Speed.Max {
				s.Speed.Max, s.Speed.Limit = f.Kmh, limit
			}
			s.Speed.Latest = t
		case s.Speed != nil:
			out = m.speedEmit(out, key, s.Speed, t)
			s.Speed = nil
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return keyed.Result{}, err
	}
	return keyed.Result{State: b, Timer: t + m.maxGap, HasTimer: true, Out: out}, nil
}

// Timer ends the episodes of a vehicle silent for max_gap, at its last
// position, and forgets it.
func (m *machine) Timer(key, st []byte, _ int64) (keyed.Result, error) {
	var s state
	if err := json.Unmarshal(st, &s); err != nil {
		return keyed.Result{}, err
	}
	var out []keyed.Emit
	if s.Harsh != nil {
		out = append(out, m.harshEmit(key, s.Harsh))
	}
	if s.Speed != nil {
		out = m.speedEmit(out, key, s.Speed, s.Speed.Latest)
	}
	return keyed.Result{Out: out}, nil
}

func (m *machine) speedEmit(out []keyed.Emit, key []byte, sp *speeding, end int64) []keyed.Emit {
	if end-sp.Start < m.minSpeeding {
		return out
	}
	return append(out, keyed.Emit{Time: end, Value: map[string]any{
		"event": "speeding", "key": string(key), "start": keyed.FormatTime(sp.Start), "end": keyed.FormatTime(end),
		"duration_ms": int(end - sp.Start), "max_kmh": sp.Max, "limit_kmh": sp.Limit, "lat": ptr(sp.Lat), "lon": ptr(sp.Lon),
	}})
}

func (m *machine) harshEmit(key []byte, h *harsh) keyed.Emit {
	kind := "harsh_acceleration"
	if h.Braking {
		kind = "harsh_braking"
	}
	return keyed.Emit{Time: h.End, Value: map[string]any{
		"event": kind, "key": string(key), "start": keyed.FormatTime(h.Start), "end": keyed.FormatTime(h.End),
		"duration_ms": int(h.End - h.Start), "from_kmh": h.From, "to_kmh": h.To, "peak_kmh_s": round2(h.Peak),
		"peak_ms2": round2(h.Peak / 3.6), "lat": ptr(h.Lat), "lon": ptr(h.Lon),
	}}
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

func ptr(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
