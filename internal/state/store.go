package state

import (
	"errors"
	"maps"
	"time"
)

// Store is a task's key-value state. Keys and values are bytes; Put copies
// both, so callers may reuse their buffers.
type Store interface {
	// Get returns the value of key and whether it exists. The value must
	// not be modified, and is valid until the next write to the store.
	Get(key []byte) ([]byte, bool, error)
	// Put sets key to value (a nil value is stored as empty).
	Put(key, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key []byte) error
	// Scan calls fn for every key in [lo, hi) in ascending byte order; a
	// nil hi means to the end. k and v are valid only during the call, and
	// fn must not write to the store. An error from fn stops the scan and
	// is returned.
	Scan(lo, hi []byte, fn func(k, v []byte) error) error
	// Close releases the store.
	Close() error
}

// Change is one changelog record: key set to Value, or deleted when Value
// is nil (a tombstone).
type Change struct {
	Key   []byte
	Value []byte
}

// Checkpoint says up to where in the changelog a store is valid: for each
// changelog partition, the offset of the next record to apply.
type Checkpoint struct {
	// Offsets maps a changelog partition to the next offset to read.
	Offsets map[int32]int64
	// Written is when the checkpoint was written, which bounds how old a
	// checkpoint may be and still be trusted (see pebblestore.MaxCheckpointAge).
	Written time.Time
}

// Offset returns the offset to restore partition from: the checkpoint's, or
// 0 when it has none.
func (c Checkpoint) Offset(partition int32) int64 { return c.Offsets[partition] }

// With returns a copy of c with partition at offset, written now: the
// checkpoint of a commit or of a restore batch that brings partition to
// offset.
func (c Checkpoint) With(partition int32, offset int64, now time.Time) Checkpoint {
	o := make(map[int32]int64, len(c.Offsets)+1)
	maps.Copy(o, c.Offsets)
	o[partition] = offset
	return Checkpoint{Offsets: o, Written: now}
}

// Committer is a Store that can apply one commit's (or one restore batch's)
// changes together with the checkpoint they bring it to, atomically: after
// a crash the store holds either all of them and the new checkpoint, or
// none and the old one. Memory and pebblestore.Store implement it.
type Committer interface {
	Store
	// Apply applies changes in order and records cp. The store does not
	// retain the slices of changes.
	Apply(changes []Change, cp Checkpoint) error
	// Checkpoint returns the last recorded checkpoint (the zero value for
	// a new or wiped store).
	Checkpoint() Checkpoint
	// Reset empties the store and its checkpoint, for a restore from the
	// start of the changelog.
	Reset() error
}

// ErrClosed is returned by a store's methods after Close.
var ErrClosed = errors.New("state: store closed")

// ErrDraining is returned by writes to a Logged store between Drain and
// Committed or Aborted: they would belong to neither commit.
var ErrDraining = errors.New("state: write while a commit is in progress")

// ErrNotDraining is returned by Committed or Aborted without a Drain before.
var ErrNotDraining = errors.New("state: no commit in progress")
