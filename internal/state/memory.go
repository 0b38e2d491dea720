package state

import (
	"slices"
	"strings"
	"unsafe"
)

// Memory is an in-memory Store and Committer. Point operations are map
// operations. The ordered key index Scan needs is kept lazily: keys added
// since the last Scan wait in a list, and the next Scan sorts only those
// and merges them in, so a task that never scans never sorts, and one that
// scans after each few writes pays O(new log new + n) rather than a sort of
// everything. Deleted keys that are in the index stay in the map as dead
// entries until the index is next rebuilt, so a Delete does not have to
// find the key in the index.
//
// Nothing in a Memory store survives the process; its checkpoint is kept
// so a task reassigned to the same process can restore only the tail.
type Memory struct {
	m      map[string]*memEntry
	sorted []indexed // indexed keys in order; may include dead ones
	added  []string  // keys not yet indexed; may repeat or be gone
	dead   int       // dead entries in m
	bytes  int64     // key and value bytes of the live entries (Size)
	cp     Checkpoint
	closed bool
}

// indexed is a key of the ordered index with its entry, so that merging
// the index and scanning it need no map lookup per key.
type indexed struct {
	k string
	e *memEntry
}

type memEntry struct {
	v       []byte
	dead    bool // deleted, but still in sorted
	indexed bool // in sorted
}

var _ Committer = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{m: make(map[string]*memEntry)} }

// Len returns the number of live keys.
func (s *Memory) Len() int { return len(s.m) - s.dead }

// Get implements Store.
func (s *Memory) Get(key []byte) ([]byte, bool, error) {
	if s.closed {
		return nil, false, ErrClosed
	}
	e := s.m[string(key)]
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

func (s *Memory) put(key, value []byte) {
	if e := s.m[string(key)]; e != nil {
		if e.dead {
			e.dead = false
			s.dead--
			s.bytes += int64(len(key))
		}
		s.bytes += int64(len(value) - len(e.v))
		// Reusing the old value's buffer saves an allocation per update
		// (most writes of a state store are updates); the Store contract
		// makes a value from Get valid only until the next write.
		if e.v != nil && cap(e.v) >= len(value) && cap(e.v) <= 2*len(value)+16 {
			e.v = e.v[:len(value)]
		} else {
			e.v = make([]byte, len(value))
		}
		copy(e.v, value)
		return
	}
	v := make([]byte, len(value))
	copy(v, value)
	s.bytes += int64(len(key) + len(value))
	k := string(key)
	s.m[k] = &memEntry{v: v}
	s.added = append(s.added, k)
	// Keys put and deleted before any Scan would otherwise pile up in added.
	if len(s.added) > 1024 && len(s.added) > 2*len(s.m) {
		s.index()
	}
}

// Delete implements Store.
func (s *Memory) Delete(key []byte) error {
	if s.closed {
		return ErrClosed
	}
	s.delete(key)
	return nil
}

func (s *Memory) delete(key []byte) {
	e := s.m[string(key)]
	if e == nil || e.dead {
		return
	}
	s.bytes -= int64(len(key) + len(e.v))
	if !e.indexed {
		delete(s.m, string(key))
		return
	}
	e.dead, e.v = true, nil
	s.dead++
	if s.dead > 1024 && s.dead > len(s.m)/2 {
		s.index()
	}
}

// index brings sorted up to date: the added keys that are live and not yet
// indexed are sorted and merged in, and dead entries are dropped.
func (s *Memory) index() {
	slices.Sort(s.added)
	var fresh []indexed
	for _, k := range s.added {
		if e := s.m[k]; e != nil && !e.dead && !e.indexed {
			e.indexed = true
			fresh = append(fresh, indexed{k, e})
		}
	}
	if s.dead == 0 && len(fresh) == 0 {
		s.added = s.added[:0]
		return
	}
	merged := make([]indexed, 0, len(s.sorted)-s.dead+len(fresh))
	i, j := 0, 0
	for i < len(s.sorted) || j < len(fresh) {
		if j == len(fresh) || (i < len(s.sorted) && s.sorted[i].k < fresh[j].k) {
			x := s.sorted[i]
			i++
			if x.e.dead {
				delete(s.m, x.k)
				continue
			}
			merged = append(merged, x)
			continue
		}
		merged = append(merged, fresh[j])
		j++
	}
	s.sorted, s.added, s.dead = merged, s.added[:0], 0
}

// Scan implements Store.
func (s *Memory) Scan(lo, hi []byte, fn func(k, v []byte) error) error {
	if s.closed {
		return ErrClosed
	}
	if len(s.added) > 0 {
		s.index()
	}
	start, _ := slices.BinarySearchFunc(s.sorted, string(lo), func(x indexed, t string) int { return strings.Compare(x.k, t) })
	sorted := s.sorted
	h := string(hi)
	for _, x := range sorted[start:] {
		k, e := x.k, x.e
		if hi != nil && k >= h {
			break
		}
		if e.dead {
			continue
		}
		// fn gets the key's bytes without a copy; the Store contract says
		// they are valid only during the call, and fn may not write.
		kb := []byte{} // the empty key is empty, not nil
		if k != "" {
			kb = unsafe.Slice(unsafe.StringData(k), len(k))
		}
		if err := fn(kb, e.v); err != nil {
			return err
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
	*s = Memory{m: make(map[string]*memEntry)}
	return nil
}

// Close implements Store; it drops the contents.
func (s *Memory) Close() error {
	*s = Memory{closed: true}
	return nil
}
