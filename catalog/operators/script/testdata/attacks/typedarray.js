// reason: resource
var a = new Float64Array(1e9);
