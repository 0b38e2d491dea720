package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sluicehq/sluice/internal/keytable"
)

// Reasons a record is rejected, as written to the DLQ.
const (
	ReasonLate       = "late"
	ReasonType       = "type"
	ReasonExpression = "expression"
)

// ErrLate is wrapped by the error for a record whose windows have closed.
var ErrLate = errors.New("record is late")

// RecordError rejects one record; the caller sends it to the DLQ with
// Reason. The operator's state is unchanged. Errors that are not
// RecordErrors (from the Store) fail the task.
type RecordError struct {
	Reason    string
	Aggregate string // the aggregate that failed, for type and expression errors
	Err       error
}

func (e *RecordError) Error() string {
	if e.Aggregate != "" {
		return fmt.Sprintf("window: %s: aggregate %s: %v", e.Reason, e.Aggregate, e.Err)
	}
	return fmt.Sprintf("window: %s: %v", e.Reason, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Emit says when a window operator emits results.
type Emit uint8

// Emit modes.
const (
	// EmitFinal emits one result per window, when it closes.
	EmitFinal Emit = iota + 1
	// EmitUpdate emits a result after every change to a window (and a
	// retraction for a session merged into a larger one); closing emits
	// nothing more.
	EmitUpdate
)

// Config configures an Operator. There are no defaults: grace and the emit
// mode are explicit.
type Config struct {
	Window Spec
	// Grace (ms, >= 0) is how long after its end a window accepts records.
	Grace      int64
	Emit       Emit
	Aggregates []Aggregate
}

// Result is one emitted window result.
type Result struct {
	Key    []byte
	Window Window
	// Values maps aggregate names to results; nil for a retraction, and
	// for an operator opened with AccumulatorResults, which sets Accs.
	Values map[string]any
	// Accs are the window's accumulators in Config.Aggregates order, for
	// an operator opened with AccumulatorResults: valid only until the
	// operator's next call, and not to be changed.
	Accs []Accumulator
	// Retract marks, in update mode, a session window that was merged into
	// another and no longer exists.
	Retract bool
}

// Operator is the in-memory model of a windowed aggregation for one task.
// All its state is in the Store (accumulators per key and window start,
// sessions' close index by window end, closed sessions, and a small
// metadata record), so a runtime operator can run it against a
// changelogged store and restore it by reopening the same store; what it
// keeps in memory besides (tumbling and hopping windows' close index, and
// with WriteBack their accumulators) follows from that state.
//
// The caller feeds watermarks (Advance, from a Tracker) and records
// (Process) in arrival order. An Operator is not safe for concurrent use.
type Operator struct {
	cfg      *Config
	numbered bool // see Prepared
	store    Store
	seq      uint64
	wm       int64
	hasWM    bool
	// low is at or before the end of every window in the close index, and
	// xlow at or before every closed session's expiry, so that Advance
	// scans an index only when the watermark reaches its low mark, not on
	// every record. They are kept in the store, as the watermark is, for
	// an operator reopened from it (for each record, or after a restart).
	// math.MinInt64 means unknown (a store written before they were kept),
	// which the next Advance that moves the watermark corrects by scanning.
	low, xlow int64

	// Buffers reused from record to record, as an Operator kept for its
	// task's life serves many: a record's windows and their changes, a
	// state key, a state value and an accumulator's encoding.
	wins             []Window
	changes          []change
	kbuf, vbuf, abuf []byte

	// cache and dirty are a write-back operator's windows (see WriteBack)
	// and those changed since the last FlushState; nil cache: writes go
	// straight to the store.
	cache *keytable.Table[cached]
	dirty []*cached
	// closing is the close index of tumbling and hopping windows: their
	// state keys by window end. It follows from the stored windows, whose
	// values start with their end, so it is kept in memory, not in the
	// store, and built from the store on the first close after an open;
	// nil until then. Sessions, which merge, keep theirs in the store.
	closing    map[int64][]string
	accResults bool     // see AccumulatorResults
	shareKey   bool     // in ProcessShared: results keep its key
	results    []Result // Process's, reused with AccumulatorResults
	wmDirty    bool     // wm not yet written (WriteBack)
	// spare are the accumulators of the last record's inputs, which
	// Process merged into its windows: the next record's, reset.
	spare []Accumulator
}

// change is a window a record changed, with its new accumulators (those
// of e when it is cached).
type change struct {
	w     Window
	accs  []Accumulator
	isNew bool
	e     *cached
}

// Metadata keys.
var (
	metaSeq = metaKey("seq")
	metaWM  = metaKey("wm")
	metaLow = metaKey("low")
)

// Prepared is a Config that NewOperator's checks accepted. A runtime
// operator prepares its configuration once and opens the model of a task
// from the task's store for each record, which then costs a few reads
// rather than another validation of every aggregate.
type Prepared struct {
	cfg Config
	// numbered is set when an aggregate breaks ties by arrival (first,
	// last, collect, top_n): only then does the operator number records,
	// which costs a write per record.
	numbered bool
}

// Prepare validates cfg.
func Prepare(cfg Config) (*Prepared, error) {
	if cfg.Window.kind == 0 {
		return nil, errors.New("window: no window spec")
	}
	if cfg.Grace < 0 {
		return nil, fmt.Errorf("window: grace %d must not be negative", cfg.Grace)
	}
	if cfg.Emit != EmitFinal && cfg.Emit != EmitUpdate {
		return nil, fmt.Errorf("window: emit mode %d is neither final nor update", cfg.Emit)
	}
	if len(cfg.Aggregates) == 0 {
		return nil, errors.New("window: no aggregates")
	}
	names := map[string]bool{}
	for i := range cfg.Aggregates {
		a := &cfg.Aggregates[i]
		if err := a.Validate(); err != nil {
			return nil, err
		}
		if names[a.Name] {
			return nil, fmt.Errorf("window: aggregate name %q used twice", a.Name)
		}
		names[a.Name] = true
	}
	cfg.Aggregates = slices.Clone(cfg.Aggregates)
	p := &Prepared{cfg: cfg}
	for _, a := range cfg.Aggregates {
		switch a.Func {
		case First, Last, Collect, TopN:
			p.numbered = true
		}
	}
	return p, nil
}

// NewOperator validates cfg and opens an operator over store, resuming
// from whatever state store holds.
func NewOperator(cfg Config, store Store) (*Operator, error) {
	p, err := Prepare(cfg)
	if err != nil {
		return nil, err
	}
	return p.Open(store)
}

// Open opens an operator over store, resuming from whatever state store
// holds.
func (p *Prepared) Open(store Store, opts ...OpenOption) (*Operator, error) {
	o := &Operator{cfg: &p.cfg, numbered: p.numbered, store: store, low: math.MinInt64, xlow: math.MinInt64}
	for _, opt := range opts {
		opt(o)
	}
	if p.cfg.Window.kind != KindSession {
		o.xlow = math.MaxInt64 // only sessions are remembered after closing
	}
	if o.numbered {
		if b, ok, err := store.Get(metaSeq); err != nil {
			return nil, err
		} else if ok && len(b) == 8 {
			o.seq = binary.BigEndian.Uint64(b)
		}
	}
	if b, ok, err := store.Get(metaWM); err != nil {
		return nil, err
	} else if ok {
		if o.wm, err = ParseTime(b); err != nil {
			return nil, err
		}
		o.hasWM = true
	}
	if b, ok, err := store.Get(metaLow); err != nil {
		return nil, err
	} else if ok && len(b) == 2*timeLen {
		o.low, _ = ParseTime(b)
		o.xlow, _ = ParseTime(b[timeLen:])
	}
	return o, nil
}

// Watermark returns the last watermark given to Advance.
func (o *Operator) Watermark() (int64, bool) { return o.wm, o.hasWM }

// closed reports whether a window ending at end has closed.
func (o *Operator) closed(end int64) bool {
	return o.hasWM && end <= satSub(o.wm, o.cfg.Grace)
}

// ProcessShared is Process for a key that nothing changes afterwards (the
// bytes of a fetched record, or a fresh encoding): its results keep the
// key itself rather than a copy each.
func (o *Operator) ProcessShared(key []byte, t int64, value any) ([]Result, error) {
	o.shareKey = true
	defer func() { o.shareKey = false }()
	return o.Process(key, t, value)
}

// Process adds a record. It returns the update-mode results, or a
// *RecordError when the record is rejected (late, or an aggregate input of
// the wrong type), or a Store error.
func (o *Operator) Process(key []byte, t int64, value any) ([]Result, error) {
	if o.cfg.Window.kind == KindSession {
		return o.processSession(key, t, value)
	}
	o.wins = o.cfg.Window.appendWindows(o.wins[:0], t)
	open := o.wins[:0] // filtered in place
	for _, w := range o.wins {
		if !o.closed(w.End) {
			open = append(open, w)
		}
	}
	if len(open) == 0 {
		return nil, o.late(t)
	}
	rec, err := o.recordAccs(t, value, true)
	if err != nil {
		return nil, err
	}
	changes := o.changes[:0]
	defer func() { clear(changes); o.changes = changes[:0] }() // let the accumulators go
	for _, w := range open {
		o.kbuf = appendStateKey(o.kbuf[:0], key, w.Start)
		e := o.lookup(o.kbuf)
		var accs []Accumulator
		ok := e != nil
		if ok {
			accs = e.accs
		} else if accs, ok, err = o.load(o.kbuf); err != nil {
			return nil, err
		}
		if !ok {
			if accs, err = o.newAccs(); err != nil {
				return nil, err
			}
		}
		changes = append(changes, change{w, accs, !ok, e})
	}
	// Every window is read before any changes: cached accumulators are
	// changed in place, and a store error must leave them as they were.
	// Only a merge of mismatched accumulators, a bug, fails halfway.
	for _, c := range changes {
		if err := o.merge(c.accs, rec); err != nil {
			return nil, err
		}
	}
	o.spare = rec // merged into every window, not kept by any
	var out []Result
	if o.cfg.Emit == EmitUpdate {
		if o.accResults {
			out = o.results[:0] // valid until the next call, as Accs are
		} else {
			out = make([]Result, 0, len(changes))
		}
	}
	low := o.low
	for _, c := range changes {
		o.kbuf = appendStateKey(o.kbuf[:0], key, c.w.Start)
		if err := o.changed(key, o.kbuf, c.w, c.accs, c.e); err != nil {
			return nil, err
		}
		if c.isNew {
			o.remember(c.w.End, o.kbuf)
			o.low = min(o.low, c.w.End)
		}
		if o.cfg.Emit == EmitUpdate {
			out = append(out, o.result(key, c.w, c.accs))
		}
	}
	if o.accResults {
		o.results = out
	}
	if err := o.saveLow(low, o.xlow); err != nil {
		return nil, err
	}
	return out, o.commitSeq()
}

func (o *Operator) late(t int64) error {
	// Times as people read them, as the other event-time steps write them.
	at := func(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }
	return &RecordError{Reason: ReasonLate, Err: fmt.Errorf("%w: event time %s, and the stream time %s is past the end of its windows plus grace (%s)",
		ErrLate, at(t), at(o.wm), time.Duration(o.cfg.Grace)*time.Millisecond)}
}

// processSession adds a record to a session window, merging the open
// sessions its interval overlaps.
func (o *Operator) processSession(key []byte, t int64, value any) ([]Result, error) {
	proto := o.cfg.Window.Windows(t)[0]
	if o.closed(proto.End) {
		return nil, o.late(t)
	}
	var reopens bool
	prefix := keyPrefix(famClosed, key)
	err := o.store.Scan(prefix, PrefixEnd(prefix), func(k, v []byte) error {
		_, start, err := ParseStateKey(k)
		if err != nil {
			return err
		}
		end, err := ParseTime(v)
		if err != nil {
			return err
		}
		if proto.overlaps(Window{start, end}) {
			reopens = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if reopens {
		return nil, o.late(t)
	}
	rec, err := o.recordAccs(t, value, false) // may become a session's state
	if err != nil {
		return nil, err
	}
	// Sessions of one key never overlap, so those the record touches are
	// contiguous in start order.
	type session struct {
		w    Window
		accs []Accumulator
	}
	var touched []session
	prefix = keyPrefix(famState, key)
	err = o.store.Scan(prefix, PrefixEnd(prefix), func(k, v []byte) error {
		_, start, err := ParseStateKey(k)
		if err != nil {
			return err
		}
		end, err := ParseTime(v)
		if err != nil {
			return err
		}
		w := Window{start, end}
		if !proto.overlaps(w) {
			return nil
		}
		accs, err := o.decodeAccs(v[timeLen:])
		if err != nil {
			return err
		}
		touched = append(touched, session{w, accs})
		return nil
	})
	if err != nil {
		return nil, err
	}
	merged, accs := proto, rec
	if len(touched) > 0 {
		accs = touched[0].accs
		merged = touched[0].w
		for _, s := range touched[1:] {
			if err := o.merge(accs, s.accs); err != nil {
				return nil, err
			}
			merged = Window{min(merged.Start, s.w.Start), max(merged.End, s.w.End)}
		}
		if err := o.merge(accs, rec); err != nil {
			return nil, err
		}
		merged = Window{min(merged.Start, proto.Start), max(merged.End, proto.End)}
	}
	var out []Result
	for _, s := range touched {
		if s.w == merged {
			continue
		}
		if err := o.store.Delete(StateKey(key, s.w.Start)); err != nil {
			return nil, err
		}
		if err := o.store.Delete(CloseKey(s.w, key)); err != nil {
			return nil, err
		}
		if o.cfg.Emit == EmitUpdate {
			out = append(out, Result{Key: slices.Clone(key), Window: s.w, Retract: true})
		}
	}
	if err := o.save(key, merged, accs); err != nil {
		return nil, err
	}
	if err := o.store.Put(CloseKey(merged, key), nil); err != nil {
		return nil, err
	}
	if merged.End < o.low {
		low := o.low
		o.low = merged.End
		if err := o.saveLow(low, o.xlow); err != nil {
			return nil, err
		}
	}
	if o.cfg.Emit == EmitUpdate {
		out = append(out, o.result(key, merged, accs))
	}
	return out, o.commitSeq()
}

// recordAccs extracts the record's inputs into fresh accumulators, so that
// a type error is found before any state changes.
// With reuse, they are the last record's (spare), reset, when they can be.
func (o *Operator) recordAccs(t int64, value any, reuse bool) ([]Accumulator, error) {
	accs, err := o.spare, error(nil)
	o.spare = nil
	if !reuse || !resetAccs(accs) {
		if accs, err = o.newAccs(); err != nil {
			return nil, err
		}
	}
	seq := o.seq + 1
	for i := range o.cfg.Aggregates {
		a := &o.cfg.Aggregates[i]
		in, err := a.Extract(value, t, seq)
		if err != nil {
			return nil, &RecordError{Reason: ReasonExpression, Aggregate: a.Name, Err: err}
		}
		if err := accs[i].Add(in); err != nil {
			reason := ReasonType
			if !errors.Is(err, ErrType) {
				reason = ReasonExpression
			}
			return nil, &RecordError{Reason: reason, Aggregate: a.Name, Err: err}
		}
	}
	return accs, nil
}

func (o *Operator) commitSeq() error {
	o.seq++
	if !o.numbered {
		return nil
	}
	return o.store.Put(metaSeq, binary.BigEndian.AppendUint64(nil, o.seq))
}

func (o *Operator) newAccs() ([]Accumulator, error) {
	accs := make([]Accumulator, len(o.cfg.Aggregates))
	for i := range o.cfg.Aggregates {
		acc, err := o.cfg.Aggregates[i].newAcc()
		if err != nil {
			return nil, err
		}
		accs[i] = acc
	}
	return accs, nil
}

func (o *Operator) merge(dst, src []Accumulator) error {
	for i := range dst {
		if err := dst[i].Merge(src[i]); err != nil {
			return err
		}
	}
	return nil
}

// load reads the accumulators stored under a state key.
func (o *Operator) load(k []byte) ([]Accumulator, bool, error) {
	v, ok, err := o.store.Get(k)
	if err != nil || !ok {
		return nil, false, err
	}
	if len(v) < timeLen {
		return nil, false, fmt.Errorf("window: state value of %d bytes", len(v))
	}
	accs, err := o.decodeAccs(v[timeLen:])
	return accs, err == nil, err
}

// decodeAccs reads the accumulator list: per aggregate a uvarint length and
// the accumulator's encoding.
func (o *Operator) decodeAccs(b []byte) ([]Accumulator, error) {
	accs := make([]Accumulator, len(o.cfg.Aggregates))
	for i := range o.cfg.Aggregates {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("window: corrupt state for aggregate %s", o.cfg.Aggregates[i].Name)
		}
		acc, err := o.cfg.Aggregates[i].decode(b[k : k+int(n)])
		if err != nil {
			return nil, err
		}
		accs[i] = acc
		b = b[k+int(n):]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("window: %d trailing bytes in window state", len(b))
	}
	return accs, nil
}

// save writes a window's state: its end, then the accumulators.
func (o *Operator) save(key []byte, w Window, accs []Accumulator) error {
	v, err := o.encode(w.End, accs)
	if err != nil {
		return err
	}
	o.kbuf = appendStateKey(o.kbuf[:0], key, w.Start)
	return o.store.Put(o.kbuf, v) // the store keeps neither
}

func (o *Operator) result(key []byte, w Window, accs []Accumulator) Result {
	if !o.shareKey {
		key = slices.Clone(key)
	}
	if o.accResults {
		return Result{Key: key, Window: w, Accs: accs}
	}
	vals := make(map[string]any, len(accs)+1) // room for the caller's window bounds
	for i, acc := range accs {
		vals[o.cfg.Aggregates[i].Name] = acc.Result()
	}
	return Result{Key: key, Window: w, Values: vals}
}

// Advance moves the watermark to wm (ignored unless it is ahead) and closes
// every window with End + grace <= wm, in (end, key, start) order,
// returning their final results in final mode. Closed sessions are kept as
// markers until End + gap + grace <= wm (see the package documentation).
func (o *Operator) Advance(wm int64) ([]Result, error) {
	if o.hasWM && wm <= o.wm {
		return nil, nil
	}
	o.wm, o.hasWM = wm, true
	if o.cache != nil {
		o.wmDirty = true // written by FlushState: it moves with most records
	} else if err := o.saveWM(); err != nil {
		return nil, err
	}
	low, xlow := o.low, o.xlow
	var out []Result
	if bound := satSub(wm, o.cfg.Grace); bound >= o.low {
		var err error
		if out, err = o.close(bound); err != nil {
			return nil, err
		}
	}
	if o.cfg.Window.kind == KindSession && wm >= o.xlow {
		if err := o.forgetClosed(wm); err != nil {
			return nil, err
		}
	}
	return out, o.saveLow(low, xlow)
}

// saveWM writes the watermark to the store.
func (o *Operator) saveWM() error {
	o.vbuf = AppendTime(o.vbuf[:0], o.wm)
	return o.store.Put(metaWM, o.vbuf)
}

// errStop ends a Scan early.
var errStop = errors.New("window: stop scan")

// scanDue collects the keys of the index family fam (close or closed
// expiry: keys that start with a time) whose time is at or before bound,
// and returns the time of the first key after them, or math.MaxInt64 when
// there is none.
func (o *Operator) scanDue(fam byte, bound int64) (due [][]byte, next int64, err error) {
	next = math.MaxInt64
	err = o.store.Scan([]byte{fam}, []byte{fam + 1}, func(k, _ []byte) error {
		at, err := ParseTime(k[1:])
		if err != nil {
			return err
		}
		if at > bound {
			next = at
			return errStop
		}
		due = append(due, slices.Clone(k))
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return due, next, err
}

// close closes the windows with End <= bound and sets low to the end of
// the first window left open.
func (o *Operator) close(bound int64) ([]Result, error) {
	if o.cfg.Window.kind == KindSession {
		return o.closeSessions(bound)
	}
	if o.closing == nil {
		if err := o.buildClosing(); err != nil {
			return nil, err
		}
	}
	var ends []int64
	next := int64(math.MaxInt64)
	for end := range o.closing {
		if end <= bound {
			ends = append(ends, end)
		} else {
			next = min(next, end)
		}
	}
	// In (end, key, start) order, as the sessions' close index sorts:
	// results and the changelog's deletes come in the same order in every
	// run over the same input.
	slices.Sort(ends)
	var out []Result
	for _, end := range ends {
		sks := o.closing[end]
		slices.Sort(sks)
		for i, sk := range sks {
			o.kbuf = append(o.kbuf[:0], sk...)
			key, start, err := ParseStateKey(o.kbuf)
			if err == nil {
				out, err = o.closeWindow(out, key, Window{start, end}, o.kbuf)
			}
			if err != nil {
				o.closing[end] = sks[i:] // still open
				return nil, err
			}
		}
		clear(sks)
		delete(o.closing, end)
	}
	o.low = next
	return out, nil
}

// closeWindow closes window w of key, whose state is under sk: its final
// result is appended to out in final mode, and its state dropped.
func (o *Operator) closeWindow(out []Result, key []byte, w Window, sk []byte) ([]Result, error) {
	if o.cfg.Emit == EmitFinal {
		var accs []Accumulator
		e := o.lookup(sk)
		ok := e != nil
		var err error
		if ok {
			accs = e.accs
		} else if accs, ok, err = o.load(sk); err != nil {
			return out, err
		}
		if !ok {
			return out, fmt.Errorf("window: %v of key %q is due to close and has no state", w, key)
		}
		out = append(out, o.result(key, w, accs))
	}
	o.forget(sk)
	return out, o.store.Delete(sk)
}

// remember adds the window under state key sk, ending at end, to the close
// index. Before the index is built there is nothing to do: building it
// finds the window in the store.
func (o *Operator) remember(end int64, sk []byte) {
	if o.closing != nil {
		o.closing[end] = append(o.closing[end], string(sk))
	}
}

// buildClosing builds the close index of tumbling and hopping windows from
// the store, whose window values start with their end; a write-back
// operator writes what it holds back first, so that the store has every
// window. Stores written by earlier versions also hold the index ('c'
// keys), which is dropped here.
func (o *Operator) buildClosing() error {
	if err := o.FlushState(); err != nil {
		return err
	}
	closing := map[int64][]string{}
	if err := o.store.Scan([]byte{famState}, []byte{famState + 1}, func(k, v []byte) error {
		end, err := ParseTime(v)
		if err != nil {
			return err
		}
		closing[end] = append(closing[end], string(k))
		return nil
	}); err != nil {
		return err
	}
	if err := deleteFamily(o.store, famClose); err != nil {
		return err
	}
	o.closing = closing
	return nil
}

// closeSessions closes the sessions with End <= bound, found in the close
// index in the store, remembers them as closed until no accepted record can
// reach them, and sets low to the end of the first session left open.
func (o *Operator) closeSessions(bound int64) ([]Result, error) {
	due, next, err := o.scanDue(famClose, bound)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, ck := range due {
		end, key, start, err := ParseCloseKey(ck)
		if err != nil {
			return nil, err
		}
		if out, err = o.closeWindow(out, key, Window{start, end}, StateKey(key, start)); err != nil {
			return nil, err
		}
		if err := o.store.Delete(ck); err != nil {
			return nil, err
		}
		if err := o.store.Put(AppendTime(keyPrefix(famClosed, key), start), AppendTime(nil, end)); err != nil {
			return nil, err
		}
		expiry := satAdd(end, satAdd(o.cfg.Window.gap, o.cfg.Grace))
		if err := o.store.Put(closeKey(famClosedExpiry, expiry, key, start), nil); err != nil {
			return nil, err
		}
		o.xlow = min(o.xlow, expiry)
	}
	o.low = next
	return out, nil
}

// forgetClosed drops closed-session markers no accepted record can reach
// and sets xlow to the expiry of the first one left.
func (o *Operator) forgetClosed(wm int64) error {
	due, next, err := o.scanDue(famClosedExpiry, wm)
	if err != nil {
		return err
	}
	for _, xk := range due {
		_, key, start, err := ParseCloseKey(xk)
		if err != nil {
			return err
		}
		if err := o.store.Delete(AppendTime(keyPrefix(famClosed, key), start)); err != nil {
			return err
		}
		if err := o.store.Delete(xk); err != nil {
			return err
		}
	}
	o.xlow = next
	return nil
}

// saveLow stores low and xlow unless they are still low and xlow, as
// they were read or last saved.
func (o *Operator) saveLow(low, xlow int64) error {
	if o.low == low && o.xlow == xlow {
		return nil
	}
	return o.store.Put(metaLow, AppendTime(AppendTime(make([]byte, 0, 2*timeLen), o.low), o.xlow))
}

// Flush closes every window, as Advance to the end of time; for tests and
// bounded inputs.
func (o *Operator) Flush() ([]Result, error) { return o.Advance(math.MaxInt64) }
