package filter

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func registry(t testing.TB) *catalog.Registry {
	return operatortest.Registry(t, Register)
}

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, registry(t), "filter")
}

func TestProcess(t *testing.T) {
	reg := registry(t)
	tests := []struct {
		name string
		step string
		in   *record.Record
		keep bool
		dlq  catalog.Reason
	}{
		// A predicate that is nil on a missing field drops the record quietly.
		{name: "missing bool field", step: "flag", in: obj(map[string]any{}), keep: false},
		{name: "true", step: "flag", in: obj(map[string]any{"flag": true}), keep: true},
		// A non-boolean result is the user's mistake on this record, not a crash.
		{name: "number result", step: "flag", in: obj(map[string]any{"flag": 1.0}), dlq: catalog.ReasonExpression},
		// Raw (non-object) values can be filtered through `value`.
		{name: "raw value", step: `value startsWith "ERR"`, in: &record.Record{Value: "ERROR disk full"}, keep: true},
		{name: "raw value no match", step: `value startsWith "ERR"`, in: &record.Record{Value: "ok"}, keep: false},
		// Metadata is visible to the predicate.
		{name: "key", step: `key == "v1"`, in: &record.Record{Key: "v1", Value: map[string]any{}}, keep: true},
		{name: "header", step: `headers["src"] == "gps"`, in: &record.Record{Value: map[string]any{}, Headers: []record.Header{{Key: "src", Value: []byte("gps")}}}, keep: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := operatortest.Build(reg, "filter", tt.step)
			if err != nil {
				t.Fatal(err)
			}
			res := operatortest.Process(context.Background(), op, []*record.Record{tt.in})
			if tt.dlq != "" {
				if len(res.DLQ) != 1 || res.DLQ[0] != tt.dlq {
					t.Fatalf("DLQ = %v, want [%s]", res.DLQ, tt.dlq)
				}
				return
			}
			if len(res.DLQ) != 0 {
				t.Fatalf("unexpected DLQ %v: %v", res.DLQ, res.Errs)
			}
			if got := len(res.Out) == 1; got != tt.keep {
				t.Fatalf("kept = %v, want %v", got, tt.keep)
			}
			if tt.keep && res.Out[0] != tt.in {
				t.Fatal("filter must pass the same record on, not a copy")
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	reg := registry(t)
	tests := []struct{ step, want string }{
		// The column points at the unknown function inside the expression.
		{"speed > 0 && lenn(x) > 1", "example.yaml:1:14: unknown function lenn; did you mean len?"},
		{"speed >", "example.yaml:1:7: unexpected token EOF"},
		// In a quoted scalar the column still counts from the file's first
		// column, past the quote.
		{`'speed > 0 && lenn(x)'`, "example.yaml:1:15: unknown function lenn; did you mean len?"},
		{"1 + 2", "example.yaml:1:1: expected bool, but got int"},
		// A list is not an expression; the schema rejects it first.
		{"[a, b]", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/filter.json#'\n- at '': got array, want string"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			_, err := operatortest.Build(reg, "filter", tt.step)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

func obj(m map[string]any) *record.Record { return &record.Record{Value: m} }

// BenchmarkFilter measures the hot path: a field-only predicate on an object
// value should not allocate.
func BenchmarkFilter(b *testing.B) {
	reg := registry(b)
	op, err := operatortest.Build(reg, "filter", "speed >= 0 && lat != nil")
	if err != nil {
		b.Fatal(err)
	}
	r := &record.Record{Value: map[string]any{"vehicle_id": "v1", "speed": 12.5, "lat": 52.1, "lon": 4.3}}
	out := discard{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := op.Process(ctx, r, out); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Next(context.Context, *record.Record) error       { return nil }
func (discard) To(context.Context, string, *record.Record) error { return nil }
