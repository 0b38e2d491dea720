package expression

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/record"
)

func rec() *record.Record {
	return &record.Record{
		Key:       "k1",
		Value:     map[string]any{"speed": 12.5, "lat": 52.1, "name": "abc", "items": []any{1.0, 2.0}},
		Headers:   []record.Header{{Key: "source", Value: []byte("gps")}},
		Timestamp: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Partition: 3,
		Offset:    42,
	}
}

func TestEval(t *testing.T) {
	cases := []struct {
		src  string
		want any
	}{
		{"speed * 2", 25.0},
		{"missing == nil", true},
		{"key + '-' + name", "k1-abc"},
		{"partition * 100 + offset", 342},
		{"headers.source", "gps"},
		{"timestamp.Year()", 2026},
		{"len(items)", 2},
		{"value.name", "abc"},
		{"let x = speed; x > 10", true},
		{"filter(items, # > 1)", []any{2.0}},
	}
	for _, c := range cases {
		p, err := Compile(c.src, Any)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		got, err := p.Eval(rec())
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		if !record.EqualJSON(got, c.want) {
			t.Errorf("%s = %v, want %v", c.src, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		src       string
		want      Type
		line, col int
		msg       string
	}{
		{"", Bool, 1, 1, "expression is empty"},
		{"1 +", Any, 1, 3, "unexpected token EOF"},
		{"lenght(x)", Any, 1, 1, "unknown function lenght; did you mean len?"},
		{"x ==\n  uper(y)", Bool, 2, 3, "unknown function uper; did you mean upper?"},
		{"'a' + 1", Any, 1, 5, "invalid operation: + (mismatched types string and int)"},
		{"1 + 2", Bool, 1, 1, "expected bool, but got int"},
		{"offset + 'x'", Any, 1, 8, "invalid operation: + (mismatched types int and string)"},
	}
	for _, c := range cases {
		_, err := Compile(c.src, c.want)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: got %v, want a compile error", c.src, err)
			continue
		}
		if e.Line != c.line || e.Column != c.col || e.Msg != c.msg {
			t.Errorf("%q: got %d:%d %q, want %d:%d %q", c.src, e.Line, e.Column, e.Msg, c.line, c.col, c.msg)
		}
	}
}

func TestBoolOfMissingFieldIsFalse(t *testing.T) {
	p, err := Compile("missing", Bool)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := p.Bool(rec())
	if err != nil || ok {
		t.Fatalf("got %v, %v; want false, nil", ok, err)
	}
}

func TestEvalErrorIsTyped(t *testing.T) {
	p, err := Compile("name.first > 1", Bool)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Bool(rec())
	var ee *EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v, want *EvalError", err)
	}
}

func TestFastPathDoesNotCopy(t *testing.T) {
	p, _ := Compile("speed > 1", Bool)
	if p.usesMeta {
		t.Fatal("speed is a field, not metadata")
	}
	q, _ := Compile("key == 'k1'", Bool)
	if !q.usesMeta {
		t.Fatal("key is metadata")
	}
	r := rec()
	allocs := testing.AllocsPerRun(100, func() { _, _ = p.Bool(r) })
	if allocs > 1 {
		t.Errorf("field-only predicate allocates %v times per record", allocs)
	}
}

// FuzzExpression: no expression text may panic the compiler or evaluation.
func FuzzExpression(f *testing.F) {
	for _, s := range []string{"speed > 1", "key + 1", "let x = 1; x", "filter(items, # > 1)", "1 ?? 2", "a[1:2]", "now() - timestamp", "headers['x'] matches 'y'", "map(items, {.a})", "(((", "#", "$env"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile(src, Any)
		if err != nil {
			return
		}
		_, _ = p.Eval(rec())
	})
}

// Fields must name every top-level field an expression can read, and
// report the whole value for value and $env, so that the engine may decode
// only those fields.
func TestFields(t *testing.T) {
	cases := []struct {
		src  string
		want []string
		all  bool
	}{
		{"speed >= 0 && lat != nil", []string{"lat", "speed"}, false},
		{"speed * 3.6", []string{"speed"}, false},
		{"driver.id + '-' + driver?.shift", []string{"driver"}, false},
		{"all(items, {.x > limit})", []string{"items", "limit"}, false},
		{"key + string(partition)", []string{"key", "partition"}, false},
		{"let x = speed; x > 10", []string{"speed", "x"}, false},
		{"1 + 2", []string{}, false},
		{"value.speed", nil, true},
		{"len(value)", nil, true},
		{"$env.speed", nil, true},
		{"$env['sp' + 'eed'] > 1", nil, true},
	}
	for _, c := range cases {
		p, err := Compile(c.src, Any)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		got, all := p.Fields()
		if all != c.all || !c.all && fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("Fields(%s) = %q, %v; want %q, %v", c.src, got, all, c.want, c.all)
		}
	}
}

// An expression that only reads one name is evaluated without the VM; it
// must give what the VM gives, for fields, missing fields and metadata.
func TestEvalLoadMatchesVM(t *testing.T) {
	recs := []*record.Record{rec(), {Value: "raw"}, {Value: []any{1.0}}, {Value: nil, Key: "k"},
		{Value: map[string]any{"key": "field named key", "speed": nil}}}
	for _, src := range []string{"speed", "missing", "key", "value", "timestamp", "headers", "partition", "offset", "name", "items"} {
		p, err := Compile(src, Any)
		if err != nil {
			t.Fatal(err)
		}
		if p.load != src {
			t.Fatalf("%s: not loaded directly (%q)", src, p.load)
		}
		for _, r := range recs {
			got, err := p.Eval(r)
			if err != nil {
				t.Fatal(err)
			}
			want, err := p.EvalEnv(p.env(r))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
				t.Errorf("%s on %v: %#v, the VM gives %#v", src, r.Value, got, want)
			}
		}
	}
	for _, src := range []string{"speed * 2", "$env", "speed ?? 1", "true"} {
		if p, err := Compile(src, Any); err != nil || p.load != "" {
			t.Errorf("%s: loaded directly (%v)", src, err)
		}
	}
	if p, err := Compile("flag", Bool); err != nil || p.load != "" {
		t.Errorf("a predicate is loaded directly (%v)", err)
	}
}

// Numbers reach expressions with the kind they had in the JSON: integers
// as int, like expr's integer literals, so the integer operators work on
// them; numbers with a fraction or exponent as float64; integers beyond
// int64 as their exact text.
func TestNumberKinds(t *testing.T) {
	v, err := record.DecodeJSON([]byte(`{"id": 4, "odd": 7, "neg": -3, "f": 1.5, "w": 4.0, "e": 1e2,
		"big": 9223372036854775808, "top": 9223372036854775807, "items": [1, 2.5]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := &record.Record{Value: v}
	cases := []struct {
		src  string
		want any    // compared with its Go type
		err  string // when evaluation must fail
	}{
		{src: "id % 2 == 0", want: true},
		{src: "odd % 2", want: 1},
		{src: "id == 4", want: true},
		{src: "id + 1", want: 5},
		{src: "id * 2", want: 8},
		{src: "id - odd", want: -3},
		{src: "-neg", want: 3},
		{src: "abs(neg)", want: 3},
		{src: "id / 2", want: 2.0}, // expr's / always divides as floats
		{src: "odd / 2", want: 3.5},
		{src: "id * 1.5", want: 6.0},
		{src: "f + id", want: 5.5},
		{src: "w == 4", want: true},
		{src: "w == id", want: true},
		{src: "e == 100", want: true},
		{src: "w + 1", want: 5.0},
		{src: "id > f", want: true},
		{src: "id in [2, 4]", want: true},
		{src: "items[0] + 1", want: 2},
		{src: "int(f)", want: 1},
		{src: "float(id)", want: 4.0},
		{src: "top + 0", want: 9223372036854775807},
		{src: "string(id)", want: "4"},
		{src: "string(big)", want: "9223372036854775808"},
		{src: "big == nil", want: false},
		{src: "w % 2", err: "float64 % int"},
		{src: "f % 2", err: "float64 % int"},
		{src: "big + 1", err: "json.Number"},
	}
	for _, c := range cases {
		p, err := Compile(c.src, Any)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		got, err := p.Eval(r)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s = %#v, %v; want an error with %q", c.src, got, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		if fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", c.want, c.want) {
			t.Errorf("%s = %T %v, want %T %v", c.src, got, got, c.want, c.want)
		}
	}
}

// A predicate that does not give a bool says what it gave, in the words the
// DLQ's sluice.error header and runner test show.
func TestBoolTypeError(t *testing.T) {
	cases := []struct {
		src, what, want string
	}{
		{"speed", "filter", "filter must evaluate to a bool, got float64 (12.5)"},
		{"items[1]", "route when", "route when must evaluate to a bool, got float64 (2.0)"},
		{"value.count", "filter", "filter must evaluate to a bool, got int (3)"},
		{"name", "filter", `filter must evaluate to a bool, got string ("abc")`},
		{"items", "", "the expression must evaluate to a bool, got array ([1.0,2.0])"},
		{"value.obj", "filter", `filter must evaluate to a bool, got object ({"a":1})`},
	}
	r := rec()
	r.Value.(map[string]any)["count"] = 3
	r.Value.(map[string]any)["obj"] = map[string]any{"a": 1}
	for _, c := range cases {
		p, err := Compile(c.src, Bool)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		_, err = p.Named(c.what).Bool(r)
		var ee *EvalError
		if !errors.As(err, &ee) || err.Error() != c.want {
			t.Errorf("%s: got %v, want %q", c.src, err, c.want)
		}
	}
}

// TestEvalWrongTypeSaysSo: expr's built-ins fail on a value of the wrong
// type with a Go type assertion's message; users see what was needed and
// what they gave, in their terms.
func TestEvalWrongTypeSaysSo(t *testing.T) {
	cases := []struct {
		src  string
		page any
		want string
	}{
		{"lower(page)", 5, `evaluating "lower(page)": a string is needed here, got int`},
		{"page contains 'x'", map[string]any{"a": 1}, `evaluating "page contains 'x'": a string is needed here, got object`},
		{"split(page, ',')", []any{1}, `evaluating "split(page, ',')": a string is needed here, got array`},
		{"page + 1", map[string]any{}, `evaluating "page + 1": invalid operation: object + int`},
	}
	for _, c := range cases {
		p, err := Compile(c.src, Any)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		_, err = p.EvalEnv(map[string]any{"page": c.page})
		if err == nil || err.Error() != c.want {
			t.Errorf("%s on %v: %v; want %s", c.src, c.page, err, c.want)
		}
	}
}

func TestFieldsOf(t *testing.T) {
	a, _ := Compile("speed > limit", Any)
	b, _ := Compile("lat", Any)
	whole, _ := Compile("value", Any)
	names, all := FieldsOf(a, nil, b)
	slices.Sort(names)
	if all || strings.Join(names, ",") != "lat,limit,speed" {
		t.Errorf("FieldsOf(a, nil, b) = %v, %v", names, all)
	}
	if names, all := FieldsOf(a, whole, b); !all || names != nil {
		t.Errorf("FieldsOf with a whole-value read = %v, %v; want all", names, all)
	}
}
