package gitops_test

// The platform both benchmarks run against: a private PostgreSQL
// (internal/pgcluster, fsync off) and `controlplane serve` as a separate
// process on 127.0.0.1, set up through its API with an organisation, a
// project, an owner API token and one fleet whose rollouts are all at
// once with no bake time. Each benchmark run starts its own, so runs of
// -count are independent; TestMain removes the binaries built once per
// test binary.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/pgcluster"
)

const (
	adminEmail    = "admin@bench.local"
	adminPassword = "bench-admin-password"
	benchOrg      = "bench"
	benchProject  = "gitops"
	benchFleet    = "bench"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds cmd/controlplane and cmd/runner once per test binary and
// returns their paths.
func binaries(tb testing.TB) (controlplane, runner string) {
	tb.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "sluice-gitops-bench-bin-"); binErr != nil {
			return
		}
		for _, name := range []string{"controlplane", "runner"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "github.com/sluicehq/sluice/cmd/"+name).CombinedOutput()
			if err != nil {
				binErr = fmt.Errorf("go build ./cmd/%s: %w\n%s", name, err, out)
				return
			}
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return filepath.Join(binDir, "controlplane"), filepath.Join(binDir, "runner")
}

// process is a child process whose output goes to a log file, line by
// line, and optionally to a callback that sees each line with the time it
// was read.
type process struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// startProcess starts bin with args, env added to this process's
// environment; it is stopped when the test or benchmark ends.
func startProcess(tb testing.TB, name, logPath string, env []string, line func(at time.Time, text string), bin string, args ...string) *process {
	tb.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &process{name: name, logPath: logPath, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	// The child never outlives the benchmark, even if it is killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	pw.Close()
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer logFile.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			at := time.Now()
			_, _ = logFile.Write(append(sc.Bytes(), '\n'))
			if line != nil {
				line(at, sc.Text())
			}
		}
		pr.Close()
	}()
	go func() {
		_ = p.cmd.Wait()
		<-read
		close(p.exited)
	}()
	tb.Cleanup(p.stop)
	return p
}

// stop sends SIGTERM and waits for the process to exit, killing it after
// 20 s.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// logTail is the end of the process's log, for failure messages.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Sprintf("%s log (%s):\n%s", p.name, p.logPath, b)
}

// platform is a control plane with its database and the fixture set up
// in it.
type platform struct {
	dir  string
	pg   *pgcluster.Cluster
	cp   *process
	base string // http://127.0.0.1:port
	http *http.Client

	token     string // owner API token of the project
	projectID string
	fleetID   string

	// gc is the control plane's last garbage collection, from its
	// GODEBUG=gctrace=1 output (platformOptions.gcTrace).
	gcMu sync.Mutex
	gc   gcLine
}

// gcLine is what one line of GODEBUG=gctrace=1 says about the heap.
type gcLine struct {
	n int // GCs so far
	// start is the heap when the GC started, live what it marked live
	// and goal the heap goal it ran for (not the next one), in bytes.
	start, live, goal int64
	at                time.Time
}

// gcTraceRE matches a gctrace line's "gc 12 @..." and "4->6->5 MB, 5 MB goal".
var gcTraceRE = regexp.MustCompile(`^gc (\d+) @.* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// lastGC is the control plane's last GC seen so far.
func (p *platform) lastGC() gcLine {
	p.gcMu.Lock()
	defer p.gcMu.Unlock()
	return p.gc
}

// platformOptions shape a platform.
type platformOptions struct {
	// runners is the fleet's expected number of runners.
	runners int
	// gcTrace runs the control plane with GODEBUG=gctrace=1, so that its
	// live heap after each GC can be read from its log (one line per GC).
	gcTrace bool
}

// startPlatform starts PostgreSQL and the control plane and sets up the
// fixture.
func startPlatform(tb testing.TB, o platformOptions) *platform {
	tb.Helper()
	cpBin, _ := binaries(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Not tb.TempDir: PostgreSQL runs as the postgres user when we are
	// root, and must be able to reach dir/pg.
	dir, err := os.MkdirTemp("", "sluice-gitops-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	p := &platform{dir: dir, http: &http.Client{Timeout: 30 * time.Second}}
	pgLog, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pgLog.Close() })
	// Durable: false is fsync=off, synchronous_commit=off, as for the API
	// benchmark: this measures CPU and wake-ups, not the disk.
	p.pg, err = pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg"), Log: pgLog})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.pg.Stop(sctx)
	})
	if err := p.pg.CreateDatabase(ctx, "sluice", ""); err != nil {
		tb.Fatal(err)
	}

	addr := make(chan string, 1)
	env := []string{"DATABASE_URL=" + p.pg.URL("sluice"), "SLUICE_ADMIN_EMAIL=" + adminEmail, "SLUICE_ADMIN_PASSWORD=" + adminPassword}
	if o.gcTrace {
		env = append(env, "GODEBUG=gctrace=1")
	}
	p.cp = startProcess(tb, "controlplane", filepath.Join(dir, "controlplane.log"), env,
		func(at time.Time, line string) {
			// serve prints "controlplane: serving http://<addr>/api/v1"
			// once it listens.
			if u, ok := strings.CutPrefix(line, "controlplane: serving "); ok {
				addr <- strings.TrimSuffix(strings.TrimSpace(u), "/api/v1")
			}
			if m := gcTraceRE.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				start, _ := strconv.ParseInt(m[2], 10, 64)
				live, _ := strconv.ParseInt(m[4], 10, 64)
				goal, _ := strconv.ParseInt(m[5], 10, 64)
				p.gcMu.Lock()
				p.gc = gcLine{n: n, start: start << 20, live: live << 20, goal: goal << 20, at: at}
				p.gcMu.Unlock()
			}
		},
		cpBin, "serve", "--listen", "127.0.0.1:0", "--log-level", "warn")
	select {
	case p.base = <-addr:
	case <-p.cp.exited:
		tb.Fatalf("controlplane serve exited: %v\n%s", p.cp.cmd.ProcessState, p.cp.logTail())
	case <-time.After(time.Minute):
		tb.Fatalf("controlplane serve did not listen within a minute\n%s", p.cp.logTail())
	}
	if err := p.setUp(o.runners); err != nil {
		tb.Fatalf("%v\n%s", err, p.cp.logTail())
	}
	return p
}

// setUp creates the fixture through the API: the administrator logs in
// and creates the organisation, the project and an owner API token; the
// token creates the fleet, all-at-once with a bake time of 0.
func (p *platform) setUp(runners int) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	admin := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	var session struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := call(admin, "POST", p.base+"/api/v1/auth/login", nil,
		map[string]string{"email": adminEmail, "password": adminPassword}, &session, http.StatusOK); err != nil {
		return err
	}
	csrf := map[string]string{"X-CSRF-Token": session.CSRFToken}
	var org, project idBody
	if err := call(admin, "POST", p.base+"/api/v1/orgs", csrf, map[string]string{"name": benchOrg}, &org, http.StatusCreated); err != nil {
		return err
	}
	if err := call(admin, "POST", p.base+"/api/v1/projects", csrf,
		map[string]string{"org_id": org.ID, "name": benchProject}, &project, http.StatusCreated); err != nil {
		return err
	}
	p.projectID = project.ID
	var token struct {
		Secret string `json:"secret"`
	}
	if err := call(admin, "POST", p.projectURL("/tokens"), csrf,
		map[string]string{"name": "bench", "role": "owner"}, &token, http.StatusCreated); err != nil {
		return err
	}
	p.token = token.Secret
	var fleet idBody
	if err := p.api("POST", "/fleets", map[string]any{"name": benchFleet, "module": "local", "runners": runners,
		"rollout": map[string]any{"strategy": "all-at-once", "bake_seconds": 0}}, &fleet, http.StatusCreated); err != nil {
		return err
	}
	p.fleetID = fleet.ID
	return nil
}

func (p *platform) projectURL(path string) string {
	return p.base + "/api/v1/projects/" + p.projectID + path
}

// api calls the project's API with the owner token.
func (p *platform) api(method, path string, body, out any, want int) error {
	return call(p.http, method, p.projectURL(path), map[string]string{"Authorization": "Bearer " + p.token}, body, out, want)
}

// bootstrapToken mints a bootstrap token of the fleet for uses runners.
func (p *platform) bootstrapToken(tb testing.TB, uses int) string {
	tb.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	if err := p.api("POST", "/fleets/"+p.fleetID+"/bootstrap-tokens", map[string]any{"uses": uses, "ttl": "1h"}, &tok, http.StatusCreated); err != nil {
		tb.Fatal(err)
	}
	return tok.Token
}

// gitURL is the project repository's URL with the API token as password.
func (p *platform) gitURL() string {
	return "http://git:" + p.token + "@" + strings.TrimPrefix(p.base, "http://") + "/git/" + benchOrg + "/" + benchProject + ".git"
}

// postmaster is the PostgreSQL server's pid.
func (p *platform) postmaster() int {
	b, err := os.ReadFile(filepath.Join(p.dir, "pg", "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

type idBody struct {
	ID string `json:"id"`
}

// call sends a JSON request and decodes a JSON answer into out (when not
// nil), failing on any status but want.
func call(client *http.Client, method, url string, hdr map[string]string, body, out any, want int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s, want %d: %s", method, url, resp.Status, want, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// percentile is the nearest-rank percentile q (0 < q <= 1) of ds: with 20
// samples, p50 is the 10th smallest and p99 the largest.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(float64(len(s))*q)) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
