package route

import (
	"context"
	"fmt"
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
	operatortest.RunExamples(t, registry(t), "route")
}

// RunExamples only sees values; check where each record of the examples
// went.
func TestDestinations(t *testing.T) {
	spec, _ := registry(t).Lookup("route")
	want := []string{
		"logs.errors next logs.warnings next",
		"alerts.speeding vehicles.normal",
		"next views.slow next views.slow views.errors next",
	}
	for i, ex := range spec.Examples {
		op, err := operatortest.Build(registry(t), "route", ex.Step)
		if err != nil {
			t.Fatal(err)
		}
		dests := &recorder{}
		for _, r := range operatortest.Values(ex.Input...) {
			_ = op.Process(context.Background(), r, dests)
		}
		if got := fmt.Sprint(dests.got); got != "["+want[i]+"]" {
			t.Errorf("example %q: destinations %s, want [%s]", ex.Title, got, want[i])
		}
	}
}

type recorder struct{ got []string }

func (d *recorder) Next(context.Context, *record.Record) error {
	d.got = append(d.got, "next")
	return nil
}
func (d *recorder) To(_ context.Context, topic string, _ *record.Record) error {
	d.got = append(d.got, topic)
	return nil
}

func TestTopics(t *testing.T) {
	op, err := operatortest.Build(registry(t), "route", "- {when: a, to: x}\n- {when: b, to: y}\n- {when: c, to: x}\n- {to: z}\n")
	if err != nil {
		t.Fatal(err)
	}
	rt, ok := op.(catalog.Router)
	if !ok {
		t.Fatal("route must implement catalog.Router")
	}
	if got := fmt.Sprint(rt.Topics()); got != "[x y z]" {
		t.Fatalf("Topics() = %s, want [x y z]", got)
	}
	// Callers may not change the operator through the returned slice.
	rt.Topics()[0] = "changed"
	if rt.Topics()[0] != "x" {
		t.Fatal("Topics returns the operator's own slice")
	}
}

func TestFirstMatchWins(t *testing.T) {
	op, err := operatortest.Build(registry(t), "route", "- {when: n > 1, to: big}\n- {when: n > 0, to: small}\n")
	if err != nil {
		t.Fatal(err)
	}
	res := operatortest.Process(context.Background(), op, operatortest.Values(
		map[string]any{"n": 5}, map[string]any{"n": 1}, map[string]any{"n": 0}, map[string]any{"flag": true}))
	if len(res.Routed["big"]) != 1 || len(res.Routed["small"]) != 1 || len(res.Out) != 1 || len(res.DLQ) != 1 {
		t.Fatalf("big %d small %d next %d dlq %v", len(res.Routed["big"]), len(res.Routed["small"]), len(res.Out), res.DLQ)
	}
	if res.Routed["big"][0].Offset != 0 || res.Routed["small"][0].Offset != 1 || res.Out[0].Offset != 2 {
		t.Fatal("records went to the wrong places")
	}
}

// An also case writes a copy and lets the record go on: to the later
// cases, of which an exclusive one still takes it, and to the next step.
// A failing predicate after a copy was written fails the record (the
// engine dead-letters the input; the copy, like an explode's earlier
// elements, stays written).
func TestAlsoFansOut(t *testing.T) {
	op, err := operatortest.Build(registry(t), "route",
		"- {to: audit, also: true}\n- {when: n > 1, to: big, also: true}\n- {when: n > 2, to: huge}\n- {when: n > 0, to: small, also: false}\n")
	if err != nil {
		t.Fatal(err)
	}
	dests := &recorder{}
	for _, r := range operatortest.Values(map[string]any{"n": 3}, map[string]any{"n": 2}, map[string]any{"n": 1}, map[string]any{"n": 0}) {
		if err := op.Process(context.Background(), r, dests); err != nil {
			t.Fatal(err)
		}
	}
	want := "[audit big huge audit big small audit small audit next]"
	if got := fmt.Sprint(dests.got); got != want {
		t.Fatalf("destinations %s, want %s", got, want)
	}
	res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"n": "x"}))
	if len(res.Routed["audit"]) != 1 || len(res.DLQ) != 1 || len(res.Out) != 0 {
		t.Fatalf("a failing predicate after a copy: routed %v, dlq %v, next %d", res.Routed, res.DLQ, len(res.Out))
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"- {to: a}\n- {when: x, to: b}\n", "example.yaml:1:3: this case has no when, so it matches every record and the cases after it never match; move it last or add a when"},
		{"- when: lenn(x) > 0\n  to: a\n- {when: 'y +', to: b}\n",
			"example.yaml:1:9: unknown function lenn; did you mean len?\nexample.yaml:3:13: unexpected token EOF"},
		{"- {when: x, to: 'my topic'}", `example.yaml:1:17: "my topic" is not a valid Kafka topic name: use letters, digits, '.', '_' and '-', at most 249`},
		{"- {when: '1 + 1', to: a}", "example.yaml:1:11: expected bool, but got int"},
		{"- {when: x}", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/route.json#'\n- at '/0': missing property 'to'"},
		{"- {to: a, topic: b}", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/route.json#'\n- at '/0': additional properties 'topic' not allowed"},
		{"- {to: a, also: yes please}", "config does not match the schema: jsonschema validation failed with 'https://sluice.dev/schemas/operators/route.json#'\n- at '/0/also': got string, want boolean"},
		{"- {to: a, also: false}\n- {when: x, to: b}\n", "example.yaml:1:3: this case has no when, so it matches every record and the cases after it never match; move it last or add a when"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			_, err := operatortest.Build(registry(t), "route", tt.step)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestConstructorWithoutSchema(t *testing.T) {
	tests := []struct{ step, want string }{
		{"[]", "p.yaml:1:1: expected a list of cases like {when: <predicate>, to: <topic>}, got an empty list"},
		{"{to: a}", "p.yaml:1:1: expected a list of cases like {when: <predicate>, to: <topic>}, got a mapping"},
		{"[a]", "p.yaml:1:2: expected a case like {when: <predicate>, to: <topic>}, got a scalar"},
		{"- {when: x}", "p.yaml:1:3: this case has no to: name the topic its records are written to"},
		{"- {to: a, topc: b}", `p.yaml:1:11: unknown field "topc"; a case has when, to and also`},
		{"- {to: a, also: maybe}", `p.yaml:1:17: also must be true or false, not "maybe"`},
		{"- {to: [a]}", `p.yaml:1:8: "" is not a valid Kafka topic name: use letters, digits, '.', '_' and '-', at most 249`},
		{"- {to: ..}", `p.yaml:1:8: ".." is not a valid Kafka topic name: use letters, digits, '.', '_' and '-', at most 249`},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.step), &doc); err != nil {
				t.Fatal(err)
			}
			_, err := newRoute(&catalog.Build{}, catalog.NewConfig(catalog.NewSource("p.yaml", []byte(tt.step)), doc.Content[0]))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}
