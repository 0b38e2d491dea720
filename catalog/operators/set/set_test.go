package set

import (
	"context"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func registry(t testing.TB) *catalog.Registry {
	return operatortest.Registry(t, Register)
}

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, registry(t), "set")
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name     string
		step     string
		in, want any
		dlq      catalog.Reason
	}{
		// Expressions see the record before the step.
		{name: "swap", step: "{a: b, b: a}", in: map[string]any{"a": 1.0, "b": 2.0, "c": 3.0},
			want: map[string]any{"a": 2.0, "b": 1.0, "c": 3.0}},
		// nil sets null; it does not remove the field.
		{name: "nil", step: "{a: missing}", in: map[string]any{"a": 1.0}, want: map[string]any{"a": nil}},
		{name: "constant types", step: "{n: 1, b: false, s: '\"x\"'}", in: map[string]any{},
			want: map[string]any{"n": 1.0, "b": false, "s": "x"}},
		// A nested mapping over a scalar replaces it with an object.
		{name: "nested over scalar", step: "{pos: {lat: 1}}", in: map[string]any{"pos": "somewhere"},
			want: map[string]any{"pos": map[string]any{"lat": 1.0}}},
		{name: "deep merge", step: "{a: {b: {c: 1}}}", in: map[string]any{"a": map[string]any{"x": 1.0, "b": map[string]any{"y": 2.0}}},
			want: map[string]any{"a": map[string]any{"x": 1.0, "b": map[string]any{"y": 2.0, "c": 1.0}}}},
		// A field set to the whole value is a copy, so the value does not
		// contain itself.
		{name: "whole value", step: "{copy: value}", in: map[string]any{"a": 1.0},
			want: map[string]any{"a": 1.0, "copy": map[string]any{"a": 1.0}}},
		{name: "array value", step: "{a: 1}", in: []any{1.0}, dlq: catalog.ReasonType},
		{name: "null value", step: "{a: 1}", in: nil, dlq: catalog.ReasonType},
		{name: "eval error", step: "{a: 1, b: x > 1}", in: map[string]any{"x": "s"}, want: map[string]any{"x": "s"}, dlq: catalog.ReasonExpression},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := operatortest.Build(registry(t), "set", tt.step)
			if err != nil {
				t.Fatal(err)
			}
			r := &record.Record{Key: "k", Value: tt.in}
			res := operatortest.Process(context.Background(), op, []*record.Record{r})
			if tt.dlq != "" {
				if len(res.DLQ) != 1 || res.DLQ[0] != tt.dlq || len(res.Out) != 0 {
					t.Fatalf("DLQ = %v, out = %d, want [%s]", res.DLQ, len(res.Out), tt.dlq)
				}
				// A rejected record is left as it was.
				if tt.want != nil && !record.EqualJSON(r.Value, tt.want) {
					t.Fatalf("rejected record changed to %v", r.Value)
				}
				return
			}
			if len(res.Out) != 1 {
				t.Fatalf("out = %d, errors %v", len(res.Out), res.Errs)
			}
			if got := res.Out[0]; got.Key != "k" || !record.EqualJSON(got.Value, tt.want) {
				t.Fatalf("got key %v value %v, want %v", got.Key, got.Value, tt.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"kmh: speed *\nok: lenn(a)\n", "example.yaml:1:12: unexpected token EOF\nexample.yaml:2:5: unknown function lenn; did you mean len?"},
		{"a: [1]", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/set.json#'\n- at '/a': 'anyOf' failed\n  - at '/a': got array, want boolean or number or string\n  - at '/a': got array, want object"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			_, err := operatortest.Build(registry(t), "set", tt.step)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

// The constructor reports what the schema would have caught without
// panicking.
func TestConstructorWithoutSchema(t *testing.T) {
	src := "a:\n  b: [x]\n"
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	_, err := newSet(&catalog.Build{}, catalog.NewConfig(catalog.NewSource("p.yaml", []byte(src)), doc.Content[0]))
	want := `p.yaml:2:6: field "b": expected an expression or a mapping, got a list`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
}
