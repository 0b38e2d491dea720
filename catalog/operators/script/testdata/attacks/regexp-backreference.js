// reason: timeout
// A lookahead sends the pattern to the backtracking engine.
var m = /^(?=(a+)+$)/.test("a".repeat(40) + "!");
