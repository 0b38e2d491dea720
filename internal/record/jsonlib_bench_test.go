package record_test

// This file compares the JSON libraries Sluice could use for its record codec
// (see docs/performance.md, "Choosing the JSON library"). Sluice decodes each
// record value once into a generic value and encodes it once on output, with
// sorted object keys and no HTML escaping, so that is what is measured:
//
//	go test -run '^$' -bench BenchmarkJSONLibraries -benchmem -count 5 ./internal/record/
//
// TestJSONLibrariesRoundTrip checks that every library measured here produces
// the same bytes as encoding/json, so that the comparison is apples to apples.

import (
	"bytes"
	stdjson "encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/bytedance/sonic"
	goccy "github.com/goccy/go-json"
	jsoniter "github.com/json-iterator/go"
	segjson "github.com/segmentio/encoding/json"

	"github.com/sluicehq/sluice/internal/record"
)

// sampleRecord is a typical Kafka record value: ~200 bytes, 8 fields of
// strings, numbers, a bool and a small nested object, keys not in sorted
// order, and characters that encoding/json would HTML-escape by default.
const sampleRecord = `{"order_id":"ord-7f3a9c21","customer":"alice@example.com","amount":1234.56,"qty":3,"paid":true,"note":"<b>rush</b> & fragile","ts":1732278000123,"shipping":{"city":"Berlin","country":"DE","lat":52.52,"lon":13.405}}`

// jsonLib is one library under test: decode bytes to a generic value, and
// encode a generic value to freshly allocated bytes with sorted keys and no
// HTML escaping, using the library's fastest public API for that.
type jsonLib struct {
	name   string
	decode func([]byte) (any, error)
	encode func(any) ([]byte, error)
}

var (
	// Same as jsoniter.ConfigCompatibleWithStandardLibrary (sorted keys)
	// but without HTML escaping.
	jsoniterAPI = jsoniter.Config{
		EscapeHTML:             false,
		SortMapKeys:            true,
		ValidateJsonRawMessage: true,
	}.Froze()

	// Same as sonic.ConfigStd (sorted keys, copied strings, validated
	// strings) but without HTML escaping.
	sonicAPI = sonic.Config{
		EscapeHTML:       false,
		SortMapKeys:      true,
		CompactMarshaler: true,
		CopyString:       true,
		ValidateString:   true,
	}.Froze()

	segBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

var jsonLibs = []jsonLib{
	{
		name: "encoding_json",
		decode: func(b []byte) (any, error) {
			var v any
			err := stdjson.Unmarshal(b, &v)
			return v, err
		},
		encode: func(v any) ([]byte, error) {
			var buf bytes.Buffer
			e := stdjson.NewEncoder(&buf)
			e.SetEscapeHTML(false)
			if err := e.Encode(v); err != nil {
				return nil, err
			}
			return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
		},
	},
	{
		name: "goccy_go-json",
		decode: func(b []byte) (any, error) {
			var v any
			err := goccy.Unmarshal(b, &v)
			return v, err
		},
		// MarshalNoEscape is about escape analysis, not HTML: it still
		// escapes <, > and &, so the HTML option is needed.
		encode: func(v any) ([]byte, error) { return goccy.MarshalWithOption(v, goccy.DisableHTMLEscape()) },
	},
	{
		name: "json-iterator",
		decode: func(b []byte) (any, error) {
			var v any
			err := jsoniterAPI.Unmarshal(b, &v)
			return v, err
		},
		encode: func(v any) ([]byte, error) { return jsoniterAPI.Marshal(v) },
	},
	{
		name: "sonic",
		decode: func(b []byte) (any, error) {
			var v any
			err := sonicAPI.Unmarshal(b, &v)
			return v, err
		},
		encode: func(v any) ([]byte, error) { return sonicAPI.Marshal(v) },
	},
	{
		name: "segmentio",
		decode: func(b []byte) (any, error) {
			var v any
			err := segjson.Unmarshal(b, &v)
			return v, err
		},
		encode: func(v any) ([]byte, error) {
			p := segBufs.Get().(*[]byte)
			b, err := segjson.Append((*p)[:0], v, segjson.SortMapKeys)
			if err != nil {
				return nil, err
			}
			out := append([]byte(nil), b...)
			*p = b
			segBufs.Put(p)
			return out, nil
		},
	},
}

// sluiceLib is what the record package itself uses; it must agree with
// encoding/json too.
var sluiceLib = jsonLib{name: "record", decode: record.DecodeJSON, encode: record.EncodeJSON}

func stdRoundTrip(t *testing.T, in string) []byte {
	t.Helper()
	v, err := jsonLibs[0].decode([]byte(in))
	if err != nil {
		t.Fatalf("encoding/json decode: %v", err)
	}
	want, err := jsonLibs[0].encode(v)
	if err != nil {
		t.Fatalf("encoding/json encode: %v", err)
	}
	return want
}

// TestJSONLibrariesRoundTrip checks that every library round-trips the sample
// to exactly the bytes encoding/json produces (sorted keys, no HTML escaping),
// that decoded values do not alias the input buffer (Kafka clients reuse it),
// and that each library encodes a value decoded by encoding/json identically.
func TestJSONLibrariesRoundTrip(t *testing.T) {
	want := stdRoundTrip(t, sampleRecord)
	if !bytes.Contains(want, []byte("<b>rush</b> & fragile")) {
		t.Fatalf("reference output is HTML-escaped: %s", want)
	}
	stdValue, _ := jsonLibs[0].decode([]byte(sampleRecord))
	for _, lib := range append(jsonLibs, sluiceLib) {
		t.Run(lib.name, func(t *testing.T) {
			in := []byte(sampleRecord)
			v, err := lib.decode(in)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			for i := range in {
				in[i] = 'x' // a reused input buffer must not change v
			}
			got, err := lib.encode(v)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got = bytes.TrimSuffix(got, []byte("\n"))
			if !bytes.Equal(got, want) {
				t.Errorf("round trip differs from encoding/json\n got: %s\nwant: %s", got, want)
			}
			if lib.name == sluiceLib.name {
				// encoding/json decodes every number to a float64, and
				// the record codec writes a whole float64 with ".0"
				// (qty 3.0) so that it stays a float: not comparable.
				return
			}
			got2, err := lib.encode(stdValue)
			if err != nil {
				t.Fatalf("encode std value: %v", err)
			}
			if got2 = bytes.TrimSuffix(got2, []byte("\n")); !bytes.Equal(got2, want) {
				t.Errorf("encoding a value decoded by encoding/json differs\n got: %s\nwant: %s", got2, want)
			}
		})
	}
}

// jsonEdgeCases are inputs where JSON libraries are known to disagree. The
// library the record package uses must match encoding/json on all of them;
// for the other candidates differences are only logged (they inform the
// choice, see docs/performance.md).
var jsonEdgeCases = []string{
	`{"z":1,"a":{"y":[1,2,{"b":null,"a":false}],"x":{}},"m":[]}`,
	`[1e21,1e20,1e-7,0.000001,123456789012345678,-0,0.1,-1.5e300,5e-324,12345.678]`,
	`{"s":"\u2028\u2029 <>& é日本 \ud83d\ude00 \" \\ \/ \b\f\n\r\t \u0001 \u007f"}`,
	"{\"invalid_utf8\":\"a\xffb\"}",
	`{"dup":1,"dup":2}`,
	`"top-level string"`,
	`null`,
}

// sluiceEdgeCases are the round trips of jsonEdgeCases where the record
// codec differs from encoding/json on purpose: numbers keep their kind, so
// an integer is exact (123456789012345678, and -0 is the integer 0) and a
// whole float64 keeps its ".0".
var sluiceEdgeCases = map[int]string{
	1: `[1e+21,100000000000000000000.0,1e-7,0.000001,123456789012345678,0,0.1,-1.5e+300,5e-324,12345.678]`,
}

func TestJSONLibrariesEdgeCases(t *testing.T) {
	for i, in := range jsonEdgeCases {
		for _, lib := range append(jsonLibs, sluiceLib) {
			want := stdRoundTrip(t, in)
			if s, ok := sluiceEdgeCases[i]; ok && lib.name == sluiceLib.name {
				want = []byte(s)
			}
			t.Run(fmt.Sprintf("%d/%s", i, lib.name), func(t *testing.T) {
				report := t.Logf
				if lib.name == sluiceLib.name {
					report = t.Errorf
				}
				v, err := lib.decode([]byte(in))
				if err != nil {
					report("%s: decode %q: %v", lib.name, in, err)
					return
				}
				got, err := lib.encode(v)
				if err != nil {
					report("%s: encode %q: %v", lib.name, in, err)
					return
				}
				if got = bytes.TrimSuffix(got, []byte("\n")); !bytes.Equal(got, want) {
					report("%s differs from encoding/json\n got: %s\nwant: %s", lib.name, got, want)
				}
			})
		}
	}
}

// sink keeps results alive so the compiler cannot drop the work.
var sink any

func BenchmarkJSONLibraries(b *testing.B) {
	in := []byte(sampleRecord)
	for _, lib := range append(jsonLibs, sluiceLib) {
		value, err := lib.decode(in)
		if err != nil {
			b.Fatalf("%s: decode: %v", lib.name, err)
		}
		b.Run(lib.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				v, err := lib.decode(in)
				if err != nil {
					b.Fatal(err)
				}
				sink = v
			}
		})
		b.Run(lib.name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				out, err := lib.encode(value)
				if err != nil {
					b.Fatal(err)
				}
				sink = out
			}
		})
		b.Run(lib.name+"/roundtrip", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				v, err := lib.decode(in)
				if err != nil {
					b.Fatal(err)
				}
				out, err := lib.encode(v)
				if err != nil {
					b.Fatal(err)
				}
				sink = out
			}
		})
	}
}

// BenchmarkDecodeFields measures the partial decoder on the sample with the
// two fields a typical filter and map read.
func BenchmarkDecodeFields(b *testing.B) {
	in := []byte(sampleRecord)
	f := record.NewFieldSet("amount", "qty")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		m, ok := record.DecodeFields(in, f)
		if !ok {
			b.Fatal("not decoded")
		}
		sink = m
	}
}

// BenchmarkValidateTelemetry measures checking the runtime benchmarks'
// ~200-byte telemetry record when a step reads none of its fields (a
// count): the whole cost is the JSON grammar check.
func BenchmarkValidateTelemetry(b *testing.B) {
	in := []byte(`{"vehicle_id":"truck-00042","speed":23.7,"lat":52.370216,"lon":4.895168,"heading":271,"fuel":0.62,"driver":{"id":"d-17","shift":"early"},"engine_on":true,"sent_us":1764990000000000,"note":"xxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	f := record.NewFieldSet()
	m := map[string]any{}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if !record.DecodeFieldsInto(in, f, m, nil) {
			b.Fatal("not valid")
		}
	}
}
