package state

import "testing"

// A memory store's size is exact through puts, overwrites, deletes and
// resets. (A disk store's estimate: pebblestore's TestStoreSize.)
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
}
