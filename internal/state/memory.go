package state

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/sluicehq/sluice/internal/keytable"
)

// Memory is an in-memory Store and Committer. Point operations are hash
// table operations (keytable: with many keys, each access of a lookup misses
// the CPU caches, and a Go map makes more of them); a short key and its
// value are kept in the entry itself. The ordered key index Scan needs is
// kept lazily, one per first byte of the keys (operators put each kind of
// state under a prefix byte of its own), so a Scan orders only the keys of
// the prefixes it covers. Keys added since a prefix's last Scan wait in a
// list, and the next Scan sorts only those and merges them in: a task that
// never scans never sorts, one that scans after each few writes pays O(new
// log new + n) rather than a sort of everything, and keys that come in order
// (an index by time) are appended without a merge. Deleted keys that are in
// the index stay in the table as dead entries until their index is next
// rebuilt, so a Delete does not have to find the key in the index.
//
// Nothing in a Memory store survives the process; its checkpoint is kept so
// a task reassigned to the same process can restore only the tail.
type Memory struct {
	m keytable.Table[memEntry]
	// index orders the keys by first byte: index[0] is the empty key's,
	// index[1+b] those starting with byte b. Each is nil until used.
	index  [257]*keyIndex
	dead   int   // dead entries in m
	bytes  int64 // key and value bytes of the live entries (Size)
	cp     Checkpoint
	closed bool
}

// keyIndex is the ordered index of the keys that share a first byte.
type keyIndex struct {
	sorted []indexed // indexed keys in order; may include dead ones
	added  []indexed // keys not yet indexed; may be gone
	dead   int       // dead entries in sorted
	// pruneAt is the length of added past which its gone keys are
	// dropped (see set).
	pruneAt int
}

// indexed is a key of the ordered index with its entry, so that merging
// the index and scanning it need no table lookup per key.
type indexed struct {
	k string
	e *memEntry
}

type memEntry struct {
	k       string // the entry's key in the table
	v       []byte
	dead    bool // deleted, but still in sorted
	indexed bool // in sorted
	gone    bool // deleted before it was indexed, and out of the table
	// written: a Logged store writing through has logged the entry's
	// state before its first write of the commit interval.
	written bool
	// kv holds a new key and its value when both fit, so that a lookup
	// finds them where it finds the entry: 96 bytes in all.
	kv [memInline]byte
}

// memInline is the room in an entry for its key and first value.
const memInline = 48

var _ Committer = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{} }

// Len returns the number of live keys.
func (s *Memory) Len() int { return s.m.Len() - s.dead }

// Get implements Store.
func (s *Memory) Get(key []byte) ([]byte, bool, error) {
	if s.closed {
		return nil, false, ErrClosed
	}
	e := s.m.Get(key)
	if e == nil || e.dead {
		return nil, false, nil
	}
	return e.v, true, nil
}

// Put implements Store.
func (s *Memory) Put(key, value []byte) error {
	if s.closed {
		return ErrClosed
	}
	s.put(key, value)
	return nil
}

// slot returns the position in index of the keys starting as key does.
func slot(key string) int {
	if key == "" {
		return 0
	}
	return 1 + int(key[0])
}

// indexOf returns the index of the keys starting as key does, made on
// first use.
func (s *Memory) indexOf(key string) *keyIndex {
	i := slot(key)
	if s.index[i] == nil {
		s.index[i] = &keyIndex{}
	}
	return s.index[i]
}

func (s *Memory) put(key, value []byte) { s.set(s.m.Get(key), key, value, false, true) }

// set puts value in e, key's entry (nil when key has none), and returns
// the entry. With owned, the bytes of a new key and its value are the
// store's from now on, kept rather than copied. With reuse, e's value
// buffer may be overwritten; without, the new value is always a slice of
// its own (a Logged store writing through keeps the old one to roll back
// to, and the new one to drain).
func (s *Memory) set(e *memEntry, key, value []byte, owned, reuse bool) *memEntry {
	if e != nil {
		if e.dead {
			e.dead = false
			s.dead--
			s.indexOf(e.k).dead--
			s.bytes += int64(len(key))
		}
		s.bytes += int64(len(value) - len(e.v))
		// Reusing the old value's buffer saves an allocation per update
		// (most writes of a state store are updates); the Store contract
		// makes a value from Get valid only until the next write.
		if reuse && e.v != nil && cap(e.v) >= len(value) && cap(e.v) <= 2*len(value)+16 {
			e.v = e.v[:len(value)]
		} else {
			e.v = make([]byte, len(value))
		}
		copy(e.v, value)
		return e
	}
	e = &memEntry{}
	n := len(key)
	switch {
	case owned:
		e.k, e.v = unsafe.String(unsafe.SliceData(key), n), value
	case n+len(value) <= memInline:
		// The key's bytes are never written again; the value's are
		// when an update of the same length reuses them.
		copy(e.kv[:], key)
		copy(e.kv[n:], value)
		e.k, e.v = unsafe.String(&e.kv[0], n), e.kv[n:n+len(value):n+len(value)]
	default:
		// The key's string and the value share one allocation.
		b := make([]byte, n+len(value))
		copy(b, key)
		copy(b[n:], value)
		e.k, e.v = unsafe.String(unsafe.SliceData(b), n), b[n:len(b):len(b)]
	}
	s.bytes += int64(len(key) + len(value))
	s.m.Put(e.k, e)
	ix := s.indexOf(e.k)
	ix.added = append(ix.added, indexed{e.k, e})
	// Keys put and deleted before any Scan would otherwise pile up in
	// added. Only those are dropped: sorting the rest is for a Scan, and
	// some prefixes are never scanned (a dedupe step's ids).
	if n := len(ix.added); n > 1024 && n > ix.pruneAt {
		ix.prune()
	}
	return e
}

// Delete implements Store.
func (s *Memory) Delete(key []byte) error {
	if s.closed {
		return ErrClosed
	}
	s.delete(key)
	return nil
}

func (s *Memory) delete(key []byte) { s.remove(s.m.Get(key)) }

// remove deletes the key of entry e, if e is live.
func (s *Memory) remove(e *memEntry) {
	if e == nil || e.dead {
		return
	}
	s.bytes -= int64(len(e.k) + len(e.v))
	if !e.indexed {
		e.gone = true // for update, which finds it in added
		s.m.DeleteString(e.k)
		return
	}
	e.dead, e.v = true, nil
	s.dead++
	ix := s.indexOf(e.k)
	ix.dead++
	if ix.dead > 1024 && ix.dead > len(ix.sorted)/2 {
		s.dead -= ix.update(&s.m)
	}
}

// prune drops the gone keys from added, and sets the length at which to
// do it again to twice what is left, so that the cost is constant per
// key added.
func (ix *keyIndex) prune() {
	live := ix.added[:0]
	for _, x := range ix.added {
		if !x.e.gone {
			live = append(live, x)
		}
	}
	clear(ix.added[len(live):])
	ix.added = live
	ix.pruneAt = 2 * len(live)
}

// update brings the index up to date: the added keys that are live and
// not yet indexed are sorted and put in. Keys after all the indexed ones
// are appended; otherwise the index is merged anew, and then, or once
// they are a quarter of it, its dead entries are dropped from it and
// from m. It returns the number of dead entries dropped.
func (ix *keyIndex) update(m *keytable.Table[memEntry]) int {
	// The added keys that are live and not indexed, in order, in place.
	fresh := ix.added[:0]
	for _, x := range ix.added {
		if !x.e.gone && !x.e.dead && !x.e.indexed {
			x.e.indexed = true
			fresh = append(fresh, x)
		}
	}
	slices.SortFunc(fresh, func(a, b indexed) int { return strings.Compare(a.k, b.k) })
	defer func() { clear(ix.added); ix.added, ix.pruneAt = ix.added[:0], 0 }()
	compact := ix.dead > 0 && ix.dead >= len(ix.sorted)/4
	if len(fresh) == 0 && !compact {
		return 0
	}
	if !compact && (len(ix.sorted) == 0 || ix.sorted[len(ix.sorted)-1].k < fresh[0].k) {
		ix.sorted = append(ix.sorted, fresh...)
		return 0
	}
	merged := make([]indexed, 0, len(ix.sorted)-ix.dead+len(fresh))
	dropped := 0
	i, j := 0, 0
	for i < len(ix.sorted) || j < len(fresh) {
		if j == len(fresh) || (i < len(ix.sorted) && ix.sorted[i].k < fresh[j].k) {
			x := ix.sorted[i]
			i++
			if x.e.dead {
				m.DeleteString(x.k)
				dropped++
				continue
			}
			merged = append(merged, x)
			continue
		}
		merged = append(merged, fresh[j])
		j++
	}
	ix.sorted, ix.dead = merged, 0
	return dropped
}

// Scan implements Store.
func (s *Memory) Scan(lo, hi []byte, fn func(k, v []byte) error) error {
	if s.closed {
		return ErrClosed
	}
	first, last := slot(string(lo)), len(s.index)-1
	if hi != nil {
		last = slot(string(hi))
	}
	h := string(hi)
	for i := first; i <= last; i++ {
		ix := s.index[i]
		if ix == nil {
			continue
		}
		if len(ix.added) > 0 {
			s.dead -= ix.update(&s.m)
		}
		sorted := ix.sorted
		if i == first {
			start, _ := slices.BinarySearchFunc(sorted, string(lo), func(x indexed, t string) int { return strings.Compare(x.k, t) })
			sorted = sorted[start:]
		}
		for _, x := range sorted {
			k, e := x.k, x.e
			if hi != nil && k >= h {
				return nil
			}
			if e.dead {
				continue
			}
			// fn gets the key's bytes without a copy; the Store contract
			// says they are valid only during the call, and fn may not
			// write.
			kb := []byte{} // the empty key is empty, not nil
			if k != "" {
				kb = unsafe.Slice(unsafe.StringData(k), len(k))
			}
			if err := fn(kb, e.v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Apply implements Committer. A Memory store has nothing to crash, so
// applying in place is atomic enough.
func (s *Memory) Apply(changes []Change, cp Checkpoint) error {
	if s.closed {
		return ErrClosed
	}
	for _, c := range changes {
		if c.Value == nil {
			s.delete(c.Key)
		} else {
			s.put(c.Key, c.Value)
		}
	}
	s.cp = cp
	return nil
}

// Checkpoint implements Committer.
func (s *Memory) Checkpoint() Checkpoint { return s.cp }

// Reset implements Committer.
func (s *Memory) Reset() error {
	if s.closed {
		return ErrClosed
	}
	*s = Memory{}
	return nil
}

// Close implements Store; it drops the contents.
func (s *Memory) Close() error {
	*s = Memory{closed: true}
	return nil
}
