// reason: resource
// One String.prototype.concat call copies every argument into one new
// string: 64 copies of an 8M-character string is a gigabyte in one built-in.
var s = "x".repeat(8 << 20);
var parts = [];
for (var i = 0; i < 64; i++) parts.push(s);
var big = s.concat.apply(s, parts);
