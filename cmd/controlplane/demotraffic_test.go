package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/cmd/controlplane/demo"
	"github.com/sluicehq/sluice/internal/demotraffic"
	"github.com/sluicehq/sluice/internal/driver"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// The demo project's pipelines compile and pass their tests, as the push
// that seeds the repository requires.
func TestDemoPipelinesPassTheirTests(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, demo.Files); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum, err := (&driver.Runner{Registry: all.New(), Out: &out}).Run(context.Background(), dir)
	if err != nil || !sum.OK() || sum.Passed < 7 {
		t.Fatalf("%+v %v\n%s", sum, err, out.String())
	}
}

// Half an hour of generated traffic through each demo pipeline on the
// in-memory driver: every pipeline has outputs (a new user sees every
// output topic fill after `make dev`), and nothing goes to a DLQ.
func TestDemoTrafficFeedsEveryPipeline(t *testing.T) {
	start := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	g := demotraffic.New(1, start)
	var recs []demotraffic.Record
	for i := 1; i <= 30*60; i++ {
		recs = append(recs, g.Tick(start.Add(time.Duration(i)*time.Second))...)
	}
	files, err := fs.Sub(demo.Files, "pipelines")
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := fs.Glob(files, "*.yaml")
	ctx := context.Background()
	n := 0
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.yaml") {
			continue
		}
		n++
		src, _ := fs.ReadFile(files, p)
		plan, err := (&pipeline.Compiler{Registry: all.New(), Files: files}).Compile(p, src)
		if err != nil {
			t.Fatal(err)
		}
		d, err := driver.New(plan)
		if err != nil {
			t.Fatal(err)
		}
		fed := 0
		for _, r := range recs {
			if r.Topic != plan.Source.Topic {
				continue
			}
			b, _ := json.Marshal(r.Value)
			if err := d.Produce(ctx, engine.Message{Key: []byte(r.Key), Value: b, Timestamp: r.Time}); err != nil {
				t.Fatal(err)
			}
			fed++
		}
		if err := d.Advance(ctx, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		outs := d.Topic(plan.Sink.Topic)
		kinds := map[string]int{}
		for _, m := range outs {
			var v map[string]any
			_ = json.Unmarshal(m.Value, &v)
			if e, ok := v["event"].(string); ok {
				kinds[e]++
			}
		}
		t.Logf("%s: %d records in, %d out to %s %v", filepath.Base(p), fed, len(outs), plan.Sink.Topic, kinds)
		if fed == 0 || len(outs) == 0 {
			t.Errorf("%s: %d records in, none out", p, fed)
		}
		if dlq := d.Topic(plan.DLQ); len(dlq) > 0 {
			t.Errorf("%s: %d records in the DLQ, the first %s %s", p, len(dlq), dlq[0].Value, dlq[0].Headers)
		}
		// The fleet's driving events and idling show each kind they report.
		want := map[string][]string{
			"fleet-safety.yaml": {"speeding", "harsh_braking", "harsh_acceleration"},
			"fleet-idle.yaml":   {"idling", "idle"},
			"fleet-zones.yaml":  {"enter", "exit", "dwell"},
			"cold-chain.yaml":   {"alert", "clear"},
		}[filepath.Base(p)]
		for _, k := range want {
			if kinds[k] == 0 {
				t.Errorf("%s: no %s event in half an hour", p, k)
			}
		}
	}
	if n != 7 {
		t.Fatalf("%d demo pipelines, want 7", n)
	}
}

// `controlplane dev` seeds the demo project next to the playground: the
// administrator owns it, its first push (validated like any other: compile
// and tests) is accepted, and the quick start says how to read an output.
func TestDevSeedsDemoProject(t *testing.T) {
	dir, err := os.MkdirTemp("", "sluice-dev-demo-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755) // PostgreSQL may run as another user
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := start(t, []string{"DATABASE_URL="}, "dev", "--data-dir", filepath.Join(dir, ".sluice"), "--listen", "127.0.0.1:0", "--no-runner")
	base := p.waitFor(t, urlRE)
	creds := strings.SplitN(p.waitFor(t, loginRE), " / ", 2)
	if !strings.Contains(p.out(), `Demo project "demo"`) {
		t.Errorf("the quick start does not mention the demo project:\n%s", p.out())
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	if status, _ := call(t, hc, "POST", base+"/api/v1/auth/login", "", "", map[string]any{"email": creds[0], "password": creds[1]}); status != 200 {
		t.Fatalf("login: %d", status)
	}
	status, projects := call(t, hc, "GET", base+"/api/v1/projects", "", "", nil)
	var demoID string
	items, _ := projects["items"].([]any)
	for _, it := range items {
		if m, _ := it.(map[string]any); m["name"] == "demo" {
			demoID, _ = m["id"].(string)
		}
	}
	if status != 200 || demoID == "" {
		t.Fatalf("projects: %d %v", status, projects)
	}
	status, pipelines := call(t, hc, "GET", base+"/api/v1/projects/"+demoID+"/pipelines", "", "", nil)
	if items, _ := pipelines["items"].([]any); status != 200 || len(items) != 7 {
		t.Fatalf("the demo project's pipelines: %d %v", status, pipelines)
	}
	p.stop(t)
}
