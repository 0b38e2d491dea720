package gitops_test

// The control plane at idle with many connected runners: 200 simulated
// runners (gitops.SimRunner, in this process) register through a
// bootstrap token, get one deployed pipeline, then hold their long-polls
// (wait=30s, as `runner agent` asks) and post a status report every
// agentproto.HeartbeatInterval. After a warm-up the control plane
// process's CPU time and resident memory are read from /proc over a 30 s
// window. Target: RSS <= 50 MiB and CPU <= 5% of a core.

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/gitops"
	"github.com/sluicehq/sluice/internal/agentproto"
)

// idleConfig sizes one idle measurement.
type idleConfig struct {
	runners   int
	wait      time.Duration // long-poll wait
	heartbeat time.Duration
	warmup    time.Duration // after every runner holds its poll
	window    time.Duration // measured
}

// idleResult is what one idle measurement read.
type idleResult struct {
	rssMax, rssEnd, hwm int64   // control plane, bytes: max and last VmRSS in the window, VmHWM at its end
	cpuPct, pgCPUPct    float64 // % of one core over the window
	reqPerSec           float64 // polls answered + status reports, per second of the window
	heldMin             int64   // fewest long-polls held at a sample of the window
	errors              int64
	anon, file          int64 // control plane at the end of the window: RssAnon and RssFile, bytes
	heapLive, heapGoal  int64 // control plane's heap after its last GC, and the goal that GC ran for, bytes
	gcs                 int   // control plane GCs in the window
}

// idlePipeline is what every runner is assigned.
const idlePipeline = `apiVersion: sluice/v1
kind: Pipeline
metadata:
  name: clicks
  description: assigned to every simulated runner of the idle benchmark
spec:
  source: {topic: clicks, format: json}
  steps:
    - filter: 'page != nil && !(lower(agent ?? "") contains "bot")'
    - map:
        user: user
        page: lower(page)
        ms: ms
  sink: {topic: clicks.clean}
  errors: {dlq: clicks.dlq}
`

func runIdle(tb testing.TB, cfg idleConfig) idleResult {
	tb.Helper()
	p := startPlatform(tb, platformOptions{runners: cfg.runners, gcTrace: true})

	// One pipeline deployed to the fleet, before the runners come, so
	// that each one downloads a bundle and reports a pipeline.
	var pipe, rev idBody
	if err := p.api("POST", "/pipelines", map[string]string{"name": "clicks"}, &pipe, http.StatusCreated); err != nil {
		tb.Fatal(err)
	}
	if err := p.api("POST", "/pipelines/"+pipe.ID+"/revisions", map[string]string{"source": idlePipeline}, &rev, http.StatusCreated); err != nil {
		tb.Fatal(err)
	}
	if err := p.api("POST", "/deployments", map[string]string{"fleet_id": p.fleetID, "pipeline_id": pipe.ID, "revision_id": rev.ID}, nil, http.StatusCreated); err != nil {
		tb.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := gitops.SimClient()
	stats := &gitops.SimStats{}
	token := p.bootstrapToken(tb, cfg.runners)
	runners := make([]*gitops.SimRunner, cfg.runners)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		rerr error
	)
	sem := make(chan struct{}, 8)
	for i := range runners {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := gitops.RegisterSim(ctx, client, p.base, token, fmt.Sprintf("sim-%03d", i), stats)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && rerr == nil {
				rerr = err
			}
			runners[i] = r
		})
	}
	wg.Wait()
	if rerr != nil {
		tb.Fatal(rerr)
	}

	var running sync.WaitGroup
	defer running.Wait()
	defer cancel()
	for i, r := range runners {
		phase := time.Duration(i) * cfg.heartbeat / time.Duration(cfg.runners)
		running.Go(func() { r.Run(ctx, gitops.SimConfig{Wait: cfg.wait, Heartbeat: cfg.heartbeat, Phase: phase}) })
	}
	// Every runner has applied its assignments and holds a long-poll.
	deadline := time.Now().Add(time.Minute)
	for {
		applied := 0
		for _, r := range runners {
			if r.Generation() != 0 {
				applied++
			}
		}
		if applied == len(runners) && stats.Held.Load() == int64(len(runners)) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after a minute %d of %d runners applied their assignments and %d hold a long-poll; errors %d (first: %v)\n%s",
				applied, len(runners), stats.Held.Load(), stats.Errors.Load(), stats.FirstErr(), p.cp.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(cfg.warmup)

	pid, pgPID := p.cp.cmd.Process.Pid, p.postmaster()
	s0, err := gitops.ReadProc(pid)
	if err != nil {
		tb.Fatal(err)
	}
	pg0 := gitops.TreeCPU(pgPID)
	gc0 := p.lastGC()
	req0 := stats.Polls.Load() + stats.Heartbeats.Load()
	err0 := stats.Errors.Load()
	res := idleResult{rssMax: s0.RSS, heldMin: stats.Held.Load()}
	last := s0
	t := time.NewTicker(time.Second)
	for end := s0.At.Add(cfg.window); time.Now().Before(end); {
		<-t.C
		s, err := gitops.ReadProc(pid)
		if err != nil {
			tb.Fatalf("%v\n%s", err, p.cp.logTail())
		}
		res.rssMax = max(res.rssMax, s.RSS)
		res.heldMin = min(res.heldMin, stats.Held.Load())
		last = s
	}
	t.Stop()
	elapsed := last.At.Sub(s0.At)
	res.rssEnd, res.hwm, res.anon, res.file = last.RSS, last.HWM, last.Anon, last.File
	gc := p.lastGC()
	res.heapLive, res.heapGoal, res.gcs = gc.live, gc.goal, gc.n-gc0.n
	res.cpuPct = 100 * float64(last.CPU-s0.CPU) / float64(elapsed)
	res.pgCPUPct = 100 * float64(gitops.TreeCPU(pgPID)-pg0) / float64(elapsed)
	res.reqPerSec = float64(stats.Polls.Load()+stats.Heartbeats.Load()-req0) / elapsed.Seconds()
	res.errors = stats.Errors.Load() - err0
	if res.errors > 0 {
		tb.Errorf("%d failed agent calls in the window (first: %v)", res.errors, stats.FirstErr())
	}
	tb.Logf("%d runners, long-poll wait %v, heartbeat %v, %v window: control plane RSS max %.1f MiB (end %.1f = anon %.1f + file %.1f; peak since start %.1f), "+
		"Go heap live after the last GC %.1f MiB (that GC's goal %.1f MiB, %.0f s before the window's end; %d GCs in the window, %d in all), CPU %.2f%% of a core; "+
		"PostgreSQL CPU %.2f%%; %.1f agent requests/s; fewest long-polls held %d; polls answered %d, status reports %d, bundles %d",
		cfg.runners, cfg.wait, cfg.heartbeat, elapsed.Round(time.Millisecond), mib(res.rssMax), mib(res.rssEnd), mib(res.anon), mib(res.file), mib(res.hwm),
		mib(res.heapLive), mib(res.heapGoal), last.At.Sub(gc.at).Seconds(), res.gcs, gc.n, res.cpuPct,
		res.pgCPUPct, res.reqPerSec, res.heldMin, stats.Polls.Load(), stats.Heartbeats.Load(), stats.Bundles.Load())
	return res
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// BenchmarkIdleRunners200 measures the control plane with 200 connected
// runners at idle. Reported: rss-mib (the largest VmRSS sampled each
// second over the 30 s window), cpu-% (CPU time over the window, in % of
// one core), pg-cpu-% (PostgreSQL's, for context), agent-req/s, held (the
// fewest long-polls held at any sample: 200 means all were held
// throughout) and errors; to explain the RSS, rss-peak-mib (VmHWM since
// the process started), rss-anon-mib (RssAnon at the end of the window:
// RSS less the binary's mapped pages) and heap-live-mib (the Go heap
// marked live by the control plane's last GC, from its gctrace).
func BenchmarkIdleRunners200(b *testing.B) {
	var res idleResult
	for range b.N {
		res = runIdle(b, idleConfig{runners: 200, wait: 30 * time.Second, heartbeat: agentproto.HeartbeatInterval,
			warmup: 15 * time.Second, window: 30 * time.Second})
	}
	b.ReportMetric(mib(res.rssMax), "rss-mib")
	b.ReportMetric(mib(res.hwm), "rss-peak-mib")
	b.ReportMetric(mib(res.anon), "rss-anon-mib")
	b.ReportMetric(mib(res.heapLive), "heap-live-mib")
	b.ReportMetric(res.cpuPct, "cpu-%")
	b.ReportMetric(res.pgCPUPct, "pg-cpu-%")
	b.ReportMetric(res.reqPerSec, "agent-req/s")
	b.ReportMetric(float64(res.heldMin), "held")
	b.ReportMetric(float64(res.errors), "errors")
}

// TestIdleRunners runs the idle measurement at a tiny size (5 runners,
// short waits and heartbeats, a 3 s window) so that the benchmark keeps
// working, and checks that what it reads is plausible.
func TestIdleRunners(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and the control plane")
	}
	res := runIdle(t, idleConfig{runners: 5, wait: 2 * time.Second, heartbeat: time.Second, warmup: time.Second, window: 3 * time.Second})
	if res.rssMax < 1<<20 || res.rssMax > 1<<30 {
		t.Errorf("control plane RSS %d bytes: not a plausible Go server", res.rssMax)
	}
	if res.cpuPct < 0 || res.cpuPct > 200 {
		t.Errorf("control plane CPU %.2f%% of a core: not plausible on this machine", res.cpuPct)
	}
	// 5 heartbeats a second and a poll answered every 2 s per runner.
	if res.reqPerSec < 2 {
		t.Errorf("%.1f agent requests/s: the simulated runners did not keep talking", res.reqPerSec)
	}
}
