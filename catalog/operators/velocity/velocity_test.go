package velocity_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operators/velocity"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, velocity.Register), "velocity")
}

// oracle counts, for each payment in time order, the payments of its card
// in (t - within, t] by brute force.
func oracle(in []*record.Record, within time.Duration, maxCount int, maxAmount int) []string {
	sorted := slices.Clone(in)
	slices.SortStableFunc(sorted, func(a, b *record.Record) int { return a.Timestamp.Compare(b.Timestamp) })
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	var out []string
	for i, r := range sorted {
		v := r.Value.(map[string]any)
		n, sum, since := 0, 0, r.Timestamp
		for _, o := range sorted[:i+1] {
			ov := o.Value.(map[string]any)
			if ov["card"] == v["card"] && o.Timestamp.After(r.Timestamp.Add(-within)) {
				n++
				sum += ov["eur"].(int)
				if o.Timestamp.Before(since) {
					since = o.Timestamp
				}
			}
		}
		var ex []string
		if n > maxCount {
			ex = append(ex, `"count"`)
		}
		if sum > maxAmount {
			ex = append(ex, `"amount"`)
		}
		if ex == nil {
			continue
		}
		rec, _ := record.EncodeJSON(v)
		out = append(out, fmt.Sprintf(`%s@%s {"amount":%d,"at":"%s","count":%d,"event":"velocity","exceeded":[%s],"key":"%s","record":%s,"since":"%s"}`,
			v["card"], f(r.Timestamp), sum, f(r.Timestamp), n, strings.Join(ex, ","), v["card"], rec, f(since)))
	}
	return out
}

// The operator agrees with the brute-force oracle whatever the arrival
// order within grace and wherever the task is restored.
func TestOracle(t *testing.T) {
	reg := operatortest.Registry(t, velocity.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "velocity", "by: card\nwithin: 10m\nmax_count: 3\namount: eur\nmax_amount: 100\ngrace: 3m\n")
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 2))
		var in []*record.Record
		at := start
		for range 5 + rng.IntN(80) {
			at = at.Add(time.Duration(1+rng.IntN(240)) * time.Second)
			in = append(in, keyedtest.Record(nil, at, map[string]any{"card": fmt.Sprintf("c%d", rng.IntN(3)), "eur": rng.IntN(60), "ts": at.Format(time.RFC3339)}))
		}
		want := oracle(in, 10*time.Minute, 3, 100)
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, 3*time.Minute), rng.IntN(len(in)))
		if len(dlq) != 0 {
			t.Fatalf("seed %d: DLQ %v within grace", seed, dlq)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
	}
}
