// reason: resource
// Building the array takes a while under the race detector:
// top level: went past its memory budget of 64MiB | top-level code ran past its budget (1s)
var a = [];
for (var i = 0; i < 1e6; i++) a = [a];
var s = JSON.stringify(a);
