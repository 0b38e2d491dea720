// reason: resource
var a = Array.from({length: 1e9});
