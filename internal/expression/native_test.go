package expression

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/expr-lang/expr/vm"
)

// vmEval runs p on env with expr's VM only, the reference native must
// agree with.
func vmEval(p *Program, env map[string]any) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return (&vm.VM{}).Run(p.prog, env)
}

// sameValue compares results by Go type and value (NaN equal to NaN).
func sameValue(a, b any) bool {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	if x, ok := a.(float64); ok {
		y := b.(float64)
		return x == y && math.Signbit(x) == math.Signbit(y) || math.IsNaN(x) && math.IsNaN(y)
	}
	return reflect.DeepEqual(a, b)
}

// TestNativeAgreesWithVM evaluates generated expressions over generated
// records both ways: wherever the native evaluator gives an answer, it
// must be the VM's, value and Go type; where the VM fails, the native one
// must step aside (and Program then reports the VM's error).
func TestNativeAgreesWithVM(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 2026))
	values := []any{nil, 0, 1, 2, -3, 7, math.MaxInt, math.MinInt, 0.0, 0.5, -2.25, 3.6, 1e300, "", "a", "b", true, false,
		map[string]any{"id": 4, "name": "x"}, map[string]any{}, []any{1.0}}
	fields := []string{"a", "b", "c", "o"}
	leaves := []string{"a", "b", "c", "o.id", "o.name", `o["id"]`, "0", "2", "-1", "3.6", "0.2", `"a"`, `"b"`, "nil", "true", "false", "missing"}
	ops := []string{"+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "and", "or", "??"}
	var gen func(depth int) string
	gen = func(depth int) string {
		if depth == 0 || rng.IntN(3) == 0 {
			return leaves[rng.IntN(len(leaves))]
		}
		switch rng.IntN(8) {
		case 0:
			return "!(" + gen(depth-1) + ")"
		case 1:
			return "-(" + gen(depth-1) + ")"
		case 2:
			return "(" + gen(depth-1) + " ? " + gen(depth-1) + " : " + gen(depth-1) + ")"
		default:
			return "(" + gen(depth-1) + " " + ops[rng.IntN(len(ops))] + " " + gen(depth-1) + ")"
		}
	}
	var compiled, answered, checked int
	for range 3000 {
		src := gen(3)
		p, err := Compile(src, Any)
		if err != nil {
			continue // the checker rejects some shapes on literals
		}
		compiled++
		if p.native == nil {
			continue
		}
		slotNames := append(fields, "missing")
		bySlot := p.Slots(func(name string) int { return slices.Index(slotNames, name) })
		if bySlot == nil {
			t.Fatalf("%s: native on an environment but not on slots", src)
		}
		for range 20 {
			env := map[string]any{}
			for _, f := range fields {
				if v := values[rng.IntN(len(values))]; v != nil || rng.IntN(2) == 0 {
					env[f] = v
				}
			}
			want, werr := vmEval(p, env)
			got, ok := p.native(env, nil)
			checked++
			if !ok {
				continue
			}
			vals := make([]any, len(slotNames))
			for i, n := range slotNames {
				vals[i] = env[n]
			}
			if sgot, sok := bySlot(vals); !sok || !sameValue(sgot, got) {
				t.Fatalf("%s on %v: on slots %#v, %v; on the environment %#v", src, env, sgot, sok, got)
			}
			answered++
			if werr != nil {
				t.Fatalf("%s on %v: native gave %#v, the VM failed: %v", src, env, got, werr)
			}
			if !sameValue(got, want) {
				t.Fatalf("%s on %v: native gave %#v (%T), the VM %#v (%T)", src, env, got, got, want, want)
			}
		}
	}
	// The generator must reach the native path often, or this checks little.
	if compiled < 1000 || answered < checked/4 {
		t.Fatalf("compiled %d, native answered %d of %d evaluations", compiled, answered, checked)
	}
	t.Logf("compiled %d expressions; native answered %d of %d evaluations", compiled, answered, checked)
}

// TestNativeShapes names the expressions people write that must run
// without the VM, and the ones that must not (calls, metadata, let).
func TestNativeShapes(t *testing.T) {
	for _, src := range []string{
		"speed >= 0 && lat != nil", "speed * 3.6", "fuel < 0.2", "id % 2 == 0",
		"driver.id", `status == "ok" || retries > 3`, "a ?? 0", `kmh > 100 ? "fast" : "slow"`, "not ok",
	} {
		p, err := Compile(src, Any)
		if err != nil {
			t.Fatal(err)
		}
		if p.native == nil {
			t.Errorf("%s: no native evaluator", src)
		}
	}
	for _, src := range []string{"lower(name)", "let x = 1; x + a", "a in [1, 2]", "a?.b", "$env.a", "a ** 2", "name matches '^a'"} {
		p, err := Compile(src, Any)
		if err != nil {
			t.Fatal(err)
		}
		if p.native != nil {
			t.Errorf("%s: has a native evaluator, want the VM", src)
		}
	}
}

// TestNativeFallsBackToVMErrors checks that a value the native evaluator
// does not take still fails with the VM's message.
func TestNativeFallsBackToVMErrors(t *testing.T) {
	p, err := Compile("id % 2 == 0", Bool)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.EvalEnv(map[string]any{"id": 1.5})
	if err == nil || !strings.Contains(err.Error(), "float64 % int") {
		t.Fatalf("got %v, want the VM's invalid operation", err)
	}
	out, err := p.EvalEnv(map[string]any{"id": 4})
	if err != nil || out != true {
		t.Fatalf("got %v, %v; want true", out, err)
	}
}
