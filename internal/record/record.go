// Package record defines the record every Sluice operator sees and the codecs
// that turn Kafka bytes into records and back.
//
// A record is decoded once when it enters a pipeline and encoded once when it
// leaves: operators work on the decoded Value and never re-parse bytes.
package record

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
	"unsafe"
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one decoded Kafka record flowing through a pipeline.
//
// Value is a decoded JSON value (map[string]any for objects, []any, string,
// int, Number, float64, bool or nil; see DecodeJSON) or, for raw input, a string. Key is usually a string;
// a key computed by an expression can be any JSON value.
type Record struct {
	Key       any
	Value     any
	Headers   []Header
	Timestamp time.Time

	// Where the record came from; empty for records an operator creates.
	Topic     string
	Partition int32
	Offset    int64

	// rawKey holds the bytes Key was set from by SetRawKey, so that an
	// unchanged key is written out again without a copy.
	rawKey []byte
	// rawValue holds the input bytes Value was decoded from, kept by a
	// stage whose steps never change values (see SetRawValue).
	rawValue []byte
}

// SetRawValue remembers the JSON bytes Value was decoded from, for a
// stage whose steps all pass values on unchanged: it writes them out
// again instead of encoding Value.
func (r *Record) SetRawValue(b []byte) { r.rawValue = b }

// RawValue returns the bytes given to SetRawValue, or nil.
func (r *Record) RawValue() []byte { return r.rawValue }

// SetRawKey sets Key to the string of b, and remembers b: EncodedKey
// returns b itself as long as Key is that string.
func (r *Record) SetRawKey(b []byte) {
	r.Key = string(b)
	r.rawKey = b
}

// SetRawKeyOwned is SetRawKey for bytes the record takes over: Key shares
// their memory, so nothing may change b afterwards.
func (r *Record) SetRawKeyOwned(b []byte) {
	r.Key = unsafe.String(unsafe.SliceData(b), len(b))
	r.rawKey = b
}

// SetRawKeyIn is SetRawKey for a record that is not kept once sc is
// Reset: Key's interface value is held in sc (see Scratch.String), and its
// string is a view of b rather than a copy, so b must not change before
// then.
func (r *Record) SetRawKeyIn(b []byte, sc *Scratch) {
	r.Key = sc.String(bytesString(b))
	r.rawKey = b
}

// EncodedKey returns KeyBytes(r.Key), reusing the bytes given to SetRawKey
// (without copying them) while the key is the string they hold. The result
// must be treated as read-only.
func (r *Record) EncodedKey() ([]byte, error) {
	if s, ok := r.Key.(string); ok && r.rawKey != nil && s == string(r.rawKey) {
		return r.rawKey, nil
	}
	return KeyBytes(r.Key)
}

// Object returns the value as a JSON object, or false when it is not one.
func (r *Record) Object() (map[string]any, bool) {
	m, ok := r.Value.(map[string]any)
	return m, ok
}

// Clone returns a copy of r whose Value can be changed without touching r.
// Objects and arrays are copied deeply; header values are shared and must be
// treated as read-only.
func (r *Record) Clone() *Record {
	c := *r
	c.Value = CloneValue(r.Value)
	if r.Headers != nil {
		c.Headers = append([]Header(nil), r.Headers...)
	}
	return &c
}

// CloneValue deep-copies a decoded JSON value.
func CloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = CloneValue(e)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = CloneValue(e)
		}
		return a
	default:
		return v
	}
}

// Header returns the value of the last header named key.
func (r *Record) Header(key string) ([]byte, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value, true
		}
	}
	return nil, false
}

// SetHeader replaces every header named key with one holding value.
func (r *Record) SetHeader(key string, value []byte) {
	hs := r.Headers[:0:0]
	for _, h := range r.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	r.Headers = append(hs, Header{Key: key, Value: value})
}

// HeaderMap returns the headers as a map, the last value winning, the way
// expressions see them.
func (r *Record) HeaderMap() map[string]string {
	m := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// KeyBytes encodes a key for Kafka: strings and byte slices as they are,
// nil as a null key, and any other value as JSON.
func KeyBytes(k any) ([]byte, error) {
	switch t := k.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(t), nil
	case []byte:
		return t, nil
	case float64:
		// 'f' and no ".0": a key 4 is the same bytes, and so goes to the
		// same partition, whether it is an int or a float64 (before ints
		// existed every number was a float64).
		return strconv.AppendFloat(nil, t, 'f', -1, 64), nil
	case Number:
		return []byte(t), nil
	case int:
		return strconv.AppendInt(nil, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(nil, t, 10), nil
	case bool:
		return strconv.AppendBool(nil, t), nil
	default:
		var buf bytes.Buffer
		if err := encoder.encode(&buf, k); err != nil {
			return nil, fmt.Errorf("encode key: %w", err)
		}
		return bytes.TrimRight(buf.Bytes(), "\n"), nil
	}
}

// KeyString renders a key the way tests and diffs show it.
func KeyString(k any) string {
	b, err := KeyBytes(k)
	if err != nil {
		return fmt.Sprint(k)
	}
	return string(b)
}
