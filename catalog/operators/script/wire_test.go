package script

import (
	"bufio"
	"bytes"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/record"
)

// TestWireRoundTrip checks that values cross to a script host and back
// with their Go types: JSON's 4 (an int) and 4.0 (a float64) must stay
// apart, and an integer beyond int64 (a record.Number) must keep its text.
func TestWireRoundTrip(t *testing.T) {
	values := []any{
		nil, true, false,
		4, 4.0, -0.5, math.MaxInt64, math.MinInt64, int64(7), math.MaxFloat64, math.SmallestNonzeroFloat64,
		record.Number("123456789012345678901234567890"),
		"", "text", "é😀\x00", []byte("raw\xff"),
		[]any{}, []any{1, 2.0, "x", nil, []any{map[string]any{}}},
		map[string]any{"": nil, "a": map[string]any{"b": []any{true, record.Number("-99999999999999999999")}}, "__proto__": 1},
	}
	var e encoder
	if err := e.values(values); err != nil {
		t.Fatal(err)
	}
	msg, err := e.frame()
	if err != nil {
		t.Fatal(err)
	}
	payload, err := readFrame(bufio.NewReader(bytes.NewReader(msg)), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := decoder{b: payload}
	got, f := d.answer()
	if d.err != nil || f != nil || len(d.b) != 0 {
		t.Fatalf("decode: %v %v, %d bytes left", d.err, f, len(d.b))
	}
	if !reflect.DeepEqual(got, values) {
		t.Errorf("got  %#v\nwant %#v", got, values)
	}

	// Other Go types become their plain JSON form, as record.Plain makes it.
	if err := e.values([]any{int32(3), uint64(math.MaxUint64), float32(0.5), map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	msg, _ = e.frame()
	d = decoder{b: msg[4:]}
	got, _ = d.answer()
	want := []any{3, record.Number("18446744073709551615"), 0.5, map[string]any{"k": "v"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plain: got %#v, want %#v", got, want)
	}

	// A call: the record's key, value, timestamp (to the nanosecond) and
	// headers in order, repeated names included.
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	r := &record.Record{Key: "k", Value: map[string]any{"n": 1}, Timestamp: ts,
		Headers: []record.Header{{Key: "h", Value: []byte("1")}, {Key: "h", Value: []byte{}}}}
	if err := e.call(r); err != nil {
		t.Fatal(err)
	}
	msg, _ = e.frame()
	d = decoder{b: msg[5:]}
	back := d.call()
	if d.err != nil || back.Key != "k" || !reflect.DeepEqual(back.Value, r.Value) || !back.Timestamp.Equal(ts) ||
		!reflect.DeepEqual(back.Headers, r.Headers) {
		t.Errorf("call: got %+v (%v)", back, d.err)
	}
	if err := e.call(&record.Record{}); err != nil {
		t.Fatal(err)
	}
	msg, _ = e.frame()
	d = decoder{b: msg[5:]}
	if back := d.call(); d.err != nil || !back.Timestamp.IsZero() || back.Headers != nil {
		t.Errorf("empty call: got %+v (%v)", back, d.err)
	}

	// A failure, with a negative line (the config's position).
	e.failure(&failure{Reason: catalog.ReasonResource, Text: "went past", Line: -1, Col: 0})
	msg, _ = e.frame()
	d = decoder{b: msg[4:]}
	if _, f := d.answer(); d.err != nil || *f != (failure{Reason: catalog.ReasonResource, Text: "went past", Line: -1}) {
		t.Errorf("failure: got %+v (%v)", f, d.err)
	}
}

// TestWireRejectsGarbage checks that a malformed frame is an error, not a
// huge allocation or a panic: a host's answers are not trusted.
func TestWireRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{
		{msgValues, 0xff, 0xff, 0xff, 0xff, 0x0f},        // a count far past the bytes
		{msgValues, 1, tagArray, 0xff, 0xff, 0xff, 0x7f}, // an array longer than the frame
		{msgValues, 1, tagFloat, 1, 2},                   // a short float
		{msgValues, 1, 99},                               // an unknown tag
		{'x'},
		{},
	} {
		d := decoder{b: b}
		d.answer()
		if d.err == nil {
			t.Errorf("%v: no error", b)
		}
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff})), nil); err == nil {
		t.Error("a frame over the limit was read")
	}
}
