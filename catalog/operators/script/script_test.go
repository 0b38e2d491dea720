package script_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/script"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func registry(t testing.TB) *catalog.Registry {
	return operatortest.Registry(t, script.Register)
}

func build(t testing.TB, step string) catalog.Operator {
	t.Helper()
	op, err := operatortest.Build(registry(t), "script", step)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return op
}

// newDirect calls the constructor without schema validation, with side files.
func newDirect(step string, files fstest.MapFS) (catalog.Operator, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(step), &doc); err != nil {
		return nil, err
	}
	var n *yaml.Node
	if len(doc.Content) > 0 {
		n = doc.Content[0]
	}
	b := &catalog.Build{Pipeline: "test", Step: "script"}
	if files != nil {
		b.Files = files
	}
	return script.New(b, catalog.NewConfig(catalog.NewSource("example.yaml", []byte(step)), n))
}

func values(res *operatortest.Result) []any {
	out := []any{}
	for _, r := range res.Out {
		out = append(out, r.Value)
	}
	return out
}

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, registry(t), "script")
}

func TestTimeoutThenNextRecord(t *testing.T) {
	op := build(t, `timeout: 20ms
source: |
  function process(r) {
    if (r.value.loop) { while (true) {} }
    return {n: r.value.n + 1};
  }`)
	start := time.Now()
	res := operatortest.Process(context.Background(), op, operatortest.Values(
		map[string]any{"loop": true, "n": 1},
		map[string]any{"n": 2},
		map[string]any{"loop": true, "n": 3},
		map[string]any{"n": 4},
	))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s: the timeout did not stop the loop", d)
	}
	if fmt.Sprint(res.DLQ) != "[timeout timeout]" {
		t.Fatalf("DLQ: got %v (%v), want [timeout timeout]", res.DLQ, res.Errs)
	}
	if got := res.Errs[0].Error(); got != "timeout: script ran past its budget of 20ms (tried 2 times)" {
		t.Errorf("error: %q", got)
	}
	if want := []any{map[string]any{"n": 3.0}, map[string]any{"n": 5.0}}; !record.EqualJSON(values(res), want) {
		t.Errorf("output: got %v, want %v", values(res), want)
	}
}

func TestThrow(t *testing.T) {
	op := build(t, `source: |
  function process(r) {
    if (r.value.bad) {
      throw new Error("bad record " + r.value.id);
    }
    return JSON.parse(r.value.text);
  }`)
	res := operatortest.Process(context.Background(), op, operatortest.Values(
		map[string]any{"bad": true, "id": 7},
		map[string]any{"text": "{"},
		map[string]any{"text": `{"ok": true}`},
	))
	if fmt.Sprint(res.DLQ) != "[script script]" {
		t.Fatalf("DLQ: got %v (%v)", res.DLQ, res.Errs)
	}
	// The error is made on line 3 of the script, column 11 (new Error); the
	// block starts after line 1 and is indented by two.
	if got, want := res.Errs[0].Error(), "script: Error: bad record 7 at example.yaml:4:13"; got != want {
		t.Errorf("error:\n got %s\nwant %s", got, want)
	}
	if got, want := res.Errs[1].Error(), "script: SyntaxError: Unexpected end of JSON input (EOF) at example.yaml:6:22"; got != want {
		t.Errorf("error:\n got %s\nwant %s", got, want)
	}
	if !record.EqualJSON(values(res), []any{map[string]any{"ok": true}}) {
		t.Errorf("output: %v", values(res))
	}
}

func TestRecordShapeAndResults(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	tests := []struct {
		name, body string
		want       []any
		reason     string
		message    string
	}{
		{name: "record fields", body: `return {k: r.key, ts: r.timestamp, h: r.headers, keys: Object.keys(r.value)};`,
			want: []any{map[string]any{"k": "car-1", "ts": float64(ts.UnixMilli()), "h": map[string]any{"src": "b"}, "keys": []any{"a", "b", "c"}}}},
		{name: "string value", body: `return "s";`, want: []any{"s"}},
		{name: "number value", body: `return 1 + 2;`, want: []any{3.0}},
		{name: "undefined drops", body: `return;`, want: []any{}},
		{name: "null drops", body: `return null;`, want: []any{}},
		{name: "empty array drops", body: `return [];`, want: []any{}},
		{name: "array skips nulls", body: `return [1, null, undefined, 2];`, want: []any{1.0, 2.0}},
		{name: "proto key kept", body: `return JSON.parse('{"__proto__": {"x": 1}}');`, want: []any{map[string]any{"__proto__": map[string]any{"x": 1.0}}}},
		{name: "wrapped array", body: `return [[1, 2]];`, want: []any{[]any{1.0, 2.0}}},
		{name: "undefined properties left out", body: `return {a: undefined, b: [undefined]};`, want: []any{map[string]any{"b": []any{nil}}}},
		{name: "date", body: `return {d: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6))};`, want: []any{map[string]any{"d": "2026-01-02T03:04:05.006Z"}}},
		{name: "wrappers", body: `return [new String("s"), new Number(2)];`, want: []any{"s", 2.0}},
		{name: "getter", body: `var o = {}; Object.defineProperty(o, "x", {get: function () { return 5; }, enumerable: true}); return o;`, want: []any{map[string]any{"x": 5.0}}},
		{name: "function", body: `return {f: function () {}};`, reason: "script", message: "script: process returned a function at f, which is not a JSON value"},
		{name: "NaN", body: `return {a: [0/0]};`, reason: "script", message: "script: process returned NaN at a[0], which is not a JSON value"},
		{name: "bigint", body: `return [BigInt(1)];`, reason: "script", message: "script: process returned a BigInt at [0], which is not a JSON value"},
		{name: "cycle", body: `var o = {}; o.self = o; return o;`, reason: "script", message: "nested deeper than 1000 levels (does it contain itself?)"},
		{name: "exponential sharing", body: `var o = {}; for (var i = 0; i < 40; i++) o = {a: o, b: o}; return o;`, reason: "oversize", message: "oversize: the script's result has more than 262144 values"},
		{name: "huge sparse array", body: `var a = []; a.length = 4000000000; return {a: a};`, reason: "oversize", message: "an array of length 4000000000"},
		{name: "recursion", body: `function f(n) { return f(n + 1); } return f(0);`, reason: "script", message: "script: the call stack grew past 10000 frames at example.yaml:3:"},
		{name: "throw a string", body: `throw "plain";`, reason: "script", message: "script: plain at example.yaml:3:"},
		{name: "reference error", body: `return nosuch.x;`, reason: "script", message: "script: ReferenceError: nosuch is not defined at example.yaml:3:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := build(t, "timeout: 2s\nsource: |\n  function process(r) { "+tc.body+" }\n")
			in := &record.Record{
				Key:       "car-1",
				Value:     map[string]any{"c": 1.0, "a": "x", "b": nil},
				Timestamp: ts,
				Headers:   []record.Header{{Key: "src", Value: []byte("a")}, {Key: "src", Value: []byte("b")}},
			}
			res := operatortest.Process(context.Background(), op, []*record.Record{in})
			if tc.reason != "" {
				if len(res.DLQ) != 1 || string(res.DLQ[0]) != tc.reason {
					t.Fatalf("DLQ: got %v (%v), want [%s]", res.DLQ, res.Errs, tc.reason)
				}
				if !strings.Contains(res.Errs[0].Error(), tc.message) {
					t.Errorf("error %q does not contain %q", res.Errs[0], tc.message)
				}
				return
			}
			if len(res.DLQ) != 0 {
				t.Fatalf("DLQ: %v", res.Errs)
			}
			if got := values(res); !record.EqualJSON(got, tc.want) {
				g, _ := record.EncodeJSON(got)
				w, _ := record.EncodeJSON(record.Plain(tc.want))
				t.Errorf("got  %s\nwant %s", g, w)
			}
			for _, r := range res.Out {
				if r.Key != "car-1" || !r.Timestamp.Equal(ts) || len(r.Headers) != 2 {
					t.Errorf("metadata not kept: %+v", r)
				}
			}
		})
	}
}

// TestProtoKey checks that a "__proto__" field reaches the script as an
// ordinary property and comes back unchanged.
func TestProtoKey(t *testing.T) {
	op := build(t, "source: 'function process(r) { r.value.keys = Object.keys(r.value).join(); return r.value; }'")
	in := decodeJSON(t, `{"__proto__": {"polluted": true}, "a": 1}`)
	res := operatortest.Process(context.Background(), op, operatortest.Values(in))
	want := decodeJSON(t, `{"__proto__": {"polluted": true}, "a": 1, "keys": "__proto__,a"}`)
	if len(res.Out) != 1 || !record.EqualJSON(res.Out[0].Value, want) {
		t.Errorf("got %v (%v)", values(res), res.Errs)
	}
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	v, err := record.DecodeJSON([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestNoHostFiles checks that code compiled at run time cannot make the
// engine read host files through a source map comment: reading the FIFO
// would block until a writer opens it.
func TestNoHostFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "map")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// goja resolves the URL of code compiled at run time against the
	// working directory.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, fifo)
	if err != nil {
		t.Fatal(err)
	}
	op := build(t, fmt.Sprintf(`source: |
  function process(r) {
    eval("1\n//# sourceMappingURL=%[1]s");
    new Function("return 1\n//# sourceMappingURL=%[1]s")();
    return "done";
  }`, filepath.ToSlash(rel)))
	done := make(chan *operatortest.Result, 1)
	go func() { done <- operatortest.Process(context.Background(), op, operatortest.Values(1.0)) }()
	select {
	case res := <-done:
		if !record.EqualJSON(values(res), []any{"done"}) {
			t.Errorf("got %v (%v)", values(res), res.Errs)
		}
	case <-time.After(5 * time.Second):
		// Unblock every read of the FIFO so the test can end, then fail.
		for {
			if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
			select {
			case <-done:
				t.Fatal("the script made the engine read a host file")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// TestSeveralRecordsDoNotShareHeaders checks that records emitted from one
// input can be changed independently.
func TestSeveralRecordsDoNotShareHeaders(t *testing.T) {
	op := build(t, "source: 'function process(r) { return [1, 2]; }'")
	in := &record.Record{Value: "x", Headers: []record.Header{{Key: "a", Value: []byte("1")}}}
	res := operatortest.Process(context.Background(), op, []*record.Record{in})
	if len(res.Out) != 2 {
		t.Fatalf("got %d records", len(res.Out))
	}
	res.Out[0].Headers[0].Value = []byte("changed")
	if string(res.Out[1].Headers[0].Value) != "1" {
		t.Errorf("emitted records share their headers")
	}
}

func TestContextCancel(t *testing.T) {
	op := build(t, "timeout: 2s\nsource: 'function process(r) { while (true) {} }'")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := op.Process(ctx, &record.Record{Value: 1.0}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %s", d)
	}
	// A canceled context stops before running anything.
	if err := op.Process(ctx, &record.Record{Value: 1.0}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	// The operator still works for live contexts.
	op2 := build(t, "source: 'function process(r) { return r.value * 2; }'")
	res := operatortest.Process(context.Background(), op2, operatortest.Values(2.0))
	if !record.EqualJSON(values(res), []any{4.0}) {
		t.Errorf("got %v", values(res))
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"source: |\n  function process(r) {\n    return r.value +;\n  }",
			"example.yaml:3:21: JavaScript syntax error: Unexpected token ;"},
		{"timeout: 5ms\nsource: \"function process(r) { return ) }\"",
			"example.yaml:2:39: JavaScript syntax error: Unexpected token )"},
		{"source: 'var x = 1;'", "example.yaml:1:9: the script must define function process(record)"},
		{"source: 'var process = 3;'", "example.yaml:1:9: the script must define function process(record)"},
		{"source: |\n  var t = {};\n  t.x.y = 1;\n  function process(r) { return r; }",
			"example.yaml:3:7: the script's top-level code threw: TypeError: Cannot convert undefined or null to object"},
		{"source: 'while (true) {} function process(r) {}'", "example.yaml:1:10: top-level code ran past its budget (1s)"},
		{"{source: 'function process(r) {}', timeout: 0s}", "example.yaml:1:45: timeout must be positive, got 0s"},
		{"{source: 'function process(r) {}', timeout: 3s}", "example.yaml:1:45: timeout 3s is too long: at most 2s per record"},
		{"{source: 'function process(r) {}', timeout: soon}", `example.yaml:1:45: timeout must be a duration such as 10ms or 1s, got "soon"`},
		{"file: scripts/x.js", `example.yaml:1:7: cannot read "scripts/x.js": this pipeline has no files`},
	}
	reg := registry(t)
	for _, tc := range tests {
		t.Run(tc.step, func(t *testing.T) {
			_, err := operatortest.Build(reg, "script", tc.step)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got error %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestConstructorWithoutSchema(t *testing.T) {
	files := fstest.MapFS{
		"scripts/ok.js":  {Data: []byte("function process(r) {\n  return {doubled: r.value * 2};\n}\n")},
		"scripts/bad.js": {Data: []byte("function process(r) {\n  return r.value * ;\n}\n")},
		// A source map comment must not make the compiler read host files.
		"scripts/map.js": {Data: []byte("function process(r) { return 1; }\n//# sourceMappingURL=/etc/passwd\n")},
	}
	tests := []struct{ step, want string }{
		{"source", "example.yaml:1:1: script needs a mapping such as {source: ...} or {file: ...}, got a scalar"},
		{"{timeout: 1s}", "example.yaml:1:1: script needs source (JavaScript code) or file (a .js side file)"},
		{"source: 'function process(r) {}'\nfile: a.js", "example.yaml:2:1: script takes source or file, not both"},
		{"source: x\nsource: y", "example.yaml:2:1: source is given twice"},
		{"{file: a.js, source: x}", "example.yaml:1:14: script takes source or file, not both"},
		{"{source: [a]}", "example.yaml:1:10: source must be JavaScript code, as a string"},
		{"{file: ''}", "example.yaml:1:8: file must be the path of a .js side file"},
		{"{source: x, lang: js}", `example.yaml:1:13: unknown option "lang": script takes source, file, timeout and memory`},
		{"{timeout: [1], source: x}", `example.yaml:1:11: timeout must be a duration such as 10ms or 1s, got ""`},
		{"file: scripts/missing.js", `example.yaml:1:7: cannot read "scripts/missing.js": open scripts/missing.js: file does not exist`},
		{"file: scripts/bad.js", "scripts/bad.js:2:20: JavaScript syntax error: Unexpected token ;"},
		{"", "example.yaml: script needs a mapping such as {source: ...} or {file: ...}, got a nothing"},
	}
	for _, tc := range tests {
		t.Run(tc.step, func(t *testing.T) {
			_, err := newDirect(tc.step, files)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got error %v\nwant %s", err, tc.want)
			}
		})
	}
	for _, f := range []string{"scripts/ok.js", "scripts/map.js"} {
		op, err := newDirect("file: "+f, files)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		res := operatortest.Process(context.Background(), op, operatortest.Values(4.0))
		if len(res.Out) != 1 || len(res.DLQ) != 0 {
			t.Errorf("%s: got %v, DLQ %v", f, values(res), res.Errs)
		}
	}
	// Errors thrown from a side file point into it.
	files["scripts/throw.js"] = &fstest.MapFile{Data: []byte("function process(r) {\n  throw new Error('no');\n}\n")}
	op, err := newDirect("file: scripts/throw.js", files)
	if err != nil {
		t.Fatal(err)
	}
	res := operatortest.Process(context.Background(), op, operatortest.Values(1.0))
	if len(res.Errs) != 1 || res.Errs[0].Error() != "script: Error: no at scripts/throw.js:2:9" {
		t.Errorf("got %v", res.Errs)
	}
}

// TestConcurrent shares one operator between goroutines, with timeouts and
// throws mixed in, and checks every result; run it with -race.
func TestConcurrent(t *testing.T) {
	op := build(t, `timeout: 50ms
source: |
  var calls = 0;
  function process(r) {
    calls++;
    if (r.value.mode === "loop") { while (true) {} }
    if (r.value.mode === "throw") { throw new Error("thrown " + r.value.n); }
    return {n: r.value.n, sq: r.value.n * r.value.n};
  }`)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				n := float64(g*1000 + i)
				mode := ""
				switch {
				case i%37 == 5:
					mode = "loop"
				case i%7 == 3:
					mode = "throw"
				}
				res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"n": n, "mode": mode}))
				switch mode {
				case "loop":
					if fmt.Sprint(res.DLQ) != "[timeout]" {
						t.Errorf("loop %v: DLQ %v %v", n, res.DLQ, res.Errs)
					}
				case "throw":
					if fmt.Sprint(res.DLQ) != "[script]" || !strings.Contains(res.Errs[0].Error(), fmt.Sprintf("thrown %v", n)) {
						t.Errorf("throw %v: DLQ %v %v", n, res.DLQ, res.Errs)
					}
				default:
					want := []any{map[string]any{"n": n, "sq": n * n}}
					if len(res.DLQ) != 0 || !record.EqualJSON(values(res), want) {
						t.Errorf("record %v: got %v, DLQ %v", n, values(res), res.Errs)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkProcess(b *testing.B) {
	op := build(b, `source: |
  function process(r) {
    var v = r.value;
    return {vehicle: v.vehicle_id, kmh: v.speed * 3.6, fast: v.speed > 30};
  }`)
	value := map[string]any{"vehicle_id": "v1", "speed": 12.5, "lat": 52.1, "lon": 4.3}
	r := &record.Record{Key: "v1", Timestamp: time.Now()}
	out := discard{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.Value = value
		if err := op.Process(ctx, r, out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProcessParallel(b *testing.B) {
	op := build(b, "source: 'function process(r) { return r.value.speed * 3.6; }'")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := &record.Record{}
		for pb.Next() {
			r.Value = map[string]any{"speed": 12.5}
			if err := op.Process(ctx, r, discard{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type discard struct{}

func (discard) Next(context.Context, *record.Record) error       { return nil }
func (discard) To(context.Context, string, *record.Record) error { return nil }

// BenchmarkStringify measures JSON.stringify of a record-sized object,
// which the memory guard runs with a counting replacer.
func BenchmarkStringify(b *testing.B) {
	op := build(b, `source: |
  function process(r) {
    return JSON.stringify(r.value).length;
  }`)
	value := map[string]any{}
	for i := range 20 {
		value[fmt.Sprint("field", i)] = []any{float64(i), "some text", map[string]any{"nested": true}}
	}
	r := &record.Record{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.Value = value
		if err := op.Process(ctx, r, discard{}); err != nil {
			b.Fatal(err)
		}
	}
}
