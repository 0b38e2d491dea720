package record

import (
	"testing"
	"time"
)

// Every expression result must come out in the decoded JSON form, with the
// exact Go types a JSON decoder produces (EqualJSON alone would hide ints).
func TestPlain(t *testing.T) {
	type point struct{ X int }
	tests := []struct {
		name    string
		in, out any
	}{
		{"int", 3, 3.0},
		{"int8", int8(-2), -2.0},
		{"uint", uint(7), 7.0},
		{"nested ints", map[string]any{"a": []any{1, map[string]any{"b": 2}}}, map[string]any{"a": []any{1.0, map[string]any{"b": 2.0}}}},
		{"typed slice", []int{1, 2}, []any{1.0, 2.0}},
		{"string map", map[string]string{"h": "v"}, map[string]any{"h": "v"}},
		{"time", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05Z"},
		{"duration", 90 * time.Second, "1m30s"},
		{"bytes", []byte("ab"), "ab"},
		{"nil slice", []int(nil), nil},
		{"pointer", func() any { x := 4; return &x }(), 4.0},
		{"struct", point{X: 1}, map[string]any{"X": 1.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plain(tt.in)
			if !EqualJSON(got, tt.out) || !exact(got) {
				t.Fatalf("Plain(%#v) = %#v, want %#v", tt.in, got, tt.out)
			}
		})
	}
}

func exact(v any) bool {
	switch t := v.(type) {
	case nil, string, float64, bool:
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
