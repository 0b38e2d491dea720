package window

import (
	"encoding/binary"
	"unsafe"

	"github.com/sluicehq/sluice/internal/keytable"
)

// OpenOption changes how Open opens an operator.
type OpenOption func(*Operator)

// WriteBack keeps the decoded accumulators of tumbling and hopping windows
// between records and writes changed ones to the store only on FlushState,
// as Kafka Streams' record caches do: a key counted a hundred times
// between two commits is decoded once and encoded once, not a hundred
// times each. The caller must call FlushState before the store's writes
// are committed (the runtime does before every commit), and must drop the
// operator, unflushed, whenever the store loses writes (an aborted
// transaction, a restore). Sessions, which scan the store, write through.
func WriteBack() OpenOption {
	return func(o *Operator) {
		if o.cfg.Window.kind != KindSession {
			o.cache = &keytable.Table[cached]{}
		}
	}
}

// AccumulatorResults leaves Result.Values nil and sets Result.Accs, for a
// caller that writes results out itself (see Values).
func AccumulatorResults() OpenOption { return func(o *Operator) { o.accResults = true } }

// maxCached bounds the windows a write-back operator keeps decoded: past
// it, FlushState forgets them all (they are clean then) and the next
// records read them again.
const maxCached = 1 << 14

// cached is a window whose accumulators a write-back operator keeps. A
// short key and a short accumulator list are kept in kb and ab: a record's
// lookup reads its slot in the table and then this entry, 128 bytes, two
// cache lines, where the key's bytes and the accumulators are.
type cached struct {
	key   string // the window's state key
	accs  []Accumulator
	end   int64
	dirty bool // changed since it was last written to the store
	gone  bool // closed: its state is deleted and must not be written
	kb    [inlineKey]byte
	ab    [inlineAccs]Accumulator
}

// inlineKey is the longest state key an entry keeps in itself; and
// inlineAccs the most accumulators, which covers most steps (a count and
// an average, say). Longer ones are allocations of their own.
const (
	inlineKey  = 40
	inlineAccs = 2
)

// newCached returns an entry for the window under state key sk, ending at
// end, with the accumulators of accs; it copies the key and the list, not
// the accumulators.
func newCached(sk []byte, end int64, accs []Accumulator) *cached {
	e := &cached{end: end}
	if len(sk) <= inlineKey {
		n := copy(e.kb[:], sk)
		e.key = unsafe.String(&e.kb[0], n)
	} else {
		e.key = string(sk)
	}
	if len(accs) <= inlineAccs {
		e.accs = e.ab[:copy(e.ab[:], accs):inlineAccs]
	} else {
		e.accs = accs
	}
	return e
}

// lookup returns the window cached under state key k, or nil.
func (o *Operator) lookup(k []byte) *cached {
	if o.cache == nil {
		return nil
	}
	return o.cache.Get(k)
}

// changed records that the accumulators of window w of key, under state
// key sk (e when cached already), changed: written to the store now, or
// marked for FlushState.
func (o *Operator) changed(key, sk []byte, w Window, accs []Accumulator, e *cached) error {
	if o.cache == nil {
		return o.save(key, w, accs)
	}
	if e == nil {
		e = newCached(sk, w.End, accs)
		o.cache.Put(e.key, e)
	}
	if !e.dirty {
		e.dirty = true
		o.dirty = append(o.dirty, e)
	}
	return nil
}

// forget drops the window under state key k from the cache, when it closes.
func (o *Operator) forget(k []byte) {
	if o.cache == nil {
		return
	}
	if e := o.cache.Delete(k); e != nil {
		e.gone = true
	}
}

// FlushState writes the windows changed since the last FlushState to the
// store. An operator opened without WriteBack has none.
func (o *Operator) FlushState() error {
	for i, e := range o.dirty {
		o.dirty[i] = nil
		if e.gone || !e.dirty {
			continue
		}
		e.dirty = false
		v, err := o.encode(e.end, e.accs)
		if err != nil {
			o.dirty = o.dirty[i+1:] // the caller drops the operator; keep it sane
			return err
		}
		if err := o.store.Put(unsafe.Slice(unsafe.StringData(e.key), len(e.key)), v); err != nil { // Put copies
			o.dirty = o.dirty[i+1:]
			return err
		}
	}
	o.dirty = o.dirty[:0]
	if o.wmDirty {
		if err := o.saveWM(); err != nil {
			return err
		}
		o.wmDirty = false
	}
	if o.cache != nil && o.cache.Len() > maxCached {
		o.cache.Reset()
	}
	return nil
}

// resetAccs resets accs to new accumulators' state, and reports whether it
// could: the plain numeric ones can, which are the common case; the
// others are made anew.
func resetAccs(accs []Accumulator) bool {
	if accs == nil {
		return false
	}
	for _, acc := range accs {
		switch acc.(type) {
		case *countAcc, *sumAcc, *extremeAcc:
		default:
			return false
		}
	}
	for _, acc := range accs {
		switch a := acc.(type) {
		case *countAcc:
			*a = countAcc{all: a.all}
		case *sumAcc:
			*a = sumAcc{avg: a.avg, ints: true}
		case *extremeAcc:
			*a = extremeAcc{max: a.max}
		}
	}
	return true
}

// encode returns a window's state value: its end, then per accumulator a
// uvarint length and its encoding. The result is valid until the next call.
func (o *Operator) encode(end int64, accs []Accumulator) ([]byte, error) {
	v := AppendTime(o.vbuf[:0], end)
	for _, acc := range accs {
		var err error
		if o.abuf, err = acc.AppendBinary(o.abuf[:0]); err != nil {
			return nil, err
		}
		v = binary.AppendUvarint(v, uint64(len(o.abuf)))
		v = append(v, o.abuf...)
	}
	o.vbuf = v
	return v, nil
}

// Values returns a result's aggregates by name, from Values or, for an
// operator opened with AccumulatorResults, built from Accs.
func (o *Operator) Values(r Result) map[string]any {
	if r.Values != nil || r.Accs == nil {
		return r.Values
	}
	vals := make(map[string]any, len(r.Accs)+1) // room for the caller's window bounds
	for i, acc := range r.Accs {
		vals[o.cfg.Aggregates[i].Name] = acc.Result()
	}
	return vals
}
