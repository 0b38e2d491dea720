// reason: resource
var parts = "x".repeat(1e7).split("");
