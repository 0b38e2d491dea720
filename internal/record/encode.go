package record

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// appendPlain appends the JSON encoding of a value in decoded JSON form
// (map[string]any, []any, string, int, Number, float64, bool, nil) to dst,
// byte for byte as the JSON library encodes it with sorted keys and
// without HTML escaping (the algorithm of encoding/json, which
// goccy/go-json follows), except that numbers keep their kind: a float64
// that is a whole number is written with ".0" (4.0 stays 4.0, as Python's
// json writes it), so that it decodes back as a float64 and not an int.
// It returns false for anything else (other Go types, NaN and infinities,
// very deep nesting), which the caller then leaves to the library; dst may
// then hold a partial encoding after its original length. With byValue,
// whole float64s are written without ".0", so that equal numbers of either
// kind encode alike (see IdentityJSON).
func appendPlain(dst []byte, v any, depth int, byValue bool) ([]byte, bool) {
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case string:
		return appendString(dst, t), true
	case int:
		return strconv.AppendInt(dst, int64(t), 10), true
	case float64:
		dst, ok := appendFloat(dst, t)
		if ok && !byValue && t == math.Trunc(t) && !hasFracOrExp(dst) {
			dst = append(dst, '.', '0')
		}
		return dst, ok
	case Number:
		if !validNumber(t) {
			return dst, false
		}
		return append(dst, t...), true
	case int64:
		return strconv.AppendInt(dst, t, 10), true
	case bool:
		return strconv.AppendBool(dst, t), true
	case map[string]any:
		if t == nil {
			return append(dst, "null"...), true
		}
		if depth >= maxFieldsDepth {
			return dst, false
		}
		var small [16]entry
		entries := small[:0]
		for k, e := range t {
			entries = append(entries, entry{k, e})
		}
		sortEntries(entries)
		dst = append(dst, '{')
		for i, e := range entries {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, e.k)
			dst = append(dst, ':')
			var ok bool
			if dst, ok = appendPlain(dst, e.v, depth+1, byValue); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	case []any:
		if t == nil {
			return append(dst, "null"...), true
		}
		if depth >= maxFieldsDepth {
			return dst, false
		}
		dst = append(dst, '[')
		for i, e := range t {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendPlain(dst, e, depth+1, byValue); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	}
	return dst, false
}

// entry is one object member, for sorting by key.
type entry struct {
	k string
	v any
}

// sortEntries sorts entries by key (keys are distinct): by insertion, with
// the comparison inlined, for the few members most objects have, and with
// slices.SortFunc for more.
func sortEntries(entries []entry) {
	if len(entries) > 16 {
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k, b.k) })
		return
	}
	for i := 1; i < len(entries); i++ {
		e := entries[i]
		j := i
		for ; j > 0 && e.k < entries[j-1].k; j-- {
			entries[j] = entries[j-1]
		}
		entries[j] = e
	}
}

// appendFloat formats f as encoding/json does: the shortest representation
// that reads back as f, in exponent form only for very small and very
// large magnitudes, with the exponent's leading zero dropped (1e-07 ->
// 1e-7).
func appendFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

// hasFracOrExp reports whether the number appendFloat wrote at the end of
// dst already reads back as a float: it has a '.' or an exponent. A whole
// float64 is written without either unless it is very large or small.
func hasFracOrExp(dst []byte) bool {
	for i := len(dst) - 1; i >= 0; i-- {
		switch c := dst[i]; {
		case c == '.' || c == 'e':
			return true
		case c == '-' || c == '+' || '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return false
}

// validNumber reports whether n is a JSON number, as the library checks a
// Number before writing it.
func validNumber(n Number) bool {
	if n == "" {
		return false
	}
	d := fieldDecoder{b: []byte(n)}
	return d.number(0) == len(n)
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes that need no escaping in a JSON string
// when HTML characters are not escaped.
var jsonSafe = func() (s [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		s[c] = c != '"' && c != '\\'
	}
	return s
}()

// appendString quotes s as encoding/json does without HTML escaping:
// control characters escaped (\b, \f, \n, \r, \t by name), invalid UTF-8
// replaced by \ufffd, and U+2028 and U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// encodeBufs are scratch buffers for EncodeJSON, which returns an exact copy.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledEncodeBuf keeps buffers of huge outputs out of the pool.
const maxPooledEncodeBuf = 64 << 10

// AppendObjectKey appends the key of an object member as EncodeJSON
// writes it, quoted and followed by a colon.
func AppendObjectKey(dst []byte, k string) []byte {
	return append(appendString(dst, k), ':')
}

// AppendObjectValue appends the value of a member of a top-level object
// as EncodeJSON writes it, for a caller that writes the object's members
// itself (in key order, after AppendObjectKey). It returns false, dst
// then holding a partial encoding, for a value EncodeJSON leaves to the
// JSON library (see appendPlain).
func AppendObjectValue(dst []byte, v any) ([]byte, bool) {
	return appendPlain(dst, v, 1, false)
}

// encodePlain encodes v with appendPlain into a fresh slice of exactly its
// size, or returns false.
func encodePlain(v any) ([]byte, bool) {
	bp := encodeBufs.Get().(*[]byte)
	b, ok := appendPlain((*bp)[:0], v, 0, false)
	var out []byte
	if ok {
		out = make([]byte, len(b))
		copy(out, b)
	}
	if cap(b) <= maxPooledEncodeBuf {
		*bp = b[:0]
		encodeBufs.Put(bp)
	}
	return out, ok
}

// IdentityJSON encodes v for telling values apart by what they are, as
// dedupe ids: JSON with sorted keys in which numbers are written by value,
// 4 and 4.0 alike, as every number was written before integers had their
// own kind (so stored ids still match).
func IdentityJSON(v any) ([]byte, error) { return AppendIdentityJSON(nil, v) }

// AppendIdentityJSON appends IdentityJSON(v) to dst.
func AppendIdentityJSON(dst []byte, v any) ([]byte, error) {
	v = Plain(v)
	if b, ok := appendPlain(dst, v, 0, true); ok {
		return b, nil
	}
	b, err := EncodeJSON(v)
	return append(dst, b...), err
}
