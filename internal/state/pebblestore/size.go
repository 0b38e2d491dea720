package pebblestore

import (
	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/internal/state"
)

var _ state.Sizer = (*Store)(nil)

// Size implements state.Sizer with estimates, as Pebble keeps no exact
// count: Bytes is the space the tables take on disk plus the memtables;
// Keys is the entries of the tables less their deletions (a key
// overwritten in two tables not yet compacted together counts twice) plus
// the keys written and less those deleted since the last flush. It reads
// the tables' properties, which Pebble keeps cached: call it every few
// seconds, not per record.
func (p *Store) Size() state.Size {
	if p.closed {
		return state.Size{Estimated: true}
	}
	sz := state.Size{Estimated: true}
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
