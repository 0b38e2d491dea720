package record

import (
	"encoding/binary"
	"math/bits"
)

// skip checks the JSON value starting at i, nested depth levels deep, and
// returns the index after it, or -1 when it is not valid or is nested
// deeper than maxFieldsDepth (left to the full decoder).
//
// It is the check of every field a step does not read, so of most of
// every record: one loop with the nesting kept in a bit stack rather than
// a call per value, and the common tokens (plain ASCII strings,
// punctuation without white space around it) checked inline before the
// general scanners (str, ws) are called.
func (d *fieldDecoder) skip(i, depth int) int {
	b := d.b
	// objects has bit n set when the n-th open container is an object;
	// inObject is the bit of the innermost.
	var objects [maxFieldsDepth / 64]uint64
	n, inObject := 0, false
	limit := maxFieldsDepth - depth
value:
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		if i = d.skipString(i); i < 0 {
			return -1
		}
	case c-'0' <= 9 || c == '-':
		if i = d.number(i); i < 0 {
			return -1
		}
	case c == '{' || c == '[':
		if n >= limit {
			return -1
		}
		i++
		if i < len(b) && b[i] <= ' ' {
			i = d.ws(i)
		}
		if i < len(b) && b[i] == c+2 { // '}' or ']': empty
			i++
			break
		}
		inObject = c == '{'
		if inObject {
			objects[n>>6] |= 1 << (n & 63)
		} else {
			objects[n>>6] &^= 1 << (n & 63)
		}
		n++
		if inObject {
			goto key
		}
		goto value
	case c == 't':
		if i = d.literal(i, "true"); i < 0 {
			return -1
		}
	case c == 'f':
		if i = d.literal(i, "false"); i < 0 {
			return -1
		}
	case c == 'n':
		if i = d.literal(i, "null"); i < 0 {
			return -1
		}
	default:
		return -1
	}
	// After a value: the end of the outermost, or what follows it in its
	// container.
	for n > 0 {
		if i < len(b) && b[i] <= ' ' {
			i = d.ws(i)
		}
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i++
			if i < len(b) && b[i] <= ' ' {
				i = d.ws(i)
			}
			if inObject {
				goto key
			}
			goto value
		case '}':
			if !inObject {
				return -1
			}
		case ']':
			if inObject {
				return -1
			}
		default:
			return -1
		}
		i++
		n--
		if n > 0 {
			inObject = objects[(n-1)>>6]&(1<<((n-1)&63)) != 0
		}
	}
	return i
key:
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = d.skipString(i); i < 0 {
		return -1
	}
	if i < len(b) && b[i] <= ' ' {
		i = d.ws(i)
	}
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	i++
	if i < len(b) && b[i] <= ' ' {
		i = d.ws(i)
	}
	goto value
}

// plainString returns the index after the string whose quote is at i when
// it is plain ASCII without escapes, the common case, checked eight bytes
// at a time; otherwise -1, for str to scan it.
func plainString(b []byte, i int) int {
	for j := i + 1; j+8 <= len(b); j += 8 {
		if w := special8(binary.LittleEndian.Uint64(b[j:])); w != 0 {
			j += bits.TrailingZeros64(w) >> 3
			if b[j] == '"' {
				return j + 1
			}
			return -1
		}
	}
	return -1
}

// skipString returns the index after the string whose quote is at i, or
// -1 when it is not a valid JSON string.
func (d *fieldDecoder) skipString(i int) int {
	if end := plainString(d.b, i); end >= 0 {
		return end
	}
	end, flags := d.str(i)
	if flags&strBad != 0 {
		return -1
	}
	return end
}
