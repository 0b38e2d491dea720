package script_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/script"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

// mode is how scripts run: in the test process, or in script hosts.
type mode struct {
	name     string
	isolated bool
}

var modes = []mode{{"in-process", false}, {"isolated", true}}

func (m mode) registry(t testing.TB) *catalog.Registry {
	if !m.isolated {
		return registry(t)
	}
	return isolatedRegistry(t, script.HostConfig{})
}

func (m mode) build(t testing.TB, step string) catalog.Operator {
	t.Helper()
	op, err := operatortest.Build(m.registry(t), "script", step)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return op
}

// isolatedRegistry is a registry whose scripts run in hosts started from
// this test binary (TestMain serves them), logging dead hosts to the test.
func isolatedRegistry(t testing.TB, cfg script.HostConfig) *catalog.Registry {
	t.Helper()
	reg := registry(t)
	if cfg.Idle == 0 {
		cfg.Idle = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	if err := script.Isolate(reg, cfg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestIsolatedSameMessages runs scripts in both modes and requires the very
// same results, DLQ reasons and messages: positions are applied in one
// place for both.
func TestIsolatedSameMessages(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	steps := []string{
		"source: |\n  function process(r) {\n    if (r.value.bad) throw new Error(\"bad \" + r.value.n);\n    return JSON.parse(r.value.text);\n  }\n",
		"timeout: 20ms\nsource: |\n  function process(r) { if (r.value.loop) { while (true) {} } return {n: r.value.n + 1, f: r.value.f, k: r.key, ts: r.timestamp, h: r.headers}; }\n",
		"timeout: 2s\nsource: |\n  function process(r) { function f(n) { return f(n + 1); } if (r.value.deep) return f(0); return [r.value, r.value.n * 1.5]; }\n",
		"source: |\n  function process(r) { if (r.value.fn) return {f: function () {}}; var o = {}; if (r.value.wide) { for (var i = 0; i < 40; i++) o = {a: o, b: o}; } return o; }\n",
		"memory: 4MiB\nsource: |\n  function process(r) { if (r.value.big) return 'x'.repeat(8 << 20); return null; }\n",
		// Build errors: syntax, top-level throw, no process, top-level loop.
		"source: |\n  function process(r) {\n    return r.value +;\n  }\n",
		"source: |\n  var t = {};\n  t.x.y = 1;\n  function process(r) { return r; }\n",
		"source: 'var x = 1;'\n",
		"source: |\n  while (true) {}\n  function process(r) { return r; }\n",
	}
	in := []map[string]any{
		{"n": 1, "f": 4.0, "text": `{"a": [1, 2.5, 123456789012345678901]}`},
		{"bad": true, "n": 7},
		{"text": "{"},
		{"loop": true},
		{"deep": true},
		{"fn": true},
		{"wide": true},
		{"big": true},
	}
	run := func(m mode, step string) string {
		op, err := operatortest.Build(m.registry(t), "script", step)
		if err != nil {
			return "build: " + err.Error()
		}
		var recs []*record.Record
		for _, v := range in {
			recs = append(recs, &record.Record{Key: "k1", Value: v, Timestamp: ts, Headers: []record.Header{{Key: "h", Value: []byte("v")}}})
		}
		res := operatortest.Process(context.Background(), op, recs)
		var b strings.Builder
		for _, r := range res.Out {
			fmt.Fprintf(&b, "out %#v\n", r.Value)
		}
		for i, e := range res.Errs {
			fmt.Fprintf(&b, "dlq %s: %v\n", res.DLQ[i], e)
		}
		return b.String()
	}
	for i, step := range steps {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			local, isolated := run(modes[0], step), run(modes[1], step)
			if local != isolated {
				t.Errorf("in-process:\n%s\nisolated:\n%s", local, isolated)
			}
			t.Log(local)
		})
	}
}

// heapGrowth runs f and returns how far the process heap rose above what
// it was before.
func heapGrowth(f func()) uint64 {
	base := liveHeap()
	peak := heapPeak(f)
	if peak < base {
		return 0
	}
	return peak - base
}

// TestIsolatedHostDies runs what the guards and the watchdog cannot stop in
// time: String.prototype.concat builds a string of the sum of its
// arguments in one built-in call, and a string doubling in a loop can
// outrun the watchdog on a busy machine. Its host dies (or is stopped by
// its own watchdog) and the parent reports reason resource, at build time
// and for a record, with its own heap untouched. Not run in-process: it
// would take this process down.
func TestIsolatedHostDies(t *testing.T) {
	reg := isolatedRegistry(t, script.HostConfig{})
	attacks := map[string]string{
		"concat":   "var s = 'x'.repeat(30 << 20); s = s.concat(s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s);",
		"doubling": "var s = 'x'; for (;;) s = s + s;",
	}
	for name, code := range attacks {
		t.Run(name+"/top level", func(t *testing.T) {
			var err error
			grown := heapGrowth(func() {
				_, err = operatortest.Build(reg, "script", "memory: 64MiB\nsource: |\n  "+code+"\n  function process(r) { return r.value; }\n")
			})
			if err == nil || !strings.Contains(err.Error(), "went past its memory budget of 64MiB") && !strings.Contains(err.Error(), "top-level code ran past its budget") {
				t.Fatalf("got %v", err)
			}
			if grown > isolatedPeakLimit {
				t.Errorf("the heap grew by %dMiB", grown>>20)
			}
			t.Logf("%v; heap +%dKiB", err, grown>>10)
		})
		t.Run(name+"/record", func(t *testing.T) {
			op, err := operatortest.Build(reg, "script", "timeout: 2s\nmemory: 64MiB\nsource: |\n  function process(r) {\n    if (r.value.attack) { "+code+" }\n    return r.value.n + 1;\n  }\n")
			if err != nil {
				t.Fatal(err)
			}
			var res *operatortest.Result
			grown := heapGrowth(func() {
				res = operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"attack": true}, map[string]any{"n": 1}))
			})
			if fmt.Sprint(res.DLQ) != "[resource]" && fmt.Sprint(res.DLQ) != "[timeout]" {
				t.Fatalf("DLQ %v %v", res.DLQ, res.Errs)
			}
			if !record.EqualJSON(values(res), []any{2}) {
				t.Errorf("the next record: %v", values(res))
			}
			if grown > isolatedPeakLimit {
				t.Errorf("the heap grew by %dMiB", grown>>20)
			}
			t.Logf("%v; heap +%dKiB", res.Errs[0], grown>>10)
		})
	}
}

// TestIsolatedHostKilled kills a host from outside during a call (the
// kernel's OOM killer, an operator's kill -9): the record gets reason
// resource and the next record a new host.
func TestIsolatedHostKilled(t *testing.T) {
	op := isolatedOp(t, script.HostConfig{}, "timeout: 2s\nsource: |\n  function process(r) {\n    if (r.value.slow) { var end = Date.now() + 1500; while (Date.now() < end) {} }\n    return r.value.n;\n  }\n")
	go func() {
		time.Sleep(300 * time.Millisecond)
		for _, pid := range children() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"slow": true, "n": 1}, map[string]any{"n": 2}))
	if fmt.Sprint(res.DLQ) != "[resource]" || !strings.Contains(res.Errs[0].Error(), "its process died (signal: killed) at example.yaml:2:9") {
		t.Fatalf("DLQ %v %v", res.DLQ, res.Errs)
	}
	if !record.EqualJSON(values(res), []any{2}) {
		t.Errorf("the next record: %v", values(res))
	}
}

func isolatedOp(t *testing.T, cfg script.HostConfig, step string) catalog.Operator {
	t.Helper()
	op, err := operatortest.Build(isolatedRegistry(t, cfg), "script", step)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// TestIsolatedContextEnds cancels a call: its host is killed and the error
// is the context's, not a DLQ reason of the script.
func TestIsolatedContextEnds(t *testing.T) {
	op := isolatedOp(t, script.HostConfig{}, "timeout: 2s\nsource: 'function process(r) { while (true) {} }'\n")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := op.Process(ctx, &record.Record{Value: 1}, discard{})
	if err == nil || !strings.Contains(err.Error(), "script interrupted: context deadline exceeded") || time.Since(start) > time.Second {
		t.Errorf("got %v after %s", err, time.Since(start))
	}
}

// TestIsolatedProcessesCap runs more scripts at once than hosts may live:
// calls wait for a host (an idle one of another script is stopped), never
// more than Processes are alive, and every record is processed.
func TestIsolatedProcessesCap(t *testing.T) {
	if left := waitChildren(5 * time.Second); len(left) > 0 {
		t.Fatalf("hosts of earlier tests still alive: %v", left)
	}
	reg := isolatedRegistry(t, script.HostConfig{Processes: 2})
	var ops []catalog.Operator
	for i := range 4 {
		op, err := operatortest.Build(reg, "script", fmt.Sprintf("source: 'function process(r) { return r.value * %d; }'\n", i+1))
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	var (
		wg   sync.WaitGroup
		most int
		mu   sync.Mutex
		stop = make(chan struct{})
	)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			n := len(children())
			mu.Lock()
			most = max(most, n)
			mu.Unlock()
		}
	}()
	for i, op := range ops {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range 20 {
					res := operatortest.Process(context.Background(), op, operatortest.Values(n))
					if len(res.Errs) > 0 || !record.EqualJSON(values(res), []any{n * (i + 1)}) {
						t.Errorf("script %d, %d: %v %v", i, n, values(res), res.Errs)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	if most > 2 {
		t.Errorf("%d hosts were alive at once, want at most 2", most)
	}
}

// TestIsolatedHostsEnd checks that hosts do not outlive their operators:
// once an operator is unreachable its idle hosts are stopped, long before
// their idle time.
func TestIsolatedHostsEnd(t *testing.T) {
	if left := waitChildren(5 * time.Second); len(left) > 0 {
		t.Fatalf("hosts of earlier tests still alive: %v", left)
	}
	func() {
		reg := isolatedRegistry(t, script.HostConfig{Idle: time.Minute})
		for range 3 {
			op, err := operatortest.Build(reg, "script", "source: 'function process(r) { return r.value; }'\n")
			if err != nil {
				t.Fatal(err)
			}
			operatortest.Process(context.Background(), op, operatortest.Values(1))
		}
		if n := len(children()); n != 3 {
			t.Errorf("%d hosts alive, want 3", n)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(children()) > 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if left := children(); len(left) > 0 {
		t.Errorf("hosts still alive after their operators were dropped: %v", left)
	}
}

// BenchmarkProcessIsolated is BenchmarkProcess with the script in a host:
// what a record pays for the round trip to another process.
func BenchmarkProcessIsolated(b *testing.B) {
	op, err := operatortest.Build(isolatedRegistry(b, script.HostConfig{Logger: slog.New(slog.DiscardHandler)}), "script", `source: |
  function process(r) {
    var v = r.value;
    return {vehicle: v.vehicle_id, kmh: v.speed * 3.6, fast: v.speed > 30};
  }`)
	if err != nil {
		b.Fatal(err)
	}
	value := map[string]any{"vehicle_id": "v1", "speed": 12.5, "lat": 52.1, "lon": 4.3}
	r := &record.Record{Key: "v1", Timestamp: time.Now()}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.Value = value
		if err := op.Process(ctx, r, discard{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIsolatedHostThreads checks that a host starts its threads before
// its memory is capped: a thread created later needs room for its stack
// under the limit, which a script that filled the heap has taken, and a
// host once died of that on a good record ("pthread_create failed").
func TestIsolatedHostThreads(t *testing.T) {
	if left := waitChildren(5 * time.Second); len(left) > 0 {
		t.Fatalf("hosts of earlier tests still alive: %v", left)
	}
	op := isolatedOp(t, script.HostConfig{}, "source: 'function process(r) { return r.value; }'\n")
	operatortest.Process(context.Background(), op, operatortest.Values(1))
	defer runtime.KeepAlive(op) // a dropped operator stops its host
	hosts := children()
	if len(hosts) != 1 {
		t.Fatalf("%d hosts alive, want 1", len(hosts))
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", hosts[0]))
	if err != nil {
		t.Fatal(err)
	}
	var threads int
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	// 8 idle threads, the one serving and sysmon.
	if threads < 10 {
		t.Errorf("the host has %d threads, want at least 10", threads)
	}
}
