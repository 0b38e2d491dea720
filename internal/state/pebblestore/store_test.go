package pebblestore

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/internal/state"
	"github.com/sluicehq/sluice/internal/state/statetest"
)

// openStore opens the store in dir with a small memtable and cache, so
// that many stores in one test stay small.
func openStore(t *testing.T, dir string, opts ...Opt) *Store {
	t.Helper()
	p, err := Open(dir, append([]Opt{MemTableSize(1 << 20), CacheSize(1 << 20)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConformance holds the disk store to the suite every store runs: the
// same random sequence as the memory store, compared with the same
// reference, plain and under Logged; scans; a restore from a changelog.
func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Committer { return openStore(t, t.TempDir()) })
}

// TestCheckpointSurvivesReopen: a clean close keeps data and checkpoint,
// so a restart restores only the tail.
func TestCheckpointSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	p := openStore(t, dir)
	cp := state.Checkpoint{Offsets: map[int32]int64{0: 7, 5: 1 << 40}, Written: time.Now()}
	if err := p.Apply([]state.Change{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}, {Key: []byte("a")}}, cp); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	p = openStore(t, dir)
	defer p.Close()
	if p.Wiped() != "" {
		t.Fatalf("wiped: %s", p.Wiped())
	}
	if got := p.Checkpoint(); !maps.Equal(got.Offsets, cp.Offsets) || got.Written.UnixNano() != cp.Written.UnixNano() {
		t.Errorf("checkpoint %+v, want %+v", got, cp)
	}
	if got := statetest.ScanAll(t, p, nil, nil); !slices.Equal(got, [][2]string{{"b", "2"}}) {
		t.Errorf("contents %v", got)
	}
}

// TestWipesInvalidStore: a store whose checkpoint is corrupt, missing
// (with data present) or too old cannot be trusted, so it is opened empty
// and without a checkpoint, for a restore from the changelog's start.
func TestWipesInvalidStore(t *testing.T) {
	later := func() time.Time { return time.Now().Add(13 * time.Hour) }
	cases := []struct {
		name   string
		damage func(p *Store)
		opts   []Opt
	}{
		{"corrupt checkpoint", func(p *Store) {
			v := encodeCheckpoint(p.Checkpoint())
			v[len(v)-6] ^= 0xff
			_ = p.db.Set(checkpointKey, v, pebble.NoSync)
		}, nil},
		{"truncated checkpoint", func(p *Store) { _ = p.db.Set(checkpointKey, []byte{checkpointVersion, 1}, pebble.NoSync) }, nil},
		{"missing checkpoint", func(p *Store) { _ = p.db.Delete(checkpointKey, pebble.NoSync) }, nil},
		{"stale checkpoint", func(*Store) {}, []Opt{clock(later)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := openStore(t, dir)
			if err := p.Apply([]state.Change{{Key: []byte("a"), Value: []byte("1")}}, state.Checkpoint{Offsets: map[int32]int64{0: 10}, Written: time.Now()}); err != nil {
				t.Fatal(err)
			}
			tc.damage(p)
			_ = p.Close()
			p = openStore(t, dir, tc.opts...)
			defer p.Close()
			if p.Wiped() == "" {
				t.Error("not wiped")
			}
			if off := p.Checkpoint().Offset(0); off != 0 {
				t.Errorf("checkpoint offset %d after wipe", off)
			}
			if got := statetest.ScanAll(t, p, nil, nil); len(got) != 0 {
				t.Errorf("contents after wipe %v", got)
			}
		})
	}
}

// TestOptionsValidated: bad options fail Open with state.OptionErrors
// naming each option.
func TestOptionsValidated(t *testing.T) {
	_, err := Open(t.TempDir(), MemTableSize(10), CacheSize(-1), MaxCheckpointAge(0), Logger(nil))
	var oe *state.OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("Open with bad options: %v", err)
	}
	for _, name := range []string{"MemTableSize", "CacheSize", "MaxCheckpointAge", "Logger"} {
		if !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestCheckpointEncoding(t *testing.T) {
	cp := state.Checkpoint{Offsets: map[int32]int64{-1: 0, 0: 1, 2_000_000: 1 << 62}, Written: time.Unix(0, 1_800_000_000_123_456_789)}
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
