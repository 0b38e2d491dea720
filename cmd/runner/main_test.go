package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// copyExamples copies examples/ into a temporary directory.
func copyExamples(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("../../examples", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../../examples", path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestExamplesPass(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), config{command: "test", args: []string{"../../examples"}}, &out, &out)
	if err != nil {
		t.Fatalf("runner test examples: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), " passed, 0 failed") || strings.Contains(out.String(), "FAIL") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
}

// Breaking an example must fail the run and point at the exact token: the
// expected position is computed from where the broken token sits in the
// mutated file, not written down by hand.
func TestBrokenExamplesPointAtTheToken(t *testing.T) {
	cases := []struct {
		name     string
		file     string
		old, new string
		token    string // first occurrence in the mutated file is where the error must point
		msg      string
	}{
		{"unknown field", "vehicle-telemetry/telemetry.yaml", "partitioned_by_key: true", "partitioned_by_keys: true",
			"partitioned_by_keys", `unknown field "partitioned_by_keys" in spec.source; did you mean "partitioned_by_key"?`},
		{"bad expression", "vehicle-telemetry/telemetry.yaml", "speed >= 0 && lat", "speed >= 0 && && lat",
			"&& lat", "unexpected token Operator(\"&&\")"},
		{"unknown function", "clickstream/clickstream.yaml", "lower(split(", "lowr(split(",
			"lowr(", "unknown function lowr; did you mean lower?"},
		{"wrong type", "payments/payments.yaml", "columns: [id, card, email, amount, currency, status]", `columns: "id"`,
			`"id"`, "parse.columns must be a list, not string"},
		{"wrong expression type", "clickstream/clickstream.yaml", `country: country ?? "unknown"`, `country: offset + "x"`,
			`+ "x"`, "invalid operation: + (mismatched types int and string)"},
		{"unknown operator", "clickstream/clickstream.yaml", "- rekey: url", "- rekeyy: url",
			"rekeyy", `unknown operator "rekeyy"; did you mean "rekey"?`},
		{"yaml syntax error", "payments/payments.yaml", "- drop: [status]", "- drop: [status\n    - rekey: x",
			"- rekey: x", "YAML syntax error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyExamples(t)
			path := filepath.Join(dir, tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), tc.old) {
				t.Fatalf("%s no longer contains %q; update the test", tc.file, tc.old)
			}
			mutated := strings.Replace(string(data), tc.old, tc.new, 1)
			if err := os.WriteFile(path, []byte(mutated), 0o644); err != nil {
				t.Fatal(err)
			}
			line, col := position(mutated, tc.token)
			var out bytes.Buffer
			err = run(context.Background(), config{command: "test", args: []string{dir}}, &out, &out)
			if !errors.Is(err, errFailed) {
				t.Fatalf("run returned %v, want a failure\n%s", err, out.String())
			}
			want := path + ":" + itoa(line) + ":" + itoa(col) + ": "
			found := false
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, want) && strings.Contains(l, tc.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("no line %q...%q in output:\n%s", want, tc.msg, out.String())
			}
		})
	}
}

// position returns the 1-based line and column of the first occurrence of
// token in s.
func position(s, token string) (int, int) {
	i := strings.Index(s, token)
	before := s[:i]
	line := strings.Count(before, "\n") + 1
	col := i - strings.LastIndex(before, "\n")
	return line, col
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"test"}, {"plan"}} {
		if _, err := parseArgs(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseArgs(%q) accepted bad usage", args)
		}
	}
	cfg, err := parseArgs([]string{"test", "-v", "examples"}, &bytes.Buffer{})
	if err != nil || !cfg.verbose || cfg.args[0] != "examples" {
		t.Errorf("parseArgs(test -v examples) = %+v, %v", cfg, err)
	}
}
