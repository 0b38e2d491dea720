package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/rollout"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/apiclient"
	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// plane is a real control plane (the API over a fresh PostgreSQL database,
// served over HTTP) with what `make dev` seeds: a project and an owner API
// token, plus a fleet "edge", a pipeline "orders" with one revision, and a
// deployment of it, which started a rollout.
type plane struct {
	t        *testing.T
	url      string
	pool     *pgxpool.Pool
	project  string
	token    string
	fleet    string
	pipeline string
	// rollout is the one the deployment started; nothing reconciles it
	// unless the test calls pass, so it stays active.
	rollout string
}

const ordersPipeline = `apiVersion: sluice/v1
kind: Pipeline
metadata:
  name: orders
spec:
  source:
    topic: orders
  steps:
    - filter: amount > 10
  sink:
    topic: big-orders
`

func newPlane(t *testing.T) *plane {
	t.Helper()
	ctx := context.Background()
	pool, err := database.Open(ctx, pgtest.NewDatabase(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	srv, err := api.New(api.Config{Pool: pool, Registry: all.New(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	b, err := api.RunBootstrap(ctx, pool, api.Bootstrap{AdminEmail: "admin@example.com", AdminPassword: "admin-password-123",
		Org: "default", Project: "playground", Token: true})
	if err != nil {
		t.Fatal(err)
	}
	p := &plane{t: t, url: ts.URL, pool: pool, project: b.ProjectID.String(), token: b.TokenSecret}
	base := "/api/v1/projects/" + p.project
	p.fleet = p.call("POST", base+"/fleets", map[string]any{"name": "edge", "module": "local"}, 201)["id"].(string)
	p.pipeline = p.call("POST", base+"/pipelines", map[string]any{"name": "orders"}, 201)["id"].(string)
	p.call("POST", base+"/pipelines/"+p.pipeline+"/revisions", map[string]any{"source": ordersPipeline}, 201)
	p.call("POST", base+"/deployments", map[string]any{"fleet_id": p.fleet, "pipeline_id": p.pipeline}, 201)
	items := p.call("GET", base+"/rollouts", nil, 200)["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("the deployment started %d rollouts, want 1", len(items))
	}
	p.rollout = items[0].(map[string]any)["id"].(string)
	return p
}

// call sends a request with the owner token and returns the JSON object
// it answers.
func (p *plane) call(method, path string, body any, want int) map[string]any {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+p.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		p.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// succeed drives the rollout to Succeeded the way the control plane's
// reconciler does. The fleet has no runners, so only the bake time stands
// in the way; it is set to zero directly in the database because the API
// does not expose it, and waiting the default 30s would slow the tests.
func (p *plane) succeed() {
	p.t.Helper()
	ctx := context.Background()
	if _, err := p.pool.Exec(ctx, "UPDATE fleets SET bake_seconds = 0 WHERE id = $1", p.fleet); err != nil {
		p.t.Fatal(err)
	}
	rec, err := rollout.New(p.pool)
	if err != nil {
		p.t.Fatal(err)
	}
	for range 3 {
		if err := rec.Pass(ctx); err != nil {
			p.t.Fatal(err)
		}
	}
	if got := p.call("GET", "/api/v1/projects/"+p.project+"/rollouts/"+p.rollout, nil, 200)["phase"]; got != "Succeeded" {
		p.t.Fatalf("rollout phase %v after three passes, want Succeeded", got)
	}
}

// addRunner registers a runner in the fleet as a runner agent would (a
// bootstrap token from the API, then the agent store) and posts a status
// report with counts, so status has something to show.
func (p *plane) addRunner(name string, rep agentproto.StatusReport) {
	p.t.Helper()
	ctx := context.Background()
	tok := p.call("POST", "/api/v1/projects/"+p.project+"/fleets/"+p.fleet+"/bootstrap-tokens", map[string]any{}, 201)["token"].(string)
	st := deploy.New(p.pool, all.New())
	reg, err := st.Register(ctx, tok, agentproto.RegisterRequest{Name: name, Version: rep.Version})
	if err != nil {
		p.t.Fatal(err)
	}
	r, err := st.Authenticate(ctx, reg.Credential)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := st.Report(ctx, r, rep); err != nil {
		p.t.Fatal(err)
	}
}

// syncBuffer is an output that a running command writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cli runs the command in-process with an environment and stdin.
type cli struct {
	t     *testing.T
	env   map[string]string
	stdin string
}

// newCLI is the command as a user with no settings yet: its config file
// is in a temporary directory, and no SLUICE_ variables are set.
func newCLI(t *testing.T) *cli {
	return &cli{t: t, env: map[string]string{"SLUICE_CONFIG": filepath.Join(t.TempDir(), "sluice", "config.json")}}
}

// loggedIn is the command with the plane's token in the environment, as
// after `set -a; . .sluice/credentials; set +a` (plus SLUICE_URL).
func (p *plane) cli() *cli {
	c := newCLI(p.t)
	c.env["SLUICE_URL"] = p.url
	c.env["SLUICE_TOKEN"] = p.token
	c.env["SLUICE_PROJECT_ID"] = p.project
	return c
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errs syncBuffer
	code := execute(ctx, args, c.deps(&out, &errs))
	return result{code: code, stdout: out.String(), stderr: errs.String()}
}

func (c *cli) deps(out, errs io.Writer) deps {
	return deps{
		stdin: strings.NewReader(c.stdin), stdout: out, stderr: errs,
		getenv: func(k string) string { return c.env[k] },
		http:   &http.Client{},
		now:    time.Now,
	}
}

func (r result) want(t *testing.T, code int, stdout ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s\nstderr:\n%s", s, r.stdout, r.stderr)
		}
	}
}

func (r result) wantErr(t *testing.T, code int, stderr ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

// Login verifies the token, saves URL, token and project where only the
// user can read them, and status then works from that file alone.
func TestLoginThenStatus(t *testing.T) {
	p := newPlane(t)
	p.addRunner("runner-1", agentproto.StatusReport{Generation: 3, Version: "v1.2.3", Pipelines: []agentproto.PipelineStatus{
		{Name: "orders", State: "running", Processed: 1234, DeadLetter: 5},
	}})
	c := newCLI(t)
	c.stdin = p.token + "\n"
	c.run("login", "--url", p.url+"/", "--token-stdin").want(t, 0, "Logged in to "+p.url, `owner of project "playground"`)

	path := c.env["SLUICE_CONFIG"]
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config file mode %v, want 0600: it holds the token", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	var saved settings
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	if saved != (settings{URL: p.url, Token: p.token, ProjectID: p.project}) {
		t.Errorf("saved %+v", saved)
	}

	c.stdin = ""
	r := c.run("status")
	r.want(t, 0, "Project playground (owner)", "PIPELINES", "orders", "r1", "edge", "Progressing",
		"ROLLOUTS", p.rollout, "(api)", "RUNNERS", "runner-1", "v1.2.3", "running", "1234")
	if !strings.Contains(r.stdout, "yes") {
		t.Errorf("the runner that just reported is not shown live:\n%s", r.stdout)
	}

	// -o json is for scripts: the same facts, decodable.
	r = c.run("status", "-o", "json")
	r.want(t, 0)
	var st statusReport
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.stdout)
	}
	if len(st.Pipelines) != 1 || st.Pipelines[0].Name != "orders" || st.Pipelines[0].LatestRevision != 1 ||
		len(st.Pipelines[0].Deployments) != 1 || st.Pipelines[0].Deployments[0].Fleet != "edge" {
		t.Errorf("pipelines: %+v", st.Pipelines)
	}
	if len(st.Active) != 1 || st.Active[0].ID != p.rollout || len(st.Recent) != 0 {
		t.Errorf("rollouts: active %+v recent %+v", st.Active, st.Recent)
	}
	if len(st.Runners) != 1 || st.Runners[0].Fleet != "edge" || !st.Runners[0].Live ||
		st.Runners[0].Report.Pipelines[0].Processed != 1234 || st.Runners[0].Report.Pipelines[0].DeadLetter != 5 {
		t.Errorf("runners: %+v", st.Runners)
	}
}

// The environment overrides the file field by field, so the credentials
// `make dev` writes work without a login, and a token in the environment
// beats a stale one on disk.
func TestEnvironmentOverridesConfig(t *testing.T) {
	p := newPlane(t)
	c := p.cli()
	if err := writeSettings(c.env["SLUICE_CONFIG"], settings{URL: "http://127.0.0.1:1", Token: "slc_stale", ProjectID: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	c.run("rollout", "list").want(t, 0, p.rollout, "edge")
}

// A finished rollout's events are printed, and the exit code says how it
// ended, so `sluice rollout watch` can gate a CI job.
func TestWatchFinishedRollout(t *testing.T) {
	t.Run("succeeded", func(t *testing.T) {
		p := newPlane(t)
		p.succeed()
		r := p.cli().run("rollout", "watch") // the newest
		r.want(t, 0, "Rollout "+p.rollout+": an API change to fleet edge", "rollout done", "Succeeded (Synced)")
		// Each event line starts with its time.
		var events int
		for _, l := range strings.Split(r.stdout, "\n") {
			if len(l) > 21 && l[4] == '-' && l[13] == ':' {
				if _, err := time.Parse("2006-01-02 15:04:05", l[:19]); err == nil {
					events++
				}
			}
		}
		if events < 2 {
			t.Errorf("%d timestamped event lines, want at least 2:\n%s", events, r.stdout)
		}
	})
	t.Run("rolled back", func(t *testing.T) {
		p := newPlane(t)
		p.call("POST", "/api/v1/projects/"+p.project+"/rollouts/"+p.rollout+"/rollback", map[string]any{"reason": "dlq spike"}, 200)
		p.cli().run("rollout", "watch", p.rollout).want(t, 1, "rollback requested: dlq spike", "RolledBack (Degraded): dlq spike")
	})
}

// Watch follows a rollout that is still going: events that happen while it
// streams are printed, and it ends when the rollout does.
// Each event must arrive while the rollout still runs, so the stream is
// flushed as it goes.
func TestWatchFollowsActiveRollout(t *testing.T) {
	p := newPlane(t)
	c := p.cli()
	var out, errs syncBuffer
	done := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { done <- execute(ctx, []string{"rollout", "watch", p.rollout[:30]}, c.deps(&out, &errs)) }()
	waitFor(t, &out, "Rollout "+p.rollout)
	c.run("rollout", "pause", p.rollout).want(t, 0, "Paused rollout "+p.rollout)
	waitFor(t, &out, "paused by")
	c.run("rollout", "rollback", p.rollout, "--reason", "canary looks bad").want(t, 0,
		"Rolled back rollout "+p.rollout+" on fleet edge: RolledBack (Degraded)", "Reason: canary looks bad")
	select {
	case code := <-done:
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s%s", code, out.String(), errs.String())
		}
	case <-ctx.Done():
		t.Fatalf("watch did not end with the rollout:\n%s", out.String())
	}
	for _, s := range []string{"paused by", "rollback requested: canary looks bad", "RolledBack (Degraded): canary looks bad"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("watch output lacks %q:\n%s", s, out.String())
		}
	}
}

func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", s, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Rollback, pause and resume act on the rollout and print the result; what
// the API refuses comes back as its problem detail.
func TestRolloutActions(t *testing.T) {
	p := newPlane(t)
	c := p.cli()
	c.run("rollout", "pause", p.rollout).want(t, 0, "Paused rollout", "sluice rollout resume "+p.rollout)
	c.run("rollout", "list").want(t, 0, "(paused)")
	c.run("rollout", "resume", p.rollout).want(t, 0, "Resumed rollout "+p.rollout+" on fleet edge")
	r := c.run("rollout", "rollback", p.rollout, "-o", "json")
	r.want(t, 0)
	var ro map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &ro); err != nil || ro["phase"] != "RolledBack" {
		t.Errorf("rollback -o json: %v %s", err, r.stdout)
	}
	c.run("rollout", "rollback", p.rollout).wantErr(t, 1, "this rollout has nothing to roll back: it is RolledBack (409)")
	c.run("rollout", "pause", p.rollout).wantErr(t, 1, "the rollout has finished (RolledBack) (409)")
}

// Errors are written for people: what happened and what to do.
func TestErrors(t *testing.T) {
	p := newPlane(t)
	// An address nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()

	cases := []struct {
		name   string
		env    map[string]string
		stdin  string
		args   []string
		code   int
		stderr []string
	}{
		{name: "bad token", env: map[string]string{"SLUICE_TOKEN": "slc_not-a-real-token"},
			args: []string{"status"}, code: 1, stderr: []string{"(401)", "run `sluice login`"}},
		{name: "login with a bad token", stdin: "slc_not-a-real-token\n",
			args: []string{"login", "--url", p.url, "--token-stdin"}, code: 1, stderr: []string{"refused the token"}},
		{name: "login without a token", args: []string{"login", "--url", p.url, "--token-stdin"}, code: 1, stderr: []string{"no API token given"}},
		{name: "unreachable", env: map[string]string{"SLUICE_URL": dead},
			args: []string{"status"}, code: 1, stderr: []string{"cannot reach the control plane at " + dead + ": is `make dev` running?"}},
		{name: "login unreachable", stdin: p.token, args: []string{"login", "--url", dead, "--token-stdin"},
			code: 1, stderr: []string{"is `make dev` running?"}},
		{name: "unknown rollout", args: []string{"rollout", "watch", uuid.NewString()}, code: 1, stderr: []string{"rollout not found (404)"}},
		{name: "unknown prefix", args: []string{"rollout", "pause", "ffff"}, code: 1, stderr: []string{`no rollout of the project has an ID starting with "ffff"`}},
		{name: "not logged in", env: map[string]string{"SLUICE_TOKEN": ""}, args: []string{"status"}, code: 1, stderr: []string{"not logged in: run `sluice login`"}},
		{name: "bad URL", env: map[string]string{"SLUICE_URL": "127.0.0.1:8080"}, args: []string{"status"}, code: 1, stderr: []string{"not a control plane URL"}},
		{name: "invalid field", args: []string{"rollout", "rollback", p.rollout, "--reason", strings.Repeat("x", 2001)},
			code: 1, stderr: []string{"sluice: reason: too long: at most 2000 bytes (422)\n"}},
		{name: "usage", args: []string{"rollout", "rollback"}, code: 2, stderr: []string{"needs one rollout ID"}},
		{name: "unknown command", args: []string{"deploy"}, code: 2, stderr: []string{`unknown command "deploy"`}},
		{name: "bad output", args: []string{"status", "-o", "yaml"}, code: 2, stderr: []string{"want table or json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := p.cli()
			for k, v := range tc.env {
				c.env[k] = v
			}
			c.stdin = tc.stdin
			c.run(tc.args...).wantErr(t, tc.code, tc.stderr...)
		})
	}
}

func TestParseArgs(t *testing.T) {
	cases := []struct {
		args []string
		want config
		err  string
	}{
		{args: []string{"status"}, want: config{command: "status", output: "table"}},
		{args: []string{"status", "-o", "json"}, want: config{command: "status", output: "json"}},
		{args: []string{"rollout", "watch"}, want: config{command: "rollout watch"}},
		{args: []string{"rollout", "watch", "0199"}, want: config{command: "rollout watch", rolloutID: "0199"}},
		// Flags after the ID, as people type them.
		{args: []string{"rollout", "rollback", "0199", "--reason", "bad canary"},
			want: config{command: "rollout rollback", rolloutID: "0199", reason: "bad canary", output: "table"}},
		{args: []string{"rollout", "rollback", "--reason=x", "0199"},
			want: config{command: "rollout rollback", rolloutID: "0199", reason: "x", output: "table"}},
		{args: []string{"rollout", "list", "--limit", "0"}, want: config{command: "rollout list", output: "table"}},
		{args: []string{"login", "--token-stdin"}, want: config{command: "login", tokenStdin: true}},
		{args: []string{"rollout", "pause", "a", "b"}, err: "needs one rollout ID"},
		{args: []string{"rollout"}, err: "needs a subcommand"},
		{args: []string{"rollout", "undo"}, err: `unknown command "rollout undo"`},
		{args: []string{"status", "extra"}, err: "takes no arguments"},
		{args: []string{"rollout", "list", "--limit", "-1"}, err: "--limit"},
		{args: []string{"status", "--nope"}, err: "flag provided but not defined"},
	}
	for _, tc := range cases {
		got, err := parseArgs(tc.args, io.Discard)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.args, got, tc.want)
		}
	}
}

// On a terminal, login prompts for the URL and the token and turns echo
// off while the token is typed, and on again after.
func TestLoginPrompts(t *testing.T) {
	p := newPlane(t)
	c := newCLI(t)
	c.stdin = p.url + "\n" + p.token + "\n"
	var out, errs syncBuffer
	d := c.deps(&out, &errs)
	d.terminal = true
	var echo []bool
	d.setEcho = func(on bool) error { echo = append(echo, on); return nil }
	if code := execute(context.Background(), []string{"login"}, d); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errs.String())
	}
	if want := []bool{false, true}; !slices.Equal(echo, want) {
		t.Errorf("echo set to %v, want %v", echo, want)
	}
	for _, s := range []string{"Control plane URL [" + defaultURL + "]: ", "API token: "} {
		if !strings.Contains(errs.String(), s) {
			t.Errorf("no prompt %q in %q", s, errs.String())
		}
	}
	if strings.Contains(out.String()+errs.String(), p.token) {
		t.Error("the token was printed")
	}
	// Without stty, the prompt warns that the token shows.
	c.stdin = "\n" + p.token + "\n"
	d = c.deps(&out, &errs)
	d.terminal = true
	d.setEcho = func(bool) error { return errors.New("no stty") }
	if code := execute(context.Background(), []string{"login"}, d); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errs.String())
	}
	if !strings.Contains(errs.String(), "it will be visible as you type") {
		t.Errorf("no warning that the token echoes: %q", errs.String())
	}
}

// A stream that breaks before the rollout ends is reconnected, and the
// events the server replays are not printed twice. The break is made by a
// proxy in front of the real control plane that cuts the first stream
// after one event.
func TestWatchReconnects(t *testing.T) {
	p := newPlane(t)
	p.call("POST", "/api/v1/projects/"+p.project+"/rollouts/"+p.rollout+"/rollback", map[string]any{"reason": "test"}, 200)
	events := p.call("GET", "/api/v1/projects/"+p.project+"/rollouts/"+p.rollout+"/events", nil, 200)["items"].([]any)
	if len(events) < 2 {
		t.Fatalf("want at least two events to tell a replay, got %v", events)
	}
	first, _ := json.Marshal(events[0])
	target, _ := url.Parse(p.url)
	real := httputil.NewSingleHostReverseProxy(target)
	var cut atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") && cut.CompareAndSwap(false, true) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "id: 1\ndata: %s\n\n", first)
			return // the stream ends without "event: end"
		}
		real.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	c := p.cli()
	c.env["SLUICE_URL"] = proxy.URL
	r := c.run("rollout", "watch", p.rollout)
	r.want(t, 1, "RolledBack (Degraded): test")
	if !strings.Contains(r.stderr, "reconnecting") {
		t.Errorf("stderr does not say it reconnected: %q", r.stderr)
	}
	msg := events[0].(map[string]any)["message"].(string)
	if n := strings.Count(r.stdout, msg); n != 1 {
		t.Errorf("the first event is printed %d times, want once:\n%s", n, r.stdout)
	}
	for _, e := range events[1:] {
		if m := e.(map[string]any)["message"].(string); !strings.Contains(r.stdout, m) {
			t.Errorf("event %q missing after the reconnect:\n%s", m, r.stdout)
		}
	}
}

// Field errors are listed under the detail, with a line and column for
// pipeline sources; a single one the detail already states is not
// repeated.
func TestExplain(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{&apiclient.Error{Status: 422, Title: "Unprocessable Entity", Detail: "the request has invalid fields",
			Errors: []apiclient.FieldError{{Field: "name", Detail: "required"}, {Field: "source", Detail: "unknown step", Line: 7, Column: 5}}},
			"the request has invalid fields (422)\n  name: required\n  source: unknown step (line 7, column 5)"},
		{&apiclient.Error{Status: 422, Detail: "reason: too long", Errors: []apiclient.FieldError{{Field: "reason", Detail: "too long"}}},
			"reason: too long (422)"},
		{&apiclient.Error{Status: 500, Title: "Internal Server Error", Detail: "an internal error occurred", RequestID: "req-1"},
			"an internal error occurred (500)\n  request id req-1 (quote it when reporting the problem)"},
		{&apiclient.Error{Status: 403, Detail: "needs the developer role"},
			"needs the developer role (403)\n  the API token's role does not allow this; ask a project owner for a token with a stronger role"},
		{&apiclient.Error{Status: 502}, "Bad Gateway (502)"},
		{fmt.Errorf("listing: %w", &apiclient.Error{Status: 401, Detail: "this API token was revoked"}),
			"this API token was revoked (401)\n  run `sluice login` to log in again (or set SLUICE_TOKEN)"},
	}
	for _, tc := range cases {
		if got := explain(tc.err); got != tc.want {
			t.Errorf("explain(%v):\n%s\nwant:\n%s", tc.err, got, tc.want)
		}
	}
}
