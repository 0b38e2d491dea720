package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/gitops/agentserver"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pgnotify"
	"github.com/sluicehq/sluice/provisioning/terraform"
	"github.com/sluicehq/sluice/provisioning/terraform/localtest"
)

// fleetWorld is a control plane as cmd/controlplane composes it (the API,
// the runner protocol and the provisioning reconciler) with a real
// terraform and a real runner binary, so a local fleet's runners start,
// register and stop for real.
type fleetWorld struct {
	e       *env
	owner   *client
	project string
	root    string
}

func newFleetWorld(t *testing.T) *fleetWorld {
	t.Helper()
	ctx := context.Background()
	// CI has no excuse to skip: `make setup` installs a pinned terraform.
	bin, err := terraform.FindBinary(ctx, "", filepath.Join("..", "..", ".tools", "bin"))
	if err != nil {
		t.Fatalf("%v (this test runs real terraform: run `make setup`)", err)
	}
	runner := filepath.Join(t.TempDir(), "runner")
	build := exec.CommandContext(ctx, "go", "build", "-o", runner, "github.com/sluicehq/sluice/cmd/runner")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/runner: %v\n%s", err, out)
	}
	e := newEnv(t)
	log := slog.New(slog.NewTextHandler(e.logs, nil))
	listener := pgnotify.New(e.pool, deploy.Channel, log)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/agent/", agentserver.New(deploy.New(e.pool, all.New()), listener, log))
	mux.Handle("/", e.srv)
	e.ts = httptest.NewServer(mux)
	t.Cleanup(e.ts.Close)

	root := t.TempDir()
	rec, err := terraform.New(terraform.Config{Pool: e.pool, DatabaseURL: e.pool.Config().ConnString(), Root: root, Binary: bin,
		ControlPlaneURL: e.ts.URL, RunnerBinary: runner, Poll: 100 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = listener.Run(runCtx) }()
	go func() { defer close(done); _ = rec.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		// A failed test must not leave runners behind.
		for _, pid := range localtest.Pids(root) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	t.Logf("terraform: %s", bin)

	a := e.admin
	org := a.do("POST", "/api/v1/orgs", map[string]any{"name": "infra"}).want(201).str("id")
	w := &fleetWorld{e: e, root: root}
	w.project = a.do("POST", "/api/v1/projects", map[string]any{"org_id": org, "name": "fleets"}).want(201).str("id")
	secret := a.do("POST", "/api/v1/projects/"+w.project+"/tokens", map[string]any{"name": "ops", "role": "owner"}).want(201).json()["secret"].(string)
	w.owner = e.tokenClient(secret)
	return w
}

// waitRun polls the run until it is in one of states, failing with its
// error and log if it fails instead.
func (w *fleetWorld) waitRun(t *testing.T, fleet string, n int, states ...string) map[string]any {
	t.Helper()
	path := fmt.Sprintf("/api/v1/projects/%s/fleets/%s/runs/%d", w.project, fleet, n)
	deadline := time.Now().Add(60 * time.Second)
	for {
		run := w.owner.do("GET", path, nil).want(200).json()
		state := run["state"].(string)
		for _, s := range states {
			if state == s {
				return run
			}
		}
		if run["finished_at"] != nil || time.Now().After(deadline) {
			logs := w.owner.do("GET", path+"/logs", nil).want(200).json()["items"].([]any)
			var lines []string
			for _, l := range logs {
				lines = append(lines, l.(map[string]any)["line"].(string))
			}
			t.Fatalf("run %d is %s (%v: %v), want %v; log:\n%s", n, state, run["error_kind"], run["error"], states, strings.Join(lines, "\n"))
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func planOf(t *testing.T, run map[string]any) (add, change, destroy int, addrs []string) {
	t.Helper()
	p, ok := run["plan"].(map[string]any)
	if !ok {
		t.Fatalf("run %v has no plan", run["number"])
	}
	for _, c := range p["changes"].([]any) {
		c := c.(map[string]any)
		addrs = append(addrs, c["action"].(string)+" "+c["address"].(string))
	}
	return int(p["add"].(float64)), int(p["change"].(float64)), int(p["destroy"].(float64)), addrs
}

// liveRunners counts the fleet's registered runners that report.
func (w *fleetWorld) liveRunners(fleet string) int {
	items := w.owner.do("GET", "/api/v1/projects/"+w.project+"/fleets/"+fleet+"/runners", nil).want(200).json()["items"].([]any)
	n := 0
	for _, it := range items {
		if it.(map[string]any)["live"] == true {
			n++
		}
	}
	return n
}

// A local fleet's whole life through the API and real terraform: create
// (plan 2 to add), approve (two runner processes register), scale to 3
// (plan 1 to add, nothing else), destroy (processes gone, state empty). On
// the way: the plan streams over SSE, a second run is refused while one
// is open, and the fleet record cannot go while terraform manages it.
func TestLocalFleetThroughTerraform(t *testing.T) {
	start := time.Now()
	w := newFleetWorld(t)
	brokers := kafkatest.Brokers(t)
	fleets := "/api/v1/projects/" + w.project + "/fleets"
	c := w.owner

	f := c.do("POST", fleets, map[string]any{"name": "edge", "module": "local", "runners": 2,
		"settings": map[string]any{"kafka_brokers": brokers}}).want(201).json()
	fleet := f["id"].(string)
	base := fleets + "/" + fleet

	// Create plans: 2 runners to add, and nothing else.
	run := w.waitRun(t, fleet, 1, "planned")
	add, change, destroy, addrs := planOf(t, run)
	if add != 2 || change != 0 || destroy != 0 {
		t.Fatalf("create plan: %d to add, %d to change, %d to destroy (%v), want 2, 0, 0", add, change, destroy, addrs)
	}
	want := []string{"create module.fleet.terraform_data.runner[0]", "create module.fleet.terraform_data.runner[1]"}
	if strings.Join(addrs, ",") != strings.Join(want, ",") {
		t.Errorf("create plan changes %v, want %v", addrs, want)
	}
	if got := run["plan"].(map[string]any)["text"]; got != "2 to add, 0 to change, 0 to destroy" {
		t.Errorf("plan text %q", got)
	}
	if !strings.HasPrefix(run["terraform"].(string), "terraform ") && !strings.HasPrefix(run["terraform"].(string), "tofu ") {
		t.Errorf("the run does not say which terraform it used: %q", run["terraform"])
	}

	// The log streams over SSE (what `curl -N` and the IDE read) and ends
	// when the plan waits for review.
	sse := streamEvents(t, w.e.ts.URL+base+"/runs/1/logs", c.token)
	if !strings.Contains(sse, "event: end") || !strings.Contains(sse, "2 to add, 0 to change, 0 to destroy") || !strings.Contains(sse, "event: progress") {
		t.Errorf("SSE stream lacks the plan, progress or end:\n%s", sse)
	}
	// One run at a time: a second one is refused while the first is open.
	wantProblem(t, c.do("POST", base+"/scale", map[string]any{"runners": 5}), http.StatusConflict, "owner, with run 1 open")

	c.do("POST", base+"/runs/1/approve", nil).want(200)
	run = w.waitRun(t, fleet, 1, "applied")
	if p := run["progress"].(map[string]any); p["done"].(float64) != 2 || p["total"].(float64) != 2 {
		t.Errorf("apply progress %v, want 2 of 2", p)
	}
	kafkatest.Eventually(t, 20*time.Second, "2 live runners", func() bool { return w.liveRunners(fleet) == 2 })
	// The runners take assignments: a pipeline deployed to the fleet runs
	// on both, at the deployed revision.
	kafkatest.CreateTopic(t, brokers, "orders", 2)
	pipe := c.do("POST", "/api/v1/projects/"+w.project+"/pipelines", map[string]any{"name": "orders"}).want(201).str("id")
	digest := c.do("POST", "/api/v1/projects/"+w.project+"/pipelines/"+pipe+"/revisions",
		map[string]any{"source": fmt.Sprintf(examplePipeline, "orders")}).want(201).str("digest")
	c.do("POST", "/api/v1/projects/"+w.project+"/deployments", map[string]any{"fleet_id": fleet, "pipeline_id": pipe}).want(201)
	kafkatest.Eventually(t, 30*time.Second, "both runners to run the deployed pipeline", func() bool {
		n := 0
		for _, it := range c.do("GET", base+"/runners", nil).want(200).json()["items"].([]any) {
			rep, _ := it.(map[string]any)["report"].(map[string]any)
			pls, _ := rep["pipelines"].([]any)
			for _, pl := range pls {
				pl := pl.(map[string]any)
				if pl["name"] == "orders" && pl["digest"] == digest && pl["state"] == "running" {
					n++
				}
			}
		}
		return n == 2
	})
	wantProblem(t, c.do("DELETE", base, nil), http.StatusConflict, "deleting a provisioned fleet")

	// Scale to 3: exactly one runner to add; the two running stay.
	c.do("POST", base+"/scale", map[string]any{"runners": 3}).want(201)
	run = w.waitRun(t, fleet, 2, "planned")
	if add, change, destroy, addrs := planOf(t, run); add != 1 || change != 0 || destroy != 0 || addrs[0] != "create module.fleet.terraform_data.runner[2]" {
		t.Fatalf("scale plan: %d to add, %d to change, %d to destroy (%v), want 1, 0, 0", add, change, destroy, addrs)
	}
	c.do("POST", base+"/runs/2/approve", nil).want(200)
	w.waitRun(t, fleet, 2, "applied")
	kafkatest.Eventually(t, 20*time.Second, "3 live runners", func() bool { return w.liveRunners(fleet) == 3 })
	pids := localtest.Pids(w.root)
	if len(pids) != 3 {
		t.Fatalf("pid files: %v, want 3", pids)
	}
	for _, pid := range pids {
		if !localtest.Alive(pid) {
			t.Errorf("runner pid %d is not running", pid)
		}
	}

	// Destroy: the plan removes all three; applying it stops them.
	c.do("POST", base+"/destroy", nil).want(201)
	run = w.waitRun(t, fleet, 3, "planned")
	if add, change, destroy, addrs := planOf(t, run); add != 0 || change != 0 || destroy != 3 {
		t.Fatalf("destroy plan: %d to add, %d to change, %d to destroy (%v), want 0, 0, 3", add, change, destroy, addrs)
	}
	c.do("POST", base+"/runs/3/approve", nil).want(200)
	w.waitRun(t, fleet, 3, "applied")
	for _, pid := range pids {
		if localtest.Alive(pid) {
			t.Errorf("runner pid %d still runs after destroy", pid)
		}
	}
	if left := localtest.Pids(w.root); len(left) != 0 {
		t.Errorf("pid files left: %v", left)
	}
	// The state in the pg backend has no resources left.
	schema := "fleet_" + strings.ReplaceAll(fleet, "-", "")
	var state []byte
	if err := w.e.pool.QueryRow(context.Background(), "SELECT data FROM "+schema+".states WHERE name = 'default'").Scan(&state); err != nil {
		t.Fatalf("read the fleet's state: %v", err)
	}
	var st struct {
		Resources []any `json:"resources"`
	}
	if err := json.Unmarshal(state, &st); err != nil || len(st.Resources) != 0 {
		t.Errorf("state after destroy has %d resources (%v)", len(st.Resources), err)
	}
	if f := c.do("GET", base, nil).want(200).json(); f["status"] != "destroyed" {
		t.Errorf("fleet status %v, want destroyed", f["status"])
	}
	// The destroyed runners' credentials are revoked: none is live.
	items := c.do("GET", base+"/runners", nil).want(200).json()["items"].([]any)
	if len(items) != 3 {
		t.Errorf("%d runners listed after destroy, want the 3 that ran", len(items))
	}
	for _, it := range items {
		if r := it.(map[string]any); r["revoked"] != true || r["live"] != false {
			t.Errorf("runner %v after destroy: revoked %v, live %v; want revoked, not live", r["name"], r["revoked"], r["live"])
		}
	}
	c.do("DELETE", base, nil).want(204)
	t.Logf("create, scale and destroy a local fleet through terraform: %s", time.Since(start).Round(time.Millisecond))
}

// streamEvents reads an SSE stream to its end.
func streamEvents(t *testing.T, url, token string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("SSE: status %d, Content-Type %q", resp.StatusCode, ct)
	}
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

// A failing apply ends the run failed, saying why in its error and log
// (here a runner that exits at start on a bad flag); the fleet's lock is
// released, so planning again with fixed settings works.
func TestFailedFleetApplyThenRetry(t *testing.T) {
	w := newFleetWorld(t)
	brokers := kafkatest.Brokers(t)
	c := w.owner
	fleets := "/api/v1/projects/" + w.project + "/fleets"
	fleet := c.do("POST", fleets, map[string]any{"name": "flaky", "module": "local", "runners": 1,
		"settings": map[string]any{"kafka_brokers": brokers, "extra_args": []string{"--no-such-flag"}}}).want(201).str("id")
	base := fleets + "/" + fleet
	w.waitRun(t, fleet, 1, "planned")
	c.do("POST", base+"/runs/1/approve", nil).want(200)
	run := w.waitRun(t, fleet, 1, "failed")
	if run["error_kind"] != "needs_human" || !strings.Contains(run["error"].(string), "exited at start") {
		t.Errorf("failed run: %v: %v; want needs_human and the runner's exit", run["error_kind"], run["error"])
	}
	logs := string(c.do("GET", base+"/runs/1/logs", nil).want(200).body)
	if !strings.Contains(logs, "no-such-flag") {
		t.Errorf("the run's log does not show the runner's complaint:\n%s", logs)
	}
	if f := c.do("GET", base, nil).want(200).json(); f["status"] != "failed" {
		t.Errorf("fleet status %v, want failed", f["status"])
	}

	c.do("PATCH", base, map[string]any{"settings": map[string]any{"kafka_brokers": brokers}}).want(200)
	c.do("POST", base+"/runs", nil).want(201)
	w.waitRun(t, fleet, 2, "planned")
	c.do("POST", base+"/runs/2/approve", nil).want(200)
	w.waitRun(t, fleet, 2, "applied")
	kafkatest.Eventually(t, 20*time.Second, "1 live runner", func() bool { return w.liveRunners(fleet) == 1 })

	c.do("POST", base+"/destroy", nil).want(201)
	w.waitRun(t, fleet, 3, "planned")
	// Discarding a plan ends the run; a cancelled one too.
	c.do("POST", base+"/runs/3/discard", nil).want(200)
	wantProblem(t, c.do("POST", base+"/runs/3/approve", nil), http.StatusConflict, "approving a discarded run")
	c.do("POST", base+"/destroy", nil).want(201)
	w.waitRun(t, fleet, 4, "planned")
	c.do("POST", base+"/runs/4/cancel", nil).want(200)
	w.waitRun(t, fleet, 4, "cancelled")
	wantProblem(t, c.do("POST", base+"/runs/4/approve", nil), http.StatusConflict, "approving a cancelled run")
	c.do("POST", base+"/destroy", nil).want(201)
	w.waitRun(t, fleet, 5, "planned")
	c.do("POST", base+"/runs/5/approve", nil).want(200)
	w.waitRun(t, fleet, 5, "applied")
	if left := localtest.Pids(w.root); len(left) != 0 {
		t.Errorf("pid files left: %v", left)
	}
}
