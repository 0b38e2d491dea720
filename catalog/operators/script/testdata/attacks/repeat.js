// reason: resource
var s = "x".repeat(1e9);
