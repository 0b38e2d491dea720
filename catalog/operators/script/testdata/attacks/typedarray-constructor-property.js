// reason: resource
var Ctor = new Uint8Array(1).constructor;
var a = new Ctor(4e9);
