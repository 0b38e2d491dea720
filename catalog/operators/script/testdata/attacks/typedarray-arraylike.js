// reason: resource
var a = new Uint8Array({length: 4e9});
