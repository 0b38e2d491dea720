package record

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// FieldSet names the top-level fields of a JSON object that a pipeline
// reads. It is immutable and safe for concurrent use.
type FieldSet struct {
	names []string
	index map[string]int // for larger sets; nil for small ones
}

// smallFieldSet is the size up to which names are found by comparing them
// one by one, which is faster than hashing for a handful of names.
const smallFieldSet = 8

// NewFieldSet returns the set of the given names; duplicates are ignored.
func NewFieldSet(names ...string) *FieldSet {
	f := &FieldSet{}
	seen := map[string]bool{}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			f.names = append(f.names, n)
		}
	}
	if len(f.names) > smallFieldSet {
		f.index = make(map[string]int, len(f.names))
		for i, n := range f.names {
			f.index[n] = i
		}
	}
	return f
}

// Names returns the names in the set, in the order first given.
func (f *FieldSet) Names() []string { return append([]string(nil), f.names...) }

// Len returns the number of names.
func (f *FieldSet) Len() int { return len(f.names) }

// Index returns the position of name in the set (as in Names), or -1.
func (f *FieldSet) Index(name string) int { return f.lookup([]byte(name)) }

// lookup returns the position of the name key in the set, or -1.
func (f *FieldSet) lookup(key []byte) int {
	if f.index != nil {
		if i, ok := f.index[string(key)]; ok {
			return i
		}
		return -1
	}
	for i, n := range f.names {
		if len(n) == len(key) && n == string(key) {
			return i
		}
	}
	return -1
}

// maxFieldsDepth bounds the nesting DecodeFields checks by itself; deeper
// documents are left to DecodeJSON (whose own limit is much higher).
const maxFieldsDepth = 512

// DecodeFields decodes only the fields of f from b, when b is one JSON
// object: the result holds exactly the entries that DecodeJSON(b) would
// hold for those names, with the same values, and nothing else. It returns
// false, having decoded nothing that matters, whenever b is not an object
// or is not valid JSON, and for very deep nesting; callers then use
// DecodeJSON, which also gives the error for invalid input.
//
// The other fields are checked against the JSON grammar but not built, so
// a record whose pipeline reads few of its fields costs much less to
// decode. The named fields are built by the same code as DecodeJSON's.
func DecodeFields(b []byte, f *FieldSet) (map[string]any, bool) {
	d := fieldDecoder{b: b}
	i := d.ws(0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	m := make(map[string]any, len(f.names))
	if !d.fields(i, f, m, nil) {
		return nil, false
	}
	return m, true
}

// DecodeFieldsInto is DecodeFields storing the fields into m, which must
// be empty, rather than into a new map, for a caller that reuses one map
// for record after record. When it returns false, m may hold some fields.
//
// With a Scratch, the numbers and strings that are fields of the object
// are held in it rather than boxed one allocation each, and strings
// without escapes are views of b rather than copies: the values in m then
// stay valid only until the Scratch is Reset, and only while b does not
// change, and nothing may keep them (or anything holding them) past that.
func DecodeFieldsInto(b []byte, f *FieldSet, m map[string]any, sc *Scratch) bool {
	d := fieldDecoder{b: b, scratch: sc}
	if sc != nil {
		d.copied = bytesString(b)
	}
	i := d.ws(0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	return d.fields(i, f, m, nil)
}

// DecodeFieldsSlots is DecodeFieldsInto storing each field of f into
// vals[j], j being its position in f (see Names and Index), rather than
// into a map, for a caller that reads fields by position: vals must have
// f.Len() entries, all nil; a field the object does not have stays nil.
// The Scratch may be nil.
//
// Strings are not copied unless they have escapes: they are views of b,
// valid only as long as b is not changed, so that a caller that is done
// with the values before it lets go of b allocates nothing for them.
func DecodeFieldsSlots(b []byte, f *FieldSet, vals []any, sc *Scratch) bool {
	d := fieldDecoder{b: b, scratch: sc, copied: bytesString(b)}
	i := d.ws(0)
	if i >= len(b) || b[i] != '{' || len(vals) != len(f.names) {
		return false
	}
	return d.fields(i, f, nil, vals)
}

// Scratch holds the numbers and string headers of the fields
// DecodeFieldsInto decodes, for a caller that decodes record after record
// and keeps nothing of one record when it moves on to the next. Interface
// values of these fields point into it instead of to an allocation of
// their own. The zero Scratch is ready to use; it must not be used by two
// decodes at the same time.
type Scratch struct {
	nums []uint64 // int and float64 values, by their bits
	strs []string
}

// Reset makes the Scratch's storage free for the next record, and lets go
// of the strings it holds. Values
// boxed before keep the arrays they point into alive: append never writes
// into an array past its length, and a full array is replaced, not
// reused, so a value's storage changes only when the caller reuses the
// Scratch, as its contract says.
func (sc *Scratch) Reset() {
	clear(sc.strs) // do not keep the last record's strings alive
	sc.nums, sc.strs = sc.nums[:0], sc.strs[:0]
}

// eface is the layout of an interface value of type any.
type eface struct {
	typ, data unsafe.Pointer
}

func typeOf(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

var (
	intType     = typeOf(int(0))
	float64Type = typeOf(float64(0))
	stringType  = typeOf("")
)

// boxAt returns the interface value of type typ whose value is at p.
func boxAt(typ, p unsafe.Pointer) any {
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, p
	return v
}

// int boxes x into the Scratch.
func (sc *Scratch) int(x int) any {
	if uint(x) < 256 {
		return x // the runtime boxes small values without allocating
	}
	sc.nums = append(sc.nums, uint64(x))
	return boxAt(intType, unsafe.Pointer(&sc.nums[len(sc.nums)-1]))
}

// float boxes f into the Scratch.
func (sc *Scratch) float(f float64) any {
	sc.nums = append(sc.nums, math.Float64bits(f))
	return boxAt(float64Type, unsafe.Pointer(&sc.nums[len(sc.nums)-1]))
}

// String returns s as an interface value held in the Scratch: valid until
// the Scratch is Reset.
func (sc *Scratch) String(s string) any {
	sc.strs = append(sc.strs, s)
	return boxAt(stringType, unsafe.Pointer(&sc.strs[len(sc.strs)-1]))
}

// scalar decodes the string or number at i into the Scratch, returning
// false (with i) when it is neither, for build to decode.
func (d *fieldDecoder) scalar(i int) (any, int, bool) {
	b := d.b
	switch c := b[i]; {
	case c == '"':
		end, flags := d.str(i)
		if flags&strBad != 0 {
			return nil, -1, true
		}
		return d.scratch.String(d.unquote(i, end, flags)), end, true
	case c == '-' || '0' <= c && c <= '9':
		end, float := d.scanNumber(i)
		if end < 0 {
			return nil, -1, true
		}
		tok := b[i:end]
		if float {
			if f, ok := parseSimpleFloat(tok); ok {
				return d.scratch.float(f), end, true
			}
		} else if x, ok := shortInt(tok); ok {
			return d.scratch.int(x), end, true
		}
	}
	return nil, i, false
}

// fields decodes the fields of f of the object whose '{' is at i into m,
// or, with vals, into vals by position.
func (d *fieldDecoder) fields(i int, f *FieldSet, m map[string]any, vals []any) bool {
	b := d.b
	if f.Len() == 0 {
		// Nothing to decode: check the object as skip checks a value.
		end := d.skip(i, 0)
		return end >= 0 && d.ws(end) == len(b)
	}
	i = d.ws(i + 1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return false
			}
			end, flags := plainString(b, i), 0
			if end < 0 {
				if end, flags = d.str(i); flags&strBad != 0 {
					return false
				}
			}
			var at int
			if flags&(strEscaped|strNonASCII) == 0 {
				at = f.lookup(b[i+1 : end-1])
			} else {
				// The key DecodeJSON would hold: escapes resolved,
				// invalid UTF-8 replaced.
				at = f.lookup([]byte(d.unquote(i, end, flags)))
			}
			i = d.ws(end)
			if i >= len(b) || b[i] != ':' {
				return false
			}
			i = d.ws(i + 1)
			if at >= 0 {
				var v any
				done := false
				if d.scratch != nil && i < len(b) {
					v, i, done = d.scalar(i)
				}
				if !done {
					v, i = d.build(i, 2)
				}
				if i < 0 {
					return false
				}
				// A later duplicate wins, as in DecodeJSON.
				if vals != nil {
					vals[at] = v
				} else {
					m[f.names[at]] = v
				}
			} else if i = d.skip(i, 1); i < 0 {
				return false
			}
			i = d.ws(i)
			if i >= len(b) {
				return false
			}
			if b[i] == ',' {
				i = d.ws(i + 1)
				continue
			}
			if b[i] != '}' {
				return false
			}
			i++
			break
		}
	}
	return d.ws(i) == len(b)
}

// fieldDecoder scans (and, in decode.go, builds) JSON values in b.
type fieldDecoder struct {
	b []byte
	// tooDeep is set when build met nesting deeper than maxDecodeDepth.
	tooDeep bool
	// copied, when set, is a copy of b that strings without escapes are
	// cut from, so that DecodeJSON makes one string allocation instead of
	// one per string (the input buffer is reused by the Kafka client, so
	// strings cannot point into b). Strings of a value decoded whole keep
	// the copy alive, which costs no more than the value itself.
	copied string
	// scratch, when set, holds the numbers and strings that are fields
	// of the top-level object (DecodeFieldsInto).
	scratch *Scratch
}

// ws skips JSON white space from i. Every byte JSON white space is made of
// is at most ' ', and every byte that ends it in valid JSON is above, so
// the usual case, no white space, costs one comparison.
func (d *fieldDecoder) ws(i int) int {
	b := d.b
	for i < len(b) && b[i] <= ' ' {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// What str found in a string.
const (
	strEscaped  = 1 << iota // a backslash escape
	strNonASCII             // a byte >= 0x80
	strBad                  // not a valid JSON string
)

// str scans the string starting with the quote at i and returns the index
// after its closing quote.
func (d *fieldDecoder) str(i int) (int, int) {
	b := d.b
	flags := 0
	for i++; i < len(b); i++ {
		// Skip eight plain bytes at a time, then straight to the first
		// byte that needs a look.
		for i+8 <= len(b) {
			if w := special8(binary.LittleEndian.Uint64(b[i:])); w != 0 {
				i += bits.TrailingZeros64(w) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, flags
		case c == '\\':
			flags |= strEscaped
			i++
			if i >= len(b) {
				return i, strBad
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return i, strBad
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return i, strBad
					}
				}
				i += 4
			default:
				return i, strBad
			}
		case c < 0x20:
			return i, strBad
		case c >= utf8.RuneSelf:
			flags |= strNonASCII
		}
	}
	return i, strBad
}

// special8 marks the bytes of w (little-endian) that need a look in a
// string: a quote, a backslash, a control character or a non-ASCII byte,
// by the high bit of each. The lowest mark is exact: the zero-byte and
// below-0x20 tests can mark a byte above a true one (a borrow), never
// below it, so the lowest set bit is the first byte that needs a look,
// and zero means none does.
func special8(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	quote := hasZero(w ^ (ones * '"'))
	backslash := hasZero(w ^ (ones * '\\'))
	control := (w - ones*0x20) & ^w & highs
	return quote | backslash | control | w&highs
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (d *fieldDecoder) literal(i int, lit string) int {
	if len(d.b)-i < len(lit) || string(d.b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// number checks the number at i against the JSON grammar, and, when it
// has a fraction or an exponent and could be out of float64's range, that
// it is not (DecodeJSON rejects such numbers; integers of any size are
// kept). It returns the index after the number, or -1.
func (d *fieldDecoder) number(i int) int {
	end, _ := d.scanNumber(i)
	return end
}

// scanNumber is number, also reporting whether the number has a fraction
// or an exponent (is a float rather than an integer).
func (d *fieldDecoder) scanNumber(i int) (end int, float bool) {
	b := d.b
	start := i
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if j := digits(b, i); j == i {
		return -1, false
	} else {
		i = j
	}
	frac := i < len(b) && b[i] == '.'
	if frac {
		j := digits(b, i+1)
		if j == i+1 {
			return -1, false
		}
		i = j
	}
	exp := false
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		exp = true
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1, false
		}
		i = j
	}
	if exp || frac && i-start > 300 {
		if _, err := strconv.ParseFloat(bytesString(b[start:i]), 64); err != nil {
			return -1, false
		}
	}
	return i, frac || exp
}

// digits returns the index of the first byte from i on in b that is not a
// decimal digit, looking at eight bytes at a time while it can.
func digits(b []byte, i int) int {
	for i+8 <= len(b) {
		if w := nonDigit8(binary.LittleEndian.Uint64(b[i:])); w != 0 {
			return i + bits.TrailingZeros64(w)>>3
		}
		i += 8
	}
	for i < len(b) && b[i]-'0' <= 9 {
		i++
	}
	return i
}

// nonDigit8 marks the bytes of w (little-endian) that are not '0'-'9' by
// the high bit of each. A byte below '0' sets it in c-'0', one above '9'
// in c+0x46 or (from 0xba up, where the sum carries) in c-'0'. The lowest
// mark is exact: bytes below it are digits, which neither borrow nor
// carry, so only bytes above the first non-digit can be marked wrongly.
func nonDigit8(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	return ((w - ones*'0') | (w + ones*0x46)) & highs
}

// exactPow10 are the powers of ten a float64 holds exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseSimpleFloat parses a valid JSON number without an exponent, the
// common case, exactly as strconv.ParseFloat does when its digits make an
// integer of at most 2^53 and it has at most 22 decimals: the integer and
// the power of ten are then exact float64s, and one correctly rounded
// division gives the correctly rounded result (Clinger's fast path). It
// returns false for any other number.
func parseSimpleFloat(tok []byte) (float64, bool) {
	i, neg := 0, false
	if tok[0] == '-' {
		i, neg = 1, true
	}
	var m uint64
	digits, frac := 0, -1
	for ; i < len(tok); i++ {
		c := tok[i]
		switch {
		case '0' <= c && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.':
			frac = 0
		default:
			return 0, false // an exponent
		}
	}
	if digits > 19 || m > 1<<53 || frac >= len(exactPow10) {
		return 0, false // m may have wrapped, or is not exact
	}
	f := float64(m)
	if frac > 0 {
		f /= exactPow10[frac]
	}
	if neg {
		f = -f
	}
	return f, true
}

// bytesString views b as a string without copying, for functions that do
// not keep it.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
