package record

import (
	"math"
	"strconv"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
)

// DecodeJSON keeps the kind of each number: integers are ints (exact up to
// int64, their text beyond), others float64; and encoding writes them back
// unchanged in kind, as Python's json does.
func TestNumbers(t *testing.T) {
	tests := []struct {
		in   string
		want any
		out  string // EncodeJSON of the decoded value
	}{
		{"4", 4, "4"},
		{"-17", -17, "-17"},
		{"0", 0, "0"},
		{"-0", 0, "0"}, // an integer, and integers have no -0
		{"4.0", 4.0, "4.0"},
		{"4.50", 4.5, "4.5"},
		{"-0.0", math.Copysign(0, -1), "-0.0"},
		{"1e2", 100.0, "100.0"},
		{"1E-3", 0.001, "0.001"},
		{"1e21", 1e21, "1e+21"},
		{"1.5e300", 1.5e300, "1.5e+300"},
		{"1e-7", 1e-7, "1e-7"},
		{"1e-400", 0.0, "0.0"},
		{"123456789012345678", 123456789012345678, "123456789012345678"},
		{"9223372036854775807", math.MaxInt64, "9223372036854775807"},
		{"-9223372036854775808", math.MinInt64, "-9223372036854775808"},
		{"9223372036854775808", Number("9223372036854775808"), "9223372036854775808"},
		{"-9223372036854775809", Number("-9223372036854775809"), "-9223372036854775809"},
		{"18446744073709551615", Number("18446744073709551615"), "18446744073709551615"},
		{strings.Repeat("7", 400), Number(strings.Repeat("7", 400)), strings.Repeat("7", 400)},
		{"9007199254740993", 9007199254740993, "9007199254740993"}, // not a float64
		{"9007199254740993.0", 9007199254740992.0, "9007199254740992.0"},
	}
	for _, tt := range tests {
		v, err := DecodeJSON([]byte(tt.in))
		if err != nil {
			t.Errorf("DecodeJSON(%s): %v", tt.in, err)
			continue
		}
		if !sameJSON(v, tt.want) {
			t.Errorf("DecodeJSON(%s) = %#v, want %#v", tt.in, v, tt.want)
		}
		out, err := EncodeJSON(v)
		if err != nil || string(out) != tt.out {
			t.Errorf("EncodeJSON(DecodeJSON(%s)) = %s, %v; want %s", tt.in, out, err, tt.out)
		}
		// And what is written reads back as the same kind and value.
		back, err := DecodeJSON(out)
		if err != nil || !sameJSON(back, v) {
			t.Errorf("%s: %s reads back as %#v, %v", tt.in, out, back, err)
		}
	}
	for _, bad := range []string{"1e400", "-1e400", "1" + strings.Repeat("0", 400) + ".5", "01", "1.", ".5", "+1", "0x10", "NaN", "Infinity"} {
		if v, err := DecodeJSON([]byte(bad)); err == nil {
			t.Errorf("DecodeJSON(%s) = %#v, want an error", bad, v)
		}
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a":1,}`, `[1 2]`, "{\"a\":1}\x00", `"\x"`, `nul`} {
		_, err := DecodeJSON([]byte(in))
		if err == nil || !strings.Contains(err.Error(), ErrNotJSON.Error()) {
			t.Errorf("DecodeJSON(%q) = %v, want ErrNotJSON", in, err)
		}
	}
	// A float out of range says so in words for people, not for Go.
	for _, in := range []string{`{"id":7,"n":1e400}`, `[-1e400]`, `1` + strings.Repeat("0", 400) + `.5`} {
		_, err := DecodeJSON([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "is out of range") || strings.Contains(err.Error(), "Go ") {
			t.Errorf("DecodeJSON(%.40s) = %v, want the number named out of range", in, err)
		}
	}
	deep := strings.Repeat("[", maxDecodeDepth+1) + strings.Repeat("]", maxDecodeDepth+1)
	if _, err := DecodeJSON([]byte(deep)); err == nil || !strings.Contains(err.Error(), "deeper than") {
		t.Errorf("deep array: %v", err)
	}
	ok := strings.Repeat("[", maxDecodeDepth) + strings.Repeat("]", maxDecodeDepth)
	if _, err := DecodeJSON([]byte(ok)); err != nil {
		t.Errorf("array %d deep: %v", maxDecodeDepth, err)
	}
}

// asLibrary converts a value from DecodeJSON to what the JSON library
// decodes the same input to: every number a float64.
func asLibrary(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = asLibrary(e)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = asLibrary(e)
		}
		return a
	case int:
		return float64(t)
	case Number:
		f, _ := strconv.ParseFloat(string(t), 64)
		return f
	}
	return v
}

// hasHugeNumber reports whether v holds a Number too large for a float64,
// which the library rejects and DecodeJSON keeps.
func hasHugeNumber(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for _, e := range t {
			if hasHugeNumber(e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if hasHugeNumber(e) {
				return true
			}
		}
	case Number:
		_, err := strconv.ParseFloat(string(t), 64)
		return err != nil
	}
	return false
}

// sameAsLibrary is sameJSON with numbers compared by value, since the
// library makes -0 of "-0" where DecodeJSON has the integer 0.
func sameAsLibrary(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameAsLibrary(v, w) {
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
			if !sameAsLibrary(x[i], y[i]) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	}
	return a == b
}

// checkAgainstLibrary requires DecodeJSON to accept exactly what the JSON
// library accepts (but integers too large for a float64) and to decode it
// to the same value, numbers aside from their kind: the decoder replaced
// the library's and must not change what reaches a pipeline.
func checkAgainstLibrary(t *testing.T, in []byte) {
	t.Helper()
	got, err := DecodeJSON(in)
	var lib any
	libErr := json.Unmarshal(in, &lib)
	switch {
	case err != nil && libErr == nil:
		if !strings.Contains(err.Error(), "deeper than") {
			t.Fatalf("DecodeJSON(%q) fails (%v), the library gives %#v", in, err, lib)
		}
	case err == nil && libErr != nil:
		if !hasHugeNumber(got) {
			t.Fatalf("DecodeJSON(%q) = %#v, the library fails: %v", in, got, libErr)
		}
	case err == nil && !sameAsLibrary(asLibrary(got), lib):
		t.Fatalf("DecodeJSON(%q) = %#v, the library gives %#v", in, got, lib)
	}
}

func TestDecodeJSONMatchesLibrary(t *testing.T) {
	for _, in := range append(jsonEdgeCasesInternal, `{"a":"\ud800\u0041","b":"\udc00\ud800\udc00","c":"\ud83d"}`,
		"\"\xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf\"", `{"a":{"b":[1,2.5,-0,1e3,"x\u00e9"]},"a":null}`, `  [ ] `, `{"":""}`) {
		checkAgainstLibrary(t, []byte(in))
	}
}

var jsonEdgeCasesInternal = []string{
	`{"z":1,"a":{"y":[1,2,{"b":null,"a":false}],"x":{}},"m":[]}`,
	`[1e21,1e20,1e-7,0.000001,123456789012345678,-0,0.1,-1.5e300,5e-324,12345.678]`,
	`{"s":"\u2028\u2029 <>& é日本 \ud83d\ude00 \" \\ \/ \b\f\n\r\t \u0001 \u007f"}`,
	"{\"invalid_utf8\":\"a\xffb\"}",
	`{"dup":1,"dup":2}`,
	`"top-level string"`,
	`null`,
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range append(jsonEdgeCasesInternal, `{"a":"\ud800\u0041"}`, `[9223372036854775808,-0,4.0]`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAgainstLibrary(t, in)
		if v, err := DecodeJSON(in); err == nil {
			// What is written reads back the same, kinds included.
			out, err := EncodeJSON(v)
			if err != nil {
				t.Fatalf("EncodeJSON(DecodeJSON(%q)): %v", in, err)
			}
			back, err := DecodeJSON(out)
			if err != nil || !sameJSON(back, v) {
				t.Fatalf("%q encodes to %s, which reads back as %#v, %v", in, out, back, err)
			}
		}
	})
}
