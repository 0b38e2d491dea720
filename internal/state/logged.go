package state

import (
	"bytes"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// Logged is the Store a task's operator uses: it captures writes for the
// changelog and applies them to the underlying Committer only once the
// transaction that carries them to the changelog has committed (see the
// package comment), or, over a Memory store, writes through and rolls
// back an abort. Writes of one commit interval are buffered with the
// last write per key winning, so a key updated a thousand times in an
// interval costs one changelog record and one store write.
//
// The commit protocol, on the task's goroutine:
//
//	changes := l.Drain()                // produce them in the transaction
//	... end the transaction ...
//	l.Committed(nextOffset)             // committed: apply, checkpoint
//	l.Aborted()                         // or aborted: discard
//
// Scan merges the buffered writes with the store's keys, so it needs the
// buffered keys in order. Operators may scan often (a session window on
// every record), so the order is kept incrementally rather than sorted on
// each Scan, and only for the keys a Scan covers: the keys are indexed by
// their first byte, as operators put each kind of state under a prefix
// byte of its own, so that a scan of an expiry index never sorts the
// states beside it. Per first byte, the keys are kept in a long sorted run
// and a short one of at most about its square root's length; the keys
// buffered since the last Scan of that prefix wait unsorted, and the next
// Scan sorts those (a few, when scans are frequent) and merges them into
// the short run, which is merged into the long one when it outgrows its
// bound. A Scan thus costs O(f log f + √n) for f new keys among n buffered
// ones of its prefixes, then a binary search per run. Drain does not sort.
//
// Over a Memory store, which keeps nothing across a crash, writes go
// straight to the store instead, and the interval's log keeps each
// written key's state from before its first write: Aborted puts those
// back, Drain reads the keys' values from the store, and Committed only
// records the checkpoint. Buffering and then applying cost a second map
// operation and copy per write, and applying after the commit kept the
// task idle: with a dedupe step it was about a third of the engine's work.
type Logged struct {
	base      Committer
	partition int32
	now       func() time.Time

	// mem is base when it is a *Memory, written through; log then holds
	// the interval's first write of each entry, in order.
	mem *Memory
	log []memWrite

	// buf holds the buffered writes in the order of their keys' first
	// write, and pending the position of each key's.
	buf     []pendingWrite
	pending map[string]int32
	// index orders the buffered keys for Scan, by first byte (see slot):
	// each is nil until a key with its first byte is written. spare is a
	// buffer to merge runs into.
	index [257]*runs
	spare []int32
	// scanBuf is Scan's buffer for the keys it merges in.
	scanBuf []int32

	draining bool
	drained  []Change
	broken   error // set when applying a committed batch failed

	writes, changes int64
}

// runs are the positions in buf of the buffered keys that share a first
// byte: in order, partitioned between a long and a short run, and fresh
// (unsorted, new since the last Scan of them) ones. They hold no pointers,
// so merging them is a plain copy.
type runs struct {
	long, short, fresh []int32
}

// memWrite is the first write of a commit interval to an entry of a
// Memory store written through: its key, the entry it wrote (deleted, if
// it was a delete), and what the key held before.
type memWrite struct {
	k    string
	e    *memEntry
	old  []byte
	live bool // old is the key's value; otherwise the key was absent
}

type pendingWrite struct {
	key string
	v   []byte
	del bool
}

var _ Store = (*Logged)(nil)

// NewLogged wraps base, whose changelog partition (the task's input
// partition) is partition.
func NewLogged(base Committer, partition int32) *Logged {
	l := &Logged{base: base, partition: partition, now: time.Now}
	if m, ok := base.(*Memory); ok {
		l.mem = m
	} else {
		l.pending = make(map[string]int32)
	}
	return l
}

// Get implements Store: the buffered writes first, then the store.
func (l *Logged) Get(key []byte) ([]byte, bool, error) {
	if l.mem != nil {
		return l.mem.Get(key)
	}
	if l.broken != nil {
		return nil, false, l.broken
	}
	if i, ok := l.pending[string(key)]; ok {
		w := &l.buf[i]
		if w.del {
			return nil, false, nil
		}
		return w.v, true, nil
	}
	return l.base.Get(key)
}

// Put implements Store.
func (l *Logged) Put(key, value []byte) error { return l.write(key, value, false) }

// Delete implements Store.
func (l *Logged) Delete(key []byte) error { return l.write(key, nil, true) }

func (l *Logged) write(key, value []byte, del bool) error {
	if l.broken != nil {
		return l.broken
	}
	if l.draining {
		return ErrDraining
	}
	l.writes++
	if l.mem != nil {
		return l.writeMem(key, value, del)
	}
	if i, ok := l.pending[string(key)]; ok {
		// A fresh slice, not an in-place copy: the value a Get returned
		// must not change under the caller.
		w := &l.buf[i]
		w.v, w.del = bytes.Clone(value), del
		if w.v == nil && !del {
			w.v = []byte{}
		}
		return nil
	}
	// A new key: its string and first value share one allocation.
	n := len(key)
	if del {
		value = nil
	}
	b := make([]byte, n+len(value))
	copy(b, key)
	copy(b[n:], value)
	w := pendingWrite{key: unsafe.String(unsafe.SliceData(b), n), del: del} // b[:n] is never written again
	if !del {
		w.v = b[n:len(b):len(b)]
	}
	i := int32(len(l.buf))
	l.buf = append(l.buf, w)
	l.pending[w.key] = i
	rs := l.index[slot(w.key)]
	if rs == nil {
		rs = &runs{}
		l.index[slot(w.key)] = rs
	}
	rs.fresh = append(rs.fresh, i)
	return nil
}

// writeMem writes through to the memory store, logging the entry's state
// before its first write of the interval.
func (l *Logged) writeMem(key, value []byte, del bool) error {
	m := l.mem
	if m.closed {
		return ErrClosed
	}
	e := m.m.Get(key)
	if e != nil && e.written {
		if del {
			m.remove(e)
		} else {
			m.set(e, key, value, false, false)
		}
		return nil
	}
	live := e != nil && !e.dead
	if del && !live {
		// Nothing to delete: the changelog has no value for the key
		// either, so no tombstone is needed.
		return nil
	}
	w := memWrite{live: live}
	if live {
		w.old = e.v // never written again: set makes a new slice
	}
	if del {
		m.remove(e)
	} else {
		e = m.set(e, key, value, false, false)
	}
	e.written = true
	w.k, w.e = e.k, e
	l.log = append(l.log, w)
	return nil
}

// sort sorts rs's fresh keys into its short run, and the short run into
// the long one when it has grown past about the square root of the long
// one's length.
func (l *Logged) sort(rs *runs) {
	if len(rs.fresh) > 0 {
		slices.SortFunc(rs.fresh, func(a, b int32) int {
			return strings.Compare(l.buf[a].key, l.buf[b].key)
		})
		rs.short, l.spare = l.merge(l.spare, rs.short, rs.fresh), rs.short
		rs.fresh = rs.fresh[:0]
	}
	if n := len(rs.short); n >= 16 && n*n >= len(rs.long) {
		rs.long, l.spare = l.merge(l.spare, rs.long, rs.short), rs.long
		rs.short = rs.short[:0]
	}
}

// merge merges the sorted runs a and b, which share no key, into dst[:0]
// (which is neither of them) and returns it. A run much shorter than the
// other is merged by binary search, so that the long one is copied in
// blocks rather than compared key by key.
func (l *Logged) merge(dst, a, b []int32) []int32 {
	dst = slices.Grow(dst[:0], len(a)+len(b))
	if len(a) < len(b) {
		a, b = b, a
	}
	if len(b) < len(a)/16 {
		for _, x := range b {
			i := l.search(a, l.buf[x].key)
			dst = append(append(dst, a[:i]...), x)
			a = a[i:]
		}
		return append(dst, a...)
	}
	return l.appendMerged(dst, a, b)
}

// search returns the position in the sorted run of the first key at or
// after k.
func (l *Logged) search(run []int32, k string) int {
	i, _ := slices.BinarySearchFunc(run, k, func(e int32, k string) int { return strings.Compare(l.buf[e].key, k) })
	return i
}

// within returns the part of the sorted run with keys in [lo, hi).
func (l *Logged) within(run []int32, lo, hi []byte) []int32 {
	j := len(run)
	if hi != nil {
		j = l.search(run, string(hi))
	}
	i := l.search(run, string(lo))
	if i >= j {
		return nil
	}
	return run[i:j]
}

// keyBytes returns the bytes of k without a copy, for Scan's fn, which
// the Store contract forbids to keep or modify them.
func keyBytes(k string) []byte {
	if k == "" {
		return []byte{} // the empty key is empty, not nil
	}
	return unsafe.Slice(unsafe.StringData(k), len(k))
}

// Scan implements Store: the store's keys merged with the buffered writes,
// which replace or (deletes) hide them.
func (l *Logged) Scan(lo, hi []byte, fn func(k, v []byte) error) error {
	if l.mem != nil {
		return l.mem.Scan(lo, hi, fn)
	}
	if l.broken != nil {
		return l.broken
	}
	// The buffered keys in [lo, hi), in order: the prefixes one after
	// another, each prefix's two runs merged. The buffer is the Logged
	// store's, unless fn scans too.
	in := l.scanBuf[:0]
	l.scanBuf = nil
	first, last := slot(string(lo)), len(l.index)-1
	if hi != nil {
		last = slot(string(hi))
	}
	for i := first; i <= last; i++ {
		rs := l.index[i]
		if rs == nil {
			continue
		}
		l.sort(rs)
		in = l.appendMerged(in, l.within(rs.long, lo, hi), l.within(rs.short, lo, hi))
	}
	defer func(buf []int32) { l.scanBuf = buf[:0] }(in)
	if len(in) == 0 {
		return l.base.Scan(lo, hi, fn)
	}
	// emit sends the buffered writes before k, or all of them.
	emit := func(k []byte, all bool) error {
		for len(in) > 0 {
			w := &l.buf[in[0]]
			if !all && w.key >= string(k) {
				return nil
			}
			in = in[1:]
			if !w.del {
				if err := fn(keyBytes(w.key), w.v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := l.base.Scan(lo, hi, func(k, v []byte) error {
		if err := emit(k, false); err != nil {
			return err
		}
		if len(in) > 0 && l.buf[in[0]].key == string(k) {
			w := &l.buf[in[0]]
			in = in[1:]
			if w.del {
				return nil
			}
			v = w.v
		}
		return fn(k, v)
	})
	if err != nil {
		return err
	}
	return emit(nil, true)
}

// appendMerged appends the sorted runs a and b, which share no key,
// merged, to dst.
func (l *Logged) appendMerged(dst, a, b []int32) []int32 {
	for len(a) > 0 && len(b) > 0 {
		if l.buf[a[0]].key < l.buf[b[0]].key {
			dst, a = append(dst, a[0]), a[1:]
		} else {
			dst, b = append(dst, b[0]), b[1:]
		}
	}
	return append(append(dst, a...), b...)
}

// Drain returns the changelog records of the current commit interval, one
// per key written (a nil Value is a delete), in the order the keys were
// first written in the interval, and starts the commit: until Committed
// or Aborted, writes fail with ErrDraining. Calling it again before then
// returns the same records. The records' slices stay valid until
// Committed or Aborted returns.
func (l *Logged) Drain() []Change {
	if l.draining {
		return l.drained
	}
	l.draining = true
	// First-write order makes the changelog of a replayed input identical,
	// as key order would, without sorting.
	if l.mem != nil {
		l.drained = make([]Change, len(l.log))
		for i, w := range l.log {
			c := &l.drained[i]
			c.Key = keyBytes(w.k)
			if e := w.e; !e.dead && !e.gone {
				c.Value = e.v // not written again until Committed or Aborted
			}
		}
		l.changes += int64(len(l.drained))
		return l.drained
	}
	l.drained = make([]Change, 0, len(l.buf))
	for i := range l.buf {
		w := &l.buf[i]
		c := Change{Key: keyBytes(w.key)} // the buffer's own bytes, never written again
		if !w.del {
			c.Value = w.v
		}
		l.drained = append(l.drained, c)
	}
	l.changes += int64(len(l.drained))
	return l.drained
}

// Committed ends a commit whose transaction committed: the drained changes
// are applied to the store with the checkpoint nextOffset (the offset after
// the last changelog record produced) for the task's partition, in one
// atomic batch. If nothing was drained the store and its checkpoint are
// unchanged. If applying fails the transaction is still committed, so the
// store is behind the changelog; every later call then returns the error,
// and the task must close the store and restore it.
func (l *Logged) Committed(nextOffset int64) error {
	if l.broken != nil {
		return l.broken
	}
	if !l.draining {
		return ErrNotDraining
	}
	var err error
	if len(l.drained) > 0 {
		cp := l.base.Checkpoint().With(l.partition, nextOffset, l.now())
		if l.mem != nil {
			l.mem.cp = cp // the writes are in the store already
		} else {
			err = l.base.Apply(l.drained, cp)
		}
	}
	l.reset()
	if err != nil {
		l.broken = err
	}
	return err
}

// Aborted discards the buffered writes, drained or not: the transaction
// that would have carried them aborted, so the store stays as of the last
// committed one. It may be called with or without a Drain before.
func (l *Logged) Aborted() {
	if l.mem != nil && !l.mem.closed {
		// Back to the state before each entry's first write, the last
		// first: a key deleted and put again in the interval can have
		// two entries in the log, and the earlier one holds its state.
		// (reset clears the entries' written marks.)
		for i := len(l.log) - 1; i >= 0; i-- {
			w := &l.log[i]
			if w.live {
				l.mem.set(l.mem.m.GetString(w.k), keyBytes(w.k), w.old, true, false)
			} else {
				l.mem.delete(keyBytes(w.k))
			}
		}
	}
	l.reset()
}

func (l *Logged) reset() {
	for _, w := range l.log {
		w.e.written = false
	}
	clear(l.log)
	l.log = l.log[:0]
	clear(l.pending)
	clear(l.buf) // let the interval's values go
	l.buf = l.buf[:0]
	for _, rs := range l.index {
		if rs != nil {
			rs.long, rs.short, rs.fresh = rs.long[:0], rs.short[:0], rs.fresh[:0]
		}
	}
	l.spare = l.spare[:0]
	l.draining, l.drained = false, nil
}

// Pending returns the number of distinct keys written in the current
// commit interval: the changelog records the next Drain returns.
func (l *Logged) Pending() int {
	if l.mem != nil {
		return len(l.log)
	}
	return len(l.pending)
}

// LoggedStats counts a Logged store's writes and the changelog records they
// became; Writes/Changes is what coalescing saved.
type LoggedStats struct {
	Writes  int64 // Put and Delete calls
	Changes int64 // changelog records drained
}

// Stats returns the writes and drained changelog records so far.
func (l *Logged) Stats() LoggedStats { return LoggedStats{Writes: l.writes, Changes: l.changes} }

// Checkpoint returns the underlying store's checkpoint: where a restore of
// this store starts.
func (l *Logged) Checkpoint() Checkpoint { return l.base.Checkpoint() }

// Close discards buffered writes and closes the underlying store.
func (l *Logged) Close() error {
	l.reset()
	return l.base.Close()
}
