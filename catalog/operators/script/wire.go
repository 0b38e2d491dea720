package script

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/record"
)

// The wire protocol between an operator and its script hosts (isolate.go):
// frames of a 4-byte big-endian length and a payload, whose first byte
// says what it is. The parent sends one init and then calls; the host
// answers each with values or a failure.
//
// Values are encoded with a tag per value so that they come back with
// the very Go type they had: an int stays an int and a float64 with a
// whole value stays a float64 (JSON's 4 and 4.0 differ for users), a
// record.Number (an integer beyond int64) keeps its text.
const (
	msgInit    = 'i' // name, source, timeout, memory
	msgCall    = 'c' // key, value, timestamp, headers
	msgValues  = 'v' // a count and that many values; none for an init
	msgFailure = 'f' // reason, text, line, column
)

const (
	tagNil = iota
	tagFalse
	tagTrue
	tagInt
	tagInt64
	tagFloat
	tagNumber
	tagString
	tagBytes
	tagArray
	tagObject
)

// maxFrame bounds a frame either side reads. A script's results are far
// smaller (the engine writes records of up to 1 MiB); a record's value is
// bounded by Kafka's message size.
const maxFrame = 64 << 20

// maxWireDepth bounds the nesting of decoded values: a record holds at
// most record's decoding depth, a result at most maxDepth.
const maxWireDepth = 10001

var errFrame = errors.New("malformed script host frame")

// encoder builds one frame.
type encoder struct {
	b []byte
}

func (e *encoder) reset(kind byte) {
	e.b = append(e.b[:0], 0, 0, 0, 0, kind)
}

func (e *encoder) uvarint(u uint64) { e.b = binary.AppendUvarint(e.b, u) }
func (e *encoder) varint(i int64)   { e.b = binary.AppendVarint(e.b, i) }

func (e *encoder) string(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// value appends v, a decoded JSON value; other Go types are first made
// plain (record.Plain), as operators' results are.
func (e *encoder) value(v any, depth int) error {
	if depth > maxWireDepth {
		return fmt.Errorf("a value nested deeper than %d levels", maxWireDepth)
	}
	switch t := v.(type) {
	case nil:
		e.b = append(e.b, tagNil)
	case bool:
		if t {
			e.b = append(e.b, tagTrue)
		} else {
			e.b = append(e.b, tagFalse)
		}
	case int:
		e.b = append(e.b, tagInt)
		e.varint(int64(t))
	case int64:
		e.b = append(e.b, tagInt64)
		e.varint(t)
	case float64:
		e.b = append(e.b, tagFloat)
		e.b = binary.BigEndian.AppendUint64(e.b, math.Float64bits(t))
	case record.Number:
		e.b = append(e.b, tagNumber)
		e.string(string(t))
	case string:
		e.b = append(e.b, tagString)
		e.string(t)
	case []byte:
		e.b = append(e.b, tagBytes)
		e.string(string(t))
	case []any:
		e.b = append(e.b, tagArray)
		e.uvarint(uint64(len(t)))
		for _, x := range t {
			if err := e.value(x, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		e.b = append(e.b, tagObject)
		e.uvarint(uint64(len(t)))
		for k, x := range t {
			e.string(k)
			if err := e.value(x, depth+1); err != nil {
				return err
			}
		}
	default:
		p := record.Plain(v)
		switch p.(type) {
		case nil, bool, int, float64, record.Number, string, []any, map[string]any:
			return e.value(p, depth)
		}
		return fmt.Errorf("cannot send a %T to a script host", v)
	}
	return nil
}

// frame finishes the frame: its length goes in front.
func (e *encoder) frame() ([]byte, error) {
	n := len(e.b) - 4
	if n > maxFrame {
		return nil, fmt.Errorf("a script host message of %s is over the limit of %s", formatSize(int64(n)), formatSize(maxFrame))
	}
	binary.BigEndian.PutUint32(e.b, uint32(n))
	return e.b, nil
}

func (e *encoder) init(name, src string, timeout time.Duration, memory int64) {
	e.reset(msgInit)
	e.string(name)
	e.string(src)
	e.varint(int64(timeout))
	e.varint(memory)
}

func (e *encoder) call(r *record.Record) error {
	e.reset(msgCall)
	if err := e.value(r.Key, 0); err != nil {
		return err
	}
	if err := e.value(r.Value, 0); err != nil {
		return err
	}
	if r.Timestamp.IsZero() {
		e.b = append(e.b, 0)
	} else {
		e.b = append(e.b, 1)
		e.varint(r.Timestamp.UnixNano())
	}
	e.uvarint(uint64(len(r.Headers)))
	for _, h := range r.Headers {
		e.string(h.Key)
		e.string(string(h.Value))
	}
	return nil
}

func (e *encoder) values(vals []any) error {
	e.reset(msgValues)
	e.uvarint(uint64(len(vals)))
	for _, v := range vals {
		if err := e.value(v, 0); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) failure(f *failure) {
	e.reset(msgFailure)
	e.string(string(f.Reason))
	e.string(f.Text)
	e.varint(int64(f.Line))
	e.varint(int64(f.Col))
}

// readFrame reads one frame's payload into buf (grown as needed).
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxFrame {
		return nil, fmt.Errorf("%w: length %d", errFrame, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// decoder reads one frame's payload. Errors stick: after the first, every
// read returns zero values and err says what was wrong.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errFrame
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	u, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return u
}

func (d *decoder) varint() int64 {
	i, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return i
}

// count reads a length, which must not claim more items than bytes left
// (every item takes at least one).
func (d *decoder) count() int {
	u := d.uvarint()
	if u > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(u)
}

func (d *decoder) string() string {
	n := d.count()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) value(depth int) any {
	if depth > maxWireDepth {
		d.fail()
		return nil
	}
	switch d.byte() {
	case tagNil:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagInt:
		return int(d.varint())
	case tagInt64:
		return d.varint()
	case tagFloat:
		if len(d.b) < 8 {
			d.fail()
			return nil
		}
		f := math.Float64frombits(binary.BigEndian.Uint64(d.b))
		d.b = d.b[8:]
		return f
	case tagNumber:
		return record.Number(d.string())
	case tagString:
		return d.string()
	case tagBytes:
		return []byte(d.string())
	case tagArray:
		a := make([]any, d.count())
		for i := range a {
			a[i] = d.value(depth + 1)
		}
		return a
	case tagObject:
		n := d.count()
		m := make(map[string]any, n)
		for range n {
			k := d.string()
			m[k] = d.value(depth + 1)
		}
		return m
	}
	d.fail()
	return nil
}

func (d *decoder) init() (name, src string, timeout time.Duration, memory int64) {
	name, src = d.string(), d.string()
	return name, src, time.Duration(d.varint()), d.varint()
}

func (d *decoder) call() *record.Record {
	r := &record.Record{Key: d.value(0), Value: d.value(0)}
	if d.byte() == 1 {
		r.Timestamp = time.Unix(0, d.varint())
	}
	if n := d.count(); n > 0 {
		r.Headers = make([]record.Header, n)
		for i := range r.Headers {
			r.Headers[i] = record.Header{Key: d.string(), Value: []byte(d.string())}
		}
	}
	return r
}

// answer decodes a host's answer: values, or a failure.
func (d *decoder) answer() ([]any, *failure) {
	switch d.byte() {
	case msgValues:
		n := d.count()
		vals := make([]any, n)
		for i := range vals {
			vals[i] = d.value(0)
		}
		return vals, nil
	case msgFailure:
		return nil, &failure{Reason: catalog.Reason(d.string()), Text: d.string(), Line: int(d.varint()), Col: int(d.varint())}
	}
	d.fail()
	return nil, nil
}
