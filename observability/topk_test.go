package observability

import (
	"math/rand/v2"
	"testing"
)

// A key with 30% of a stream of many distinct keys is the top counter, and
// its count is within Space-Saving's bound of the truth.
func TestTopKFindsHeavyHitter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := NewTopK(16)
	const n, hot = 100_000, uint64(42)
	truth := 0
	for range n {
		if r.IntN(10) < 3 {
			s.Add(hot)
			truth++
		} else {
			s.Add(1000 + r.Uint64N(50_000))
		}
	}
	top := s.Top(3)
	if top[0].Key != hot {
		t.Fatalf("top key %d, want %d (%v)", top[0].Key, hot, top)
	}
	if top[0].Count < uint64(truth) || top[0].Count-top[0].Error > uint64(truth) {
		t.Errorf("count %d (error %d) does not bound the true %d", top[0].Count, top[0].Error, truth)
	}
	if s.Total() != n {
		t.Errorf("total %d, want %d", s.Total(), n)
	}
}

// Space-Saving's guarantees on an adversarial order: every key more frequent
// than total/k is kept, and no count under-estimates.
func TestTopKGuarantees(t *testing.T) {
	s := NewTopK(4)
	counts := map[uint64]int{}
	add := func(k uint64, n int) {
		for range n {
			s.Add(k)
			counts[k]++
		}
	}
	for i := range uint64(40) { // many rare keys first, to fill and churn the counters
		add(100+i, 1)
	}
	add(1, 30)
	add(2, 25)
	for i := range uint64(20) {
		add(200+i, 1)
	}
	kept := map[uint64]KeyCount{}
	for _, kc := range s.Top(4) {
		kept[kc.Key] = kc
		if kc.Count < uint64(counts[kc.Key]) {
			t.Errorf("key %d: count %d under-estimates %d", kc.Key, kc.Count, counts[kc.Key])
		}
	}
	for k, c := range counts {
		if uint64(c) > s.Total()/4 {
			if _, ok := kept[k]; !ok {
				t.Errorf("key %d with %d of %d records was dropped", k, c, s.Total())
			}
		}
	}
	s.Reset()
	if s.Total() != 0 || len(s.Top(10)) != 0 {
		t.Error("reset left counters")
	}
}

func BenchmarkTopKAdd(b *testing.B) {
	s := NewTopK(32)
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]uint64, 4096)
	for i := range keys {
		keys[i] = r.Uint64N(100_000)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Add(keys[i&4095])
	}
}
