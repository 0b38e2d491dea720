package sketch

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func mustQuantiles(t testing.TB, alpha float64, maxBins int) *Quantiles {
	t.Helper()
	s, err := NewQuantiles(alpha, maxBins)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addAll(t testing.TB, s *Quantiles, vs []float64) {
	t.Helper()
	for _, v := range vs {
		if err := s.Add(v); err != nil {
			t.Fatal(err)
		}
	}
}

var testQs = []float64{0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

// checkAccuracy asserts the documented guarantee: Quantile(q) is within
// alpha (relative) of the exact value of rank floor(q*(n-1)).
func checkAccuracy(t *testing.T, name string, s *Quantiles, vs []float64) {
	t.Helper()
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	for _, q := range testQs {
		got, err := s.Quantile(q)
		if err != nil {
			t.Fatal(err)
		}
		want := sorted[int(q*float64(len(sorted)-1))]
		// 1e-12 absorbs floating-point error at bucket boundaries.
		if math.Abs(got-want) > s.RelativeAccuracy()*math.Abs(want)*(1+1e-9)+1e-12 {
			t.Errorf("%s: q=%v got %v, exact %v: error beyond %v", name, q, got, want, s.RelativeAccuracy())
		}
	}
}

func TestQuantilesAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	gen := map[string]func() float64{
		"uniform":     func() float64 { return rng.Float64() * 1000 },
		"lognormal":   func() float64 { return math.Exp(rng.NormFloat64() * 3) },
		"normal±":     func() float64 { return rng.NormFloat64() * 100 },
		"ints with 0": func() float64 { return float64(rng.IntN(21) - 10) },
		"tiny":        func() float64 { return (rng.Float64() - 0.5) * 1e-300 },
	}
	for name, g := range gen {
		for _, alpha := range []float64{0.01, 0.05} {
			s := mustQuantiles(t, alpha, 0)
			vs := make([]float64, 20000)
			for i := range vs {
				vs[i] = g()
			}
			addAll(t, s, vs)
			checkAccuracy(t, name, s, vs)
		}
	}
}

func TestQuantilesCollapseKeepsUpperQuantiles(t *testing.T) {
	// Values spanning 1e-6..1e6 need ~1380 buckets at 1%; cap at 200 so the
	// small magnitudes fold, and check that quantiles above the fold hold.
	rng := rand.New(rand.NewPCG(7, 8))
	s := mustQuantiles(t, 0.01, 200)
	vs := make([]float64, 5000)
	for i := range vs {
		vs[i] = math.Pow(10, rng.Float64()*12-6)
	}
	addAll(t, s, vs)
	if len(s.pos) > 200 {
		t.Fatalf("%d buckets, limit 200", len(s.pos))
	}
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	for _, q := range []float64{0.9, 0.99, 1} {
		got, _ := s.Quantile(q)
		want := sorted[int(q*float64(len(sorted)-1))]
		if math.Abs(got-want) > 0.01*want*(1+1e-9) {
			t.Errorf("q=%v: got %v, want %v", q, got, want)
		}
	}
}

func TestQuantilesMergeEqualsUnion(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, maxBins := range []int{0, 50} {
		a, b, all := mustQuantiles(t, 0, maxBins), mustQuantiles(t, 0, maxBins), mustQuantiles(t, 0, maxBins)
		var vs []float64
		for i := range 3000 {
			v := math.Exp(rng.NormFloat64()*4) * float64(rng.IntN(3)-1)
			vs = append(vs, v)
			if i%3 == 0 {
				addAll(t, a, []float64{v})
			} else {
				addAll(t, b, []float64{v})
			}
		}
		// all gets the values sorted: insertion order must not matter.
		sorted := slices.Clone(vs)
		slices.Sort(sorted)
		addAll(t, all, sorted)
		ab := a.Clone()
		if err := ab.Merge(b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(marshal(t, ab), marshal(t, all)) {
			t.Errorf("maxBins=%d: merged sketch differs from the sketch of the union", maxBins)
		}
		if maxBins == 0 {
			checkAccuracy(t, "merged", ab, vs)
		}
	}
	if err := mustQuantiles(t, 0.01, 0).Merge(mustQuantiles(t, 0.02, 0)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
}

func TestQuantilesRoundTripAndEdges(t *testing.T) {
	s := mustQuantiles(t, 0, 0)
	if _, err := s.Quantile(0.5); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty sketch: err = %v, want ErrEmpty", err)
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if err := s.Add(v); !errors.Is(err, ErrNotFinite) {
			t.Fatalf("Add(%v): err = %v", v, err)
		}
	}
	if _, err := s.Quantile(1.5); err == nil {
		t.Fatal("Quantile(1.5) succeeded")
	}
	for _, vs := range [][]float64{nil, {0}, {-3}, {math.MaxFloat64, -math.MaxFloat64, 0, 5e-324}, {1, 2, 3, -1, -2, 0, 0}} {
		a := mustQuantiles(t, 0, 0)
		addAll(t, a, vs)
		enc := marshal(t, a)
		var back Quantiles
		if err := back.UnmarshalBinary(enc); err != nil {
			t.Fatalf("%v: %v", vs, err)
		}
		if !bytes.Equal(marshal(t, &back), enc) {
			t.Fatalf("%v: round trip changed the encoding", vs)
		}
		if len(vs) > 0 {
			for _, q := range testQs {
				x, _ := a.Quantile(q)
				y, _ := back.Quantile(q)
				if x != y {
					t.Fatalf("%v: q=%v %v after round trip, %v before", vs, q, y, x)
				}
			}
			checkAccuracy(t, "edges", &back, vs)
		}
	}
}

func TestQuantilesUnmarshalRejects(t *testing.T) {
	good := mustQuantiles(t, 0, 0)
	addAll(t, good, []float64{1, 2, -3})
	enc := marshal(t, good)
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, enc[1:]...),
		"truncated": enc[:len(enc)-1],
		"trailing":  append(append([]byte{}, enc...), 0),
	} {
		var s Quantiles
		if err := s.UnmarshalBinary(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzQuantilesUnmarshal(f *testing.F) {
	for _, vs := range [][]float64{nil, {0}, {1, -1, 2.5, 1e9}} {
		s := mustQuantiles(f, 0, 0)
		addAll(f, s, vs)
		f.Add(marshal(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Quantiles
		if err := s.UnmarshalBinary(b); err != nil {
			return
		}
		for _, q := range testQs {
			if _, err := s.Quantile(q); err != nil && !errors.Is(err, ErrEmpty) {
				t.Fatal(err)
			}
		}
		if err := s.Add(1); err != nil {
			t.Fatal(err)
		}
		if err := s.Merge(s.Clone()); err != nil {
			t.Fatal(err)
		}
		var again Quantiles
		if err := again.UnmarshalBinary(marshal(t, &s)); err != nil {
			t.Fatalf("re-encoded sketch does not decode: %v", err)
		}
	})
}
