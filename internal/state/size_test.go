package state

import (
	"fmt"
	"testing"
)

// A memory store's size is exact through puts, overwrites, deletes and
// resets; a disk store's is an estimate that follows the same writes
// within reason before and after a flush.
func TestStoreSize(t *testing.T) {
	m := NewMemory()
	_ = m.Put([]byte("a"), []byte("12345"))
	_ = m.Put([]byte("bb"), []byte("1"))
	_ = m.Put([]byte("a"), []byte("12")) // overwrite: 5 -> 2 value bytes
	if got := m.Size(); got != (Size{Keys: 2, Bytes: 1 + 2 + 2 + 1}) {
		t.Fatalf("after puts: %+v", got)
	}
	_ = m.Scan(nil, nil, func(k, v []byte) error { return nil }) // indexes: deletes leave dead entries
	_ = m.Delete([]byte("bb"))
	_ = m.Delete([]byte("missing"))
	if got := m.Size(); got != (Size{Keys: 1, Bytes: 3}) {
		t.Fatalf("after delete: %+v", got)
	}
	_ = m.Apply([]Change{{Key: []byte("bb"), Value: []byte("xyz")}, {Key: []byte("a")}}, Checkpoint{})
	if got := m.Size(); got != (Size{Keys: 1, Bytes: 5}) {
		t.Fatalf("after apply: %+v", got)
	}
	_ = m.Reset()
	if got := m.Size(); got != (Size{}) {
		t.Fatalf("after reset: %+v", got)
	}

	p, err := OpenPebble(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var changes []Change
	for i := range 1000 {
		changes = append(changes, Change{Key: fmt.Appendf(nil, "key-%04d", i), Value: make([]byte, 100)})
	}
	if err := p.Apply(changes, Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if got := p.Size(); got.Keys != 1000 || got.Bytes < 100_000 || !got.Estimated {
		t.Fatalf("disk store before a flush: %+v", got)
	}
	if err := p.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := p.Size(); got.Keys != 1000 || got.Bytes < 1000 || !got.Estimated {
		t.Fatalf("disk store after a flush: %+v", got)
	}
}
