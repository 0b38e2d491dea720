package api

import (
	"reflect"
	"testing"
)

// The IDE puts squiggles where these say: the positions must come through
// exactly as the compiler and the test runner print them, with a failed
// test's diff folded into the message of the line that locates it.
func TestIDEDiagnostics(t *testing.T) {
	lines := []string{
		"pipelines/clicks.yaml:15:24: unexpected token EOF",
		"PASS pipelines/other_test.yaml: fine",
		"FAIL pipelines/clicks_test.yaml:5:5: a click is lower-cased",
		"     pipelines/clicks_test.yaml:9:9: clicks.clean record 1: value differs:",
		"       + slow: true (not expected)",
		"1 passed, 1 failed",
	}
	want := []ideDiagnostic{
		{File: "pipelines/clicks.yaml", Line: 15, Column: 24, Message: "unexpected token EOF", Severity: "error"},
		{File: "pipelines/clicks_test.yaml", Line: 5, Column: 5, Message: "a click is lower-cased", Severity: "error"},
		{File: "pipelines/clicks_test.yaml", Line: 9, Column: 9, Message: "clicks.clean record 1: value differs:\n  + slow: true (not expected)", Severity: "error"},
	}
	if got := diagnostics(lines); !reflect.DeepEqual(got, want) {
		t.Fatalf("diagnostics:\n got %+v\nwant %+v", got, want)
	}
}

func TestIDEPaths(t *testing.T) {
	for p, ok := range map[string]bool{
		"pipelines/clicks.yaml": true, "README.md": true,
		"": false, "/etc/passwd": false, "../x": false, "a/../b": false, "a//b": false, ".git/config": false, "a\\b": false, ".": false,
	} {
		if err := checkIDEPath(p); (err == nil) != ok {
			t.Errorf("checkIDEPath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}
