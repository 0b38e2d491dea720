// reason: resource
var s = "".padStart(1e9, "ab");
