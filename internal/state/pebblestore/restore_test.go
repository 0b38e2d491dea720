package pebblestore

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/internal/state"
	"github.com/sluicehq/sluice/internal/state/statetest"
)

// TestTaskLifecycle runs the protocol a task follows, on a disk store:
// writes through Logged, Drain, produce in a transaction, Committed with
// the offset after the last record; an aborted interval in between. Then
// the store is closed (the task moves away), another owner commits more
// to the changelog, and the store is reopened and restored from its
// checkpoint: it must read only the tail, and end equal to a full restore.
func TestTaskLifecycle(t *testing.T) {
	cl := statetest.NewChangelog(t)
	dir := t.TempDir()
	p := openStore(t, dir)
	l := state.NewLogged(p, statetest.Partition)
	for round := range 4 {
		for i := range 500 {
			k := fmt.Appendf(nil, "k%d", i%50)
			if i%7 == 0 {
				_ = l.Delete(k)
			} else {
				_ = l.Put(k, fmt.Appendf(nil, "r%d-%d", round, i))
			}
		}
		changes := l.Drain()
		if len(changes) != 50 {
			t.Fatalf("drained %d changes for 50 keys", len(changes))
		}
		commit := round != 2
		next := cl.Write(t, changes, commit)
		if commit {
			if err := l.Committed(next); err != nil {
				t.Fatal(err)
			}
		} else {
			l.Aborted()
		}
	}
	before := statetest.Contents(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Another owner of the task writes 30 more records.
	var tail []state.Change
	for i := range 30 {
		tail = append(tail, statetest.Put(fmt.Sprintf("k%d", i), "tail"))
	}
	tail = append(tail[:29], statetest.Del("k0"))
	cl.Write(t, tail, true)
	for _, c := range tail {
		if c.Value == nil {
			delete(before, string(c.Key))
		} else {
			before[string(c.Key)] = string(c.Value)
		}
	}

	p = openStore(t, dir)
	defer p.Close()
	if p.Wiped() != "" {
		t.Fatalf("wiped: %s", p.Wiped())
	}
	from := p.Checkpoint().Offset(statetest.Partition)
	r := statetest.NewRestorer(t, cl.Brokers)
	res, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, from, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != from || res.Applied != int64(len(tail)) {
		t.Errorf("restore from checkpoint %d: %+v, want %d records applied", from, res, len(tail))
	}
	if got := statetest.Contents(t, p); !maps.Equal(got, before) {
		t.Errorf("after tail restore: %v", statetest.Diff(got, before))
	}
	full := state.NewMemory()
	if _, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, 0, full, nil); err != nil {
		t.Fatal(err)
	}
	if got := statetest.Contents(t, full); !maps.Equal(got, before) {
		t.Errorf("full restore: %v", statetest.Diff(got, before))
	}
}

// TestRestoreAfterWipe: a store wiped on open for a corrupt checkpoint
// has no checkpoint left, so its restore reads the changelog from the
// start and ends with the full state.
func TestRestoreAfterWipe(t *testing.T) {
	cl := statetest.NewChangelog(t)
	cl.Write(t, []state.Change{statetest.Put("a", "1"), statetest.Put("b", "2")}, true)
	r := statetest.NewRestorer(t, cl.Brokers)

	dir := t.TempDir()
	p := openStore(t, dir)
	if _, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, 0, p, nil); err != nil {
		t.Fatal(err)
	}
	_ = p.db.Set(checkpointKey, []byte("garbage"), pebble.NoSync)
	_ = p.Close()
	p = openStore(t, dir)
	defer p.Close()
	if p.Wiped() == "" {
		t.Fatal("corrupt checkpoint not wiped")
	}
	res, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, p.Checkpoint().Offset(statetest.Partition), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.Applied != 2 || !maps.Equal(statetest.Contents(t, p), map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("full restore after wipe: %+v, contents %v", res, statetest.Contents(t, p))
	}
}
