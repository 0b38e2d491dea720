package driver_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/driver"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

func compile(t testing.TB, src string) *pipeline.Plan {
	t.Helper()
	p, err := (&pipeline.Compiler{Registry: all.New()}).Compile("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func compileB(b *testing.B, src string) *pipeline.Plan { return compile(b, src) }

func header(m engine.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// A script that never returns must cost only its own record: that record goes
// to the DLQ with reason timeout, and the next record is processed normally.
func TestRunawayScriptGoesToDLQAndNextRecordFlows(t *testing.T) {
	p := compile(t, `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: loop}
spec:
  source: {topic: in}
  steps:
    - script:
        timeout: 20ms
        source: |
          function process(r) {
            if (r.value.spin) { while (true) {} }
            r.value.seen = true;
            return r.value;
          }
  sink: {topic: out}
`)
	d, err := driver.New(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Produce(ctx, engine.Message{Key: []byte("a"), Value: []byte(`{"spin": true}`)}); err != nil {
		t.Fatal(err)
	}
	if err := d.Produce(ctx, engine.Message{Key: []byte("b"), Value: []byte(`{"n": 1}`)}); err != nil {
		t.Fatal(err)
	}
	dlq := d.Topic("loop.dlq")
	if len(dlq) != 1 {
		t.Fatalf("DLQ has %d records, want 1", len(dlq))
	}
	if r := header(dlq[0], engine.HeaderReason); r != "timeout" {
		t.Errorf("reason %q, want timeout", r)
	}
	if s := header(dlq[0], engine.HeaderSource); s != "in/0/0" {
		t.Errorf("source header %q, want in/0/0", s)
	}
	if st := header(dlq[0], engine.HeaderStep); st != "script" {
		t.Errorf("step header %q, want script", st)
	}
	if string(dlq[0].Value) != `{"spin": true}` {
		t.Errorf("DLQ value %q is not the original bytes", dlq[0].Value)
	}
	out := d.Topic("out")
	if len(out) != 1 || !jsonValue(t, out[0].Value, map[string]any{"n": 1, "seen": true}) || string(out[0].Key) != "b" {
		t.Fatalf("output %+v, want the second record processed", out)
	}
}

// Oversize outputs are rejected, not produced.
func TestOversizeOutputGoesToDLQ(t *testing.T) {
	p := compile(t, `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: big}
spec:
  source: {topic: in}
  steps:
    - map: {s: "repeat(s, 100)"}
  sink: {topic: out}
`)
	var got []engine.Message
	st, err := engine.NewStage(p, 0, func(_ context.Context, m engine.Message) error {
		got = append(got, m)
		return nil
	}, engine.WithMaxOutputBytes(500))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Process(context.Background(), engine.Message{Topic: "in", Value: []byte(`{"s": "0123456789"}`)}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Topic != "big.dlq" || header(got[0], engine.HeaderReason) != "oversize" {
		t.Fatalf("got %+v, want one oversize dead letter", got)
	}
}

// The runner's test command must fail, with the position of the expectation
// and a diff, when an example's expectation is wrong.
func TestRunnerReportsFailuresWithPositions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("p.yaml", `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: double}
spec:
  source: {topic: in}
  steps:
    - map: {n: n * 2}
  sink: {topic: out}
`)
	write("p_test.yaml", `pipeline: double
tests:
  - name: doubles
    input: [{value: {n: 2}}]
    expect: [{value: {n: 4}}]
  - name: wrong on purpose
    input: [{value: {n: 2}}, {value: {n: 3}}]
    expect:
      - value: {n: 5}
  - name: unexpected dead letter
    input: [{raw: "{"}]
`)
	var out bytes.Buffer
	r := &driver.Runner{Registry: all.New(), Out: &out}
	sum, err := r.Run(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Passed != 1 || sum.Failed != 2 || sum.OK() {
		t.Fatalf("summary %+v, want 1 passed 2 failed\n%s", sum, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"PASS " + filepath.Join(dir, "p_test.yaml") + ": doubles",
		"FAIL " + filepath.Join(dir, "p_test.yaml") + ":6:5: wrong on purpose",
		filepath.Join(dir, "p_test.yaml") + ":9:9: out record 1: value differs",
		"out record 2: produced but not expected",
		`unexpected dead letter, reason "decode"`,
		"1 passed, 2 failed",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

// An operator panic is a test failure with a message, not a crashed run.
func TestPanickingOperatorFailsTheTest(t *testing.T) {
	reg := all.New().Clone()
	if err := reg.Register(catalog.Spec{
		Name: "boom", Summary: "Panics.", Config: `{"type": "object"}`,
		New: func(*catalog.Build, catalog.Config) (catalog.Operator, error) {
			return catalog.OperatorFunc(func(context.Context, *record.Record, catalog.Output) error { panic("kaboom") }), nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	p, err := (&pipeline.Compiler{Registry: reg}).Compile("p.yaml", []byte(`apiVersion: sluice/v1
kind: Pipeline
metadata: {name: boom}
spec:
  source: {topic: in}
  steps: [{boom: {}}]
  sink: {topic: out}
`))
	if err != nil {
		t.Fatal(err)
	}
	failures := driver.RunCase(context.Background(), p, &driver.Case{Input: []driver.Input{{Value: map[string]any{"a": 1.0}, HasValue: true}}})
	if len(failures) != 1 || !strings.Contains(failures[0], "operator panicked: kaboom") {
		t.Fatalf("failures %q, want one naming the panic", failures)
	}
}

func TestDiffNamesFields(t *testing.T) {
	p := compile(t, `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: d}
spec:
  source: {topic: in}
  steps: [{map: {a: a, b: {c: c}}}]
  sink: {topic: out}
`)
	c := &driver.Case{
		Input:  []driver.Input{{Value: map[string]any{"a": 1, "c": 2}, HasValue: true}},
		Expect: []driver.Expect{{Value: map[string]any{"a": 1.0, "b": map[string]any{"c": 3}, "d": true}}},
	}
	failures := driver.RunCase(context.Background(), p, c)
	if len(failures) != 1 {
		t.Fatalf("failures %q", failures)
	}
	for _, want := range []string{"~ b.c: want 3, got 2", "- d: true (missing)"} {
		if !strings.Contains(failures[0], want) {
			t.Errorf("diff lacks %q:\n%s", want, failures[0])
		}
	}
	if strings.Contains(failures[0], "a:") {
		t.Errorf("diff mentions the equal field a:\n%s", failures[0])
	}
}

// jsonValue reports whether b decodes to want, numbers compared by value
// (how a script returns a JavaScript number is the script's business).
func jsonValue(t *testing.T, b []byte, want any) bool {
	t.Helper()
	v, err := record.DecodeJSON(b)
	return err == nil && record.EqualJSON(v, want)
}

// Numbers keep their kind from input to output: integers are ints in
// expressions (so % works) and are written back as integers, and a float
// that is whole is written with ".0", as Python's json does. Values that
// no step changes pass as their bytes.
func TestNumbersKeepTheirKind(t *testing.T) {
	p := compile(t, `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: n}
spec:
  source: {topic: in}
  steps:
    - filter: id % 2 == 0
    - map: {id: id, w: w, next: id + 1, half: id / 2, big: big, scaled: w * 2}
  sink: {topic: out}
`)
	d, err := driver.New(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range []string{`{"id": 3, "w": 1.0}`, `{"id": 4, "w": 4.0, "big": 123456789012345678901234567890}`} {
		if err := d.Produce(ctx, engine.Message{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if dlq := d.Topic("n.dlq"); len(dlq) != 0 {
		t.Fatalf("dead letters: %s", header(dlq[0], engine.HeaderError))
	}
	out := d.Topic("out")
	want := `{"big":123456789012345678901234567890,"half":2.0,"id":4,"next":5,"scaled":8.0,"w":4.0}`
	if len(out) != 1 || string(out[0].Value) != want {
		t.Fatalf("output %+v, want %s", out, want)
	}
}

// A filter whose predicate gives a number names the problem in the dead
// letter's sluice.error header.
func TestFilterTypeErrorIsNamed(t *testing.T) {
	p := compile(t, `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: f}
spec:
  source: {topic: in}
  steps:
    - filter: speed
    - route: [{when: flag, to: flagged}]
  sink: {topic: out}
`)
	d, err := driver.New(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range []string{`{"speed": 1.5}`, `{"speed": true, "flag": "yes"}`} {
		if err := d.Produce(ctx, engine.Message{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	dlq := d.Topic("f.dlq")
	want := []string{"filter must evaluate to a bool, got float64 (1.5)", `route when must evaluate to a bool, got string ("yes")`}
	if len(dlq) != len(want) {
		t.Fatalf("%d dead letters, want %d", len(dlq), len(want))
	}
	for i, w := range want {
		if got := header(dlq[i], engine.HeaderError); got != w {
			t.Errorf("dead letter %d: sluice.error %q, want %q", i, got, w)
		}
		if got := header(dlq[i], engine.HeaderReason); got != "expression" {
			t.Errorf("dead letter %d: reason %q", i, got)
		}
	}
}

// The test-file parser refuses the deep YAML attacks of the pipeline
// compiler's testdata before parsing them, cheaply and with a position.
func TestTestFileAttacksAreCheap(t *testing.T) {
	files, err := filepath.Glob("../pipeline/testdata/attacks/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("attack files: %v, %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err = driver.ParseTestFile("x_test.yaml", data)
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "nested deeper than") || !strings.HasPrefix(err.Error(), "x_test.yaml:") {
			t.Errorf("%s: got %v, want the positioned depth limit", f, err)
		}
		if bytes := after.TotalAlloc - before.TotalAlloc; bytes > 8<<20 || took > 2*time.Second {
			t.Errorf("%s: allocated %d bytes in %v; want under 8 MiB and 2s", f, bytes, took)
		}
	}
}
