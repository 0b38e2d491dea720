package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

// syncBuffer collects a subprocess's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// needKcat fails (never skips) without kcat: the interop acceptance test
// must not pass silently on a machine that cannot run it.
func needKcat(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not on PATH; run `make setup` to install it (the interop test talks to the runner with kcat)")
	}
	return p
}

// buildRunner builds this command into a temporary directory, so the test
// runs the real binary with its real signal handling and exit codes.
func buildRunner(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "runner")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s\nrunner output:\n%s", timeout, what, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const pipelineV1 = `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: scale}
spec:
  source: {topic: in}
  steps:
    - filter: n >= 0
    - map: {n: n * 10, tag: '"v1"'}
  sink: {topic: out}
`

// The acceptance interop test: a runner binary on embedded Kafka picks up a
// pipeline file dropped into its directory, transforms records produced
// with kcat so that kcat (read_committed) reads them back, reports metrics,
// rolls a changed file out as a new revision, keeps the running revision
// when the file breaks, and exits 0 on SIGTERM.
func TestRunInteropWithKcat(t *testing.T) {
	kcat := needKcat(t)
	bin := buildRunner(t)
	dir := t.TempDir()
	kafka, ops := freePort(t), freePort(t)

	var stdout, stderr syncBuffer
	cmd := exec.Command(bin, "run", "--pipelines", dir, "--embedded-addr", kafka, "--listen", ops,
		"--commit-interval", "50ms", "--session-timeout", "6s", "--shutdown-timeout", "10s", "--reload-interval", "200ms")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the runner has exited, with waitErr set.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	logs := func() string { return "--- stdout\n" + stdout.String() + "--- stderr\n" + stderr.String() }
	base := "http://" + ops

	// With no pipelines there is nothing to wait for: ready.
	eventually(t, 20*time.Second, "/readyz to answer 200 with no pipelines", func() bool {
		code, _, err := httpGet(base + "/readyz")
		return err == nil && code == http.StatusOK
	}, logs)
	if !strings.Contains(stderr.String(), "embedded Kafka listening on "+kafka+"; kcat -b "+kafka+" -L") {
		t.Errorf("the embedded cluster's address is not logged:\n%s", logs())
	}

	file := filepath.Join(dir, "scale.yaml")
	waitRevision := func(content string) {
		t.Helper()
		rev := revision([]byte(content))
		eventually(t, 20*time.Second, "pipeline scale running revision "+rev, func() bool {
			_, body, err := httpGet(base + "/status")
			code, _, _ := httpGet(base + "/readyz")
			return err == nil && code == http.StatusOK &&
				strings.Contains(body, `"revision": "`+rev+`"`) && strings.Contains(body, `"state": "running"`)
		}, logs)
	}
	produce := func(lines ...string) {
		t.Helper()
		c := exec.Command(kcat, "-P", "-b", kafka, "-t", "in", "-K:")
		c.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("kcat -P: %v\n%s\n%s", err, out, logs())
		}
	}
	// read polls kcat until the output topic holds want (it is read from
	// the start each time, so duplicates would show).
	read := func(want []string) {
		t.Helper()
		var got string
		deadline := time.Now().Add(30 * time.Second)
		for {
			c := exec.Command(kcat, "-C", "-b", kafka, "-t", "out", "-o", "beginning", "-e", "-q",
				"-X", "isolation.level=read_committed", "-f", "%k %s\n")
			out, err := c.Output()
			got = string(out)
			if err == nil && got == strings.Join(want, "\n")+"\n" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kcat -C read:\n%s\nwant:\n%s\n(last error %v)\n%s", got, strings.Join(want, "\n"), err, logs())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	if err := os.WriteFile(file, []byte(pipelineV1), 0o644); err != nil {
		t.Fatal(err)
	}
	waitRevision(pipelineV1)
	if want := "pipeline scale (rev " + revision([]byte(pipelineV1)) + "): in -> out, exactly-once"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout lacks the summary %q:\n%s", want, logs())
	}
	produce(`a:{"n":1}`, `b:{"n":-5}`, `c:{"n":3}`)
	read([]string{`a {"n":10,"tag":"v1"}`, `c {"n":30,"tag":"v1"}`})

	_, metrics, err := httpGet(base + "/metrics")
	if err != nil || !strings.Contains(metrics, `sluice_records_in_total{pipeline="scale",stage="0"} 3`) {
		t.Errorf("/metrics lacks sluice_records_in_total for scale (err %v):\n%s", err, metrics)
	}

	// A change is a new revision; the consumer group keeps its offsets, so
	// only new records see it.
	v2 := strings.Replace(pipelineV1, `{n: n * 10, tag: '"v1"'}`, `{n: n * 100, tag: '"v2"'}`, 1)
	if err := os.WriteFile(file, []byte(v2), 0o644); err != nil {
		t.Fatal(err)
	}
	waitRevision(v2)
	produce(`d:{"n":4}`)
	read([]string{`a {"n":10,"tag":"v1"}`, `c {"n":30,"tag":"v1"}`, `d {"n":400,"tag":"v2"}`})

	// A broken save keeps v2 running and logs where the error is.
	if err := os.WriteFile(file, []byte(strings.Replace(v2, "n * 100", "n ** ** 100", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the compile error to be logged", func() bool {
		return strings.Contains(stderr.String(), "scale.yaml:8:") && strings.Contains(stderr.String(), "previous revision "+revision([]byte(v2))+" keeps running")
	}, logs)
	produce(`e:{"n":5}`)
	read([]string{`a {"n":10,"tag":"v1"}`, `c {"n":30,"tag":"v1"}`, `d {"n":400,"tag":"v2"}`, `e {"n":500,"tag":"v2"}`})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("runner exited with %v after SIGTERM, want 0\n%s", waitErr, logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("runner did not exit within 20s of SIGTERM (shutdown timeout 10s)\n%s", logs())
	}
}

// A file that does not compile at startup must stop the runner before it
// starts anything, with the error's file:line:col on stderr and exit 1.
func TestRunCompileErrorAtStartup(t *testing.T) {
	bin := buildRunner(t)
	dir := t.TempDir()
	bad := strings.Replace(pipelineV1, "n >= 0", "n >= 0 && nosuchfunc(n)", 1)
	file := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	line, col := position(bad, "nosuchfunc")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "run", "--pipelines", dir, "--embedded-addr", freePort(t), "--listen", freePort(t))
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("runner returned %v, want exit status 1\n%s", err, stderr.String())
	}
	want := fmt.Sprintf("%s:%d:%d: unknown function nosuchfunc", file, line, col)
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
}

func TestRunUsage(t *testing.T) {
	cases := []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"run"}, "", "--pipelines"},
		{[]string{"run", "--pipelines", "d", "extra"}, "", "no arguments"},
		{[]string{"run", "--pipelines", "d", "--log-format", "xml"}, "", "--log-format"},
		{[]string{"run", "--pipelines", "d", "--commit-interval", "0s"}, "", "--commit-interval"},
		{[]string{"run", "--pipelines", "d", "--tls"}, "", "need --brokers"},
		{[]string{"run", "--pipelines", "d", "--brokers", "k:9092", "--sasl-user", "u"}, "", "--sasl-mechanism"},
		{[]string{"run", "--pipelines", "d", "--brokers", "k:9092", "--sasl-mechanism", "PLAIN", "--sasl-user", "u"}, "", "SLUICE_SASL_PASSWORD"},
		{[]string{"run", "--pipelines", "d", "--brokers", "k:9092", "--sasl-mechanism", "KERBEROS", "--sasl-user", "u"}, "pw", "unknown mechanism"},
		{[]string{"run", "--pipelines", "d", "--stuck-after", "20s"}, "", "--stuck-after 20s must be shorter than --transaction-timeout 10s"},
		{[]string{"run", "--pipelines", "d", "--sasl-password", "pw"}, "", "not defined"},
		{[]string{"run", "--pipelines", "d", "--state-dir", ""}, "", "--state-dir must not be empty"},
		{[]string{"run", "--pipelines", "d", "--idle-timeout", "0s"}, "", "--idle-timeout 0s must be positive"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Setenv(passwordEnv, c.env)
			var out bytes.Buffer
			_, err := parseArgs(c.args, &out)
			if err == nil || !strings.Contains(err.Error()+out.String(), c.want) {
				t.Fatalf("parseArgs(%q) = %v (%s), want an error mentioning %q", c.args, err, out.String(), c.want)
			}
		})
	}

	t.Setenv(passwordEnv, "s3cret")
	cfg, err := parseArgs([]string{"run", "--pipelines", "d", "--brokers", " a:1, b:2 ,", "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "u", "--tls"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.run.conn.Brokers, ","); got != "a:1,b:2" || cfg.run.conn.SASLPassword != "s3cret" || !cfg.run.conn.TLS {
		t.Errorf("parsed %+v", cfg.run)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The reload rules, without Kafka: a broken edit keeps the last good
// revision, a name defined twice is refused, deleting a file removes its
// pipeline, and test files and hidden files are not pipelines.
func TestPipelineDirScan(t *testing.T) {
	dir := t.TempDir()
	pd := newPipelineDir(dir, all.New())
	names := func() string {
		var s []string
		for _, p := range pd.desired() {
			s = append(s, p.Plan.Name+"@"+p.Revision)
		}
		return strings.Join(s, ",")
	}
	a := filepath.Join(dir, "a.yaml")
	writeFile(t, a, pipelineV1)
	writeFile(t, filepath.Join(dir, "a_test.yaml"), "not: a pipeline\n")
	writeFile(t, filepath.Join(dir, ".#a.yaml"), "editor lock file\n")
	changed, errs, _, err := pd.scan()
	if err != nil || len(errs) != 0 || !changed {
		t.Fatalf("first scan: changed=%v errs=%v err=%v", changed, errs, err)
	}
	v1 := "scale@" + revision([]byte(pipelineV1))
	if names() != v1 {
		t.Fatalf("desired = %s, want %s", names(), v1)
	}
	if changed, errs, _, _ := pd.scan(); changed || len(errs) != 0 {
		t.Fatalf("rescan without changes: changed=%v errs=%v", changed, errs)
	}

	writeFile(t, a, pipelineV1+"  bogus: [\n")
	changed, errs, _, _ = pd.scan()
	if changed || len(errs) != 1 || !strings.HasPrefix(errs[0].messages()[0], a+":") {
		t.Fatalf("broken edit: changed=%v errs=%v", changed, errs)
	}
	if names() != v1 {
		t.Fatalf("after a broken edit desired = %s, want the previous %s", names(), v1)
	}

	writeFile(t, filepath.Join(dir, "b.yaml"), pipelineV1+"# same name\n")
	if _, errs, _, _ = pd.scan(); len(errs) != 1 || !strings.Contains(errs[0].err.Error(), `pipeline "scale" is also defined in `+a) {
		t.Fatalf("duplicate name: errs=%v", errs)
	}

	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	if changed, _, _, _ := pd.scan(); !changed || names() != "" {
		t.Fatalf("after deleting: changed=%v desired=%s", changed, names())
	}
}

// A reload that would make a stateful step's state unreadable is refused
// (the running revision stays) unless the step says reset: true, and then
// the reset is reported.
func TestPipelineDirStateCheck(t *testing.T) {
	reg := all.New().Clone()
	if err := reg.Register(catalog.Spec{
		Name: "count", Summary: "Counts per key (test operator).",
		Config: `{"type": "object", "properties": {"by": {"type": "string"}, "window": {"type": "string"}}}`,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"window"}},
		New: func(*catalog.Build, catalog.Config) (catalog.Operator, error) {
			return catalog.OperatorFunc(func(ctx context.Context, r *record.Record, out catalog.Output) error { return out.Next(ctx, r) }), nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pd := newPipelineDir(dir, reg)
	f := filepath.Join(dir, "counts.yaml")
	src := func(window, extra string) string {
		return "apiVersion: sluice/v1\nkind: Pipeline\nmetadata: {name: counts}\nspec:\n  source: {topic: in}\n  steps:\n" +
			"    - count: {by: url, window: " + window + "}\n" + extra + "  sink: {topic: out}\n"
	}
	writeFile(t, f, src("1m", ""))
	if _, errs, _, err := pd.scan(); err != nil || len(errs) != 0 {
		t.Fatalf("first scan: %v %v", errs, err)
	}
	running := pd.desired()[0].Revision

	writeFile(t, f, src("5m", ""))
	changed, errs, _, _ := pd.scan()
	if changed || len(errs) != 1 || !strings.Contains(errs[0].messages()[0], f+":7:7: step count: key or state shape changed") {
		t.Fatalf("reshaped without reset: changed=%v errs=%v", changed, errs)
	}
	if pd.desired()[0].Revision != running {
		t.Fatal("the refused revision replaced the running one")
	}

	writeFile(t, f, src("5m", "      reset: true\n"))
	changed, errs, resets, _ := pd.scan()
	if !changed || len(errs) != 0 || len(resets) != 1 || !strings.Contains(resets[0], "step count starts empty") {
		t.Fatalf("reshaped with reset: changed=%v errs=%v resets=%v", changed, errs, resets)
	}
}

// runner run accepts stateful steps: the runtime keeps their state in
// changelogged stores (internal/runtime's TestStatefulRestarts, e2e's
// TestStatefulCrash), on disk when the pipeline asks for it.
func TestPipelineDirAcceptsState(t *testing.T) {
	reg := all.New()
	dir := t.TempDir()
	f := filepath.Join(dir, "counts.yaml")
	writeFile(t, f, "apiVersion: sluice/v1\nkind: Pipeline\nmetadata: {name: counts}\nspec:\n  source: {topic: in}\n  steps:\n"+
		"    - window: {tumbling: 1m, grace: 0s, aggregates: {n: count}}\n  sink: {topic: out}\n  state: {store: disk}\n")
	pd := newPipelineDir(dir, reg)
	changed, errs, _, err := pd.scan()
	if err != nil || !changed || len(errs) != 0 {
		t.Fatalf("changed=%v errs=%v err=%v", changed, errs, err)
	}
	if d := pd.desired(); len(d) != 1 || d[0].Plan.Name != "counts" || d[0].Plan.StateStore != pipeline.StoreDisk {
		t.Fatalf("desired %+v", d)
	}
}

const enrichPipeline = `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: enrich}
spec:
  source: {topic: orders}
  steps:
    - join: {table: customers, on: customer_id, as: customer, type: left}
  sink: {topic: enriched}
`

// A join on the embedded cluster, fed and read with kcat: the runner
// creates the stream and the (compacted) table topic with the same
// partition count, the table is produced by kcat with Kafka's default
// partitioner (murmur2, as docs/runner.md tells kcat users to choose), the
// orders are repartitioned by customer id, and every order meets its
// customer's row.
func TestRunJoinWithKcat(t *testing.T) {
	kcat := needKcat(t)
	bin := buildRunner(t)
	dir := t.TempDir()
	kafka, ops := freePort(t), freePort(t)
	if err := os.WriteFile(filepath.Join(dir, "enrich.yaml"), []byte(enrichPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	cmd := exec.Command(bin, "run", "--pipelines", dir, "--embedded-addr", kafka, "--listen", ops, "--topic-partitions", "3",
		"--commit-interval", "50ms", "--session-timeout", "6s", "--shutdown-timeout", "10s")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	logs := func() string { return "--- stdout\n" + stdout.String() + "--- stderr\n" + stderr.String() }
	eventually(t, 20*time.Second, "pipeline enrich running", func() bool {
		_, body, err := httpGet("http://" + ops + "/status")
		return err == nil && strings.Contains(body, `"state": "running"`)
	}, logs)

	produce := func(topic string, lines []string, args ...string) {
		t.Helper()
		c := exec.Command(kcat, append([]string{"-P", "-b", kafka, "-t", topic, "-K:"}, args...)...)
		c.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("kcat -P %s: %v\n%s\n%s", topic, err, out, logs())
		}
	}
	var customers, orders, want []string
	for i := range 12 {
		customers = append(customers, fmt.Sprintf(`c%d:{"tier":"t%d"}`, i, i))
	}
	for i := range 30 {
		orders = append(orders, fmt.Sprintf(`o%d:{"order":%d,"customer_id":"c%d"}`, i, i, i%13))
		row := fmt.Sprintf(`{"tier":"t%d"}`, i%13)
		if i%13 == 12 {
			row = "null" // c12 is not in the table
		}
		// The input's bytes with the row appended (the join is the
		// last step: engine.FieldSetter).
		want = append(want, fmt.Sprintf(`c%d {"order":%d,"customer_id":"c%d","customer":%s}`, i%13, i, i%13, row))
	}
	produce("customers", customers, "-X", "partitioner=murmur2_random")
	// The orders come once the table is in (the join stage, stage 1, has
	// read its 12 rows): a task's stream waits for its table only when the
	// task starts, and the table was empty then.
	eventually(t, 20*time.Second, "the table read", func() bool {
		_, m, err := httpGet("http://" + ops + "/metrics")
		return err == nil && strings.Contains(m, `sluice_records_in_total{pipeline="enrich",stage="1"} 12`)
	}, logs)
	produce("orders", orders)
	slices.Sort(want)
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := exec.Command(kcat, "-C", "-b", kafka, "-t", "enriched", "-o", "beginning", "-e", "-q",
			"-X", "isolation.level=read_committed", "-f", "%k %s\n")
		out, err := c.Output()
		got = strings.Split(strings.TrimSpace(string(out)), "\n")
		slices.Sort(got)
		if err == nil && strings.Join(got, "\n") == strings.Join(want, "\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kcat -C read:\n%s\nwant:\n%s\n(last error %v)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), err, logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
