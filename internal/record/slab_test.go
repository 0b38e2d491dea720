package record

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"
)

// TestSlab writes values of growing and random sizes, some longer than
// the room asked for, and checks that every value kept still holds its
// bytes after all the others were written, and that values share blocks.
func TestSlab(t *testing.T) {
	var s Slab
	var kept [][]byte
	var want []string
	for i := range 2000 {
		n := i % 300
		b := s.Buf(n / 2) // half the room it needs, now and then too little
		b = fmt.Appendf(b, "%d:", i)
		b = append(b, bytes.Repeat([]byte{byte('a' + i%26)}, n)...)
		v := s.Keep(b)
		if cap(v) != len(v) {
			t.Fatalf("value %d has room %d beyond its %d bytes", i, cap(v)-len(v), len(v))
		}
		kept = append(kept, v)
		want = append(want, string(v))
	}
	for i, v := range kept {
		if string(v) != want[i] {
			t.Fatalf("value %d changed: %.20q..., want %.20q...", i, v, want[i])
		}
	}
	shared := 0
	for i := 1; i < len(kept); i++ {
		a, b := kept[i-1], kept[i]
		if uintptr(unsafe.Pointer(unsafe.SliceData(a)))+uintptr(len(a)) == uintptr(unsafe.Pointer(unsafe.SliceData(b))) {
			shared++
		}
	}
	if shared < len(kept)/2 {
		t.Fatalf("only %d of %d values follow the one before in a block", shared, len(kept))
	}
}
