package expression

import (
	"reflect"

	"github.com/expr-lang/expr/ast"
)

// native evaluates an expression against an environment in plain Go, for
// the shapes most pipeline expressions have (fields, nested fields,
// literals, arithmetic, comparisons, && || ! ?? and ?:), on the values a
// decoded JSON record holds. It returns false whenever a value is not one
// it handles exactly as expr's VM does (a type mismatch, a modulo by zero,
// a field of something that is not an object); Program then runs the VM,
// which gives the result or the error. Expressions are pure, so evaluating
// one a second time is safe.
//
// What it returns when it returns true is what the VM returns: the same
// value of the same Go type, following expr's runtime helpers (Equal,
// Less, Add, Divide, Modulo, ...) for int and float64.
//
// A field (an identifier) is read from env, or, when the evaluator was
// compiled with a slot numbering, from vals.
type native func(env map[string]any, vals []any) (any, bool)

// compileNative returns a native evaluator for the checked tree n, or nil
// when n has a node it does not handle. With a slot function, fields are
// read from vals[slot(name)]; a name slot gives no number for (-1) makes
// it return nil.
func compileNative(n ast.Node, slot func(name string) int) native {
	c := nativeCompiler{slot: slot}
	return c.compile(n)
}

type nativeCompiler struct {
	slot func(name string) int
}

func (c nativeCompiler) compile(n ast.Node) native {
	switch n := n.(type) {
	case *ast.NilNode:
		return constant(nil)
	case *ast.BoolNode:
		return constant(n.Value)
	case *ast.StringNode:
		return constant(n.Value)
	case *ast.FloatNode:
		if t := n.Type(); t != nil && t.Kind() != reflect.Float64 {
			return nil
		}
		return constant(n.Value)
	case *ast.IntegerNode:
		// The checker types an integer literal as the operand it meets
		// needs, and the compiler pushes it as that type.
		if t := n.Type(); t != nil {
			switch t.Kind() {
			case reflect.Float64:
				return constant(float64(n.Value))
			case reflect.Float32, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
				reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				return nil
			}
		}
		return constant(n.Value)
	case *ast.ConstantNode:
		switch n.Value.(type) {
		case nil, bool, string, int, float64:
			return constant(n.Value)
		}
		return nil
	case *ast.IdentifierNode:
		if n.Value == "$env" {
			return nil
		}
		name := n.Value
		if c.slot == nil {
			return func(env map[string]any, _ []any) (any, bool) { return env[name], true }
		}
		i := c.slot(name)
		if i < 0 {
			return nil
		}
		return func(_ map[string]any, vals []any) (any, bool) { return vals[i], true }
	case *ast.MemberNode:
		return c.member(n)
	case *ast.UnaryNode:
		return c.unary(n)
	case *ast.BinaryNode:
		return c.binary(n)
	case *ast.ConditionalNode:
		cond, yes, no := c.compile(n.Cond), c.compile(n.Exp1), c.compile(n.Exp2)
		if cond == nil || yes == nil || no == nil {
			return nil
		}
		return func(env map[string]any, vals []any) (any, bool) {
			c, ok := cond(env, vals)
			b, isBool := c.(bool)
			if !ok || !isBool {
				return nil, false
			}
			if b {
				return yes(env, vals)
			}
			return no(env, vals)
		}
	}
	return nil
}

func constant(v any) native {
	return func(map[string]any, []any) (any, bool) { return v, true }
}

// nativeMember handles a.b and a["b"] on an object, as OpFetch does.
func (c nativeCompiler) member(n *ast.MemberNode) native {
	prop, isString := n.Property.(*ast.StringNode)
	if n.Optional || n.Method || !isString {
		return nil
	}
	base := c.compile(n.Node)
	if base == nil {
		return nil
	}
	name := prop.Value
	return func(env map[string]any, vals []any) (any, bool) {
		v, ok := base(env, vals)
		m, isObj := v.(map[string]any)
		if !ok || !isObj || m == nil {
			return nil, false
		}
		return m[name], true
	}
}

func (c nativeCompiler) unary(n *ast.UnaryNode) native {
	x := c.compile(n.Node)
	if x == nil {
		return nil
	}
	switch n.Operator {
	case "!", "not":
		return func(env map[string]any, vals []any) (any, bool) {
			v, ok := x(env, vals)
			b, isBool := v.(bool)
			return !b, ok && isBool
		}
	case "-":
		return func(env map[string]any, vals []any) (any, bool) {
			v, ok := x(env, vals)
			if !ok {
				return nil, false
			}
			switch v := v.(type) {
			case int:
				return -v, true
			case float64:
				return -v, true
			}
			return nil, false
		}
	case "+":
		return x
	}
	return nil
}

func (c nativeCompiler) binary(n *ast.BinaryNode) native {
	l, r := c.compile(n.Left), c.compile(n.Right)
	if l == nil || r == nil {
		return nil
	}
	switch op := n.Operator; op {
	case "&&", "and", "||", "or":
		// Short-circuit, as the VM's jumps: the left side must be a bool,
		// the right side is the result as it is.
		stopAt := op == "||" || op == "or"
		return func(env map[string]any, vals []any) (any, bool) {
			v, ok := l(env, vals)
			b, isBool := v.(bool)
			if !ok || !isBool {
				return nil, false
			}
			if b == stopAt {
				return b, true
			}
			return r(env, vals)
		}
	case "??":
		return func(env map[string]any, vals []any) (any, bool) {
			v, ok := l(env, vals)
			if !ok {
				return nil, false
			}
			switch v := v.(type) {
			case nil:
				return r(env, vals)
			case bool, string, int, float64:
				return v, true
			case map[string]any:
				return v, v != nil
			case []any:
				return v, v != nil
			}
			return nil, false
		}
	case "==", "!=":
		neq := op == "!="
		return func(env map[string]any, vals []any) (any, bool) {
			a, ok1 := l(env, vals)
			b, ok2 := r(env, vals)
			if !ok1 || !ok2 {
				return nil, false
			}
			eq, ok := equal(a, b)
			return eq != neq, ok
		}
	case "<", ">", "<=", ">=":
		cmp := comparisons[op]
		return func(env map[string]any, vals []any) (any, bool) {
			a, ok1 := l(env, vals)
			b, ok2 := r(env, vals)
			if !ok1 || !ok2 {
				return nil, false
			}
			return compare(a, b, cmp)
		}
	case "+", "-", "*", "/", "%":
		ar := arithmetics[op]
		return func(env map[string]any, vals []any) (any, bool) {
			a, ok1 := l(env, vals)
			b, ok2 := r(env, vals)
			if !ok1 || !ok2 {
				return nil, false
			}
			return arith(a, b, ar)
		}
	}
	return nil
}

// equal is runtime.Equal for the scalars of a decoded record: numbers
// compare by value across int and float64, a string or bool equals only
// its own kind, nil only nil.
func equal(a, b any) (bool, bool) {
	switch x := a.(type) {
	case nil:
		switch b.(type) {
		case nil:
			return true, true
		case bool, string, int, float64:
			return false, true
		}
	case int:
		switch y := b.(type) {
		case int:
			return x == y, true
		case float64:
			return float64(x) == y, true
		case nil, bool, string:
			return false, true
		}
	case float64:
		switch y := b.(type) {
		case int:
			return x == float64(y), true
		case float64:
			return x == y, true
		case nil, bool, string:
			return false, true
		}
	case string:
		switch y := b.(type) {
		case string:
			return x == y, true
		case nil, bool, int, float64:
			return false, true
		}
	case bool:
		switch y := b.(type) {
		case bool:
			return x == y, true
		case nil, string, int, float64:
			return false, true
		}
	}
	return false, false
}

// comparison is one of < > <= >=, on numbers and on strings.
type comparison struct {
	num func(a, b float64) bool
	i   func(a, b int) bool
	str func(a, b string) bool
}

var comparisons = map[string]comparison{
	"<":  {func(a, b float64) bool { return a < b }, func(a, b int) bool { return a < b }, func(a, b string) bool { return a < b }},
	">":  {func(a, b float64) bool { return a > b }, func(a, b int) bool { return a > b }, func(a, b string) bool { return a > b }},
	"<=": {func(a, b float64) bool { return a <= b }, func(a, b int) bool { return a <= b }, func(a, b string) bool { return a <= b }},
	">=": {func(a, b float64) bool { return a >= b }, func(a, b int) bool { return a >= b }, func(a, b string) bool { return a >= b }},
}

// compare is runtime.Less and its kin: int with int as ints, any other
// pair of numbers as float64s, strings by bytes.
func compare(a, b any, c comparison) (any, bool) {
	switch x := a.(type) {
	case int:
		switch y := b.(type) {
		case int:
			return c.i(x, y), true
		case float64:
			return c.num(float64(x), y), true
		}
	case float64:
		switch y := b.(type) {
		case int:
			return c.num(x, float64(y)), true
		case float64:
			return c.num(x, y), true
		}
	case string:
		if y, ok := b.(string); ok {
			return c.str(x, y), true
		}
	}
	return nil, false
}

// arithmetic is one of + - * / %.
type arithmetic struct {
	op  byte
	num func(a, b float64) float64
	i   func(a, b int) int
}

var arithmetics = map[string]arithmetic{
	"+": {'+', func(a, b float64) float64 { return a + b }, func(a, b int) int { return a + b }},
	"-": {'-', func(a, b float64) float64 { return a - b }, func(a, b int) int { return a - b }},
	"*": {'*', func(a, b float64) float64 { return a * b }, func(a, b int) int { return a * b }},
	"/": {'/', func(a, b float64) float64 { return a / b }, nil},
	"%": {'%', nil, func(a, b int) int { return a % b }},
}

// arith is runtime.Add and its kin: int with int gives an int (but / always
// a float64, as in expr), any other pair of numbers a float64; % takes ints
// only (and not 0); + also joins strings.
func arith(a, b any, ar arithmetic) (any, bool) {
	switch x := a.(type) {
	case int:
		switch y := b.(type) {
		case int:
			switch ar.op {
			case '/':
				return float64(x) / float64(y), true
			case '%':
				if y == 0 {
					return nil, false
				}
			}
			return ar.i(x, y), true
		case float64:
			if ar.num == nil {
				return nil, false
			}
			return ar.num(float64(x), y), true
		}
	case float64:
		if ar.num == nil {
			return nil, false
		}
		switch y := b.(type) {
		case int:
			return ar.num(x, float64(y)), true
		case float64:
			return ar.num(x, y), true
		}
	case string:
		if y, ok := b.(string); ok && ar.op == '+' {
			return x + y, true
		}
	}
	return nil, false
}
