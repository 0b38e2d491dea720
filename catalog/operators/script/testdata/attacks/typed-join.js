// reason: resource
var s = new Uint8Array(60 << 20).join(",");
