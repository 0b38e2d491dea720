// reason: resource
var s = "[" + "[],".repeat(4e6) + "[]]";
var v = JSON.parse(s);
