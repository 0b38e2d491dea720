// reason: resource
// Each element is small to hold (one shared string); the result is 2GiB.
var big = "x".repeat(1 << 20);
var s = new Array(2048).fill(big).join("");
