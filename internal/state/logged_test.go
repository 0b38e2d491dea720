package state

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// buffered hides that its Committer is a Memory store, so that a Logged
// store over it buffers its writes as over a disk store.
type buffered struct{ Committer }

// loggedOver returns a Logged store over base: written through, or, with
// through false, buffering its writes as over a disk store.
func loggedOver(base *Memory, partition int32, through bool) *Logged {
	if through {
		return NewLogged(base, partition)
	}
	return NewLogged(buffered{base}, partition)
}

// pathName names the path loggedOver takes, for subtests.
func pathName(through bool) string {
	if through {
		return "memory"
	}
	return "buffered"
}

// TestLoggedScanKeepsOrder: over a store other than Memory, Scan merges
// the buffered writes from an index kept up to date incrementally (per
// first byte of the keys: a long run, a short run, the keys new since the
// last Scan) rather than sorted on each call. The test writes many more
// keys per commit interval than statetest's oracle test, under two first
// bytes, so that the short runs are merged into the long ones many times,
// scanning after irregular numbers of writes (sometimes after every
// write, as a session window does), and checks every Scan and Drain
// against a map, that a Scan leaves no key of its range unsorted, that the
// short runs stay about the square root of the long ones, and that Drain
// keeps the order of first writes.
func TestLoggedScanKeepsOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	l := NewLogged(buffered{NewMemory()}, 0)
	key := func() []byte { return fmt.Appendf(nil, "%c%05d", "jk"[r.IntN(2)], r.IntN(20_000)) }
	live, committed := oracle{}, oracle{}
	for interval := range 8 {
		writes := 1 + r.IntN(6000)
		var firsts []string // the keys in the order of their first write
		seen := map[string]bool{}
		for i := 0; i < writes; i++ {
			k := key()
			if !seen[string(k)] {
				seen[string(k)] = true
				firsts = append(firsts, string(k))
			}
			if r.IntN(4) == 0 {
				delete(live, string(k))
				if err := l.Delete(k); err != nil {
					t.Fatal(err)
				}
			} else {
				v := randValue(r)
				live[string(k)] = bytes.Clone(v)
				if err := l.Put(k, v); err != nil {
					t.Fatal(err)
				}
			}
			// Scan after 1 to 64 writes, more often early in the interval.
			if r.IntN(1+min(i, 63)) > 0 {
				continue
			}
			lo, hi := key(), key()
			if bytes.Compare(lo, hi) > 0 {
				lo, hi = hi, lo
			}
			if r.IntN(8) == 0 {
				hi = nil
			}
			if got, want := scanAll(t, l, lo, hi), live.scan(lo, hi); !slices.Equal(got, want) {
				t.Fatalf("interval %d, write %d: scan [%q, %q) = %d keys, want %d", interval, i, lo, hi, len(got), len(want))
			}
			last := len(l.index) - 1
			if hi != nil {
				last = slot(string(hi))
			}
			for s := slot(string(lo)); s <= last; s++ {
				rs := l.index[s]
				if rs == nil {
					continue
				}
				if len(rs.fresh) != 0 {
					t.Fatalf("%d keys of a scanned prefix left unsorted", len(rs.fresh))
				}
				if n := len(rs.short); n > 32 && (n-1)*(n-1) > len(rs.long) {
					t.Fatalf("short run of %d keys next to a long one of %d", n, len(rs.long))
				}
			}
		}
		changes := l.Drain()
		drained := make([]string, len(changes))
		for i, c := range changes {
			drained[i] = string(c.Key)
		}
		if !slices.Equal(drained, firsts) {
			t.Fatal("drained changes are not in the order of first writes")
		}
		if len(changes) != l.Pending() {
			t.Fatalf("drained %d changes of %d keys written", len(changes), l.Pending())
		}
		endInterval(t, r, l, interval, &live, &committed)
		if got, want := scanAll(t, l, nil, nil), live.scan(nil, nil); !slices.Equal(got, want) {
			t.Fatalf("after interval %d: %d keys, want %d", interval, len(got), len(want))
		}
	}
}

// endInterval ends l's commit interval, as a run's transaction ends: one
// time in three it aborts, and live goes back to committed; otherwise it
// commits, and committed becomes live.
func endInterval(t *testing.T, r *rand.Rand, l *Logged, interval int, live, committed *oracle) {
	t.Helper()
	if r.IntN(3) == 0 {
		l.Aborted()
		*live = maps.Clone(*committed)
		return
	}
	if err := l.Committed(int64(interval)); err != nil {
		t.Fatal(err)
	}
	*committed = maps.Clone(*live)
}

// BenchmarkLoggedScanAfterWrite is a session window's pattern: a write and
// a narrow scan per record, with many writes in the interval, over a
// store that is not a Memory one (buffered writes) and over a memory
// store (written through). A Scan that sorted every written key would cost
// O(n log n) per op.
func BenchmarkLoggedScanAfterWrite(b *testing.B) {
	for _, through := range []bool{false, true} {
		for _, n := range []int{1_000, 10_000, 100_000} {
			b.Run(fmt.Sprintf("%s/%d", pathName(through), n), func(b *testing.B) {
				l := loggedOver(NewMemory(), 0, through)
				for i := range n {
					_ = l.Put(fmt.Appendf(nil, "k%08d", i*7919%n), []byte("v"))
				}
				i := 0
				for b.Loop() {
					k := fmt.Appendf(nil, "k%08d", n+i)
					i++
					_ = l.Put(k, []byte("v"))
					_ = l.Scan(k, append(k, 0), func(k, v []byte) error { return nil })
				}
			})
		}
	}
}

// TestMemoryInlineValues: a Memory store keeps a short key and its value in
// the entry itself (memInline), and updates a value of the same length in
// place. Keys and values on both sides of that size are put, updated to
// the same length and to other lengths, deleted and put again, written
// through a Logged store whose interval then aborts or commits (a commit
// over a buffered store applies the writes to the Memory store, updating
// in place), and read back after each step against a map.
func TestMemoryInlineValues(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	val := func(n int, tag byte) []byte { return bytes.Repeat([]byte{tag}, n) }
	for _, through := range []bool{true, false} {
		t.Run(pathName(through), func(t *testing.T) {
			mem := NewMemory()
			l := loggedOver(mem, 0, through)
			committed, live := oracle{}, oracle{}
			keys := []string{"", "k", string(val(memInline/2, 'a')), string(val(memInline, 'b')), string(val(memInline+1, 'c'))}
			for interval := range 300 {
				for range 1 + r.IntN(8) {
					k := keys[r.IntN(len(keys))]
					if r.IntN(4) == 0 {
						if err := l.Delete([]byte(k)); err != nil {
							t.Fatal(err)
						}
						delete(live, k)
						continue
					}
					// Lengths around what is left of the entry's room.
					n := max(0, memInline-len(k)+r.IntN(5)-2)
					v := val(n, byte('0'+interval%10))
					if err := l.Put([]byte(k), v); err != nil {
						t.Fatal(err)
					}
					live[k] = v
				}
				check := func(when string, want oracle) {
					t.Helper()
					for _, k := range keys {
						v, ok, err := l.Get([]byte(k))
						if err != nil {
							t.Fatal(err)
						}
						if w, wok := want[k]; ok != wok || string(v) != string(w) {
							t.Fatalf("interval %d, %s: Get(%.8q) = %q, %v; want %q, %v", interval, when, k, v, ok, w, wok)
						}
					}
				}
				check("written", live)
				l.Drain()
				endInterval(t, r, l, interval, &live, &committed)
				check("after the interval", live)
			}
			if mem.Len() != len(live) {
				t.Fatalf("%d keys in the store, want %d", mem.Len(), len(live))
			}
		})
	}
}
