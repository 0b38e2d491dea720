package record

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"

	json "github.com/goccy/go-json"
)

// The JSON library was chosen on a benchmark (see docs/performance.md and
// BenchmarkJSONLibraries); everything in Sluice goes through these functions so
// that the choice stays in one place.
type jsonCodec struct{}

var encoder jsonCodec

func (jsonCodec) encode(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetEscapeHTML(false)
	return e.Encode(v)
}

// ErrNotJSON wraps every JSON decoding failure, so callers can route such
// records to the DLQ with reason "decode".
var ErrNotJSON = errors.New("not valid JSON")

// DecodeJSON decodes one JSON document into a generic value: objects
// become map[string]any, arrays []any, strings string. Numbers keep their
// kind, as in Python: one without a fraction or an exponent is an int (the
// type of integer constants in expressions, so id % 2 works), or, beyond
// int64, a Number holding its exact text; any other is a float64.
//
// The decoder is Sluice's own (decode.go), sharing its scanner with
// DecodeFields; the JSON library only words the error for invalid input.
func DecodeJSON(b []byte) (any, error) {
	d := fieldDecoder{b: b, copied: string(b)}
	v, i := d.build(d.ws(0), 1)
	if i >= 0 && d.ws(i) == len(b) {
		return v, nil
	}
	if d.tooDeep {
		return nil, fmt.Errorf("%w: nested deeper than %d levels", ErrNotJSON, maxDecodeDepth)
	}
	var lib any
	if err := json.Unmarshal(b, &lib); err != nil {
		// Into an any, the only type error is a number no float64 holds;
		// the library words it for Go programmers ("into Go struct field
		// .n of type float64").
		if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) && strings.HasPrefix(te.Value, "number ") {
			return nil, fmt.Errorf("%w: %s is out of range (a number with a fraction or an exponent must be within ±1.8e308)", ErrNotJSON, te.Value)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	// The library accepts what the grammar does not (it has been lenient
	// about trailing NUL bytes, for one): still invalid.
	return nil, fmt.Errorf("%w: invalid JSON", ErrNotJSON)
}

// AppendJSON appends the JSON encoding of v to dst. Object keys come out
// sorted, so the same value always encodes to the same bytes, and <, > and &
// are not HTML-escaped. (goccy's MarshalNoEscape is about escape analysis and
// does escape HTML, hence MarshalWithOption.)
func AppendJSON(dst []byte, v any) ([]byte, error) {
	if out, ok := appendPlain(dst, v, 0, false); ok {
		return out, nil
	}
	b, err := json.MarshalWithOption(v, json.DisableHTMLEscape())
	if err != nil {
		return dst, fmt.Errorf("encode JSON: %w", err)
	}
	return append(dst, b...), nil
}

// EncodeJSON returns the JSON encoding of v. Values in decoded JSON form
// (what records hold) are encoded by appendPlain, which writes the same
// bytes as the library without its reflection and buffering; anything else
// goes to the library.
func EncodeJSON(v any) ([]byte, error) {
	if b, ok := encodePlain(v); ok {
		return b, nil
	}
	b, err := json.MarshalWithOption(v, json.DisableHTMLEscape())
	if err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return b, nil
}

// EqualJSON reports whether two values are the same JSON value once in
// decoded form (Plain). Numbers compare by value, whatever their kind, so
// 36 equals 36.0: a test expecting {kmh: 36} passes on an output 36.0.
func EqualJSON(a, b any) bool { return equalPlain(Plain(a), Plain(b)) }

func equalPlain(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalPlain(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalPlain(x[i], y[i]) {
				return false
			}
		}
		return true
	case int, float64, Number:
		p, ok1 := exactNumber(a)
		q, ok2 := exactNumber(b)
		return ok1 && ok2 && p.Cmp(q) == 0
	case string, bool, nil:
		return a == b
	}
	return false
}

// exactNumber returns the exact value of a decoded number, or false for
// anything else (NaN and infinities included, which are not JSON).
func exactNumber(v any) (*big.Rat, bool) {
	switch t := v.(type) {
	case int:
		return new(big.Rat).SetInt64(int64(t)), true
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, false
		}
		return new(big.Rat).SetFloat64(t), true
	case Number:
		return new(big.Rat).SetString(string(t))
	}
	return nil, false
}
