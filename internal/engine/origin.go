package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/sluicehq/sluice/internal/binread"
	"github.com/sluicehq/sluice/internal/record"
)

// HeaderInput carries a repartitioned record's original input (key,
// value, timestamp, headers and where it was read) through the
// repartition topic, so that a record failing in a later stage is
// dead-lettered as the input the pipeline read, as the DLQ promises, not
// as the repartition record. Stages strip it when they read the record:
// operators, expressions and outputs never see it.
const HeaderInput = "sluice.input"

// originVersion is the first byte of an encoded origin.
const originVersion = 1

// Flags of an encoded origin.
const (
	originKey       = 1 << iota // the input had a key
	originValue                 // the input had a value, which follows
	originSameValue             // the input's value is the repartition record's
)

// appendOrigin encodes m, read from m.Topic, as the origin of a record
// whose value is out.
func appendOrigin(b []byte, m *Message, out []byte, maxBytes int) []byte {
	var flags byte
	if m.Key != nil {
		flags |= originKey
	}
	switch {
	case m.Value == nil:
	case bytes.Equal(m.Value, out):
		flags |= originSameValue
	case len(m.Value)+len(out) <= maxBytes:
		flags |= originValue
	}
	b = append(b, originVersion, flags)
	b = binary.AppendVarint(b, m.Timestamp.UnixMilli())
	b = appendBytes(b, []byte(m.Topic))
	b = binary.AppendVarint(b, int64(m.Partition))
	b = binary.AppendVarint(b, m.Offset)
	if flags&originKey != 0 {
		b = appendBytes(b, m.Key)
	}
	if flags&originValue != 0 {
		b = appendBytes(b, m.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Headers)))
	for _, h := range m.Headers {
		b = appendBytes(b, []byte(h.Key))
		b = appendBytes(b, h.Value)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errBadOrigin = errors.New("malformed " + HeaderInput + " header")

// decodeOrigin decodes an origin encoded by appendOrigin for a repartition
// record m. A value too large to carry beside the record's own is m's
// value.
func decodeOrigin(b []byte, m *Message) (Message, error) {
	r := &binread.Reader{B: b}
	if v := r.Byte(); v != originVersion {
		return Message{}, errBadOrigin
	}
	flags := r.Byte()
	var o Message
	o.Timestamp = time.UnixMilli(r.Varint()).UTC()
	o.Topic = string(readBytes(r))
	o.Partition = int32(r.Varint())
	o.Offset = r.Varint()
	if flags&originKey != 0 {
		o.Key = readBytes(r)
	}
	switch {
	case flags&originValue != 0:
		o.Value = readBytes(r)
	case flags&originSameValue != 0:
		o.Value = m.Value
	}
	n := r.Uvarint()
	if n > uint64(len(b)) {
		return Message{}, errBadOrigin
	}
	for range n {
		o.Headers = append(o.Headers, record.Header{Key: string(readBytes(r)), Value: readBytes(r)})
	}
	if r.Err != nil || len(r.B) != 0 {
		return Message{}, errBadOrigin
	}
	return o, nil
}

// readBytes reads a length-prefixed byte string (a copy: m's buffers may
// be reused).
func readBytes(r *binread.Reader) []byte {
	n := r.Uvarint()
	if r.Err != nil || n > uint64(len(r.B)) {
		r.Fail("length")
		return nil
	}
	v := bytes.Clone(r.B[:n])
	r.B = r.B[n:]
	return v
}

// originHeader returns the value of the HeaderInput header of hs.
func originHeader(hs []record.Header) ([]byte, bool) {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == HeaderInput {
			return hs[i].Value, true
		}
	}
	return nil, false
}

// withoutOrigin returns hs without HeaderInput, sharing hs when it has none.
func withoutOrigin(hs []record.Header) []record.Header {
	if _, ok := originHeader(hs); !ok {
		return hs
	}
	out := make([]record.Header, 0, len(hs)-1)
	for _, h := range hs {
		if h.Key != HeaderInput {
			out = append(out, h)
		}
	}
	return out
}
