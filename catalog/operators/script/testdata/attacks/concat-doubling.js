// reason: resource
// Each doubling is one instruction, which may take tens of milliseconds
// once the string is large: at top level the 1s budget may come first.
// top level: went past its memory budget of 64MiB | top-level code ran past its budget (1s)
var s = "x";
for (;;) s += s;
