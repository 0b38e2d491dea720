package script

import (
	"fmt"
	"strings"
	"time"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"

	"github.com/sluicehq/sluice/catalog"
)

// Regular expressions.
//
// goja matches most patterns with Go's regexp, which runs in linear time.
// Patterns Go's regexp cannot express (backreferences, lookaround) and
// every match that starts past index 0 (lastIndex of a global or sticky
// regexp) go to dlclark/regexp2, a backtracking engine: /^(a|a)*\1$/ on
// forty letters runs for hours. Runtime.Interrupt cannot stop it (the
// interpreter checks the flag between instructions, and a match is one), so
// the time budget alone would let one record stall its pipeline forever.
//
// regexp2 has a per-match timeout, but goja neither exposes it nor reports
// it: a match that times out silently becomes "no match". So:
//
//   - matchTimeout is set as regexp2's DefaultMatchTimeout, once at
//     start-up, and bounds every backtracking match in the process;
//   - every entry point to matching (exec, test and the Symbol methods that
//     String.prototype.match, replace, split, ... call) is wrapped, and a
//     call that took matchLimit or longer ends the script's call with reason
//     timeout, because its result may be a timed-out "no match". Never a
//     silently wrong result.
//
// matchLimit is half of matchTimeout because regexp2 times matches by a
// coarse clock that a goroutine advances: when that goroutine is starved
// (a busy process), the clock a match starts from is stale, and the match
// times out after less wall-clock time than matchTimeout (CI saw one end
// early enough to pass for a "no match"). A stale start up to
// matchTimeout - matchLimit is still caught.
//
// The limits are global (regexp2 reads the timeout when a pattern is
// compiled, and goja shares compiled patterns between runtimes), so they
// cannot follow each step's timeout: one regexp call may take at most
// matchTimeout, whatever the step's budget, and a step whose budget is
// shorter overshoots by up to that plus the clock period.
const (
	matchLimit   = 50 * time.Millisecond
	matchTimeout = 2 * matchLimit
	// matchClock is how often regexp2's clock ticks; its default (100ms)
	// would add up to 200ms to matchTimeout. The clock goroutine runs only
	// while a match with a timeout does.
	matchClock = 5 * time.Millisecond
)

// init configures regexp2 before any pattern exists: DefaultMatchTimeout is
// read when a pattern compiles and the clock period by the clock goroutine,
// so neither may change later. Nothing else in Sluice uses regexp2.
func init() {
	regexp2.DefaultMatchTimeout = matchTimeout
	regexp2.SetTimeoutCheckPeriod(matchClock)
}

// guardRegexps wraps the entry points to regexp matching of vm's runtime.
func (vm *jsVM) guardRegexps() error {
	// matchAll's iterator matches in its next method, which no property
	// of RegExp.prototype leads to. Found before anything is wrapped: the
	// wrappers may refuse even this tiny match on a starved machine.
	it, err := vm.rt.RunString("Object.getPrototypeOf(/(?:)/g[Symbol.matchAll](''))")
	if err != nil {
		return fmt.Errorf("guarding regexps: %w", err)
	}
	g := vm.rt.GlobalObject()
	proto := objectAt(g, "RegExp", "prototype")
	for _, name := range []string{"exec", "test"} {
		orig, err := native(proto, name)
		if err != nil {
			return err
		}
		if err := vm.replace(proto, name, vm.timedMatch(orig)); err != nil {
			return err
		}
	}
	symbols := objectAt(g, "Symbol")
	for _, name := range []string{"match", "matchAll", "replace", "search", "split"} {
		sym, ok := symbols.Get(name).(*goja.Symbol)
		if !ok {
			return fmt.Errorf("guarding regexps: no Symbol.%s", name)
		}
		wrap := vm.timedMatch
		if name == "replace" {
			wrap = func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
				timed := vm.timedMatch(orig)
				return func(call goja.FunctionCall) goja.Value {
					if s, ok := primitiveString(call.Argument(0)); ok {
						matches := 1.0
						if this, ok := call.This.(*goja.Object); ok && strings.Contains(this.Get("flags").String(), "g") {
							matches = float64(s.Length()) + 1
						}
						vm.checkReplace(s, matches, call.Argument(1), "RegExp.prototype[Symbol.replace]")
					}
					return timed(call)
				}
			}
		}
		if err := vm.replaceSymbol(proto, sym, wrap); err != nil {
			return err
		}
	}
	itProto, ok := it.(*goja.Object)
	if !ok {
		return fmt.Errorf("guarding regexps: no RegExp string iterator")
	}
	orig, err := native(itProto, "next")
	if err != nil {
		return err
	}
	return vm.replace(itProto, "next", vm.timedMatch(orig))
}

// replaceSymbol is replace for a symbol-keyed method.
func (vm *jsVM) replaceSymbol(obj *goja.Object, sym *goja.Symbol, wrap func(func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value) error {
	old, ok := obj.GetSymbol(sym).(*goja.Object)
	if !ok {
		return fmt.Errorf("guarding: no method for %s", sym)
	}
	orig, ok := old.Export().(func(goja.FunctionCall) goja.Value)
	if !ok {
		return fmt.Errorf("guarding: %s is not a built-in", sym)
	}
	fn := vm.rt.ToValue(wrap(orig)).(*goja.Object)
	_ = fn.DefineDataProperty("name", old.Get("name"), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	_ = fn.DefineDataProperty("length", old.Get("length"), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	return obj.DefineDataPropertySymbol(sym, fn, goja.FLAG_TRUE, goja.FLAG_FALSE, goja.FLAG_TRUE)
}

// timedMatch wraps a matching built-in: a call that ran matchLimit or
// longer may have had a match time out inside regexp2, which goja reports
// as no match, so it cannot be trusted.
func (vm *jsVM) timedMatch(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		start := time.Now()
		v := orig(call)
		if d := time.Since(start); d >= matchLimit {
			panic(vm.limit(catalog.ReasonTimeout, "a regular expression ran for %s, past the %s one match may take", d.Round(time.Millisecond), matchLimit))
		}
		return v
	}
}
