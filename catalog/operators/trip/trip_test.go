package trip_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operators/trip"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, trip.Register), "trip")
}

// polyline returns the great-circle length of a path in metres, written
// out here rather than taken from the package.
func polyline(pts [][2]float64) float64 {
	const r = 6371008.8
	total := 0.0
	for i := 1; i < len(pts); i++ {
		la1, lo1 := pts[i-1][0]*math.Pi/180, pts[i-1][1]*math.Pi/180
		la2, lo2 := pts[i][0]*math.Pi/180, pts[i][1]*math.Pi/180
		h := math.Pow(math.Sin((la2-la1)/2), 2) + math.Cos(la1)*math.Cos(la2)*math.Pow(math.Sin((lo2-lo1)/2), 2)
		total += 2 * r * math.Asin(math.Sqrt(h))
	}
	return total
}

// testdata/drive.jsonl is a 1 Hz trace of a truck (made by
// testdata/drive.py, with 1 m of GPS noise): two minutes parked, a drive
// along the first route, three minutes idling at the customer with the
// engine on, ten minutes off, a drive back along the second route with a
// two-minute standstill in a jam, then parked. Either way of detecting
// trips finds the two drives, with distances within 1% of the routes'.
func TestRecordedDrive(t *testing.T) {
	data, err := os.ReadFile("testdata/drive.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var in []any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		v, err := record.DecodeJSON([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, v)
	}
	route1 := polyline([][2]float64{{51.9000, 4.4000}, {51.9050, 4.4000}, {51.9050, 4.4300}, {51.9200, 4.4450}, {51.9250, 4.4800}})
	route2 := polyline([][2]float64{{51.9250, 4.4800}, {51.9200, 4.4450}, {51.9120, 4.4370}, {51.9050, 4.4300}})
	reg := operatortest.Registry(t, trip.Register)
	for _, c := range []struct {
		step         string
		idle1, idle2 [2]int // ms bounds
	}{
		// The engine is on for the idling at the customer and in the jam.
		{"by: vehicle\nspeed: kmh\nignition: ignition\nstop_after: 5m\ngrace: 0s\n", [2]int{180000, 200000}, [2]int{120000, 140000}},
		// From speed, the trip ends on arrival; the jam is shorter than stop_after.
		{"by: vehicle\nspeed: kmh\nstop_after: 3m\ngrace: 0s\n", [2]int{0, 10000}, [2]int{120000, 140000}},
	} {
		op, err := operatortest.Build(reg, "trip", c.step)
		if err != nil {
			t.Fatal(err)
		}
		res := operatortest.Process(context.Background(), op, operatortest.Values(in...))
		if len(res.DLQ) != 0 || len(res.Out) != 2 {
			t.Fatalf("%s: %d trips, DLQ %v", c.step, len(res.Out), res.Errs)
		}
		for i, want := range []struct {
			dist float64
			idle [2]int
		}{{route1, c.idle1}, {route2, c.idle2}} {
			v := res.Out[i].Value.(map[string]any)
			got := v["distance_km"].(float64) * 1000
			if math.Abs(got-want.dist)/want.dist > 0.01 {
				t.Errorf("%s: trip %d: %.0f m, route %.0f m", c.step, i+1, got, want.dist)
			}
			if idle := v["idle_ms"].(int); idle < want.idle[0] || idle > want.idle[1] {
				t.Errorf("%s: trip %d: idle %d ms, want %v", c.step, i+1, idle, want.idle)
			}
			if mx := v["max_kmh"].(float64); mx < 45 || mx > 50.5 {
				t.Errorf("trip %d: max %v km/h", i+1, mx)
			}
			t.Logf("trip %d: %v", i+1, v)
		}
	}
}

// The recorded drive gives the same trips whatever the arrival order within
// grace and wherever the task is restored.
func TestRecordedDriveDisorderAndRestore(t *testing.T) {
	data, err := os.ReadFile("testdata/drive.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var in []any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		v, _ := record.DecodeJSON([]byte(line))
		in = append(in, v)
	}
	reg := operatortest.Registry(t, trip.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "trip", "by: vehicle\nspeed: kmh\nignition: ignition\nstop_after: 5m\ngrace: 20s\n")
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	recs := operatortest.Values(in...)
	want, _ := keyedtest.Run(t, build, recs, -1)
	if len(want) != 2 {
		t.Fatalf("%d trips", len(want))
	}
	for seed := range 5 {
		rng := rand.New(rand.NewPCG(uint64(seed), 13))
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, recs, 20*time.Second), rng.IntN(len(recs)))
		if len(dlq) != 0 || !slices.Equal(got, want) {
			t.Fatalf("seed %d: DLQ %v\n got %v\nwant %v", seed, dlq, got, want)
		}
	}
}
