// reason: resource
var chunk = "v".repeat(1e5), a = [];
for (var i = 0;; i++) a.push({n: i, s: chunk + i});
