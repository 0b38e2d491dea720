package record

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

// Plain converts v to the decoded JSON form records hold (map[string]any,
// []any, string, int, Number, float64, bool, nil), so that a value computed by a step
// (an expression result, a YAML test value) looks the same to later steps,
// to encoders and to comparisons as one decoded from the input. Scalars that are already JSON are returned as they are.
// Objects and arrays are always copied, so the result never shares memory
// with the record it was computed from: two fields set from the same
// object can later be changed independently, and a field set to the whole
// value does not make the value contain itself.
//
// Other Go types become their natural JSON form: integers become int (a
// Number beyond int64), other numbers float64, times RFC 3339 strings, durations their text (1m30s), byte slices strings,
// and other slices and string-keyed maps arrays and objects.
func Plain(v any) any {
	switch t := v.(type) {
	case nil, string, int, float64, bool, Number:
		return v
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = Plain(e)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = Plain(e)
		}
		return a
	case int64:
		return int(t)
	case int32:
		return int(t)
	case uint64:
		return fromUint(t)
	case float32:
		return float64(t)
	case time.Time:
		return t.Format(time.RFC3339Nano)
	case time.Duration:
		return t.String()
	case []byte:
		return string(t)
	case map[string]string:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = e
		}
		return m
	}
	return fromReflect(v)
}

// fromUint keeps an unsigned integer exact: an int when it fits, else its
// text.
func fromUint(u uint64) any {
	if u <= math.MaxInt64 {
		return int(u)
	}
	return Number(strconv.FormatUint(u, 10))
}

func fromReflect(v any) any {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return fromUint(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return rv.Bool()
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil
		}
		a := make([]any, rv.Len())
		for i := range a {
			a[i] = Plain(rv.Index(i).Interface())
		}
		return a
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		if rv.IsNil() {
			return nil
		}
		m := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			m[it.Key().String()] = Plain(it.Value().Interface())
		}
		return m
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return Plain(rv.Elem().Interface())
	}
	// Anything else (structs from custom functions): take its JSON form.
	if b, err := EncodeJSON(v); err == nil {
		if d, err := DecodeJSON(b); err == nil {
			return d
		}
	}
	return fmt.Sprint(v)
}
