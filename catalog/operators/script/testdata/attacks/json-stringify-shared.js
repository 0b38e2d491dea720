// reason: resource
// Shared objects: a small value that prints as terabytes. (A small budget
// keeps the test quick: the built-in prints a few characters per
// nanosecond, much slower under the race detector.)
// memory: 4MiB
var o = {a: "x".repeat(1e5)};
for (var i = 0; i < 40; i++) o = {a: o, b: o};
var s = JSON.stringify(o);
