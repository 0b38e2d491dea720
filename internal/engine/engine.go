// Package engine runs compiled pipeline stages on Kafka messages: it decodes
// a message into a record once, passes it down the stage's operator chain,
// encodes what comes out, and turns failures into dead-letter messages with
// their reason. The in-memory test driver and the Kafka runtime both run
// pipelines through it, so a pipeline behaves the same in `runner test` and
// in production.
package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

// Message is a Kafka record as bytes: what a stage reads and writes.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []record.Header
	Timestamp time.Time
}

// DLQ header names. Tools that replay or inspect dead letters rely on them.
const (
	HeaderReason   = "sluice.reason"
	HeaderSource   = "sluice.source"
	HeaderRevision = "sluice.revision"
	HeaderError    = "sluice.error"
	HeaderStep     = "sluice.step"
	HeaderPipeline = "sluice.pipeline"
)

// MaxOutputBytes is the default limit on one encoded output value; larger
// outputs go to the DLQ with reason "oversize" (Kafka's default max message
// size is 1 MiB).
const MaxOutputBytes = 1 << 20

// Emit receives an encoded output message for a topic.
type Emit func(ctx context.Context, m Message) error

// Stage runs one stage of a plan.
type Stage struct {
	plan     *pipeline.Plan
	stage    *pipeline.Stage
	revision string
	maxBytes int
	emit     Emit
	head     catalog.Output
	// fields are the top-level fields of a JSON object input that the
	// stage reads; nil when it needs the whole value.
	fields     *record.FieldSet
	fullDecode bool // never decode only some fields (tests)
	noScratch  bool // never reuse the scratch record (tests)
	// keepsValues: every step keeps values (ValueKeeper) and the input is
	// JSON, so outputs carry the input's bytes.
	keepsValues bool
	// setsField: the last step is a FieldSetter that writes its outputs
	// from the input's bytes, the others keep values (see FieldSetter);
	// records carry their input's bytes, decoded only in the fields read.
	setsField bool
	// transient: every step is transient (Transient), so Process decodes each
	// message into the scratch record, object and values, reused from one
	// message to the next; scratchBusy guards them from a second Process
	// at the same time, which then allocates its own.
	transient    bool
	scratchBusy  atomic.Bool
	scratchRec   record.Record
	scratchValue map[string]any
	scratchVals  record.Scratch
	// compiled runs the stage without records when it is all
	// predicates and flat projections (see compiledStage); nil when not.
	compiled *compiledStage

	// Stateful steps: their links in step order, how their stores are
	// opened, and the tasks (input partitions) seen so far.
	statefulLinks []*link
	tableLinks    map[string]*link // side topic -> the step reading it
	rowTables     map[string]bool  // the side topics that are tables, not streams
	stores        StoreFactory
	// tasks is read on every record, by every worker: a snapshot, copied
	// under tasksMu when a task opens or is dropped (rarely), so that the
	// readers take no lock.
	tasksMu sync.Mutex
	tasks   atomic.Pointer[map[int32]*task]

	// in is the message Process is on, in a stage that ends in a
	// repartition: its records carry it to the next stage (HeaderInput).
	in *Message
	// busy is 1 + the index in stage.Steps of the innermost step a record
	// is in, 0 between steps; BusyStep reads it from another goroutine.
	busy atomic.Int32
}

// BusyStep names the step the record being processed is in, innermost
// first ("" when none is), for a watchdog that finds a record stuck. It
// is safe to call while another goroutine processes.
func (s *Stage) BusyStep() string {
	if i := s.busy.Load(); i > 0 && int(i) <= len(s.stage.Steps) {
		return s.stage.Steps[i-1].Name
	}
	return ""
}

// FieldDemander is implemented by operators that read only some top-level
// fields of an object value, so that the engine can decode only those
// (record.DecodeFields) and skip building the others. FieldDemand gets the
// fields that the steps after the operator need from the value it passes
// on (afterAll: every field) and returns the fields the operator and those
// steps need from its input value (all: every field). A filter adds the
// fields it reads to after; a step that builds a new value from a few
// fields (map) returns just those. An operator that does not implement it
// needs every field, and so do the sink and every topic written.
//
// The answer must be exact or a superset: for an object value holding at
// least the returned fields, the operator and the steps after it must
// produce the same outputs as for the whole value.
type FieldDemander interface {
	FieldDemand(after []string, afterAll bool) (need []string, all bool)
}

// ValueKeeper is implemented by operators that pass on the value they get
// unchanged: they may drop the record, set its key or send it to another
// topic, but never change, replace or rebuild its value (filter, dedupe,
// rekey, route). When every step of a stage keeps values and the stage
// reads and writes JSON, each output's value is the input's bytes, byte
// for byte, rather than a new encoding of the decoded value (as Kafka
// Streams forwards a filtered record's bytes); so the stage decodes only
// the fields its steps read (FieldDemander) and encodes nothing.
type ValueKeeper interface {
	KeepsValue()
}

// FieldSetter is implemented by operators that pass on the value they get
// with one top-level field set, SetsField, and nothing else changed (a
// stream-table join). When such a step is the last of a stage whose other
// steps keep values (ValueKeeper) and the stage reads JSON and writes it to
// the sink, its records carry their input's bytes (record.RawValue) and
// are decoded only in the fields the stage reads and SetsField: the
// operator then writes its output from those bytes (NextEncoded, the
// field appended) instead of decoding and encoding the whole value, or,
// when it cannot, decodes RawValue in full into Value and drops it
// (SetRawValue(nil)) before Next. A record that an earlier step sends
// elsewhere (route) is written as its input's bytes.
type FieldSetter interface {
	// SetsField names the field; "" when this step does not work so.
	SetsField() string
}

// Transient is implemented by operators that can keep nothing of a record
// once Process (or ProcessTask) has returned: not the *Record, not its
// value, not anything inside the value (a field's string, a nested
// object), other than by passing the record to their Output (filter, map,
// dedupe). Transient reports whether this one, as configured, keeps
// nothing: a window that counts does, one that collects values does not.
// When every step of a stage is transient, Process reuses one record and
// one decoded object for message after message instead of allocating
// them; an operator that keeps any of it would see it change under it.
type Transient interface {
	Transient() bool
}

// StageOption configures a Stage.
type StageOption func(*Stage)

// WithRevision names the revision in DLQ headers.
func WithRevision(rev string) StageOption { return func(s *Stage) { s.revision = rev } }

// WithMaxOutputBytes overrides MaxOutputBytes.
func WithMaxOutputBytes(n int) StageOption { return func(s *Stage) { s.maxBytes = n } }

// NewStage prepares stage index of plan; emit receives every output,
// repartition and dead-letter message.
func NewStage(plan *pipeline.Plan, index int, emit Emit, opts ...StageOption) (*Stage, error) {
	if index < 0 || index >= len(plan.Stages) {
		return nil, fmt.Errorf("pipeline %s has no stage %d", plan.Name, index)
	}
	s := &Stage{plan: plan, stage: plan.Stages[index], maxBytes: MaxOutputBytes, emit: emit, stores: memoryStores}
	for _, o := range opts {
		o(s)
	}
	s.keepsValues = s.valuesKept()
	s.setsField = s.fieldSet()
	s.transient = !s.noScratch && s.allTransient()
	s.fields = s.fieldDemand()
	if s.transient {
		s.compiled = s.compileStage()
	}
	// Build the chain back to front: each link's Next runs the following
	// operator; the last one writes the stage's output.
	var next catalog.Output = &tail{s: s}
	if s.stage.Repartition == nil && s.plan.Sink.Format == pipeline.FormatJSON {
		next = &encodedTail{tail{s: s}}
	}
	for i := len(s.stage.Steps) - 1; i >= 0; i-- {
		l := &link{s: s, step: s.stage.Steps[i], next: next, busy: int32(i + 1)}
		if _, ok := l.step.Operator.(catalog.StatefulOperator); ok {
			s.statefulLinks = append([]*link{l}, s.statefulLinks...)
		}
		next = l
	}
	s.head = next
	for i, l := range s.statefulLinks {
		l.slot = i
	}
	if err := s.indexTables(); err != nil {
		return nil, err
	}
	return s, nil
}

// fieldDemand works out which top-level fields of a JSON object input the
// stage reads, from its end back to its start: everything at the end
// (outputs are encoded whole), then each step's FieldDemand, then the
// source's key and timestamp expressions on the first stage. It returns nil
// when the stage needs the whole value or does not read JSON.
func (s *Stage) fieldDemand() *record.FieldSet {
	if s.fullDecode || s.stage.Index == 0 && s.plan.Source.Format == pipeline.FormatRaw {
		return nil
	}
	var need []string
	all := !s.keepsValues // outputs are encoded whole, unless passed on as bytes
	if s.setsField {
		// Written from the input's bytes, with the field set: the step
		// reads whether the input has it already.
		need, all = []string{s.stage.Steps[len(s.stage.Steps)-1].Operator.(FieldSetter).SetsField()}, false
	}
	if rp := s.stage.Repartition; rp != nil && rp.Key != nil && !all {
		// The repartition key is computed from the value at the end.
		need, all = rp.Key.Fields()
	}
	for i := len(s.stage.Steps) - 1; i >= 0; i-- {
		d, ok := s.stage.Steps[i].Operator.(FieldDemander)
		if !ok {
			need, all = nil, true
			continue
		}
		need, all = d.FieldDemand(need, all)
	}
	if s.stage.Index == 0 {
		for _, p := range []*expression.Program{s.plan.Source.Key, s.plan.Source.Timestamp} {
			if p == nil || all {
				continue
			}
			n, a := p.Fields()
			need, all = append(need, n...), a
		}
	}
	if all {
		return nil
	}
	return record.NewFieldSet(need...)
}

// valuesKept reports whether the stage reads JSON and every step keeps
// values (ValueKeeper).
func (s *Stage) valuesKept() bool {
	if s.stage.Index == 0 && s.plan.Source.Format != pipeline.FormatJSON {
		return false
	}
	for _, st := range s.stage.Steps {
		if _, ok := st.Operator.(ValueKeeper); !ok {
			return false
		}
	}
	return true
}

// fieldSet reports whether the stage's last step is a FieldSetter that can
// write its outputs from the input's bytes: the others keep values, the
// stage reads JSON and writes it to the sink, with nothing after the step.
func (s *Stage) fieldSet() bool {
	steps := s.stage.Steps
	if s.keepsValues || len(steps) == 0 || s.stage.Repartition != nil || s.plan.Sink.Format != pipeline.FormatJSON ||
		s.stage.Index == 0 && s.plan.Source.Format != pipeline.FormatJSON {
		return false
	}
	if fs, ok := steps[len(steps)-1].Operator.(FieldSetter); !ok || fs.SetsField() == "" {
		return false
	}
	for _, st := range steps[:len(steps)-1] {
		if _, ok := st.Operator.(ValueKeeper); !ok {
			return false
		}
	}
	return true
}

// allTransient reports whether every step is transient (Transient).
func (s *Stage) allTransient() bool {
	for _, st := range s.stage.Steps {
		if t, ok := st.Operator.(Transient); !ok || !t.Transient() {
			return false
		}
	}
	return true
}

// link runs one step and passes what it emits to next.
type link struct {
	s    *Stage
	step *pipeline.Step
	next catalog.Output
	busy int32 // 1 + the step's index, for Stage.BusyStep
	slot int   // a stateful step's index in statefulLinks and task.steps
}

// stepError remembers which step failed, for the DLQ header.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func (l *link) Next(ctx context.Context, r *record.Record) error {
	prev := l.s.busy.Swap(l.busy)
	defer l.s.busy.Store(prev)
	var err error
	if sop, ok := l.step.Operator.(catalog.StatefulOperator); ok {
		err = l.processState(ctx, sop, r)
	} else {
		err = l.step.Operator.Process(ctx, r, l.next)
	}
	if err != nil {
		var se *stepError
		if errors.As(err, &se) {
			return err
		}
		return &stepError{step: l.step.Name, err: err}
	}
	return nil
}

func (l *link) To(ctx context.Context, topic string, r *record.Record) error {
	return l.s.write(ctx, topic, r)
}

// tail writes what leaves the last step: to the sink, or to the repartition
// topic keyed for the next stage.
type tail struct{ s *Stage }

func (t *tail) Next(ctx context.Context, r *record.Record) error {
	if rp := t.s.stage.Repartition; rp != nil {
		if rp.Key != nil {
			k, err := rp.Key.Eval(r)
			if err != nil {
				return &stepError{step: rp.For, err: err}
			}
			r.Key = k
		}
		return t.s.write(ctx, rp.Topic, r)
	}
	return t.s.write(ctx, t.s.plan.Sink.Topic, r)
}

func (t *tail) To(ctx context.Context, topic string, r *record.Record) error {
	return t.s.write(ctx, topic, r)
}

// encodedTail is the tail of a stage that writes JSON to its sink, with
// no repartition to key: a last step may hand it encoded values.
type encodedTail struct{ tail }

var _ catalog.EncodedOutput = (*encodedTail)(nil)

func (t *encodedTail) NextEncoded(ctx context.Context, r *record.Record, value []byte) error {
	return t.s.writeValue(ctx, t.s.plan.Sink.Topic, r, value)
}

// outputError marks a failure to encode an output, as opposed to an
// operator's failure.
type outputError struct {
	reason catalog.Reason
	err    error
}

func (e *outputError) Error() string { return e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

func (s *Stage) write(ctx context.Context, topic string, r *record.Record) error {
	format := s.plan.Sink.Format
	if topic != s.plan.Sink.Topic {
		format = pipeline.FormatJSON // route targets and repartition topics carry JSON
	}
	var val []byte
	if raw := r.RawValue(); raw != nil && (s.keepsValues || s.setsField) && format == pipeline.FormatJSON {
		// The input's bytes: no step changed the value (a FieldSetter
		// that sets its field drops them, see FieldSetter).
		val = raw
	} else {
		var err error
		if val, err = EncodeValue(r.Value, format); err != nil {
			return &outputError{reason: catalog.ReasonType, err: err}
		}
	}
	return s.writeValue(ctx, topic, r, val)
}

// writeValue writes r to topic with the encoded value val.
func (s *Stage) writeValue(ctx context.Context, topic string, r *record.Record, val []byte) error {
	if len(val) > s.maxBytes {
		return &outputError{reason: catalog.ReasonOversize, err: fmt.Errorf("output to %s is %d bytes, over the %d-byte limit", topic, len(val), s.maxBytes)}
	}
	key, err := r.EncodedKey()
	if err != nil {
		return &outputError{reason: catalog.ReasonType, err: err}
	}
	headers := r.Headers
	if rp := s.stage.Repartition; rp != nil && topic == rp.Topic && s.in != nil {
		headers = s.withOrigin(headers, val)
	}
	if err := s.emit(ctx, Message{Topic: topic, Key: key, Value: val, Headers: headers, Timestamp: r.Timestamp}); err != nil {
		return &EmitError{Err: err}
	}
	return nil
}

// withOrigin returns hs (not changed) and the HeaderInput header naming
// the original input of the message Process is on: the one it carries
// (a later stage's input), or that message itself.
func (s *Stage) withOrigin(hs []record.Header, val []byte) []record.Header {
	origin, ok := originHeader(s.in.Headers)
	if !ok || s.stage.Index == 0 {
		origin = appendOrigin(nil, s.in, val, s.maxBytes)
	}
	out := make([]record.Header, len(hs), len(hs)+1)
	copy(out, hs)
	return append(out, record.Header{Key: HeaderInput, Value: origin})
}

// Process runs one input message through the stage. A message that fails
// anywhere (decode, an operator, encoding an output) is written to the DLQ
// with its reason; Process returns an error only when emitting fails, which
// means the task must stop and retry.
func (s *Stage) Process(ctx context.Context, m Message) error {
	if s.tableLinks != nil && s.IsTable(m.Topic) {
		return s.processTable(ctx, m)
	}
	if s.stage.Repartition != nil {
		return s.processIn(ctx, m)
	}
	return s.process(ctx, m)
}

// processIn is process for a stage that ends in a repartition, whose
// records carry the message they came from (Stage.in). The message is
// copied here, so that only these stages put it on the heap.
func (s *Stage) processIn(ctx context.Context, m Message) error {
	in := m
	s.in = &in
	defer func() { s.in = nil }()
	return s.process(ctx, m)
}

// process is Process for a message of the stage's input.
func (s *Stage) process(ctx context.Context, m Message) error {
	if s.compiled != nil && s.scratchBusy.CompareAndSwap(false, true) {
		handled, err := s.compiled.run(ctx, s, m)
		s.scratchBusy.Store(false)
		if handled {
			return err
		}
	}
	var r *record.Record
	var err error
	if s.transient && s.scratchBusy.CompareAndSwap(false, true) {
		defer s.releaseScratch()
		r, err = s.decode(m, true)
	} else {
		r, err = s.Decode(m)
	}
	if err == nil && s.stateful() {
		var t *task
		if t, err = s.task(m.Partition); err != nil {
			return err // cannot open state: the task must stop, not dead-letter
		}
		if r.Timestamp.After(t.streamTime) {
			t.streamTime = r.Timestamp
		}
		ctx = t.context(ctx)
	}
	if err == nil {
		err = s.head.Next(ctx, r)
	}
	if err == nil {
		return nil
	}
	var emitErr *EmitError
	if errors.As(err, &emitErr) {
		return emitErr.Err
	}
	return s.emit(ctx, s.DeadLetter(m, err))
}

// EmitError wraps a failure of the Emit function so that Process can tell it
// from a record's failure.
type EmitError struct{ Err error }

func (e *EmitError) Error() string { return "emit: " + e.Err.Error() }
func (e *EmitError) Unwrap() error { return e.Err }

// Reason classifies an error from Process's chain.
func Reason(err error) catalog.Reason {
	var oe *outputError
	if errors.As(err, &oe) {
		return oe.reason
	}
	return catalog.ReasonOf(err)
}

// DeadLetter builds the DLQ message for input m that failed with err: the
// original bytes, untouched so they can be replayed, and headers saying why.
// A repartition record is dead-lettered as the input it came from
// (HeaderInput): key, value, timestamp, headers and source.
func (s *Stage) DeadLetter(m Message, err error) Message {
	if s.stage.Index > 0 {
		if b, ok := originHeader(m.Headers); ok {
			if o, oerr := decodeOrigin(b, &m); oerr == nil {
				m = o
			} else {
				m.Headers = withoutOrigin(m.Headers)
			}
		}
	}
	h := append([]record.Header(nil), m.Headers...)
	h = append(h,
		record.Header{Key: HeaderReason, Value: []byte(Reason(err))},
		record.Header{Key: HeaderSource, Value: []byte(m.Topic + "/" + strconv.Itoa(int(m.Partition)) + "/" + strconv.FormatInt(m.Offset, 10))},
		record.Header{Key: HeaderPipeline, Value: []byte(s.plan.Name)},
		record.Header{Key: HeaderRevision, Value: []byte(s.revision)},
		record.Header{Key: HeaderError, Value: []byte(errorText(err))},
	)
	var se *stepError
	if errors.As(err, &se) {
		h = append(h, record.Header{Key: HeaderStep, Value: []byte(se.step)})
	}
	return Message{Topic: s.plan.DLQ, Key: m.Key, Value: m.Value, Headers: h, Timestamp: m.Timestamp}
}

// errorText is the error without the wrapping that only says where it was.
func errorText(err error) string {
	var re *catalog.RecordError
	if errors.As(err, &re) {
		return re.Err.Error()
	}
	var se *stepError
	if errors.As(err, &se) {
		return se.err.Error()
	}
	return err.Error()
}

// Decode turns an input message into a record: the value in the stage's
// input format, the key and timestamp computed by the source's expressions
// on the first stage. Later stages read repartition topics, which carry JSON
// and the key already computed.
func (s *Stage) Decode(m Message) (*record.Record, error) {
	return s.decode(m, false)
}

// releaseScratch forgets the scratch record's contents, so that they do
// not stay alive until the next message, and frees it for reuse.
func (s *Stage) releaseScratch() {
	s.scratchRec = record.Record{}
	clear(s.scratchValue)
	s.scratchVals.Reset()
	s.scratchBusy.Store(false)
}

// decode is Decode; with scratch (held by the caller), into the stage's
// scratch record and object.
func (s *Stage) decode(m Message, scratch bool) (*record.Record, error) {
	var r *record.Record
	if scratch {
		r = &s.scratchRec
		*r = record.Record{Headers: m.Headers, Timestamp: m.Timestamp, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	} else {
		r = &record.Record{Headers: m.Headers, Timestamp: m.Timestamp, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	}
	if s.stage.Index > 0 {
		r.Headers = withoutOrigin(m.Headers)
	}
	if m.Key != nil {
		if scratch {
			r.SetRawKeyIn(m.Key, &s.scratchVals)
		} else {
			r.SetRawKey(m.Key)
		}
	}
	format := s.plan.Source.Format
	if s.stage.Index > 0 {
		format = pipeline.FormatJSON
	}
	if (s.keepsValues || s.setsField) && m.Value != nil {
		r.SetRawValue(m.Value)
	}
	if v, ok := s.decodeFields(m.Value, scratch); ok {
		r.Value = v
	} else {
		v, err := DecodeValue(m.Value, format)
		if err != nil {
			return nil, catalog.Reject(catalog.ReasonDecode, err)
		}
		r.Value = v
	}
	if s.stage.Index > 0 {
		return r, nil
	}
	if p := s.plan.Source.Key; p != nil {
		k, err := p.Eval(r)
		if err != nil {
			return nil, &stepError{step: "source.key", err: err}
		}
		r.Key = k
	}
	if p := s.plan.Source.Timestamp; p != nil {
		t, err := p.Eval(r)
		if err != nil {
			return nil, &stepError{step: "source.timestamp", err: err}
		}
		ts, err := ToTime(t)
		if err != nil {
			return nil, &stepError{step: "source.timestamp", err: catalog.Reject(catalog.ReasonType, err)}
		}
		r.Timestamp = ts
	}
	return r, nil
}

// decodeFields decodes only the fields the stage reads, when it reads only
// some and the value is a JSON object; otherwise the value is decoded in
// full (which also reports invalid input).
func (s *Stage) decodeFields(b []byte, scratch bool) (map[string]any, bool) {
	if s.fields == nil || b == nil {
		return nil, false
	}
	if !scratch {
		return record.DecodeFields(b, s.fields)
	}
	if s.scratchValue == nil {
		s.scratchValue = make(map[string]any, s.fields.Len())
	}
	if !record.DecodeFieldsInto(b, s.fields, s.scratchValue, &s.scratchVals) {
		clear(s.scratchValue)
		return nil, false
	}
	return s.scratchValue, true
}

// DecodeValue decodes a value in the given format.
func DecodeValue(b []byte, format string) (any, error) {
	if format == pipeline.FormatRaw {
		return string(b), nil
	}
	if b == nil {
		return nil, nil // a tombstone
	}
	return record.DecodeJSON(b)
}

// EncodeValue encodes a value in the given format. Raw output writes strings
// as they are and anything else as JSON.
func EncodeValue(v any, format string) ([]byte, error) {
	if format == pipeline.FormatRaw {
		if s, ok := v.(string); ok {
			return []byte(s), nil
		}
	}
	if v == nil {
		return nil, nil
	}
	return record.EncodeJSON(v)
}

// ToTime converts what a timestamp expression returned: a time, an RFC 3339
// string, or epoch milliseconds.
func ToTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case time.Time:
		return t, nil
	case string:
		ts, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339 (like 2026-01-01T00:00:00Z)", t)
		}
		return ts, nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return time.Time{}, fmt.Errorf("timestamp %v is not a number of milliseconds", t)
		}
		return time.UnixMilli(int64(t)).UTC(), nil
	case int:
		return time.UnixMilli(int64(t)).UTC(), nil
	case int64:
		return time.UnixMilli(t).UTC(), nil
	case record.Number:
		return time.Time{}, fmt.Errorf("timestamp %s is not a number of milliseconds in range", t)
	case nil:
		return time.Time{}, errors.New("timestamp is missing")
	default:
		return time.Time{}, fmt.Errorf("timestamp must be a time, an RFC 3339 string or epoch milliseconds, got %s", record.Describe(v))
	}
}
