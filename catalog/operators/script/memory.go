package script

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/dop251/goja"

	"github.com/sluicehq/sluice/catalog"
)

// Memory budget of a script runtime.
//
// Go cannot recover from running out of memory, so a script must never be
// able to allocate without bound: one record (or one API call compiling a
// pipeline, which runs the top-level code) would take the whole process
// down with every other pipeline and tenant in it. Two mechanisms share the
// work:
//
//   - guards (this file) replace the built-ins that allocate a lot in one
//     call (typed arrays, repeat, fill, join, JSON, apply, ...) with versions
//     that check the size they are asked for first. goja cannot be
//     interrupted inside a built-in, so these must refuse before the
//     allocation happens;
//   - the watchdog (watchdog.go) catches memory that grows a little per
//     instruction (loops, s += s), which Runtime.Interrupt can stop.
const (
	defaultMemory = 64 << 20
	minMemory     = 1 << 20
	// maxMemory is the most a step may ask for; several runtimes per
	// pipeline and several pipelines per process share one heap.
	maxMemory = 512 << 20
	// valueSize is what one JavaScript value costs at least in a goja array
	// (an interface value); element counts are turned into bytes with it.
	valueSize = 16
	// jsonExpansion is how much larger than its text the values JSON.parse
	// builds can be ("[[],[],...]" turns 3 bytes into an array object).
	jsonExpansion = 32
	// indexCost is what one element of a typed array costs once listed as
	// a property (a key string, a value and a map entry).
	indexCost = 64
)

// limitError is what guards panic with. It is a Go value, not a JavaScript
// exception: goja unwinds such panics past every try/catch (and finally) of
// the script, so a script cannot swallow it and try again, and the runtime
// that raised it is discarded.
type limitError struct {
	reason catalog.Reason // resource or timeout
	what   string         // what went over the limit
	stack  []goja.StackFrame
}

func (e *limitError) Error() string { return e.what }

// errMemory is the value the watchdog interrupts a runtime with.
var errMemory = errors.New("memory budget exceeded")

// memoryError is the detail of a watchdog interrupt: how far the heap grew.
type memoryError struct {
	grown uint64
}

func (e *memoryError) Error() string {
	return fmt.Sprintf("the heap grew by %s while it ran", formatSize(int64(e.grown)))
}

func (e *memoryError) Unwrap() error { return errMemory }

// limit builds the panic value of a guard, with where the script was.
func (vm *jsVM) limit(reason catalog.Reason, format string, args ...any) *limitError {
	return &limitError{reason: reason, what: fmt.Sprintf(format, args...), stack: vm.rt.CaptureCallStack(0, nil)}
}

// need panics with a resource limitError when bytes is over the budget.
func (vm *jsVM) need(bytes float64, format string, args ...any) {
	if bytes > float64(vm.memory) || math.IsNaN(bytes) {
		panic(vm.limit(catalog.ReasonResource, format+" would take %s", append(args, formatSize(int64(math.Min(bytes, math.MaxInt64))))...))
	}
}

// maxElems is how many elements a built-in may walk or create in one call.
func (vm *jsVM) maxElems() int64 { return vm.memory / valueSize }

// installGuards replaces the bulk-allocating built-ins of vm's runtime.
// The originals stay reachable only through the guards: every path to them
// (globals, prototype.constructor, species) is rewritten.
func (vm *jsVM) installGuards() error {
	g := vm.rt.GlobalObject()
	var wrapErr error
	wrap := func(obj *goja.Object, name string, check func(goja.FunctionCall)) {
		if err := vm.wrap(obj, name, check); err != nil && wrapErr == nil {
			wrapErr = err
		}
	}
	var err error

	// Buffers and typed arrays allocate their whole size in the constructor.
	// A proxy keeps everything else of the constructor (statics,
	// prototype, instanceof, subclassing through newTarget) and checks the
	// size in its construct trap. DataView only views a buffer, and goja
	// has neither SharedArrayBuffer nor resizable buffers.
	if err := vm.guardConstructor(g, "ArrayBuffer", 1); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		size int
	}{
		{"Int8Array", 1}, {"Uint8Array", 1}, {"Uint8ClampedArray", 1},
		{"Int16Array", 2}, {"Uint16Array", 2},
		{"Int32Array", 4}, {"Uint32Array", 4}, {"Float32Array", 4},
		{"Float64Array", 8}, {"BigInt64Array", 8}, {"BigUint64Array", 8},
	} {
		if err := vm.guardConstructor(g, c.name, c.size); err != nil {
			return err
		}
	}

	strProto := objectAt(g, "String", "prototype")
	wrap(strProto, "repeat", func(call goja.FunctionCall) {
		n := call.Argument(0).ToFloat()
		if n > 0 {
			vm.need(float64(stringLength(call.This))*n*2, "String.prototype.repeat(%s)", strconv.FormatFloat(n, 'f', -1, 64))
		}
	})
	// split makes one string per piece; replace and replaceAll write the
	// replacement once per match, and an empty pattern matches between
	// every two characters.
	wrap(strProto, "split", func(call goja.FunctionCall) {
		s, ok := primitiveString(call.This)
		if !ok {
			return
		}
		pieces := float64(s.Length()) + 1
		if sep, ok := call.Argument(0).(goja.String); ok && sep.Length() > 0 {
			pieces = float64(s.Length()/sep.Length()) + 1
		}
		if lim := call.Argument(1); !goja.IsUndefined(lim) {
			pieces = math.Min(pieces, lim.ToFloat())
		}
		vm.need(pieces*valueSize*3+float64(s.Length())*2, "String.prototype.split into %s pieces", strconv.FormatFloat(pieces, 'f', -1, 64))
	})
	for _, name := range []string{"replace", "replaceAll"} {
		wrap(strProto, name, func(call goja.FunctionCall) {
			s, ok := primitiveString(call.This)
			if !ok {
				return
			}
			matches := 1.0
			switch search := call.Argument(0).(type) {
			case goja.String:
				if name == "replaceAll" {
					matches = float64(s.Length()/max(search.Length(), 1)) + 1
				}
			case *goja.Object:
				if strings.Contains(search.Get("flags").String(), "g") {
					matches = float64(s.Length()) + 1
				}
			}
			vm.checkReplace(s, matches, call.Argument(1), "String.prototype."+name)
		})
	}
	// concat copies this and every argument into one new string in one
	// call: "".concat(s, s, s, ...) on a large s is gigabytes in one
	// instruction. String.raw does the same with its raw array and
	// substitutions.
	wrap(strProto, "concat", func(call goja.FunctionCall) {
		n := float64(stringLength(call.This))
		for _, a := range call.Arguments {
			n += float64(stringLength(a))
		}
		vm.need(n*2, "String.prototype.concat of %d strings", len(call.Arguments)+1)
	})
	wrap(objectAt(g, "String"), "raw", func(call goja.FunctionCall) {
		var n float64
		if tpl, ok := call.Argument(0).(*goja.Object); ok {
			if raw, ok := tpl.Get("raw").(*goja.Object); ok {
				vm.checkLength(raw, "String.raw")
				for i, l := int64(0), raw.Get("length").ToInteger(); i < l; i++ {
					n += float64(stringLength(raw.Get(strconv.FormatInt(i, 10))))
				}
			}
		}
		for _, a := range call.Arguments[min(1, len(call.Arguments)):] {
			n += float64(stringLength(a))
		}
		vm.need(n*2, "String.raw")
	})
	for _, name := range []string{"padStart", "padEnd"} {
		wrap(strProto, name, func(call goja.FunctionCall) {
			vm.need(call.Argument(0).ToFloat()*2, "String.prototype.%s(%s)", name, call.Argument(0).String())
		})
	}

	// Array built-ins walk this.length in Go, filling holes, building
	// results or just comparing; a sparse array of length 4e9 costs
	// nothing to make and hours (or gigabytes) to walk. Capping the length
	// they accept bounds both the memory and the time of one call.
	arrProto := objectAt(g, "Array", "prototype")
	for _, name := range []string{
		"concat", "copyWithin", "every", "fill", "filter", "find", "findIndex", "findLast",
		"findLastIndex", "flat", "flatMap", "forEach", "includes", "indexOf", "lastIndexOf",
		"map", "reduce", "reduceRight", "reverse", "slice", "some", "sort", "splice",
		"toLocaleString", "toReversed", "toSorted", "toSpliced", "unshift", "with", "shift",
	} {
		wrap(arrProto, name, func(call goja.FunctionCall) {
			vm.checkLength(call.This, "Array.prototype."+name)
			if name == "concat" {
				for _, a := range call.Arguments {
					vm.checkLength(a, "Array.prototype.concat")
				}
			}
		})
	}
	// Spreading ([...a], f(...a)) asks the value for its iterator and then
	// walks it inside one instruction, which no interrupt can stop: check
	// the length where the iterator is made. (goja's fast paths for
	// unmodified array iterators are then skipped; the result is the same.)
	checkIter := func(what string, check func(goja.Value)) func(func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
		return func(orig func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
			return func(call goja.FunctionCall) goja.Value {
				check(call.This)
				return orig(call)
			}
		}
	}
	for _, name := range []string{"keys", "entries"} {
		wrap(arrProto, name, func(call goja.FunctionCall) { vm.checkLength(call.This, "Array.prototype."+name) })
	}
	// values and Symbol.iterator are one function object: wrap it once.
	values := checkIter("Array.prototype.values", func(v goja.Value) { vm.checkLength(v, "spreading an array") })
	if err := vm.replaceSymbol(arrProto, goja.SymIterator, values); err != nil {
		return err
	}
	if err := arrProto.DefineDataProperty("values", arrProto.GetSymbol(goja.SymIterator), goja.FLAG_TRUE, goja.FLAG_FALSE, goja.FLAG_TRUE); err != nil {
		return err
	}
	if err := vm.replaceSymbol(strProto, goja.SymIterator, checkIter("String.prototype[Symbol.iterator]", func(v goja.Value) {
		if s, ok := primitiveString(v); ok {
			vm.need(float64(s.Length())*valueSize*3, "spreading a string of %d characters", s.Length())
		}
	})); err != nil {
		return err
	}
	if err := vm.replace(arrProto, "join", vm.join); err != nil {
		return err
	}
	wrap(objectAt(g, "Array"), "from", func(call goja.FunctionCall) {
		vm.checkLength(call.Argument(0), "Array.from")
	})
	// apply spreads an array-like into an argument list in one call.
	wrap(objectAt(g, "Function", "prototype"), "apply", func(call goja.FunctionCall) {
		vm.checkLength(call.Argument(1), "Function.prototype.apply")
	})
	reflect := objectAt(g, "Reflect")
	wrap(reflect, "apply", func(call goja.FunctionCall) {
		vm.checkLength(call.Argument(2), "Reflect.apply")
	})
	wrap(reflect, "construct", func(call goja.FunctionCall) {
		vm.checkLength(call.Argument(1), "Reflect.construct")
	})
	// Object.keys and friends make one string per index of a typed array or
	// a string, 16 to 64 times the memory of the thing itself.
	object := objectAt(g, "Object")
	for _, name := range []string{"keys", "values", "entries", "getOwnPropertyNames", "getOwnPropertyDescriptors"} {
		wrap(object, name, func(call goja.FunctionCall) {
			vm.checkIndexed(call.Argument(0), "Object."+name)
		})
	}
	wrap(object, "assign", func(call goja.FunctionCall) {
		for _, src := range call.Arguments[min(1, len(call.Arguments)):] {
			vm.checkIndexed(src, "Object.assign")
		}
	})
	wrap(reflect, "ownKeys", func(call goja.FunctionCall) {
		vm.checkIndexed(call.Argument(0), "Reflect.ownKeys")
	})

	// %TypedArray%.prototype.join (and toString, which calls it) writes
	// up to 24 characters per element.
	typedProto := objectAt(g, "Uint8Array", "prototype").Prototype()
	wrap(typedProto, "join", func(call goja.FunctionCall) {
		obj, ok := call.This.(*goja.Object)
		if !ok {
			return
		}
		sep := 1.0
		if s, ok := call.Argument(0).(goja.String); ok {
			sep = float64(s.Length())
		}
		vm.needString(obj.Get("length").ToFloat()*(24+sep), "%TypedArray%.prototype.join")
	})

	json := objectAt(g, "JSON")
	wrap(json, "parse", func(call goja.FunctionCall) {
		if s, ok := call.Argument(0).(goja.String); ok {
			vm.need(float64(s.Length())*jsonExpansion, "JSON.parse of %d characters", s.Length())
		}
	})
	if vm.stringifyOrig, err = native(json, "stringify"); err != nil {
		return err
	}
	if err := vm.replace(json, "stringify", vm.stringify); err != nil {
		return err
	}
	if err := vm.guardRegexps(); err != nil {
		return err
	}
	return wrapErr
}

// objectAt follows property names from o; the built-ins it is used on
// always exist.
func objectAt(o *goja.Object, names ...string) *goja.Object {
	for _, n := range names {
		o = o.Get(n).(*goja.Object)
	}
	return o
}

// native returns the Go function behind a built-in method.
func native(obj *goja.Object, name string) (func(goja.FunctionCall) goja.Value, error) {
	v, _ := obj.Get(name).(*goja.Object)
	if v != nil {
		if f, ok := v.Export().(func(goja.FunctionCall) goja.Value); ok {
			return f, nil
		}
	}
	return nil, fmt.Errorf("guarding %s: not a built-in function", name)
}

// replace puts f in place of obj[name], keeping the built-in's name,
// length and attributes (writable, configurable, not enumerable) so that
// scripts see no difference.
func (vm *jsVM) replace(obj *goja.Object, name string, f func(goja.FunctionCall) goja.Value) error {
	old, ok := obj.Get(name).(*goja.Object)
	if !ok {
		return fmt.Errorf("guarding %s: not found", name)
	}
	fn := vm.rt.ToValue(f).(*goja.Object)
	_ = fn.DefineDataProperty("name", old.Get("name"), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	_ = fn.DefineDataProperty("length", old.Get("length"), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	return obj.DefineDataProperty(name, fn, goja.FLAG_TRUE, goja.FLAG_FALSE, goja.FLAG_TRUE)
}

// wrap runs check before the built-in obj[name]; check panics to refuse.
// The built-in is called directly (not through goja.Callable), so its
// exceptions stay catchable exactly as before.
func (vm *jsVM) wrap(obj *goja.Object, name string, check func(goja.FunctionCall)) error {
	orig, err := native(obj, name)
	if err != nil {
		return err
	}
	return vm.replace(obj, name, func(call goja.FunctionCall) goja.Value {
		check(call)
		return orig(call)
	})
}

// guardConstructor replaces the constructor global[name] by a proxy that
// checks the bytes it would allocate.
func (vm *jsVM) guardConstructor(global *goja.Object, name string, elemSize int) error {
	target, ok := global.Get(name).(*goja.Object)
	if !ok {
		return fmt.Errorf("guarding %s: not found", name)
	}
	construct, ok := goja.AssertConstructor(target)
	if !ok {
		return fmt.Errorf("guarding %s: not a constructor", name)
	}
	proxy := vm.rt.ToValue(vm.rt.NewProxy(target, &goja.ProxyTrapConfig{
		Construct: func(_ *goja.Object, args []goja.Value, newTarget *goja.Object) *goja.Object {
			if len(args) > 0 {
				// Every element of a buffer (viewed as bytes) or typed
				// array can become a property in one instruction that
				// nothing interrupts (object spread {...t}), so elements
				// are counted at what a property costs, besides the bytes.
				n := vm.elements(args[0])
				vm.need(math.Max(n*float64(elemSize), n*indexCost), "new %s(%s)", name, argText(args[0]))
			}
			obj, err := construct(newTarget, args...)
			if err != nil {
				panic(err) // a JavaScript exception, catchable as before
			}
			return obj
		},
	})).(*goja.Object)
	// goja's instanceof does not see through a proxy of a constructor
	// (OrdinaryHasInstance wants a function object): give the target a
	// Symbol.hasInstance that walks the prototype chain, as the spec's
	// does. It reads this.prototype, so subclasses (whose statics inherit
	// from the proxy) get the right answer too.
	hasInstance := vm.rt.ToValue(func(call goja.FunctionCall) goja.Value {
		ctor, _ := call.This.(*goja.Object)
		o, _ := call.Argument(0).(*goja.Object)
		if ctor == nil || o == nil {
			return vm.rt.ToValue(false)
		}
		proto, _ := ctor.Get("prototype").(*goja.Object)
		for o = o.Prototype(); o != nil && proto != nil; o = o.Prototype() {
			if o == proto {
				return vm.rt.ToValue(true)
			}
		}
		return vm.rt.ToValue(false)
	})
	if err := target.DefineDataPropertySymbol(goja.SymHasInstance, hasInstance, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
		return err
	}
	proto := target.Get("prototype").(*goja.Object)
	if err := proto.DefineDataProperty("constructor", proxy, goja.FLAG_TRUE, goja.FLAG_FALSE, goja.FLAG_TRUE); err != nil {
		return err
	}
	return global.DefineDataProperty(name, proxy, goja.FLAG_TRUE, goja.FLAG_FALSE, goja.FLAG_TRUE)
}

// elements is how many elements a typed array or buffer constructor makes
// from its first argument: a length, or the length of an array-like (an
// existing buffer is only viewed).
func (vm *jsVM) elements(v goja.Value) float64 {
	obj, ok := v.(*goja.Object)
	if !ok {
		if goja.IsUndefined(v) || goja.IsNull(v) {
			return 0
		}
		if _, sym := v.(*goja.Symbol); sym {
			return 0 // the constructor throws its own TypeError
		}
		return v.ToFloat()
	}
	if _, ok := obj.Export().(goja.ArrayBuffer); ok {
		return 0
	}
	return obj.Get("length").ToFloat()
}

func argText(v goja.Value) string {
	if obj, ok := v.(*goja.Object); ok {
		return "an object of length " + obj.Get("length").String()
	}
	return clip(v.String())
}

// checkLength refuses an array-like whose length is more than a call may
// walk.
func (vm *jsVM) checkLength(v goja.Value, what string) {
	obj, ok := v.(*goja.Object)
	if !ok {
		return
	}
	if n := obj.Get("length").ToFloat(); n > float64(vm.maxElems()) {
		panic(vm.limit(catalog.ReasonResource, "%s on %s elements would take %s",
			what, strconv.FormatFloat(n, 'f', -1, 64), formatSize(int64(math.Min(n*valueSize, math.MaxInt64)))))
	}
}

// checkIndexed refuses to list the indexes of a large typed array or
// string, one string per element.
func (vm *jsVM) checkIndexed(v goja.Value, what string) {
	n := 0.0
	switch t := v.(type) {
	case goja.String:
		n = float64(t.Length())
	case *goja.Object:
		// Typed arrays carry BYTES_PER_ELEMENT on their prototypes.
		if t.ClassName() == "String" || t.Get("BYTES_PER_ELEMENT") != nil && !goja.IsUndefined(t.Get("BYTES_PER_ELEMENT")) {
			n = t.Get("length").ToFloat()
		}
	}
	// Each index becomes a string and a value: about four values.
	vm.need(n*valueSize*4, "%s on %s indexes", what, strconv.FormatFloat(n, 'f', -1, 64))
}

// primitiveString is v as a string when converting it runs no script code.
func primitiveString(v goja.Value) (goja.String, bool) {
	switch t := v.(type) {
	case goja.String:
		return t, true
	case *goja.Object:
		if t.ClassName() == "String" {
			s, ok := t.ToString().(goja.String)
			return s, ok
		}
	}
	return nil, false
}

// checkReplace bounds the result of replacing up to matches matches in s
// with repl: each "$" pattern in a replacement string ($&, $1, ...)
// expands to text of s, and the matches of one call do not overlap. A
// replacement function runs script code, which the watchdog can stop.
func (vm *jsVM) checkReplace(s goja.String, matches float64, repl goja.Value, what string) {
	r, ok := repl.(goja.String)
	if !ok {
		return
	}
	dollars := float64(strings.Count(r.String(), "$"))
	units := float64(s.Length()) + matches*float64(r.Length()) + dollars*float64(s.Length())
	vm.needString(units, what)
}

// stopIfInterrupted ends a long built-in loop of a guard once the call
// has been interrupted (time or memory): goja only checks its interrupt
// flag between instructions.
func (vm *jsVM) stopIfInterrupted() {
	if vm.why.Load() != nil {
		panic(vm.limit(catalog.ReasonTimeout, "interrupted"))
	}
}

func stringLength(v goja.Value) int {
	if s, ok := v.(goja.String); ok {
		return s.Length()
	}
	if obj, ok := v.(*goja.Object); ok && obj.ClassName() == "String" {
		return int(obj.Get("length").ToInteger())
	}
	return len(v.String())
}

// join is Array.prototype.join, written out so that it can count the size
// of its result before writing each piece: the pieces may be one shared
// string, so only the result is large.
func (vm *jsVM) join(call goja.FunctionCall) goja.Value {
	o := call.This.ToObject(vm.rt)
	// A cycle (a = [a]) joins as "", as in goja and V8.
	for _, seen := range vm.joining {
		if seen == o {
			return vm.rt.ToValue("")
		}
	}
	vm.joining = append(vm.joining, o)
	defer func() { vm.joining = vm.joining[:len(vm.joining)-1] }()

	vm.checkLength(o, "Array.prototype.join")
	n := int(o.Get("length").ToInteger())
	sep := goja.String(asciiComma)
	if s := call.Argument(0); !goja.IsUndefined(s) {
		sep = vm.toString(s)
	}
	var (
		buf   goja.StringBuilder
		units float64
	)
	for i := 0; i < n; i++ {
		if i&1023 == 1023 {
			vm.stopIfInterrupted()
		}
		if i > 0 {
			units += float64(sep.Length())
			vm.needString(units, "Array.prototype.join")
			buf.WriteString(sep)
		}
		e := o.Get(strconv.Itoa(i))
		if e == nil || goja.IsUndefined(e) || goja.IsNull(e) {
			continue
		}
		s := vm.toString(e)
		units += float64(s.Length())
		vm.needString(units, "Array.prototype.join")
		buf.WriteString(s)
	}
	return buf.String()
}

var asciiComma = goja.StringFromUTF16([]uint16{','})

// toString is ToString as a goja.String; goja's Value.ToString leaves
// numbers and booleans as they are.
func (vm *jsVM) toString(v goja.Value) goja.String {
	s := v.ToString()
	if gs, ok := s.(goja.String); ok {
		return gs
	}
	return vm.rt.ToValue(s.String()).(goja.String)
}

// needString checks a string of units UTF-16 code units (counted as two
// bytes each: goja keeps non-ASCII strings in UTF-16).
func (vm *jsVM) needString(units float64, what string) {
	vm.need(units*2, "%s to %s characters", what, strconv.FormatFloat(units, 'f', -1, 64))
}

// stringify is JSON.stringify with a replacer function that counts the
// size of the text as the built-in produces it, and stops it past the
// budget: shared objects ({a: o, b: o} nested 30 times) make a small value
// print as gigabytes.
//
// A replacer function of the script's own is called first, so the counted
// values are the printed ones. A property-list replacer (an array) cannot
// be combined with a function; the value is then measured first by a
// stringify that keeps only the structure, which calls getters and toJSON
// twice.
func (vm *jsVM) stringify(call goja.FunctionCall) goja.Value {
	value, replacer, space := call.Argument(0), call.Argument(1), call.Argument(2)
	indent := 0.0
	switch s := space.(type) {
	case goja.String:
		indent = math.Min(float64(s.Length()), 10)
	default:
		if !goja.IsUndefined(space) && !goja.IsNull(space) {
			if _, ok := space.(*goja.Object); !ok {
				indent = math.Max(0, math.Min(space.ToFloat(), 10))
			}
		}
	}
	var user goja.Callable
	if obj, ok := replacer.(*goja.Object); ok {
		if fn, ok := goja.AssertFunction(obj); ok {
			user = fn
		} else if obj.ClassName() == "Array" {
			// Measure the whole structure without the property list,
			// then print with it: the list only removes properties.
			vm.stringifyCounting(value, nil, nil, indent, true)
			return vm.stringifyOrig(call)
		}
	}
	return vm.stringifyCounting(value, user, space, indent, false)
}

// stringifyCounting runs the built-in JSON.stringify with a counting
// replacer around user. With dry set, it returns undefined for primitives
// so that the built-in prints only the skeleton.
func (vm *jsVM) stringifyCounting(value goja.Value, user goja.Callable, space goja.Value, indent float64, dry bool) goja.Value {
	var units float64
	// Each property or element costs its key, its value and, with an
	// indent, a new line; nesting deepens the indent, which is counted as
	// the full 10 characters per level it could be, at most, on average.
	perItem := 4 + indent*2
	count := vm.rt.ToValue(func(c goja.FunctionCall) goja.Value {
		key, v := c.Argument(0), c.Argument(1)
		if user != nil {
			var err error
			if v, err = user(c.This, key, v); err != nil {
				panic(err)
			}
		}
		if units += perItem + float64(stringLength(key)); int(units)&1023 < int(perItem)+1 {
			vm.stopIfInterrupted()
		}
		switch t := v.(type) {
		case goja.String:
			units += float64(t.Length())
		case *goja.Object:
			if t.ClassName() == "String" {
				units += float64(stringLength(t))
			}
		default:
			units += 24 // numbers, booleans, null
		}
		vm.needString(units, "JSON.stringify")
		if dry {
			if _, isObj := v.(*goja.Object); !isObj {
				return goja.Undefined()
			}
		}
		return v
	})
	if dry {
		vm.stringifyOrig(goja.FunctionCall{Arguments: []goja.Value{value, count}})
		return goja.Undefined()
	}
	return vm.stringifyOrig(goja.FunctionCall{Arguments: []goja.Value{value, count, space}})
}

// formatSize prints a byte count in the unit memory is configured in.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10) + "B"
}

// parseSize reads a size such as 64MiB, 512KiB or 1GiB (or MB, KB, GB in
// powers of ten, or plain bytes).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), 1.0
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	return int64(f * mult), nil
}
