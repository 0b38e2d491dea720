package anomaly_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/anomaly"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, anomaly.Register), "anomaly")
}

// The incremental mean equals the explicit weighted sum
// (1-a)^(n-1) x1 + sum over i>1 of a (1-a)^(n-i) x_i, and the incremental
// variance equals the weighted sum of squared deviations from the running
// mean, (1-a) (v + a d^2) unrolled.
func TestStatsAgainstExplicitSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for range 100 {
		a := 0.01 + 0.98*rng.Float64()
		n := 1 + rng.IntN(200)
		xs := make([]float64, n)
		var s anomaly.Stats
		var wantVar float64
		mean := 0.0
		for i := range xs {
			xs[i] = rng.NormFloat64()*10 + 50
			if i > 0 {
				d := xs[i] - mean
				wantVar = (1 - a) * (wantVar + a*d*d)
				mean += a * d
			} else {
				mean = xs[0]
			}
			s.Add(xs[i], a)
		}
		want := math.Pow(1-a, float64(n-1)) * xs[0]
		for i := 1; i < n; i++ {
			want += a * math.Pow(1-a, float64(n-1-i)) * xs[i]
		}
		if math.Abs(s.Mean-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Fatalf("alpha %v n %d: mean %v, explicit %v", a, n, s.Mean, want)
		}
		if math.Abs(s.Var-wantVar) > 1e-9*math.Max(1, wantVar) || s.N != n {
			t.Fatalf("variance %v, want %v", s.Var, wantVar)
		}
	}
}

// A stationary series rarely alerts at z = 4; a step change alerts at once.
func TestStationaryAndStep(t *testing.T) {
	var s anomaly.Stats
	rng := rand.New(rand.NewPCG(9, 9))
	alerts := 0
	for i := range 10000 {
		x := rng.NormFloat64()
		if sd := math.Sqrt(s.Var); i >= 50 && sd > 0 && math.Abs(x-s.Mean)/sd >= 4 {
			alerts++
		}
		s.Add(x, 0.05)
	}
	if alerts > 20 {
		t.Fatalf("%d alerts in 10,000 standard normal values at z=4", alerts)
	}
	if z := (10 - s.Mean) / math.Sqrt(s.Var); z < 5 {
		t.Fatalf("a jump to 10 scores only %v", z)
	}
}

// Alerts depend only on the values in event-time order: not on arrival
// order within grace, nor on where the task was restored.
func TestDisorderAndRestore(t *testing.T) {
	reg := operatortest.Registry(t, anomaly.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "anomaly", "by: s\nvalue: x\nalpha: 0.1\nz: 2\nwarmup: 5\ngrace: 1m\n")
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	total := 0
	for seed := range 100 {
		rng := rand.New(rand.NewPCG(uint64(seed), 10))
		var in []*record.Record
		at := start
		for range 10 + rng.IntN(100) {
			at = at.Add(time.Duration(1+rng.IntN(30)) * time.Second)
			in = append(in, keyedtest.Record(nil, at, map[string]any{"s": fmt.Sprint("s", rng.IntN(3)), "x": rng.NormFloat64()}))
		}
		want, _ := keyedtest.Run(t, build, in, -1)
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, time.Minute), rng.IntN(len(in)))
		if len(dlq) != 0 || !slices.Equal(got, want) {
			t.Fatalf("seed %d: DLQ %v\n got %v\nwant %v", seed, dlq, got, want)
		}
		total += len(want)
	}
	if total < 50 {
		t.Fatalf("only %d alerts", total)
	}
}
