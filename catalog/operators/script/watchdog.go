package script

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// The watchdog catches memory that a script grows step by step: a loop
// pushing to an array, s += s. Each step is a separate instruction, so
// Runtime.Interrupt stops it; the question is when.
//
// Go has no per-goroutine allocation counter, so the only measure is the
// process heap (runtime/metrics, /memory/classes/heap/objects:bytes: live
// and not yet swept objects, read without stopping the world). While a
// call runs, the heap also grows for every other pipeline of the process,
// and between two collections garbage piles up by design (GOGC). Blaming a
// call for all growth since it began would send innocent records to the
// DLQ whenever the process is busy. So a call is stopped only when both:
//
//   - the heap grew by more than the call's budget since the call began
//     (a call cannot be blamed for less than its budget), and
//   - the heap is above the process ceiling (heapCeiling, or half of
//     GOMEMLIMIT when that is lower): below it the process is in no danger
//     whatever a script does, so no record is sacrificed for nothing.
//
// Above the ceiling, when several calls grew past their budget, all of
// them are stopped: the watchdog cannot tell which one allocated. An
// innocent long call may then go to the DLQ with reason resource; that is
// the price of keeping the process up, and it only happens when the heap is
// both large and growing fast.
//
// One sampler serves every runtime of the process: runtime/metrics
// describes the whole process, so one reading per period is all there is
// to know. A call registers itself (a mutex and a map operation, no
// reading) and the sampler reads the heap every samplePeriod while any
// call is registered, stopping after idlePeriods without calls; this is
// why it is package state (started on demand, not at init), and why it
// holds no reference to anything once idle.
const (
	samplePeriod = time.Millisecond
	idlePeriods  = 100
	// heapCeiling is the heap below which no call is stopped for memory.
	heapCeiling = 256 << 20
)

type watchdog struct {
	mu      sync.Mutex
	calls   map[*watch]struct{}
	running bool
	last    atomic.Uint64 // the heap at the latest sample
	sample  []metrics.Sample
}

// watch is one registered call.
type watch struct {
	vm     *jsVM
	start  uint64 // the heap when the call began
	budget uint64
}

var heapWatch = &watchdog{
	calls:  map[*watch]struct{}{},
	sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}},
}

// readHeap reads the heap; only the sampler goroutine calls it once
// running, so the sample slice is not shared.
func (d *watchdog) readHeap() uint64 {
	metrics.Read(d.sample)
	if d.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return d.sample[0].Value.Uint64()
}

// watch registers a call of vm; the caller must call stop when the call
// ends, after which the watchdog no longer touches vm.
func (d *watchdog) watch(vm *jsVM) {
	w := &vm.watch
	w.vm, w.budget = vm, uint64(vm.memory)
	d.mu.Lock()
	if !d.running {
		// The latest sample is stale after a pause: take a fresh one.
		d.last.Store(d.readHeap())
		d.running = true
		go d.run()
	}
	w.start = d.last.Load()
	d.calls[w] = struct{}{}
	d.mu.Unlock()
}

// stop unregisters vm's call. Interrupts happen under the same lock, so
// none can reach vm after stop returns.
func (d *watchdog) stop(vm *jsVM) {
	d.mu.Lock()
	delete(d.calls, &vm.watch)
	d.mu.Unlock()
}

func (d *watchdog) run() {
	t := time.NewTicker(samplePeriod)
	defer t.Stop()
	idle := 0
	for range t.C {
		heap := d.readHeap()
		d.last.Store(heap)
		d.mu.Lock()
		if len(d.calls) == 0 {
			if idle++; idle >= idlePeriods {
				d.running = false
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			continue
		}
		idle = 0
		if heap > ceiling() {
			for w := range d.calls {
				if heap > w.start && heap-w.start > w.budget {
					w.vm.interruptNow(&memoryError{grown: heap - w.start})
					delete(d.calls, w) // once is enough
				}
			}
		}
		d.mu.Unlock()
	}
}

// ceiling is the heap above which calls are stopped: heapCeiling, or half
// the memory limit when one is set lower (a small container).
func ceiling() uint64 {
	c := uint64(heapCeiling)
	if limit := debug.SetMemoryLimit(-1); limit > 0 && uint64(limit)/2 < c {
		c = uint64(limit) / 2
	}
	return c
}
