// reason: resource
var s = "x";
for (;;) s += s;
