// reason: resource
var a = new Array(1e9).fill(0);
