// Package script provides the script operator: custom per-record logic in
// JavaScript (run by github.com/dop251/goja) with a per-record time budget,
// so that a runaway script sends its record to the DLQ instead of stalling
// the pipeline.
package script

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/record"
)

// Register adds the script operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:        "script",
		Summary:     "Runs a JavaScript function on each record, with a time budget per record.",
		Description: description,
		Config:      schema,
		Examples:    examples,
		New:         New,
	})
}

const description = "`script` runs custom logic written in JavaScript (ES5.1 with most of ES6, no I/O, no " +
	"modules) for what expressions cannot say. Give the code inline in `source` or as a side file " +
	"of the repository in `file`, not both.\n\n" +
	"The code must define `function process(record)`. `record` is a fresh object per call: " +
	"`{key, value, timestamp, headers}`, where `timestamp` is milliseconds since the epoch (null " +
	"when the record has none) and `headers` maps each header name to its last value as a string. " +
	"What `process` returns decides what is emitted:\n\n" +
	"- a value (object, string, number, ...): one record with that value and the input's key, " +
	"timestamp and headers;\n" +
	"- an array: one record per element, in order, skipping null and undefined elements (to emit a " +
	"single array value, return it wrapped: `[[1, 2]]`);\n" +
	"- `null` or `undefined` (or an empty array): nothing; the record is dropped.\n\n" +
	"Results are JSON values: `undefined` properties are left out, dates become ISO 8601 strings, " +
	"and functions, symbols, BigInts and non-finite numbers are errors.\n\n" +
	"Each call has `timeout` (a Go duration, default `10ms`, at most `2s`) to finish. Top-level " +
	"code runs once per JavaScript runtime (runtimes are pooled and reused, several per pipeline), " +
	"so it can build lookup tables, but global state is not shared between records reliably: do " +
	"not count with it.\n\n" +
	"Bad records go to the DLQ: a record whose call runs past its budget twice (the budget is " +
	"wall-clock time, which a busy machine can eat, so one retry is allowed) gets reason " +
	"`timeout`, and the next record is processed normally; an error thrown by the script, a call stack deeper than 10000 " +
	"frames or a result that is not JSON gets reason `script`, with the message and the position " +
	"of the throw; a result with more than a million values gets reason `oversize`.\n\n" +
	"Each runtime has `memory` (a size such as `64MiB`, the default, at most `512MiB`). Built-ins that " +
	"allocate a lot at once (`new ArrayBuffer(n)`, typed arrays, `repeat`, `padStart`, `join`, " +
	"`fill`, `JSON.stringify`, `JSON.parse`, `apply`, spreading, ...) refuse sizes past it before " +
	"allocating: array built-ins and spreading take arrays of up to the budget divided by 16 elements, " +
	"typed arrays and buffers hold up to the budget divided by 64 elements, and `JSON.parse` takes texts " +
	"of up to the budget divided by 32 characters. A call during which the process heap grows by more than the " +
	"budget is stopped when the process heap is also above 256MiB (or half of GOMEMLIMIT). Such a " +
	"record goes to the DLQ with reason `resource` and the runtime is discarded; in top-level code " +
	"it is an error when the pipeline is built. The control plane, and runners unless started with " +
	"`--isolate-scripts=false`, also run each runtime in a child process with a hard memory limit, " +
	"so that memory a script grows in small steps ends that process, never the runner or its other " +
	"pipelines; the record gets reason `resource` all the same. Top-level code has 1s. One regular-expression call " +
	"(`exec`, `test`, `match`, `replace`, `split`, `search`, including replace callbacks) may run at " +
	"most 50ms, whatever the timeout: backtracking patterns can run for hours, and a record whose " +
	"call does gets reason `timeout`.\n\n" +
	"Syntax errors are reported when the pipeline is built, at their line and column in the " +
	"pipeline file (for `source: |` blocks) or in the script file."

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "oneOf": [{"required": ["source"]}, {"required": ["file"]}],
  "properties": {
    "source": {
      "description": "JavaScript code that defines function process(record). Use a literal block (source: |) so errors point at the right line.",
      "type": "string",
      "minLength": 1
    },
    "file": {
      "description": "Path of a .js side file in the repository, relative to the pipeline file, that defines function process(record). Alternative to source.",
      "type": "string",
      "minLength": 1
    },
    "timeout": {
      "description": "Time budget of each call to process, as a Go duration (10ms, 250us, 1s); at most 2s, so that a runaway script (retried once) is caught well before the runner's stuck timeout. A record whose call runs longer goes to the DLQ with reason timeout.",
      "type": "string",
      "default": "10ms"
    },
    "memory": {
      "description": "Memory budget of each JavaScript runtime, as a size (64MiB, 512KiB, 1GiB); from 1MiB to 512MiB. A record whose call allocates past it goes to the DLQ with reason resource; top-level code past it is a build error.",
      "type": ["string", "integer"],
      "default": "64MiB"
    }
  }
}`

var examples = []catalog.Example{
	{
		Title:   "Enrich a record",
		Summary: "Return the new value; records the script returns nothing for are dropped.",
		Step: `source: |
  function process(record) {
    var v = record.value;
    if (v.speed < 0) return null;
    v.band = v.speed > 100 ? "fast" : "normal";
    v.tags = v.tags.map(function (t) { return t.toUpperCase(); });
    return v;
  }`,
		Input: []any{
			map[string]any{"speed": 120, "tags": []any{"a", "b"}},
			map[string]any{"speed": -1, "tags": []any{}},
		},
		Output: []any{map[string]any{"speed": 120, "band": "fast", "tags": []any{"A", "B"}}},
	},
	{
		Title:   "Split an order into lines",
		Summary: "Returning an array emits one record per element.",
		Step: `source: |
  function process(record) {
    return record.value.lines.map(function (l) {
      return {order: record.value.id, sku: l.sku, total: l.qty * l.price};
    });
  }`,
		Input: []any{map[string]any{"id": "o1", "lines": []any{
			map[string]any{"sku": "x", "qty": 2, "price": 1.5},
			map[string]any{"sku": "y", "qty": 1, "price": 4},
		}}},
		Output: []any{
			map[string]any{"order": "o1", "sku": "x", "total": 3},
			map[string]any{"order": "o1", "sku": "y", "total": 4},
		},
	},
	{
		Title:   "Reject bad records",
		Summary: "A thrown error sends the record to the DLQ with reason script; a call past its budget with reason timeout.",
		Step: `timeout: 5ms
source: |
  function process(record) {
    var v = record.value;
    if (typeof v.celsius !== "number") throw new Error("celsius is not a number");
    while (v.celsius > 1000) {}  // stands for a bug that never ends
    return {fahrenheit: v.celsius * 9 / 5 + 32};
  }`,
		Input:  []any{map[string]any{"celsius": 20}, map[string]any{"celsius": "hot"}, map[string]any{"celsius": 5000}, map[string]any{"celsius": -40}},
		Output: []any{map[string]any{"fahrenheit": 68}, map[string]any{"fahrenheit": -40}},
		DLQ:    []catalog.Reason{catalog.ReasonScript, catalog.ReasonTimeout},
	},
}

const (
	defaultTimeout = 10 * time.Millisecond
	maxTimeout     = 2 * time.Second
	// initTimeout bounds a runtime's top-level code, which runs once per
	// runtime and may build tables.
	initTimeout = time.Second
	// maxCallStack bounds recursion, which would otherwise grow until the
	// time budget runs out.
	maxCallStack = 10000
	// maxValues bounds the size of a result, which is converted outside the
	// JavaScript interpreter (a shared object can make a small result expand
	// exponentially). Every value takes at least a few bytes of JSON, so a
	// result with more cannot fit the engine's 1 MiB output limit anyway.
	maxValues = 1 << 18
	// attempts is how often a call that runs past its budget is tried.
	attempts = 2
	// maxMessage bounds error messages, which end up in DLQ headers.
	maxMessage = 500
)

// errTimeout and errInit are the values runtimes are interrupted with.
var (
	errTimeout = errors.New("time budget exceeded")
	errInit    = errors.New("top-level code ran past its budget")
)

// initTimeoutError is top-level code stopped by initTimeout, with where it
// was.
type initTimeoutError struct {
	stack []goja.StackFrame
}

func (e *initTimeoutError) Error() string { return fmt.Sprintf("%v (%s)", errInit, initTimeout) }
func (e *initTimeoutError) Unwrap() error { return errInit }

type operator struct {
	prog    *goja.Program
	name    string // the script's name in stack traces
	timeout time.Duration
	memory  int64 // bytes per runtime
	pos     positioner
	vms     sync.Pool // of *jsVM
	// iso is set when the script runs in child processes (isolate.go);
	// prog and vms are then unused.
	iso *isolated
}

// New builds a script operator from its config that runs the script in
// this process.
func New(b *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	op, src, err := parse(b, conf)
	if err != nil {
		return nil, err
	}
	// Start one runtime now: top-level code that throws, loops or does not
	// define process is a configuration error.
	vm, f := op.load(src)
	if f != nil {
		return nil, op.compileError(f)
	}
	op.vms.Put(vm)
	return op, nil
}

// parse reads a step's config into an operator without its program, and
// returns the script's source.
func parse(b *catalog.Build, conf catalog.Config) (*operator, string, error) {
	if !conf.IsMap() {
		return nil, "", conf.Errorf("script needs a mapping such as {source: ...} or {file: ...}, got a %s", conf.KindName())
	}
	if b == nil {
		b = &catalog.Build{}
	}
	op := &operator{timeout: defaultTimeout, memory: defaultMemory}
	var (
		src       string
		srcConf   catalog.Config
		srcField  *catalog.Field
		fileField *catalog.Field
		found     int
	)
	given := map[string]bool{}
	for _, f := range conf.Fields() {
		v := f.Value
		if given[f.Name] {
			return nil, "", diag.Errorf(f.NamePos, "%s is given twice", f.Name)
		}
		given[f.Name] = true
		switch f.Name {
		case "source":
			fc := f
			srcField, srcConf = &fc, v
			found++
		case "file":
			fc := f
			fileField = &fc
			found++
		case "timeout":
			d, err := time.ParseDuration(v.String())
			switch {
			case !v.IsScalar() || err != nil:
				return nil, "", v.Errorf("timeout must be a duration such as 10ms or 1s, got %q", v.String())
			case d <= 0:
				return nil, "", v.Errorf("timeout must be positive, got %s", v.String())
			case d > maxTimeout:
				return nil, "", v.Errorf("timeout %s is too long: at most %s per record", v.String(), maxTimeout)
			}
			op.timeout = d
		case "memory":
			n, err := parseSize(v.String())
			switch {
			case !v.IsScalar() || err != nil:
				return nil, "", v.Errorf("memory must be a size such as 64MiB or 512KiB, got %q", v.String())
			case n < minMemory:
				return nil, "", v.Errorf("memory %s is too small: at least %s", v.String(), formatSize(minMemory))
			case n > maxMemory:
				return nil, "", v.Errorf("memory %s is too large: at most %s per runtime", v.String(), formatSize(maxMemory))
			}
			op.memory = n
		default:
			return nil, "", diag.Errorf(f.NamePos, "unknown option %q: script takes source, file, timeout and memory", f.Name)
		}
	}
	switch {
	case found == 0:
		return nil, "", conf.Errorf("script needs source (JavaScript code) or file (a .js side file)")
	case found > 1:
		second := srcField
		if fileField.NamePos.Line > srcField.NamePos.Line ||
			fileField.NamePos.Line == srcField.NamePos.Line && fileField.NamePos.Column > srcField.NamePos.Column {
			second = fileField
		}
		return nil, "", diag.Errorf(second.NamePos, "script takes source or file, not both")
	case srcField != nil:
		if !srcConf.IsScalar() || srcConf.String() == "" {
			return nil, "", srcConf.Errorf("source must be JavaScript code, as a string")
		}
		src = srcConf.String()
		op.name = "source"
		op.pos = positioner{at: srcConf}
	default:
		fc := fileField.Value
		if !fc.IsScalar() || fc.String() == "" {
			return nil, "", fc.Errorf("file must be the path of a .js side file")
		}
		data, err := b.ReadFile(fc)
		if err != nil {
			return nil, "", err
		}
		src = string(data)
		// Side files are rooted where the pipeline files are, so the
		// script's path for users is relative to the pipeline file's
		// directory.
		op.name = path.Join(path.Dir(fc.Pos().File), fc.String())
		op.pos = positioner{at: fc, file: op.name}
	}

	return op, src, nil
}

// load compiles src and starts a runtime, which runs the top-level code.
func (o *operator) load(src string) (*jsVM, *failure) {
	prog, err := compile(o.name, src)
	if err != nil {
		var pe *parser.Error
		if errors.As(err, &pe) {
			return nil, &failure{Text: "JavaScript syntax error: " + pe.Message, Line: pe.Position.Line, Col: pe.Position.Column}
		}
		return nil, &failure{Text: "JavaScript error: " + err.Error()}
	}
	o.prog = prog
	vm, err := o.newVM()
	if err != nil {
		return nil, o.initFailure(err)
	}
	return vm, nil
}

// initFailure describes why top-level code failed.
func (o *operator) initFailure(err error) *failure {
	var (
		ex  *goja.Exception
		lim *limitError
		ite *initTimeoutError
	)
	switch {
	case errors.As(err, &lim):
		line, col := o.framePos(lim.stack)
		if lim.reason == catalog.ReasonResource {
			return &failure{Reason: lim.reason, Text: fmt.Sprintf("the script's top-level code went past its memory budget of %s: %s", formatSize(o.memory), clip(lim.what)), Line: line, Col: col}
		}
		return &failure{Reason: lim.reason, Text: "the script's top-level code ran too long: " + clip(lim.what), Line: line, Col: col}
	case errors.As(err, &ite):
		line, col := o.framePos(ite.stack)
		return &failure{Reason: catalog.ReasonTimeout, Text: err.Error(), Line: line, Col: col}
	case errors.As(err, &ex):
		line, col := o.throwPos(ex)
		return &failure{Reason: catalog.ReasonScript, Text: "the script's top-level code threw: " + clip(exceptionText(ex)), Line: line, Col: col}
	}
	return &failure{Reason: catalog.ReasonScript, Text: err.Error()}
}

// compile parses and compiles src without ever touching the host's files:
// goja would otherwise follow a sourceMappingURL comment to any path.
func compile(name, src string) (prog *goja.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			prog, err = nil, fmt.Errorf("cannot compile: %v", r)
		}
	}()
	ast, err := parser.ParseFile(nil, name, src, 0, parser.WithDisableSourceMaps)
	if err != nil {
		var list parser.ErrorList
		if errors.As(err, &list) && len(list) > 0 {
			return nil, list[0]
		}
		return nil, err
	}
	prog, err = goja.CompileAST(ast, false)
	if err != nil {
		var se *goja.CompilerSyntaxError
		if errors.As(err, &se) && se.File != nil {
			p := se.File.Position(se.Offset)
			return nil, &parser.Error{Position: p, Message: se.Message}
		}
		return nil, err
	}
	return prog, nil
}

// positioner maps positions inside the script to positions users can open.
type positioner struct {
	at   catalog.Config // the source or file node
	file string         // set for side files
}

func (p positioner) errorf(line, col int, format string, args ...any) error {
	return diag.Errorf(p.pos(line, col), format, args...)
}

// pos maps a 1-based line and column inside the script to a file position;
// line 0 means unknown, which gives the position of the config node.
func (p positioner) pos(line, col int) diag.Pos {
	if line <= 0 {
		return p.at.Pos()
	}
	if p.file != "" {
		return diag.Pos{File: p.file, Line: line, Column: col}
	}
	return p.at.PosAt(line, col)
}

// where renders a script position for messages: nothing for line 0, the
// config node's position for a negative line.
func (p positioner) where(line, col int) string {
	if line == 0 {
		return ""
	}
	return " at " + p.pos(line, col).String()
}

// failure is why a script failed, before it is placed for users. The
// in-process engine and a script host (isolate.go) both produce it and
// one place turns it into an error, so both modes say the same thing.
type failure struct {
	Reason catalog.Reason // the DLQ reason
	Text   string
	// Line and Col are a position in the script; line 0 is none, and a
	// negative line stands for the script config's own position.
	Line, Col int
}

// compileError is f as a positioned build error.
func (o *operator) compileError(f *failure) error {
	return o.pos.errorf(f.Line, f.Col, "%s", f.Text)
}

// recordError is f as an error that sends the record to the DLQ.
func (o *operator) recordError(f *failure) error {
	return catalog.Rejectf(f.Reason, "%s%s", f.Text, o.pos.where(f.Line, f.Col))
}

// failureOf is a record error of the result conversion as a failure.
func failureOf(err error) *failure {
	var re *catalog.RecordError
	if errors.As(err, &re) {
		return &failure{Reason: re.Reason, Text: re.Err.Error()}
	}
	return &failure{Reason: catalog.ReasonOf(err), Text: err.Error()}
}

// jsVM is one JavaScript runtime with the program loaded. It is used by one
// goroutine at a time.
type jsVM struct {
	rt      *goja.Runtime
	process goja.Callable
	memory  int64 // budget in bytes
	watch   watch // its registration with the heap watchdog, reused by every call
	timer   *time.Timer
	// wg counts the armed interrupters (timer, context) that have not been
	// disarmed, so that a late one cannot hit the next call.
	wg   sync.WaitGroup
	why  atomic.Pointer[error] // what interrupted the call, if anything
	keys []string              // scratch for sorting object keys

	joining       []*goja.Object // arrays being joined, to cut cycles
	stringifyOrig func(goja.FunctionCall) goja.Value
}

func (o *operator) newVM() (*jsVM, error) {
	vm := &jsVM{rt: goja.New(), memory: o.memory}
	vm.rt.SetMaxCallStackSize(maxCallStack)
	// eval and new Function parse code at run time; without this a
	// sourceMappingURL comment makes goja read any file of the host.
	vm.rt.SetParserOptions(parser.WithDisableSourceMaps)
	if err := vm.installGuardsSafely(); err != nil {
		return nil, fmt.Errorf("JavaScript engine failure: %w", err)
	}
	vm.timer = time.AfterFunc(time.Hour, func() { vm.interrupt(errTimeout) })
	vm.timer.Stop()

	vm.wg.Add(1)
	initTimer := time.AfterFunc(initTimeout, func() { vm.interrupt(errInit) })
	heapWatch.watch(vm)
	_, err := runSafely(func() (goja.Value, error) { return vm.rt.RunProgram(o.prog) })
	heapWatch.stop(vm)
	if initTimer.Stop() {
		vm.wg.Done()
	}
	vm.wg.Wait()
	if p := vm.why.Load(); p != nil {
		// Where the code was when it was stopped: a guard's own stack if
		// one saw the interrupt, else the interrupt's.
		stack := interruptStack(err)
		var lim *limitError
		if errors.As(err, &lim) {
			stack = lim.stack
		}
		var me *memoryError
		if errors.As(*p, &me) {
			return nil, &limitError{reason: catalog.ReasonResource, what: me.Error(), stack: stack}
		}
		return nil, &initTimeoutError{stack: stack}
	}
	if err != nil {
		return nil, err
	}
	vm.rt.ClearInterrupt()
	var fn goja.Callable
	if x := vm.rt.Try(func() { fn, _ = goja.AssertFunction(vm.rt.Get("process")) }); x != nil || fn == nil {
		return nil, errors.New("the script must define function process(record)")
	}
	vm.process = fn
	return vm, nil
}

// installGuardsSafely is installGuards, with goja's panics (its API panics
// on misuse) as errors.
func (vm *jsVM) installGuardsSafely() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return vm.installGuards()
}

// interrupt stops the running call with cause; it runs on a timer's or a
// context's goroutine and is counted in wg.
func (vm *jsVM) interrupt(cause error) {
	defer vm.wg.Done()
	vm.interruptNow(cause)
}

// interruptNow stops the running call with cause; the first cause is the
// one reported. The watchdog calls it directly, synchronised by its lock.
func (vm *jsVM) interruptNow(cause error) {
	vm.why.CompareAndSwap(nil, &cause)
	vm.rt.Interrupt(cause)
}

// interruptStack is where an interrupted call was.
func interruptStack(err error) []goja.StackFrame {
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		return ie.Stack()
	}
	return nil
}

// runSafely turns a panic inside goja into an error; a guard's limitError
// is returned as it is.
func runSafely(f func() (goja.Value, error)) (v goja.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if lim, ok := r.(*limitError); ok {
				v, err = nil, lim
				return
			}
			v, err = nil, fmt.Errorf("JavaScript engine failure: %v", r)
		}
	}()
	return f()
}

// Process runs the script's process function on r.
func (o *operator) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var (
		vals []any
		f    *failure
		err  error
	)
	if o.iso != nil {
		vals, f, err = o.iso.call(ctx, r)
	} else {
		vals, f, err = o.evaluate(ctx, r)
	}
	switch {
	case err != nil:
		return err
	case f != nil:
		return o.recordError(f)
	}
	for i, v := range vals {
		rec := r
		if i < len(vals)-1 {
			c := *r
			if r.Headers != nil {
				c.Headers = append([]record.Header(nil), r.Headers...)
			}
			rec = &c
		}
		rec.Value = v
		if err := out.Next(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// evaluate runs the script on r in this process, retrying a call that ran
// out of time once. It returns the results, or why the record fails; err
// is only ctx's end.
func (o *operator) evaluate(ctx context.Context, r *record.Record) ([]any, *failure, error) {
	for attempt := 1; ; attempt++ {
		vm, _ := o.vms.Get().(*jsVM)
		if vm == nil {
			var err error
			if vm, err = o.newVM(); err != nil {
				// Top-level code ran at build time within its limits; if
				// it does not now, the machine is starved (time) or the
				// code depends on the record's timing: the record pays.
				reason := catalog.ReasonScript
				var lim *limitError
				switch {
				case errors.As(err, &lim):
					reason = lim.reason
				case errors.Is(err, errInit):
					reason = catalog.ReasonTimeout
				}
				return nil, &failure{Reason: reason, Text: "starting the script: " + clip(err.Error())}, nil
			}
		}
		vals, reuse, f, err := o.call(ctx, vm, r)
		if reuse {
			o.vms.Put(vm)
		}
		if err != nil || f == nil {
			return vals, nil, err
		}
		// The budget is wall-clock time, which a busy machine can eat
		// (scheduling, GC); give a call that ran out one more chance, on
		// another runtime, before blaming the script. Scripts have no side
		// effects, so running one twice is safe.
		if attempt < attempts && f.Reason == catalog.ReasonTimeout && ctx.Err() == nil {
			continue
		}
		return nil, f, nil
	}
}

// call runs process on r in vm under the time budget and converts its
// result, or says why the record fails; err is only ctx's end. reuse
// reports whether vm is fit for the next record.
func (o *operator) call(ctx context.Context, vm *jsVM, r *record.Record) (vals []any, reuse bool, f *failure, err error) {
	vm.why.Store(nil)
	vm.wg.Add(1)
	vm.timer.Reset(o.timeout)
	var stopCtx func() bool
	if ctx.Done() != nil {
		vm.wg.Add(1)
		stopCtx = context.AfterFunc(ctx, func() { vm.interrupt(context.Cause(ctx)) })
	}

	heapWatch.watch(vm)

	var (
		ex        *goja.Exception
		engineErr error
		lim       *limitError
		overflow  bool
		line, col int
	)
	func() {
		defer func() {
			if p := recover(); p != nil {
				if l, ok := p.(*limitError); ok {
					lim = l
					return
				}
				engineErr = fmt.Errorf("JavaScript engine failure: %v", p)
			}
		}()
		arg := vm.recordValue(r)
		res, callErr := vm.process(goja.Undefined(), arg)
		var so *goja.StackOverflowError
		switch {
		case callErr == nil:
		case errors.As(callErr, &so):
			overflow, line, col = true, 0, 0
			if st := so.Stack(); len(st) > 0 {
				line, col = o.framePos(st)
			}
			return
		case errors.As(callErr, &ex):
			return
		default:
			engineErr = callErr // interrupts end up here too; why says which
			return
		}
		// Convert while the budget still runs: getters and proxies in
		// the result run JavaScript.
		if x := vm.rt.Try(func() { vals, err = vm.results(res) }); x != nil {
			ex = x
		}
	}()
	// A thrown value's text may run JavaScript (toString) too.
	msg := ""
	if ex != nil && vm.why.Load() == nil {
		msg = exceptionText(ex)
		line, col = o.throwPos(ex)
	}

	heapWatch.stop(vm)
	if vm.timer.Stop() {
		vm.wg.Done()
	}
	if stopCtx != nil && stopCtx() {
		vm.wg.Done()
	}
	vm.wg.Wait() // an interrupter that fired has finished
	var why error
	if p := vm.why.Load(); p != nil {
		why = *p
	}
	// A runtime that was interrupted, overflowed its stack, hit a limit or
	// failed inside the engine may hold half-run state (and memory): drop
	// it.
	reuse = why == nil && engineErr == nil && lim == nil && !overflow
	vm.rt.ClearInterrupt()

	var me *memoryError
	switch {
	case errors.As(why, &me):
		if lim != nil { // a guard saw the interrupt first
			line, col = o.framePos(lim.stack)
		} else {
			line, col = o.framePos(interruptStack(engineErr))
		}
		return nil, reuse, o.overBudget(me.Error(), line, col), nil
	case why == errTimeout:
		return nil, reuse, &failure{Reason: catalog.ReasonTimeout, Text: fmt.Sprintf("script ran past its budget of %s (tried %d times)", o.timeout, attempts)}, nil
	case why != nil:
		return nil, reuse, nil, fmt.Errorf("script interrupted: %w", why)
	case lim != nil && lim.reason == catalog.ReasonResource:
		line, col = o.framePos(lim.stack)
		return nil, reuse, o.overBudget(clip(lim.what), line, col), nil
	case lim != nil:
		line, col = o.framePos(lim.stack)
		return nil, reuse, &failure{Reason: lim.reason, Text: clip(lim.what), Line: line, Col: col}, nil
	case overflow:
		return nil, reuse, &failure{Reason: catalog.ReasonScript, Text: fmt.Sprintf("the call stack grew past %d frames", maxCallStack), Line: line, Col: col}, nil
	case engineErr != nil:
		return nil, reuse, &failure{Reason: catalog.ReasonScript, Text: clip(engineErr.Error())}, nil
	case ex != nil:
		return nil, reuse, &failure{Reason: catalog.ReasonScript, Text: clip(msg), Line: line, Col: col}, nil
	case err != nil:
		return nil, reuse, failureOf(err), nil
	}
	return vals, reuse, nil, nil
}

// overBudget is a call that went past the memory budget: what happened,
// and where.
func (o *operator) overBudget(what string, line, col int) *failure {
	return &failure{Reason: catalog.ReasonResource, Text: fmt.Sprintf("script went past its memory budget of %s: %s", formatSize(o.memory), what), Line: line, Col: col}
}

// exceptionText is the thrown value as text ("Error: message").
func exceptionText(ex *goja.Exception) (s string) {
	defer func() {
		if recover() != nil {
			s = "an exception"
		}
	}()
	if v := ex.Value(); v != nil {
		return v.String()
	}
	return ex.Error()
}

// throwPos finds where in the script ex was thrown: the innermost frame in
// the script itself (builtins such as JSON.parse have no position).
func (o *operator) throwPos(ex *goja.Exception) (line, col int) {
	return o.framePos(ex.Stack())
}

func (o *operator) framePos(stack []goja.StackFrame) (line, col int) {
	for _, f := range stack {
		if f.SrcName() == o.name {
			p := f.Position()
			if p.Line > 0 {
				return p.Line, p.Column
			}
		}
	}
	return 0, 0
}

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + "…"
}

// recordValue builds the record object process receives, as native
// JavaScript values (wrapped Go maps behave differently from objects).
func (vm *jsVM) recordValue(r *record.Record) goja.Value {
	obj := vm.rt.NewObject()
	_ = obj.Set("key", vm.toJS(r.Key))
	_ = obj.Set("value", vm.toJS(r.Value))
	if r.Timestamp.IsZero() {
		_ = obj.Set("timestamp", goja.Null())
	} else {
		_ = obj.Set("timestamp", r.Timestamp.UnixMilli())
	}
	h := vm.rt.NewObject()
	for _, hd := range r.Headers {
		_ = h.DefineDataProperty(hd.Key, vm.rt.ToValue(string(hd.Value)), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
	}
	_ = obj.Set("headers", h)
	return obj
}

// toJS converts a decoded JSON value to a native JavaScript value. Object
// keys are set in sorted order so that scripts iterate them
// deterministically.
func (vm *jsVM) toJS(v any) goja.Value {
	switch t := v.(type) {
	case nil:
		return goja.Null()
	case string:
		return vm.rt.ToValue(t)
	case float64:
		return vm.rt.ToValue(t)
	case bool:
		return vm.rt.ToValue(t)
	case map[string]any:
		obj := vm.rt.NewObject()
		start := len(vm.keys)
		for k := range t {
			vm.keys = append(vm.keys, k)
		}
		keys := vm.keys[start:]
		slices.Sort(keys)
		for _, k := range keys {
			// Not Set, which would treat a "__proto__" key specially.
			_ = obj.DefineDataProperty(k, vm.toJS(t[k]), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
		}
		clear(keys)
		vm.keys = vm.keys[:start]
		return obj
	case []any:
		items := make([]any, len(t))
		for i, e := range t {
			items[i] = vm.toJS(e)
		}
		return vm.rt.NewArray(items...)
	case []byte:
		return vm.rt.ToValue(string(t))
	default:
		// Other numbers (int from YAML tests) and anything else.
		return vm.rt.ToValue(record.Plain(v))
	}
}

// results turns what process returned into record values.
func (vm *jsVM) results(res goja.Value) ([]any, error) {
	if res == nil || goja.IsUndefined(res) || goja.IsNull(res) {
		return nil, nil
	}
	c := converter{vm: vm}
	if obj, ok := res.(*goja.Object); ok && obj.ClassName() == "Array" {
		n, err := c.length(obj)
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, n)
		for i := 0; i < n; i++ {
			v, ok, err := c.value(obj.Get(itoa(i)), 1, "["+itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			if ok && v != nil {
				out = append(out, v)
			}
		}
		return out, nil
	}
	v, _, err := c.value(res, 0, "")
	if err != nil {
		return nil, err
	}
	return []any{v}, nil
}

// converter turns JavaScript results into decoded JSON values, bounding
// their size and depth.
type converter struct {
	vm *jsVM
	n  int // values converted so far
}

const maxDepth = 1000

var errInterrupted = errors.New("interrupted")

func (c *converter) count(k int, where string) error {
	c.n += k
	if c.n > maxValues {
		return catalog.Rejectf(catalog.ReasonOversize, "the script's result has more than %d values (at %s)", maxValues, pathOr(where))
	}
	if c.n&1023 == 0 && c.vm.why.Load() != nil {
		return errInterrupted
	}
	return nil
}

func (c *converter) length(obj *goja.Object) (int, error) {
	n := obj.Get("length").ToInteger()
	if n < 0 || n > int64(maxValues-c.n) {
		return 0, catalog.Rejectf(catalog.ReasonOversize, "the script's result has more than %d values (an array of length %d)", maxValues, n)
	}
	return int(n), nil
}

func pathOr(where string) string {
	if where == "" {
		return "the top"
	}
	return strings.TrimPrefix(where, ".")
}

func notJSON(what, where string) error {
	return catalog.Rejectf(catalog.ReasonScript, "process returned %s at %s, which is not a JSON value", what, pathOr(where))
}

// value converts v; defined is false for undefined, which objects leave out.
func (c *converter) value(v goja.Value, depth int, where string) (out any, defined bool, err error) {
	if err := c.count(1, where); err != nil {
		return nil, false, err
	}
	if v == nil || goja.IsUndefined(v) {
		return nil, false, nil
	}
	if goja.IsNull(v) {
		return nil, true, nil
	}
	obj, isObj := v.(*goja.Object)
	if !isObj {
		out, err := primitive(v.Export(), where)
		return out, true, err
	}
	if depth >= maxDepth {
		return nil, false, catalog.Rejectf(catalog.ReasonScript, "process returned a value nested deeper than %d levels (does it contain itself?) at %s", maxDepth, pathOr(where))
	}
	switch obj.ClassName() {
	case "Function":
		return nil, false, notJSON("a function", where)
	case "Date":
		t, ok := obj.Export().(time.Time)
		if !ok {
			return nil, true, nil // an invalid date, which JSON.stringify writes as null
		}
		return t.UTC().Format("2006-01-02T15:04:05.000Z"), true, nil
	case "String":
		return obj.String(), true, nil
	case "Number", "Boolean":
		out, err := primitive(obj.Export(), where)
		return out, true, err
	case "Array":
		n, err := c.length(obj)
		if err != nil {
			return nil, false, err
		}
		arr := make([]any, n)
		for i := range arr {
			e, _, err := c.value(obj.Get(itoa(i)), depth+1, where+"["+itoa(i)+"]")
			if err != nil {
				return nil, false, err
			}
			arr[i] = e // undefined elements become null, as in JSON.stringify
		}
		return arr, true, nil
	}
	keys := obj.Keys()
	if err := c.count(len(keys), where); err != nil {
		return nil, false, err
	}
	m := make(map[string]any, len(keys))
	for _, k := range keys {
		e, ok, err := c.value(obj.Get(k), depth+1, where+"."+k)
		if err != nil {
			return nil, false, err
		}
		if ok {
			m[k] = e
		}
	}
	return m, true, nil
}

// primitive converts an exported JavaScript primitive.
func primitive(v any, where string) (any, error) {
	switch t := v.(type) {
	case nil, string, bool:
		return t, nil
	case int64:
		return int(t), nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, notJSON(strconv.FormatFloat(t, 'g', -1, 64), where)
		}
		// JavaScript has one number type and JSON.stringify writes a whole
		// one without a fraction: so do we (an int), within the integers a
		// double holds exactly.
		if t == math.Trunc(t) && math.Abs(t) <= 1<<53 {
			return int(t), nil
		}
		return t, nil
	case *big.Int:
		return nil, notJSON("a BigInt", where)
	case *goja.Symbol:
		return nil, notJSON("a symbol", where)
	default:
		return nil, notJSON(fmt.Sprintf("a %T", v), where)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
