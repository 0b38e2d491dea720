package state

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// oracle is the reference the stores are compared with: a map, sorted on
// every scan.
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

func openPebble(t *testing.T, dir string, opts ...PebbleOpt) *Pebble {
	t.Helper()
	p, err := OpenPebble(dir, append([]PebbleOpt{MemTableSize(1 << 20), CacheSize(1 << 20)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// randKey draws from a small key space, so keys are overwritten, deleted
// and put again; "" and keys that are prefixes of others are included.
func randKey(r *rand.Rand) []byte {
	n := r.IntN(300)
	if n == 0 {
		return []byte{}
	}
	return fmt.Appendf(nil, "k%d", n)
}

func randValue(r *rand.Rand) []byte {
	if r.IntN(20) == 0 {
		return []byte{} // empty, which is not a delete
	}
	return fmt.Appendf(nil, "v%d", r.Int64())
}

// TestStoresMatchOracle runs one random sequence of puts, deletes, gets and
// range scans on every kind of store, committing and aborting the Logged
// ones now and then, and requires each to answer as the oracle does. The
// Memory store's lazy index is the part most likely to go wrong (a key
// deleted and put again between scans, dead entries, compaction of the
// added list), so the sequence scans often but irregularly.
func TestStoresMatchOracle(t *testing.T) {
	type subject struct {
		name   string
		store  Store
		logged *Logged
	}
	loggedMem := NewLogged(NewMemory(), 0)
	loggedPebble := NewLogged(openPebble(t, t.TempDir()), 0)
	subjects := []subject{
		{"memory", NewMemory(), nil},
		{"pebble", openPebble(t, t.TempDir()), nil},
		{"logged-memory", loggedMem, loggedMem},
		{"logged-pebble", loggedPebble, loggedPebble},
	}
	for _, s := range subjects {
		t.Cleanup(func() { _ = s.store.Close() })
	}
	r := rand.New(rand.NewPCG(1, 2))
	live := oracle{}      // what every store must answer now
	committed := oracle{} // the Logged stores' state after a commit
	for i := range 6000 {
		switch op := r.IntN(100); {
		case op < 45:
			k, v := randKey(r), randValue(r)
			live[string(k)] = bytes.Clone(v)
			for _, s := range subjects {
				if err := s.store.Put(k, v); err != nil {
					t.Fatalf("%s: put: %v", s.name, err)
				}
			}
			if len(v) > 0 { // Put must have copied: scribbling on v changes nothing

				v[0] = 'X'
			}
		case op < 70:
			k := randKey(r)
			delete(live, string(k))
			for _, s := range subjects {
				if err := s.store.Delete(k); err != nil {
					t.Fatalf("%s: delete: %v", s.name, err)
				}
			}
		case op < 90:
			k := randKey(r)
			want, wantOK := live[string(k)]
			for _, s := range subjects {
				got, ok, err := s.store.Get(k)
				if err != nil || ok != wantOK || !bytes.Equal(got, want) || (ok && got == nil) {
					t.Fatalf("op %d %s: get %q = %q, %v, %v; want %q, %v", i, s.name, k, got, ok, err, want, wantOK)
				}
			}
		case op < 97:
			lo, hi := randKey(r), randKey(r)
			switch r.IntN(4) {
			case 0:
				lo = nil
			case 1:
				hi = nil
			}
			want := live.scan(lo, hi)
			for _, s := range subjects {
				if got := scanAll(t, s.store, lo, hi); !slices.Equal(got, want) {
					t.Fatalf("op %d %s: scan [%q, %q) = %v\nwant %v", i, s.name, lo, hi, got, want)
				}
			}
		default:
			// End a commit interval of the Logged stores: commit two
			// times out of three, else abort and roll the oracle back.
			commit := r.IntN(3) > 0
			for _, s := range subjects {
				if s.logged == nil {
					continue
				}
				s.logged.Drain()
				if commit {
					if err := s.logged.Committed(int64(i)); err != nil {
						t.Fatal(err)
					}
				} else {
					s.logged.Aborted()
				}
			}
			if commit {
				committed = maps.Clone(live)
				continue
			}
			// The plain stores cannot roll back: bring them to the
			// committed state by hand.
			for _, s := range subjects {
				if s.logged != nil {
					continue
				}
				for k := range live {
					if _, ok := committed[k]; !ok {
						_ = s.store.Delete([]byte(k))
					}
				}
				for k, v := range committed {
					_ = s.store.Put([]byte(k), v)
				}
			}
			live = maps.Clone(committed)
		}
	}
}

// TestScanStopsOnError: an error from fn ends the scan and comes back.
func TestScanStopsOnError(t *testing.T) {
	stop := errors.New("stop")
	for _, s := range []Store{NewMemory(), openPebble(t, t.TempDir()), NewLogged(NewMemory(), 0)} {
		for _, k := range []string{"a", "b", "c"} {
			_ = s.Put([]byte(k), []byte(k))
		}
		n := 0
		err := s.Scan(nil, nil, func(k, v []byte) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("%T: scan = %v after %d calls, want stop after 1", s, err, n)
		}
		_ = s.Close()
		if _, _, err := s.Get([]byte("a")); !errors.Is(err, ErrClosed) {
			t.Errorf("%T: get after close = %v, want ErrClosed", s, err)
		}
	}
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
	if len(m.added) > 2048 || m.dead > 2048 || len(m.m) > 4096 {
		t.Errorf("after churn: %d added, %d dead, %d in map", len(m.added), m.dead, len(m.m))
	}
}

// TestLoggedCoalesces: a commit interval's writes become one changelog
// record per key, the last write's, and reach the store only when the
// transaction committed.
func TestLoggedCoalesces(t *testing.T) {
	base := NewMemory()
	l := NewLogged(base, 3)
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
	if _, ok, _ := base.Get([]byte("k3")); ok {
		t.Error("a write reached the store before its commit")
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
	if !slices.IsSortedFunc(changes, func(a, b Change) int { return bytes.Compare(a.Key, b.Key) }) {
		t.Error("drained changes are not in key order")
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
	if err := l.Committed(43); !errors.Is(err, ErrNotDraining) {
		t.Errorf("Committed without Drain = %v, want ErrNotDraining", err)
	}
	// An empty commit does not move the checkpoint.
	l.Drain()
	if err := l.Committed(99); err != nil || base.Checkpoint().Offset(3) != 42 {
		t.Errorf("empty commit: %v, checkpoint %v", err, base.Checkpoint().Offsets)
	}
}

// TestPebbleCheckpointSurvivesReopen: a clean close keeps data and
// checkpoint, so a restart restores only the tail.
func TestPebbleCheckpointSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	p := openPebble(t, dir)
	cp := Checkpoint{Offsets: map[int32]int64{0: 7, 5: 1 << 40}, Written: time.Now()}
	if err := p.Apply([]Change{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}, {Key: []byte("a")}}, cp); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	p = openPebble(t, dir)
	defer p.Close()
	if p.Wiped() != "" {
		t.Fatalf("wiped: %s", p.Wiped())
	}
	if got := p.Checkpoint(); !maps.Equal(got.Offsets, cp.Offsets) || got.Written.UnixNano() != cp.Written.UnixNano() {
		t.Errorf("checkpoint %+v, want %+v", got, cp)
	}
	if got := scanAll(t, p, nil, nil); !slices.Equal(got, [][2]string{{"b", "2"}}) {
		t.Errorf("contents %v", got)
	}
}

// TestPebbleWipesInvalidStore: a store whose checkpoint is corrupt, missing
// (with data present) or too old cannot be trusted, so it is opened empty
// and without a checkpoint, for a restore from the changelog's start.
func TestPebbleWipesInvalidStore(t *testing.T) {
	later := func() time.Time { return time.Now().Add(13 * time.Hour) }
	cases := []struct {
		name   string
		damage func(p *Pebble)
		opts   []PebbleOpt
	}{
		{"corrupt checkpoint", func(p *Pebble) {
			v := encodeCheckpoint(p.Checkpoint())
			v[len(v)-6] ^= 0xff
			_ = p.db.Set(checkpointKey, v, pebble.NoSync)
		}, nil},
		{"truncated checkpoint", func(p *Pebble) { _ = p.db.Set(checkpointKey, []byte{checkpointVersion, 1}, pebble.NoSync) }, nil},
		{"missing checkpoint", func(p *Pebble) { _ = p.db.Delete(checkpointKey, pebble.NoSync) }, nil},
		{"stale checkpoint", func(*Pebble) {}, []PebbleOpt{pebbleClock(later)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := openPebble(t, dir)
			if err := p.Apply([]Change{{Key: []byte("a"), Value: []byte("1")}}, Checkpoint{Offsets: map[int32]int64{0: 10}, Written: time.Now()}); err != nil {
				t.Fatal(err)
			}
			tc.damage(p)
			_ = p.Close()
			p = openPebble(t, dir, tc.opts...)
			defer p.Close()
			if p.Wiped() == "" {
				t.Error("not wiped")
			}
			if off := p.Checkpoint().Offset(0); off != 0 {
				t.Errorf("checkpoint offset %d after wipe", off)
			}
			if got := scanAll(t, p, nil, nil); len(got) != 0 {
				t.Errorf("contents after wipe %v", got)
			}
		})
	}
}

// TestOptionsValidated: bad options fail construction with OptionErrors
// naming each option.
func TestOptionsValidated(t *testing.T) {
	_, err := OpenPebble(t.TempDir(), MemTableSize(10), CacheSize(-1), MaxCheckpointAge(0), PebbleLogger(nil))
	var oe *OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("OpenPebble with bad options: %v", err)
	}
	for _, name := range []string{"MemTableSize", "CacheSize", "MaxCheckpointAge", "PebbleLogger"} {
		if !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	_, err = NewRestorer(BatchRecords(0), IdleTimeout(-1))
	if !errors.As(err, &oe) {
		t.Fatalf("NewRestorer with bad options: %v", err)
	}
	for _, name := range []string{"Brokers", "BatchRecords", "IdleTimeout"} {
		if !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestCheckpointEncoding(t *testing.T) {
	cp := Checkpoint{Offsets: map[int32]int64{-1: 0, 0: 1, 2_000_000: 1 << 62}, Written: time.Unix(0, 1_800_000_000_123_456_789)}
	got, err := decodeCheckpoint(encodeCheckpoint(cp))
	if err != nil || !maps.Equal(got.Offsets, cp.Offsets) || !got.Written.Equal(cp.Written) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	enc := encodeCheckpoint(cp)
	for i := range len(enc) {
		if _, err := decodeCheckpoint(enc[:i]); err == nil {
			t.Errorf("prefix of %d bytes decoded", i)
		}
	}
}
