package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

// Operator is one compiled step of a pipeline.
//
// Process handles one record and passes zero or more records on through out.
// Operators are built once per revision and shared by every task of the
// pipeline, so Process must be safe for concurrent use; an operator that
// needs per-call scratch space pools it.
//
// Process may change r in place: the runtime hands each record to exactly one
// chain. An operator that emits several records from one (explode) must clone.
//
// A returned error sends the pipeline's input record to the DLQ. Wrap it
// with Reject to choose the reason; an *expression.EvalError is reported with
// reason "expression" and any other error with reason "error".
type Operator interface {
	Process(ctx context.Context, r *record.Record, out Output) error
}

// OperatorFunc adapts a function to Operator.
type OperatorFunc func(ctx context.Context, r *record.Record, out Output) error

// Process calls f.
func (f OperatorFunc) Process(ctx context.Context, r *record.Record, out Output) error {
	return f(ctx, r, out)
}

// Output receives what an operator emits.
type Output interface {
	// Next passes r to the following step (or the pipeline's sink after the
	// last step).
	Next(ctx context.Context, r *record.Record) error
	// To writes r straight to the named sink topic; only operators that
	// declare the topic through Router may use it.
	To(ctx context.Context, topic string, r *record.Record) error
}

// EncodedOutput is implemented by the Output of a last step whose records
// go to the sink as JSON with nothing after to read them. A step that
// builds its outputs (a window's results) may then write a record's value
// itself, in the sink's encoding (record.AppendObjectKey and
// AppendObjectValue, keys in order), and save building a map to encode.
type EncodedOutput interface {
	Output
	// NextEncoded is Next for r with the JSON value value; r.Value is not
	// read. The output keeps value.
	NextEncoded(ctx context.Context, r *record.Record, value []byte) error
}

// Router is implemented by operators that write to sink topics of their own
// (route), so that the plan knows every topic a pipeline writes.
type Router interface {
	Topics() []string
}

// Reason says why a record went to the DLQ. It is written to the
// sluice.reason header and matched by expect_dlq in tests.
type Reason string

// The reasons the runtime and the built-in operators use.
const (
	ReasonDecode     Reason = "decode"     // input bytes are not in the source format
	ReasonExpression Reason = "expression" // an expression failed on this record
	ReasonTimeout    Reason = "timeout"    // a script ran past its per-record budget
	ReasonScript     Reason = "script"     // a script threw
	ReasonType       Reason = "type"       // a value has the wrong type for the step
	ReasonOversize   Reason = "oversize"   // an output is larger than the limit
	ReasonLate       Reason = "late"       // an event arrived after its window closed
	ReasonResource   Reason = "resource"   // a script went past its memory budget
	ReasonError      Reason = "error"      // any other failure
)

// RecordError is a failure that sends one record to the DLQ.
type RecordError struct {
	Reason Reason
	Err    error
}

func (e *RecordError) Error() string { return fmt.Sprintf("%s: %v", e.Reason, e.Err) }
func (e *RecordError) Unwrap() error { return e.Err }

// Reject returns an error that sends the record to the DLQ with reason.
func Reject(reason Reason, err error) error {
	return &RecordError{Reason: reason, Err: err}
}

// Rejectf is Reject with a formatted message.
func Rejectf(reason Reason, format string, args ...any) error {
	return &RecordError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ReasonOf classifies an error returned by an operator.
func ReasonOf(err error) Reason {
	var re *RecordError
	if errors.As(err, &re) {
		return re.Reason
	}
	var ee *expression.EvalError
	if errors.As(err, &ee) {
		return ReasonExpression
	}
	if errors.Is(err, record.ErrNotJSON) {
		return ReasonDecode
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ReasonTimeout
	}
	return ReasonError
}

// ObjectValue returns r's value as an object or a RecordError with reason
// "type", for operators that work on fields.
func ObjectValue(r *record.Record) (map[string]any, error) {
	if m, ok := r.Value.(map[string]any); ok {
		return m, nil
	}
	return nil, Rejectf(ReasonType, "expected a JSON object value, got %s", TypeName(r.Value))
}

// TypeName names a decoded JSON value's type for messages.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, int, int64, record.Number:
		return "number"
	default:
		return fmt.Sprintf("%T", v)
	}
}
