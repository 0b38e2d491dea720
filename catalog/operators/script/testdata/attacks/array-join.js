// reason: resource
var s = new Array(1e9).join("x");
