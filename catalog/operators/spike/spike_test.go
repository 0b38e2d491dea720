package spike_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operators/spike"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, spike.Register), "spike")
}

// oracle: brute-force mean of each record's earlier records of its key in
// (t - within, t].
func oracle(in []*record.Record, within time.Duration, factor float64, minCount int) []string {
	var out []string
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	r4 := func(x float64) float64 { return math.Round(x*1e4) / 1e4 }
	for i, r := range in {
		v := r.Value.(map[string]any)
		sum, n := 0.0, 0
		for _, o := range in[:i] {
			if ov := o.Value.(map[string]any); ov["k"] == v["k"] && o.Timestamp.After(r.Timestamp.Add(-within)) {
				sum += float64(ov["x"].(int))
				n++
			}
		}
		x := float64(v["x"].(int))
		if n < minCount || sum <= 0 || x <= factor*sum/float64(n) {
			continue
		}
		mean := sum / float64(n)
		rec, _ := record.EncodeJSON(v)
		out = append(out, fmt.Sprintf(`%s@%s {"at":"%s","count":%d,"event":"spike","key":"%s","mean":%s,"observed":%s,"ratio":%s,"record":%s}`,
			v["k"], f(r.Timestamp), f(r.Timestamp), n, v["k"], num(r4(mean)), num(x), num(r4(x/mean)), rec))
	}
	return out
}

func num(x float64) string {
	b, _ := record.EncodeJSON(x)
	return string(b)
}

func TestOracle(t *testing.T) {
	reg := operatortest.Registry(t, spike.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "spike", "by: k\nvalue: x\nwithin: 5m\nfactor: 2\nmin_count: 2\ngrace: 1m\n")
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	total := 0
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 12))
		var in []*record.Record
		at := start
		for range 3 + rng.IntN(60) {
			at = at.Add(time.Duration(1+rng.IntN(60)) * time.Second)
			x := 1 + rng.IntN(10)
			if rng.IntN(8) == 0 {
				x *= 5
			}
			in = append(in, keyedtest.Record(nil, at, map[string]any{"k": fmt.Sprint("k", rng.IntN(3)), "x": x}))
		}
		want := oracle(in, 5*time.Minute, 2, 2)
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, time.Minute), rng.IntN(len(in)))
		if len(dlq) != 0 {
			t.Fatalf("seed %d: DLQ %v", seed, dlq)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
		total += len(want)
	}
	if total < 100 {
		t.Fatalf("only %d spikes", total)
	}
}
