// reason: resource
var a = Int32Array.from({length: 1e9});
