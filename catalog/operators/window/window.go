// Package window provides the window operator: windowed aggregation per key
// on event time (tumbling, hopping and session windows) with an explicit
// grace period, emitting final or updated results. The windowing itself is
// internal/window; this package parses the step, evaluates its expressions
// and turns results into records.
package window

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
	win "github.com/sluicehq/sluice/internal/window"
)

// op is a compiled window step. It holds configuration only: every
// task's state is in that task's Store, and its caches in its taskModel.
type op struct {
	cfg   win.Config
	model *win.Prepared       // cfg, validated
	by    *expression.Program // nil: the record key
	// reads are the expressions evaluated on each record (by and the
	// aggregates' inputs), and whole says that an aggregate takes the
	// whole record value (top_n without value): what FieldDemand reports.
	reads []*expression.Program
	whole bool
	// members are the members of a result object in key order, for
	// writing results directly (see encode).
	members []member
}

// member is one member of a result object: an aggregate (its index) or,
// with agg -1, the window bounds; key is its key as the encoder writes it.
type member struct {
	key []byte
	agg int
}

func newWindow(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	o, err := windowed(conf)
	if err != nil {
		return nil, err
	}
	ac, _ := conf.Get("aggregates")
	for _, f := range ac.Fields() {
		a, err := o.aggregate(f.Name, f.Value)
		if err != nil {
			return nil, err
		}
		o.cfg.Aggregates = append(o.cfg.Aggregates, a)
	}
	return o.validate(conf)
}

// validate checks the whole configuration now, so errors are compile errors.
func (o *op) validate(conf catalog.Config) (*op, error) {
	m, err := win.Prepare(o.cfg)
	if err != nil {
		return nil, conf.Errorf("%v", err)
	}
	o.model = m
	o.members = o.members[:0]
	bounds := true
	for i, a := range o.cfg.Aggregates {
		o.members = append(o.members, member{key: record.AppendObjectKey(nil, a.Name), agg: i})
		bounds = bounds && a.Name != "window"
	}
	if bounds {
		o.members = append(o.members, member{key: record.AppendObjectKey(nil, "window"), agg: -1})
	}
	name := func(m member) string {
		if m.agg < 0 {
			return "window"
		}
		return o.cfg.Aggregates[m.agg].Name
	}
	slices.SortFunc(o.members, func(a, b member) int { return strings.Compare(name(a), name(b)) })
	return o, nil
}

// windowed parses what window and top_n share: by, the window, grace, emit.
func windowed(conf catalog.Config) (*op, error) {
	o := &op{}
	if by, ok := conf.Get("by"); ok {
		p, err := by.Expr(expression.Any)
		if err != nil {
			return nil, err
		}
		o.by = p
		o.reads = append(o.reads, p)
	}
	var err error
	switch {
	case has(conf, "tumbling"):
		c, _ := conf.Get("tumbling")
		var size int64
		if size, err = millis(c); err == nil {
			o.cfg.Window, err = win.Tumbling(size)
		}
		err = at(c, err)
	case has(conf, "hopping"):
		c, _ := conf.Get("hopping")
		sc, _ := c.Get("size")
		ac, _ := c.Get("advance")
		size, err1 := millis(sc)
		adv, err2 := millis(ac)
		if err = errors.Join(at(sc, err1), at(ac, err2)); err == nil {
			if o.cfg.Window, err = win.Hopping(size, adv); err != nil {
				err = ac.Errorf("%v", err)
			}
		}
	case has(conf, "session"):
		c, _ := conf.Get("session")
		gc, _ := c.Get("gap")
		var gap int64
		if gap, err = millis(gc); err == nil {
			o.cfg.Window, err = win.Session(gap)
		}
		err = at(gc, err)
	default:
		return nil, conf.Errorf("a window needs one of tumbling, hopping or session")
	}
	if err != nil {
		return nil, err
	}
	gc, _ := conf.Get("grace")
	if o.cfg.Grace, err = millisOrZero(gc); err != nil {
		return nil, at(gc, err)
	}
	o.cfg.Emit = win.EmitFinal
	if e, ok := conf.Get("emit"); ok && e.String() == "update" {
		o.cfg.Emit = win.EmitUpdate
	}
	return o, nil
}

func has(c catalog.Config, name string) bool { _, ok := c.Get(name); return ok }

// at positions err at c unless it already has a position.
func at(c catalog.Config, err error) error {
	if err == nil {
		return nil
	}
	return c.Errorf("%v", err)
}

func millis(c catalog.Config) (int64, error) {
	d, err := time.ParseDuration(c.String())
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30s, 5m or 1h", c.String())
	}
	if d <= 0 || d%time.Millisecond != 0 {
		return 0, fmt.Errorf("%q must be a positive whole number of milliseconds", c.String())
	}
	return d.Milliseconds(), nil
}

func millisOrZero(c catalog.Config) (int64, error) {
	d, err := time.ParseDuration(c.String())
	if err != nil || d < 0 || d%time.Millisecond != 0 {
		return 0, fmt.Errorf("grace %q must be a duration of zero or more, like 0s or 30s", c.String())
	}
	return d.Milliseconds(), nil
}

// funcs maps an aggregate's YAML key to its function.
var funcs = map[string]win.Func{
	"count": win.Count, "sum": win.Sum, "min": win.Min, "max": win.Max, "avg": win.Avg,
	"count_distinct": win.CountDistinct, "percentiles": win.Percentiles,
	"first": win.First, "last": win.Last, "collect": win.Collect, "top_n": win.TopN,
}

// aggregate parses `name: count` or `name: {<func>: <expression>, options}`,
// noting the expressions it evaluates in o.reads.
func (o *op) aggregate(name string, c catalog.Config) (win.Aggregate, error) {
	a := win.Aggregate{Name: name}
	if c.IsScalar() {
		if c.String() != "count" {
			return a, c.Errorf("an aggregate is `count` or a mapping like {sum: amount}, not %q", c.String())
		}
		a.Func = win.Count
		return a, nil
	}
	// collect and top_n take options named like other functions (first,
	// last, by), so they win; otherwise the one function key is it.
	var fn *catalog.Field
	for _, f := range c.Fields() {
		if _, ok := funcs[f.Name]; ok && (fn == nil || f.Name == "collect" || f.Name == "top_n") {
			f := f
			fn = &f
		}
	}
	if fn == nil {
		return a, c.Errorf("an aggregate names one of its functions: %s", "count, sum, min, max, avg, count_distinct, percentiles, first, last, collect, top_n")
	}
	a.Func = funcs[fn.Name]
	p, err := fn.Value.Expr(expression.Any)
	if err != nil {
		return a, err
	}
	a.Input = evaluator(p)
	o.reads = append(o.reads, p)
	if n, ok := c.Get("n"); ok {
		if err := n.Decode(&a.N); err != nil {
			return a, err
		}
	}
	for _, keep := range []struct {
		field string
		keep  win.Keep
	}{{"first", win.KeepFirst}, {"last", win.KeepLast}} {
		if k, ok := c.Get(keep.field); ok && a.Func == win.Collect {
			if err := k.Decode(&a.N); err != nil {
				return a, err
			}
			a.Keep = keep.keep
		}
	}
	if by, ok := c.Get("by"); ok {
		p, err := by.Expr(expression.Any)
		if err != nil {
			return a, err
		}
		a.By = evaluator(p)
		o.reads = append(o.reads, p)
	}
	if at, ok := c.Get("at"); ok {
		if err := at.Decode(&a.Percents); err != nil {
			return a, err
		}
	}
	if pc, ok := c.Get("precision"); ok {
		if err := pc.Decode(&a.Precision); err != nil {
			return a, err
		}
	}
	if err := a.Validate(); err != nil {
		return a, c.Errorf("%v", err)
	}
	return a, nil
}

// evaluator adapts an expression to an aggregate's input: the window model
// hands back whatever Process was given, which is the record.
func evaluator(p *expression.Program) func(any) (any, error) {
	return func(v any) (any, error) {
		r, ok := v.(*record.Record)
		if !ok {
			return nil, fmt.Errorf("window: expected a record, got %T", v)
		}
		return p.Eval(r)
	}
}

// FieldDemand implements engine.FieldDemander: a window reads the fields
// of its grouping key and aggregate inputs, and emits values of its own,
// so what the steps after it read does not matter.
func (o *op) FieldDemand([]string, bool) ([]string, bool) {
	if o.whole {
		return nil, true
	}
	return expression.FieldsOf(o.reads...)
}

// Transient implements engine.Transient: a window keeps nothing of a
// record when its aggregates keep only numbers (and its key's bytes,
// which the model copies); first, last, collect and top_n keep values.
func (o *op) Transient() bool {
	if o.whole {
		return false
	}
	for _, a := range o.cfg.Aggregates {
		switch a.Func {
		case win.Count, win.Sum, win.Min, win.Max, win.Avg, win.CountDistinct, win.Percentiles:
		default:
			return false
		}
	}
	return true
}

// Process is not used: the runtime runs stateful operators through
// ProcessTask with the task's store.
func (o *op) Process(context.Context, *record.Record, catalog.Output) error {
	return errors.New("window is stateful and runs only through ProcessTask")
}

// ProcessTask adds r to its windows and emits what update mode emits.
func (o *op) ProcessTask(ctx context.Context, task catalog.Task, r *record.Record, out catalog.Output) error {
	var key []byte
	var err error
	if o.by == nil {
		key, err = r.EncodedKey() // read-only: the model copies what it keeps
	} else {
		var v any
		if v, err = o.by.Eval(r); err != nil {
			return err
		}
		key, err = record.KeyBytes(v)
	}
	if err != nil {
		return catalog.Reject(catalog.ReasonType, err)
	}
	m, err := o.open(task)
	if err != nil {
		return err
	}
	if st := task.StreamTime(); !st.IsZero() {
		// Catch the model up with the task's clock first, so lateness is
		// judged against it.
		if results, err := m.Advance(st.UnixMilli()); err != nil {
			return o.failed(task, m, err)
		} else if err := o.emit(ctx, out, m, results); err != nil {
			return err
		}
	}
	// The key is the input's bytes, which nothing changes, or a fresh
	// encoding: the results can keep it.
	results, err := m.ProcessShared(key, r.Timestamp.UnixMilli(), r)
	if err != nil {
		var re *win.RecordError
		if errors.As(err, &re) {
			return catalog.Reject(reason(re.Reason), re) // the model is unchanged
		}
		return o.failed(task, m, err)
	}
	return o.emit(ctx, out, m, results)
}

// open returns the task's window model: the one kept with the task
// (catalog.TaskCache), which follows every write it makes and holds the
// accumulators it changes until the runtime flushes it before a commit
// (win.WriteBack), or one read from the task's store that writes through.
func (o *op) open(task catalog.Task) (*taskModel, error) {
	c, ok := task.(catalog.TaskCache)
	if !ok {
		m, err := o.model.Open(task.Store(), win.AccumulatorResults())
		return &taskModel{Operator: m}, err
	}
	if m, ok := c.Cached().(*taskModel); ok {
		return m, nil
	}
	m, err := o.model.Open(task.Store(), win.WriteBack(), win.AccumulatorResults())
	if err != nil {
		return nil, err
	}
	tm := &taskModel{Operator: m}
	c.SetCached(tm)
	return tm, nil
}

// taskModel is what a window keeps with a task: its model, and the record
// results written directly (see emit) go out in, one after another, with
// the scratch its key is held in.
type taskModel struct {
	*win.Operator
	out  record.Record
	keys record.Scratch
	// bounds are the formatted bounds of the window this task emitted
	// last: most of its outputs in a row are of one window, and
	// formatting times is costly. Kept per task, as tasks on different
	// workers are in different windows and would take turns replacing
	// one shared entry.
	bounds *bounds
	// slab is where encode writes output values: the records produced
	// keep them.
	slab record.Slab
}

// failed forgets the task's model after a store error, which may have
// come between two writes of one change: the next record reads the model
// from the store again. What the model holds back is written first, as
// the records before this one changed it; when the store fails that too,
// it is failing as a whole, and the runtime restores it.
func (o *op) failed(task catalog.Task, m *taskModel, err error) error {
	if c, ok := task.(catalog.TaskCache); ok {
		err = errors.Join(err, m.FlushState())
		c.SetCached(nil)
	}
	return err
}

// StoredStreamTime implements catalog.StreamTimeRecorder.
func (o *op) StoredStreamTime(task catalog.Task) (time.Time, bool, error) {
	ms, ok, err := win.StoredStreamTime(task.Store())
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	return catalog.TimeFromMillis(ms), true, nil
}

// OnWatermark closes the windows the task's stream time has passed.
func (o *op) OnWatermark(ctx context.Context, task catalog.Task, out catalog.Output) error {
	m, err := o.open(task)
	if err != nil {
		return err
	}
	st := int64(math.MaxInt64)
	if t := task.StreamTime(); !t.Equal(catalog.EndOfTime) {
		st = t.UnixMilli()
	}
	results, err := m.Advance(st)
	if err != nil {
		return o.failed(task, m, err)
	}
	return o.emit(ctx, out, m, results)
}

func reason(r string) catalog.Reason {
	switch r {
	case win.ReasonLate:
		return catalog.ReasonLate
	case win.ReasonType:
		return catalog.ReasonType
	case win.ReasonExpression:
		return catalog.ReasonExpression
	}
	return catalog.ReasonError
}

// emit turns results into records keyed by the grouping key: the value holds
// the window bounds and the aggregates, the timestamp is the window's end.
// A retraction (update mode, a session merged away) is a null value. When
// the results go straight to the sink (catalog.EncodedOutput) their values
// are written directly, byte for byte as the sink would encode them.
func (o *op) emit(ctx context.Context, out catalog.Output, m *taskModel, results []win.Result) error {
	enc, _ := out.(catalog.EncodedOutput)
	for _, res := range results {
		if enc != nil && !res.Retract {
			if b, ok := o.encode(m, res); ok {
				// Written out before NextEncoded returns: the task's
				// output record serves every such result.
				r := &m.out
				*r = record.Record{Timestamp: time.UnixMilli(res.Window.End)}
				if len(res.Key) > 0 {
					r.SetRawKeyIn(res.Key, &m.keys)
				}
				err := enc.NextEncoded(ctx, r, b)
				*r = record.Record{}
				m.keys.Reset()
				if err != nil {
					return err
				}
				continue
			}
		}
		// The key as Kafka carries it: the grouping key's bytes (the
		// result's own copy, or the input's, which nothing changes).
		r := &record.Record{Timestamp: time.UnixMilli(res.Window.End)}
		if len(res.Key) > 0 {
			r.SetRawKeyOwned(res.Key)
		}
		if !res.Retract {
			// The result's map is the model's fresh copy: it becomes the
			// value. An aggregate named window hides the bounds.
			v := m.Values(res)
			for n, x := range v {
				v[n] = record.Plain(x)
			}
			if _, ok := v["window"]; !ok {
				b := m.formatBounds(res.Window)
				v["window"] = map[string]any{"start": b.start, "end": b.end}
			}
			r.Value = v
		}
		if err := out.Next(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// encode writes a result's value as the sink would encode the map emit
// otherwise builds: members in key order, each value as the encoder writes
// it. It returns false for a value the encoder leaves to the JSON library.
// The value is carved from m's slab, and the output keeps it.
func (o *op) encode(m *taskModel, res win.Result) ([]byte, bool) {
	b := m.slab.Buf(64 + 16*len(o.members))
	b = append(b, '{')
	for i, mb := range o.members {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, mb.key...)
		if mb.agg < 0 {
			bs := m.formatBounds(res.Window)
			if bs.json == nil {
				return nil, false
			}
			b = append(b, bs.json...)
			continue
		}
		var ok bool
		if b, ok = record.AppendObjectValue(b, record.Plain(res.Accs[mb.agg].Result())); !ok {
			return nil, false
		}
	}
	return m.slab.Keep(append(b, '}')), true
}

// bounds are a window's start and end as RFC 3339 UTC times, held as
// values of the output (strings, which nothing changes in place), and
// the JSON of the bounds object they make.
type bounds struct {
	w          win.Window
	start, end any
	json       []byte
}

// formatBounds returns w's bounds.
func (m *taskModel) formatBounds(w win.Window) *bounds {
	if b := m.bounds; b != nil && b.w == w {
		return b
	}
	b := &bounds{w: w,
		start: time.UnixMilli(w.Start).UTC().Format(time.RFC3339Nano),
		end:   time.UnixMilli(w.End).UTC().Format(time.RFC3339Nano),
	}
	b.json, _ = record.EncodeJSON(map[string]any{"start": b.start, "end": b.end})
	m.bounds = b
	return b
}
