// reason: resource
// String.raw joins its raw strings and substitutions in one built-in call.
var s = "x".repeat(8 << 20);
var raw = [];
for (var i = 0; i < 64; i++) raw.push(s);
var big = String.raw({raw: raw});
