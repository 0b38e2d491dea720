// reason: resource
var a = [];
a.length = 1e8;
var b = [...a];
