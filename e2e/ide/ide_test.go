// Package ide tests the web IDE in a real browser: `controlplane dev
// --no-runner` on a throwaway database, and browser.mjs driving Debian's
// chromium through playwright-core (web/node_modules) to log in, break and
// fix a pipeline, try it on sample records, browse the operator catalog,
// create and rename a side file, run the tests, review the staged diff,
// commit & deploy, list the pipelines and open one, roll the commit back
// from the history, create and revoke a token, and plan a local fleet.
// Screenshots land in e2e/artifacts/ and must not be blank.
//
// It needs `make web` (the embedded app, and playwright-core), node and
// /usr/bin/chromium (`make setup`); it fails saying which is missing.
package ide

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
)

var controlplane string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-ide-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	controlplane = filepath.Join(dir, "controlplane")
	cmd := exec.Command("go", "build", "-o", controlplane, "github.com/sluicehq/sluice/cmd/controlplane")
	if b, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/controlplane: %v\n%s", err, b)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// The runner beside the control plane lets a fleet of the local module
	// be planned (its first run checks the binary). Without it the fleet
	// step sees the run fail, which the walk-through reports and accepts.
	runner := exec.Command("go", "build", "-o", filepath.Join(dir, "runner"), "github.com/sluicehq/sluice/cmd/runner")
	if b, err := runner.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/runner (the fleet plan will fail without it): %v\n%s", err, b)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var urlRE = regexp.MustCompile(`(?m)^\s+URL:\s+(\S+)`)

func TestIDE(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	webDir := filepath.Join(root, "web")
	for _, need := range []struct{ path, fix string }{
		{filepath.Join(webDir, "dist", "app", "index.html"), "run make web: the control plane embeds the built IDE"},
		{filepath.Join(webDir, "node_modules", "playwright-core"), "run make web: it installs playwright-core"},
		{"/usr/bin/chromium", "run make setup: it installs Debian's chromium"},
	} {
		if _, err := os.Stat(need.path); err != nil {
			t.Fatalf("%s is missing: %s", need.path, need.fix)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: run make setup")
	}
	artifacts := filepath.Join(root, "e2e", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	// The control plane, as a developer starts it.
	dataDir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cpOut := &lockedBuffer{}
	cp := exec.CommandContext(ctx, controlplane, "dev", "--no-runner", "--database-url", pgtest.NewDatabase(t),
		"--data-dir", dataDir, "--listen", addr)
	cp.Stdout, cp.Stderr = cpOut, cpOut
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cp.Wait()
		if t.Failed() {
			t.Logf("controlplane output (last 6 KiB):\n%s", tail(cpOut.String(), 6<<10))
		}
	})
	var base string
	for deadline := time.Now().Add(90 * time.Second); base == ""; {
		if m := urlRE.FindStringSubmatch(cpOut.String()); m != nil {
			base = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("controlplane dev printed no URL within 90s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	creds := readCredentials(t, filepath.Join(dataDir, "credentials"))

	pages := []string{"login", "editor", "editor-error", "try", "operators", "files", "tests", "diff", "deploy", "pipelines", "pipeline",
		"pipeline-lag", "history", "tokens", "fleets"}
	for _, old := range append(pages, "failure") {
		_ = os.Remove(filepath.Join(artifacts, old+".png"))
	}
	bctx, bcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer bcancel()
	browser := exec.CommandContext(bctx, node, filepath.Join(root, "e2e", "ide", "browser.mjs"))
	browser.Env = append(os.Environ(), "BASE_URL="+base, "EMAIL="+creds["SLUICE_ADMIN_EMAIL"], "PASSWORD="+creds["SLUICE_ADMIN_PASSWORD"],
		"ARTIFACTS="+artifacts, "WEB_DIR="+webDir)
	out, err := browser.CombinedOutput()
	t.Logf("browser.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the browser walk-through failed (%v); see e2e/artifacts/failure.png", err)
	}

	// Every page was drawn: a blank or half-loaded page has a handful of
	// colours, a rendered one (text, syntax colours, badges) hundreds.
	for _, name := range pages {
		n := colours(t, filepath.Join(artifacts, name+".png"))
		t.Logf("%s.png: %d distinct colours", name, n)
		if n < 64 {
			t.Errorf("%s.png has %d distinct colours: the page looks blank", name, n)
		}
	}
	// What the browser saw, checked again here so a log reader sees it.
	for _, want := range []string{"problem: pipelines/clicks.yaml:15:", "try: clicks: 1 output, 1 dead letter", "passed, 0 failed",
		"rollout: Rollout on fleet dev finished", "rollback: Rolled back on dev", "token: created and revoked", "ok"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("browser.mjs did not report %q", want)
		}
	}
}

func readCredentials(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	creds := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			creds[k] = v
		}
	}
	return creds
}

func colours(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
