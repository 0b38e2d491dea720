package operatortest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/state"
)

// Traits are what the conformance suite reads off an operator's spec to
// decide which checks apply, so that a new operator is checked for what it
// declares rather than for what a hand-kept list says.
type Traits struct {
	// Stateful: the spec has State, so the operator must run through
	// ProcessTask and keep its state in the task's store, where it has to
	// survive a restore.
	Stateful bool
	// EventTime: the config has a grace field, so records further behind
	// the stream time than grace are late and go to the DLQ with reason
	// late, and records within it are not.
	EventTime bool
}

// TraitsOf derives an operator's traits from its spec.
func TraitsOf(spec *catalog.Spec) Traits {
	var sch struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal([]byte(spec.Config), &sch)
	_, grace := sch.Properties["grace"]
	return Traits{Stateful: spec.State != nil, EventTime: grace}
}

// Conform runs the whole conformance suite for the named operator, each
// check as a subtest:
//
//   - examples: every documented example builds from its step YAML
//     (validated against the schema) and produces its output and DLQ
//     reasons (RunExamples);
//   - lint: every example's step compiles inside a pipeline file with the
//     pipeline compiler, as `runner plan` and the IDE check it;
//   - deterministic: running an example's input again, in the same order,
//     gives the same outputs (keys, times, topics, values) and DLQ reasons;
//   - restore (stateful operators): the operator is stateful exactly when
//     its spec says so, and an example's input run with its state in the
//     state layer's changelogged store, cut at every record, restored from
//     the changelog into a fresh store and resumed from the last committed
//     record, gives what the uninterrupted run gives;
//   - late (event-time operators, for examples that set grace): a record
//     far more than grace behind the stream time goes to the DLQ with
//     reason late and changes no output; one within grace is not late.
func Conform(t *testing.T, reg *catalog.Registry, name string) {
	t.Helper()
	spec, ok := reg.Lookup(name)
	if !ok {
		t.Fatalf("operator %q is not registered", name)
	}
	tr := TraitsOf(spec)
	t.Run("examples", func(t *testing.T) { RunExamples(t, reg, name) })
	for i, ex := range spec.Examples {
		t.Run(fmt.Sprintf("example%d", i+1), func(t *testing.T) {
			t.Run("lint", func(t *testing.T) { lint(t, reg, name, ex) })
			build := func() catalog.Operator {
				op, err := Build(reg, name, ex.Step)
				if err != nil {
					t.Fatalf("example does not build: %v", err)
				}
				return op
			}
			in := func() []*record.Record { return Values(ex.Input...) }
			t.Run("deterministic", func(t *testing.T) {
				first := Signature(Process(context.Background(), build(), in()))
				for range 3 {
					if again := Signature(Process(context.Background(), build(), in())); again != first {
						t.Fatalf("a second run of the same input differs\nfirst: %s\nagain: %s", first, again)
					}
				}
			})
			t.Run("restore", func(t *testing.T) {
				_, stateful := build().(catalog.StatefulOperator)
				if stateful != tr.Stateful {
					t.Fatalf("the operator's stateful is %v but its spec's State says %v", stateful, tr.Stateful)
				}
				if !tr.Stateful {
					t.Skip("stateless")
				}
				want := RunRestored(t, build, in(), -1, 1)
				for _, every := range []int{1, 2, 3} {
					for cut := 1; cut < len(ex.Input); cut++ {
						if got := RunRestored(t, build, in(), cut, every); got != want {
							t.Fatalf("restored after %d records (commit every %d) differs from the uninterrupted run\n got: %s\nwant: %s", cut, every, got, want)
						}
					}
				}
			})
			t.Run("late", func(t *testing.T) {
				if !tr.EventTime {
					t.Skip("not an event-time operator")
				}
				lateCheck(t, build, ex)
			})
		})
	}
}

// lint compiles the example's step in a one-step pipeline.
func lint(t *testing.T, reg *catalog.Registry, name string, ex catalog.Example) {
	var b strings.Builder
	b.WriteString("apiVersion: sluice/v1\nkind: Pipeline\nmetadata: {name: example}\nspec:\n  source: {topic: in, timestamp: ts}\n  steps:\n    - " + name + ":\n")
	for _, line := range strings.Split(strings.TrimRight(ex.Step, "\n"), "\n") {
		b.WriteString("        " + line + "\n")
	}
	b.WriteString("  sink: {topic: out}\n")
	c := &pipeline.Compiler{Registry: reg}
	if _, err := c.Compile("example.yaml", []byte(b.String())); err != nil {
		t.Fatalf("the example's step does not compile in a pipeline:\n%s\n%v", b.String(), err)
	}
}

// lateCheck appends, to the example's input, copies of an accepted record
// far behind and just within grace.
func lateCheck(t *testing.T, build func() catalog.Operator, ex catalog.Example) {
	var conf map[string]any
	if err := yaml.Unmarshal([]byte(ex.Step), &conf); err != nil {
		t.Fatal(err)
	}
	gs, ok := conf["grace"].(string)
	if !ok {
		t.Skip("the example sets no grace")
	}
	grace, err := time.ParseDuration(gs)
	if err != nil {
		t.Fatal(err)
	}
	in := func() []*record.Record { return Values(ex.Input...) }
	var maxTs time.Time
	for _, r := range in() {
		if r.Timestamp.After(maxTs) {
			maxTs = r.Timestamp
		}
	}
	if maxTs.IsZero() {
		t.Skip("the example's records have no event time")
	}
	base := Process(context.Background(), build(), in())
	// A record the base run accepted, to copy: its fields are valid, so
	// only its time can send the copy to the DLQ.
	rejected := rejectedInputs(t, build, in)
	var model map[string]any
	for i := len(ex.Input) - 1; i >= 0; i-- {
		if m, ok := ex.Input[i].(map[string]any); ok && !rejected[i] {
			model = m
			break
		}
	}
	if model == nil {
		t.Skip("no accepted object record to copy")
	}
	at := func(ts time.Time) []*record.Record {
		m := map[string]any{}
		for k, v := range model {
			m[k] = v
		}
		m["ts"] = ts.UTC().Format(time.RFC3339Nano)
		return Values(append(slices.Clone(ex.Input), m)...)
	}
	late := Process(context.Background(), build(), at(maxTs.Add(-grace-7*24*time.Hour)))
	wantDLQ := append(slices.Clone(base.DLQ), catalog.ReasonLate)
	if fmt.Sprint(late.DLQ) != fmt.Sprint(wantDLQ) {
		t.Errorf("a record a week more than grace (%s) behind the stream time: DLQ %v, want %v (errors %v)", grace, late.DLQ, wantDLQ, late.Errs)
	}
	if g, w := outputs(late), outputs(base); g != w {
		t.Errorf("a late record changed the output\n got: %s\nwant: %s", g, w)
	}
	if grace > 0 {
		within := Process(context.Background(), build(), at(maxTs.Add(-grace/2)))
		for _, r := range within.DLQ[len(base.DLQ):] {
			if r == catalog.ReasonLate {
				t.Errorf("a record half of grace (%s) behind the stream time went to the DLQ as late: %v", grace, within.Errs)
			}
		}
	}
}

// rejectedInputs runs in one record at a time to find which inputs the
// operator rejects.
func rejectedInputs(t *testing.T, build func() catalog.Operator, in func() []*record.Record) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	for i := range in() {
		before := len(Process(context.Background(), build(), in()[:i]).DLQ)
		if len(Process(context.Background(), build(), in()[:i+1]).DLQ) > before {
			out[i] = true
		}
	}
	return out
}

// Signature renders a result for comparison: every output with its topic,
// key, time and value, in order, then the DLQ reasons.
func Signature(res *Result) string {
	return outputs(res) + fmt.Sprintf(" dlq=%v", res.DLQ)
}

func outputs(res *Result) string {
	var b strings.Builder
	for i, r := range res.All {
		topic := res.Topics[i]
		v, err := record.EncodeJSON(record.Plain(r.Value))
		if err != nil {
			v = []byte(err.Error())
		}
		fmt.Fprintf(&b, "[%s %v@%s %s]", topic, r.Key, r.Timestamp.UTC().Format(time.RFC3339Nano), v)
	}
	return b.String()
}

// loggedTask is a task whose store is the state layer's changelogged store
// (state.Logged) over a memory store, as the runtime gives a task, with
// the value the step keeps with it (catalog.TaskCache), which is flushed
// before every commit and lost with the task in a crash.
type loggedTask struct {
	store  *state.Logged
	st     time.Time
	cached any
}

func (t *loggedTask) Store() catalog.Store  { return t.store }
func (t *loggedTask) StreamTime() time.Time { return t.st }
func (t *loggedTask) Cached() any           { return t.cached }
func (t *loggedTask) SetCached(v any)       { t.cached = v }

// flush writes what the step holds back (catalog.StateFlusher).
func (t *loggedTask) flush() error {
	if f, ok := t.cached.(catalog.StateFlusher); ok {
		return f.FlushState()
	}
	return nil
}

type outcome struct {
	outs []string
	dlq  map[int]catalog.Reason
}

type recorder struct{ outs *[]string }

func (c recorder) Next(_ context.Context, r *record.Record) error {
	return c.To(context.Background(), "", r)
}

func (c recorder) To(_ context.Context, topic string, r *record.Record) error {
	v, err := record.EncodeJSON(record.Plain(r.Value))
	if err != nil {
		return err
	}
	*c.outs = append(*c.outs, fmt.Sprintf("[%s %v@%s %s]", topic, r.Key, r.Timestamp.UTC().Format(time.RFC3339Nano), v))
	return nil
}

// RunRestored runs in through a stateful operator as an exactly-once task
// does: its store is a state.Logged whose writes are committed to a
// changelog every `every` records, with the outputs of the same
// transaction. When cut is in [1, len(in)), the task crashes before record
// cut: the uncommitted writes and outputs are lost, a fresh memory store is
// restored from the changelog, the operator is rebuilt, the stream time is
// what the operator recorded (catalog.StreamTimeRecorder; zero otherwise),
// and the input resumes after the last committed record. It returns the
// committed outputs and DLQ reasons by input index, rendered.
func RunRestored(t testing.TB, build func() catalog.Operator, in []*record.Record, cut, every int) string {
	t.Helper()
	ctx := context.Background()
	var changelog []state.Change
	op := build().(catalog.StatefulOperator)
	tk := &loggedTask{store: state.NewLogged(state.NewMemory(), 0)}
	var committed, pending outcome
	committed.dlq, pending.dlq = map[int]catalog.Reason{}, map[int]catalog.Reason{}
	next := 0 // the input after the last commit
	commit := func(upTo int) {
		if err := tk.flush(); err != nil {
			t.Fatal(err)
		}
		for _, c := range tk.store.Drain() {
			changelog = append(changelog, state.Change{Key: slices.Clone(c.Key), Value: slices.Clone(c.Value)})
		}
		if err := tk.store.Committed(int64(len(changelog))); err != nil {
			t.Fatal(err)
		}
		committed.outs = append(committed.outs, pending.outs...)
		for i, r := range pending.dlq {
			committed.dlq[i] = r
		}
		pending = outcome{dlq: map[int]catalog.Reason{}}
		next = upTo
	}
	restored := false
	for i := 0; i < len(in); i++ {
		if i == cut && !restored {
			restored = true
			tk.store.Aborted()
			pending = outcome{dlq: map[int]catalog.Reason{}}
			mem := state.NewMemory()
			if err := mem.Apply(changelog, state.Checkpoint{Offsets: map[int32]int64{0: int64(len(changelog))}}); err != nil {
				t.Fatal(err)
			}
			op = build().(catalog.StatefulOperator)
			tk = &loggedTask{store: state.NewLogged(mem, 0)}
			if rec, ok := op.(catalog.StreamTimeRecorder); ok {
				at, ok, err := rec.StoredStreamTime(tk)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					tk.st = at
				}
			}
			i = next
			if i >= len(in) {
				break
			}
		}
		r := in[i]
		if r.Timestamp.After(tk.st) {
			tk.st = r.Timestamp
		}
		if err := op.ProcessTask(ctx, tk, r.Clone(), recorder{&pending.outs}); err != nil {
			pending.dlq[i] = catalog.ReasonOf(err)
		}
		if (i+1)%every == 0 {
			commit(i + 1)
		}
	}
	tk.st = catalog.EndOfTime
	if err := op.OnWatermark(ctx, tk, recorder{&pending.outs}); err != nil {
		t.Fatal(err)
	}
	commit(len(in))
	return strings.Join(committed.outs, "\n") + fmt.Sprintf("\ndlq=%v", committed.dlq)
}
