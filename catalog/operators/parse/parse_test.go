package parse_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/parse"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func registry(t testing.TB) *catalog.Registry {
	return operatortest.Registry(t, parse.Register)
}

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, registry(t), "parse")
}

func TestProcess(t *testing.T) {
	obj := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		step    string
		in      any
		out     []any  // values passed on
		reason  string // DLQ reason, "" when none
		message string // substring of the rejection
	}{
		{name: "json scalar document", step: "format: json", in: "42", out: []any{42.0}},
		{name: "json into wraps", step: "{format: json, into: doc}", in: `{"a":[1,2]}`, out: []any{obj("doc", obj("a", []any{1.0, 2.0}))}},
		{name: "json empty text", step: "format: json", in: "", reason: "decode", message: "not valid JSON"},
		{name: "json object value is not text", step: "format: json", in: obj("a", 1.0), reason: "type", message: "expected a string value, got object"},
		{name: "json field replaced in place", step: "{format: json, field: p}", in: obj("p", `[true]`), out: []any{obj("p", []any{true})}},
		{name: "json field bad text", step: "{format: json, field: p}", in: obj("p", `{`), reason: "decode", message: `field "p": not valid JSON`},
		{name: "field missing passes", step: "{format: json, field: p}", in: obj("q", 1.0), out: []any{obj("q", 1.0)}},
		{name: "field null passes", step: "{format: json, field: p}", in: obj("p", nil), out: []any{obj("p", nil)}},
		{name: "field on non-object", step: "{format: json, field: p}", in: "text", reason: "type", message: "expected a JSON object value, got string"},
		{name: "field not a string", step: "{format: csv, field: p, columns: [a]}", in: obj("p", []any{}), reason: "type", message: `field "p": expected a string, got array`},
		{name: "csv quoted newline", step: "{format: csv, columns: [a, b]}", in: "\"x\ny\",2\n", out: []any{obj("a", "x\ny", "b", "2")}},
		{name: "csv tab delimiter", step: `{format: csv, columns: [a, b], delimiter: "\t"}`, in: "1\t2", out: []any{obj("a", "1", "b", "2")}},
		{name: "csv multibyte delimiter", step: `{format: csv, columns: [a, b], delimiter: "§"}`, in: "1§2", out: []any{obj("a", "1", "b", "2")}},
		{name: "csv two lines", step: "{format: csv, columns: [a]}", in: "1\n2\n", reason: "decode", message: "more than one line"},
		{name: "csv empty", step: "{format: csv, columns: [a]}", in: "", reason: "decode", message: "invalid CSV: the value is empty"},
		{name: "csv bare quote", step: "{format: csv, columns: [a, b]}", in: `1,x"y`, reason: "decode", message: `invalid CSV: bare " in non-quoted-field (column 4)`},
		{name: "csv too many cells", step: "{format: csv, columns: [a]}", in: "1,2", reason: "decode", message: "the line has 2 cells but columns lists 1 names"},
		{name: "csv header kept without header option", step: "{format: csv, columns: [a, b]}", in: "a,b", out: []any{obj("a", "a", "b", "b")}},
		{name: "csv header dropped", step: "{format: csv, columns: [a, b], header: true}", in: "a,b", out: nil},
		{name: "csv into field", step: "{format: csv, field: line, into: row, columns: [a]}", in: obj("line", "z"), out: []any{obj("line", "z", "row", obj("a", "z"))}},
		{name: "raw default into", step: "format: raw", in: "hello", out: []any{obj("value", "hello")}},
		{name: "raw field copy", step: "{format: raw, field: a, into: b}", in: obj("a", "t"), out: []any{obj("a", "t", "b", "t")}},
		{name: "raw non-string", step: "format: raw", in: 3.0, reason: "type", message: "expected a string value, got number"},
	}
	reg := registry(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op, err := operatortest.Build(reg, "parse", tc.step)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			res := operatortest.Process(context.Background(), op, operatortest.Values(tc.in))
			var got []any
			for _, r := range res.Out {
				got = append(got, r.Value)
			}
			if !record.EqualJSON(got, tc.out) {
				t.Errorf("output: got %#v, want %#v", got, tc.out)
			}
			if tc.reason == "" {
				if len(res.DLQ) != 0 {
					t.Fatalf("unexpected DLQ: %v", res.Errs)
				}
				return
			}
			if len(res.DLQ) != 1 || string(res.DLQ[0]) != tc.reason {
				t.Fatalf("DLQ: got %v (%v), want [%s]", res.DLQ, res.Errs, tc.reason)
			}
			if !strings.Contains(res.Errs[0].Error(), tc.message) {
				t.Errorf("error %q does not contain %q", res.Errs[0], tc.message)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ step, want string }{
		{"format: csv", "example.yaml:1:9: format csv needs columns: the names of the cells, in order"},
		{"{format: csv, columns: [a, b, a]}", `example.yaml:1:31: column "a" is listed twice`},
		{"{format: csv, columns: [a], delimiter: ';;'}", `example.yaml:1:40: delimiter must be exactly one character, got ";;"`},
		{"{format: csv, columns: [a], delimiter: ''}", `example.yaml:1:40: delimiter must be exactly one character, got ""`},
		{"format: csv\ncolumns: [a]\ndelimiter: '\"'", `example.yaml:3:12: delimiter cannot be "\""`},
		{"format: json\nheader: true", "example.yaml:2:1: header only applies to format csv, and this step has format json"},
		{"format: raw\ncolumns: [a]", "example.yaml:2:1: columns only applies to format csv, and this step has format raw"},
	}
	reg := registry(t)
	for _, tc := range tests {
		t.Run(tc.step, func(t *testing.T) {
			_, err := operatortest.Build(reg, "parse", tc.step)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got error %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestConstructorWithoutSchema calls the constructor on configs the schema
// would reject: it must report them, never panic.
func TestConstructorWithoutSchema(t *testing.T) {
	tests := []struct{ step, want string }{
		{"json", "example.yaml:1:1: parse needs a mapping such as {format: json}, got a scalar"},
		{"{}", "example.yaml:1:1: parse needs a format: json, csv or raw"},
		{"{format: json, colour: red}", `example.yaml:1:16: unknown option "colour": parse takes format, field, into, columns, delimiter and header`},
		{"{format: [json]}", "example.yaml:1:10: format must be json, csv or raw, got a list"},
		{"{format: csv, columns: []}", "example.yaml:1:24: columns must be a non-empty list of names"},
		{"{format: csv, columns: [{a: 1}]}", "example.yaml:1:25: a column must be a name, got a mapping"},
		{"{format: csv, columns: [a], header: maybe}", `example.yaml:1:37: header must be true or false, got "maybe"`},
		{"format: xml", `example.yaml:1:9: unknown format "xml": use json, csv or raw`},
		{"format: csv\ncolumns: [a]\ncolumns: [a]", "example.yaml:3:1: columns is given twice"},
		{"{format: json, field: ''}", "example.yaml:1:23: field must be a field name"},
		{"", "example.yaml: parse needs a mapping such as {format: json}, got a nothing"},
	}
	for _, tc := range tests {
		t.Run(tc.step, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tc.step), &doc); err != nil {
				t.Fatal(err)
			}
			var n *yaml.Node
			if len(doc.Content) > 0 {
				n = doc.Content[0]
			}
			conf := catalog.NewConfig(catalog.NewSource("example.yaml", []byte(tc.step)), n)
			_, err := parse.New(&catalog.Build{}, conf)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got error %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestConcurrentCSV shares one operator between goroutines, as tasks do; the
// pooled CSV readers must never leak text from one record into another.
func TestConcurrentCSV(t *testing.T) {
	op, err := operatortest.Build(registry(t), "parse", "{format: csv, columns: [a, b]}")
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{"1,2", "3,4\n", "bad\n\nline,x,y", "5,\"6\"", "7,8\n9,10"}
	want := []string{"1|2", "3|4", "dlq", "5|6", "dlq"}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				k := (i + g) % len(inputs)
				res := operatortest.Process(context.Background(), op, operatortest.Values(inputs[k]))
				got := "dlq"
				if len(res.Out) == 1 {
					m := res.Out[0].Value.(map[string]any)
					got = m["a"].(string) + "|" + m["b"].(string)
				}
				if got != want[k] {
					t.Errorf("input %q: got %s, want %s", inputs[k], got, want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkCSV(b *testing.B) {
	op, err := operatortest.Build(registry(b), "parse", "{format: csv, columns: [vehicle, speed, note]}")
	if err != nil {
		b.Fatal(err)
	}
	r := &record.Record{}
	out := discard{}
	b.ReportAllocs()
	for b.Loop() {
		r.Value = `v1,12.5,"slow, then fast"`
		if err := op.Process(context.Background(), r, out); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Next(context.Context, *record.Record) error       { return nil }
func (discard) To(context.Context, string, *record.Record) error { return nil }
