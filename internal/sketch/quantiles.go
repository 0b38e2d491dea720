package sketch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/sluicehq/sluice/internal/binread"
)

// Quantile sketch parameters and defaults.
const (
	DefaultRelativeAccuracy = 0.01
	MinRelativeAccuracy     = 1e-6
	MaxRelativeAccuracy     = 0.5
	// DefaultMaxBins bounds the buckets per sign. At 1% accuracy 2048
	// buckets cover magnitudes spanning a factor of about 6e17.
	DefaultMaxBins = 2048
	maxMaxBins     = 1 << 20
)

// minIndexable is the smallest magnitude given its own bucket; smaller
// magnitudes (subnormals) count as zero, because the bucket value of a
// subnormal index would underflow.
const minIndexable = 2.2250738585072014e-308 * 2

// Errors returned by Quantiles.
var (
	// ErrNotFinite is returned by Add for NaN and infinities.
	ErrNotFinite = errors.New("sketch: value is not a finite number")
	// ErrEmpty is returned by Quantile on a sketch with no values.
	ErrEmpty = errors.New("sketch: quantile of an empty sketch")
)

const quantilesVersion = 1

// Quantiles is a DDSketch-style quantile sketch with a relative-error
// guarantee: for a sketch of n values, Quantile(q) returns v with
// |v - x| <= accuracy * |x|, where x is the value of rank floor(q*(n-1))
// (0-based) in the sorted values. Zero and negative values are supported.
//
// Positive and negative magnitudes go into logarithmic buckets: bucket i
// holds magnitudes in (gamma^(i-1), gamma^i] with gamma =
// (1+accuracy)/(1-accuracy), and stands for 2*gamma^i/(gamma+1), which is
// within accuracy of every magnitude in the bucket. Each sign keeps at most
// maxBins buckets; beyond that the buckets of smallest magnitude are folded
// into the smallest kept one, so the guarantee then holds only for quantiles
// whose value has a magnitude in the kept range. The exact minimum and
// maximum are kept and results are clamped to them.
//
// The state depends only on the multiset of values added: Merge of two
// sketches equals the sketch of the union, bit for bit.
//
// A Quantiles is not safe for concurrent use.
type Quantiles struct {
	alpha, lnGamma, valueScale float64
	maxBins                    int

	count    uint64
	zero     uint64
	min, max float64
	pos, neg map[int32]uint64
}

// NewQuantiles returns an empty sketch. relativeAccuracy must be in
// [MinRelativeAccuracy, MaxRelativeAccuracy] (0 means
// DefaultRelativeAccuracy); maxBins bounds the buckets per sign (0 means
// DefaultMaxBins).
func NewQuantiles(relativeAccuracy float64, maxBins int) (*Quantiles, error) {
	if relativeAccuracy == 0 {
		relativeAccuracy = DefaultRelativeAccuracy
	}
	if maxBins == 0 {
		maxBins = DefaultMaxBins
	}
	if !(relativeAccuracy >= MinRelativeAccuracy && relativeAccuracy <= MaxRelativeAccuracy) {
		return nil, fmt.Errorf("sketch: relative accuracy %v outside [%v, %v]", relativeAccuracy, MinRelativeAccuracy, MaxRelativeAccuracy)
	}
	if maxBins < 1 || maxBins > maxMaxBins {
		return nil, fmt.Errorf("sketch: max bins %d outside [1, %d]", maxBins, maxMaxBins)
	}
	gamma := (1 + relativeAccuracy) / (1 - relativeAccuracy)
	return &Quantiles{
		alpha:      relativeAccuracy,
		lnGamma:    math.Log(gamma),
		valueScale: math.Log(2 / (gamma + 1)),
		maxBins:    maxBins,
		pos:        map[int32]uint64{},
		neg:        map[int32]uint64{},
	}, nil
}

// RelativeAccuracy returns the accuracy the sketch was built with.
func (s *Quantiles) RelativeAccuracy() float64 { return s.alpha }

// Count returns the number of values added.
func (s *Quantiles) Count() uint64 { return s.count }

// Min returns the exact minimum (0 for an empty sketch).
func (s *Quantiles) Min() float64 { return s.min }

// Max returns the exact maximum (0 for an empty sketch).
func (s *Quantiles) Max() float64 { return s.max }

func (s *Quantiles) index(mag float64) int32 {
	return int32(math.Ceil(math.Log(mag) / s.lnGamma))
}

// value is the representative magnitude of bucket i, 2*gamma^i/(gamma+1),
// computed in log space so it overflows only past MaxFloat64 (and the result
// is then clamped to the maximum).
func (s *Quantiles) value(i int32) float64 {
	return math.Exp(float64(i)*s.lnGamma + s.valueScale)
}

// Add adds v. NaN and infinities are rejected with ErrNotFinite.
func (s *Quantiles) Add(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ErrNotFinite
	}
	if s.count == 0 || v < s.min {
		s.min = v
	}
	if s.count == 0 || v > s.max {
		s.max = v
	}
	s.count++
	switch {
	case v >= minIndexable:
		s.pos[s.index(v)]++
		s.collapse(s.pos)
	case v <= -minIndexable:
		s.neg[s.index(-v)]++
		s.collapse(s.neg)
	default:
		s.zero++
	}
	return nil
}

// collapse folds the smallest-magnitude buckets of store into the smallest
// kept one until at most maxBins remain. Because it always keeps the
// maxBins highest indices seen, the result is independent of insertion
// order.
func (s *Quantiles) collapse(store map[int32]uint64) {
	if len(store) <= s.maxBins {
		return
	}
	keys := sortedKeys(store)
	cut := len(keys) - s.maxBins
	keep := keys[cut]
	for _, k := range keys[:cut] {
		store[keep] += store[k]
		delete(store, k)
	}
}

func sortedKeys(m map[int32]uint64) []int32 {
	keys := make([]int32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Merge adds every value of o to s. Both must have the same accuracy and
// bin limit.
func (s *Quantiles) Merge(o *Quantiles) error {
	if s.alpha != o.alpha || s.maxBins != o.maxBins {
		return fmt.Errorf("%w: quantiles (%v, %d) and (%v, %d)", ErrMismatch, s.alpha, s.maxBins, o.alpha, o.maxBins)
	}
	if o.count == 0 {
		return nil
	}
	if s.count == 0 || o.min < s.min {
		s.min = o.min
	}
	if s.count == 0 || o.max > s.max {
		s.max = o.max
	}
	s.count += o.count
	s.zero += o.zero
	for k, c := range o.pos {
		s.pos[k] += c
	}
	for k, c := range o.neg {
		s.neg[k] += c
	}
	s.collapse(s.pos)
	s.collapse(s.neg)
	return nil
}

// Clone returns an independent copy of s.
func (s *Quantiles) Clone() *Quantiles {
	c := *s
	c.pos = make(map[int32]uint64, len(s.pos))
	for k, v := range s.pos {
		c.pos[k] = v
	}
	c.neg = make(map[int32]uint64, len(s.neg))
	for k, v := range s.neg {
		c.neg[k] = v
	}
	return &c
}

// Quantile returns the estimated q-quantile, q in [0, 1] (see Quantiles for
// the rank and the error guarantee). It returns ErrEmpty when no value was
// added.
func (s *Quantiles) Quantile(q float64) (float64, error) {
	if !(q >= 0 && q <= 1) {
		return 0, fmt.Errorf("sketch: quantile %v outside [0, 1]", q)
	}
	if s.count == 0 {
		return 0, ErrEmpty
	}
	rank := q * float64(s.count-1)
	var cum uint64
	negKeys := sortedKeys(s.neg)
	for i := len(negKeys) - 1; i >= 0; i-- {
		cum += s.neg[negKeys[i]]
		if float64(cum) > rank {
			return s.clamp(-s.value(negKeys[i])), nil
		}
	}
	cum += s.zero
	if float64(cum) > rank {
		return s.clamp(0), nil
	}
	for _, k := range sortedKeys(s.pos) {
		cum += s.pos[k]
		if float64(cum) > rank {
			return s.clamp(s.value(k)), nil
		}
	}
	return s.max, nil
}

// clamp moves v into [min, max]; the true quantile lies there, so this
// never increases the error.
func (s *Quantiles) clamp(v float64) float64 {
	return max(s.min, min(s.max, v))
}

// MarshalBinary encodes the sketch: version, accuracy, bin limit, count,
// zero count, min and max, then the negative and positive buckets as
// (zig-zag first index, uvarint index deltas, uvarint counts).
func (s *Quantiles) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(nil)
}

// AppendBinary appends the MarshalBinary encoding to dst.
func (s *Quantiles) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, quantilesVersion)
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(s.alpha))
	dst = binary.AppendUvarint(dst, uint64(s.maxBins))
	dst = binary.AppendUvarint(dst, s.count)
	if s.count == 0 {
		return dst, nil
	}
	dst = binary.AppendUvarint(dst, s.zero)
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(s.min))
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(s.max))
	dst = appendStore(dst, s.neg)
	return appendStore(dst, s.pos), nil
}

func appendStore(dst []byte, store map[int32]uint64) []byte {
	keys := sortedKeys(store)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for i, k := range keys {
		if i == 0 {
			dst = binary.AppendVarint(dst, int64(k))
		} else {
			dst = binary.AppendUvarint(dst, uint64(int64(k)-int64(keys[i-1])))
		}
		dst = binary.AppendUvarint(dst, store[k])
	}
	return dst
}

// UnmarshalBinary replaces s with the sketch encoded in b. It returns an
// error wrapping ErrCorrupt, and leaves s unchanged, for anything that
// MarshalBinary could not have produced.
func (s *Quantiles) UnmarshalBinary(b []byte) error {
	r := binread.Reader{B: b, Corrupt: ErrCorrupt}
	if v := r.Byte(); v != quantilesVersion {
		return fmt.Errorf("%w: quantiles version %d", ErrCorrupt, v)
	}
	alpha := math.Float64frombits(r.Uint64())
	maxBins := r.Uvarint()
	count := r.Uvarint()
	if r.Err != nil {
		return r.Err
	}
	if alpha == 0 || maxBins == 0 || maxBins > maxMaxBins {
		return fmt.Errorf("%w: quantiles parameters (%v, %d)", ErrCorrupt, alpha, maxBins)
	}
	out, err := NewQuantiles(alpha, int(maxBins))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if count > 0 {
		out.count = count
		out.zero = r.Uvarint()
		out.min = math.Float64frombits(r.Uint64())
		out.max = math.Float64frombits(r.Uint64())
		if r.Err != nil {
			return r.Err
		}
		if math.IsNaN(out.min) || math.IsInf(out.min, 0) || math.IsNaN(out.max) || math.IsInf(out.max, 0) || out.min > out.max {
			return fmt.Errorf("%w: quantiles min %v max %v", ErrCorrupt, out.min, out.max)
		}
		// Bucket indices of finite magnitudes >= minIndexable lie in
		// [lo, hi]; anything else cannot come from Add.
		lo, hi := out.index(minIndexable), out.index(math.MaxFloat64)
		total := out.zero
		for _, store := range []map[int32]uint64{out.neg, out.pos} {
			n := r.Uvarint()
			// Each bucket takes at least two bytes.
			if n > maxBins || n > uint64(len(r.B))/2 {
				return fmt.Errorf("%w: %d quantile buckets", ErrCorrupt, n)
			}
			var k int64
			for i := range n {
				if i == 0 {
					k = r.Varint()
				} else {
					d := r.Uvarint()
					if d == 0 || d > uint64(hi)-uint64(lo) {
						return fmt.Errorf("%w: quantile bucket indices not increasing", ErrCorrupt)
					}
					k += int64(d)
				}
				c := r.Uvarint()
				if r.Err != nil {
					return r.Err
				}
				if k < int64(lo) || k > int64(hi) || c == 0 || total+c < total {
					return fmt.Errorf("%w: quantile bucket %d count %d", ErrCorrupt, k, c)
				}
				total += c
				store[int32(k)] = c
			}
		}
		if total != count {
			return fmt.Errorf("%w: quantile buckets hold %d values, header says %d", ErrCorrupt, total, count)
		}
	}
	if r.Err != nil {
		return r.Err
	}
	if len(r.B) != 0 {
		return fmt.Errorf("%w: %d trailing bytes after quantiles", ErrCorrupt, len(r.B))
	}
	*s = *out
	return nil
}
