// Package expression compiles and evaluates the expressions of pipeline specs:
// predicates, keys, timestamps and computed values, written in expr-lang/expr.
//
// An expression sees the record's fields as top-level names (speed, lat) and
// the record's metadata as key, value, timestamp, headers, partition and
// offset. Programs are compiled and type-checked once per revision and are
// safe for concurrent use by many tasks.
package expression

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/sluicehq/sluice/internal/record"
)

// Type is the result type an expression must have.
type Type int

// Result types.
const (
	Any Type = iota
	Bool
)

func (t Type) String() string {
	if t == Bool {
		return "bool"
	}
	return "any"
}

// Metadata names every expression can use besides the record's fields.
var metaNames = []string{"key", "value", "timestamp", "headers", "partition", "offset"}

// Error is a compile error with a position inside the expression source
// (1-based line and column).
type Error struct {
	Line, Column int
	Msg          string
}

func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg) }

// EvalError is an error raised while evaluating an expression on a record.
type EvalError struct {
	Source string
	Err    error
}

func (e *EvalError) Error() string {
	var te *TypeError
	if errors.As(e.Err, &te) {
		// Says what is wrong in the user's terms; the expression is the
		// step's, which sluice.step names.
		return te.Error()
	}
	return fmt.Sprintf("evaluating %q: %v", e.Source, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

// TypeError is an expression result of the wrong type for its use, such as
// a filter that returns a number.
type TypeError struct {
	What string // what the result is for: "filter", "route when"
	Want string // "a bool"
	Got  any
}

func (e *TypeError) Error() string {
	what := e.What
	if what == "" {
		what = "the expression"
	}
	return fmt.Sprintf("%s must evaluate to %s, got %s", what, e.Want, record.Describe(e.Got))
}

// Program is a compiled expression.
type Program struct {
	src      string
	prog     *vm.Program
	want     Type
	usesMeta bool
	fields   []string // names the expression reads, sorted
	allData  bool     // reads the whole value (value, $env)
	// load is the name an expression that only loads one variable (a
	// field, as in {vehicle: vehicle_id}) reads; Eval then looks it up
	// without running the VM, as the VM's one instruction would.
	load string
	// native evaluates the expression without the VM when its shape and
	// the values allow (see native); nil when its shape does not.
	native native
	vms    sync.Pool
	// what names the result in type errors ("filter"); see Named.
	what string
}

// Named sets what the program's result is for, as type errors name it:
// "filter" gives "filter must evaluate to a bool, got float64 (1.5)". It
// must be called before the program is first used, and returns p.
func (p *Program) Named(what string) *Program {
	p.what = what
	return p
}

// Source returns the expression as written.
func (p *Program) Source() string { return p.src }

// checkEnv declares the metadata types for type checking. key and value are
// left undeclared: like record fields, their type is only known at run time.
func checkEnv() map[string]any {
	return map[string]any{
		"timestamp": time.Time{},
		"headers":   map[string]string{},
		"partition": 0,
		"offset":    0,
	}
}

// Compile parses and type-checks src. The returned error, when not nil, is an
// *Error with a position inside src.
func Compile(src string, want Type) (p *Program, err error) {
	// expr has panicked on odd input in the past; a pipeline spec must never
	// crash the compiler, so turn any panic into a positioned error.
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, &Error{Line: 1, Column: 1, Msg: fmt.Sprintf("cannot compile expression: %v", r)}
		}
	}()
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Line: 1, Column: 1, Msg: "expression is empty"}
	}
	v := &nameVisitor{src: src}
	opts := []expr.Option{
		expr.Env(checkEnv()),
		expr.AllowUndefinedVariables(),
		expr.Patch(v),
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, convertError(err)
	}
	// Checked here rather than with expr.AsBool, which would also add a
	// run-time conversion whose error ("invalid operation: bool(float64)")
	// does not say what is wrong; Bool says it instead.
	if t := prog.Node().Type(); want == Bool && t != nil && t.Kind() != reflect.Interface && t.Kind() != reflect.Bool {
		return nil, &Error{Line: 1, Column: 1, Msg: fmt.Sprintf("expected bool, but got %s", t)}
	}
	if v.err != nil {
		return nil, v.err
	}
	fields := make([]string, 0, len(v.names))
	for n := range v.names {
		fields = append(fields, n)
	}
	sort.Strings(fields)
	p = &Program{src: src, prog: prog, want: want, usesMeta: v.usesMeta, fields: fields, allData: v.allData,
		native: compileNative(prog.Node(), nil)}
	if want == Any && len(prog.Bytecode) == 1 && prog.Bytecode[0] == vm.OpLoadFast && len(prog.Arguments) == 1 {
		if a := prog.Arguments[0]; a >= 0 && a < len(prog.Constants) {
			p.load, _ = prog.Constants[a].(string)
		}
	}
	return p, nil
}

// Fields reports which top-level fields of an object value the expression
// can read: the names it uses (a superset: it may include metadata,
// function and let-variable names), or all when it reads the value as a
// whole (value, $env). Evaluating it on a record whose value holds only
// those fields gives the same result as on the whole value.
func (p *Program) Fields() (names []string, all bool) {
	if p.allData {
		return nil, true
	}
	return append([]string(nil), p.fields...), false
}

// FieldsAnd is Fields together with the fields after, which the steps
// after a step that passes its value on need (afterAll: every field): what
// a filter, dedupe or rekey needs from its input value.
func (p *Program) FieldsAnd(after []string, afterAll bool) (names []string, all bool) {
	if p.allData || afterAll {
		return nil, true
	}
	return append(append([]string(nil), p.fields...), after...), false
}

// FieldsOf is what a step that reads progs (nil ones are skipped) and
// emits values of its own needs from its input: every field any of them
// reads, or all when one reads the whole value.
func FieldsOf(progs ...*Program) (names []string, all bool) {
	for _, p := range progs {
		if p != nil {
			if names, all = p.FieldsAnd(names, all); all {
				return nil, true
			}
		}
	}
	return names, false
}

// nameVisitor notes whether an expression reads record metadata (so that
// evaluation can skip building a merged environment when it does not) and
// rejects calls to functions that do not exist, which expr would otherwise
// accept as undefined variables and fail on at run time.
type nameVisitor struct {
	src      string
	usesMeta bool
	names    map[string]bool // every identifier, for Fields
	allData  bool            // value or $env: the whole value is read
	err      *Error
}

func (v *nameVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if v.names == nil {
			v.names = map[string]bool{}
		}
		v.names[n.Value] = true
		if n.Value == "value" || n.Value == "$env" {
			v.allData = true
		}
		for _, m := range metaNames {
			if n.Value == m {
				v.usesMeta = true
			}
		}
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || v.err != nil {
			return
		}
		if _, known := builtin.Index[id.Value]; known {
			return
		}
		line, col := lineCol(v.src, id.Location().From)
		msg := fmt.Sprintf("unknown function %s", id.Value)
		if s := Suggest(id.Value, builtinNames()); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		}
		v.err = &Error{Line: line, Column: col, Msg: msg}
	}
}

var builtinNames = sync.OnceValue(func() []string {
	names := make([]string, 0, len(builtin.Builtins))
	for _, b := range builtin.Builtins {
		names = append(names, b.Name)
	}
	sort.Strings(names)
	return names
})

// lineCol turns a rune offset into a 1-based line and column.
func lineCol(src string, from int) (line, col int) {
	line, col = 1, 1
	n := 0
	for _, r := range src {
		if n == from {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		n++
	}
	return line, col
}

func convertError(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		line := fe.Line
		if line < 1 {
			line = 1
		}
		return &Error{Line: line, Column: fe.Column + 1, Msg: fe.Message}
	}
	return &Error{Line: 1, Column: 1, Msg: err.Error()}
}

// env returns what the program runs against. When the program reads only
// fields of an object value, the value's own map is the environment and
// nothing is allocated.
func (p *Program) env(r *record.Record) map[string]any {
	obj, isObj := r.Value.(map[string]any)
	if isObj && !p.usesMeta {
		return obj
	}
	env := make(map[string]any, len(obj)+len(metaNames))
	for k, v := range obj {
		env[k] = v
	}
	env["key"] = r.Key
	env["value"] = r.Value
	env["timestamp"] = r.Timestamp
	env["headers"] = r.HeaderMap()
	env["partition"] = int(r.Partition)
	env["offset"] = int(r.Offset)
	return env
}

// Eval runs the program on r.
func (p *Program) Eval(r *record.Record) (any, error) {
	if p.load != "" {
		return p.env(r)[p.load], nil
	}
	return p.EvalEnv(p.env(r))
}

// EvalEnv runs the program against an explicit environment, for operators
// that evaluate expressions over something other than a record (an array
// element, an accumulator).
func (p *Program) EvalEnv(env map[string]any) (out any, err error) {
	if p.native != nil {
		if out, ok := p.native(env, nil); ok {
			return out, nil
		}
	}
	m, _ := p.vms.Get().(*vm.VM)
	if m == nil {
		m = &vm.VM{}
	}
	out, err = m.Run(p.prog, env)
	p.vms.Put(m)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			err = errors.New(userTypes(fe.Message))
		}
		return nil, &EvalError{Source: p.src, Err: err}
	}
	return out, nil
}

// SlotFunc is a program compiled against numbered values (see Slots).
// It returns false when it cannot answer for these values; Eval on a
// record whose fields hold them then gives the answer or the error.
type SlotFunc func(vals []any) (any, bool)

// Slots compiles the program to read each field it uses from
// vals[slot(name)] rather than from a record, for a caller that decodes
// fields into numbered slots. It returns nil when the program cannot run
// that way: it reads metadata or the whole value, uses a construct only
// the VM runs (a function call, let, in, ...), or slot gives no number
// (-1) for a name it reads. Where the SlotFunc answers, its answer is
// Eval's on a record whose fields are those values (absent ones nil).
func (p *Program) Slots(slot func(name string) int) SlotFunc {
	if p.native == nil || p.usesMeta || p.allData {
		return nil
	}
	f := compileNative(p.prog.Node(), slot)
	if f == nil {
		return nil
	}
	return func(vals []any) (any, bool) { return f(nil, vals) }
}

// Bool runs a predicate on r. A nil result (a missing field) is false.
func (p *Program) Bool(r *record.Record) (bool, error) {
	out, err := p.Eval(r)
	if err != nil {
		return false, err
	}
	switch b := out.(type) {
	case bool:
		return b, nil
	case nil:
		return false, nil
	default:
		return false, &EvalError{Source: p.src, Err: &TypeError{What: p.what, Want: "a bool", Got: out}}
	}
}

// Functions lists the built-in functions expressions may call, for docs and
// the IDE's completion.
func Functions() []string { return builtinNames() }

// conversionRE matches the message of a failed Go type assertion, which is
// how expr's built-ins (lower, split, contains, ...) fail on a value of the
// wrong type.
var conversionRE = regexp.MustCompile(`^interface conversion: interface \{\} is (.+), not (.+)$`)

// goTypeWords are Go type names in expr's messages as users know them.
var goTypeWords = strings.NewReplacer(
	"map[string]interface {}", "object",
	"[]interface {}", "array",
	"record.Number", "integer beyond int64",
	"time.Time", "time",
	"time.Duration", "duration",
	"<nil>", "nil",
)

// userTypes rewrites a run-time error of expr in the user's terms:
// "interface conversion: interface {} is int, not string" (lower(5))
// becomes "a string is needed here, got int".
func userTypes(msg string) string {
	if m := conversionRE.FindStringSubmatch(msg); m != nil {
		want := goTypeWords.Replace(m[2])
		article := "a"
		if strings.ContainsAny(want[:1], "aeiou") {
			article = "an"
		}
		return fmt.Sprintf("%s %s is needed here, got %s", article, want, goTypeWords.Replace(m[1]))
	}
	return goTypeWords.Replace(msg)
}
