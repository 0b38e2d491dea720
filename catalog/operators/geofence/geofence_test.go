package geofence_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/geofence"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/state"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, geofence.Register), "geofence")
}

const zones = `{"type": "FeatureCollection", "features": [
  {"type": "Feature", "properties": {"id": "a"}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [0.02, 0], [0.02, 0.02], [0.01, 0.005], [0, 0.02], [0, 0]]]}},
  {"type": "Feature", "properties": {"id": "b"}, "geometry": {"type": "Polygon", "coordinates": [[[0.01, 0.01], [0.03, 0.01], [0.03, 0.03], [0.01, 0.03], [0.01, 0.01]], [[0.015, 0.015], [0.015, 0.025], [0.025, 0.025], [0.025, 0.015], [0.015, 0.015]]]}},
  {"type": "Feature", "properties": {"id": "c", "radius": 800}, "geometry": {"type": "Point", "coordinates": [0.02, 0.02]}}
]}`

func walk(rng *rand.Rand, n int) []*record.Record {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pos := map[string][2]float64{}
	var in []*record.Record
	at := start
	for range n {
		at = at.Add(time.Duration(1+rng.IntN(60)) * time.Second)
		v := fmt.Sprintf("v%d", rng.IntN(3))
		p := pos[v]
		p[0] = min(0.04, max(-0.01, p[0]+(rng.Float64()-0.5)*0.008))
		p[1] = min(0.04, max(-0.01, p[1]+(rng.Float64()-0.5)*0.008))
		pos[v] = p
		in = append(in, keyedtest.Record(nil, at, map[string]any{"v": v, "lon": p[0], "lat": p[1]}))
	}
	return in
}

// Whatever the arrival order within grace and wherever the task is
// restored, the events are those of the records in event-time order.
func TestDisorderAndRestore(t *testing.T) {
	reg := operatortest.Registry(t, geofence.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "geofence", "by: v\ngrace: 2m\nhysteresis_m: 30\ndwell: 5m\nzones: "+zones+"\n")
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	events := 0
	for seed := range 100 {
		rng := rand.New(rand.NewPCG(uint64(seed), 4))
		in := walk(rng, 20+rng.IntN(100))
		want, _ := keyedtest.Run(t, build, in, -1)
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, 2*time.Minute), rng.IntN(len(in)))
		if len(dlq) != 0 {
			t.Fatalf("seed %d: DLQ %v", seed, dlq)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
		events += len(want)
	}
	if events < 200 {
		t.Fatalf("only %d events: the walk does not cross zones", events)
	}
}

// GPS jitter of ±20 m across an edge makes one enter with 30 m of
// hysteresis, and an enter or exit per crossing without.
func TestHysteresisAgainstJitter(t *testing.T) {
	reg := operatortest.Registry(t, geofence.Register)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Zone b's western edge is lon 0.01; 20 m is about 0.00018° there.
	in := []*record.Record{keyedtest.Record("v", at, map[string]any{"lon": 0.012, "lat": 0.012})}
	for i := range 20 {
		lon := 0.01 + 0.00018
		if i%2 == 1 {
			lon = 0.01 - 0.00018
		}
		in = append(in, keyedtest.Record("v", at.Add(time.Duration(i+1)*time.Second), map[string]any{"lon": lon, "lat": 0.02}))
	}
	count := func(step string) int {
		op, err := operatortest.Build(reg, "geofence", step+"zones: "+zones+"\n")
		if err != nil {
			t.Fatal(err)
		}
		res := operatortest.Process(context.Background(), op, in)
		n := 0
		for _, r := range res.Out {
			if r.Value.(map[string]any)["zone"] == "b" {
				n++
			}
		}
		return n
	}
	if n := count("grace: 0s\nhysteresis_m: 30\n"); n != 1 {
		t.Errorf("with hysteresis: %d events for zone b, want the first enter only", n)
	}
	if n := count("grace: 0s\n"); n != 20 {
		t.Errorf("without hysteresis: %d events for zone b, want 20 (an enter, then one per crossing)", n)
	}
}

// Zones come from a file in the pipeline's repository; errors name it.
func TestZonesFile(t *testing.T) {
	reg := operatortest.Registry(t, geofence.Register)
	spec, _ := reg.Lookup("geofence")
	files := fstest.MapFS{"zones/depots.geojson": {Data: []byte(zones)}, "zones/bad.geojson": {Data: []byte(`{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}}`)}}
	for file, want := range map[string]string{
		"zones/depots.geojson":  "",
		"zones/missing.geojson": "cannot read",
		"zones/bad.geojson":     "no zone id",
	} {
		src := "grace: 0s\nzones: " + file + "\n"
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatal(err)
		}
		_, err := spec.New(&catalog.Build{Files: files}, catalog.NewConfig(catalog.NewSource("p.yaml", []byte(src)), doc.Content[0]))
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: got %v, want %q", file, err, want)
		}
	}
}

// The whole step, store included: 10,000 polygon zones, 1,000 vehicles.
func BenchmarkOperator10kZones(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	var feats []string
	for i := range 10000 {
		cx, cy := -10+rng.Float64()*40, 36+rng.Float64()*24
		r := 0.002 + rng.Float64()*0.05
		var ring []string
		for k := range 12 {
			a := 2 * math.Pi * float64(k) / 12
			rr := r * (0.4 + 0.6*rng.Float64())
			ring = append(ring, fmt.Sprintf("[%f,%f]", cx+rr*math.Cos(a), cy+rr*math.Sin(a)))
		}
		ring = append(ring, ring[0])
		feats = append(feats, fmt.Sprintf(`{"type":"Feature","properties":{"id":"z%d"},"geometry":{"type":"Polygon","coordinates":[[%s]]}}`, i, strings.Join(ring, ",")))
	}
	reg := operatortest.Registry(b, geofence.Register)
	op, err := operatortest.Build(reg, "geofence", `grace: 0s
zones: {"type":"FeatureCollection","features":[`+strings.Join(feats, ",")+`]}
`)
	if err != nil {
		b.Fatal(err)
	}
	sop := op.(catalog.StatefulOperator)
	in := make([]*record.Record, 4096)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range in {
		in[i] = keyedtest.Record(fmt.Sprint("v", rng.IntN(1000)), at, map[string]any{"lon": -10 + rng.Float64()*40, "lat": 36 + rng.Float64()*24})
	}
	task := &benchTask{store: state.NewMemory(), st: at}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		r := *in[i%len(in)]
		task.st = at.Add(time.Duration(i) * time.Millisecond)
		r.Timestamp = task.st
		if err := sop.ProcessTask(ctx, task, &r, discard{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}

type benchTask struct {
	store catalog.Store
	st    time.Time
}

func (t *benchTask) Store() catalog.Store  { return t.store }
func (t *benchTask) StreamTime() time.Time { return t.st }

type discard struct{}

func (discard) Next(context.Context, *record.Record) error       { return nil }
func (discard) To(context.Context, string, *record.Record) error { return nil }
