package keyed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

// Step is the part every keyed operator shares: grouping, lateness, the
// runner and turning emits into records. An operator embeds it and
// implements Process through Ingest with its payload.
type Step struct {
	Name   string
	By     *expression.Program // nil: the record key
	Runner Runner
}

// Configure reads the shared fields `by` and `grace` of conf.
func (s *Step) Configure(conf catalog.Config) error {
	if by, ok := conf.Get("by"); ok {
		p, err := by.Expr(expression.Any)
		if err != nil {
			return err
		}
		s.By = p
	}
	g, ok := conf.Get("grace")
	if !ok {
		return conf.Errorf("%s needs grace: how far behind the stream time a record may be (0s for none)", s.Name)
	}
	d, err := time.ParseDuration(g.String())
	if err != nil || d < 0 || d%time.Millisecond != 0 {
		return g.Errorf("grace %q must be a duration of zero or more, like 0s or 30s", g.String())
	}
	s.Runner.Grace = d.Milliseconds()
	return nil
}

// Duration parses a positive duration field.
func Duration(conf catalog.Config, field string) (int64, error) {
	c, ok := conf.Get(field)
	if !ok {
		return 0, conf.Errorf("missing %s", field)
	}
	d, err := time.ParseDuration(c.String())
	if err != nil || d < time.Millisecond || d%time.Millisecond != 0 {
		return 0, c.Errorf("%s %q must be a positive duration like 30s, 5m or 1h", field, c.String())
	}
	return d.Milliseconds(), nil
}

// Key returns r's grouping key bytes.
func (s *Step) Key(r *record.Record) ([]byte, error) {
	k := r.Key
	if s.By != nil {
		v, err := s.By.Eval(r)
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, &expression.EvalError{Source: s.By.Source(), Err: errors.New("the key is null")}
		}
		k = v
	}
	b, err := record.KeyBytes(k)
	if err != nil {
		return nil, catalog.Reject(catalog.ReasonType, err)
	}
	return b, nil
}

// Process is not used: keyed steps run through ProcessTask.
func (s *Step) Process(context.Context, *record.Record, catalog.Output) error {
	return fmt.Errorf("%s is stateful and runs only through ProcessTask", s.Name)
}

// Ingest runs one record's payload through the runner and emits the results.
func (s *Step) Ingest(ctx context.Context, task catalog.Task, key []byte, r *record.Record, payload []byte, out catalog.Output) error {
	emits, err := s.Runner.Ingest(task.Store(), millis(task.StreamTime(), r.Timestamp), key, r.Timestamp.UnixMilli(), payload)
	if e := Send(ctx, out, emits); e != nil {
		return e
	}
	var late *LateError
	if errors.As(err, &late) {
		return catalog.Reject(catalog.ReasonLate, err)
	}
	return err
}

// OnWatermark fires the timers and applies the buffered records the task's
// stream time passed.
func (s *Step) OnWatermark(ctx context.Context, task catalog.Task, out catalog.Output) error {
	st := task.StreamTime()
	if st.IsZero() {
		return nil
	}
	emits, err := s.Runner.Advance(task.Store(), millis(st, st))
	if e := Send(ctx, out, emits); e != nil {
		return e
	}
	return err
}

// StoredStreamTime implements catalog.StreamTimeRecorder.
func (s *Step) StoredStreamTime(task catalog.Task) (time.Time, bool, error) {
	ms, ok, err := StoredStreamTime(task.Store())
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	return catalog.TimeFromMillis(ms), true, nil
}

// millis is the stream time in ms; a task without one yet (zero) uses the
// record's time.
func millis(st, rec time.Time) int64 {
	switch {
	case st.Equal(catalog.EndOfTime):
		return math.MaxInt64
	case st.IsZero() || st.Before(rec):
		return rec.UnixMilli()
	}
	return st.UnixMilli()
}

// Send emits records keyed by their grouping key, timestamped with their
// event time.
func Send(ctx context.Context, out catalog.Output, emits []Emit) error {
	for _, e := range emits {
		var key any
		if len(e.Key) > 0 {
			key = string(e.Key)
		}
		r := &record.Record{Key: key, Timestamp: time.UnixMilli(e.Time).UTC(), Value: e.Value}
		if err := out.Next(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// FormatTime formats ms as an RFC 3339 UTC time, as outputs carry times.
func FormatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// Advance moves the runner to the task's stream time (as a record that
// needs no state of its own does, so that other keys' timers fire on time)
// and emits what that fires.
func (s *Step) Advance(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	emits, err := s.Runner.Advance(task.Store(), millis(task.StreamTime(), r.Timestamp))
	if e := Send(ctx, out, emits); e != nil {
		return e
	}
	return err
}
