package state

import "github.com/cockroachdb/pebble/v2"

// Size is how much a store holds, for the runner's status and the
// control plane's view of a pipeline's state (docs/observability.md).
type Size struct {
	// Keys is the number of live keys; Bytes the store's size in bytes.
	Keys, Bytes int64
	// Estimated is true when Keys and Bytes are estimates (a disk store).
	Estimated bool
}

// Sizer is a store that knows its size. Memory and Pebble implement it;
// Size is called from the goroutine that uses the store.
type Sizer interface {
	Size() Size
}

var (
	_ Sizer = (*Memory)(nil)
	_ Sizer = (*Pebble)(nil)
)

// Size implements Sizer exactly: the live keys and the bytes of their keys
// and values (not the map's own overhead). It costs nothing: the counts are
// kept as the store is written.
func (s *Memory) Size() Size { return Size{Keys: int64(s.Len()), Bytes: s.bytes} }

// Size implements Sizer with estimates, as Pebble keeps no exact count:
// Bytes is the space the tables take on disk plus the memtables; Keys is
// the entries of the tables less their deletions (a key overwritten in two
// tables not yet compacted together counts twice) plus the keys written
// and less those deleted since the last flush. It reads the tables'
// properties, which Pebble keeps cached: call it every few seconds, not
// per record.
func (p *Pebble) Size() Size {
	if p.closed {
		return Size{Estimated: true}
	}
	sz := Size{Estimated: true}
	m := p.db.Metrics()
	sz.Bytes = int64(m.MemTable.Size)
	if disk, err := p.db.EstimateDiskUsage([]byte{dataPrefix}, []byte{dataPrefix + 1}); err == nil {
		sz.Bytes += int64(disk)
	}
	if levels, err := p.db.SSTables(pebble.WithProperties()); err == nil {
		for _, level := range levels {
			for _, t := range level {
				if t.Properties == nil {
					continue
				}
				// Each table may hold the checkpoint key too: not a key of
				// the state.
				n := int64(t.Properties.NumEntries) - int64(t.Properties.NumDeletions) - 1
				sz.Keys += max(n, 0)
			}
		}
	}
	sz.Keys = max(sz.Keys+p.unflushed.Load(), 0)
	return sz
}
