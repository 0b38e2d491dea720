// Package gitops tests the product's loop as users run it: `controlplane
// dev` (its git server, API and reconciler), `runner agent` processes on
// Kafka (kfake in the test process, or KAFKA_BROKERS), and the real `git`
// CLI pushing changes that must show up in the runners' output.
package gitops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/e2e/proctest"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
)

// bin holds the binaries TestMain builds.
var bin struct{ controlplane, runner string }

func TestMain(m *testing.M) {
	paths, cleanup, err := proctest.Build("controlplane", "runner")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.controlplane, bin.runner = paths["controlplane"], paths["runner"]
	code := pgtest.Run(m)
	cleanup()
	os.Exit(code)
}

// proc, startProc, freeAddr and tail are proctest's, under the names
// these tests use.
type proc = proctest.Proc

var (
	startProc = proctest.Start
	freeAddr  = func(t *testing.T) string { return proctest.FreeAddr(t) }
	tail      = proctest.Tail
)

var urlRE = regexp.MustCompile(`(?m)^\s+URL:\s+(\S+)`)

// bannerEndRE matches the last line of controlplane dev's banner.
var bannerEndRE = regexp.MustCompile(`(?m)^(Ctrl-C stops .*)$`)

// platform is `controlplane dev` without its own runner, on a database of
// the test's, with the credentials it wrote.
type platform struct {
	t       *testing.T
	cp      *proc
	addr    string
	base    string
	dataDir string
	dbURL   string
	creds   map[string]string
	brokers []string
	fleet   string
}

func startPlatform(t *testing.T, dbURL string, brokers []string) *platform {
	t.Helper()
	p := &platform{t: t, addr: freeAddr(t), dataDir: t.TempDir(), dbURL: dbURL, brokers: brokers}
	p.startControlPlane()
	p.creds = proctest.Credentials(t, filepath.Join(p.dataDir, "credentials"))
	var fleets struct {
		Items []struct{ ID, Name string } `json:"items"`
	}
	p.api("GET", "/fleets", nil, &fleets)
	for _, f := range fleets.Items {
		if f.Name == "dev" {
			p.fleet = f.ID
		}
	}
	if p.fleet == "" {
		t.Fatalf("controlplane dev made no dev fleet: %+v", fleets)
	}
	return p
}

func (p *platform) startControlPlane() {
	p.t.Helper()
	p.cp = startProc(p.t, "controlplane", nil, bin.controlplane, "dev", "--no-runner", "--database-url", p.dbURL,
		"--data-dir", p.dataDir, "--listen", p.addr)
	p.base = p.cp.WaitFor(p.t, urlRE, 60*time.Second)
}

// api calls the project's REST API with the owner token; path is relative
// to the project. It fails the test on a status >= 300.
func (p *platform) api(method, path string, body, into any) {
	p.t.Helper()
	if code, out := p.call(method, path, body, into); code >= 300 {
		p.t.Fatalf("%s %s: %d %s", method, path, code, out)
	}
}

func (p *platform) call(method, path string, body, into any) (int, string) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.base+"/api/v1/projects/"+p.creds["SLUICE_PROJECT_ID"]+path, rd)
	req.Header.Set("Authorization", "Bearer "+p.creds["SLUICE_TOKEN"])
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(out, into); err != nil {
			p.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
	return resp.StatusCode, string(out)
}

// bootstrapToken mints a one-use token for the fleet.
func (p *platform) bootstrapToken(fleet string) string {
	var tok struct{ Token string }
	p.api("POST", "/fleets/"+fleet+"/bootstrap-tokens", map[string]any{"uses": 1, "ttl": "10m"}, &tok)
	return tok.Token
}

// agent is a `runner agent` process and its data directory.
type agent struct {
	*proctest.Proc
	name, dataDir string
}

// startAgent registers a new runner in the dev fleet (or restarts one on
// its data directory, with no token) on the test's Kafka.
func (p *platform) startAgent(name, dataDir string, register bool) *agent {
	p.t.Helper()
	var env []string
	if register {
		env = []string{"SLUICE_BOOTSTRAP_TOKEN=" + p.bootstrapToken(p.fleet)}
	}
	a := &agent{name: name, dataDir: dataDir}
	a.Proc = startProc(p.t, name, env, bin.runner, "agent", "--control-plane", p.base, "--data-dir", dataDir, "--name", name,
		"--listen", "127.0.0.1:0", "--brokers", strings.Join(p.brokers, ","), "--session-timeout", "6s",
		"--commit-interval", "50ms", "--log-format", "json")
	return a
}

// runnerView is what GET .../runners says of one runner.
type runnerView struct {
	Name       string `json:"name"`
	Live       bool   `json:"live"`
	Generation int64  `json:"generation"`
	Report     struct {
		Pipelines []struct {
			Name, Digest, State, Error string
			Partitions                 []int32
			Processed                  uint64
			DeadLetter                 uint64 `json:"dead_letter"`
		} `json:"pipelines"`
		Cached bool `json:"cached"`
	} `json:"report"`
}

func (p *platform) runners() []runnerView {
	p.t.Helper()
	var out struct {
		Items []runnerView `json:"items"`
	}
	p.api("GET", "/fleets/"+p.fleet+"/runners", nil, &out)
	return out.Items
}

// waitRunners waits until n live runners report pipeline name running at
// a digest for which ok holds, and returns that digest.
func (p *platform) waitRunners(n int, name string, ok func(digest string) bool, timeout time.Duration) string {
	p.t.Helper()
	var digest string
	kafkatest.Eventually(p.t, timeout, fmt.Sprintf("%d runners running %s", n, name), func() bool {
		count := 0
		for _, r := range p.runners() {
			for _, pl := range r.Report.Pipelines {
				if r.Live && pl.Name == name && pl.State == "running" && ok(pl.Digest) {
					count++
					digest = pl.Digest
				}
			}
		}
		return count >= n
	})
	return digest
}

// git runs the real git CLI with a private HOME.
type git struct {
	t    *testing.T
	home string
}

func newGit(t *testing.T) *git {
	g := &git{t: t, home: t.TempDir()}
	g.must("", "config", "--global", "user.email", "dev@example.com")
	g.must("", "config", "--global", "user.name", "Dev")
	g.must("", "config", "--global", "init.defaultBranch", "main")
	return g
}

func (g *git) run(dir string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+g.home, "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func (g *git) must(dir string, args ...string) string {
	g.t.Helper()
	o, e, err := g.run(dir, args...)
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s%s", strings.Join(args, " "), err, o, e)
	}
	return o
}

// clone clones the playground with the token in the URL.
func (p *platform) clone(g *git) string {
	p.t.Helper()
	dir := filepath.Join(p.t.TempDir(), "playground")
	url := strings.Replace(p.base, "http://", "http://git:"+p.creds["SLUICE_TOKEN"]+"@", 1) + "/git/default/playground.git"
	g.must("", "clone", "-q", url, dir)
	return dir
}

// edit rewrites a file of a clone with fn.
func edit(t *testing.T, dir, file string, fn func(string) string) {
	t.Helper()
	path := filepath.Join(dir, file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	after := fn(string(b))
	if after == string(b) {
		t.Fatalf("edit of %s changed nothing", file)
	}
	if err := os.WriteFile(path, []byte(after), 0o644); err != nil {
		t.Fatal(err)
	}
}

// feeder produces clicks to every partition of the input until stopped:
// records without an agent field, one partition after another.
type feeder struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	sent   int
}

func feed(t *testing.T, brokers []string, topic string, partitions int32, perSecond int) *feeder {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithCancel(context.Background())
	f := &feeder{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			v := fmt.Sprintf(`{"user":"u%d","page":"/P%d","ms":%d}`, i, i%7, 100+i%2000)
			r := &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Value: []byte(v)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err == nil {
				f.mu.Lock()
				f.sent++
				f.mu.Unlock()
			}
		}
	}()
	t.Cleanup(f.stop)
	return f
}

func (f *feeder) stop() {
	f.cancel()
	<-f.done
}

func (f *feeder) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.sent }

// outputs reads every committed record of topic up to its end offsets
// now (kafkatest.ReadToEnd), not "whatever arrives in a few seconds":
// on a loaded machine a fresh client can take that long to fetch
// anything, and a short read looked like lost records. A read that
// cannot reach the end (a transaction left open) returns what it got,
// and says so.
func outputs(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	if _, err := kafkatest.ReadToEnd(ctx, brokers, topic, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Logf("reading %s: %v", topic, err)
	}
	return out
}
