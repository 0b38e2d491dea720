package mapop

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func registry(t testing.TB) *catalog.Registry {
	return operatortest.Registry(t, Register)
}

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, registry(t), "map")
}

func build(t *testing.T, step string) catalog.Operator {
	t.Helper()
	op, err := operatortest.Build(registry(t), "map", step)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func run(t *testing.T, op catalog.Operator, r *record.Record) *record.Record {
	t.Helper()
	res := operatortest.Process(context.Background(), op, []*record.Record{r})
	if len(res.Errs) > 0 || len(res.Out) != 1 {
		t.Fatalf("got %d records, errors %v", len(res.Out), res.Errs)
	}
	return res.Out[0]
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name     string
		step     string
		in, want any
	}{
		// Expressions see the input, so a swap works and computed fields
		// cannot be read back within the step.
		{"swap", "{a: b, b: a}", map[string]any{"a": 1.0, "b": 2.0}, map[string]any{"a": 2.0, "b": 1.0}},
		{"not chained", "{x: 1, y: x}", map[string]any{}, map[string]any{"x": 1.0, "y": nil}},
		// Integer results stay int, like integers in decoded JSON, so
		// that they are written back as integers.
		{"ints", "{n: len(items), l: '[1, 2]', o: '{\"a\": 1}', f: 'n * 1.0'}", map[string]any{"items": []any{"x"}, "n": 2},
			map[string]any{"n": 1, "l": []any{1, 2}, "o": map[string]any{"a": 1}, "f": 2.0}},
		{"booleans", "{t: true, f: false}", nil, map[string]any{"t": true, "f": false}},
		{"deep nesting", "{a: {b: {c: x}}}", map[string]any{"x": "y"}, map[string]any{"a": map[string]any{"b": map[string]any{"c": "y"}}}},
		{"timestamp metadata", "{ts: timestamp}", map[string]any{}, map[string]any{"ts": "2026-01-02T03:04:05.5Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &record.Record{Value: tt.in, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC)}
			got := run(t, build(t, tt.step), r)
			if !record.EqualJSON(got.Value, tt.want) {
				t.Fatalf("got %#v, want %#v", got.Value, tt.want)
			}
			if tt.name == "ints" {
				// EqualJSON normalizes; check the real types too.
				m := got.Value.(map[string]any)
				if _, ok := m["n"].(int); !ok {
					t.Errorf("n is %T, want int", m["n"])
				}
				if _, ok := m["l"].([]any)[0].(int); !ok {
					t.Errorf("l[0] is %T, want int", m["l"].([]any)[0])
				}
				if _, ok := m["f"].(float64); !ok {
					t.Errorf("f is %T, want float64", m["f"])
				}
			}
		})
	}
}

// Key, headers and timestamp are not part of the value and must survive.
func TestKeepsMetadata(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	r := &record.Record{Key: "v1", Timestamp: ts, Headers: []record.Header{{Key: "h", Value: []byte("x")}},
		Value: map[string]any{"a": 1.0, "b": 2.0}}
	got := run(t, build(t, "{a: a}"), r)
	if got.Key != "v1" || !got.Timestamp.Equal(ts) || len(got.Headers) != 1 || string(got.Headers[0].Value) != "x" {
		t.Fatalf("metadata changed: %+v", got)
	}
	if !record.EqualJSON(got.Value, map[string]any{"a": 1.0}) {
		t.Fatalf("value = %v", got.Value)
	}
}

// The input map is reused for the output; a field set to the whole value
// must be a copy, or the value would contain itself and encoding would never
// end.
func TestWholeValueIsCopied(t *testing.T) {
	got := run(t, build(t, "{orig: value, a: a}"), &record.Record{Value: map[string]any{"a": 1.0}})
	want := map[string]any{"orig": map[string]any{"a": 1.0}, "a": 1.0}
	if !record.EqualJSON(got.Value, want) {
		t.Fatalf("got %v, want %v", got.Value, want)
	}
}

// Two fields computed from the same object must not share it: a later step
// that changes one would change the other.
func TestNoSharedObjects(t *testing.T) {
	got := run(t, build(t, "{a: pos, b: pos}"), &record.Record{Value: map[string]any{"pos": map[string]any{"lat": 1.0}}})
	m := got.Value.(map[string]any)
	m["a"].(map[string]any)["lat"] = 2.0
	if m["b"].(map[string]any)["lat"] != 1.0 {
		t.Fatal("a and b share one object")
	}
}

// A failing expression rejects the record before anything is written.
func TestErrorLeavesRecordUnchanged(t *testing.T) {
	in := map[string]any{"a": "x", "b": 1.0}
	r := &record.Record{Value: in}
	res := operatortest.Process(context.Background(), build(t, "{a: a, b: b > 0, c: a > 0}"), []*record.Record{r})
	if len(res.DLQ) != 1 || res.DLQ[0] != catalog.ReasonExpression {
		t.Fatalf("DLQ = %v", res.DLQ)
	}
	if !record.EqualJSON(r.Value, map[string]any{"a": "x", "b": 1.0}) {
		t.Fatalf("record changed to %v", r.Value)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"{a: lenn(x)}", "example.yaml:1:5: unknown function lenn; did you mean len?"},
		// Every bad field is reported, each at its own position, nested ones
		// included.
		{"a: 1 +\nb:\n  c: lenn(x)\n", "example.yaml:1:6: unexpected token EOF\nexample.yaml:3:6: unknown function lenn; did you mean len?"},
		{"[a, b]", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/map.json#'\n- at '': got array, want object"},
		{"{}", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/map.json#'\n- at '': minProperties: got 0, want 1"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			_, err := operatortest.Build(registry(t), "map", tt.step)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

// The constructor must not panic, and must give a positioned error, even on
// configs the schema would have rejected.
func TestConstructorWithoutSchema(t *testing.T) {
	tests := []struct{ step, want string }{
		{"[a]", "x.yaml:1:1: expected a mapping of field names to expressions, got a list"},
		{"{}", "x.yaml:1:1: the mapping is empty; name at least one field"},
		{"a: [1]", `x.yaml:1:4: field "a": expected an expression or a mapping, got a list`},
		{"a:\nb: c", `x.yaml:1:1: field "a" has no expression; write nil for a null value`},
		{"a: {}", "x.yaml:1:4: the mapping is empty; name at least one field"},
		{"~", "x.yaml:1:1: expected a mapping of field names to expressions, got a scalar"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.step), &doc); err != nil {
				t.Fatal(err)
			}
			conf := catalog.NewConfig(catalog.NewSource("x.yaml", []byte(tt.step)), doc.Content[0])
			_, err := newMap(&catalog.Build{}, conf)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

// Many tasks share one operator; run it concurrently under -race.
func TestConcurrent(t *testing.T) {
	op := build(t, "{kmh: speed * 3.6, pos: {lat: lat}}")
	done := make(chan error)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				r := &record.Record{Value: map[string]any{"speed": float64(i), "lat": 1.0}}
				res := operatortest.Process(context.Background(), op, []*record.Record{r})
				if len(res.Out) != 1 || res.Out[0].Value.(map[string]any)["kmh"] != float64(i)*3.6 {
					done <- fmt.Errorf("bad result %v %v", res.Out, res.Errs)
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkMap(b *testing.B) {
	op, err := operatortest.Build(registry(b), "map", "{vehicle: vehicle_id, kmh: speed * 3.6, lat: lat, lon: lon}")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// The record is refilled in place each time, so that only what Process
	// allocates is counted.
	obj := map[string]any{}
	r := &record.Record{}
	b.ReportAllocs()
	for b.Loop() {
		clear(obj)
		obj["vehicle_id"], obj["speed"], obj["lat"], obj["lon"], obj["driver"] = "v1", 12.5, 52.1, 4.3, "ann"
		r.Value = obj
		if err := op.Process(ctx, r, discard{}); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Next(context.Context, *record.Record) error       { return nil }
func (discard) To(context.Context, string, *record.Record) error { return nil }
