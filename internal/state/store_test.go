package state

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// oracle is the reference TestLoggedScanKeepsOrder compares with: a map,
// sorted on every scan. (The stores' conformance suite, which compares
// every kind of store with the same reference, is statetest.Run: package
// state's internal tests cannot import it.)
type oracle map[string][]byte

func (o oracle) scan(lo, hi []byte) [][2]string {
	var out [][2]string
	for _, k := range slices.Sorted(maps.Keys(o)) {
		if k >= string(lo) && (hi == nil || k < string(hi)) {
			out = append(out, [2]string{k, string(o[k])})
		}
	}
	return out
}

func scanAll(t *testing.T, s Store, lo, hi []byte) [][2]string {
	t.Helper()
	var out [][2]string
	if err := s.Scan(lo, hi, func(k, v []byte) error {
		out = append(out, [2]string{string(k), string(v)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func randValue(r *rand.Rand) []byte {
	if r.IntN(20) == 0 {
		return []byte{} // empty, which is not a delete
	}
	return fmt.Appendf(nil, "v%d", r.Int64())
}

// TestMemoryDeleteChurnStaysBounded: keys put and deleted without any scan
// must not pile up in the index's pending list or as dead entries.
func TestMemoryDeleteChurnStaysBounded(t *testing.T) {
	m := NewMemory()
	_ = m.Scan(nil, nil, func(k, v []byte) error { return nil })
	for i := range 100_000 {
		k := fmt.Appendf(nil, "k%d", i)
		_ = m.Put(k, k)
		_ = m.Delete(k)
	}
	added := 0
	for _, ix := range m.index {
		if ix != nil {
			added += len(ix.added)
		}
	}
	if added > 2048 || m.dead > 2048 || m.m.Len() > 4096 {
		t.Errorf("after churn: %d added, %d dead, %d in the table", added, m.dead, m.m.Len())
	}
}

// TestMemoryIndexOfKeysInOrder: an expiry index (keys by time under one
// prefix byte, put in time order, scanned and deleted from the oldest)
// beside keys of another prefix put in no order. The index's dead
// entries are dropped once they are about a quarter of it, and every scan
// answers as the oracle does.
func TestMemoryIndexOfKeysInOrder(t *testing.T) {
	m := NewMemory()
	want := oracle{}
	r := rand.New(rand.NewPCG(3, 4))
	key := func(fam byte, n int) []byte { return fmt.Appendf(nil, "%c%08d", fam, n) }
	put := func(k []byte) {
		want[string(k)] = k
		if err := m.Put(k, k); err != nil {
			t.Fatal(err)
		}
	}
	expired := 0 // the expiry keys below are deleted
	for n := range 20_000 {
		put(key('e', n))
		put(key('d', r.IntN(5_000)))
		if n%250 != 249 {
			continue
		}
		// Scan the expiry index up to a point, as dedupe does, and delete
		// what it found with its ids.
		upto := key('e', n-1_000)
		got := scanAll(t, m, key('e', 0), upto)
		if w := want.scan(key('e', 0), upto); !slices.Equal(got, w) {
			t.Fatalf("after %d: scan of the expiry index = %d keys, want %d", n, len(got), len(w))
		}
		for _, kv := range got {
			delete(want, kv[0])
			if err := m.Delete([]byte(kv[0])); err != nil {
				t.Fatal(err)
			}
			expired++
		}
		if ix := m.index[slot("e")]; ix.dead > len(ix.sorted)/4+250 {
			t.Fatalf("after %d: %d dead entries in an index of %d", n, ix.dead, len(ix.sorted))
		}
	}
	if expired < 15_000 {
		t.Fatalf("only %d expiry keys expired", expired)
	}
	if got, w := scanAll(t, m, nil, nil), want.scan(nil, nil); !slices.Equal(got, w) {
		t.Fatalf("full scan = %d keys, want %d", len(got), len(w))
	}
	if got, w := scanAll(t, m, key('d', 100), key('e', 19_500)), want.scan(key('d', 100), key('e', 19_500)); !slices.Equal(got, w) {
		t.Fatalf("scan across prefixes = %d keys, want %d", len(got), len(w))
	}
}

// TestLoggedCoalesces: a commit interval's writes become one changelog
// record per key, the last write's, in the order of the keys' first
// writes. Over a memory store the writes go straight to it and an abort
// puts back what they replaced; over another store they reach it only when
// the transaction committed.
func TestLoggedCoalesces(t *testing.T) {
	for _, through := range []bool{true, false} {
		t.Run(pathName(through), func(t *testing.T) { testLoggedCoalesces(t, through) })
	}
}

func testLoggedCoalesces(t *testing.T, through bool) {
	base := NewMemory()
	l := loggedOver(base, 3, through)
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	for i := range 1000 {
		_ = l.Put(fmt.Appendf(nil, "k%d", i%10), fmt.Appendf(nil, "v%d", i))
	}
	_ = l.Put([]byte("gone"), []byte("x"))
	_ = l.Delete([]byte("gone"))
	_ = l.Delete([]byte("back"))
	_ = l.Put([]byte("back"), []byte("again"))
	_ = l.Put([]byte("empty"), nil)

	if v, ok, _ := l.Get([]byte("k3")); !ok || string(v) != "v993" {
		t.Errorf("read-your-writes: k3 = %q, %v", v, ok)
	}
	if _, ok, _ := base.Get([]byte("k3")); ok != through {
		t.Errorf("before the commit, the store has k3: %v, want %v", ok, through)
	}
	changes := l.Drain()
	got := map[string]string{}
	for _, c := range changes {
		if c.Value == nil {
			got[string(c.Key)] = "<tombstone>"
		} else {
			got[string(c.Key)] = string(c.Value)
		}
	}
	want := map[string]string{"gone": "<tombstone>", "back": "again", "empty": ""}
	for i := range 10 {
		want[fmt.Sprintf("k%d", i)] = fmt.Sprintf("v%d", 990+i)
	}
	if !maps.Equal(got, want) || len(changes) != len(want) {
		t.Errorf("drained %v\nwant %v", got, want)
	}
	var order []string
	for _, c := range changes {
		order = append(order, string(c.Key))
	}
	if want := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "gone", "back", "empty"}; !slices.Equal(order, want) {
		t.Errorf("drained in the order %q, want that of the first writes, %q", order, want)
	}
	if err := l.Put([]byte("late"), nil); !errors.Is(err, ErrDraining) {
		t.Errorf("put while draining = %v, want ErrDraining", err)
	}
	if err := l.Committed(42); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := base.Get([]byte("k3")); !ok || string(v) != "v993" {
		t.Errorf("after commit the store has k3 = %q, %v", v, ok)
	}
	if v, ok, _ := base.Get([]byte("empty")); !ok || v == nil || len(v) != 0 {
		t.Errorf("empty value stored as %q, %v", v, ok)
	}
	if cp := base.Checkpoint(); cp.Offset(3) != 42 || !cp.Written.Equal(now) {
		t.Errorf("checkpoint %+v, want partition 3 at 42", cp)
	}
	if st := l.Stats(); st.Writes != 1005 || st.Changes != int64(len(want)) {
		t.Errorf("stats %+v", st)
	}

	// An aborted interval leaves the store as it was.
	_ = l.Put([]byte("k3"), []byte("aborted"))
	_ = l.Delete([]byte("k4"))
	l.Drain()
	l.Aborted()
	if v, _, _ := l.Get([]byte("k3")); string(v) != "v993" {
		t.Errorf("after abort k3 = %q", v)
	}
	if _, ok, _ := l.Get([]byte("k4")); !ok {
		t.Error("after abort k4 is gone")
	}
	if v, _, _ := base.Get([]byte("k3")); string(v) != "v993" {
		t.Errorf("after abort the store has k3 = %q", v)
	}
	if err := l.Committed(43); !errors.Is(err, ErrNotDraining) {
		t.Errorf("Committed without Drain = %v, want ErrNotDraining", err)
	}
	// An empty commit does not move the checkpoint.
	l.Drain()
	if err := l.Committed(99); err != nil || base.Checkpoint().Offset(3) != 42 {
		t.Errorf("empty commit: %v, checkpoint %v", err, base.Checkpoint().Offsets)
	}
}

// TestLoggedChangelogReplays: what a restore rebuilds is what the store
// held. Over random commit intervals of puts, deletes and scans (which
// index keys, so deletes leave dead entries, compacted now and then), some
// aborted, the changes each committed interval drained, applied in order
// to a replica of the committed state as a restore applies the changelog,
// give the store's contents; after an abort the store holds the last
// committed contents again. Over a memory store, written through, both
// depend on the log of first writes (a key deleted and put again in one
// interval, entries dropped by a compaction in between).
func TestLoggedChangelogReplays(t *testing.T) {
	for _, through := range []bool{true, false} {
		t.Run(pathName(through), func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			base := NewMemory()
			l := loggedOver(base, 0, through)
			replica := NewMemory()
			key := func() []byte { return fmt.Appendf(nil, "%c%04d", "ab"[r.IntN(2)], r.IntN(3000)) }
			contents := func(s Store) map[string]string {
				m := map[string]string{}
				if err := s.Scan(nil, nil, func(k, v []byte) error {
					m[string(k)] = string(v)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				return m
			}
			for interval := range 30 {
				for range r.IntN(6000) {
					switch op := r.IntN(100); {
					case op < 50:
						if err := l.Put(key(), randValue(r)); err != nil {
							t.Fatal(err)
						}
					case op < 98:
						if err := l.Delete(key()); err != nil {
							t.Fatal(err)
						}
					default:
						// Only keys starting with a are scanned, so indexed:
						// those with b stay out of the index, and a delete
						// drops their entries at once.
						if err := l.Scan([]byte("a"), []byte("b"), func(k, v []byte) error { return nil }); err != nil {
							t.Fatal(err)
						}
					}
				}
				changes := l.Drain()
				if r.IntN(4) == 0 {
					l.Aborted()
					if got, want := contents(l), contents(replica); !maps.Equal(got, want) {
						t.Fatalf("interval %d, aborted: %d keys, want the %d committed", interval, len(got), len(want))
					}
					continue
				}
				if err := replica.Apply(changes, Checkpoint{}); err != nil {
					t.Fatal(err)
				}
				live := contents(l)
				if err := l.Committed(int64(interval)); err != nil {
					t.Fatal(err)
				}
				if got, want := contents(replica), live; !maps.Equal(got, want) {
					t.Fatalf("interval %d: the drained changes rebuild %d keys, the store has %d", interval, len(got), len(want))
				}
				if got := contents(base); !maps.Equal(got, live) {
					t.Fatalf("interval %d: after the commit the store has %d keys, want %d", interval, len(got), len(live))
				}
			}
		})
	}
}
