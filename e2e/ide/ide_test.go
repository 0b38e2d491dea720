// Package ide tests the web IDE in a real browser: `controlplane dev
// --no-runner` on a throwaway database, and browser.mjs driving Debian's
// chromium through playwright-core (web/node_modules) to log in, break and
// fix a pipeline, try it on sample records, browse the operator catalog,
// create and rename a side file, run the tests, review the staged diff,
// commit & deploy, list the pipelines and open one (its lag chart drawn from
// what a real runner reports, its DLQ showing real dead letters, one of
// them replayed), roll the commit back from the history, create and revoke
// a token, and create a local fleet of two runners, scale it to three and
// destroy it, each plan reviewed and approved in the page (the runners are
// real `runner agent` processes that terraform starts; none may be left).
// A real `runner agent` process runs the dev fleet's pipelines on kfake
// (internal/kafkatest) while a producer feeds clicks, a few of which the
// pipeline's filter fails on. Screenshots land in e2e/artifacts/ and must
// not be blank.
//
// It needs `make web` (the embedded app, and playwright-core), node,
// /usr/bin/chromium and terraform or tofu (`make setup`); it fails saying
// which is missing.
package ide

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/e2e/proctest"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
	"github.com/sluicehq/sluice/provisioning/terraform/localtest"
)

var controlplane, runnerBin string

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
	// The runner beside the control plane is what a fleet of the local
	// module starts; the walk-through requires its runs to succeed.
	runnerBin = filepath.Join(dir, "runner")
	runner := exec.Command("go", "build", "-o", runnerBin, "github.com/sluicehq/sluice/cmd/runner")
	if b, err := runner.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/runner: %v\n%s", err, b)
		os.RemoveAll(dir)
		os.Exit(1)
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
	// The local fleet's runners live under fleetsDir; they run in their
	// own sessions, so they outlive the control plane unless killed, and a
	// test that fails midway must kill them. This cleanup runs after the
	// control plane's (cleanups run last first), so it starts no run after
	// the kill.
	fleetsDir := t.TempDir()
	runners := &runnerWatch{}
	t.Cleanup(func() {
		if t.Failed() {
			logRunners(t, fleetsDir)
		}
		runners.kill(t, fleetsDir)
	})
	ctx, cancel := context.WithCancel(context.Background())
	cpOut := &lockedBuffer{}
	cp := exec.CommandContext(ctx, controlplane, "dev", "--no-runner", "--database-url", pgtest.NewDatabase(t),
		"--data-dir", dataDir, "--listen", addr, "--fleets-dir", fleetsDir)
	cp.Stdout, cp.Stderr = cpOut, cpOut
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cp.Wait()
		if t.Failed() {
			proctest.LogOutput(t, "controlplane", cpOut.String())
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

	// A real runner of the dev fleet on kfake, and clicks to run: three
	// the pipeline's filter fails on (agent is a number, lower() wants a
	// string), then a steady flow.
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "clicks", 2)
	startRunner(ctx, t, base, creds, brokers)
	go produceClicks(ctx, t, brokers)
	go runners.watch(ctx, fleetsDir)

	pages := []string{"login", "editor", "editor-error", "try", "operators", "files", "tests", "diff", "deploy", "pipelines", "pipeline",
		"pipeline-lag", "pipeline-dlq", "pipeline-fixture", "history", "tokens", "fleets", "fleets-applied", "fleets-scale", "fleets-destroyed"}
	for _, old := range append(pages, "failure") {
		_ = os.Remove(filepath.Join(artifacts, old+".png"))
	}
	bctx, bcancel := context.WithTimeout(ctx, 8*time.Minute)
	defer bcancel()
	browser := exec.CommandContext(bctx, node, filepath.Join(root, "e2e", "ide", "browser.mjs"))
	browser.Env = append(os.Environ(), "BASE_URL="+base, "EMAIL="+creds["SLUICE_ADMIN_EMAIL"], "PASSWORD="+creds["SLUICE_ADMIN_PASSWORD"],
		"ARTIFACTS="+artifacts, "WEB_DIR="+webDir, "BROKERS="+strings.Join(brokers, ","))
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
		"rollout: Rollout on fleet dev finished", "real lag chart:", "dlq: expression", "replay: Replay done: 1 dead letter",
		"rollback: Rolled back on dev", "token: created and revoked", "fleet runners live: e2e-local-0, e2e-local-1, e2e-local-2",
		"fleet: e2e-local created with 2 runners, scaled to 3 and destroyed", "ok"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("browser.mjs did not report %q", want)
		}
	}

	// The page said the fleet is destroyed; the host must agree: the
	// three runner processes the fleet ran are gone, and so are their pid
	// files.
	seen := runners.seen()
	if len(seen) != 3 {
		t.Errorf("the local fleet ran runner processes %v, want 3", seen)
	}
	for _, pid := range seen {
		if localtest.Alive(pid) {
			t.Errorf("runner pid %d still runs after the fleet was destroyed", pid)
		}
	}
	if left := localtest.Pids(fleetsDir); len(left) != 0 {
		t.Errorf("pid files left under the fleets directory after the destroy: %v", left)
	}
}

// runnerWatch records the pids of the local fleet's runners while the
// walk-through runs, so the test can check after the destroy that every
// one of them stopped, not only those whose pid files are left.
type runnerWatch struct {
	mu   sync.Mutex
	pids map[int]bool
}

// watch reads the pid files under dir every 100ms until ctx ends.
func (w *runnerWatch) watch(ctx context.Context, dir string) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		pids := localtest.Pids(dir)
		w.mu.Lock()
		if w.pids == nil {
			w.pids = map[int]bool{}
		}
		for _, pid := range pids {
			w.pids[pid] = true
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// seen is every pid watch read, sorted.
func (w *runnerWatch) seen() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(maps.Keys(w.pids))
}

// kill stops every runner left under dir, by its pid file, and every pid
// watch saw that still runs the runner binary (a pid file can be gone
// while its process is not), so a failed test leaves no process behind.
func (w *runnerWatch) kill(t *testing.T, dir string) {
	t.Helper()
	pids := append(localtest.Pids(dir), w.seen()...)
	slices.Sort(pids)
	for _, pid := range slices.Compact(pids) {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != runnerBin {
			continue // gone, or the pid now belongs to another program
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			t.Logf("killed runner pid %d left by the local fleet", pid)
		}
	}
}

// logRunners logs each local runner's log under dir (proctest.LogOutput).
func logRunners(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "runner.log" {
			b, _ := os.ReadFile(p)
			proctest.LogOutput(t, p, string(b))
		}
		return nil
	})
}

// startRunner registers a `runner agent` process in the dev fleet, on
// brokers, with a bootstrap token minted through the API; it stops with
// the test.
func startRunner(ctx context.Context, t *testing.T, base string, creds map[string]string, brokers []string) {
	t.Helper()
	project := "/api/v1/projects/" + creds["SLUICE_PROJECT_ID"]
	var fleets struct {
		Items []struct{ ID, Name string } `json:"items"`
	}
	apiCall(t, base, creds["SLUICE_TOKEN"], "GET", project+"/fleets", nil, &fleets)
	fleet := ""
	for _, f := range fleets.Items {
		if f.Name == "dev" {
			fleet = f.ID
		}
	}
	if fleet == "" {
		t.Fatalf("controlplane dev made no dev fleet: %+v", fleets)
	}
	var tok struct{ Token string }
	apiCall(t, base, creds["SLUICE_TOKEN"], "POST", project+"/fleets/"+fleet+"/bootstrap-tokens", map[string]any{"uses": 1, "ttl": "10m"}, &tok)
	out := &lockedBuffer{}
	cmd := exec.CommandContext(ctx, runnerBin, "agent", "--control-plane", base, "--data-dir", t.TempDir(), "--name", "e2e-runner",
		"--listen", "127.0.0.1:0", "--state-dir", t.TempDir(), "--brokers", strings.Join(brokers, ","), "--session-timeout", "6s",
		"--commit-interval", "100ms")
	cmd.Env = append(os.Environ(), "SLUICE_BOOTSTRAP_TOKEN="+tok.Token)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			proctest.LogOutput(t, "runner", out.String())
		}
	})
}

// produceClicks sends three clicks the pipeline dead-letters, then about
// 20 clicks a second until ctx ends, a third of them by one user (a hot
// key).
func produceClicks(ctx context.Context, t *testing.T, brokers []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	for i := 0; i < 3; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: "clicks", Key: fmt.Appendf(nil, "bad-%d", i),
			Value: fmt.Appendf(nil, `{"user":"bad-%d","page":"/Broken","ms":%d,"agent":%d}`, i, i, 42+i)}, nil)
	}
	for i := 0; ctx.Err() == nil; i++ {
		user := fmt.Sprintf("user-%d", i%7)
		if i%3 == 0 {
			user = "ada"
		}
		cl.Produce(ctx, &kgo.Record{Topic: "clicks", Key: []byte(user),
			Value: fmt.Appendf(nil, `{"user":%q,"page":"/Pricing/%d","ms":%d,"agent":"firefox"}`, user, i%5, 100+i%900)}, nil)
		time.Sleep(50 * time.Millisecond)
	}
}

// apiCall calls the REST API with token; it fails the test on a status
// >= 300.
func apiCall(t *testing.T, base, token, method, path string, body, into any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
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
