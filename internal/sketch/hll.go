package sketch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// HLL precision bounds and default. The standard error of an estimate is
// about 1.04/sqrt(2^precision): 0.81% at the default 14.
const (
	MinPrecision     = 4
	MaxPrecision     = 18
	DefaultPrecision = 14
)

// Errors returned by sketches.
var (
	// ErrMismatch is returned by Merge when two sketches were built with
	// different parameters (precision, accuracy or bin limit).
	ErrMismatch = errors.New("sketch: merging sketches with different parameters")
	// ErrCorrupt is returned by UnmarshalBinary for bytes that are not a
	// sketch of this package.
	ErrCorrupt = errors.New("sketch: corrupt encoding")
)

const (
	hllVersion     = 1
	hllModeSparse  = 0
	hllModeDense   = 1
	hllHeaderBytes = 3 // version, precision, mode
)

// HLL is a HyperLogLog cardinality sketch over 64-bit hashes (see Hash64).
//
// Small sets are kept exactly: up to 2^precision/8 distinct hashes are held
// in a sorted list (the same memory as the dense registers), and Estimate
// returns their exact count. Past that the sketch turns into 2^precision
// one-byte registers and Estimate uses Ertl's improved raw estimator
// ("New cardinality estimation algorithms for HyperLogLog sketches", 2017),
// which needs no empirical bias tables. The switch depends only on the
// number of distinct hashes, so the state is a function of the set of hashes
// added: Merge of two sketches equals the sketch of the union, bit for bit.
//
// An HLL is not safe for concurrent use.
type HLL struct {
	p      uint8
	sparse []uint64 // sorted distinct hashes while dense is nil
	dense  []uint8  // 2^p registers once the sparse list outgrew its limit
}

// NewHLL returns an empty HLL with the given precision (MinPrecision to
// MaxPrecision; 0 means DefaultPrecision).
func NewHLL(precision uint8) (*HLL, error) {
	if precision == 0 {
		precision = DefaultPrecision
	}
	if precision < MinPrecision || precision > MaxPrecision {
		return nil, fmt.Errorf("sketch: HLL precision %d outside [%d, %d]", precision, MinPrecision, MaxPrecision)
	}
	return &HLL{p: precision}, nil
}

// Precision returns the sketch's precision.
func (h *HLL) Precision() uint8 { return h.p }

// sparseLimit is the number of exact hashes kept before switching to
// registers: 8 bytes each, so the sparse form never outweighs the dense one.
func (h *HLL) sparseLimit() int { return (1 << h.p) / 8 }

// Add adds a 64-bit hash (see Hash64 and HashString).
func (h *HLL) Add(hash uint64) {
	if h.dense != nil {
		h.addDense(hash)
		return
	}
	i, found := slices.BinarySearch(h.sparse, hash)
	if found {
		return
	}
	h.sparse = slices.Insert(h.sparse, i, hash)
	if len(h.sparse) > h.sparseLimit() {
		h.toDense()
	}
}

// AddBytes adds Hash64(b).
func (h *HLL) AddBytes(b []byte) { h.Add(Hash64(b)) }

// AddString adds HashString(s).
func (h *HLL) AddString(s string) { h.Add(HashString(s)) }

func (h *HLL) addDense(hash uint64) {
	idx := hash >> (64 - h.p)
	q := 64 - int(h.p)
	r := min(bits.LeadingZeros64(hash<<h.p)+1, q+1)
	if uint8(r) > h.dense[idx] {
		h.dense[idx] = uint8(r)
	}
}

func (h *HLL) toDense() {
	h.dense = make([]uint8, 1<<h.p)
	for _, x := range h.sparse {
		h.addDense(x)
	}
	h.sparse = nil
}

// Merge adds every hash of o to h. Both must have the same precision.
func (h *HLL) Merge(o *HLL) error {
	if o.p != h.p {
		return fmt.Errorf("%w: HLL precision %d and %d", ErrMismatch, h.p, o.p)
	}
	switch {
	case o.dense != nil:
		if h.dense == nil {
			h.toDense()
		}
		for i, r := range o.dense {
			if r > h.dense[i] {
				h.dense[i] = r
			}
		}
	case h.dense != nil:
		for _, x := range o.sparse {
			h.addDense(x)
		}
	default:
		h.sparse = mergeSorted(h.sparse, o.sparse)
		if len(h.sparse) > h.sparseLimit() {
			h.toDense()
		}
	}
	return nil
}

// mergeSorted returns the sorted union of two sorted, duplicate-free lists.
func mergeSorted(a, b []uint64) []uint64 {
	out := make([]uint64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// Clone returns an independent copy of h.
func (h *HLL) Clone() *HLL {
	return &HLL{p: h.p, sparse: slices.Clone(h.sparse), dense: slices.Clone(h.dense)}
}

// Exact reports whether Estimate is exact (the sketch still holds the
// hashes themselves; two distinct values with the same 64-bit hash are the
// only source of error).
func (h *HLL) Exact() bool { return h.dense == nil }

// Estimate returns the estimated number of distinct hashes added.
func (h *HLL) Estimate() uint64 {
	if h.dense == nil {
		return uint64(len(h.sparse))
	}
	m := float64(len(h.dense))
	q := 64 - int(h.p)
	var c [66]int
	for _, r := range h.dense {
		c[r]++
	}
	z := m * hllTau(1-float64(c[q+1])/m)
	for k := q; k >= 1; k-- {
		z = 0.5 * (z + float64(c[k]))
	}
	z += m * hllSigma(float64(c[0])/m)
	if math.IsInf(z, 1) {
		return 0
	}
	const alphaInf = 0.5 / math.Ln2
	return uint64(math.Round(alphaInf * m * m / z))
}

func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		prev := z
		z += x * y
		y += y
		if z == prev {
			return z
		}
	}
}

func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		prev := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if z == prev {
			return z / 3
		}
	}
}

// MarshalBinary encodes the sketch: a version byte, the precision, the mode,
// then either the sorted hashes as a count and uvarint deltas (sparse) or
// the 2^precision registers (dense). A sketch of 10 distinct values takes
// about 80 bytes.
func (h *HLL) MarshalBinary() ([]byte, error) {
	return h.AppendBinary(nil)
}

// AppendBinary appends the MarshalBinary encoding to dst.
func (h *HLL) AppendBinary(dst []byte) ([]byte, error) {
	if h.dense != nil {
		dst = append(dst, hllVersion, h.p, hllModeDense)
		return append(dst, h.dense...), nil
	}
	dst = append(dst, hllVersion, h.p, hllModeSparse)
	dst = binary.AppendUvarint(dst, uint64(len(h.sparse)))
	var prev uint64
	for _, x := range h.sparse {
		dst = binary.AppendUvarint(dst, x-prev)
		prev = x
	}
	return dst, nil
}

// UnmarshalBinary replaces h with the sketch encoded in b. It returns an
// error wrapping ErrCorrupt, and leaves h unchanged, for anything that
// MarshalBinary could not have produced.
func (h *HLL) UnmarshalBinary(b []byte) error {
	if len(b) < hllHeaderBytes {
		return fmt.Errorf("%w: HLL of %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != hllVersion {
		return fmt.Errorf("%w: HLL version %d", ErrCorrupt, b[0])
	}
	p := b[1]
	if p < MinPrecision || p > MaxPrecision {
		return fmt.Errorf("%w: HLL precision %d", ErrCorrupt, p)
	}
	body := b[hllHeaderBytes:]
	out := HLL{p: p}
	switch b[2] {
	case hllModeDense:
		if len(body) != 1<<p {
			return fmt.Errorf("%w: HLL with %d registers, want %d", ErrCorrupt, len(body), 1<<p)
		}
		maxRank := uint8(64 - int(p) + 1)
		for _, r := range body {
			if r > maxRank {
				return fmt.Errorf("%w: HLL register %d", ErrCorrupt, r)
			}
		}
		out.dense = slices.Clone(body)
	case hllModeSparse:
		n, k := binary.Uvarint(body)
		if k <= 0 {
			return fmt.Errorf("%w: HLL count", ErrCorrupt)
		}
		body = body[k:]
		// Each hash takes at least one byte, which bounds the allocation.
		if n > uint64(out.sparseLimit()) || n > uint64(len(body)) {
			return fmt.Errorf("%w: HLL with %d sparse hashes", ErrCorrupt, n)
		}
		out.sparse = make([]uint64, 0, n)
		var prev uint64
		for i := range n {
			d, k := binary.Uvarint(body)
			if k <= 0 {
				return fmt.Errorf("%w: HLL hash %d", ErrCorrupt, i)
			}
			body = body[k:]
			if i > 0 && (d == 0 || prev+d < prev) {
				return fmt.Errorf("%w: HLL hashes not increasing", ErrCorrupt)
			}
			prev += d
			out.sparse = append(out.sparse, prev)
		}
		if len(body) != 0 {
			return fmt.Errorf("%w: %d trailing bytes after HLL", ErrCorrupt, len(body))
		}
	default:
		return fmt.Errorf("%w: HLL mode %d", ErrCorrupt, b[2])
	}
	*h = out
	return nil
}
