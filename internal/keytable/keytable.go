// Package keytable provides a hash table of entries by string key, laid out
// for few cache misses per lookup: open addressing with linear probing over
// one array of hashes, keys and entry pointers.
//
// State stores and operator caches look up thousands of keys in turn, as a
// busy topic's keys come. With that many keys every memory access of a
// lookup misses the CPU caches, and a Go map's accesses come one after
// another: the group's control word, its slot, the key's bytes, the entry.
// Here a lookup reads its slot (hash, key and entry pointer together) and
// the key's bytes, and an entry that keeps its key inline (see the callers)
// makes those two one: the entry the caller reads next is already on its
// way.
package keytable

import (
	"hash/maphash"
	"unsafe"
)

// Table maps keys to entries. Its zero value is an empty table ready to
// use. A key put in the table must not change while it is there: the
// table keeps the string, not a copy. A Table is not safe for concurrent
// use.
type Table[E any] struct {
	slots []slot[E] // a power of 2 long; nil until the first Put
	n     int
	seed  maphash.Seed
}

// slot is an entry, its key and the key's hash; e nil: free.
type slot[E any] struct {
	h uint64
	k string
	e *E
}

// Len returns the number of entries.
func (t *Table[E]) Len() int { return t.n }

// Get returns the entry of key k, or nil. k is only read.
func (t *Table[E]) Get(k []byte) *E { return t.GetString(unsafe.String(unsafe.SliceData(k), len(k))) }

// GetString is Get for a string key.
func (t *Table[E]) GetString(k string) *E {
	if i := t.find(k); i >= 0 {
		return t.slots[i].e
	}
	return nil
}

// find returns the slot of key k, or -1.
func (t *Table[E]) find(k string) int {
	if t.n == 0 {
		return -1
	}
	h := maphash.String(t.seed, k)
	mask := len(t.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.e == nil {
			return -1
		}
		if s.h == h && s.k == k {
			return i
		}
	}
}

// Put sets the entry of key k to e, which must not be nil, and returns the
// entry it replaces, or nil.
func (t *Table[E]) Put(k string, e *E) *E {
	if 4*(t.n+1) > 3*len(t.slots) {
		t.grow()
	}
	h := maphash.String(t.seed, k)
	mask := len(t.slots) - 1
	i := int(h) & mask
	for ; t.slots[i].e != nil; i = (i + 1) & mask {
		if s := &t.slots[i]; s.h == h && s.k == k {
			old := s.e
			*s = slot[E]{h, k, e}
			return old
		}
	}
	t.slots[i] = slot[E]{h, k, e}
	t.n++
	return nil
}

func (t *Table[E]) grow() {
	if t.slots == nil {
		t.seed = maphash.MakeSeed()
	}
	old := t.slots
	t.slots = make([]slot[E], max(64, 2*len(old)))
	mask := len(t.slots) - 1
	for _, s := range old {
		if s.e == nil {
			continue
		}
		i := int(s.h) & mask
		for t.slots[i].e != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// Delete removes the entry of key k, if any, and returns it. k is only
// read.
func (t *Table[E]) Delete(k []byte) *E {
	return t.DeleteString(unsafe.String(unsafe.SliceData(k), len(k)))
}

// DeleteString is Delete for a string key.
//
// The entries after the removed one in its run move back, so that the
// table needs no tombstones: an entry moves into the freed slot unless its
// home slot lies after the freed one (cyclically), where a lookup starting
// at its home would not pass it.
func (t *Table[E]) DeleteString(k string) *E {
	i := t.find(k)
	if i < 0 {
		return nil
	}
	e := t.slots[i].e
	mask := len(t.slots) - 1
	for j := (i + 1) & mask; t.slots[j].e != nil; j = (j + 1) & mask {
		home := int(t.slots[j].h) & mask
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = slot[E]{}
	t.n--
	return e
}

// Reset empties the table, keeping its slots for the entries to come.
func (t *Table[E]) Reset() {
	clear(t.slots)
	t.n = 0
}
