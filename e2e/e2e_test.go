// Package e2e tests the runner binary as users run it: a subprocess on a
// pipelines directory, talking to Kafka (kfake in the test process, or
// KAFKA_BROKERS), killed with SIGKILL and restarted, and checked through
// what a read_committed consumer sees.
package e2e

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// runnerBin is the runner binary, built once by TestMain.
var runnerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	runnerBin = filepath.Join(dir, "runner")
	build := exec.Command("go", "build", "-o", runnerBin, "github.com/sluicehq/sluice/cmd/runner")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/runner: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logBuffer collects a subprocess's output while the test reads it.
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

// runner is one runner subprocess.
type runner struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	out    *logBuffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// startRunner starts `runner run` on dir with the given flags added to
// --pipelines, --listen and JSON logs. The process is killed when the test
// ends, if it still runs.
func startRunner(t *testing.T, name, dir string, args ...string) *runner {
	t.Helper()
	out := &logBuffer{}
	cmd := exec.Command(runnerBin, append([]string{"run", "--pipelines", dir, "--listen", "127.0.0.1:0",
		"--log-format", "json"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	r := &runner{t: t, name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("%s output (last 4 KiB):\n%s", name, tail(out.String(), 4096))
		}
	})
	return r
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (r *runner) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (r *runner) kill() {
	if r.running() {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-r.exited
}

// stop sends SIGTERM and asserts a clean exit within timeout.
func (r *runner) stop(timeout time.Duration) {
	r.t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		if r.err != nil {
			r.t.Errorf("%s exited with %v after SIGTERM, want 0", r.name, r.err)
		}
	case <-time.After(timeout):
		r.t.Errorf("%s did not exit within %v of SIGTERM", r.name, timeout)
		r.kill()
	}
}

// opsAddr waits for the ops server's address in the runner's log.
func (r *runner) opsAddr() string {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if a := r.loggedAddr(); a != "" {
			return a
		}
		if !r.running() {
			r.t.Fatalf("%s exited (%v) before its ops server listened", r.name, r.err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("%s: no ops server address in its log", r.name)
	return ""
}

// loggedAddr returns the ops server's address if the runner logged it.
func (r *runner) loggedAddr() string {
	for _, line := range strings.Split(r.out.String(), "\n") {
		var l struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "ops server listening" && l.Addr != "" {
			return l.Addr
		}
	}
	return ""
}

// status returns the runner's pipeline statuses from /status, or nil when
// it does not answer.
func (r *runner) status(addr string) []runtime.Status {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	var st []runtime.Status
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	return st
}

// writePipeline writes a pipeline file into a new directory and returns
// the directory. The map computes code = id * 7 + 3 so every output can be
// traced to its input.
func writePipeline(t *testing.T, name, in, out, delivery string) string {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf(`apiVersion: sluice/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {topic: %s}
  steps:
    - filter: id >= 0
    - map: {id: id, code: id * 7 + 3}
  sink: {topic: %s}
  delivery: %s
`, name, in, out, delivery)
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// produceIDs writes records {"id": i} for i in [0, n), keyed by i, to topic.
func produceIDs(t *testing.T, brokers []string, topic string, n int) {
	t.Helper()
	if err := produceIDsErr(brokers, topic, n); err != nil {
		t.Fatal(err)
	}
}

// produceIDsErr is produceIDs for a goroutine other than the test's.
func produceIDsErr(brokers []string, topic string, n int) error {
	return produceRangeErr(brokers, topic, 0, n)
}

// produceRangeErr produces the records with ids from, ..., to-1.
func produceRangeErr(brokers []string, topic string, from, to int) error {
	rs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		id := fmt.Sprint(i)
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(id), Value: []byte(`{"id":` + id + `}`)})
	}
	if err := produceRecords(brokers, rs); err != nil {
		return fmt.Errorf("producing to %s: %w", topic, err)
	}
	return nil
}

// committed returns the sum of the group's committed offsets on topic, and
// -1 when they cannot be read right now (for instance while a transaction
// that commits them is pending).
func committed(adm *kadm.Client, group, topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil || offs.Error() != nil {
		return -1
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// groupReport describes the group's committed offsets and the topic's end
// offsets per partition, for failure messages.
func groupReport(adm *kadm.Client, group, topic string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b strings.Builder
	offs, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		fmt.Fprintf(&b, "committed offsets of %s: %v\n", group, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		fmt.Fprintf(&b, "end offsets of %s: %v\n", topic, err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		o, _ := offs.Lookup(topic, e.Partition)
		fmt.Fprintf(&b, "%s/%d: end %d, committed %d (err %v)\n", topic, e.Partition, e.Offset, o.At, o.Err)
	})
	if gs, err := adm.DescribeGroups(ctx, group); err == nil {
		g := gs[group]
		fmt.Fprintf(&b, "group %s: state %s, %d members\n", group, g.State, len(g.Members))
		for _, m := range g.Members {
			a, _ := m.Assigned.AsConsumer()
			if a != nil {
				fmt.Fprintf(&b, "  member %s (%s): %v\n", m.MemberID, m.ClientID, a.Topics)
			}
		}
	}
	return b.String()
}

// waitConsumed waits until the group has committed offsets for all n
// records of topic.
func waitConsumed(t *testing.T, adm *kadm.Client, group, topic string, n int, timeout time.Duration, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := int64(-1)
	for {
		c := committed(adm, group, topic)
		if c >= int64(n) {
			return
		}
		if c >= 0 {
			last = c
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the group %s has committed %d of %d records\n%s%s", timeout, group, last, n, groupReport(adm, group, topic), logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readOutputs reads topic from the start with read_committed up to its end
// offsets and counts each output id, checking that every value is the
// map's result for its id. Call it once the group has committed the whole
// input and the runner has stopped: then the topic holds every output it
// will ever hold, so losses and duplicates show without waiting for more.
func readOutputs(t *testing.T, brokers []string, topic string, n int) (counts []int, total int) {
	t.Helper()
	counts = make([]int, n)
	readCommitted(t, brokers, topic, func(r *kgo.Record) error {
		var v struct {
			ID   *int
			Code int
		}
		switch {
		case json.Unmarshal(r.Value, &v) != nil || v.ID == nil:
			return fmt.Errorf("output %q is not {id, code}", r.Value)
		case *v.ID < 0 || *v.ID >= n || v.Code != *v.ID*7+3:
			return fmt.Errorf("output %s: not the map's result for an input id", r.Value)
		}
		counts[*v.ID]++
		total++
		return nil
	})
	return counts, total
}

// readCommitted reads topic from the start with read_committed up to the
// end offsets it has when called (kafkatest.ReadToEnd), handing each
// record to each (whose error fails the test); a topic that does not exist
// reads as empty. Call it once every transaction writing topic is decided
// (after the group has committed what produces them): an open one makes
// it fail after two minutes.
func readCommitted(t *testing.T, brokers []string, topic string, each func(*kgo.Record) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := kafkatest.ReadToEnd(ctx, brokers, topic, each); err != nil {
		t.Fatal(err)
	}
}

// checkOutputs asserts every id in [0, n) was output, exactly once when
// exact is set, and logs the duplicates otherwise.
func checkOutputs(t *testing.T, counts []int, total int, exact bool) {
	t.Helper()
	var missing, dup []int
	for id, c := range counts {
		switch {
		case c == 0:
			missing = append(missing, id)
		case c > 1:
			dup = append(dup, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d ids have no output (lost), first %v", len(missing), len(counts), first(missing, 10))
	}
	if exact && len(dup) > 0 {
		t.Errorf("%d ids were output more than once (duplicates under exactly-once), first %v", len(dup), first(dup, 10))
	}
	t.Logf("read %d committed outputs for %d ids: %d missing, %d ids duplicated", total, len(counts), len(missing), len(dup))
}

func first(xs []int, n int) []int {
	return xs[:min(n, len(xs))]
}
