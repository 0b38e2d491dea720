// reason: resource
var s = "x".repeat(1e4);
var r = s.replace(/(?:)/g, "y".repeat(1e5));
