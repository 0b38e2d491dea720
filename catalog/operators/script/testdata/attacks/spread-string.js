// reason: resource
var b = [..."x".repeat(1e7)];
