package explode

import (
	"context"
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
	operatortest.RunExamples(t, registry(t), "explode")
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name string
		step string
		in   any
		want []any
		dlq  catalog.Reason
	}{
		{name: "null field", step: "xs", in: map[string]any{"xs": nil}},
		{name: "one element", step: "xs", in: map[string]any{"xs": []any{1.0}, "a": 1.0}, want: []any{map[string]any{"xs": 1.0, "a": 1.0}}},
		{name: "nested field", step: "o.xs", in: map[string]any{"o": map[string]any{"xs": []any{1.0, 2.0}, "id": "o1"}},
			want: []any{map[string]any{"o": map[string]any{"xs": 1.0, "id": "o1"}}, map[string]any{"o": map[string]any{"xs": 2.0, "id": "o1"}}}},
		{name: "as nested", step: "{field: xs, as: e.v}", in: map[string]any{"xs": []any{"a", "b"}},
			want: []any{map[string]any{"e": map[string]any{"v": "a"}}, map[string]any{"e": map[string]any{"v": "b"}}}},
		// Without as, the long form is the short form.
		{name: "long form without as", step: "{field: xs}", in: map[string]any{"xs": []any{"a"}}, want: []any{map[string]any{"xs": "a"}}},
		// Null elements are elements.
		{name: "null element", step: "xs", in: map[string]any{"xs": []any{nil}}, want: []any{map[string]any{"xs": nil}}},
		{name: "as through scalar", step: "{field: xs, as: e.v}", in: map[string]any{"xs": []any{1.0, 2.0}, "e": 1.0}, dlq: catalog.ReasonType},
		{name: "object field", step: "xs", in: map[string]any{"xs": map[string]any{}}, dlq: catalog.ReasonType},
		{name: "array value", step: "xs", in: []any{1.0}, dlq: catalog.ReasonType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := operatortest.Build(registry(t), "explode", tt.step)
			if err != nil {
				t.Fatal(err)
			}
			res := operatortest.Process(context.Background(), op, operatortest.Values(tt.in))
			if tt.dlq != "" {
				if len(res.DLQ) != 1 || res.DLQ[0] != tt.dlq || len(res.All) != 0 {
					t.Fatalf("DLQ %v, emitted %d; want [%s] and nothing emitted", res.DLQ, len(res.All), tt.dlq)
				}
				return
			}
			if len(res.DLQ) != 0 {
				t.Fatalf("errors %v", res.Errs)
			}
			var got []any
			for _, r := range res.Out {
				got = append(got, r.Value)
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !record.EqualJSON(got, tt.want)) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNotArrayMessage(t *testing.T) {
	op, err := operatortest.Build(registry(t), "explode", "o.xs")
	if err != nil {
		t.Fatal(err)
	}
	res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"o": map[string]any{"xs": "x"}}))
	if len(res.Errs) != 1 || res.Errs[0].Error() != "type: cannot explode o.xs: it is string, not an array" {
		t.Fatalf("errors %v", res.Errs)
	}
}

// Output records must be independent: changing one (as a later step does in
// place) must not change its siblings, and metadata is kept on each.
func TestOutputsAreIndependent(t *testing.T) {
	op, err := operatortest.Build(registry(t), "explode", "xs")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	in := &record.Record{Key: "k", Timestamp: ts, Headers: []record.Header{{Key: "h", Value: []byte("1")}},
		Value: map[string]any{"xs": []any{1.0, 2.0, 3.0}, "meta": map[string]any{"n": 0.0}}}
	res := operatortest.Process(context.Background(), op, []*record.Record{in})
	if len(res.Out) != 3 {
		t.Fatalf("got %d records", len(res.Out))
	}
	for i, r := range res.Out {
		if r.Key != "k" || !r.Timestamp.Equal(ts) || len(r.Headers) != 1 {
			t.Fatalf("record %d lost metadata: %+v", i, r)
		}
		r.Value.(map[string]any)["meta"].(map[string]any)["n"] = float64(i + 1)
	}
	for i, r := range res.Out {
		m := r.Value.(map[string]any)
		if m["xs"] != float64(i+1) || m["meta"].(map[string]any)["n"] != float64(i+1) {
			t.Fatalf("record %d = %v: records share memory", i, m)
		}
	}
}

// A failing downstream stops the explosion and its error is returned.
func TestDownstreamError(t *testing.T) {
	op, err := operatortest.Build(registry(t), "explode", "xs")
	if err != nil {
		t.Fatal(err)
	}
	out := &failAfter{n: 1}
	err = op.Process(context.Background(), &record.Record{Value: map[string]any{"xs": []any{1.0, 2.0, 3.0}}}, out)
	if err != errStop || out.calls != 2 {
		t.Fatalf("err %v after %d calls; want errStop after 2", err, out.calls)
	}
}

var errStop = catalog.Rejectf(catalog.ReasonError, "stop")

type failAfter struct{ n, calls int }

func (f *failAfter) Next(context.Context, *record.Record) error {
	f.calls++
	if f.calls > f.n {
		return errStop
	}
	return nil
}
func (f *failAfter) To(context.Context, string, *record.Record) error { return nil }

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"{field: xs, as: a..b}", `example.yaml:1:17: field path "a..b" has an empty part; separate nested names with single dots, like pos.lat`},
		{"x.", `example.yaml:1:1: field path "x." has an empty part; separate nested names with single dots, like pos.lat`},
		{"{as: x}", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/explode.json#'\n- at '': 'oneOf' failed, none matched\n  - at '': got object, want string\n  - at '': missing property 'field'"},
		{"{field: xs, into: y}", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/explode.json#'\n- at '': 'oneOf' failed, none matched\n  - at '': got object, want string\n  - at '': additional properties 'into' not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			_, err := operatortest.Build(registry(t), "explode", tt.step)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestConstructorWithoutSchema(t *testing.T) {
	tests := []struct{ step, want string }{
		{"{as: x}", "p.yaml:1:1: missing field: name the array field to explode"},
		{"{field: x, into: y}", `p.yaml:1:12: unknown field "into"; explode takes field and as`},
		{"[x]", "p.yaml:1:1: expected an array field name or a mapping with field and as, got a list"},
		{"{field: [x]}", "p.yaml:1:9: expected a field name, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.step), &doc); err != nil {
				t.Fatal(err)
			}
			_, err := newExplode(&catalog.Build{}, catalog.NewConfig(catalog.NewSource("p.yaml", []byte(tt.step)), doc.Content[0]))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}
