package state

// Size is how much a store holds, for the runner's status and the
// control plane's view of a pipeline's state (docs/observability.md).
type Size struct {
	// Keys is the number of live keys; Bytes the store's size in bytes.
	Keys, Bytes int64
	// Estimated is true when Keys and Bytes are estimates (a disk store).
	Estimated bool
}

// Sizer is a store that knows its size. Memory and pebblestore.Store
// implement it; Size is called from the goroutine that uses the store.
type Sizer interface {
	Size() Size
}

var _ Sizer = (*Memory)(nil)

// Size implements Sizer exactly: the live keys and the bytes of their keys
// and values (not the map's own overhead). It costs nothing: the counts are
// kept as the store is written.
func (s *Memory) Size() Size { return Size{Keys: int64(s.Len()), Bytes: s.bytes} }
