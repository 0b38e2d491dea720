package binread

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestReadsAndStickyError(t *testing.T) {
	b := []byte{7, 1}
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(2.5))
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -5)
	r := &Reader{B: b}
	if r.Byte() != 7 || !r.Bool() || r.Float64() != 2.5 || r.Uvarint() != 300 || r.Varint() != -5 || r.Err != nil || len(r.B) != 0 {
		t.Fatalf("round trip failed: err %v, left %d", r.Err, len(r.B))
	}
	corrupt := errors.New("corrupt")
	r = &Reader{B: []byte{2, 1}, Corrupt: corrupt}
	if r.Bool() || !errors.Is(r.Err, corrupt) {
		t.Fatalf("flag 2 accepted or error not wrapped: %v", r.Err)
	}
	first := r.Err
	if r.Uint64() != 0 || r.Err != first {
		t.Error("reads after a failure must return zero and keep the first error")
	}
}
