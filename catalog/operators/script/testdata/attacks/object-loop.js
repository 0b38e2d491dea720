// reason: resource
var chunk = "v".repeat(1e5), o = {};
for (var i = 0;; i++) o["k" + i] = [chunk + i, i, i];
