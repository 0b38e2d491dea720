// reason: resource
var b = new ArrayBuffer(4e9);
