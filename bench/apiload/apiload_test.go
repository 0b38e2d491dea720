package apiload_test

// The control plane's load benchmark (target: mixed 80% reads / 20% writes
// at 500 requests/s on 2 cores, p99 < 25 ms, no errors; and the maximum
// sustainable rate). docs/performance.md ("Control plane API") says how it
// is measured and what it measured.
//
// The first benchmark to run builds cmd/controlplane, starts a private
// PostgreSQL (pgcluster, fsync off) and `controlplane serve` on 127.0.0.1
// as a separate process, and sets up an organisation, a project, an owner
// API token, fleets and pipelines through the API; TestMain stops them.
// This process is the load generator.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/apiload"
	"github.com/sluicehq/sluice/internal/pgcluster"
)

const (
	// targetRate is the rate of the target, in requests/s; targetRun is
	// measured after targetWarmup.
	targetRate   = 500
	targetWarmup = 3 * time.Second
	targetRun    = 20 * time.Second
	// p99Limit is the target's p99; a step of the maximum-rate search
	// passes when its p99 is below it and it had no error.
	p99Limit = 25 * time.Millisecond
	// stepWarmup and stepRun are the length of each step of the search.
	stepWarmup = 2 * time.Second
	stepRun    = 6 * time.Second

	// Fixture sizes: what the reads read and the writes change.
	seedFleets    = 10
	seedPipelines = 20

	adminEmail    = "admin@bench.local"
	adminPassword = "bench-admin-password"
)

// stepRates are the rates (requests/s) the maximum-rate search tries, in
// order, until one fails.
var stepRates = []float64{500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000}

func TestMain(m *testing.M) {
	code := m.Run()
	if cp != nil {
		cp.stop()
	}
	os.Exit(code)
}

// controlPlane is the server under load and the fixture set up in it.
type controlPlane struct {
	dir     string
	pg      *pgcluster.Cluster
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	api     string // http://127.0.0.1:port/api/v1

	token     string // owner API token of project
	project   string
	fleets    []string
	pipelines []string // ids; pipelineNames[i] is pipelines[i]'s name
	names     []string
}

var (
	cpOnce sync.Once
	cp     *controlPlane
	cpErr  error
	// runSeq makes the names that POST requests create unique across runs.
	runSeq atomic.Int64
)

// server returns the running control plane, starting it on first use.
func server(b *testing.B) *controlPlane {
	b.Helper()
	cpOnce.Do(func() {
		cp = &controlPlane{}
		cpErr = cp.start()
		if cpErr == nil {
			cpErr = cp.setUp()
		}
		if cpErr != nil {
			cpErr = fmt.Errorf("%w\nserver log (%s):\n%s", cpErr, cp.logPath, cp.logTail())
		}
	})
	if cpErr != nil {
		b.Fatal(cpErr)
	}
	return cp
}

// start builds the controlplane binary, starts PostgreSQL and the server.
func (c *controlPlane) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "sluice-apiload-")
	if err != nil {
		return err
	}
	c.dir = dir
	// PostgreSQL runs as the postgres user when we are root: it must be
	// able to reach dir/pg.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(dir, "controlplane")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/sluicehq/sluice/cmd/controlplane")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/controlplane: %w\n%s", err, out)
	}

	pgLog, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return err
	}
	// Durable: false is fsync=off, synchronous_commit=off: commits do not
	// wait for the disk (see docs/performance.md).
	c.pg, err = pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg"), Log: pgLog})
	if err != nil {
		return err
	}
	if err := c.pg.CreateDatabase(ctx, "sluice", ""); err != nil {
		return err
	}

	c.logPath = filepath.Join(dir, "controlplane.log")
	logFile, err := os.Create(c.logPath)
	if err != nil {
		return err
	}
	c.cmd = exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--log-level", "warn")
	c.cmd.Env = append(os.Environ(),
		"DATABASE_URL="+c.pg.URL("sluice"),
		"SLUICE_ADMIN_EMAIL="+adminEmail,
		"SLUICE_ADMIN_PASSWORD="+adminPassword)
	c.cmd.Stderr = logFile
	// The server never outlives the benchmark.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := c.cmd.Start(); err != nil {
		return err
	}
	c.exited = make(chan struct{})
	go func() { _ = c.cmd.Wait(); logFile.Close(); close(c.exited) }()

	// serve prints "controlplane: serving http://<addr>/api/v1" once it
	// listens.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "controlplane: serving "); ok {
				addr <- strings.TrimSpace(u)
			}
		}
	}()
	select {
	case c.api = <-addr:
		return nil
	case <-c.exited:
		return fmt.Errorf("controlplane serve exited: %v", c.cmd.ProcessState)
	case <-time.After(time.Minute):
		return fmt.Errorf("controlplane serve did not listen within a minute")
	}
}

func (c *controlPlane) stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	if c.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = c.pg.Stop(ctx)
		cancel()
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

func (c *controlPlane) logTail() string {
	if c.logPath == "" {
		return ""
	}
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// call sends a JSON request and decodes a JSON response into out (when
// not nil), failing on any status but want.
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

type idBody struct {
	ID string `json:"id"`
}

// pipelineYAML is a small pipeline that compiles (the create-revision
// writes compile it on every request), shaped like examples/clickstream.
func pipelineYAML(name string, seq int) string {
	return fmt.Sprintf(`apiVersion: sluice/v1
kind: Pipeline
metadata:
  name: %s
  description: load benchmark revision %d
spec:
  source: {topic: click-events, format: json, key: user_id, timestamp: ts}
  steps:
    - filter: url != nil && !(lower(user_agent ?? "") contains "bot")
    - map:
        url: lower(split(url, "?")[0])
        user: user_id
        country: country ?? "unknown"
        ts: ts
  sink: {topic: url-clicks}
  errors: {dlq: click-events.dlq}
`, name, seq)
}

// setUp creates the fixture through the API: the administrator logs in
// (session cookie and CSRF token), creates an organisation, a project and
// an owner API token; the token creates the fleets and pipelines (each
// with one revision, which also checks that pipelineYAML compiles).
func (c *controlPlane) setUp() error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	admin := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	var session struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := call(admin, "POST", c.api+"/auth/login", nil,
		map[string]string{"email": adminEmail, "password": adminPassword}, &session, http.StatusOK); err != nil {
		return err
	}
	csrf := map[string]string{"X-CSRF-Token": session.CSRFToken}
	var org, project idBody
	if err := call(admin, "POST", c.api+"/orgs", csrf, map[string]string{"name": "bench"}, &org, http.StatusCreated); err != nil {
		return err
	}
	if err := call(admin, "POST", c.api+"/projects", csrf,
		map[string]string{"org_id": org.ID, "name": "load"}, &project, http.StatusCreated); err != nil {
		return err
	}
	c.project = project.ID
	var token struct {
		Secret string `json:"secret"`
	}
	if err := call(admin, "POST", c.projectURL("/tokens"), csrf,
		map[string]string{"name": "load", "role": "owner"}, &token, http.StatusCreated); err != nil {
		return err
	}
	c.token = token.Secret

	client := &http.Client{Timeout: 30 * time.Second}
	auth := map[string]string{"Authorization": "Bearer " + c.token}
	for i := range seedFleets {
		var f idBody
		if err := call(client, "POST", c.projectURL("/fleets"), auth,
			map[string]any{"name": fmt.Sprintf("fleet-%d", i), "module": "local", "runners": 1}, &f, http.StatusCreated); err != nil {
			return err
		}
		c.fleets = append(c.fleets, f.ID)
	}
	for i := range seedPipelines {
		name := fmt.Sprintf("seed-%d", i)
		var p idBody
		if err := call(client, "POST", c.projectURL("/pipelines"), auth,
			map[string]string{"name": name, "description": "seeded for the load benchmark"}, &p, http.StatusCreated); err != nil {
			return err
		}
		if err := call(client, "POST", c.projectURL("/pipelines/"+p.ID+"/revisions"), auth,
			map[string]string{"source": pipelineYAML(name, 0)}, nil, http.StatusCreated); err != nil {
			return err
		}
		c.pipelines = append(c.pipelines, p.ID)
		c.names = append(c.names, name)
	}
	return nil
}

func (c *controlPlane) projectURL(path string) string {
	return c.api + "/projects/" + c.project + path
}

// mix is the benchmark's requests, all with the owner API token: 80%
// reads, 20% writes (weights out of 100).
func (c *controlPlane) mix() []apiload.Op {
	run := runSeq.Add(1)
	get := func(url func(seq int) string) func(context.Context, int) (*http.Request, error) {
		return func(ctx context.Context, seq int) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url(seq), nil)
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			return req, err
		}
	}
	send := func(method string, url func(seq int) string, body func(seq int) any) func(context.Context, int) (*http.Request, error) {
		return func(ctx context.Context, seq int) (*http.Request, error) {
			b, err := json.Marshal(body(seq))
			if err != nil {
				return nil, err
			}
			req, err := http.NewRequestWithContext(ctx, method, url(seq), bytes.NewReader(b))
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+c.token)
				req.Header.Set("Content-Type", "application/json")
			}
			return req, err
		}
	}
	fleet := func(seq int) string { return c.projectURL("/fleets/" + c.fleets[seq%len(c.fleets)]) }
	pipeline := func(seq int) string { return c.projectURL("/pipelines/" + c.pipelines[seq%len(c.pipelines)]) }
	fixed := func(path string) func(int) string { return func(int) string { return path } }
	return []apiload.Op{
		// Reads: 80.
		{Name: "GET project", Weight: 16, Request: get(fixed(c.projectURL("")))},
		{Name: "GET pipelines", Weight: 16, Request: get(fixed(c.projectURL("/pipelines")))},
		{Name: "GET pipeline", Weight: 16, Request: get(pipeline)},
		{Name: "GET fleet", Weight: 12, Request: get(fleet)},
		{Name: "GET fleets", Weight: 10, Request: get(fixed(c.projectURL("/fleets")))},
		{Name: "GET me", Weight: 10, Request: get(fixed(c.api + "/me"))},
		// Writes: 20.
		{Name: "POST pipeline", Weight: 8, Request: send(http.MethodPost, fixed(c.projectURL("/pipelines")), func(seq int) any {
			return map[string]string{"name": fmt.Sprintf("load-%d-%d", run, seq), "description": "created under load"}
		})},
		{Name: "PATCH fleet", Weight: 6, Request: send(http.MethodPatch, fleet, func(seq int) any {
			return map[string]any{"runners": 1 + seq%10, "settings": map[string]any{"seq": seq}}
		})},
		{Name: "POST revision", Weight: 6, Request: send(http.MethodPost, func(seq int) string {
			return pipeline(seq) + "/revisions"
		}, func(seq int) any {
			return map[string]string{"source": pipelineYAML(c.names[seq%len(c.names)], seq), "message": "load"}
		})},
	}
}

var client = apiload.NewClient()

// load runs the mix at rate and logs what it measured (by request kind
// too when detail).
func (c *controlPlane) load(b *testing.B, rate float64, warmup, run time.Duration, detail bool) (*apiload.Result, cpuUse) {
	b.Helper()
	select {
	case <-c.exited:
		b.Fatalf("controlplane serve exited: %v\n%s", c.cmd.ProcessState, c.logTail())
	default:
	}
	u0 := c.usage()
	res, err := apiload.Load{Rate: rate, Warmup: warmup, Duration: run, Client: client,
		Mix: c.mix(), Seed: uint64(runSeq.Load())}.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if res.Measured == 0 {
		b.Fatal("no request measured")
	}
	u := c.usage().sub(u0, res.Sent)
	b.Logf("%4.0f req/s: achieved %.0f req/s, p50 %v, p99 %v, max %v, errors %d/%d, max send lag %v; "+
		"CPU µs/request: server %.0f, PostgreSQL %.0f, generator %.0f; machine CPU pressure %.0f%%",
		rate, res.Achieved, ms(res.Percentile(0.5)), ms(res.Percentile(0.99)), ms(res.Latencies[len(res.Latencies)-1]),
		res.Errors, res.Sent, ms(res.SendLag), u.server, u.postgres, u.client, u.pressure)
	if detail {
		var ops []string
		for _, op := range res.Ops {
			ops = append(ops, fmt.Sprintf("%s %v/%v (%d)", op.Name, ms(op.P50), ms(op.P99), op.Errors))
		}
		b.Logf("    p50/p99 (errors) by request: %s", strings.Join(ops, ", "))
	}
	if len(res.FirstErrors) > 0 {
		b.Logf("    first error: %s", res.FirstErrors[0])
	}
	return res, u
}

// snapshot is the CPU time used so far by the server, PostgreSQL (the
// postmaster and its children, running or exited) and this
// process, and the machine's CPU pressure stall time.
type snapshot struct {
	at                       time.Time
	server, postgres, client time.Duration
	stall                    time.Duration
}

// cpuUse is CPU per request (µs) between two snapshots, and the share of
// that time in which some task on the machine waited for a CPU (PSI "some",
// %): high values mean the machine was busy, others' work included.
type cpuUse struct {
	server, postgres, client, pressure float64
}

func (c *controlPlane) usage() snapshot {
	s := snapshot{at: time.Now(), server: procCPU(c.cmd.Process.Pid, false)}
	if b, err := os.ReadFile(filepath.Join(c.dir, "pg", "data", "postmaster.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])); err == nil {
			s.postgres = treeCPU(pid)
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		if _, rest, ok := strings.Cut(string(b), "total="); ok {
			us, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			s.stall = time.Duration(us) * time.Microsecond
		}
	}
	return s
}

func (s snapshot) sub(t snapshot, requests int) cpuUse {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(requests, 1)) }
	return cpuUse{server: per(s.server - t.server), postgres: per(s.postgres - t.postgres), client: per(s.client - t.client),
		pressure: 100 * float64(s.stall-t.stall) / float64(s.at.Sub(t.at))}
}

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// procStat returns the fields of /proc/<pid>/stat after the command name
// (fields[0] is the state, field 3 of proc(5)).
func procStat(pid string) []string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// cpuOf is utime + stime (and cutime + cstime when children) of fields.
func cpuOf(f []string, children bool) time.Duration {
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	last := 12 // stime, field 15
	if children {
		last = 14 // cstime, field 17
	}
	for _, x := range f[11 : last+1] {
		n, _ := strconv.ParseInt(x, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}

func procCPU(pid int, children bool) time.Duration {
	return cpuOf(procStat(strconv.Itoa(pid)), children)
}

// treeCPU is the CPU time of process pid (the postmaster) and of its
// children (the backends, which PostgreSQL puts in sessions of their own),
// plus its exited children's.
func treeCPU(pid int) time.Duration {
	total := procCPU(pid, true)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if f := procStat(e.Name()); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			total += cpuOf(f, false)
		}
	}
	return total
}

// ms rounds d for the log.
func ms(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkAPIMixed500 offers the mix at 500 requests/s for targetRun
// (after targetWarmup) per iteration and reports the latency percentiles of
// all iterations' measured requests, the errors (warm-up included) and the
// achieved rate.
func BenchmarkAPIMixed500(b *testing.B) {
	b.StopTimer()
	c := server(b)
	var (
		lat      []time.Duration
		errs     int
		achieved float64
		use      cpuUse
	)
	for range b.N {
		b.StartTimer()
		res, u := c.load(b, targetRate, targetWarmup, targetRun, true)
		b.StopTimer()
		lat = append(lat, res.Latencies...)
		errs += res.Errors
		achieved += res.Achieved
		use.server += u.server / float64(b.N)
		use.postgres += u.postgres / float64(b.N)
		use.client += u.client / float64(b.N)
		use.pressure += u.pressure / float64(b.N)
	}
	all := &apiload.Result{Latencies: lat}
	slices.Sort(all.Latencies)
	b.ReportMetric(targetRate, "offered-req/s")
	b.ReportMetric(achieved/float64(b.N), "req/s")
	b.ReportMetric(msf(all.Percentile(0.50)), "p50-ms")
	b.ReportMetric(msf(all.Percentile(0.99)), "p99-ms")
	b.ReportMetric(float64(errs), "errors")
	b.ReportMetric(use.server, "server-cpu-us/req")
	b.ReportMetric(use.postgres, "pg-cpu-us/req")
	b.ReportMetric(use.client, "client-cpu-us/req")
	b.ReportMetric(use.pressure, "cpu-pressure-%")
}

// BenchmarkAPIMaxRate steps the offered rate through stepRates (stepWarmup
// + stepRun each) until a step has an error or a p99 of p99Limit or more,
// and reports the highest rate that passed (max-rps; 0 when the first
// failed), the lowest over the iterations. A failed step is tried once
// more before the search stops, so that a burst of other work on a shared
// machine does not end it.
func BenchmarkAPIMaxRate(b *testing.B) {
	b.StopTimer()
	c := server(b)
	best := -1.0
	for range b.N {
		passed := 0.0
	search:
		for _, rate := range stepRates {
			for attempt := 1; ; attempt++ {
				b.StartTimer()
				res, _ := c.load(b, rate, stepWarmup, stepRun, false)
				b.StopTimer()
				time.Sleep(time.Second) // let the server and PostgreSQL settle
				if res.Errors == 0 && res.Percentile(0.99) < p99Limit {
					break
				}
				b.Logf("%.0f req/s fails, attempt %d (p99 %v, %d errors)", rate, attempt, ms(res.Percentile(0.99)), res.Errors)
				if attempt == 2 {
					break search
				}
			}
			passed = rate
		}
		if best < 0 || passed < best {
			best = passed
		}
	}
	b.ReportMetric(best, "max-rps")
}
