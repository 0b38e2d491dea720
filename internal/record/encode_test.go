package record

import (
	"math"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
)

// libraryJSON is the encoding EncodeJSON used before appendPlain: the
// library's, which appendPlain must match byte for byte.
func libraryJSON(v any) ([]byte, error) {
	return json.MarshalWithOption(v, json.DisableHTMLEscape())
}

// reference is v as the library must see it to write what EncodeJSON
// writes: every whole float64 (in decoded JSON form) as a Number with ".0"
// added to the library's text, since EncodeJSON keeps a float a float.
func reference(v any) any {
	switch t := v.(type) {
	case float64:
		b, err := libraryJSON(t)
		if err != nil || t != math.Trunc(t) || strings.ContainsAny(string(b), ".eE") {
			return v
		}
		return Number(string(b) + ".0")
	case map[string]any:
		if t == nil {
			return v
		}
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = reference(e)
		}
		return m
	case []any:
		if t == nil {
			return v
		}
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = reference(e)
		}
		return a
	}
	return v
}

func checkEncode(t *testing.T, v any) {
	t.Helper()
	want, werr := libraryJSON(reference(v))
	got, gerr := EncodeJSON(v)
	if (werr != nil) != (gerr != nil) || string(got) != string(want) {
		t.Fatalf("EncodeJSON(%#v) = %q, %v; the library gives %q, %v", v, got, gerr, want, werr)
	}
	app, aerr := AppendJSON([]byte("prefix:"), v)
	if werr == nil && (aerr != nil || string(app) != "prefix:"+string(want)) {
		t.Fatalf("AppendJSON(%#v) = %q, %v; want prefix:%q", v, app, aerr, want)
	}
}

func TestEncodeJSONMatchesLibrary(t *testing.T) {
	var allControl strings.Builder
	for c := range 0x80 {
		allControl.WriteByte(byte(c))
	}
	values := []any{
		nil, true, false, "", "plain", "<html> & 'quotes' \"dq\" back\\slash /",
		allControl.String(), "héllo ✓ 🚀", "bad \xff\xfe utf8 \xc3", "sep \u2028 \u2029 end", "\u007f\u0080\u00a0",
		0.0, math.Copysign(0, -1), 1.0, -1.5, 3.6, 85.32, 1e3, 1e20, 1e21, 1e-6, 1e-7, 123456789012345678.0,
		1.2345678901234568e+29, math.MaxFloat64, math.SmallestNonzeroFloat64, -2.5e-300, 0.1 + 0.2,
		math.NaN(), math.Inf(1), math.Inf(-1),
		map[string]any{}, []any{}, map[string]any(nil), []any(nil),
		map[string]any{"b": 1.0, "a": "x", "A": true, "é": nil, "": []any{1.0, "2", map[string]any{"z": 0.0, "y": math.Copysign(0, -1)}}},
		map[string]any{"k\"ey": 1.0, "k\u2028": 2.0, "<k>": 3.0, "k\xff": 4.0, "\x01": 5.0},
		map[string]any{"nan": math.NaN()},
		[]any{1.0, []any{map[string]any{"deep": []any{nil, false}}}},
		map[string]any{"n": 1, "i64": int64(2), "s": []string{"a"}, "m": map[string]string{"x": "y"}}, // other Go types
		42, int64(-7), "x", 0, -1, math.MaxInt64, math.MinInt64, Number("18446744073709551616"), Number("-1.5e3"),
		map[string]any{"i": 4, "f": 4.0, "n": Number("123456789012345678901234567890"), "neg": math.Copysign(0, -1)},
	}
	for i := range 20 {
		values = append(values, map[string]any{strings.Repeat("k", i): float64(i) * 1.1, "z" + strings.Repeat("a", i): i%2 == 0})
	}
	big := map[string]any{}
	for i := range 40 {
		big[string(rune('A'+i))] = float64(i)
	}
	values = append(values, big)
	// Objects up to 16 members are sorted by insertion, larger ones by
	// slices.SortFunc (sortEntries); keys sharing prefixes, around the bound.
	for _, n := range []int{9, 15, 16, 17} {
		m := map[string]any{}
		for i := range n {
			m[strings.Repeat("ab", i%3)+string(rune('z'-i))+strings.Repeat("a", i%2)] = i
		}
		values = append(values, m)
	}
	for _, v := range values {
		checkEncode(t, v)
	}
}

func FuzzEncodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":"x","c":true,"d":null,"e":[1,2.5,-0],"f":{"g":1e-7,"h":1e21}}`,
		`"\u2028\u0001\b\f\n\r\t\"\\"`, `[1e300,-1e-300,0.000001,123456789012345678901]`, `{"é":"✓","\ud800":"x"}`,
	} {
		f.Add([]byte(s), "str \xff")
	}
	f.Fuzz(func(t *testing.T, in []byte, s string) {
		checkEncode(t, s)
		checkEncode(t, map[string]any{s: s})
		if v, err := DecodeJSON(in); err == nil {
			checkEncode(t, v)
		}
	})
}

// IdentityJSON writes numbers by value: ids 4 and 4.0 are the same id, as
// they were when every number was a float64.
func TestIdentityJSON(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{4, "4"},
		{4.0, "4"},
		{4.5, "4.5"},
		{"4", `"4"`},
		{map[string]any{"b": 2.0, "a": []any{1, 1.0}}, `{"a":[1,1],"b":2}`},
		{Number("18446744073709551616"), "18446744073709551616"},
		{1e21, "1e+21"},
	} {
		got, err := IdentityJSON(tt.v)
		if err != nil || string(got) != tt.want {
			t.Errorf("IdentityJSON(%#v) = %s, %v; want %s", tt.v, got, err, tt.want)
		}
	}
}
