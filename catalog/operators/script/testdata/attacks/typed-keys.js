// reason: resource
var k = Object.keys(new Uint8Array(48 << 20));
