// Package keyed runs the domain operators (threshold, velocity, geofence,
// sequence, absence) as per-key state machines on event time, with their
// state in the task's store so that it survives a restore.
//
// A Machine sees each key's events in event-time order, whatever order they
// arrived in within the step's grace, and may set one timer per key, which
// fires once the event-time frontier has reached it. The frontier is the
// task's stream time minus grace: a record whose event time is behind it is
// late, and the step sends it to the DLQ with reason late. A record at or
// ahead of the frontier waits in a reorder buffer until the frontier reaches
// it (with grace 0 it is applied at once). At equal times a timer fires
// before the events of its time, and events of one time are applied in
// arrival order; timers of one time fire in key order. So the output depends
// only on the events and their times, not on how they interleaved within
// grace, which the property tests check.
//
// Store layout (every time is 8 sortable bytes, every key length-prefixed):
//
//	'm' name                  metadata: stream time acted on, buffer sequence
//	'b' time seq len key      buffered event -> payload
//	'k' len key               key state -> timer flag, timer, machine state
//	'w' time len key          timer index -> (empty)
package keyed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/sluicehq/sluice/catalog"
)

// Result is what a Machine returns for one event or timer.
type Result struct {
	// State is the key's new state; nil forgets the key (and its timer).
	State []byte
	// Timer, when HasTimer, is when Timer is to be called next (ms); it
	// replaces any timer set before.
	Timer    int64
	HasTimer bool
	// Out are the records to emit, in order.
	Out []Emit
}

// Emit is one output of a machine: its event time and value. The runner
// adds the key it came from.
type Emit struct {
	Key   []byte
	Time  int64
	Value any
}

// Machine is an operator's per-key logic. st is nil when the key has no
// state. Both methods must be deterministic functions of their arguments.
type Machine interface {
	Event(key, st []byte, t int64, payload []byte) (Result, error)
	Timer(key, st []byte, at int64) (Result, error)
}

// LateError is returned by Ingest for a record behind the frontier.
type LateError struct {
	Time, Frontier int64
}

func (e *LateError) Error() string {
	return fmt.Sprintf("event time %s is behind the step's event-time frontier %s (stream time minus grace)",
		catalog.TimeFromMillis(e.Time).Format("2006-01-02T15:04:05.000Z07:00"),
		catalog.TimeFromMillis(e.Frontier).Format("2006-01-02T15:04:05.000Z07:00"))
}

// Runner drives a Machine over a store.
type Runner struct {
	Grace   int64 // ms, >= 0
	Machine Machine
}

const (
	famMeta   = 'm'
	famBuffer = 'b'
	famKey    = 'k'
	famTimer  = 'w'
	timeLen   = 8
)

var (
	metaStream = []byte("mstream")
	metaSeq    = []byte("mseq")
	errStop    = errors.New("stop")
)

func appendTime(dst []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t)^(1<<63))
}

func parseTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func appendKey(dst, key []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(key)))
	return append(dst, key...)
}

func parseKey(b []byte) ([]byte, error) {
	if len(b) < 4 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		return nil, errors.New("keyed: malformed state key")
	}
	return b[4:], nil
}

func stateKey(key []byte) []byte { return appendKey([]byte{famKey}, key) }

func timerKey(at int64, key []byte) []byte {
	return appendKey(appendTime([]byte{famTimer}, at), key)
}

// frontier turns a stream time into the event-time frontier.
func (r Runner) frontier(st int64) int64 {
	if st == math.MaxInt64 {
		return st
	}
	if st < math.MinInt64+r.Grace {
		return math.MinInt64
	}
	return st - r.Grace
}

// streamTime returns the later of st and the stream time stored, storing
// st when it is ahead.
func streamTime(s catalog.Store, st int64) (int64, error) {
	b, ok, err := s.Get(metaStream)
	if err != nil {
		return 0, err
	}
	if ok && len(b) == timeLen {
		if old := parseTime(b); old >= st {
			return old, nil
		}
	}
	return st, s.Put(metaStream, appendTime(nil, st))
}

// StoredStreamTime returns the stream time the runner last acted on.
func StoredStreamTime(s catalog.Store) (int64, bool, error) {
	b, ok, err := s.Get(metaStream)
	if err != nil || !ok || len(b) != timeLen {
		return 0, false, err
	}
	return parseTime(b), true, nil
}

// Ingest takes one record of key with event time t at stream time st (ms)
// and returns what the step emits, in order: the timers and buffered events
// the frontier passed, then this event's outputs when it is applied at once.
// A record behind the frontier returns a *LateError and changes nothing.
func (r Runner) Ingest(s catalog.Store, st int64, key []byte, t int64, payload []byte) ([]Emit, error) {
	st, err := streamTime(s, st)
	if err != nil {
		return nil, err
	}
	f := r.frontier(st)
	if t < f {
		return nil, &LateError{Time: t, Frontier: f}
	}
	out, err := r.drain(s, f)
	if err != nil {
		return out, err
	}
	if t <= f {
		return r.apply(s, out, key, t, payload)
	}
	seq := uint64(0)
	if b, ok, err := s.Get(metaSeq); err != nil {
		return out, err
	} else if ok && len(b) == 8 {
		seq = binary.BigEndian.Uint64(b)
	}
	if err := s.Put(metaSeq, binary.BigEndian.AppendUint64(nil, seq+1)); err != nil {
		return out, err
	}
	bk := appendKey(binary.BigEndian.AppendUint64(appendTime([]byte{famBuffer}, t), seq), key)
	return out, s.Put(bk, payload)
}

// Advance moves the runner to stream time st and returns what the timers
// and buffered events the frontier passed emit. math.MaxInt64 (the end of
// input) applies and fires everything.
func (r Runner) Advance(s catalog.Store, st int64) ([]Emit, error) {
	st, err := streamTime(s, st)
	if err != nil {
		return nil, err
	}
	return r.drain(s, r.frontier(st))
}

type entry struct {
	k, v []byte
	t    int64
	ok   bool
}

// first returns the first entry of family fam with time <= f.
func first(s catalog.Store, fam byte, f int64) (entry, error) {
	lo := []byte{fam}
	hi := []byte{fam + 1}
	if f != math.MaxInt64 {
		hi = appendTime([]byte{fam}, f+1)
	}
	var e entry
	err := s.Scan(lo, hi, func(k, v []byte) error {
		if len(k) < 1+timeLen {
			return errors.New("keyed: malformed state key")
		}
		e = entry{k: slices.Clone(k), v: slices.Clone(v), t: parseTime(k[1:]), ok: true}
		return errStop
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return e, err
}

// drain applies, in time order, every buffered event and fires every timer
// at or before the frontier f; a timer goes before the events of its time.
func (r Runner) drain(s catalog.Store, f int64) ([]Emit, error) {
	var out []Emit
	for {
		ev, err := first(s, famBuffer, f)
		if err != nil {
			return out, err
		}
		tm, err := first(s, famTimer, f)
		if err != nil {
			return out, err
		}
		switch {
		case tm.ok && (!ev.ok || tm.t <= ev.t):
			key, err := parseKey(tm.k[1+timeLen:])
			if err != nil {
				return out, err
			}
			if err := s.Delete(tm.k); err != nil {
				return out, err
			}
			if out, err = r.fire(s, out, key, tm.t); err != nil {
				return out, err
			}
		case ev.ok:
			if len(ev.k) < 1+timeLen+8 {
				return out, errors.New("keyed: malformed buffer key")
			}
			key, err := parseKey(ev.k[1+timeLen+8:])
			if err != nil {
				return out, err
			}
			if err := s.Delete(ev.k); err != nil {
				return out, err
			}
			if out, err = r.apply(s, out, key, ev.t, ev.v); err != nil {
				return out, err
			}
		default:
			return out, nil
		}
	}
}

// load returns key's stored state and its timer.
func load(s catalog.Store, key []byte) (st []byte, timer int64, hasTimer bool, err error) {
	b, ok, err := s.Get(stateKey(key))
	if err != nil || !ok {
		return nil, 0, false, err
	}
	if len(b) < 1+timeLen {
		return nil, 0, false, errors.New("keyed: malformed state")
	}
	return b[1+timeLen:], parseTime(b[1:]), b[0] == 1, nil
}

// save writes res's state and timer for key, replacing the timer set before.
func save(s catalog.Store, key []byte, oldTimer int64, hadTimer bool, res Result) error {
	if hadTimer && (!res.HasTimer || res.Timer != oldTimer || res.State == nil) {
		if err := s.Delete(timerKey(oldTimer, key)); err != nil {
			return err
		}
	}
	if res.State == nil {
		return s.Delete(stateKey(key))
	}
	flag := byte(0)
	if res.HasTimer {
		flag = 1
		if err := s.Put(timerKey(res.Timer, key), nil); err != nil {
			return err
		}
	}
	v := appendTime([]byte{flag}, res.Timer)
	return s.Put(stateKey(key), append(v, res.State...))
}

func (r Runner) apply(s catalog.Store, out []Emit, key []byte, t int64, payload []byte) ([]Emit, error) {
	st, timer, has, err := load(s, key)
	if err != nil {
		return out, err
	}
	res, err := r.Machine.Event(key, st, t, payload)
	if err != nil {
		return out, err
	}
	if err := save(s, key, timer, has, res); err != nil {
		return out, err
	}
	return appendOut(out, key, res.Out), nil
}

func (r Runner) fire(s catalog.Store, out []Emit, key []byte, at int64) ([]Emit, error) {
	st, timer, has, err := load(s, key)
	if err != nil {
		return out, err
	}
	if !has || timer != at {
		return out, nil // a stale index entry: the timer was replaced
	}
	res, err := r.Machine.Timer(key, st, at)
	if err != nil {
		return out, err
	}
	// The fired timer's index entry is gone already.
	if err := save(s, key, 0, false, res); err != nil {
		return out, err
	}
	return appendOut(out, key, res.Out), nil
}

func appendOut(out []Emit, key []byte, es []Emit) []Emit {
	for _, e := range es {
		e.Key = key
		out = append(out, e)
	}
	return out
}
