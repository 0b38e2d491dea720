package drop

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
	operatortest.RunExamples(t, registry(t), "drop")
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name     string
		step     string
		in, want any
	}{
		{"all", "[a, b]", map[string]any{"a": 1.0, "b": 2.0}, map[string]any{}},
		// The object a path went into stays, even when it ends up empty.
		{"nested empties object", "[a.b]", map[string]any{"a": map[string]any{"b": 1.0}}, map[string]any{"a": map[string]any{}}},
		{"whole and inside", "[a.b, a]", map[string]any{"a": map[string]any{"b": 1.0}, "c": 1.0}, map[string]any{"c": 1.0}},
		{"missing parent", "[x.y.z]", map[string]any{"x": map[string]any{}}, map[string]any{"x": map[string]any{}}},
		{"null field removed", "[a]", map[string]any{"a": nil}, map[string]any{}},
		// A dot always separates names; a field literally named "a.b" is not
		// addressed.
		{"dotted name is a path", "[a.b]", map[string]any{"a.b": 1.0}, map[string]any{"a.b": 1.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := operatortest.Build(registry(t), "drop", tt.step)
			if err != nil {
				t.Fatal(err)
			}
			in := &record.Record{Key: "k", Value: record.Plain(tt.in)}
			res := operatortest.Process(context.Background(), op, []*record.Record{in})
			if len(res.Out) != 1 || len(res.DLQ) != 0 {
				t.Fatalf("out %d, errors %v", len(res.Out), res.Errs)
			}
			if res.Out[0] != in || in.Key != "k" {
				t.Fatal("drop must change the record in place and keep its key")
			}
			if !record.EqualJSON(res.Out[0].Value, tt.want) {
				t.Fatalf("got %v, want %v", res.Out[0].Value, tt.want)
			}
		})
	}
}

func TestRejectsNonObjects(t *testing.T) {
	op, err := operatortest.Build(registry(t), "drop", "[a]")
	if err != nil {
		t.Fatal(err)
	}
	res := operatortest.Process(context.Background(), op, operatortest.Values("x", nil))
	if len(res.DLQ) != 2 || res.DLQ[0] != catalog.ReasonType || res.DLQ[1] != catalog.ReasonType {
		t.Fatalf("DLQ %v", res.DLQ)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"[a, b.c, b.c]", "example.yaml:1:10: field b.c is listed twice"},
		{"- a.\n", `example.yaml:1:3: field path "a." has an empty part; separate nested names with single dots, like pos.lat`},
		{"{a: 1}", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/drop.json#'\n- at '': got object, want array"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			_, err := operatortest.Build(registry(t), "drop", tt.step)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestConstructorWithoutSchema(t *testing.T) {
	tests := []struct{ step, want string }{
		{"[]", "p.yaml:1:1: expected a list of field names, got an empty list"},
		{"x", "p.yaml:1:1: expected a list of field names, got a scalar"},
		{"[{a: 1}]", "p.yaml:1:2: expected a field name, got a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.step), &doc); err != nil {
				t.Fatal(err)
			}
			_, err := newDrop(&catalog.Build{}, catalog.NewConfig(catalog.NewSource("p.yaml", []byte(tt.step)), doc.Content[0]))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}
