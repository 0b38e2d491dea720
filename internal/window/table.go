package window

import (
	"hash/maphash"
	"unsafe"
)

// table is a write-back operator's windows by state key: a hash table with
// open addressing and linear probing over one array of hashes and entries,
// whose entries keep short keys and their accumulator list inline.
//
// A record's lookup then reads the slot array and one entry, where a Go
// map of string to entry pointer reads the map group's control word, its
// slot, the key's bytes, the entry and the entry's accumulator list, each
// at an address of its own. With thousands of keys visited in turn, as
// a busy topic's are, every one of those reads misses the CPU caches, and
// they come one after another (docs/performance.md).
type table struct {
	slots []slot // a power of 2 long; nil until the first put
	n     int    // entries
	seed  maphash.Seed
}

// slot is an entry of the table and its key's hash; e nil: free.
type slot struct {
	h uint64
	e *cached
}

// inlineKey is the longest state key an entry keeps in itself; and
// inlineAccs the most accumulators, which covers most steps (a count and
// an average, say). Longer ones are allocations of their own.
const (
	inlineKey  = 40
	inlineAccs = 2
)

func newTable() *table { return &table{seed: maphash.MakeSeed()} }

// newCached returns an entry for the window under state key sk, ending at
// end, with its accumulators accs, which it copies.
func newCached(sk []byte, end int64, accs []Accumulator) *cached {
	e := &cached{end: end}
	if len(sk) <= inlineKey {
		n := copy(e.kb[:], sk)
		e.key = unsafe.String(&e.kb[0], n)
	} else {
		e.key = string(sk)
	}
	if len(accs) <= inlineAccs {
		e.accs = e.ab[:copy(e.ab[:], accs):inlineAccs]
	} else {
		e.accs = accs
	}
	return e
}

func (t *table) hash(k []byte) uint64 { return maphash.Bytes(t.seed, k) }

// get returns the entry of key k, or nil.
func (t *table) get(k []byte) *cached {
	if t.n == 0 {
		return nil
	}
	h := t.hash(k)
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.e == nil {
			return nil
		}
		if s.h == h && s.e.key == string(k) {
			return s.e
		}
	}
}

// put adds e, whose key the table must not have.
func (t *table) put(e *cached) {
	if 4*(t.n+1) > 3*len(t.slots) {
		t.grow()
	}
	t.insert(maphash.String(t.seed, e.key), e)
	t.n++
}

func (t *table) insert(h uint64, e *cached) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].e != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = slot{h, e}
}

func (t *table) grow() {
	old := t.slots
	t.slots = make([]slot, max(64, 2*len(old)))
	for _, s := range old {
		if s.e != nil {
			t.insert(s.h, s.e)
		}
	}
}

// remove removes the entry of key k, if any, and returns it. The entries
// after it in its run move back, so that the table needs no tombstones:
// an entry moves into the freed slot unless its own home lies after that
// slot (cyclically), where a lookup starting at home would not pass it.
func (t *table) remove(k []byte) *cached {
	if t.n == 0 {
		return nil
	}
	h := t.hash(k)
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for {
		s := &t.slots[i]
		if s.e == nil {
			return nil
		}
		if s.h == h && s.e.key == string(k) {
			break
		}
		i = (i + 1) & mask
	}
	e := t.slots[i].e
	for j := (i + 1) & mask; t.slots[j].e != nil; j = (j + 1) & mask {
		home := t.slots[j].h & mask
		// The entry at j may fill i when home is not in (i, j].
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = slot{}
	t.n--
	return e
}

// len returns the number of entries.
func (t *table) len() int { return t.n }

// reset empties the table, keeping its slots.
func (t *table) reset() {
	clear(t.slots)
	t.n = 0
}
