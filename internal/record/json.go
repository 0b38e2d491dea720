package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"

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

// DecodeJSON decodes one JSON document into a generic value: objects become
// map[string]any, arrays []any, numbers float64.
func DecodeJSON(b []byte) (any, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	return v, nil
}

// AppendJSON appends the JSON encoding of v to dst. Object keys come out
// sorted, so the same value always encodes to the same bytes, and <, > and &
// are not HTML-escaped. (goccy's MarshalNoEscape is about escape analysis and
// does escape HTML, hence MarshalWithOption.)
func AppendJSON(dst []byte, v any) ([]byte, error) {
	if out, ok := appendPlain(dst, v, 0); ok {
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

// EqualJSON reports whether two decoded values are the same JSON value.
func EqualJSON(a, b any) bool {
	x, err1 := EncodeJSON(Plain(a))
	y, err2 := EncodeJSON(Plain(b))
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
