package window

import (
	"bytes"
	"slices"
)

// Store is the sorted key/value state a model keeps. Keys are compared as
// bytes. The runtime implements it over a changelogged store; MemStore is an
// in-memory implementation.
type Store interface {
	// Get returns the value of k and whether it exists.
	Get(k []byte) ([]byte, bool, error)
	// Put sets k to v. The store does not retain k or v.
	Put(k, v []byte) error
	// Delete removes k; deleting a missing key is not an error.
	Delete(k []byte) error
	// Scan calls fn for each key in [lo, hi) in ascending order (hi nil: no
	// upper bound) and stops at fn's first error, which it returns. fn must
	// not retain k or v. The models in this package never modify the store
	// from within fn.
	Scan(lo, hi []byte, fn func(k, v []byte) error) error
}

// StoredStreamTime returns the stream time (ms) a window model or a dedupe
// last advanced to in store, and whether it has advanced at all.
func StoredStreamTime(store Store) (int64, bool, error) {
	var at int64
	found := false
	for _, k := range [][]byte{metaWM, metaDedupeWM} {
		b, ok, err := store.Get(k)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			continue
		}
		t, err := ParseTime(b)
		if err != nil {
			return 0, false, err
		}
		if !found || t > at {
			at, found = t, true
		}
	}
	return at, found, nil
}

// MemStore is a Store in a sorted slice. It is meant for tests and the
// in-memory driver: Put and Delete are O(n).
type MemStore struct {
	entries []memEntry
}

type memEntry struct{ k, v []byte }

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

func (m *MemStore) find(k []byte) (int, bool) {
	return slices.BinarySearchFunc(m.entries, k, func(e memEntry, k []byte) int { return bytes.Compare(e.k, k) })
}

// Get implements Store.
func (m *MemStore) Get(k []byte) ([]byte, bool, error) {
	i, ok := m.find(k)
	if !ok {
		return nil, false, nil
	}
	return slices.Clone(m.entries[i].v), true, nil
}

// Put implements Store.
func (m *MemStore) Put(k, v []byte) error {
	i, ok := m.find(k)
	if ok {
		m.entries[i].v = slices.Clone(v)
		return nil
	}
	m.entries = slices.Insert(m.entries, i, memEntry{slices.Clone(k), slices.Clone(v)})
	return nil
}

// Delete implements Store.
func (m *MemStore) Delete(k []byte) error {
	if i, ok := m.find(k); ok {
		m.entries = slices.Delete(m.entries, i, i+1)
	}
	return nil
}

// Scan implements Store. It iterates over a snapshot of the range, so fn
// may modify the store.
func (m *MemStore) Scan(lo, hi []byte, fn func(k, v []byte) error) error {
	i, _ := m.find(lo)
	j := len(m.entries)
	if hi != nil {
		j, _ = m.find(hi)
	}
	if i >= j {
		return nil
	}
	for _, e := range slices.Clone(m.entries[i:j]) {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of keys, for tests that check state is released.
func (m *MemStore) Len() int { return len(m.entries) }
