package window

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// countingStore counts the scans of whole families of keys (the close and
// expiry indexes, all windows, the dedupe ids), which Advance must make
// only when something can be due, or, for all windows and dedupe ids, only
// to build its in-memory index of them.
type countingStore struct {
	*MemStore
	scans map[byte]int
}

func newCountingStore() *countingStore {
	return &countingStore{MemStore: NewMemStore(), scans: map[byte]int{}}
}

func (s *countingStore) Scan(lo, hi []byte, fn func(k, v []byte) error) error {
	if len(lo) > 0 && (len(lo) == 1 || lo[0] != famState) {
		s.scans[lo[0]]++
	}
	return s.MemStore.Scan(lo, hi, fn)
}

// count returns the scans of the families fams.
func (s *countingStore) count(fams ...byte) int {
	n := 0
	for _, f := range fams {
		n += s.scans[f]
	}
	return n
}

// lastOpenEnd returns the latest end of a stored window (whose value
// starts with it) that has End <= bound, and false when there is none.
func lastOpenEnd(t *testing.T, s Store, bound int64) (int64, bool) {
	t.Helper()
	var last int64
	found := false
	err := s.Scan([]byte{famState}, []byte{famState + 1}, func(_, v []byte) error {
		end, err := ParseTime(v)
		if err == nil && end <= bound && (!found || end > last) {
			last, found = end, true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return last, found
}

// indexFirst returns the time of the first key of index family fam, and
// false when it is empty.
func indexFirst(t *testing.T, s Store, fam byte) (int64, bool) {
	t.Helper()
	var at int64
	found := false
	err := s.Scan([]byte{fam}, []byte{fam + 1}, func(k, _ []byte) error {
		var err error
		at, err = ParseTime(k[1:])
		found = true
		if err == nil {
			err = errStop
		}
		return err
	})
	if err != nil && err != errStop {
		t.Fatal(err)
	}
	return at, found
}

// TestAdvanceClosesWhenDue: Advance skips closing while the watermark is
// before the close index's low mark, so it must still close every window
// in the very Advance that makes it due, and forget closed sessions on
// time, across a restart, including from a store written before the low
// marks were kept. After every Advance the store may hold no window due to
// close and no closed session due to be forgotten; tumbling and hopping
// windows must scan the store only to build their close index, once per
// operator, and sessions must not scan theirs on every Advance.
func TestAdvanceClosesWhenDue(t *testing.T) {
	for _, c := range oracleCases(t) {
		for _, oldStore := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/old-store=%v", c.name, oldStore), func(t *testing.T) {
				evs := genEvents(rand.New(rand.NewPCG(7, 99)), 1000)
				store := newCountingStore()
				cfg := Config{Window: c.spec, Grace: oracleGrace, Emit: EmitFinal, Aggregates: []Aggregate{{Name: "n", Func: Count}}}
				op, err := NewOperator(cfg, store)
				if err != nil {
					t.Fatal(err)
				}
				tr, _ := NewTracker(oracleIdle)
				// crossings counts the Advances that pass a window end.
				advances, crossings, closed := 0, 0, 0
				lastEnd := func(wm int64) int64 {
					return floorDiv(wm-oracleGrace-c.spec.Size(), max(c.spec.Advance(), 1))
				}
				for i, e := range evs {
					if i == len(evs)/2 {
						if oldStore {
							_ = store.Delete(metaLow)
						}
						if op, err = NewOperator(cfg, store); err != nil {
							t.Fatal(err)
						}
					}
					if !e.tick {
						tr.Observe(e.part, e.t, e.now)
					}
					if wm, ok := tr.Watermark(e.now); ok {
						before, had := op.Watermark()
						rs, err := op.Advance(wm)
						if err != nil {
							t.Fatal(err)
						}
						if !had || wm > before {
							advances++
						}
						if !had || lastEnd(wm) > lastEnd(before) {
							crossings++
						}
						closed += len(rs)
						if end, ok := lastOpenEnd(t, store.MemStore, wm-oracleGrace); ok {
							t.Fatalf("event %d: window ending at %d still open at watermark %d", i, end, wm)
						}
						if x, ok := indexFirst(t, store.MemStore, famClosedExpiry); ok && x <= wm {
							t.Fatalf("event %d: closed session expiring at %d kept at watermark %d", i, x, wm)
						}
					}
					if !e.tick {
						_, _ = op.Process([]byte(e.key), e.t, e.value)
					}
				}
				if closed == 0 {
					t.Fatal("no window closed before the end")
				}
				switch {
				case c.spec.Kind() == KindSession:
					if n := store.count(famClose, famClosedExpiry); n >= advances {
						t.Errorf("%d index scans for %d advances", n, advances)
					}
				case store.count(famState) != 2:
					// Tumbling and hopping windows keep their close index in
					// memory, built once by each of the two operators.
					t.Errorf("%d scans of the windows for %d advances past a window end, want 2", store.count(famState), crossings)
				}
			})
		}
	}
}

// TestTumblingClosesOnBoundary: with a 10ms tumbling window, watermarks
// inside a window scan nothing and the one at its end closes it, also
// after a restart from the store.
func TestTumblingClosesOnBoundary(t *testing.T) {
	tum, _ := Tumbling(10)
	store := newCountingStore()
	cfg := Config{Window: tum, Emit: EmitFinal, Aggregates: []Aggregate{{Name: "n", Func: Count}}}
	op, err := NewOperator(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	for ts := range int64(30) {
		if rs, err := op.Advance(ts); err != nil || len(rs) != 0 && ts%10 != 0 {
			t.Fatalf("advance to %d: %v, %v", ts, rs, err)
		} else if ts > 0 && ts%10 == 0 && (len(rs) != 1 || rs[0].Window != (Window{ts - 10, ts}) || rs[0].Values["n"] != int64(10)) {
			t.Fatalf("advance to %d closed %+v, want [%d, %d) with 10 records", ts, rs, ts-10, ts)
		}
		if _, err := op.Process([]byte("k"), ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The first Advance builds the close index, kept in memory since.
	if store.count(famState) != 1 {
		t.Errorf("%d scans of the windows, want 1", store.count(famState))
	}
	if op, err = NewOperator(cfg, store); err != nil {
		t.Fatal(err)
	}
	if rs, err := op.Advance(30); err != nil || len(rs) != 1 || rs[0].Window != (Window{20, 30}) || store.count(famState) != 2 {
		t.Fatalf("after the restart, advance to 30: %v, %v, %d scans", rs, err, store.count(famState))
	}
	if rs, err := op.Advance(39); err != nil || len(rs) != 0 || store.count(famState) != 2 {
		t.Fatalf("after the restart, advance to 39: %v, %v, %d scans", rs, err, store.count(famState))
	}
}

// TestDedupeExpiresInBuckets: Advance drops expired ids only when the
// watermark enters a new bucket (an eighth of the horizon), and Process
// treats an id that has expired but is still stored as gone, as if it had
// been dropped on time.
func TestDedupeExpiresInBuckets(t *testing.T) {
	const horizon = 160 // buckets of 20ms
	store := newCountingStore()
	d, err := NewDedupe(horizon, store)
	if err != nil {
		t.Fatal(err)
	}
	pass := func(id string, ts int64, want bool) {
		t.Helper()
		if got, err := d.Process([]byte(id), ts); err != nil || got != want {
			t.Fatalf("%s at %d: pass=%v, %v; want %v", id, ts, got, err, want)
		}
	}
	advance := func(wm int64) {
		t.Helper()
		if err := d.Advance(wm); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(id string) bool {
		_, ok, _ := store.Get(dedupeKey([]byte(id)))
		return ok
	}
	advance(0)
	pass("a", 5, true) // expires at 165
	pass("c", 6, true) // expires at 166
	advance(161)       // bucket 8: scans, nothing due yet
	pass("a", 100, false)
	advance(170) // still bucket 8: a and c expired, not dropped
	if !stored("a") || !stored("c") {
		t.Fatal("an expired id was dropped within its bucket")
	}
	pass("a", 100, true) // a expired: a new occurrence passes and is kept
	pass("a", 150, false)
	advance(181) // bucket 9: c is dropped, a (expires at 260) stays
	if stored("c") || !stored("a") {
		t.Fatalf("after the bucket scan: c stored %v, a stored %v", stored("c"), stored("a"))
	}
	if store.Len() != 2 {
		t.Errorf("%d keys stored, want a's state and the watermark", store.Len())
	}
	scans := store.count(famDedupe)
	advance(259) // a expires at 260, in bucket 13
	if !stored("a") {
		t.Fatal("a dropped before it expired")
	}
	advance(260)
	if stored("a") {
		t.Fatal("a not dropped when the watermark entered the bucket of its expiry")
	}
	if n := store.count(famDedupe); n != scans {
		t.Errorf("%d scans of the ids after the first look, want none: the ids to look at are in memory", n-scans)
	}
	advance(math.MaxInt64)
	if store.Len() != 1 {
		t.Errorf("%d keys left at the end of time, want the watermark", store.Len())
	}
}

// TestDedupeRebuildsFromStore: a model opened over a store that already
// holds ids (a restart, a restore) finds them there and drops each when it
// expires, and drops the expiry index ('e' keys) earlier versions kept.
func TestDedupeRebuildsFromStore(t *testing.T) {
	const horizon = 100 // buckets of 12ms
	store := NewMemStore()
	first, err := NewDedupe(horizon, store)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		id string
		t  int64
	}{{"a", 10}, {"b", 50}, {"a", 120}, {"c", 30}} {
		if _, err := first.Process([]byte(r.id), r.t); err != nil {
			t.Fatal(err)
		}
	}
	oldIndex := append(AppendTime([]byte{famDedupeExpiry}, 130), 'c')
	if err := store.Put(oldIndex, nil); err != nil {
		t.Fatal(err)
	}

	d, err := NewDedupe(horizon, store)
	if err != nil {
		t.Fatal(err)
	}
	stored := func(id string) bool {
		_, ok, _ := store.Get(dedupeKey([]byte(id)))
		return ok
	}
	if err := d.Advance(135); err != nil { // b (150) and a (220) stay, c (130) goes
		t.Fatal(err)
	}
	if !stored("a") || !stored("b") || stored("c") {
		t.Fatalf("at 135: a %v, b %v, c %v stored; want a and b", stored("a"), stored("b"), stored("c"))
	}
	if _, ok, _ := store.Get(oldIndex); ok {
		t.Error("the old expiry index is still stored")
	}
	if pass, _ := d.Process([]byte("a"), 125); pass {
		t.Error("a at 125 passed; its occurrence at 120 is stored")
	}
	if err := d.Advance(156); err != nil { // bucket 13 (156-167): b expired
		t.Fatal(err)
	}
	if !stored("a") || stored("b") {
		t.Fatalf("at 156: a %v, b %v stored; want a only", stored("a"), stored("b"))
	}
	if err := d.Advance(math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if store.Len() != 1 {
		t.Errorf("%d keys left at the end of time, want the watermark", store.Len())
	}
}

// TestWindowsDropOldCloseIndex: a store written by an earlier version
// holds a close index ('c' keys) for tumbling windows too. An operator
// reopened over it closes the same windows, in order, from its windows
// alone, and drops the old index when it first builds its own.
func TestWindowsDropOldCloseIndex(t *testing.T) {
	tum, _ := Tumbling(10)
	store := NewMemStore()
	cfg := Config{Window: tum, Emit: EmitFinal, Aggregates: []Aggregate{{Name: "n", Func: Count}}}
	op, err := NewOperator(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"b", "a", "b", "c", "a"} {
		if _, err := op.Process([]byte(k), int64(i*7), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := indexFirst(t, store, famClose); ok {
		t.Fatal("tumbling windows wrote a close index to the store")
	}
	// The index an earlier version kept: a key per window.
	var old int
	if err := store.Scan([]byte{famState}, []byte{famState + 1}, func(k, v []byte) error {
		key, start, err := ParseStateKey(k)
		if err != nil {
			return err
		}
		end, _ := ParseTime(v)
		old++
		return store.Put(CloseKey(Window{start, end}, key), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if op, err = NewOperator(cfg, store); err != nil {
		t.Fatal(err)
	}
	closed := func(rs []Result) string {
		var got []string
		for _, r := range rs {
			got = append(got, fmt.Sprintf("%s[%d,%d)=%v", r.Key, r.Window.Start, r.Window.End, r.Values["n"]))
		}
		return fmt.Sprint(got)
	}
	rs, err := op.Advance(20)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := closed(rs), "[a[0,10)=1 b[0,10)=1 b[10,20)=1]"; got != want || old != 5 {
		t.Fatalf("closed %s from %d windows, want %s from 5", got, old, want)
	}
	if _, ok := indexFirst(t, store, famClose); ok {
		t.Error("the old close index is still in the store")
	}
	if rs, err = op.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := closed(rs), "[a[20,30)=1 c[20,30)=1]"; got != want {
		t.Fatalf("the flush closed %s, want %s", got, want)
	}
	if store.Len() != 2 { // the watermark and the low mark
		t.Errorf("%d keys left after the flush, want 2", store.Len())
	}
}
