package state

import (
	"bytes"
	"slices"
	"time"
)

// Logged is the Store a task's operator uses: it captures writes for the
// changelog and applies them to the underlying Committer only once the
// transaction that carries them to the changelog has committed (see the
// package comment). Writes of one commit interval are buffered with the
// last write per key winning, so a key updated a thousand times in an
// interval costs one changelog record and one store write.
//
// The commit protocol, on the task's goroutine:
//
//	changes := l.Drain()                // produce them in the transaction
//	... end the transaction ...
//	l.Committed(nextOffset)             // committed: apply, checkpoint
//	l.Aborted()                         // or aborted: discard
type Logged struct {
	base      Committer
	partition int32
	now       func() time.Time

	pending  map[string]*pendingWrite
	draining bool
	drained  []Change
	broken   error // set when applying a committed batch failed

	writes, changes int64
}

type pendingWrite struct {
	v   []byte
	del bool
}

var _ Store = (*Logged)(nil)

// NewLogged wraps base, whose changelog partition (the task's input
// partition) is partition.
func NewLogged(base Committer, partition int32) *Logged {
	return &Logged{base: base, partition: partition, now: time.Now, pending: make(map[string]*pendingWrite)}
}

// Get implements Store: the buffered writes first, then the store.
func (l *Logged) Get(key []byte) ([]byte, bool, error) {
	if l.broken != nil {
		return nil, false, l.broken
	}
	if w := l.pending[string(key)]; w != nil {
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
	if w := l.pending[string(key)]; w != nil {
		// A fresh slice, not an in-place copy: the value a Get returned
		// must not change under the caller.
		w.v, w.del = bytes.Clone(value), del
		if w.v == nil && !del {
			w.v = []byte{}
		}
		return nil
	}
	w := &pendingWrite{del: del}
	if !del {
		w.v = make([]byte, len(value))
		copy(w.v, value)
	}
	l.pending[string(key)] = w
	return nil
}

// Scan implements Store: the store's keys merged with the buffered writes,
// which replace or (deletes) hide them.
func (l *Logged) Scan(lo, hi []byte, fn func(k, v []byte) error) error {
	if l.broken != nil {
		return l.broken
	}
	if len(l.pending) == 0 {
		return l.base.Scan(lo, hi, fn)
	}
	keys := make([]string, 0, len(l.pending))
	for k := range l.pending {
		if k >= string(lo) && (hi == nil || k < string(hi)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	// emit sends the buffered writes before k, or all of them.
	emit := func(k []byte, all bool) error {
		for len(keys) > 0 && (all || keys[0] < string(k)) {
			w := l.pending[keys[0]]
			if !w.del {
				if err := fn([]byte(keys[0]), w.v); err != nil {
					return err
				}
			}
			keys = keys[1:]
		}
		return nil
	}
	err := l.base.Scan(lo, hi, func(k, v []byte) error {
		if err := emit(k, false); err != nil {
			return err
		}
		if len(keys) > 0 && keys[0] == string(k) {
			w := l.pending[keys[0]]
			keys = keys[1:]
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

// Drain returns the changelog records of the current commit interval, one
// per key written (a nil Value is a delete), in key order, and starts the
// commit: until Committed or Aborted, writes fail with ErrDraining. Calling
// it again before then returns the same records. The records' slices stay
// valid until Committed or Aborted returns.
func (l *Logged) Drain() []Change {
	if l.draining {
		return l.drained
	}
	l.draining = true
	l.drained = make([]Change, 0, len(l.pending))
	for k, w := range l.pending {
		c := Change{Key: []byte(k)}
		if !w.del {
			c.Value = w.v
		}
		l.drained = append(l.drained, c)
	}
	// Key order makes the changelog of a replayed input identical, and
	// costs little next to producing the records.
	slices.SortFunc(l.drained, func(a, b Change) int { return bytes.Compare(a.Key, b.Key) })
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
		err = l.base.Apply(l.drained, l.base.Checkpoint().with(l.partition, nextOffset, l.now()))
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
func (l *Logged) Aborted() { l.reset() }

func (l *Logged) reset() {
	clear(l.pending)
	l.draining, l.drained = false, nil
}

// Pending returns the number of distinct keys written in the current
// commit interval: the changelog records the next Drain returns.
func (l *Logged) Pending() int { return len(l.pending) }

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
