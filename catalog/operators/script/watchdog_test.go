package script

import (
	"runtime/metrics"
	"testing"
)

// BenchmarkHeapSample is what the watchdog pays per period while calls
// run (once per millisecond for the whole process, not per call).
func BenchmarkHeapSample(b *testing.B) {
	d := &watchdog{sample: append([]metrics.Sample(nil), heapWatch.sample...)}
	for b.Loop() {
		d.readHeap()
	}
}

// BenchmarkWatch is what each call pays to register with the watchdog.
func BenchmarkWatch(b *testing.B) {
	vm := &jsVM{memory: defaultMemory}
	for b.Loop() {
		heapWatch.watch(vm)
		heapWatch.stop(vm)
	}
}
