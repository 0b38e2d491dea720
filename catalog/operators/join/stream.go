package join

import (
	"context"
	"encoding/binary"
	"math"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/record"
	win "github.com/sluicehq/sluice/internal/window"
)

// The stream-stream join keeps each side's recent records in the task's
// store, keyed so that one range scan finds a key's records in a time range:
//
//	side ('L' this stream, 'R' the other) | key length (4) | key | event time (8, sortable) | sequence (8) -> JSON value
//	'X' | expiry time (8) | the buffered record's key above -> empty (expiry index)
//	'Q' -> the sequence counter
//	'W' -> the stream time of the last expiry (8, sortable), so a restarted
//	       task's stream time goes on from it
//
// A record is paired with every record of the other side with the same key
// whose event time is at most within apart, once, when the later of the two
// arrives (Kafka Streams' KStream-KStream inner join). It is forgotten when
// the stream time passes its time + within + grace; a record older than
// that on arrival is late.
const (
	sideMain  = 'L'
	sideOther = 'R'
)

var (
	seqKey        = []byte{'Q'}
	streamTimeKey = []byte{'W'}
)

func bufPrefix(side byte, key []byte) []byte {
	b := []byte{side}
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	return append(b, key...)
}

func (o *op) late(task catalog.Task, t int64) error {
	st := task.StreamTime()
	if st.IsZero() || st.Equal(catalog.EndOfTime) {
		return nil
	}
	if t+o.within+o.grace < st.UnixMilli() {
		return catalog.Rejectf(catalog.ReasonLate, "event time %s is more than within + grace before the stream time %s",
			time.UnixMilli(t).UTC().Format(time.RFC3339Nano), st.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// buffer stores a record of one side and indexes its expiry.
func (o *op) buffer(task catalog.Task, side byte, key []byte, t int64, value any) error {
	st := task.Store()
	var seq uint64
	if b, ok, err := st.Get(seqKey); err != nil {
		return err
	} else if ok && len(b) == 8 {
		seq = binary.BigEndian.Uint64(b)
	}
	seq++
	if err := st.Put(seqKey, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return err
	}
	enc, err := record.EncodeJSON(record.Plain(value))
	if err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	k := binary.BigEndian.AppendUint64(win.AppendTime(bufPrefix(side, key), t), seq)
	if err := st.Put(k, enc); err != nil {
		return err
	}
	x := append(win.AppendTime([]byte{'X'}, t+o.within+o.grace), k...)
	// An empty value, not nil: nil is a tombstone in the changelog.
	return st.Put(x, []byte{})
}

// matches calls fn for the other side's records of key within range of t.
func (o *op) matches(task catalog.Task, side byte, key []byte, t int64, fn func(t int64, value any) error) error {
	p := bufPrefix(side, key)
	lo := win.AppendTime(append([]byte(nil), p...), t-o.within)
	hi := win.AppendTime(append([]byte(nil), p...), t+o.within+1)
	type match struct {
		t int64
		v any
	}
	var found []match
	err := task.Store().Scan(lo, hi, func(k, v []byte) error {
		mt, err := win.ParseTime(k[len(p):])
		if err != nil {
			return err
		}
		val, err := record.DecodeJSON(v)
		if err != nil {
			return err
		}
		found = append(found, match{mt, val})
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range found {
		if err := fn(m.t, m.v); err != nil {
			return err
		}
	}
	return nil
}

// streamMain handles a record of this stream: buffer it, join it with the
// other side's records in range.
func (o *op) streamMain(ctx context.Context, task catalog.Task, key []byte, r *record.Record, out catalog.Output) error {
	t := r.Timestamp.UnixMilli()
	if err := o.late(task, t); err != nil {
		return err
	}
	if err := o.expire(task); err != nil {
		return err
	}
	if err := o.buffer(task, sideMain, key, t, r.Value); err != nil {
		return err
	}
	return o.matches(task, sideOther, key, t, func(ot int64, other any) error {
		return o.emit(ctx, out, key, r.Value, other, max(t, ot), r.Headers)
	})
}

// streamSide handles a record of the other stream.
func (o *op) streamSide(ctx context.Context, task catalog.Task, key []byte, r *record.Record, out catalog.Output) error {
	if r.Value == nil {
		return nil // a tombstone means nothing in a stream
	}
	t := r.Timestamp.UnixMilli()
	if err := o.late(task, t); err != nil {
		return err
	}
	if err := o.expire(task); err != nil {
		return err
	}
	if err := o.buffer(task, sideOther, key, t, r.Value); err != nil {
		return err
	}
	return o.matches(task, sideMain, key, t, func(mt int64, main any) error {
		return o.emit(ctx, out, key, main, r.Value, max(t, mt), nil)
	})
}

// emit writes main with the other record in field as.
func (o *op) emit(ctx context.Context, out catalog.Output, key []byte, main, other any, t int64, h []record.Header) error {
	obj, ok := record.Plain(main).(map[string]any)
	if !ok {
		return catalog.Rejectf(catalog.ReasonType, "expected a JSON object value, got %s", catalog.TypeName(main))
	}
	cp := make(map[string]any, len(obj)+1)
	for k, v := range obj {
		cp[k] = v
	}
	cp[o.as] = record.Plain(other)
	r := &record.Record{Key: string(key), Value: cp, Timestamp: time.UnixMilli(t), Headers: h}
	return out.Next(ctx, r)
}

// StoredStreamTime implements catalog.StreamTimeRecorder for the
// stream-stream join: the stream time its last expiry ran at.
func (o *op) StoredStreamTime(task catalog.Task) (time.Time, bool, error) {
	if o.table != "" {
		return time.Time{}, false, nil
	}
	b, ok, err := task.Store().Get(streamTimeKey)
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	ms, err := win.ParseTime(b)
	if err != nil {
		return time.Time{}, false, err
	}
	return catalog.TimeFromMillis(ms), true, nil
}

// expire deletes the buffered records the stream time has passed.
func (o *op) expire(task catalog.Task) error {
	st := task.StreamTime()
	if st.IsZero() {
		return nil
	}
	limit := int64(math.MaxInt64)
	if !st.Equal(catalog.EndOfTime) {
		limit = st.UnixMilli()
	}
	// Everything due before the last expiry's stream time is gone, and a
	// record buffered since expires at or after the stream time it came
	// at: with no newer stream time, nothing is due.
	if b, ok, err := task.Store().Get(streamTimeKey); err != nil {
		return err
	} else if ok {
		if last, err := win.ParseTime(b); err == nil && limit <= last {
			return nil
		}
	}
	if err := task.Store().Put(streamTimeKey, win.AppendTime(nil, limit)); err != nil {
		return err
	}
	var keys [][]byte
	err := task.Store().Scan([]byte{'X'}, win.AppendTime([]byte{'X'}, limit), func(k, _ []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := task.Store().Delete(k[9:]); err != nil {
			return err
		}
		if err := task.Store().Delete(k); err != nil {
			return err
		}
	}
	return nil
}
