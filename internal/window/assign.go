package window

import (
	"fmt"
	"math"
)

// Window is the half-open event-time interval [Start, End), in milliseconds.
type Window struct {
	Start, End int64
}

// Contains reports whether t is in [Start, End).
func (w Window) Contains(t int64) bool { return w.Start <= t && t < w.End }

// overlaps reports whether w and o share an instant.
func (w Window) overlaps(o Window) bool { return w.Start < o.End && o.Start < w.End }

func (w Window) String() string { return fmt.Sprintf("[%d, %d)", w.Start, w.End) }

// Kind is a kind of window.
type Kind uint8

// Window kinds.
const (
	KindTumbling Kind = iota + 1
	KindHopping
	KindSession
)

func (k Kind) String() string {
	switch k {
	case KindTumbling:
		return "tumbling"
	case KindHopping:
		return "hopping"
	case KindSession:
		return "session"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Spec says how records are assigned to windows. Build one with Tumbling,
// Hopping or Session; the zero Spec is invalid.
type Spec struct {
	kind    Kind
	size    int64 // tumbling, hopping
	advance int64 // hopping (== size for tumbling)
	gap     int64 // session
}

// Tumbling returns epoch-aligned, non-overlapping windows of size ms.
func Tumbling(size int64) (Spec, error) {
	if size <= 0 {
		return Spec{}, fmt.Errorf("window: tumbling size %d must be positive", size)
	}
	return Spec{kind: KindTumbling, size: size, advance: size}, nil
}

// Hopping returns epoch-aligned windows of size ms starting every advance
// ms (0 < advance <= size). A record belongs to ceil(size/advance) or
// floor(size/advance) windows; exactly size/advance when advance divides
// size.
func Hopping(size, advance int64) (Spec, error) {
	if size <= 0 || advance <= 0 || advance > size {
		return Spec{}, fmt.Errorf("window: hopping size %d and advance %d need 0 < advance <= size", size, advance)
	}
	return Spec{kind: KindHopping, size: size, advance: advance}, nil
}

// Session returns session windows that close after gap ms without records
// (see the package documentation for merging).
func Session(gap int64) (Spec, error) {
	if gap <= 0 {
		return Spec{}, fmt.Errorf("window: session gap %d must be positive", gap)
	}
	return Spec{kind: KindSession, gap: gap}, nil
}

// Kind returns the spec's kind.
func (s Spec) Kind() Kind { return s.kind }

// Size returns the window size (0 for sessions).
func (s Spec) Size() int64 { return s.size }

// Advance returns the hop (the size for tumbling windows, 0 for sessions).
func (s Spec) Advance() int64 { return s.advance }

// Gap returns the session gap (0 for tumbling and hopping windows).
func (s Spec) Gap() int64 { return s.gap }

// Windows returns the windows a record at t is assigned to, by ascending
// start. For sessions it is the record's own interval [t, t+gap), before
// merging with neighbouring sessions.
func (s Spec) Windows(t int64) []Window { return s.appendWindows(nil, t) }

// appendWindows appends Windows(t) to dst.
func (s Spec) appendWindows(dst []Window, t int64) []Window {
	switch s.kind {
	case KindTumbling, KindHopping:
		// Starts are multiples of advance in (t-size, t].
		last := floorDiv(t, s.advance) * s.advance
		n := len(dst)
		lo := satSub(t, s.size)
		for start := last; start > lo; start = satSub(start, s.advance) {
			dst = append(dst, Window{start, satAdd(start, s.size)})
			if start == math.MinInt64 {
				break
			}
		}
		ws := dst[n:]
		for i, j := 0, len(ws)-1; i < j; i, j = i+1, j-1 {
			ws[i], ws[j] = ws[j], ws[i]
		}
		return dst
	case KindSession:
		return append(dst, Window{t, satAdd(t, s.gap)})
	}
	return dst
}

// floorDiv is a / b rounded towards negative infinity (b > 0), so that
// windows before the epoch are aligned like those after it.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// satAdd and satSub saturate instead of wrapping, so that extreme event
// times cannot make a closed window look open.
func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	if b < 0 && a < math.MinInt64-b {
		return math.MinInt64
	}
	return a + b
}

func satSub(a, b int64) int64 {
	if b == math.MinInt64 {
		return satAdd(satAdd(a, math.MaxInt64), 1)
	}
	return satAdd(a, -b)
}
