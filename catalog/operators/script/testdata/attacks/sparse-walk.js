// reason: resource
// Free to make, hours to walk: length is capped for array built-ins.
var a = [];
a.length = 4e9;
var i = a.indexOf(1);
