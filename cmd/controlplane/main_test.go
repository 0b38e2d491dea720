package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
	"github.com/sluicehq/sluice/migrations"
)

// binary is the controlplane binary, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-controlplane-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "controlplane")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a controlplane process with its output collected.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout strings.Builder
	stderr strings.Builder
	done   chan struct{}
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	out, _ := p.cmd.StdoutPipe()
	errp, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(errp)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() { wg.Wait(); _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s stdout:\n%s\nstderr:\n%s", args[0], p.out(), p.errs())
		}
	})
	return p
}

func (p *proc) out() string  { p.mu.Lock(); defer p.mu.Unlock(); return p.stdout.String() }
func (p *proc) errs() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

// waitFor returns the first submatch of re (multi-line) in stdout, once
// it is there.
func (p *proc) waitFor(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.out()); m != nil {
			return m[1]
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.out()); m != nil {
				return m[1]
			}
			t.Fatalf("process exited before printing %s", re)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 90s", re)
		}
	}
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop within 30s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

var servingRE = regexp.MustCompile(`serving (http://\S+)/api/v1`)

// call makes one JSON request and decodes the answer.
func call(t *testing.T, hc *http.Client, method, url, token, csrf string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// Two control planes started together on one empty database: migrations
// run once, one first administrator exists, and either process serves
// every request (sessions and tokens live in the database).
func TestTwoProcessesOneDatabase(t *testing.T) {
	url := pgtest.NewEmptyDatabase(t)
	env := []string{"DATABASE_URL=" + url, "SLUICE_ADMIN_EMAIL=ops@example.com", "SLUICE_ADMIN_PASSWORD=two-process-password"}
	a := start(t, env, "serve", "--listen", "127.0.0.1:0")
	b := start(t, env, "serve", "--listen", "127.0.0.1:0", "--log-format", "json")
	urlA, urlB := a.waitFor(t, servingRE), b.waitFor(t, servingRE)

	files, _ := migrations.FS.ReadDir(".")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, users int
	_ = conn.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&rows)
	_ = conn.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&users)
	if rows != len(files) || users != 1 {
		t.Errorf("schema_migrations %d rows (want %d), users %d (want 1)", rows, len(files), users)
	}

	// Log in on A, act on B with the same session.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	status, login := call(t, hc, "POST", urlA+"/api/v1/auth/login", "", "", map[string]any{"email": "ops@example.com", "password": "two-process-password"})
	if status != 200 {
		t.Fatalf("login on A: %d %v", status, login)
	}
	csrf := login["csrf_token"].(string)
	// The cookie is for 127.0.0.1 whatever the port, so B sees it too.
	status, org := call(t, hc, "POST", urlB+"/api/v1/orgs", "", csrf, map[string]any{"name": "shared"})
	if status != 201 {
		t.Fatalf("create org on B with A's session: %d %v", status, org)
	}
	status, proj := call(t, hc, "POST", urlA+"/api/v1/projects", "", csrf, map[string]any{"org_id": org["id"], "name": "both"})
	if status != 201 {
		t.Fatalf("create project on A: %d %v", status, proj)
	}
	status, tok := call(t, hc, "POST", urlB+"/api/v1/projects/"+proj["id"].(string)+"/tokens", "", csrf, map[string]any{"name": "ci", "role": "viewer"})
	if status != 201 {
		t.Fatalf("create token on B: %d %v", status, tok)
	}
	for _, u := range []string{urlA, urlB} {
		status, list := call(t, &http.Client{}, "GET", u+"/api/v1/projects", tok["secret"].(string), "", nil)
		items, _ := list["items"].([]any)
		if status != 200 || len(items) != 1 || items[0].(map[string]any)["name"] != "both" {
			t.Errorf("%s: projects with the token: %d %v", u, status, list)
		}
	}
	// Neither process logged a secret.
	for _, s := range []string{"two-process-password", tok["secret"].(string), csrf} {
		if strings.Contains(a.errs()+a.out()+b.errs()+b.out(), s) {
			t.Errorf("a secret appears in the control planes' output")
		}
	}
	a.stop(t)
	b.stop(t)
	// After exit, all their output has been read.
	applied := strings.Count(a.errs(), "applied migration") + strings.Count(b.errs(), "applied migration")
	if applied != len(files) {
		t.Errorf("migrations applied %d times in all, want %d (once each)", applied, len(files))
	}
}

var (
	urlRE      = regexp.MustCompile(`(?m)^\s+URL:\s+(\S+)`)
	tokenRE    = regexp.MustCompile(`(?m)^\s+API token:\s+(slc_\S+)`)
	loginRE    = regexp.MustCompile(`(?m)^\s+Login:\s+(\S+ / \S+)`)
	relaunchRE = regexp.MustCompile(`(?m)^\s+Login:\s+\S+; first-run credentials are in (\S+)`)
)

// What `make dev` runs, on a fresh machine: a private PostgreSQL, a first
// administrator, and a token that lists projects with curl. A restart
// reuses the cluster and its data.
func TestDevFirstRunAndRestart(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is needed for this test (make setup installs it): %v", err)
	}
	// PostgreSQL runs as the postgres user when we are root, so the data
	// directory's parents must be searchable by others.
	dir, err := os.MkdirTemp("", "sluice-dev-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	env := []string{"DATABASE_URL="}
	// The runner has its own test (e2e's quick start); this one is about
	// the control plane's first run and restart.
	args := []string{"dev", "--data-dir", filepath.Join(dir, ".sluice"), "--listen", "127.0.0.1:0", "--no-runner"}

	p := start(t, env, args...)
	base := p.waitFor(t, urlRE)
	token := p.waitFor(t, tokenRE)
	creds := strings.SplitN(p.waitFor(t, loginRE), " / ", 2)

	out, err := exec.Command(curl, "-sS", "--fail-with-body", "-H", "Authorization: Bearer "+token, base+"/api/v1/projects").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"name":"playground"`) {
		t.Fatalf("curl with the token: %v: %s", err, out)
	}
	status, login := call(t, &http.Client{}, "POST", base+"/api/v1/auth/login", "", "", map[string]any{"email": creds[0], "password": creds[1]})
	if status != 200 {
		t.Fatalf("login with the printed credentials: %d %v", status, login)
	}
	st, err := os.Stat(filepath.Join(dir, ".sluice", credentialsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v mode %v", err, st)
	}
	if strings.Contains(p.errs(), token) || strings.Contains(p.errs(), creds[1]) {
		t.Error("the dev secrets appear in the logs (they belong on stdout, once)")
	}
	p.stop(t)
	if !strings.Contains(p.out(), "PostgreSQL stopped") {
		t.Error("PostgreSQL was not stopped on exit")
	}

	// Second run: same cluster, no new administrator, the token still works.
	p2 := start(t, env, args...)
	base = p2.waitFor(t, urlRE)
	if f := p2.waitFor(t, relaunchRE); !strings.HasSuffix(f, credentialsFile) {
		t.Errorf("restart points to %q for credentials", f)
	}
	out, err = exec.Command(curl, "-sS", "--fail-with-body", "-H", "Authorization: Bearer "+token, base+"/api/v1/projects").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"name":"playground"`) {
		t.Fatalf("curl after restart: %v: %s", err, out)
	}
	p2.stop(t)
}

func TestParseArgs(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, err := parseArgs([]string{"serve"}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("serve without a database: %v", err)
	}
	cfg, err := parseArgs([]string{"serve", "--listen", ":9"}, env(map[string]string{"DATABASE_URL": "postgres://x", "SLUICE_LISTEN": ":8"}), io.Discard)
	if err != nil || cfg.listen != ":9" || cfg.databaseURL != "postgres://x" {
		t.Errorf("flag over env: %+v %v", cfg, err)
	}
	cfg, err = parseArgs([]string{"dev"}, env(map[string]string{"SLUICE_LISTEN": ":8", "SLUICE_SESSION_TTL": "1h"}), io.Discard)
	if err != nil || cfg.listen != ":8" || cfg.sessionTTL != time.Hour || cfg.dataDir != ".sluice" {
		t.Errorf("dev from env: %+v %v", cfg, err)
	}
	// The GC target: 50 by default, a flag or SLUICE_GC_PERCENT changes it,
	// and GOGC, which the runtime has applied already, wins.
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want int
	}{
		{[]string{"dev"}, nil, 50},
		{[]string{"dev", "--gc-percent", "80"}, nil, 80},
		{[]string{"dev"}, map[string]string{"SLUICE_GC_PERCENT": "120"}, 120},
		{[]string{"dev", "--gc-percent", "80"}, map[string]string{"GOGC": "200"}, 0},
	} {
		if cfg, err := parseArgs(tc.args, env(tc.env), io.Discard); err != nil || cfg.gcPercent != tc.want {
			t.Errorf("parseArgs(%q) with %v: gcPercent %d (%v), want %d", tc.args, tc.env, cfg.gcPercent, err, tc.want)
		}
	}
	for _, bad := range [][]string{{"serve", "--public-url", "ftp://x"}, {"dev", "--log-format", "xml"}, {"dev", "extra"}, {"launch"}, {}, {"dev", "--gc-percent", "0"}} {
		if _, err := parseArgs(bad, env(map[string]string{"DATABASE_URL": "postgres://x"}), io.Discard); err == nil {
			t.Errorf("parseArgs(%q) accepted", bad)
		}
	}
}
