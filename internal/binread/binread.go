// Package binread reads the compact binary encodings Sluice keeps in state
// stores (sketches, window accumulators): bytes, big-endian 64-bit
// numbers, varints and flags. Errors are sticky, so a decoder reads a whole
// record and checks Err once; after a failure every read returns zero.
package binread

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Reader reads from B, which shrinks as it is read.
type Reader struct {
	B   []byte
	Err error
	// Corrupt, when set, is wrapped by the errors of failed reads, so that
	// callers can match them with errors.Is.
	Corrupt error
}

// Fail records that what could not be read (unless an earlier read
// failed) and stops further reads.
func (r *Reader) Fail(what string) {
	if r.Err == nil {
		if r.Corrupt != nil {
			r.Err = fmt.Errorf("%w: truncated or bad %s", r.Corrupt, what)
		} else {
			r.Err = errors.New("truncated or bad " + what)
		}
	}
	r.B = nil
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.B) < 1 {
		r.Fail("byte")
		return 0
	}
	v := r.B[0]
	r.B = r.B[1:]
	return v
}

// Uint64 reads a big-endian uint64.
func (r *Reader) Uint64() uint64 {
	if len(r.B) < 8 {
		r.Fail("uint64")
		return 0
	}
	v := binary.BigEndian.Uint64(r.B)
	r.B = r.B[8:]
	return v
}

// Float64 reads a float64 stored as its big-endian IEEE 754 bits.
func (r *Reader) Float64() float64 {
	if len(r.B) < 8 {
		r.Fail("float")
		return 0
	}
	return math.Float64frombits(r.Uint64())
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.B)
	if n <= 0 {
		r.Fail("uvarint")
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Varint reads a signed (zig-zag) varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.B)
	if n <= 0 {
		r.Fail("varint")
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Bool reads a flag byte, 0 or 1; any other value is a failure.
func (r *Reader) Bool() bool {
	if len(r.B) < 1 || r.B[0] > 1 {
		r.Fail("flag")
		return false
	}
	v := r.B[0] == 1
	r.B = r.B[1:]
	return v
}
