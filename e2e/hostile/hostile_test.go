// Package hostile attacks a real control plane and a real runner the way a
// hostile project member and a bad producer would (issue 16): every script
// attack of the script operator's testdata and every deep-YAML attack of
// the compiler's, through the API and through git push; parallel wrong
// logins; bad bytes. The processes must stay up, another project's requests
// and another pipeline's records must keep flowing during the attacks, and
// the attacker must get a clear 4xx or a DLQ reason.
package hostile

import (
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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/e2e/proctest"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
)

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

// client calls the API with a token.
type client struct {
	t     *testing.T
	base  string
	token string
}

func (c client) do(method, path string, body any) (int, string) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func (c client) must(method, path string, body any, want int) map[string]any {
	c.t.Helper()
	code, out := c.do(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, out)
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(out), &m)
	return m
}

// scriptAttacks are the script operator's attack files.
func scriptAttacks(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../../catalog/operators/script/testdata/attacks/*.js")
	if err != nil || len(files) < 10 {
		t.Fatalf("script attacks: %v %v", files, err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".js")] = string(b)
	}
	return out
}

func scriptPipeline(name, code string) string {
	var body strings.Builder
	for _, line := range strings.Split(strings.TrimRight(code, "\n"), "\n") {
		body.WriteString("          " + line + "\n")
	}
	return fmt.Sprintf(`apiVersion: sluice/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {topic: %s}
  steps:
    - script:
        source: |
%s          function process(r) { return r.value; }
  sink: {topic: %s.out}
`, name, name, body.String(), name)
}

// TestHostileTenant attacks the control plane through the API and git
// while another project works, then checks the process's peak memory.
func TestHostileTenant(t *testing.T) {
	dataDir := t.TempDir()
	addr := proctest.FreeAddr(t)
	cp := proctest.Start(t, "controlplane", nil, bin.controlplane, "dev", "--no-runner", "--database-url", pgtest.NewDatabase(t),
		"--data-dir", dataDir, "--listen", addr)
	base := "http://" + addr
	kafkatest.Eventually(t, 60*time.Second, "the control plane", func() bool {
		resp, err := http.Get(base + "/api/v1/openapi.json")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	creds := proctest.Credentials(t, filepath.Join(dataDir, "credentials"))
	attacker := client{t: t, base: base, token: creds["SLUICE_TOKEN"]}
	projA := "/api/v1/projects/" + creds["SLUICE_PROJECT_ID"]

	// The victim: another project, its own owner token, made by the admin.
	jar, _ := cookiejar.New(nil)
	admin := &http.Client{Jar: jar}
	lb, _ := json.Marshal(map[string]string{"email": creds["SLUICE_ADMIN_EMAIL"], "password": creds["SLUICE_ADMIN_PASSWORD"]})
	resp, err := admin.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(lb))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin login: %v %v", err, resp)
	}
	resp.Body.Close()
	var me struct {
		CSRFToken string `json:"csrf_token"`
	}
	resp, _ = admin.Get(base + "/api/v1/me")
	_ = json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	adminDo := func(method, path string, body any) map[string]any {
		t.Helper()
		bb, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(bb))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", me.CSRFToken)
		resp, err := admin.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			out, _ := io.ReadAll(resp.Body)
			t.Fatalf("admin %s %s: %v %d %s", method, path, err, resp.StatusCode, out)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	orgs := adminDo("GET", "/api/v1/orgs", nil)
	org := orgs["items"].([]any)[0].(map[string]any)["id"].(string)
	projB := adminDo("POST", "/api/v1/projects", map[string]any{"org_id": org, "name": "victim"})["id"].(string)
	tok := adminDo("POST", "/api/v1/projects/"+projB+"/tokens", map[string]any{"name": "victim", "role": "owner"})["secret"].(string)
	victim := client{t: t, base: base, token: tok}
	pipeB := victim.must("POST", "/api/v1/projects/"+projB+"/pipelines", map[string]any{"name": "orders"}, 201)["id"].(string)

	// The victim works all through the attacks: reads and valid revisions.
	var ok, bad atomic.Int64
	var badMsg atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		src := "apiVersion: sluice/v1\nkind: Pipeline\nmetadata: {name: orders}\nspec:\n  source: {topic: orders}\n  steps:\n    - filter: amount % 2 == 0\n  sink: {topic: even}\n"
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var code int
			var out string
			if i%4 == 0 {
				code, out = victim.do("POST", "/api/v1/projects/"+projB+"/pipelines/"+pipeB+"/revisions", map[string]any{"source": src})
			} else {
				code, out = victim.do("GET", "/api/v1/projects/"+projB+"/pipelines", nil)
			}
			if code >= 200 && code < 300 {
				ok.Add(1)
			} else {
				bad.Add(1)
				badMsg.Store(fmt.Sprintf("%d %s", code, out))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	before := ok.Load()
	// 1. Every script attack as a revision's top-level code: 422 naming a
	// budget, never a dead control plane.
	for name, code := range scriptAttacks(t) {
		pname := "atk-" + strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		id := attacker.must("POST", projA+"/pipelines", map[string]any{"name": pname}, 201)["id"].(string)
		status, out := attacker.do("POST", projA+"/pipelines/"+id+"/revisions", map[string]any{"source": scriptPipeline(pname, code)})
		if status != 422 || !strings.Contains(out, "budget") && !strings.Contains(out, "ran too long") {
			t.Errorf("script attack %s: %d %s; want 422 naming the budget or the time limit", name, status, brief(out))
		}
		if !cp.Alive() {
			t.Fatalf("the control plane died on script attack %s", name)
		}
		t.Logf("after %s: peak %d MiB", name, cp.PeakRSS(t)>>20)
	}
	// 2. Deep and wide YAML: a positioned 422, fast.
	yamls, _ := filepath.Glob("../../internal/pipeline/testdata/attacks/*.yaml")
	if len(yamls) == 0 {
		t.Fatal("no YAML attacks")
	}
	id := attacker.must("POST", projA+"/pipelines", map[string]any{"name": "deep"}, 201)["id"].(string)
	for _, f := range yamls {
		src, _ := os.ReadFile(f)
		start := time.Now()
		status, out := attacker.do("POST", projA+"/pipelines/"+id+"/revisions", map[string]any{"source": string(src)})
		if status != 422 || time.Since(start) > 10*time.Second {
			t.Errorf("YAML attack %s: %d in %s: %s", filepath.Base(f), status, time.Since(start), brief(out))
		}
	}
	// 3. The same through git push: refused with the position, main unmoved.
	gitDir := t.TempDir()
	home := t.TempDir()
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = gitDir
		cmd.Env = append(os.Environ(), "HOME="+home, "GIT_TERMINAL_PROMPT=0", "GIT_AUTHOR_NAME=x", "GIT_AUTHOR_EMAIL=x@x", "GIT_COMMITTER_NAME=x", "GIT_COMMITTER_EMAIL=x@x")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	url := "http://git:" + creds["SLUICE_TOKEN"] + "@" + addr + "/git/default/playground.git"
	if out, err := git("clone", "-q", url, "."); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	attacks := scriptAttacks(t)
	_ = os.WriteFile(filepath.Join(gitDir, "pipelines", "bomb.yaml"), []byte(scriptPipeline("bomb", attacks["repeat"])), 0o644)
	deep, _ := os.ReadFile(yamls[0])
	_ = os.WriteFile(filepath.Join(gitDir, "pipelines", "deep.yaml"), deep, 0o644)
	if out, err := git("add", "-A"); err != nil {
		t.Fatal(out)
	}
	if out, err := git("commit", "-qm", "bombs"); err != nil {
		t.Fatal(out)
	}
	out, err := git("push", "origin", "main")
	if err == nil || !strings.Contains(out, "pipelines/bomb.yaml:") || !strings.Contains(out, "budget") || !strings.Contains(out, "pipelines/deep.yaml:") {
		t.Errorf("the bomb push was not refused with positions:\n%s", out)
	}
	// 4. Wrong passwords in parallel: 401 or 429, never 5xx.
	var lwg sync.WaitGroup
	var fivexx atomic.Int64
	for range 40 {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			b, _ := json.Marshal(map[string]string{"email": creds["SLUICE_ADMIN_EMAIL"], "password": "wrong-password-123"})
			resp, err := http.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(b))
			if err == nil {
				if resp.StatusCode >= 500 && resp.StatusCode != 503 {
					fivexx.Add(1)
				}
				resp.Body.Close()
			}
		}()
	}
	lwg.Wait()
	if fivexx.Load() > 0 {
		t.Errorf("%d logins answered 5xx", fivexx.Load())
	}
	// 5. NUL bytes in text: 422.
	if status, out := attacker.do("POST", projA+"/pipelines", map[string]any{"name": "x", "description": "a\x00b"}); status != 422 {
		t.Errorf("NUL in a description: %d %s", status, out)
	}

	close(stop)
	wg.Wait()
	if !cp.Alive() {
		t.Fatal("the control plane died")
	}
	if bad.Load() > 0 {
		t.Errorf("the victim project got %d failed requests during the attacks, e.g. %v", bad.Load(), badMsg.Load())
	}
	if served := ok.Load() - before; served < 20 {
		t.Errorf("the victim project got only %d requests through during the attacks", served)
	}
	peak := cp.PeakRSS(t)
	t.Logf("control plane peak RSS during the attacks: %d MiB; victim requests served: %d", peak>>20, ok.Load()-before)
	// Issue 16 asks for a peak under 512 MiB. Scripts run in child
	// processes with a hard memory limit (script.Isolate), so an attack's
	// memory is its child's, never the control plane's: measured 210 MiB
	// (115 MiB through the script attacks), from 310–529 MiB when scripts
	// ran in the control plane (see docs/performance.md "Hostile tenants").
	if peak > 512<<20 {
		t.Errorf("the control plane's peak RSS was %d MiB, over 512 MiB", peak>>20)
	}
}

func brief(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// TestHostileProducer feeds a script pipeline records that attack it
// while another pipeline of the same runner works: the victim processes
// every record, the attacked records go to the DLQ with reason resource
// or timeout, and the runner stays up with its memory untouched.
func TestHostileProducer(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "orders", 2)
	kafkatest.CreateTopic(t, brokers, "events", 2)
	dir := t.TempDir()
	victim := "apiVersion: sluice/v1\nkind: Pipeline\nmetadata: {name: orders}\nspec:\n  source: {topic: orders}\n  steps:\n    - filter: id % 2 == 0\n  sink: {topic: even}\n"
	// Each attack record picks an attack by name: every built-in the
	// memory guards cover, and a backtracking regex.
	attacker := `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: events}
spec:
  source: {topic: events}
  steps:
    - script:
        timeout: 500ms
        source: |
          function process(r) {
            var a = r.value.attack;
            if (a === "repeat") return {s: "x".repeat(1e9)};
            if (a === "buffer") return {n: new ArrayBuffer(4e9).byteLength};
            if (a === "fill") return {n: new Array(1e9).fill(0).length};
            if (a === "double") { var s = "xx"; for (;;) s += s; }
            if (a === "regex") return {m: /^(?=(a+)+$)/.test("a".repeat(40) + "!")};
            return r.value;
          }
  sink: {topic: events.out}
  errors: {dlq: events.dlq}
`
	for name, src := range map[string]string{"orders.yaml": victim, "events.yaml": attacker} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := proctest.Start(t, "runner", nil, bin.runner, "run", "--pipelines", dir, "--brokers", strings.Join(brokers, ","), "--listen", "127.0.0.1:0")
	kafkatest.Eventually(t, 60*time.Second, "both pipelines to start", func() bool {
		return strings.Count(r.Output(), "pipeline ") >= 2 && strings.Contains(r.Output(), "pipeline events")
	})

	cl := kafkatest.Client(t, brokers)
	ctx := context.Background()
	// The victim's traffic runs all through the attacks.
	const victims = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range victims {
			_ = cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: fmt.Appendf(nil, `{"id":%d}`, i)})
			time.Sleep(10 * time.Millisecond)
		}
	}()
	attacks := []string{"repeat", "buffer", "fill", "double", "regex"}
	for i, a := range attacks {
		_ = cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: fmt.Appendf(nil, `{"attack":%q,"i":%d}`, a, i)})
		_ = cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: fmt.Appendf(nil, `{"ok":%d}`, i)})
	}
	<-done
	even := kafkatest.ReadCommitted(t, brokers, "even", victims/2, 90*time.Second)
	if len(even) != victims/2 {
		t.Errorf("the victim pipeline wrote %d of %d records during the attacks", len(even), victims/2)
	}
	dlq := kafkatest.ReadCommitted(t, brokers, "events.dlq", len(attacks), 90*time.Second)
	reasons := map[string]int{}
	for _, rec := range dlq {
		for _, h := range rec.Headers {
			if h.Key == "sluice.reason" {
				reasons[string(h.Value)]++
			}
		}
	}
	if len(dlq) != len(attacks) || reasons["resource"]+reasons["timeout"] != len(attacks) || reasons["resource"] < 3 {
		t.Errorf("dead letters %d with reasons %v; want %d, each resource or timeout (at least 3 resource)", len(dlq), reasons, len(attacks))
	}
	outs := kafkatest.ReadCommitted(t, brokers, "events.out", len(attacks), 60*time.Second)
	if len(outs) != len(attacks) {
		t.Errorf("the attacked pipeline passed %d of its %d good records", len(outs), len(attacks))
	}
	if !r.Alive() {
		t.Fatal("the runner died")
	}
	peak := r.PeakRSS(t)
	t.Logf("runner peak RSS during the attacks: %d MiB; dead letters %v", peak>>20, reasons)
	// Scripts run in child processes with a hard memory limit (the
	// runner's default, --isolate-scripts): an attack grows the child,
	// which dies, never the runner. 48 MiB measured; it was 0.7-1 GiB
	// when scripts ran in the runner's own heap under a watchdog.
	if peak > 256<<20 {
		t.Errorf("the runner's peak RSS was %d MiB, over 256 MiB", peak>>20)
	}
}
