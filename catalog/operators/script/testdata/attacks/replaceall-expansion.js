// reason: resource
var s = "x".repeat(1e4);
var r = s.replaceAll("", "y".repeat(1e5));
