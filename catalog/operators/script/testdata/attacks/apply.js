// reason: resource
var m = Math.max.apply(null, {length: 1e9});
