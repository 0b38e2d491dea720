package record

import (
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"
)

// Describe names a value's type and shows the value, shortened, for error
// messages: float64 (1.5), string ("yes"), object ({"a":1}).
func Describe(v any) string {
	var kind string
	switch t := v.(type) {
	case nil:
		return "nil"
	case string:
		return fmt.Sprintf("string (%s)", shorten(strconv.Quote(t)))
	case map[string]any:
		kind = "object"
	case []any:
		kind = "array"
	case Number:
		return fmt.Sprintf("integer beyond int64 (%s)", shorten(string(t)))
	case time.Time:
		return fmt.Sprintf("time (%s)", t.Format(time.RFC3339Nano))
	default:
		kind = reflect.TypeOf(v).String()
	}
	b, err := EncodeJSON(Plain(v))
	if err != nil {
		return fmt.Sprintf("%s (%v)", kind, v)
	}
	return fmt.Sprintf("%s (%s)", kind, shorten(string(b)))
}

// shorten cuts s to a length an error message can carry.
func shorten(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
