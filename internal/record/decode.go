package record

import (
	"encoding/json"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDecodeDepth is the deepest nesting DecodeJSON accepts, the limit of
// encoding/json and of the JSON library before it, so that documents
// accepted before are accepted still.
const maxDecodeDepth = 10000

// Number is how a JSON integer outside int64's range is held: its text,
// exactly as written, so that it is written back byte for byte instead of
// being rounded to a float64. (It is encoding/json's Number, which JSON
// libraries also encode as its text.)
type Number = json.Number

// build decodes the valid-or-not value at i into the decoded JSON form and
// returns it with the index after it, or -1 when the input is not valid
// JSON there. Integers (no fraction, no exponent) become int, or Number
// beyond int64; other numbers float64; strings are unquoted as
// encoding/json does.
func (d *fieldDecoder) build(i, depth int) (any, int) {
	b := d.b
	if i >= len(b) {
		return nil, -1
	}
	switch c := b[i]; {
	case c == '"':
		end, flags := d.str(i)
		if flags&strBad != 0 {
			return nil, -1
		}
		return d.unquote(i, end, flags), end
	case c == '{':
		if depth > maxDecodeDepth {
			d.tooDeep = true
			return nil, -1
		}
		m := make(map[string]any)
		i = d.ws(i + 1)
		if i < len(b) && b[i] == '}' {
			return m, i + 1
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return nil, -1
			}
			end, flags := d.str(i)
			if flags&strBad != 0 {
				return nil, -1
			}
			key := d.unquote(i, end, flags)
			i = d.ws(end)
			if i >= len(b) || b[i] != ':' {
				return nil, -1
			}
			var v any
			if v, i = d.build(d.ws(i+1), depth+1); i < 0 {
				return nil, -1
			}
			m[key] = v // a later duplicate wins, as in encoding/json
			i = d.ws(i)
			if i >= len(b) {
				return nil, -1
			}
			if b[i] == '}' {
				return m, i + 1
			}
			if b[i] != ',' {
				return nil, -1
			}
			i = d.ws(i + 1)
		}
	case c == '[':
		if depth > maxDecodeDepth {
			d.tooDeep = true
			return nil, -1
		}
		a := []any{}
		i = d.ws(i + 1)
		if i < len(b) && b[i] == ']' {
			return a, i + 1
		}
		for {
			var v any
			if v, i = d.build(i, depth+1); i < 0 {
				return nil, -1
			}
			a = append(a, v)
			i = d.ws(i)
			if i >= len(b) {
				return nil, -1
			}
			if b[i] == ']' {
				return a, i + 1
			}
			if b[i] != ',' {
				return nil, -1
			}
			i = d.ws(i + 1)
		}
	case c == 't':
		return true, d.literal(i, "true")
	case c == 'f':
		return false, d.literal(i, "false")
	case c == 'n':
		return nil, d.literal(i, "null")
	case c == '-' || '0' <= c && c <= '9':
		end, float := d.scanNumber(i)
		if end < 0 {
			return nil, -1
		}
		v, ok := parseNumber(d.b[i:end], float)
		if !ok {
			return nil, -1
		}
		return v, end
	}
	return nil, -1
}

// unquote returns the string b[start:end] (quotes included) holds, given
// what str found in it. Escapes are resolved and invalid UTF-8 replaced by
// U+FFFD exactly as encoding/json does, lone surrogates included.
func (d *fieldDecoder) unquote(start, end, flags int) string {
	s := d.b[start+1 : end-1]
	if flags&strEscaped == 0 && (flags&strNonASCII == 0 || utf8.Valid(s)) {
		if d.copied != "" {
			return d.copied[start+1 : end-1]
		}
		return string(s)
	}
	out := make([]byte, 0, len(s)+2*utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				rr := hex4(s[r+1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != unicode.ReplacementChar {
							out = utf8.AppendRune(out, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				out = utf8.AppendRune(out, rr)
				continue
			default: // '"', '\\', '/'
				out = append(out, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			out = append(out, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			out = utf8.AppendRune(out, rr)
			r += size
		}
	}
	return string(out)
}

// hex4 reads the four hex digits str has checked.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r*16 + rune(c)
	}
	return r
}

// shortInt parses tok, an integer without fraction or exponent as the
// JSON grammar checked, when it has at most 18 digits, which cannot
// overflow int64.
func shortInt(tok []byte) (int, bool) {
	n := len(tok)
	if n > 18 && (n != 19 || tok[0] != '-') {
		return 0, false
	}
	neg := tok[0] == '-'
	var x int
	for _, c := range tok[btoi(neg):] {
		x = x*10 + int(c-'0')
	}
	if neg {
		x = -x
	}
	return x, true
}

// parseNumber decodes a number valid in the JSON grammar: an int when it
// has neither fraction nor exponent and fits in int64, a Number holding
// its text when it has neither but does not fit, and a float64 otherwise.
// It returns false for a float64 out of range. float says whether tok has
// a fraction or an exponent.
func parseNumber(tok []byte, float bool) (any, bool) {
	if !float {
		if x, ok := shortInt(tok); ok {
			return x, true
		}
		if x, err := strconv.ParseInt(bytesString(tok), 10, 64); err == nil {
			return int(x), true
		}
		return Number(tok), true
	}
	if f, ok := parseSimpleFloat(tok); ok {
		return f, true
	}
	f, err := strconv.ParseFloat(bytesString(tok), 64)
	return f, err == nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
