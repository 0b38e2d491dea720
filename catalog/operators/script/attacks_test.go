package script_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

// attack is one script in testdata/attacks: code that would take the
// process down (out of memory, which Go cannot recover from) or stall its
// pipeline (a built-in that never returns), with the reason its record
// must get.
type attack struct {
	name, code, reason string
	topLevel           string // what the build error says, when not the reason's usual words; alternatives separated by " | "
	memory             string // the step's memory budget
}

func loadAttacks(t *testing.T) []attack {
	t.Helper()
	files, err := filepath.Glob("testdata/attacks/*.js")
	if err != nil || len(files) == 0 {
		t.Fatalf("no attacks: %v", err)
	}
	var out []attack
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code := string(data)
		first, _, _ := strings.Cut(code, "\n")
		reason, ok := strings.CutPrefix(first, "// reason: ")
		if !ok {
			t.Fatalf("%s: the first line must be // reason: resource|timeout", f)
		}
		a := attack{name: strings.TrimSuffix(filepath.Base(f), ".js"), code: code, reason: reason, memory: "64MiB"}
		for _, line := range strings.Split(code, "\n") {
			if v, ok := strings.CutPrefix(line, "// top level: "); ok {
				a.topLevel = v
			}
			if v, ok := strings.CutPrefix(line, "// memory: "); ok {
				a.memory = v
			}
		}
		out = append(out, a)
	}
	return out
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func indent(code, by string) string {
	return by + strings.ReplaceAll(strings.TrimRight(code, "\n"), "\n", "\n"+by)
}

// heapPeak samples the process heap while f runs and returns the highest
// value seen, so that a test can tell an attack that was stopped from one
// that only did not crash this machine.
func heapPeak(f func()) uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var (
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	return peak
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakLimit is what the process heap must stay under during any attack:
// the watchdog acts above 256MiB and one more doubling step of a string
// may complete before the interrupt lands. It is set in
// attacks_norace_test.go and attacks_race_test.go.

// liveLimit is what the live heap must be under after an attack. The
// runtime that hit a limit is garbage by then, but a stack slot of the test
// may still point at it for one more collection.
const liveLimit = 512 << 20

// isolatedPeakLimit is how much the heap of a process whose scripts run in
// hosts may grow during an attack: the attack's memory is the host's.
const isolatedPeakLimit = 32 << 20

// TestAttacksAtTopLevel runs every attack as top-level code, which runs
// when a pipeline is compiled (control plane API, runner plan and test):
// it must be a positioned build error, with the process still up. In
// isolated mode the attack's host may die instead, which is the same
// error at the script config's position.
func TestAttacksAtTopLevel(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testAttacksAtTopLevel(t, m) })
	}
}

func testAttacksAtTopLevel(t *testing.T, m mode) {
	reg := m.registry(t)
	for _, a := range loadAttacks(t) {
		t.Run(a.name, func(t *testing.T) {
			base := liveHeap()
			step := "memory: " + a.memory + "\nsource: |\n" + indent(a.code, "  ") + "\n  function process(r) { return r.value; }\n"
			var err error
			start := time.Now()
			peak := heapPeak(func() { _, err = operatortest.Build(reg, "script", step) })
			took := time.Since(start)
			// On a loaded machine (CI under -race) the 1 s top-level time
			// budget can end a memory attack before it reaches its memory
			// budget; either way it is a positioned build error and the heap
			// stays bounded, which is what is checked below.
			want := "went past its memory budget of " + a.memory + " | top-level code ran past its budget"
			if a.reason == "timeout" {
				want = "ran too long: a regular expression ran for"
			}
			if a.topLevel != "" {
				want = a.topLevel
			}
			if err == nil || !containsAny(err.Error(), strings.Split(want, " | ")) {
				t.Fatalf("got %v, want an error containing %q", err, want)
			}
			died := m.isolated && strings.Contains(err.Error(), "its process")
			if !strings.HasPrefix(err.Error(), "example.yaml:") || strings.HasPrefix(err.Error(), "example.yaml:2:9:") && !died {
				t.Errorf("error is not positioned at the attack: %v", err)
			}
			if peak > peakLimit {
				t.Errorf("heap peaked at %dMiB", peak>>20)
			}
			if m.isolated && peak > base+isolatedPeakLimit {
				t.Errorf("heap grew by %dMiB in isolated mode", (peak-base)>>20)
			}
			if live := liveHeap(); live > liveLimit {
				t.Errorf("live heap after the attack: %dMiB", live>>20)
			}
			t.Logf("%s in %s, heap peak %dMiB", err, took.Round(time.Millisecond), peak>>20)
		})
	}
}

// TestAttacksInProcess runs every attack inside process: the record goes
// to the DLQ with the attack's reason, and the next record is processed
// normally by a fresh runtime (a fresh host in isolated mode).
func TestAttacksInProcess(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testAttacksInProcess(t, m) })
	}
}

func testAttacksInProcess(t *testing.T, m mode) {
	for _, a := range loadAttacks(t) {
		t.Run(a.name, func(t *testing.T) {
			base := liveHeap()
			op := m.build(t, "timeout: 2s\nmemory: "+a.memory+"\nsource: |\n  function process(r) {\n    if (r.value.attack) {\n"+
				indent(a.code, "      ")+"\n    }\n    return r.value.n + 1;\n  }\n")
			var res *operatortest.Result
			start := time.Now()
			peak := heapPeak(func() {
				res = operatortest.Process(context.Background(), op, operatortest.Values(
					map[string]any{"attack": true}, map[string]any{"n": 1.0}))
			})
			took := time.Since(start)
			// On a starved machine (CI under -race) the 2 s time budget can
			// end a memory attack before its memory budget does: the record
			// still goes to the DLQ and the heap peak below still bounds the
			// memory it reached.
			if got := fmt.Sprint(res.DLQ); got != "["+a.reason+"]" && (a.reason != "resource" || got != "[timeout]") {
				t.Fatalf("DLQ: got %v (%v), want [%s]", res.DLQ, res.Errs, a.reason)
			}
			// The attack's own reason names where the script was stopped; the
			// time budget's fallback says which budget ran out.
			msg := res.Errs[0].Error()
			switch {
			case string(res.DLQ[0]) != a.reason:
				if !strings.Contains(msg, "ran past its budget") {
					t.Errorf("message: %s", msg)
				}
			case !strings.Contains(msg, " at example.yaml:") || a.reason == "resource" && !strings.Contains(msg, "memory budget of "+a.memory):
				t.Errorf("message: %s", msg)
			}
			if !record.EqualJSON(values(res), []any{2.0}) {
				t.Errorf("the next record: got %v (%v)", values(res), res.Errs)
			}
			if peak > peakLimit {
				t.Errorf("heap peaked at %dMiB", peak>>20)
			}
			if m.isolated && peak > base+isolatedPeakLimit {
				t.Errorf("heap grew by %dMiB in isolated mode", (peak-base)>>20)
			}
			if live := liveHeap(); live > liveLimit {
				t.Errorf("live heap after the attack: %dMiB", live>>20)
			}
			t.Logf("%s in %s, heap peak %dMiB", res.Errs[0], took.Round(time.Millisecond), peak>>20)
		})
	}
}
