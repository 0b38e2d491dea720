// Package geofence provides the geofence operator: per entity, enter, exit
// and dwell events for polygon and circle zones read from GeoJSON, with a
// distance hysteresis against GPS jitter. Zones are looked up through a
// grid index; the per-entity state machine runs on event time through
// catalog/operators/internal/keyed, with its state in the task's store.
package geofence

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"sort"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["zones", "grace"],
  "properties": {
    "zones": {"oneOf": [
      {"type": "string", "minLength": 1, "description": "Path of a GeoJSON file in the pipeline's repository, relative to the pipeline files, such as zones/depots.geojson."},
      {"type": "object", "required": ["type"], "description": "A GeoJSON FeatureCollection (or Feature) written inline."}
    ], "description": "The zones: GeoJSON Polygon and MultiPolygon features, and Point features with a radius property (metres) for circles. A zone's id is its id_property, else the feature's id; features with one id are one zone."},
    "id_property": {"type": "string", "minLength": 1, "default": "id", "description": "The feature property that names a zone."},
    "by": {"type": "string", "minLength": 1, "description": "Expression for the entity (vehicle, courier) whose position this is; the record key when left out. Records are repartitioned by it."},
    "lat": {"type": "string", "minLength": 1, "default": "lat", "description": "Expression for the latitude in degrees."},
    "lon": {"type": "string", "minLength": 1, "default": "lon", "description": "Expression for the longitude in degrees."},
    "hysteresis_m": {"type": "number", "minimum": 0, "default": 0, "description": "Metres a position must be inside a zone's boundary to enter it, and outside to exit it; positions nearer the boundary keep the entity's state, so GPS jitter at an edge does not flap."},
    "dwell": {"type": "string", "description": "When set, a duration like 10m: a dwell event once an entity has been in a zone that long, in event time."},
    "grace": {"type": "string", "description": "How far behind the stream time a position may arrive and still be applied in event-time order (0s for none). Required: there is no hidden default. Positions further behind go to the DLQ with reason late."}
  }
}`

const zonesInline = `{"type": "FeatureCollection", "features": [
  {"type": "Feature", "properties": {"id": "depot"}, "geometry": {"type": "Polygon", "coordinates": [[[4.30, 52.00], [4.32, 52.00], [4.32, 52.02], [4.30, 52.02], [4.30, 52.00]]]}},
  {"type": "Feature", "properties": {"id": "store-7", "radius": 200}, "geometry": {"type": "Point", "coordinates": [4.40, 52.10]}}
]}`

// Register adds the geofence operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "geofence",
		Summary: "Emits enter, exit and dwell events per entity for polygon and circle zones from GeoJSON.",
		Description: "Per entity (`by`, else the record key), positions (`lat`, `lon`) are applied in event-time order and " +
			"compared with the zones. A position inside a zone the entity was not in emits " +
			"`{event: enter, zone, key, at, lat, lon}`; a position outside a zone it was in emits " +
			"`{event: exit, zone, key, at, lat, lon, since, duration_ms}`. With `dwell`, an entity in a zone for that long " +
			"emits `{event: dwell, zone, key, at, since, duration_ms}` once per visit, when the event-time frontier " +
			"(stream time minus `grace`) reaches it. One position's exits come before its enters, each by zone id. " +
			"Outputs are keyed by the entity and carry the event time they happened at.\n\n" +
			"**Zones.** `zones` names a GeoJSON file in the pipeline's repository (or holds the GeoJSON inline): " +
			"Polygon and MultiPolygon features, holes included, and Point features with a `radius` property in metres, " +
			"which are circles. Polygon edges are straight lines in longitude/latitude, as GeoJSON defines them; circle " +
			"distances are great-circle (haversine). Concave polygons are fine. A zone crossing the antimeridian may be cut " +
			"in two (a MultiPolygon, as RFC 7946 recommends) or written as one ring going from 170 to -170: each ring is " +
			"unwrapped. Zones are found through a grid index, so thousands of zones cost about what a few do.\n\n" +
			"**Boundary rule.** A zone is closed: a position on an edge or vertex of its outer ring, or on the edge of " +
			"one of its holes, is inside; a position strictly inside a hole is outside. Positions within 1e-9 degrees " +
			"(0.1 mm) of an edge count as on it.\n\n" +
			"**Hysteresis.** With `hysteresis_m: h`, entering needs a position inside by at least h metres from the " +
			"boundary and exiting one outside by at least h; positions in the band around the boundary change nothing.\n\n" +
			"Positions up to `grace` behind the stream time are reordered by event time; older ones go to the DLQ with " +
			"reason `late`. A latitude or longitude that is not a number in range sends the record to the DLQ with reason " +
			"`type`. State per entity is the zones it is in and since when, in the task's store.",
		Config: schema,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"dwell"}},
		Examples: []catalog.Example{
			{
				Title: "A van visits the depot and a store",
				Summary: "Zones inline here; a pipeline usually names a file (zones: zones/depots.geojson). The van enters " +
					"the depot polygon, leaves it, and enters the 200 m circle around store 7.",
				Step: "by: van\ngrace: 0s\nzones: " + zonesInline + "\n",
				Input: []any{
					map[string]any{"van": "v1", "lat": 51.99, "lon": 4.31, "ts": "2026-01-01T08:00:00Z"},
					map[string]any{"van": "v1", "lat": 52.01, "lon": 4.31, "ts": "2026-01-01T08:05:00Z"},
					map[string]any{"van": "v1", "lat": 52.01, "lon": 4.315, "ts": "2026-01-01T08:20:00Z"},
					map[string]any{"van": "v1", "lat": 52.05, "lon": 4.35, "ts": "2026-01-01T08:30:00Z"},
					map[string]any{"van": "v1", "lat": 52.1005, "lon": 4.401, "ts": "2026-01-01T08:45:00Z"},
				},
				Output: []any{
					map[string]any{"event": "enter", "zone": "depot", "key": "v1", "at": "2026-01-01T08:05:00Z", "lat": 52.01, "lon": 4.31},
					map[string]any{"event": "exit", "zone": "depot", "key": "v1", "at": "2026-01-01T08:30:00Z", "lat": 52.05, "lon": 4.35,
						"since": "2026-01-01T08:05:00Z", "duration_ms": 1500000},
					map[string]any{"event": "enter", "zone": "store-7", "key": "v1", "at": "2026-01-01T08:45:00Z", "lat": 52.1005, "lon": 4.401},
				},
			},
			{
				Title: "Hysteresis and dwell",
				Summary: "With 50 m of hysteresis, a position 20 m inside the depot's western edge (4.30) does not enter " +
					"it; one 300 m inside does. The jitter back to 20 m outside does not exit. After 10 minutes inside, a " +
					"dwell event; the exit comes 500 m out.",
				Step: "grace: 0s\nhysteresis_m: 50\ndwell: 10m\nzones: " + zonesInline + "\n",
				Input: []any{
					map[string]any{"lat": 52.01, "lon": 4.3003, "ts": "2026-01-01T08:00:00Z"},
					map[string]any{"lat": 52.01, "lon": 4.3044, "ts": "2026-01-01T08:01:00Z"},
					map[string]any{"lat": 52.01, "lon": 4.2997, "ts": "2026-01-01T08:02:00Z"},
					map[string]any{"lat": 52.01, "lon": 4.2926, "ts": "2026-01-01T08:15:00Z"},
				},
				Output: []any{
					map[string]any{"event": "enter", "zone": "depot", "key": "", "at": "2026-01-01T08:01:00Z", "lat": 52.01, "lon": 4.3044},
					map[string]any{"event": "dwell", "zone": "depot", "key": "", "at": "2026-01-01T08:11:00Z",
						"since": "2026-01-01T08:01:00Z", "duration_ms": 600000},
					map[string]any{"event": "exit", "zone": "depot", "key": "", "at": "2026-01-01T08:15:00Z", "lat": 52.01, "lon": 4.2926,
						"since": "2026-01-01T08:01:00Z", "duration_ms": 840000},
				},
			},
			{
				Title:   "Bad positions and late ones go to the DLQ",
				Summary: "A latitude of 95 is not a position; with no grace, a position behind the stream time is late.",
				Step:    "grace: 0s\nzones: " + zonesInline + "\n",
				Input: []any{
					map[string]any{"lat": 95, "lon": 4.31, "ts": "2026-01-01T08:00:00Z"},
					map[string]any{"lat": 52.01, "lon": 4.31, "ts": "2026-01-01T08:05:00Z"},
					map[string]any{"lat": 52.01, "lon": 4.31, "ts": "2026-01-01T08:04:00Z"},
				},
				Output: []any{
					map[string]any{"event": "enter", "zone": "depot", "key": "", "at": "2026-01-01T08:05:00Z", "lat": 52.01, "lon": 4.31},
				},
				DLQ: []catalog.Reason{catalog.ReasonType, catalog.ReasonLate},
			},
		},
		New: newGeofence,
	})
}

type op struct {
	keyed.Step
	lat, lon *expression.Program
}

func newGeofence(b *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o := &op{Step: keyed.Step{Name: "geofence"}}
	if err := o.Configure(conf); err != nil {
		return nil, err
	}
	idProp := "id"
	if c, ok := conf.Get("id_property"); ok {
		idProp = c.String()
	}
	zc, _ := conf.Get("zones")
	var data []byte
	var err error
	if zc.IsScalar() {
		if data, err = b.ReadFile(zc); err != nil {
			return nil, err
		}
	} else {
		v, err := zc.Value()
		if err != nil {
			return nil, err
		}
		if data, err = json.Marshal(v); err != nil {
			return nil, zc.Errorf("%v", err)
		}
	}
	zones, err := parseZones(data, idProp)
	if err != nil {
		return nil, zc.Errorf("zones: %v", err)
	}
	m := &machine{zones: zones}
	if c, ok := conf.Get("hysteresis_m"); ok {
		if err := c.Decode(&m.margin); err != nil {
			return nil, err
		}
	}
	if _, ok := conf.Get("dwell"); ok {
		if m.dwell, err = keyed.Duration(conf, "dwell"); err != nil {
			return nil, err
		}
	}
	m.ix = newIndex(zones, m.margin)
	for _, f := range []struct {
		name string
		p    **expression.Program
	}{{"lat", &o.lat}, {"lon", &o.lon}} {
		src := f.name
		c, ok := conf.Get(f.name)
		if ok {
			if *f.p, err = c.Expr(expression.Any); err != nil {
				return nil, err
			}
			continue
		}
		if *f.p, err = expression.Compile(src, expression.Any); err != nil {
			return nil, conf.Errorf("%v", err)
		}
	}
	o.Runner.Machine = m
	return o, nil
}

type position struct {
	Lat float64 `json:"y"`
	Lon float64 `json:"x"`
}

// ProcessTask reads the position now, so a bad one sends this record to
// the DLQ, and hands it to the entity's state machine.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	key, err := o.Key(r)
	if err != nil {
		return err
	}
	var p position
	for _, f := range []struct {
		prog *expression.Program
		dst  *float64
		lim  float64
	}{{o.lat, &p.Lat, 90}, {o.lon, &p.Lon, 180}} {
		v, err := f.prog.Eval(r)
		if err != nil {
			return err
		}
		x, ok := keyed.Number(v)
		if !ok || math.Abs(x) > f.lim {
			return catalog.Rejectf(catalog.ReasonType, "geofence %s must be a number within ±%v degrees, got %s", f.prog.Source(), f.lim, record.Describe(v))
		}
		*f.dst = x
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return o.Ingest(ctx, task, key, r, payload, out)
}

// FieldDemand implements engine.FieldDemander.
func (o *op) FieldDemand(after []string, afterAll bool) ([]string, bool) {
	names, all := o.lat.FieldsAnd(nil, false)
	names, all = o.lon.FieldsAnd(names, all)
	if o.By != nil {
		names, all = o.By.FieldsAnd(names, all)
	}
	return names, all
}

// visits is an entity's state: the zones it is in, since when, and whether
// their dwell event went out.
type visits struct {
	In      map[string]int64 `json:"in"`
	Dwelled []string         `json:"d,omitempty"`
}

type machine struct {
	zones  []*zone
	ix     *index
	margin float64 // metres
	dwell  int64   // ms, 0: none
}

// inside returns the ids of the zones the entity is in after position p,
// given the ones it was in, with the hysteresis rule.
func (m *machine) inside(p pt, was map[string]int64) []string {
	var now []string
	m.ix.candidates(p, func(i int, q pt) {
		z := m.zones[i]
		in := z.contains(q)
		_, wasIn := was[z.id]
		if m.margin > 0 && in != wasIn && z.edgeDistance(q) < m.margin {
			in = wasIn // in the band around the boundary: no change
		}
		if in {
			now = append(now, z.id)
		}
	})
	sort.Strings(now)
	return slices.Compact(now)
}

func (m *machine) Event(key, st []byte, t int64, payload []byte) (keyed.Result, error) {
	var p position
	if err := json.Unmarshal(payload, &p); err != nil {
		return keyed.Result{}, err
	}
	v := visits{In: map[string]int64{}}
	if st != nil {
		if err := json.Unmarshal(st, &v); err != nil {
			return keyed.Result{}, err
		}
	}
	now := m.inside(pt{p.Lon, p.Lat}, v.In)
	var out []keyed.Emit
	was := make([]string, 0, len(v.In))
	for id := range v.In {
		was = append(was, id)
	}
	sort.Strings(was)
	base := func(event, zone string) map[string]any {
		return map[string]any{"event": event, "zone": zone, "key": string(key), "at": keyed.FormatTime(t), "lat": p.Lat, "lon": p.Lon}
	}
	for _, id := range was {
		if _, ok := slices.BinarySearch(now, id); ok {
			continue
		}
		e := base("exit", id)
		e["since"], e["duration_ms"] = keyed.FormatTime(v.In[id]), int(t-v.In[id])
		out = append(out, keyed.Emit{Time: t, Value: e})
		delete(v.In, id)
		v.Dwelled = slices.DeleteFunc(v.Dwelled, func(s string) bool { return s == id })
	}
	for _, id := range now {
		if _, ok := v.In[id]; ok {
			continue
		}
		out = append(out, keyed.Emit{Time: t, Value: base("enter", id)})
		v.In[id] = t
	}
	return m.save(v, out)
}

// Timer emits the dwell events due at at.
func (m *machine) Timer(key, st []byte, at int64) (keyed.Result, error) {
	var v visits
	if err := json.Unmarshal(st, &v); err != nil {
		return keyed.Result{}, err
	}
	var out []keyed.Emit
	for _, id := range m.undwelled(v) {
		if since := v.In[id]; since+m.dwell <= at {
			out = append(out, keyed.Emit{Time: since + m.dwell, Value: map[string]any{
				"event": "dwell", "zone": id, "key": string(key), "at": keyed.FormatTime(since + m.dwell),
				"since": keyed.FormatTime(since), "duration_ms": int(m.dwell),
			}})
			v.Dwelled = append(v.Dwelled, id)
		}
	}
	sort.Strings(v.Dwelled)
	return m.save(v, out)
}

// undwelled lists the zones the entity is in without a dwell event yet, by
// id.
func (m *machine) undwelled(v visits) []string {
	var ids []string
	for id := range v.In {
		if !slices.Contains(v.Dwelled, id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func (m *machine) save(v visits, out []keyed.Emit) (keyed.Result, error) {
	if len(v.In) == 0 {
		return keyed.Result{Out: out}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return keyed.Result{}, err
	}
	res := keyed.Result{State: b, Out: out}
	if m.dwell > 0 {
		for _, id := range m.undwelled(v) {
			if due := v.In[id] + m.dwell; !res.HasTimer || due < res.Timer {
				res.Timer, res.HasTimer = due, true
			}
		}
	}
	return res, nil
}
