// reason: resource
// Each buffer is within the budget; together they are not.
var keep = [];
for (;;) keep.push(new Uint8Array(32 << 20));
