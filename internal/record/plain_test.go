package record

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Every expression result must come out in the decoded JSON form, with the
// exact Go types DecodeJSON produces (EqualJSON alone would hide a float64
// where an int belongs).
func TestPlain(t *testing.T) {
	type point struct{ X int }
	tests := []struct {
		name    string
		in, out any
	}{
		{"int", 3, 3},
		{"int8", int8(-2), -2},
		{"int64", int64(-2), -2},
		{"uint", uint(7), 7},
		{"huge uint64", uint64(1 << 63), Number("9223372036854775808")},
		{"float32", float32(1.5), 1.5},
		{"nested ints", map[string]any{"a": []any{1, map[string]any{"b": int64(2)}}}, map[string]any{"a": []any{1, map[string]any{"b": 2}}}},
		{"typed slice", []int{1, 2}, []any{1, 2}},
		{"float slice", []float64{1, 2}, []any{1.0, 2.0}},
		{"string map", map[string]string{"h": "v"}, map[string]any{"h": "v"}},
		{"time", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05Z"},
		{"duration", 90 * time.Second, "1m30s"},
		{"bytes", []byte("ab"), "ab"},
		{"nil slice", []int(nil), nil},
		{"pointer", func() any { x := 4; return &x }(), 4},
		{"struct", point{X: 1}, map[string]any{"X": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plain(tt.in)
			if !sameJSON(got, tt.out) || !exact(got) {
				t.Fatalf("Plain(%#v) = %#v, want %#v", tt.in, got, tt.out)
			}
		})
	}
}

func exact(v any) bool {
	switch t := v.(type) {
	case nil, string, int, Number, float64, bool:
		return true
	case map[string]any:
		for _, e := range t {
			if !exact(e) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range t {
			if !exact(e) {
				return false
			}
		}
		return true
	}
	return false
}

// Objects are copied so that no two fields share memory.
func TestFromCopies(t *testing.T) {
	in := map[string]any{"a": []any{1.0}}
	out := Plain(in).(map[string]any)
	out["a"].([]any)[0] = 2.0
	if in["a"].([]any)[0] != 1.0 {
		t.Fatal("From returned shared memory")
	}
}

// EncodedKey reuses the bytes the key was set from only while the key is
// still that string, and otherwise encodes the key as KeyBytes does.
func TestEncodedKey(t *testing.T) {
	raw := []byte("truck-1")
	r := &Record{}
	r.SetRawKey(raw)
	if b, err := r.EncodedKey(); err != nil || &b[0] != &raw[0] {
		t.Fatalf("EncodedKey() = %q, %v; want the raw bytes themselves", b, err)
	}
	c := r.Clone()
	for _, k := range []any{"truck-2", 42.0, nil, map[string]any{"a": 1.0}, "truck-1"} {
		c.Key = k
		want, werr := KeyBytes(k)
		got, gerr := c.EncodedKey()
		if string(got) != string(want) || (werr == nil) != (gerr == nil) || (want == nil) != (got == nil) {
			t.Errorf("key %#v: EncodedKey() = %q, %v; KeyBytes gives %q, %v", k, got, gerr, want, werr)
		}
	}
	empty := &Record{}
	empty.SetRawKey([]byte{})
	if b, err := empty.EncodedKey(); err != nil || b == nil || len(b) != 0 {
		t.Errorf("empty key: %q, %v", b, err)
	}
}

// EqualJSON compares numbers by value, whatever their kind, and everything
// else exactly.
func TestEqualJSON(t *testing.T) {
	tests := []struct {
		a, b any
		eq   bool
	}{
		{36, 36.0, true},
		{map[string]any{"kmh": 36}, map[string]any{"kmh": 36.0}, true},
		{[]any{1, 2.5}, []any{1.0, 2.5}, true},
		{Number("9223372036854775808"), 9223372036854775808.0, true},
		{Number("9223372036854775809"), 9223372036854775808.0, false},
		{Number("100"), 100, true},
		{0, math.Copysign(0, -1), true},
		{1, "1", false},
		{1, 1.5, false},
		{nil, 0, false},
		{map[string]any{"a": 1}, map[string]any{"a": 1, "b": nil}, false},
		{"x", "x", true},
		{math.NaN(), math.NaN(), false},
	}
	for _, tt := range tests {
		if got := EqualJSON(tt.a, tt.b); got != tt.eq {
			t.Errorf("EqualJSON(%#v, %#v) = %v, want %v", tt.a, tt.b, got, tt.eq)
		}
		if got := EqualJSON(tt.b, tt.a); got != tt.eq {
			t.Errorf("EqualJSON(%#v, %#v) = %v, want %v", tt.b, tt.a, got, tt.eq)
		}
	}
}

// A key is the same bytes, and so goes to the same partition, whether its
// number came as an int or a float64, as every number did before ints.
func TestKeyBytesNumbers(t *testing.T) {
	for _, tt := range []struct {
		a, b any
		want string
	}{
		{4, 4.0, "4"},
		{-12, -12.0, "-12"},
		{int64(1) << 53, float64(1 << 53), "9007199254740992"},
	} {
		x, _ := KeyBytes(tt.a)
		y, _ := KeyBytes(tt.b)
		if string(x) != tt.want || string(y) != tt.want {
			t.Errorf("KeyBytes(%#v) = %s, KeyBytes(%#v) = %s, want %s", tt.a, x, tt.b, y, tt.want)
		}
	}
	if b, _ := KeyBytes(Number("18446744073709551616")); string(b) != "18446744073709551616" {
		t.Errorf("KeyBytes(Number) = %s", b)
	}
}

func TestDescribe(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{1.5, "float64 (1.5)"},
		{4.0, "float64 (4.0)"},
		{3, "int (3)"},
		{"yes", `string ("yes")`},
		{nil, "nil"},
		{true, "bool (true)"},
		{map[string]any{"a": 1}, `object ({"a":1})`},
		{[]any{1, "x"}, `array ([1,"x"])`},
		{Number("9223372036854775808"), "integer beyond int64 (9223372036854775808)"},
		{strings.Repeat("é", 100), `string ("` + strings.Repeat("é", 29) + `…)`},
	} {
		if got := Describe(tt.v); got != tt.want {
			t.Errorf("Describe(%#v) = %s, want %s", tt.v, got, tt.want)
		}
	}
}
