package window

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestTable runs random puts, removes and lookups on a table and on a Go
// map side by side, over keys short enough to be kept inline and longer,
// with few enough keys that runs of probed slots are long and removals
// move entries back.
func TestTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([][]byte, 500)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "%s-%d", strings.Repeat("k", rng.IntN(2*inlineKey)), i)
	}
	tab := newTable()
	want := map[string]*cached{}
	for op := range 200_000 {
		k := keys[rng.IntN(len(keys))]
		switch rng.IntN(3) {
		case 0:
			if want[string(k)] == nil {
				e := newCached(k, int64(op), []Accumulator{&countAcc{}})
				if e.key != string(k) {
					t.Fatalf("entry key %q, want %q", e.key, k)
				}
				tab.put(e)
				want[string(k)] = e
			}
		case 1:
			if got := tab.remove(k); got != want[string(k)] {
				t.Fatalf("op %d: remove(%q) = %p, want %p", op, k, got, want[string(k)])
			}
			delete(want, string(k))
		default:
			if got := tab.get(k); got != want[string(k)] {
				t.Fatalf("op %d: get(%q) = %p, want %p", op, k, got, want[string(k)])
			}
		}
		if tab.len() != len(want) {
			t.Fatalf("op %d: len %d, want %d", op, tab.len(), len(want))
		}
		if op%1000 == 0 {
			checkRuns(t, tab)
		}
		if op == 100_000 {
			tab.reset()
			clear(want)
		}
	}
	for k, e := range want {
		if got := tab.get([]byte(k)); got != e {
			t.Fatalf("get(%q) = %p at the end, want %p", k, got, e)
		}
	}
}

// checkRuns checks that each entry can be found: no free slot lies between
// its home slot and where it is.
func checkRuns(t *testing.T, tab *table) {
	t.Helper()
	mask := uint64(len(tab.slots) - 1)
	n := 0
	for i, s := range tab.slots {
		if s.e == nil {
			continue
		}
		n++
		if s.h != tab.hash([]byte(s.e.key)) {
			t.Fatalf("slot %d holds hash %x of another key than %q", i, s.h, s.e.key)
		}
		for j := s.h & mask; j != uint64(i); j = (j + 1) & mask {
			if tab.slots[j].e == nil {
				t.Fatalf("%q at slot %d is past free slot %d from its home %d", s.e.key, i, j, s.h&mask)
			}
		}
	}
	if n != tab.len() {
		t.Fatalf("%d slots used, len %d", n, tab.len())
	}
}

// TestNewCachedCopies checks that an entry keeps its key and accumulator
// list whether they fit inline or not, and does not share the caller's key
// buffer.
func TestNewCachedCopies(t *testing.T) {
	for _, n := range []int{0, 1, inlineKey, inlineKey + 1} {
		for _, na := range []int{1, inlineAccs, inlineAccs + 1} {
			sk := []byte(strings.Repeat("x", n))
			accs := make([]Accumulator, na)
			for i := range accs {
				accs[i] = &countAcc{n: int64(i)}
			}
			e := newCached(sk, 7, accs)
			for i := range sk {
				sk[i] = 'y'
			}
			if e.key != strings.Repeat("x", n) || len(e.accs) != na || e.end != 7 {
				t.Fatalf("key %d, %d accumulators: entry %q with %d", n, na, e.key, len(e.accs))
			}
			for i := range accs {
				if e.accs[i] != accs[i] {
					t.Fatalf("accumulator %d is not the one given", i)
				}
			}
		}
	}
}
