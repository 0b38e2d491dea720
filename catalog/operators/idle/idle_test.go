package idle_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/idle"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestConformance(t *testing.T) {
	operatortest.Conform(t, operatortest.Registry(t, idle.Register), "idle")
}

func TestConfigErrors(t *testing.T) {
	reg := operatortest.Registry(t, idle.Register)
	for step, want := range map[string]string{
		"speed: kmh\nfor: 5m\n":                      "grace",
		"for: 5m\ngrace: 0s\n":                       "schema",
		"speed: kmh\nfor: 0s\ngrace: 0s\n":           "for",
		"speed: kmh\nfor: 5m\ngrace: 0s\nemit: no\n": "schema",
	} {
		if _, err := operatortest.Build(reg, "idle", step); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one mentioning %q", step, err, want)
		}
	}
}

// reports are random minutes of a few vehicles: mostly standing or crawling,
// the engine sometimes off, now and then a silence longer than max_gap.
func reports(rng *rand.Rand, n int) []*record.Record {
	at := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)
	var in []*record.Record
	for range n {
		step := time.Duration(10+rng.IntN(110)) * time.Second
		if rng.IntN(25) == 0 {
			step = time.Duration(5+rng.IntN(20)) * time.Minute
		}
		at = at.Add(step)
		kmh := 0
		if rng.IntN(4) == 0 {
			kmh = rng.IntN(40)
		}
		in = append(in, keyedtest.Record(nil, at, map[string]any{
			"truck": fmt.Sprintf("t%d", rng.IntN(3)), "kmh": kmh, "engine": rng.IntN(8) > 0, "lat": 51.9, "lon": 4.4,
		}))
	}
	return in
}

// oracle finds the episodes from each truck's records in time order: runs
// of idle records (engine on, below 3 km/h), split where the truck was
// silent for max_gap or more, ending at the next record or, after a
// silence, at the last idle one.
func oracle(in []*record.Record, dur, maxGap time.Duration) []string {
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	byT := map[string][]*record.Record{}
	for _, r := range in {
		k := r.Value.(map[string]any)["truck"].(string)
		byT[k] = append(byT[k], r)
	}
	idleAt := func(r *record.Record) bool {
		v := r.Value.(map[string]any)
		return v["engine"].(bool) && v["kmh"].(int) < 3
	}
	var out []string
	for k, rs := range byT {
		for i := 0; i < len(rs); i++ {
			if !idleAt(rs[i]) {
				continue
			}
			j := i
			for j+1 < len(rs) && idleAt(rs[j+1]) && rs[j+1].Timestamp.Sub(rs[j].Timestamp) < maxGap {
				j++
			}
			start, end := rs[i].Timestamp, rs[j].Timestamp
			if j+1 < len(rs) && rs[j+1].Timestamp.Sub(rs[j].Timestamp) < maxGap {
				end = rs[j+1].Timestamp
			}
			if d := end.Sub(start); d >= dur {
				out = append(out, fmt.Sprintf(`%s@%s {"duration_ms":%d,"end":"%s","event":"idle","key":"%s","lat":51.9,"lon":4.4,"points":%d,"start":"%s"}`,
					k, f(end), d.Milliseconds(), f(end), k, j-i+1, f(start)))
			}
			i = j
		}
	}
	slices.Sort(out)
	return out
}

// The operator agrees with the oracle, whatever the arrival order within
// grace and wherever the task is restored.
func TestOracle(t *testing.T) {
	reg := operatortest.Registry(t, idle.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "idle", "by: truck\nspeed: kmh\nignition: engine\nfor: 4m\nmax_gap: 5m\ngrace: 3m\n")
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	total := 0
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 3))
		in := reports(rng, 5+rng.IntN(80))
		want := oracle(in, 4*time.Minute, 5*time.Minute)
		ordered, _ := keyedtest.Run(t, build, in, -1)
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, 3*time.Minute), rng.IntN(len(in)))
		if len(dlq) != 0 {
			t.Fatalf("seed %d: DLQ %v within grace", seed, dlq)
		}
		if !slices.Equal(got, ordered) {
			t.Fatalf("seed %d: disorder or restore changed the output\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(ordered, "\n     "))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
		total += len(got)
	}
	if total < 100 {
		t.Fatalf("only %d episodes in 200 runs", total)
	}
}

// An idling alert fires on the watermark alone: with no record after the
// first, the stream time moving on (here to the end of input) raises it, and
// the episode, which lasted no time, is not reported.
func TestAlertOnWatermark(t *testing.T) {
	reg := operatortest.Registry(t, idle.Register)
	op, err := operatortest.Build(reg, "idle", "speed: kmh\nfor: 5m\nemit: transitions\ngrace: 0s\n")
	if err != nil {
		t.Fatal(err)
	}
	res := operatortest.Process(t.Context(), op, operatortest.Values(
		map[string]any{"kmh": 0, "lat": 1, "lon": 2, "ts": "2026-01-01T07:00:00Z"},
	))
	if len(res.Out) != 1 || res.Out[0].Value.(map[string]any)["event"] != "idling" {
		t.Fatalf("outputs %v", res.Out)
	}
}
