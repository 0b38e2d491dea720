package selectop

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
	operatortest.RunExamples(t, registry(t), "select")
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name     string
		step     string
		in, want any
	}{
		{"nothing present", "[a]", map[string]any{"b": 1.0}, map[string]any{}},
		// A whole object wins over a path inside it, whichever comes first.
		{"prefix first", "[a, a.b]", map[string]any{"a": map[string]any{"b": 1.0, "c": 2.0}}, map[string]any{"a": map[string]any{"b": 1.0, "c": 2.0}}},
		{"prefix last", "[a.b, a]", map[string]any{"a": map[string]any{"b": 1.0, "c": 2.0}}, map[string]any{"a": map[string]any{"b": 1.0, "c": 2.0}}},
		// An empty object at the end of a path is a present value.
		{"empty object selected", "[a.b]", map[string]any{"a": map[string]any{"b": map[string]any{}}}, map[string]any{"a": map[string]any{"b": map[string]any{}}}},
		{"empty object not selected", "[a.b]", map[string]any{"a": map[string]any{}}, map[string]any{}},
		{"null kept", "[a]", map[string]any{"a": nil, "b": 1.0}, map[string]any{"a": nil}},
		{"deep", "[a.b.c, x]", map[string]any{"a": map[string]any{"b": map[string]any{"c": 1.0, "d": 2.0}, "e": 3.0}, "x": []any{1.0}},
			map[string]any{"a": map[string]any{"b": map[string]any{"c": 1.0}}, "x": []any{1.0}}},
		{"array not walked", "[a.b]", map[string]any{"a": []any{map[string]any{"b": 1.0}}}, map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := operatortest.Build(registry(t), "select", tt.step)
			if err != nil {
				t.Fatal(err)
			}
			res := operatortest.Process(context.Background(), op, operatortest.Values(tt.in))
			if len(res.Out) != 1 || len(res.DLQ) != 0 {
				t.Fatalf("out %d, errors %v", len(res.Out), res.Errs)
			}
			if !record.EqualJSON(res.Out[0].Value, tt.want) {
				t.Fatalf("got %v, want %v", res.Out[0].Value, tt.want)
			}
		})
	}
}

func TestRejectsNonObjects(t *testing.T) {
	op, err := operatortest.Build(registry(t), "select", "[a]")
	if err != nil {
		t.Fatal(err)
	}
	res := operatortest.Process(context.Background(), op, operatortest.Values(nil, "x", 1.0, []any{}))
	if len(res.DLQ) != 4 || len(res.Out) != 0 {
		t.Fatalf("DLQ %v, out %d", res.DLQ, len(res.Out))
	}
	for _, r := range res.DLQ {
		if r != catalog.ReasonType {
			t.Fatalf("reason %s, want type", r)
		}
	}
	if got, want := res.Errs[0].Error(), "type: expected a JSON object value, got null"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"- a\n- b\n- a\n", "example.yaml:3:3: field a is listed twice"},
		// Both problems are reported, each at its item.
		{"[a..b, .c]", "example.yaml:1:2: field path \"a..b\" has an empty part; separate nested names with single dots, like pos.lat\n" +
			"example.yaml:1:8: field path \".c\" has an empty part; separate nested names with single dots, like pos.lat"},
		{"[]", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/select.json#'\n- at '': minItems: got 0, want 1"},
		{"a", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/select.json#'\n- at '': got string, want array"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			_, err := operatortest.Build(registry(t), "select", tt.step)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestConstructorWithoutSchema(t *testing.T) {
	tests := []struct{ step, want string }{
		{"[]", "p.yaml:1:1: expected a list of field names, got an empty list"},
		{"a: b", "p.yaml:1:1: expected a list of field names, got a mapping"},
		{"[[a]]", "p.yaml:1:2: expected a field name, got a list"},
		{"['']", "p.yaml:1:2: field name is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.step), &doc); err != nil {
				t.Fatal(err)
			}
			_, err := newSelect(&catalog.Build{}, catalog.NewConfig(catalog.NewSource("p.yaml", []byte(tt.step)), doc.Content[0]))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}
