package keytable

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

type entry struct{ k string }

// TestTable runs random puts, deletes and lookups on a Table and on a Go
// map side by side, with few enough keys that runs of probed slots are
// long and deletions move entries back, and checks after every thousand
// that each entry can still be found from its home slot.
func TestTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%d", strings.Repeat("k", rng.IntN(80)), i)
	}
	keys = append(keys, "") // the empty key is a key
	var tab Table[entry]
	want := map[string]*entry{}
	for op := range 200_000 {
		k := keys[rng.IntN(len(keys))]
		switch rng.IntN(4) {
		case 0:
			e := &entry{k}
			if old := tab.Put(k, e); old != want[k] {
				t.Fatalf("op %d: Put(%q) replaced %p, want %p", op, k, old, want[k])
			}
			want[k] = e
		case 1:
			if got := tab.Delete([]byte(k)); got != want[k] {
				t.Fatalf("op %d: Delete(%q) = %p, want %p", op, k, got, want[k])
			}
			delete(want, k)
		case 2:
			if got := tab.Get([]byte(k)); got != want[k] {
				t.Fatalf("op %d: Get(%q) = %p, want %p", op, k, got, want[k])
			}
		default:
			if got := tab.GetString(k); got != want[k] {
				t.Fatalf("op %d: GetString(%q) = %p, want %p", op, k, got, want[k])
			}
		}
		if tab.Len() != len(want) {
			t.Fatalf("op %d: Len %d, want %d", op, tab.Len(), len(want))
		}
		if op%1000 == 0 {
			checkRuns(t, &tab)
		}
		if op == 100_000 {
			tab.Reset()
			clear(want)
		}
	}
	for k, e := range want {
		if got := tab.GetString(k); got != e {
			t.Fatalf("GetString(%q) = %p at the end, want %p", k, got, e)
		}
	}
}

// checkRuns checks that no free slot lies between an entry's home slot and
// where it is, and that the slots hold Len entries under their own keys.
func checkRuns[E any](t *testing.T, tab *Table[E]) {
	t.Helper()
	mask := len(tab.slots) - 1
	n := 0
	for i, s := range tab.slots {
		if s.e == nil {
			continue
		}
		n++
		if e, ok := any(s.e).(*entry); ok && e.k != s.k {
			t.Fatalf("slot %d holds key %q for the entry of %q", i, s.k, e.k)
		}
		for j := int(s.h) & mask; j != i; j = (j + 1) & mask {
			if tab.slots[j].e == nil {
				t.Fatalf("%q at slot %d is past free slot %d from its home %d", s.k, i, j, int(s.h)&mask)
			}
		}
	}
	if n != tab.Len() {
		t.Fatalf("%d slots used, Len %d", n, tab.Len())
	}
}

// TestZeroTable checks that an empty table answers lookups and deletes
// before its first Put.
func TestZeroTable(t *testing.T) {
	var tab Table[entry]
	if tab.Get([]byte("a")) != nil || tab.Delete([]byte("a")) != nil || tab.Len() != 0 {
		t.Fatal("an empty table has an entry")
	}
	tab.Reset()
	tab.Put("a", &entry{"a"})
	if e := tab.GetString("a"); e == nil || e.k != "a" {
		t.Fatalf("GetString(a) = %v after Put", e)
	}
}
