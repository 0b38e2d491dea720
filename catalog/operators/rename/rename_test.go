package rename

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
	operatortest.RunExamples(t, registry(t), "rename")
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name     string
		step     string
		in, want any
		dlq      catalog.Reason
	}{
		// The new name is overwritten by the renamed field.
		{name: "overwrite", step: "{a: b}", in: map[string]any{"a": 1.0, "b": 2.0}, want: map[string]any{"b": 1.0}},
		// A missing source leaves an existing target alone.
		{name: "missing source", step: "{a: b}", in: map[string]any{"b": 2.0}, want: map[string]any{"b": 2.0}},
		// A present null is a field and is renamed.
		{name: "null source", step: "{a: b}", in: map[string]any{"a": nil}, want: map[string]any{"b": nil}},
		// Renames are simultaneous: b gets a's old value, c gets b's.
		{name: "chain", step: "{a: b, b: c}", in: map[string]any{"a": 1.0, "b": 2.0}, want: map[string]any{"b": 1.0, "c": 2.0}},
		{name: "into itself", step: "{a: a.inner}", in: map[string]any{"a": map[string]any{"x": 1.0}},
			want: map[string]any{"a": map[string]any{"inner": map[string]any{"x": 1.0}}}},
		{name: "out of nested", step: "{pos.lat: lat}", in: map[string]any{"pos": map[string]any{"lat": 1.0, "lon": 2.0}},
			want: map[string]any{"lat": 1.0, "pos": map[string]any{"lon": 2.0}}},
		{name: "through null creates object", step: "{a: p.a}", in: map[string]any{"a": 1.0, "p": nil},
			want: map[string]any{"p": map[string]any{"a": 1.0}}},
		// A path through a scalar would lose data if overwritten: rejected.
		{name: "through scalar", step: "{a: p.a}", in: map[string]any{"a": 1.0, "p": "x"}, dlq: catalog.ReasonType},
		{name: "not an object", step: "{a: b}", in: []any{}, dlq: catalog.ReasonType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := operatortest.Build(registry(t), "rename", tt.step)
			if err != nil {
				t.Fatal(err)
			}
			res := operatortest.Process(context.Background(), op, operatortest.Values(tt.in))
			if tt.dlq != "" {
				if len(res.DLQ) != 1 || res.DLQ[0] != tt.dlq {
					t.Fatalf("DLQ %v, want [%s]", res.DLQ, tt.dlq)
				}
				return
			}
			if len(res.Out) != 1 || len(res.DLQ) != 0 {
				t.Fatalf("out %d, errors %v", len(res.Out), res.Errs)
			}
			if !record.EqualJSON(res.Out[0].Value, tt.want) {
				t.Fatalf("got %v, want %v", res.Out[0].Value, tt.want)
			}
		})
	}
}

func TestTypeErrorMessage(t *testing.T) {
	op, err := operatortest.Build(registry(t), "rename", "{a: p.q.a}")
	if err != nil {
		t.Fatal(err)
	}
	res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"a": 1.0, "p": map[string]any{"q": []any{}}}))
	if len(res.Errs) != 1 {
		t.Fatalf("errors %v", res.Errs)
	}
	if got, want := res.Errs[0].Error(), "type: cannot set p.q.a: p.q is an array, not an object"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"a: x\nb: x\n", "example.yaml:2:4: x is already the new name of a"},
		{"a: x\nb: x.y\n", "example.yaml:2:4: x.y overlaps x, the new name of a"},
		{"a: x\na.b: y\n", "example.yaml:2:1: a.b overlaps a, which is renamed too; rename a field or the object holding it, not both"},
		{"{a: a}", "example.yaml:1:5: a is renamed to itself"},
		// All errors are reported at once.
		{"a..b: c\nd: e.\n", "example.yaml:1:1: field path \"a..b\" has an empty part; separate nested names with single dots, like pos.lat\n" +
			"example.yaml:2:4: field path \"e.\" has an empty part; separate nested names with single dots, like pos.lat"},
		{"{a: 1}", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/rename.json#'\n- at '/a': got number, want string"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			_, err := operatortest.Build(registry(t), "rename", tt.step)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestConstructorWithoutSchema(t *testing.T) {
	tests := []struct{ step, want string }{
		{"{}", "p.yaml:1:1: expected a mapping of current field names to new names, got an empty mapping"},
		{"[a]", "p.yaml:1:1: expected a mapping of current field names to new names, got a list"},
		{"a: [b]", "p.yaml:1:4: expected a field name, got a list"},
		{"a:", "p.yaml:1:3: field name is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.step), &doc); err != nil {
				t.Fatal(err)
			}
			_, err := newRename(&catalog.Build{}, catalog.NewConfig(catalog.NewSource("p.yaml", []byte(tt.step)), doc.Content[0]))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}
