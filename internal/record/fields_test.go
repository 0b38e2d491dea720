package record

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// sameJSON reports whether two decoded values are identical, down to the
// bits of numbers (so -0 differs from 0) and the bytes of strings.
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameJSON(v, w) {
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
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	default:
		return a == b
	}
}

// checkDecodeFields compares DecodeFields with DecodeJSON on one input:
// whenever DecodeFields answers, its result must be exactly DecodeJSON's
// entries for the names, and it must not answer for input DecodeJSON
// rejects.
func checkDecodeFields(t *testing.T, in []byte, names ...string) (fast bool) {
	t.Helper()
	f := NewFieldSet(names...)
	got, ok := DecodeFields(in, f)
	full, err := DecodeJSON(in)
	// The same through a reused map and Scratch, their values checked
	// before the Scratch is Reset.
	into := map[string]any{}
	var sc Scratch
	intoOK := DecodeFieldsInto(in, f, into, &sc)
	if intoOK != ok || ok && !sameJSON(into, got) {
		t.Fatalf("DecodeFieldsInto(%q, %q) = %#v, %v; DecodeFields gives %#v, %v", in, names, into, intoOK, got, ok)
	}
	sc.Reset()
	// And by position: the same values, nil for a name the object lacks.
	vals := make([]any, f.Len())
	slotsOK := DecodeFieldsSlots(in, f, vals, &sc)
	if slotsOK != ok {
		t.Fatalf("DecodeFieldsSlots(%q, %q) = %v; DecodeFields gives %v", in, names, slotsOK, ok)
	}
	for j, n := range f.Names() {
		if f.Index(n) != j {
			t.Fatalf("Index(%q) = %d, want %d", n, f.Index(n), j)
		}
		if ok && !sameJSON(vals[j], got[n]) {
			t.Fatalf("DecodeFieldsSlots(%q) field %q = %#v; DecodeFields gives %#v", in, n, vals[j], got[n])
		}
	}
	sc.Reset()
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("DecodeFields(%q) = %v, but DecodeJSON fails: %v", in, got, err)
	}
	obj, isObj := full.(map[string]any)
	if !isObj {
		t.Fatalf("DecodeFields(%q) answered for a %T", in, full)
	}
	want := map[string]any{}
	for _, n := range names {
		if v, ok := obj[n]; ok {
			want[n] = v
		}
	}
	if !sameJSON(got, want) {
		t.Fatalf("DecodeFields(%q, %q) = %#v, DecodeJSON gives %#v", in, names, got, want)
	}
	return true
}

// TestScratchValues checks that values held in a Scratch are the values
// decoded, of their kinds, and that Reset lets the storage be used again.
func TestScratchValues(t *testing.T) {
	f := NewFieldSet("i", "big", "neg", "f", "whole", "s", "esc", "n")
	in := []byte(`{"i":7,"big":123456789012,"neg":-300,"f":2.5,"whole":4.0,"s":"truck-1","esc":"a\u00e9","n":12345678901234567890123}`)
	var sc Scratch
	for range 3 {
		m := map[string]any{}
		if !DecodeFieldsInto(in, f, m, &sc) {
			t.Fatal("DecodeFieldsInto failed")
		}
		want := map[string]any{"i": 7, "big": 123456789012, "neg": -300, "f": 2.5, "whole": 4.0, "s": "truck-1", "esc": "aé", "n": Number("12345678901234567890123")}
		if !sameJSON(m, want) {
			t.Fatalf("got %#v, want %#v", m, want)
		}
		if _, ok := m["whole"].(float64); !ok {
			t.Fatalf("4.0 decoded as %T", m["whole"])
		}
		b, err := EncodeJSON(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b); got != `{"big":123456789012,"esc":"aé","f":2.5,"i":7,"n":12345678901234567890123,"neg":-300,"s":"truck-1","whole":4.0}` {
			t.Fatalf("encoded %s", got)
		}
		sc.Reset()
	}
}

func TestDecodeFields(t *testing.T) {
	names := []string{"a", "b", "é", "k"}
	tests := []struct {
		in   string
		fast bool // DecodeFields answers itself
	}{
		{`{"a":1,"b":"x","c":true}`, true},
		{`{}`, true},
		{` { "a" : 1 , "b" : [ 1 , { "c" : null } ] } `, true},
		{"\t{\"a\":\n1}\r\n", true},
		{`{"c":{"d":[1,2,{"e":"f"}]},"a":false}`, true},
		{`{"a":{"nested":{"x":[1,"y",null,true]}}}`, true},
		{`{"a":1,"a":2}`, true},         // duplicate keys: the last wins
		{`{"a":{"x":1},"a":"s"}`, true}, // duplicate with another type
		{`{"a":-0}`, true},
		{`{"a":-0.0,"b":0e0}`, true},
		{`{"a":1e3,"b":1E-3}`, true},
		{`{"a":1.5e+300,"b":-2.5e-300}`, true},
		{`{"a":1e-400}`, true}, // underflows to 0, as DecodeJSON has it
		{`{"a":123456789012345678901234567890}`, true},
		{`{"c":1.` + strings.Repeat("0", 400) + `1,"a":1}`, true},
		{`{"c":1` + strings.Repeat("0", 400) + `.5,"a":1}`, false}, // out of float64's range
		{`{"a":0.1,"b":9007199254740993}`, true},
		{`{"a":"héllo wörld ✓ 🚀"}`, true},
		{`{"é":"accent key"}`, true},
		{`{"a":"tab\there","b":"quote\"s","k":"\u00e9\ud83d\ude80"}`, true},
		{`{"a":"\ud800"}`, true},                 // lone surrogate: U+FFFD
		{`{"a":"bad ` + "\xff\xfe" + `"}`, true}, // invalid UTF-8: U+FFFD
		{`{"c":"bad ` + "\xff" + `","a":1}`, true},
		{`{"a":"\/"}`, true},
		{`{"c":"` + strings.Repeat("x", 1000) + `","a":1}`, true},
		{`{"\u0061":1}`, true},               // an escaped key is the name it spells
		{`{"` + "\xff" + `":1,"b":2}`, true}, // an invalid key is U+FFFD
		{`{"a":4,"b":4.0,"k":-0}`, true},
		{`{"a":9223372036854775807,"b":-9223372036854775808}`, true},
		{`{"a":9223372036854775808,"b":-9223372036854775809}`, true}, // Number
		{`{"a":` + strings.Repeat("9", 400) + `}`, true},             // Number
		{`{"c":` + strings.Repeat("9", 400) + `,"a":1}`, true},
		// Left to the full decoder.
		{`{"a":1e400}`, false},
		{`{"c":-1e400,"a":1}`, false},
		{`{"c":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, false},
		{`[1,2]`, false},
		{`"s"`, false},
		{`12`, false},
		{`null`, false},
		{``, false},
		// Invalid.
		{`{"a":1`, false},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`{a:1}`, false},
		{`{"a":01}`, false},
		{`{"a":.5}`, false},
		{`{"a":5.}`, false},
		{`{"a":+5}`, false},
		{`{"a":1e}`, false},
		{`{"a":-}`, false},
		{`{"a":tru}`, false},
		{`{"a":nul}`, false},
		{`{"a":[1,2,]}`, false},
		{`{"a":"x` + "\x01" + `"}`, false},
		{`{"c":"\x"}`, false},
		{`{"c":"\u12"}`, false},
		{`{"c":"\U0041"}`, false},
		{`{"a":1} x`, false},
		{`{"a":1}{"b":2}`, false},
		{"{\"a\":1}\x00", false},
		{"\xef\xbb\xbf{\"a\":1}", false},
		{"{\"a\":1\v}", false},
		{`{"a":"unterminated}`, false},
		{`{"c":{"d":1,}}`, false},
		{`{"c":{"d" 1}}`, false},
		{`{"c":[1 2]}`, false},
	}
	for _, tt := range tests {
		if got := checkDecodeFields(t, []byte(tt.in), names...); got != tt.fast {
			t.Errorf("DecodeFields(%q) answered: %v, want %v", tt.in, got, tt.fast)
		}
		// With no fields to decode, the object is checked by skip alone.
		if got := checkDecodeFields(t, []byte(tt.in)); got != tt.fast {
			t.Errorf("DecodeFields(%q) with no fields answered: %v, want %v", tt.in, got, tt.fast)
		}
	}
}

func TestDecodeFieldsLargeSet(t *testing.T) {
	var names []string
	for i := range 20 {
		names = append(names, string(rune('a'+i)))
	}
	if !checkDecodeFields(t, []byte(`{"a":1,"t":2,"z":3,"b":{"c":[]}}`), names...) {
		t.Fatal("not decoded")
	}
}

func FuzzDecodeFields(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":"x","c":true}`, `{"a":-0,"b":1e3}`, `{"a":{"b":[1,{"c":null}]},"a":"dup"}`,
		`{"a":"\u00e9\ud83d\ude80","b":"\ud800"}`, `{"a":"` + "\xff" + `"}`, `{"a":1e400}`, `[1]`, `{"a":1,}`,
		`{"vehicle_id":"truck-00042","speed":23.7,"lat":52.370216,"lon":4.895168,"heading":271,"fuel":0.62,"driver":{"id":"d-17","shift":"early"},"engine_on":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecodeFields(t, in, "a", "b", "speed", "driver", "")
		fast := checkDecodeFields(t, in)
		checkAgainstLibrary(t, in)
		// The check must not turn valid objects away either (each costs a
		// full decode): only nesting deeper than maxFieldsDepth, which
		// needs more bytes than this, and floats out of range, which
		// DecodeJSON rejects too.
		if v, err := DecodeJSON(in); err == nil && !fast && len(in) < 2*maxFieldsDepth {
			if _, isObj := v.(map[string]any); isObj {
				t.Fatalf("DecodeFields(%q) with no fields turned a valid object away", in)
			}
		}
	})
}

// parseSimpleFloat must agree with strconv.ParseFloat bit for bit wherever
// it answers.
func TestParseSimpleFloat(t *testing.T) {
	nums := []string{"0", "-0", "0.0", "-0.0", "1", "-1", "23.7", "52.370216", "4.895168", "0.62", "0.1", "0.2", "0.3",
		"123456789012345", "999999999999999", "0.000000000000001", "1.00000000000001", "9007199254740993",
		"1234567890123456", "1790000000000000", "9007199254740992", "9007199254740993", "18446744073709551615", "18446744073709551616", "0.9007199254740992", "1e3", "12.5e-1", "0.000000000000000000001", "3.141592653589793"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		d := rng.IntN(22) + 1
		var b []byte
		if rng.IntN(2) == 0 {
			b = append(b, '-')
		}
		dot := rng.IntN(d + 1)
		for j := range d {
			if j == dot && j > 0 {
				b = append(b, '.')
			}
			c := byte('0' + rng.IntN(10))
			if j == 0 && d > 1 && dot != 1 {
				c = byte('1' + rng.IntN(9))
			}
			b = append(b, c)
		}
		nums = append(nums, string(b))
	}
	for _, s := range nums {
		got, ok := parseSimpleFloat([]byte(s))
		if !ok {
			continue
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("parseSimpleFloat(%s) = %v, strconv gives %v (%v)", s, got, want, err)
		}
	}
}

// special8 must flag exactly the words with a byte str has to look at,
// and its lowest mark must be the first such byte.
func TestSpecial8(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	interesting := []byte{0, 1, 0x1f, 0x20, 0x21, '"', '#', '\\', 0x5b, 0x5d, 0x7e, 0x7f, 0x80, 0xff, 'x', 'a'}
	for range 200000 {
		var b [8]byte
		first := 8
		for j := range b {
			c := interesting[rng.IntN(len(interesting))]
			if rng.IntN(3) == 0 {
				c = byte(rng.IntN(256))
			}
			b[j] = c
			if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) && first == 8 {
				first = j
			}
		}
		w := uint64(0)
		for j := 7; j >= 0; j-- {
			w = w<<8 | uint64(b[j])
		}
		got := 8
		if m := special8(w); m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if got != first {
			t.Fatalf("special8(%q) marks byte %d first, want %d", b[:], got, first)
		}
	}
}

// digits must stop at the first byte that is not a decimal digit, whatever
// the bytes after it: every byte value at every place of a word, behind
// digits, with other bytes above it.
func TestDigits(t *testing.T) {
	for c := range 256 {
		for at := range 8 {
			for fill := 0; fill < 256; fill += 17 {
				b := []byte("5555555555")
				b[at] = byte(c)
				for j := at + 1; j < len(b); j++ {
					b[j] = byte(fill + 31*j)
				}
				want := 0
				for want < len(b) && '0' <= b[want] && b[want] <= '9' {
					want++
				}
				if got := digits(b, 0); got != want {
					t.Fatalf("digits(%q) = %d, want %d", b, got, want)
				}
			}
		}
	}
}
