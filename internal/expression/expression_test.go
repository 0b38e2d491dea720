package expression

import (
	"errors"
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
