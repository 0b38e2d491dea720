package record

// Slab hands out room for values that outlive the call that writes them,
// such as the values of records handed to the producer, which keeps them
// until the broker has them: carved one after another from blocks, rather
// than allocated one by one. A block stays in memory while any value cut
// from it does. The zero Slab is ready to use; a Slab is not safe for
// concurrent use.
type Slab struct{ b []byte }

// maxSlabBlock is the size blocks grow to, doubling from the first
// value's: a slab that serves one value costs no more than its value.
const maxSlabBlock = 16 << 10

// Buf returns an empty buffer with room for n bytes, to append one value
// to and hand to Keep. A value that outgrows the room is copied out by
// append, as any slice is, and is then an allocation of its own.
func (s *Slab) Buf(n int) []byte {
	if cap(s.b)-len(s.b) < n {
		s.b = make([]byte, 0, max(n, min(2*cap(s.b), maxSlabBlock)))
	}
	// A full slice expression: appending past the room never writes over
	// the block's next values.
	return s.b[len(s.b):len(s.b):cap(s.b)]
}

// Keep takes v, the last Buf with a value appended, out of the free room,
// and returns it with no room to append to.
func (s *Slab) Keep(v []byte) []byte {
	if cap(v) == cap(s.b)-len(s.b) && len(v) > 0 { // still in the block
		s.b = s.b[:len(s.b)+len(v)]
	}
	return v[:len(v):len(v)]
}
