// Package operatortest is the conformance suite every operator runs: it builds
// the operator from each documented example, checks the config against the
// operator's schema, runs the example's input and compares the output, so
// that the docs can never show an example that does not work.
package operatortest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/state"
)

// Build parses stepYAML (the value of a step), validates it against the
// operator's schema and constructs the operator.
func Build(reg *catalog.Registry, name, stepYAML string) (catalog.Operator, error) {
	spec, ok := reg.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("operator %q is not registered", name)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(stepYAML), &doc); err != nil {
		return nil, fmt.Errorf("step YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("step YAML: expected one document")
	}
	conf := catalog.NewConfig(catalog.NewSource("example.yaml", []byte(stepYAML)), doc.Content[0])
	v, err := conf.Value()
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(record.Plain(v)); err != nil {
		return nil, fmt.Errorf("config does not match the schema: %w", err)
	}
	return spec.New(&catalog.Build{Pipeline: "test", Step: name}, conf)
}

// Result is what running records through an operator produced.
type Result struct {
	Out    []*record.Record            // passed to the next step, in order
	Routed map[string][]*record.Record // written to sink topics by To
	All    []*record.Record            // everything emitted, in emission order
	Topics []string                    // parallel to All: the sink topic, "" for the next step
	DLQ    []catalog.Reason            // one per rejected input, in order
	Errs   []error                     // the rejection errors, parallel to DLQ
}

type collector struct{ res *Result }

func (c collector) Next(_ context.Context, r *record.Record) error {
	c.res.Out = append(c.res.Out, r)
	c.res.All = append(c.res.All, r)
	c.res.Topics = append(c.res.Topics, "")
	return nil
}

func (c collector) To(_ context.Context, topic string, r *record.Record) error {
	if c.res.Routed == nil {
		c.res.Routed = map[string][]*record.Record{}
	}
	c.res.Routed[topic] = append(c.res.Routed[topic], r)
	c.res.All = append(c.res.All, r)
	c.res.Topics = append(c.res.Topics, topic)
	return nil
}

// Process runs records through op the way one task would. A stateful
// operator gets an in-memory store; the task's stream time follows the
// records' timestamps, and at the end of the input it becomes
// catalog.EndOfTime, which closes every window.
func Process(ctx context.Context, op catalog.Operator, in []*record.Record) *Result {
	res := &Result{}
	reject := func(err error) {
		res.DLQ = append(res.DLQ, catalog.ReasonOf(err))
		res.Errs = append(res.Errs, err)
	}
	sop, stateful := op.(catalog.StatefulOperator)
	if !stateful {
		for _, r := range in {
			if err := op.Process(ctx, r, collector{res}); err != nil {
				reject(err)
			}
		}
		return res
	}
	task := &memTask{store: state.NewMemory()}
	for _, r := range in {
		if r.Timestamp.After(task.streamTime) {
			task.streamTime = r.Timestamp
		}
		if err := sop.ProcessTask(ctx, task, r, collector{res}); err != nil {
			reject(err)
		}
	}
	task.streamTime = catalog.EndOfTime
	if err := sop.OnWatermark(ctx, task, collector{res}); err != nil {
		reject(err)
	}
	return res
}

// memTask is one task with an in-memory store.
type memTask struct {
	store      catalog.Store
	streamTime time.Time
}

func (t *memTask) Store() catalog.Store  { return t.store }
func (t *memTask) StreamTime() time.Time { return t.streamTime }

// Values wraps plain values as records. An object's "ts" field, when it is
// an RFC 3339 time, becomes the record's timestamp (its event time), as a
// pipeline's `source.timestamp: ts` would make it. Objects and lists are
// copied, so operators that change records in place (set, mask) leave vs
// as they were for the next run.
func Values(vs ...any) []*record.Record {
	out := make([]*record.Record, len(vs))
	for i, v := range vs {
		r := &record.Record{Value: deepCopy(record.Plain(v)), Topic: "in", Offset: int64(i)}
		if m, ok := r.Value.(map[string]any); ok {
			if s, ok := m["ts"].(string); ok {
				if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
					r.Timestamp = t
				}
			}
		}
		out[i] = r
	}
	return out
}

// RunExamples runs every example of the named operator as a subtest: each
// must build, and its input must produce exactly its output (everything emitted,
// passed on or routed, in order) and DLQ reasons.
func RunExamples(t *testing.T, reg *catalog.Registry, name string) {
	t.Helper()
	spec, ok := reg.Lookup(name)
	if !ok {
		t.Fatalf("operator %q is not registered", name)
	}
	if len(spec.Examples) == 0 {
		t.Fatalf("operator %q has no examples; every operator documents at least one", name)
	}
	for _, ex := range spec.Examples {
		t.Run(ex.Title, func(t *testing.T) {
			op, err := Build(reg, name, ex.Step)
			if err != nil {
				t.Fatalf("example does not build: %v", err)
			}
			res := Process(context.Background(), op, Values(ex.Input...))
			var got []any
			for _, r := range res.All {
				got = append(got, r.Value)
			}
			if !record.EqualJSON(got, ex.Output) && !(len(got) == 0 && len(ex.Output) == 0) {
				g, _ := record.EncodeJSON(record.Plain(got))
				w, _ := record.EncodeJSON(record.Plain(ex.Output))
				t.Errorf("output differs\n got: %s\nwant: %s", g, w)
			}
			if fmt.Sprint(res.DLQ) != fmt.Sprint(ex.DLQ) && !(len(res.DLQ) == 0 && len(ex.DLQ) == 0) {
				t.Errorf("DLQ reasons: got %v, want %v (errors: %v)", res.DLQ, ex.DLQ, res.Errs)
			}
		})
	}
}

// Registry returns a fresh registry holding what register adds, failing the
// test if registration fails: the one registry an operator's tests need.
func Registry(t testing.TB, register func(*catalog.Registry) error) *catalog.Registry {
	t.Helper()
	reg := catalog.NewRegistry()
	if err := register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	}
	return v
}
