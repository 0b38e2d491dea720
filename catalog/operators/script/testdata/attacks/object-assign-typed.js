// reason: resource
var o = Object.assign({}, new Uint8Array(60 << 20));
