package script_test

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

// TestGuardsKeepBehaviour checks that the guarded built-ins behave as
// goja's own for ordinary use: the guards must only refuse, never change a
// result.
func TestGuardsKeepBehaviour(t *testing.T) {
	tests := []struct{ name, expr, want string }{
		{"join", `[1, null, undefined, "a", [2, 3]].join("-")`, `"1---a-2,3"`},
		{"join default", `[1, 2].join()`, `"1,2"`},
		{"join cycle", `(function () { var a = [1]; a.push(a); return a.join(); })()`, `"1,"`},
		{"join array-like", `Array.prototype.join.call({length: 2, 0: "x", 1: "y"}, "+")`, `"x+y"`},
		{"join unicode", `["é", "\u{1F600}"].join("·")`, `"é·😀"`},
		{"toString", `String([1, [2, 3]])`, `"1,2,3"`},
		{"join name", `[].join.name + [].join.length`, `"join1"`},
		{"stringify", `JSON.stringify({b: [1, "x", null, true], a: {c: undefined}})`, `"{\"b\":[1,\"x\",null,true],\"a\":{}}"`},
		{"stringify space", `JSON.stringify({a: [1]}, null, 2)`, `"{\n  \"a\": [\n    1\n  ]\n}"`},
		{"stringify replacer", `JSON.stringify({a: 1, b: 2}, function (k, v) { return k === "a" ? undefined : v; })`, `"{\"b\":2}"`},
		{"stringify list", `JSON.stringify({a: 1, b: 2, c: {a: 3, d: 4}}, ["c", "a"])`, `"{\"c\":{\"a\":3},\"a\":1}"`},
		{"stringify toJSON", `JSON.stringify({d: new Date(0), t: {toJSON: function () { return "T"; }}})`, `"{\"d\":\"1970-01-01T00:00:00.000Z\",\"t\":\"T\"}"`},
		{"stringify primitive", `JSON.stringify("s") + JSON.stringify(undefined)`, `"\"s\"undefined"`},
		{"stringify cycle throws", `(function () { var o = {}; o.o = o; try { JSON.stringify(o); } catch (e) { return e instanceof TypeError; } })()`, `true`},
		{"parse", `JSON.parse('{"a": [1, 2]}').a[1]`, `2`},
		{"typed array", `new Uint8Array([1, 2, 300]).join()`, `"1,2,44"`},
		{"typed array statics", `Uint8Array.from([1, 2]).length + Uint8Array.of(1).length + Uint8Array.BYTES_PER_ELEMENT`, `4`},
		{"typed array instanceof", `new Float64Array(2) instanceof Float64Array && new Float64Array(2).constructor === Float64Array && !([] instanceof Float64Array) && typeof Float64Array`, `"function"`},
		{"typed array subclass", `(function () { class U extends Uint8Array {} var u = new U(3); return u instanceof U && u.length === 3 && u.slice(1) instanceof U; })()`, `true`},
		{"buffer", `new DataView(new ArrayBuffer(8)).byteLength + new ArrayBuffer(4).slice(1).byteLength`, `11`},
		{"buffer throws", `(function () { try { new ArrayBuffer(-1); } catch (e) { return e instanceof RangeError; } })()`, `true`},
		{"keys of typed array", `Object.keys(new Uint8Array(3)).join()`, `"0,1,2"`},
		{"repeat pad", `"ab".repeat(2) + "x".padStart(3, "-") + "y".padEnd(2)`, `"abab--xy "`},
		{"fill slice", `new Array(3).fill(7).slice(1).concat([1])`, `[7,7,1]`},
		{"apply", `Math.max.apply(null, [1, 5, 2]) + Reflect.apply(Math.min, null, [3, 4])`, `8`},
		{"array from", `Array.from("abc").join("")`, `"abc"`},
		{"split", `"a,b,,c".split(",").length + "abc".split("").length + "a1b2".split(/\d/).length`, `10`},
		{"replace", `"a-b-c".replace("-", "+") + "a-b-c".replace(/-/g, "$&$&") + "a-b".replaceAll("-", "_")`, `"a+b-ca--b--ca_b"`},
		{"replace function", `"a1b22".replace(/\d+/g, function (m) { return "<" + m.length + ">"; })`, `"a<1>b<2>"`},
		{"regexp", `/(\w)(\d)?/.exec("x").length + (/a/.test("cat") ? 1 : 0) + "aXbX".search(/X/) + [..."a1b2".matchAll(/\d/g)].length`, `7`},
		{"regexp backreference", `/(a)\1/.test("aa") && "xaay".match(/(?<=x)(a)\1/)[0] === "aa"`, `true`},
		{"regexp sticky", `(function () { var re = /a/y; re.lastIndex = 1; return re.test("ba"); })()`, `true`},
		{"regexp names", `RegExp.prototype.exec.name + RegExp.prototype[Symbol.replace].name`, `"exec[Symbol.replace]"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := build(t, "timeout: 1s\nsource: |\n  function process(r) { return JSON.stringify("+tc.expr+"); }\n")
			res := operatortest.Process(context.Background(), op, operatortest.Values(1.0))
			if len(res.Out) != 1 {
				t.Fatalf("got %v (%v)", values(res), res.Errs)
			}
			if got := res.Out[0].Value; !record.EqualJSON(got, tc.want) {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestMemoryOption checks the sizes the option takes and that the budget
// is the one applied.
func TestMemoryOption(t *testing.T) {
	reg := registry(t)
	for _, tc := range []struct{ step, want string }{
		{"{source: 'function process(r) {}', memory: 64}", "example.yaml:1:44: memory 64 is too small: at least 1MiB"},
		{"{source: 'function process(r) {}', memory: 1GiB}", "example.yaml:1:44: memory 1GiB is too large: at most 512MiB per runtime"},
		{"{source: 'function process(r) {}', memory: lots}", `example.yaml:1:44: memory must be a size such as 64MiB or 512KiB, got "lots"`},
		{"{source: '\"x\".repeat(3 << 19); function process(r) {}', memory: 2MiB}",
			"example.yaml:1:21: the script's top-level code went past its memory budget of 2MiB: String.prototype.repeat(1572864) would take 3MiB"},
		{"{source: 'new Uint8Array(1 << 16); function process(r) {}', memory: 2MiB}",
			"example.yaml:1:11: the script's top-level code went past its memory budget of 2MiB: new Uint8Array(65536) would take 4MiB"},
	} {
		if _, err := operatortest.Build(reg, "script", tc.step); err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.step, err, tc.want)
		}
	}
	for _, step := range []string{
		"{source: '\"x\".repeat(3 << 19); function process(r) {}', memory: 4MiB}",
		"{source: '\"x\".repeat(1.4e6); function process(r) {}', memory: 3MB}",
		"{source: '\"x\".repeat(1 << 19); new Uint8Array(1 << 14); function process(r) {}', memory: 1048576}",
	} {
		if _, err := operatortest.Build(reg, "script", step); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
}
