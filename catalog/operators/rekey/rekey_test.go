package rekey

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func registry(t testing.TB) *catalog.Registry {
	return operatortest.Registry(t, Register)
}

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, registry(t), "rekey")
}

// The plan relies on ChangesKey to insert repartition stages.
func TestChangesKey(t *testing.T) {
	spec, _ := registry(t).Lookup("rekey")
	if !spec.ChangesKey {
		t.Fatal("rekey must declare ChangesKey")
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		name    string
		step    string
		in      *record.Record
		wantKey any
		// wantBytes is what goes to Kafka.
		wantBytes string
	}{
		{"string", "vehicle_id", &record.Record{Key: "old", Value: map[string]any{"vehicle_id": "v1"}}, "v1", "v1"},
		// A missing field gives a null key, not an error.
		{"nil", "vehicle_id", &record.Record{Key: "old", Value: map[string]any{}}, nil, ""},
		// Integer results stay int, like integers in a record; a key 42
		// is the same bytes whether it is an int or a float64.
		{"constant", "0", &record.Record{Key: "old", Value: map[string]any{}}, 0, "0"},
		{"bool", "true", &record.Record{Value: map[string]any{}}, true, "true"},
		{"number field", "id", &record.Record{Value: map[string]any{"id": 42}}, 42, "42"},
		{"float field", "id", &record.Record{Value: map[string]any{"id": 42.0}}, 42.0, "42"},
		{"object", "'{a: len(xs)}'", &record.Record{Value: map[string]any{"xs": []any{1.0}}}, map[string]any{"a": 1.0}, `{"a":1}`},
		{"uses old key", `key + "-" + string(partition)`, &record.Record{Key: "k", Partition: 3, Value: map[string]any{}}, "k-3", "k-3"},
		{"raw value", "value", &record.Record{Value: "line"}, "line", "line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := operatortest.Build(registry(t), "rekey", tt.step)
			if err != nil {
				t.Fatal(err)
			}
			res := operatortest.Process(context.Background(), op, []*record.Record{tt.in})
			if len(res.Out) != 1 {
				t.Fatalf("out %d, errors %v", len(res.Out), res.Errs)
			}
			got := res.Out[0].Key
			if !record.EqualJSON(got, tt.wantKey) || (tt.wantKey != nil && got == nil) {
				t.Fatalf("key %#v, want %#v", got, tt.wantKey)
			}
			if fmt.Sprintf("%T", got) != fmt.Sprintf("%T", record.Plain(tt.wantKey)) {
				t.Fatalf("key is a %T; want %T", got, tt.wantKey)
			}
			b, err := record.KeyBytes(got)
			if err != nil || string(b) != tt.wantBytes {
				t.Fatalf("key bytes %q (%v), want %q", b, err, tt.wantBytes)
			}
		})
	}
}

func TestEvalError(t *testing.T) {
	op, err := operatortest.Build(registry(t), "rekey", "a.b")
	if err != nil {
		t.Fatal(err)
	}
	r := &record.Record{Key: "old", Value: map[string]any{}}
	res := operatortest.Process(context.Background(), op, []*record.Record{r})
	if len(res.DLQ) != 1 || res.DLQ[0] != catalog.ReasonExpression {
		t.Fatalf("DLQ %v", res.DLQ)
	}
	if r.Key != "old" {
		t.Fatalf("key changed to %v on error", r.Key)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"uper(id)", "example.yaml:1:1: unknown function uper; did you mean upper?"},
		{"|\n  a +\n  lenn(b)\n", "example.yaml:3:3: unknown function lenn; did you mean len?"},
		{"[a]", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/rekey.json#'\n- at '': got array, want boolean or number or string"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			_, err := operatortest.Build(registry(t), "rekey", tt.step)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}
