package gitops_test

// Push to running: how long after `git push` returns every runner of the
// fleet produces output from the new revision. docs/performance.md
// ("GitOps") describes the method; in short:
//
//   - `controlplane serve` (separate process, throwaway PostgreSQL), a
//     fleet rolling out all at once with a bake time of 0, and 3
//     `runner agent` processes on one Kafka (kfake in this process, or
//     KAFKA_BROKERS), each registered with a bootstrap token;
//   - one pipeline, `set: {v: N}`, exactly-once (the default), from a
//     6-partition input topic fed continuously by this process (one record
//     per partition every 20 ms) to an output topic;
//   - push N changes the step to v: N with the real git CLI; the clock
//     starts when `git push` exits and stops, per runner, at the first
//     output record with v = N that runner wrote, read read_committed by
//     this process;
//   - a record is attributed to a runner by its producer ID: each runner
//     runs with --instance-id runner-<i>, its transactional ID is
//     "<group>/runner-<i>", and the broker's transaction list
//     (ListTransactions) maps producer IDs to transactional IDs. That holds
//     whatever the group's partition assignment is at the time.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gitops/gitserver/gittest"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// pushConfig sizes one push-to-running measurement.
type pushConfig struct {
	runners    int
	pushes     int
	partitions int
	// tick is how often one input record is produced to every partition.
	tick time.Duration
	// settle is the pause between the end of one measured push (every
	// runner has output from it and its rollout has finished) and the
	// next push.
	settle time.Duration
}

// pushTimeout bounds one push's wait for every runner's output.
const pushTimeout = 90 * time.Second

// pushSample is one measured push, its times from `git push` exiting.
type pushSample struct {
	all       time.Duration   // the last runner's first output of the new revision
	perRunner []time.Duration // each runner's first output
	promoted  time.Duration   // the rollout's "promoting runners" event (PostgreSQL's clock)
	applied   time.Duration   // the last runner's "pipeline updated" log line
	push      time.Duration   // how long `git push` itself took
}

// pushResult is a measurement.
type pushResult struct {
	samples      []pushSample
	unattributed int // output records whose producer was no runner's
}

func (r pushResult) all() []time.Duration {
	var out []time.Duration
	for _, s := range r.samples {
		out = append(out, s.all)
	}
	return out
}

func (r pushResult) pick(f func(pushSample) time.Duration) []time.Duration {
	var out []time.Duration
	for _, s := range r.samples {
		out = append(out, f(s))
	}
	return out
}

// pushBench is the running measurement.
type pushBench struct {
	tb      testing.TB
	cfg     pushConfig
	p       *platform
	brokers []string
	in, out string
	git     *gittest.Git
	repo    string
	commits []string // commit of push N

	mu           sync.Mutex
	first        map[int]map[int]time.Time    // v -> runner -> first output read
	applied      map[string]map[int]time.Time // commit -> runner -> "pipeline started/updated" logged
	pidRunner    map[int64]int                // producer ID -> runner
	unattributed int
}

func runPushToRunning(tb testing.TB, cfg pushConfig) pushResult {
	tb.Helper()
	_, runnerBin := binaries(tb)
	g := gittest.NewGit(tb) // skips without the git CLI
	pb := &pushBench{tb: tb, cfg: cfg, git: g,
		first: map[int]map[int]time.Time{}, applied: map[string]map[int]time.Time{}, pidRunner: map[int64]int{}}
	pb.p = startPlatform(tb, platformOptions{runners: cfg.runners})
	p := pb.p

	pb.brokers = kafkatest.Brokers(tb)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	pb.in, pb.out = "gitops-bench-in-"+suffix, "gitops-bench-out-"+suffix
	kafkatest.CreateTopic(tb, pb.brokers, pb.in, int32(cfg.partitions))
	kafkatest.CreateTopic(tb, pb.brokers, pb.out, int32(cfg.partitions))
	kafkatest.CreateTopic(tb, pb.brokers, pb.out+".dlq", int32(cfg.partitions))

	token := p.bootstrapToken(tb, cfg.runners)
	var runners []*process
	for i := range cfg.runners {
		name := fmt.Sprintf("runner-%d", i)
		r := startProcess(tb, name, filepath.Join(p.dir, name+".log"), []string{"SLUICE_BOOTSTRAP_TOKEN=" + token},
			func(at time.Time, line string) { pb.runnerLog(i, at, line) },
			runnerBin, "agent", "--control-plane", p.base, "--data-dir", filepath.Join(p.dir, name), "--name", name,
			"--instance-id", name, "--brokers", strings.Join(pb.brokers, ","), "--listen", "127.0.0.1:0",
			"--shutdown-timeout", "10s", "--log-level", "info")
		runners = append(runners, r)
	}
	// Every runner has registered before the first push, so that its
	// rollout promotes them all.
	deadline := time.Now().Add(time.Minute)
	for {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := p.api("GET", "/fleets/"+p.fleetID+"/runners?limit=200", nil, &list, http.StatusOK); err != nil {
			tb.Fatal(err)
		}
		if len(list.Items) == cfg.runners {
			break
		}
		for _, r := range runners {
			if !r.running() {
				tb.Fatalf("%s exited: %v\n%s", r.name, r.cmd.ProcessState, r.logTail())
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d runners registered within a minute\n%s", len(list.Items), cfg.runners, runners[0].logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	bg.Go(func() { pb.consume(ctx) })
	bg.Go(func() { pb.produce(ctx) })

	// The repository and push 0, which creates the pipeline: a warm-up,
	// not measured (the runners start the pipeline rather than replace
	// it, and create its topics' clients).
	pb.repo = filepath.Join(p.dir, "repo")
	if err := os.MkdirAll(pb.repo, 0o755); err != nil {
		tb.Fatal(err)
	}
	g.Must(pb.repo, "init", "-q")
	g.Must(pb.repo, "remote", "add", "origin", p.gitURL())
	var res pushResult
	for n := 0; n <= cfg.pushes; n++ {
		s := pb.push(n, runners)
		if n > 0 {
			res.samples = append(res.samples, s)
		}
		time.Sleep(cfg.settle)
	}
	pb.addPromotions(res.samples)
	pb.mu.Lock()
	res.unattributed = pb.unattributed
	pb.mu.Unlock()
	all := res.all()
	tb.Logf("%d pushes, %d runners: every runner's first output p50 %.0f ms, p99 %.0f ms, max %.0f ms; rollout start to promotion p50 %.0f ms (%v); "+
		"push to last runner applied p50 %.0f ms; git push p50 %.0f ms; %d output records attributed to no runner",
		len(all), cfg.runners, ms(percentile(all, 0.5)), ms(percentile(all, 0.99)), ms(percentile(all, 1)),
		ms(percentile(res.pick(func(s pushSample) time.Duration { return s.promoted }), 0.5)),
		roundAll(res.pick(func(s pushSample) time.Duration { return s.promoted })),
		ms(percentile(res.pick(func(s pushSample) time.Duration { return s.applied }), 0.5)),
		ms(percentile(res.pick(func(s pushSample) time.Duration { return s.push }), 0.5)), res.unattributed)
	return res
}

// pipelineYAML is the pipeline of push n.
func (pb *pushBench) pipelineYAML(n int) string {
	return fmt.Sprintf(`apiVersion: sluice/v1
kind: Pipeline
metadata:
  name: bench
  description: push-to-running benchmark, push %d
spec:
  source: {topic: %s, format: json}
  steps:
    - set: {v: %d}
  sink: {topic: %s}
  errors: {dlq: %s.dlq}
`, n, pb.in, n, pb.out, pb.out)
}

// push commits and pushes revision n and waits until every runner has
// output from it and its rollout has finished.
func (pb *pushBench) push(n int, runners []*process) pushSample {
	tb := pb.tb
	g := pb.git
	if err := os.MkdirAll(filepath.Join(pb.repo, "pipelines"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pb.repo, "pipelines", "bench.yaml"), []byte(pb.pipelineYAML(n)), 0o644); err != nil {
		tb.Fatal(err)
	}
	g.Must(pb.repo, "add", "-A")
	g.Must(pb.repo, "commit", "-q", "-m", fmt.Sprintf("bench: v %d", n))
	commit := strings.TrimSpace(g.Must(pb.repo, "rev-parse", "HEAD"))
	pb.commits = append(pb.commits, commit)
	start := time.Now()
	out, err := g.Run(pb.repo, "push", "-q", "origin", "HEAD:main")
	pushed := time.Now()
	if err != nil {
		tb.Fatalf("push %d: %v\n%s\n%s", n, err, out, pb.p.cp.logTail())
	}
	s := pushSample{push: pushed.Sub(start)}

	deadline := pushed.Add(pushTimeout)
	for {
		pb.mu.Lock()
		seen := pb.first[n]
		done := len(seen) == pb.cfg.runners
		if done {
			for r := range pb.cfg.runners {
				d := seen[r].Sub(pushed)
				s.perRunner = append(s.perRunner, d)
				s.all = max(s.all, d)
				s.applied = max(s.applied, pb.applied[commit][r].Sub(pushed))
			}
		}
		pb.mu.Unlock()
		if done {
			break
		}
		for _, r := range runners {
			if !r.running() {
				tb.Fatalf("%s exited: %v\n%s", r.name, r.cmd.ProcessState, r.logTail())
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("push %d: after %v, output from %d of %d runners\n%s", n, pushTimeout, len(seen), pb.cfg.runners, runners[0].logTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The rollout finishes (bake time 0) once every runner has reported
	// the new revision; the next push then starts from a quiet fleet.
	for {
		ro, ok := pb.rollout(commit)
		if ok && ro.FinishedAt != nil {
			if ro.Phase != "Succeeded" {
				tb.Fatalf("push %d: rollout %s ended %s: %s", n, ro.ID, ro.Phase, ro.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("push %d: the rollout did not finish within %v (found: %v, %+v)", n, pushTimeout, ok, ro)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n > 0 {
		pb.tb.Logf("push %2d: every runner's first output %6.0f ms after git push returned (per runner %v; last runner applied at %.0f ms; git push took %.0f ms)",
			n, ms(s.all), roundAll(s.perRunner), ms(s.applied), ms(s.push))
	}
	return s
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

type rolloutBody struct {
	ID         string     `json:"id"`
	Commit     string     `json:"commit"`
	Phase      string     `json:"phase"`
	Reason     string     `json:"reason"`
	FinishedAt *time.Time `json:"finished_at"`
}

// rollout finds the rollout of commit.
func (pb *pushBench) rollout(commit string) (rolloutBody, bool) {
	var list struct {
		Items []rolloutBody `json:"items"`
	}
	// Oldest first, so the newest are on the last page: with at most one
	// rollout per push, 200 is enough.
	if err := pb.p.api("GET", "/rollouts?limit=200", nil, &list, http.StatusOK); err != nil {
		pb.tb.Fatal(err)
	}
	for _, ro := range list.Items {
		if ro.Commit == commit {
			return ro, true
		}
	}
	return rolloutBody{}, false
}

// addPromotions sets each sample's promoted time from its rollout's
// events: when the reconciler promoted the runners.
func (pb *pushBench) addPromotions(samples []pushSample) {
	for i := range samples {
		commit := pb.commits[i+1]
		ro, ok := pb.rollout(commit)
		if !ok {
			continue
		}
		var evs struct {
			Items []struct {
				At      time.Time `json:"at"`
				Message string    `json:"message"`
			} `json:"items"`
		}
		if err := pb.p.api("GET", "/rollouts/"+ro.ID+"/events", nil, &evs, http.StatusOK); err != nil {
			pb.tb.Fatal(err)
		}
		// The push's clock: its end is the start of the sample.
		var started time.Time
		for _, e := range evs.Items {
			if started.IsZero() && strings.HasPrefix(e.Message, "rollout started") {
				started = e.At
			}
			if strings.HasPrefix(e.Message, "promoting") {
				// Both events are PostgreSQL's now(); the push's end is
				// ours. Relate them through the "rollout started" event,
				// which the push's own transaction wrote before it
				// answered: promoted - started is exact, and started is
				// before the push returned.
				samples[i].promoted = e.At.Sub(started)
				break
			}
		}
	}
}

// runnerLog notes when runner i logged that it started or updated the
// pipeline (`runner agent`'s text log: msg="pipeline updated" ...
// commit=<sha>).
func (pb *pushBench) runnerLog(i int, at time.Time, line string) {
	if !strings.Contains(line, `msg="pipeline updated"`) && !strings.Contains(line, `msg="pipeline started"`) {
		return
	}
	for f := range strings.FieldsSeq(line) {
		if c, ok := strings.CutPrefix(f, "commit="); ok {
			pb.mu.Lock()
			if pb.applied[c] == nil {
				pb.applied[c] = map[int]time.Time{}
			}
			if _, seen := pb.applied[c][i]; !seen {
				pb.applied[c][i] = at
			}
			pb.mu.Unlock()
		}
	}
}

// produce writes one record to every input partition each tick until ctx
// ends.
func (pb *pushBench) produce(ctx context.Context) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(pb.brokers...), kgo.DefaultProduceTopic(pb.in),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		pb.tb.Error(err)
		return
	}
	defer cl.Close()
	t := time.NewTicker(pb.cfg.tick)
	defer t.Stop()
	for seq := 0; ; seq++ {
		for part := range pb.cfg.partitions {
			cl.Produce(ctx, &kgo.Record{Partition: int32(part), Value: fmt.Appendf(nil, `{"seq":%d}`, seq)}, nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// consume reads the output read_committed and notes, for each value of v
// and each runner, when its first record was read.
func (pb *pushBench) consume(ctx context.Context) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(pb.brokers...), kgo.ConsumeTopics(pb.out),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		pb.tb.Error(err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		fs := cl.PollFetches(ctx)
		read := time.Now()
		if ctx.Err() != nil {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			var rec struct {
				V *int `json:"v"`
			}
			if json.Unmarshal(r.Value, &rec) != nil || rec.V == nil {
				return
			}
			runner := pb.runnerOf(ctx, adm, r.ProducerID)
			pb.mu.Lock()
			defer pb.mu.Unlock()
			if runner < 0 {
				pb.unattributed++
				return
			}
			if pb.first[*rec.V] == nil {
				pb.first[*rec.V] = map[int]time.Time{}
			}
			if _, ok := pb.first[*rec.V][runner]; !ok {
				pb.first[*rec.V][runner] = read
			}
		})
	}
}

// runnerOf is the runner whose transactional producer has id pid, or -1.
// Unknown ids are looked up in the broker's list of transactions, whose
// ids are "<group>/runner-<i>".
func (pb *pushBench) runnerOf(ctx context.Context, adm *kadm.Client, pid int64) int {
	pb.mu.Lock()
	r, ok := pb.pidRunner[pid]
	pb.mu.Unlock()
	if ok {
		return r
	}
	txns, err := adm.ListTransactions(ctx, nil, nil)
	if err != nil && ctx.Err() == nil {
		pb.tb.Logf("list transactions: %v", err)
	}
	pb.mu.Lock()
	defer pb.mu.Unlock()
	for id, t := range txns {
		_, inst, ok := strings.Cut(id, "/runner-")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(inst); err == nil {
			pb.pidRunner[t.ProducerID] = i
		}
	}
	if r, ok := pb.pidRunner[pid]; ok {
		return r
	}
	return -1
}

// BenchmarkPushToRunning measures 20 pushes on 3 runners (see the top of
// this file). Reported, over the pushes: p50-ms, p99-ms and max-ms from
// `git push` returning to the first output of the new revision on every
// runner (nearest rank: with 20 pushes p99 is the slowest); runner-p50-ms,
// the same per runner; promote-p50-ms, from the rollout's start to the
// reconciler promoting the runners; applied-p50-ms, from the push
// returning to the last runner logging that it replaced the pipeline;
// push-p50-ms, how long `git push` took (validation included).
func BenchmarkPushToRunning(b *testing.B) {
	var res pushResult
	for range b.N {
		r := runPushToRunning(b, pushConfig{runners: 3, pushes: 20, partitions: 6, tick: 20 * time.Millisecond, settle: time.Second})
		res.samples = append(res.samples, r.samples...)
		res.unattributed += r.unattributed
	}
	all := res.all()
	var perRunner []time.Duration
	for _, s := range res.samples {
		perRunner = append(perRunner, s.perRunner...)
	}
	b.ReportMetric(float64(len(all))/float64(b.N), "pushes")
	b.ReportMetric(ms(percentile(all, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 0.99)), "p99-ms")
	b.ReportMetric(ms(percentile(all, 1)), "max-ms")
	b.ReportMetric(ms(percentile(perRunner, 0.50)), "runner-p50-ms")
	b.ReportMetric(ms(percentile(res.pick(func(s pushSample) time.Duration { return s.promoted }), 0.50)), "promote-p50-ms")
	b.ReportMetric(ms(percentile(res.pick(func(s pushSample) time.Duration { return s.applied }), 0.50)), "applied-p50-ms")
	b.ReportMetric(ms(percentile(res.pick(func(s pushSample) time.Duration { return s.push }), 0.50)), "push-p50-ms")
	b.ReportMetric(float64(res.unattributed), "unattributed")
}

// TestPushToRunning runs the measurement at a tiny size (2 runners, 2
// pushes) so that the benchmark keeps working, and checks its numbers:
// every push reached every runner, after the push and within the
// timeout, and every output record was attributed to a runner.
func TestPushToRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, the control plane and runner processes")
	}
	res := runPushToRunning(t, pushConfig{runners: 2, pushes: 2, partitions: 4, tick: 20 * time.Millisecond, settle: 200 * time.Millisecond})
	if len(res.samples) != 2 {
		t.Fatalf("%d pushes measured, want 2", len(res.samples))
	}
	for i, s := range res.samples {
		if len(s.perRunner) != 2 {
			t.Errorf("push %d: %d runners measured, want 2", i+1, len(s.perRunner))
		}
		for _, d := range s.perRunner {
			if d <= 0 || d > pushTimeout {
				t.Errorf("push %d: a runner's first output %v after the push: out of (0, %v]", i+1, d, pushTimeout)
			}
		}
		if s.applied <= 0 || s.applied > s.all {
			t.Errorf("push %d: applied %v after the push, first output from every runner %v: a runner cannot output a revision before applying it", i+1, s.applied, s.all)
		}
		if s.promoted <= 0 || s.promoted > pushTimeout {
			t.Errorf("push %d: runners promoted %v after the rollout started", i+1, s.promoted)
		}
	}
	if res.unattributed != 0 {
		t.Errorf("%d output records were written by no runner's producer", res.unattributed)
	}
}
