package sketch

import (
	"bytes"
	"errors"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func mustHLL(t testing.TB, p uint8) *HLL {
	t.Helper()
	h, err := NewHLL(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func marshal(t testing.TB, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The hash is persisted (inside sparse HLLs and as register positions), so
// its values are pinned: a change here breaks every stored sketch.
func TestHashIsStable(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0xefd01f60ba992926},
		{"a", 0x82a2a958a9bece5b},
		{"sluice", 0xbc994db9d32abd3c},
	} {
		if got := HashString(c.in); got != c.want {
			t.Errorf("HashString(%q) = %#x, want %#x (the persisted hash changed)", c.in, got, c.want)
		}
		// The first stage is standard FNV-1a 64.
		f := fnv.New64a()
		f.Write([]byte(c.in))
		if got := mix64(f.Sum64()); got != c.want {
			t.Errorf("FNV-1a stage of %q differs from hash/fnv", c.in)
		}
		if got := Hash64([]byte(c.in)); got != c.want {
			t.Errorf("Hash64(%q) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

func TestHLLSmallCountsAreExact(t *testing.T) {
	h := mustHLL(t, 0)
	for i := range 2000 {
		h.AddString("k" + strconv.Itoa(i%1500))
	}
	if !h.Exact() || h.Estimate() != 1500 {
		t.Fatalf("Estimate = %d exact=%v, want exactly 1500", h.Estimate(), h.Exact())
	}
	// 1500 hashes cost about 8 bytes each at most, far below 16 KiB.
	if n := len(marshal(t, h)); n > 1500*9+16 {
		t.Fatalf("sparse encoding of 1500 hashes takes %d bytes", n)
	}
	small := mustHLL(t, 0)
	small.AddString("x")
	if n := len(marshal(t, small)); n > 16 {
		t.Fatalf("one-value sketch takes %d bytes", n)
	}
}

// Accuracy against exact counts: the error must stay within 4 standard
// errors (1.04/sqrt(m)) at every cardinality, across the sparse/dense switch
// and the linear-counting range.
func TestHLLAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []uint8{10, 14} {
		stdErr := 1.04 / math.Sqrt(float64(uint(1)<<p))
		h := mustHLL(t, p)
		n := 0
		for _, target := range []int{100, 1000, 3000, 10000, 50000, 150000} {
			for ; n < target; n++ {
				h.Add(rng.Uint64())
			}
			est := float64(h.Estimate())
			rel := math.Abs(est-float64(n)) / float64(n)
			if rel > 4*stdErr {
				t.Errorf("p=%d n=%d: estimate %.0f, relative error %.4f > %.4f", p, n, est, rel, 4*stdErr)
			}
		}
	}
}

func TestHLLMergeEqualsUnion(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sizes := range [][2]int{{10, 20}, {1000, 1500}, {100, 5000}, {5000, 100}, {20000, 30000}} {
		a, b, all := mustHLL(t, 12), mustHLL(t, 12), mustHLL(t, 12)
		for range sizes[0] {
			x := rng.Uint64N(40000) // overlapping ranges: duplicates across sketches
			a.Add(Hash64(strconv.AppendUint(nil, x, 10)))
			all.Add(Hash64(strconv.AppendUint(nil, x, 10)))
		}
		for range sizes[1] {
			x := rng.Uint64N(40000)
			b.Add(Hash64(strconv.AppendUint(nil, x, 10)))
			all.Add(Hash64(strconv.AppendUint(nil, x, 10)))
		}
		ab := a.Clone()
		if err := ab.Merge(b); err != nil {
			t.Fatal(err)
		}
		ba := b.Clone()
		if err := ba.Merge(a); err != nil {
			t.Fatal(err)
		}
		want := marshal(t, all)
		if !bytes.Equal(marshal(t, ab), want) || !bytes.Equal(marshal(t, ba), want) {
			t.Errorf("sizes %v: merged sketch differs from the sketch of the union", sizes)
		}
	}
	if err := mustHLL(t, 10).Merge(mustHLL(t, 11)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("merging precisions 10 and 11: err = %v, want ErrMismatch", err)
	}
}

func TestHLLRoundTripAndDeterminism(t *testing.T) {
	for _, n := range []int{0, 1, 50, 600, 10000} {
		a, b := mustHLL(t, 12), mustHLL(t, 12)
		for i := range n {
			a.AddString("v" + strconv.Itoa(i))
		}
		// b gets the same values in reverse order, with repeats.
		for i := n - 1; i >= 0; i-- {
			b.AddString("v" + strconv.Itoa(i))
			b.AddString("v" + strconv.Itoa(i/2))
		}
		enc := marshal(t, a)
		if !bytes.Equal(enc, marshal(t, b)) {
			t.Fatalf("n=%d: two sketches of the same values encode differently", n)
		}
		var back HLL
		if err := back.UnmarshalBinary(enc); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if back.Estimate() != a.Estimate() || !bytes.Equal(marshal(t, &back), enc) {
			t.Fatalf("n=%d: round trip changed the sketch", n)
		}
	}
}

func TestHLLUnmarshalRejects(t *testing.T) {
	good := mustHLL(t, 4)
	good.AddString("a")
	enc := marshal(t, good)
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   {2, 4, 0, 0},
		"precision": {1, 3, 0, 0},
		"mode":      {1, 4, 7, 0},
		"trailing":  append(append([]byte{}, enc...), 0),
		"dense len": {1, 4, 1, 0},
		"register":  append([]byte{1, 4, 1}, bytes.Repeat([]byte{62}, 16)...),
		"too many":  {1, 4, 0, 3, 1, 1, 1},
		"repeat":    {1, 4, 0, 2, 5, 0},
	} {
		var h HLL
		if err := h.UnmarshalBinary(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzHLLUnmarshal(f *testing.F) {
	for _, n := range []int{0, 3, 2000} {
		h := mustHLL(f, 8)
		for i := range n {
			h.AddString(strconv.Itoa(i))
		}
		f.Add(marshal(f, h))
	}
	f.Add([]byte{1, 4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h HLL
		if err := h.UnmarshalBinary(b); err != nil {
			return
		}
		// Whatever decodes must behave like a sketch.
		_ = h.Estimate()
		h.AddString("x")
		if err := h.Merge(h.Clone()); err != nil {
			t.Fatal(err)
		}
		var again HLL
		if err := again.UnmarshalBinary(marshal(t, &h)); err != nil {
			t.Fatalf("re-encoded sketch does not decode: %v", err)
		}
	})
}
