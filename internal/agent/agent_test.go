package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/agent"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// v1 tags each record "v1" with a map; v2 tags it "v2" with a script read
// from a side file of the bundle, so its outputs prove that the new
// revision runs and that the bundle's files reach the compiler.
var (
	v1 = map[string]string{"tagger.yaml": `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: tagger}
spec:
  source: {topic: in}
  steps:
    - map: {n: n, tag: '"v1"'}
  sink: {topic: out}
`}
	v2 = map[string]string{"tagger.yaml": `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: tagger}
spec:
  source: {topic: in}
  steps:
    - script: {file: scripts/tag.js, timeout: 2s}
  sink: {topic: out}
`, "scripts/tag.js": `function process(r) { return {n: r.value.n, tag: "v2"}; }`}
)

// logBuffer collects the agent's and the runtime's logs; they are printed
// when a test fails, and searched for what must (and must not) be logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogs(t *testing.T) (*logBuffer, *slog.Logger) {
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	return logs, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newRuntime starts a runtime on brokers; the returned function closes it
// (once; the test's end closes it otherwise).
func newRuntime(t *testing.T, brokers []string, log *slog.Logger) (*runtime.Runtime, func()) {
	t.Helper()
	rt, err := runtime.New(runtime.Brokers(brokers...), runtime.CommitInterval(50*time.Millisecond),
		runtime.RetryBackoff(50*time.Millisecond, time.Second), runtime.SessionTimeout(time.Second),
		runtime.StateDir(t.TempDir()), runtime.Logger(log))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeRT := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := rt.Close(ctx); err != nil {
				t.Errorf("closing the runtime: %v", err)
			}
		})
	}
	t.Cleanup(closeRT)
	return rt, closeRT
}

// running is an agent's Run in a goroutine.
type running struct {
	*agent.Agent
	stop func() // cancels Run and checks it returned nil
}

// startAgent runs an agent with short intervals; the test's end stops it.
func startAgent(t *testing.T, url, dir string, rt *runtime.Runtime, log *slog.Logger, opts ...agent.Opt) *running {
	t.Helper()
	a, err := agent.New(append([]agent.Opt{agent.ControlPlane(url), agent.DataDir(dir), agent.Registry(all.New()),
		agent.Runtime(rt), agent.Logger(log), agent.Name("test-runner"), agent.Version("test"),
		agent.PollWait(2 * time.Second), agent.HeartbeatInterval(100 * time.Millisecond),
		agent.RetryBackoff(20*time.Millisecond, 200*time.Millisecond), agent.ApplyTimeout(15 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Run did not return within 20s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return &running{Agent: a, stop: stop}
}

// waitState waits until the agent's state satisfies ok.
func waitState(t *testing.T, a *running, timeout time.Duration, what string, ok func(agent.State) bool) agent.State {
	t.Helper()
	var s agent.State
	kafkatest.Eventually(t, timeout, what, func() bool {
		s = a.State()
		return ok(s)
	})
	return s
}

func runs(label string) func(agent.State) bool {
	return func(s agent.State) bool { return s.Revisions["tagger"] == label }
}

func produce(t *testing.T, brokers []string, from, n int) {
	t.Helper()
	var rs []*kgo.Record
	for i := from; i < from+n; i++ {
		rs = append(rs, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	kafkatest.Produce(t, brokers, rs...)
}

// readTags reads exactly n committed outputs and returns each input
// number's tags; it fails on fewer (lost) and on any input seen twice
// (exactly-once broken by a roll-out or a restart).
func readTags(t *testing.T, brokers []string, n int) map[int]string {
	t.Helper()
	outs := kafkatest.ReadCommitted(t, brokers, "out", n, 30*time.Second)
	tags := map[int]string{}
	for _, r := range outs {
		var v struct {
			N   float64 // the script's numbers come out as 13.0
			Tag string
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("output %q: %v", r.Value, err)
		}
		n := int(v.N)
		if prev, dup := tags[n]; dup {
			t.Fatalf("input %d output twice (%s, then %s)", n, prev, v.Tag)
		}
		tags[n] = v.Tag
	}
	if len(tags) != n {
		t.Fatalf("read %d outputs, want %d", len(tags), n)
	}
	return tags
}

func checkTags(t *testing.T, tags map[int]string, from, to int, want string) {
	t.Helper()
	for i := from; i < to; i++ {
		if tags[i] != want {
			t.Fatalf("input %d tagged %q, want %q (tags %v)", i, tags[i], want, tags)
		}
	}
}

func setup(t *testing.T) ([]string, *controlPlane, *logBuffer, *slog.Logger) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "in", 2)
	logs, log := newLogs(t)
	return brokers, newControlPlane(t), logs, log
}

// The agent registers once, keeps the credential 0600 and, restarted on
// the same data directory, uses it instead of the (spent) bootstrap
// token. Neither secret is logged, and the token is written nowhere.
func TestRegisterOnceAndReuseCredential(t *testing.T) {
	brokers, cp, logs, log := setup(t)
	b1 := makeBundle(t, 1, v1)
	cp.assign([]testBundle{b1}, nil)
	dir := t.TempDir()
	rt, _ := newRuntime(t, brokers, log)

	a := startAgent(t, cp.URL(), dir, rt, log, agent.BootstrapToken(bootstrapToken))
	s := waitState(t, a, 20*time.Second, "the first assignment applied", runs(b1.assignment.RevisionLabel()))
	if s.RunnerID != "runner-1" || s.FleetID != "fleet-1" {
		t.Errorf("state %+v, want runner-1 of fleet-1", s)
	}
	info, err := os.Stat(filepath.Join(dir, "credential.json"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("credential file mode %v, want 0600", info.Mode().Perm())
	}
	a.stop()

	// Restarted with the spent token still given: the control plane would
	// refuse it, so the agent must not present it again.
	// The agent's own state, not a status report, shows that the control
	// plane answered it: a report the first agent sent as it stopped can
	// reach the control plane after the restart.
	a2 := startAgent(t, cp.URL(), dir, rt, log, agent.BootstrapToken(bootstrapToken))
	waitState(t, a2, 20*time.Second, "generation 1 applied with the saved credential after the restart", func(s agent.State) bool {
		return s.RunnerID == "runner-1" && s.Generation == 1 && !s.Cached && s.Err == nil
	})
	if n := cp.registered(); n != 1 {
		t.Errorf("%d registrations, want 1: the restart registered again", n)
	}
	a2.stop()

	// A third start without any token works from the credential alone.
	a3 := startAgent(t, cp.URL(), dir, rt, log)
	waitState(t, a3, 20*time.Second, "the credential accepted", func(s agent.State) bool { return s.RunnerID == "runner-1" && s.Err == nil && !s.Cached })

	for _, secret := range []string{bootstrapToken, "test-credential-1"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a secret is in the log: %q", secret)
		}
	}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if bytes.Contains(data, []byte(bootstrapToken)) {
			t.Errorf("%s holds the bootstrap token", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A new generation rolls the pipeline to its new revision: records after
// it carry the new revision's tag, records before it the old one, none is
// processed twice, and status reports follow with the new digest and the
// processed counts.
func TestNewGenerationRollsOut(t *testing.T) {
	brokers, cp, _, log := setup(t)
	b1, b2 := makeBundle(t, 1, v1), makeBundle(t, 2, v2)
	cp.assign([]testBundle{b1}, nil)
	rt, _ := newRuntime(t, brokers, log)
	a := startAgent(t, cp.URL(), t.TempDir(), rt, log, agent.BootstrapToken(bootstrapToken))
	waitState(t, a, 20*time.Second, "revision 1 running", runs(b1.assignment.RevisionLabel()))

	produce(t, brokers, 0, 10)
	checkTags(t, readTags(t, brokers, 10), 0, 10, "v1")
	cp.waitReport(10*time.Second, "10 records processed by revision 1", func(r agentproto.StatusReport) bool {
		return r.Generation == 1 && len(r.Pipelines) == 1 && r.Pipelines[0].Digest == b1.assignment.Digest &&
			r.Pipelines[0].Processed == 10 && r.Pipelines[0].State == "running" && r.Version == "test"
	})

	cp.assign([]testBundle{b2}, nil)
	waitState(t, a, 20*time.Second, "revision 2 running", runs(b2.assignment.RevisionLabel()))
	produce(t, brokers, 10, 10)
	tags := readTags(t, brokers, 20)
	checkTags(t, tags, 0, 10, "v1")
	checkTags(t, tags, 10, 20, "v2")
	rep := cp.waitReport(10*time.Second, "10 records processed by revision 2", func(r agentproto.StatusReport) bool {
		return r.Generation == 2 && len(r.Pipelines) == 1 && r.Pipelines[0].Digest == b2.assignment.Digest && r.Pipelines[0].Processed == 10
	})
	if len(rep.Errors) != 0 {
		t.Errorf("errors reported: %q", rep.Errors)
	}
}

// A bundle whose bytes are not the assigned digest is never run: it is
// reported, not cached, and the previous revision keeps processing.
func TestDigestMismatchRefused(t *testing.T) {
	brokers, cp, _, log := setup(t)
	b1, b2 := makeBundle(t, 1, v1), makeBundle(t, 2, v2)
	cp.assign([]testBundle{b1}, nil)
	rt, _ := newRuntime(t, brokers, log)
	dir := t.TempDir()
	a := startAgent(t, cp.URL(), dir, rt, log, agent.BootstrapToken(bootstrapToken))
	waitState(t, a, 20*time.Second, "revision 1 running", runs(b1.assignment.RevisionLabel()))

	// A valid bundle with a changed script, served for v2's digest: the
	// bytes are not the ones the digest names.
	v3 := map[string]string{"tagger.yaml": v2["tagger.yaml"], "scripts/tag.js": strings.Replace(v2["scripts/tag.js"], "v2", "v3", 1)}
	tampered := makeBundle(t, 2, v3).data
	cp.assign([]testBundle{b2}, map[string][]byte{b2.assignment.Digest: tampered})
	rep := cp.waitReport(20*time.Second, "the digest mismatch reported", func(r agentproto.StatusReport) bool {
		return r.Generation == 2 && len(r.Errors) == 1 && strings.Contains(r.Errors[0], agentproto.ErrDigestMismatch.Error())
	})
	if len(rep.Pipelines) != 1 || rep.Pipelines[0].Digest != b1.assignment.Digest {
		t.Errorf("pipelines reported %+v, want revision 1's digest still running", rep.Pipelines)
	}
	if !strings.Contains(rep.Errors[0], b1.assignment.RevisionLabel()+" keeps running") {
		t.Errorf("error %q does not say which revision keeps running", rep.Errors[0])
	}
	if s := a.State(); s.Revisions["tagger"] != b1.assignment.RevisionLabel() {
		t.Fatalf("running %v after the refused bundle", s.Revisions)
	}
	if _, err := os.Stat(filepath.Join(dir, "bundles", b2.assignment.Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused bundle is in the cache (stat: %v)", err)
	}
	produce(t, brokers, 0, 10)
	checkTags(t, readTags(t, brokers, 10), 0, 10, "v1")
}

// Static stability: with the control plane gone the pipeline keeps
// processing, and a new agent (a restarted runner) on the same data
// directory resumes it from the cache while the control plane is still
// down, without repeating or losing a record.
func TestControlPlaneDown(t *testing.T) {
	brokers, cp, _, log := setup(t)
	b1 := makeBundle(t, 1, v1)
	cp.assign([]testBundle{b1}, nil)
	rt, closeRT := newRuntime(t, brokers, log)
	dir := t.TempDir()
	a := startAgent(t, cp.URL(), dir, rt, log, agent.BootstrapToken(bootstrapToken))
	waitState(t, a, 20*time.Second, "revision 1 running", runs(b1.assignment.RevisionLabel()))
	produce(t, brokers, 0, 10)
	checkTags(t, readTags(t, brokers, 10), 0, 10, "v1")

	cp.stop()
	waitState(t, a, 10*time.Second, "the outage noticed", func(s agent.State) bool { return s.Err != nil })
	produce(t, brokers, 10, 10)
	checkTags(t, readTags(t, brokers, 20), 0, 20, "v1")
	if s := a.State(); s.Revisions["tagger"] != b1.assignment.RevisionLabel() {
		t.Fatalf("running %v during the outage", s.Revisions)
	}

	// The runner restarts: a new runtime and a new agent, the control
	// plane still down.
	a.stop()
	closeRT()
	rt2, _ := newRuntime(t, brokers, log)
	a2 := startAgent(t, cp.URL(), dir, rt2, log)
	s := waitState(t, a2, 10*time.Second, "revision 1 resumed from the cache", runs(b1.assignment.RevisionLabel()))
	if !s.Cached || s.Generation != 1 {
		t.Errorf("state %+v, want generation 1 from the cache", s)
	}
	produce(t, brokers, 20, 10)
	checkTags(t, readTags(t, brokers, 30), 0, 30, "v1")
	if st := rt2.Status(); len(st) != 1 || st[0].Processed != 10 {
		t.Errorf("the resumed pipeline's status %+v, want the 10 new records processed", st)
	}
	if s := a2.State(); s.Err == nil || !s.Cached {
		t.Errorf("state %+v, want the control plane still unreachable and the agent cached", s)
	}
}

// A revoked credential (401) is said plainly, and nothing stops: the
// pipeline keeps processing and Run keeps going.
func TestRevokedCredential(t *testing.T) {
	brokers, cp, logs, log := setup(t)
	b1 := makeBundle(t, 1, v1)
	cp.assign([]testBundle{b1}, nil)
	rt, _ := newRuntime(t, brokers, log)
	a := startAgent(t, cp.URL(), t.TempDir(), rt, log, agent.BootstrapToken(bootstrapToken))
	waitState(t, a, 20*time.Second, "revision 1 running", runs(b1.assignment.RevisionLabel()))

	cp.revoke()
	s := waitState(t, a, 10*time.Second, "the refused credential noticed", func(s agent.State) bool {
		return errors.Is(s.Err, agent.ErrCredentialRefused)
	})
	if s.Revisions["tagger"] != b1.assignment.RevisionLabel() {
		t.Fatalf("running %v after the 401", s.Revisions)
	}
	if !strings.Contains(logs.String(), "refused this runner's credential (401)") {
		t.Error("the log does not say that the credential was refused")
	}
	produce(t, brokers, 0, 10)
	checkTags(t, readTags(t, brokers, 10), 0, 10, "v1")
}

// Options are checked at construction, and a data directory without a
// credential needs a bootstrap token.
func TestNewValidates(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	rt, _ := newRuntime(t, brokers, slog.New(slog.DiscardHandler))
	base := func(dir string) []agent.Opt {
		return []agent.Opt{agent.DataDir(dir), agent.Registry(all.New()), agent.Runtime(rt), agent.BootstrapToken(bootstrapToken)}
	}
	cases := []struct {
		name string
		opts []agent.Opt
		want string
	}{
		{"no control plane", nil, "ControlPlane: required"},
		{"plain http to a remote host", []agent.Opt{agent.ControlPlane("http://cp.example.com")}, "in clear"},
		{"not a bootstrap token", []agent.Opt{agent.ControlPlane("https://cp.example.com"), agent.BootstrapToken("slc_api-token")}, "not a bootstrap token"},
		{"poll wait too long", []agent.Opt{agent.ControlPlane("https://cp.example.com"), agent.PollWait(time.Hour)}, "PollWait"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := agent.New(append(base(t.TempDir()), c.opts...)...)
			var ce *agent.ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want a ConfigError mentioning %q", err, c.want)
			}
			if strings.Contains(err.Error(), "api-token") {
				t.Errorf("the error echoes the token: %v", err)
			}
		})
	}
	_, err := agent.New(agent.ControlPlane("http://127.0.0.1:1"), agent.DataDir(t.TempDir()), agent.Registry(all.New()), agent.Runtime(rt))
	if !errors.Is(err, agent.ErrNoCredential) {
		t.Errorf("New without credential or token = %v, want ErrNoCredential", err)
	}
	if _, err := agent.New(append(base(t.TempDir()), agent.ControlPlane("http://localhost:8080"))...); err != nil {
		t.Errorf("plain http to loopback refused: %v", err)
	}
}
