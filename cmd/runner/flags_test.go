package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// The ops server has no authentication and its /metrics and /status name
// pipelines and topics, so both long-running commands bind it to loopback
// unless told otherwise, and the help says how to expose it.
func TestListenLoopbackByDefault(t *testing.T) {
	run, err := parseArgs([]string{"run", "--pipelines", "d"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := parseArgs([]string{"agent", "--control-plane", "https://cp"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for cmd, got := range map[string]string{"run": run.run.listen, "agent": agent.agent.listen} {
		if got != "127.0.0.1:9464" {
			t.Errorf("runner %s: --listen defaults to %q, want 127.0.0.1:9464", cmd, got)
		}
	}
	exposed, err := parseArgs([]string{"run", "--pipelines", "d", "--listen", ":9464"}, &bytes.Buffer{})
	if err != nil || exposed.run.listen != ":9464" {
		t.Fatalf("--listen :9464 parsed as %q, %v", exposed.run.listen, err)
	}
}

// `-h` prints each flag with a placeholder taken from the first
// backquoted word of its help; help text with YAML in backquotes showed
// `-state-dir state: {store: disk}`. Every placeholder must be a plain
// word, and --listen's help must say how to expose the server.
func TestHelpPlaceholders(t *testing.T) {
	for _, args := range [][]string{{"run", "-h"}, {"agent", "-h"}} {
		var out bytes.Buffer
		if _, err := parseArgs(args, &out); err == nil {
			t.Fatalf("%q: no help error", args)
		}
		help := out.String()
		flagLine := regexp.MustCompile(`(?m)^  -(\S+)(?: (.*))?$`)
		for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
			if ph := m[2]; ph != "" && !regexp.MustCompile(`^[a-zA-Z:,.]+$`).MatchString(ph) {
				t.Errorf("%q: flag -%s has the placeholder %q", args, m[1], ph)
			}
		}
		if !strings.Contains(help, "-state-dir directory\n") {
			t.Errorf("%q: -state-dir's placeholder is not \"directory\":\n%s", args, help)
		}
		if !strings.Contains(help, "--listen :9464") || !strings.Contains(help, `(default "127.0.0.1:9464")`) {
			t.Errorf("%q: --listen's help does not say its default and how to expose it:\n%s", args, help)
		}
	}
}
