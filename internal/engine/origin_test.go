package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/record"
)

// The carried input round-trips, with or without a key, a value or
// headers, and a value equal to the repartition record's is not carried
// twice.
func TestOriginRoundTrip(t *testing.T) {
	ts := time.Date(2026, 1, 1, 10, 0, 0, 123e6, time.UTC)
	for _, m := range []Message{
		{Topic: "in", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte(`{"a":1}`), Timestamp: ts,
			Headers: []record.Header{{Key: "h", Value: []byte("v")}, {Key: "empty"}}},
		{Topic: "in", Offset: 0, Timestamp: ts},
		{Topic: "in", Key: []byte{}, Value: []byte("same"), Timestamp: ts},
	} {
		out := []byte("same")
		b := appendOrigin(nil, &m, out, MaxOutputBytes)
		got, err := decodeOrigin(b, &Message{Value: out})
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if got.Topic != m.Topic || got.Partition != m.Partition || got.Offset != m.Offset || !got.Timestamp.Equal(m.Timestamp) ||
			!bytes.Equal(got.Key, m.Key) || (got.Key == nil) != (m.Key == nil) || !bytes.Equal(got.Value, m.Value) || len(got.Headers) != len(m.Headers) {
			t.Errorf("round trip of %+v gave %+v", m, got)
		}
		if bytes.Equal(m.Value, out) && bytes.Contains(b, out) {
			t.Errorf("a value equal to the record's is carried again")
		}
	}
}

// A repartition record is written by the pipeline, but a producer with
// write access to the topic could forge one: a malformed header must not
// panic or allocate its claimed lengths, and the dead letter falls back to
// the record as read.
func TestOriginMalformed(t *testing.T) {
	good := appendOrigin(nil, &Message{Topic: "in", Key: []byte("k"), Value: []byte("v"), Headers: []record.Header{{Key: "h", Value: []byte("x")}}}, nil, MaxOutputBytes)
	cases := [][]byte{nil, {}, {9}, {originVersion}, {originVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		append(append([]byte(nil), good...), 0), good[:len(good)-1],
		{originVersion, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}}
	for i := range good {
		cases = append(cases, good[:i])
	}
	for _, b := range cases {
		if _, err := decodeOrigin(b, &Message{}); err == nil {
			t.Errorf("decodeOrigin(%x) accepted it", b)
		}
	}
}
