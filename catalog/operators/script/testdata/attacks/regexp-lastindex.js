// reason: timeout
// A match that starts past 0 goes to the backtracking engine too.
var re = /(a+)+b/g;
re.lastIndex = 1;
var m = re.exec("x" + "a".repeat(40));
