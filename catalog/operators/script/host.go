package script

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/catalog"
)

// A script host is a child process that runs one script for an isolated
// operator (isolate.go): the same binary, started with hostEnv set, which
// makes ServeHostIfChild serve the wire protocol (wire.go) on stdin and
// stdout instead of running main. Its memory is capped by the kernel, so a
// script that the guards and the watchdog do not stop in time kills only
// its host, never the process that compiles or runs pipelines.

// hostEnv holds a host's settings: "<memory budget in bytes>:<idle ms>".
const hostEnv = "SLUICE_SCRIPT_HOST"

// hostProcs is the host's GOMAXPROCS: the script and the watchdog.
const hostProcs = 2

// hostThreads is how many OS threads a host starts before its memory is
// capped. A host runs on 4 or 5 (its Ps, sysmon, a read blocked on stdin),
// and a thread's stack, 8 MiB under cgo, is data the kernel's limit
// counts: a thread the runtime wanted after a script had filled the heap
// to the limit killed a host on a good record ("pthread_create failed").
const hostThreads = 8

// ServeHostIfChild turns this process into a script host when it was
// started as one, and returns at once otherwise. A host serves until its
// parent closes stdin or it has been idle for its idle time, then exits
// without returning.
//
// Every binary whose registry is isolated (see Isolate) must call it as
// the very first statement of main, and test binaries as the first of
// TestMain, before anything allocates much: the host's memory limit is
// measured from what the process uses when it is called.
func ServeHostIfChild() {
	settings, ok := os.LookupEnv(hostEnv)
	if !ok {
		return
	}
	os.Exit(serveHost(settings, os.Stdin, os.Stdout, os.Stderr))
}

func serveHost(settings string, in io.Reader, out io.Writer, stderr io.Writer) int {
	mem, idleMS, ok := strings.Cut(settings, ":")
	budget, err1 := strconv.ParseInt(mem, 10, 64)
	idleN, err2 := strconv.ParseInt(idleMS, 10, 64)
	if !ok || err1 != nil || err2 != nil || budget <= 0 || idleN <= 0 {
		fmt.Fprintf(stderr, "script host: bad %s=%q\n", hostEnv, settings)
		return 2
	}
	runtime.GOMAXPROCS(hostProcs)
	startThreads(hostThreads)
	if err := limitMemory(budget); err != nil {
		fmt.Fprintln(stderr, "script host:", err)
		return 2
	}
	idle := time.Duration(idleN) * time.Millisecond
	// The parent uses a host only while it has been idle for less than
	// half this (isolate.go), so the timer cannot fire under a request.
	idleTimer := time.AfterFunc(idle, func() { os.Exit(0) })

	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriterSize(out, 64<<10)
	var (
		op  *operator
		enc encoder
		buf []byte
	)
	for {
		frame, err := readFrame(r, buf)
		if err != nil {
			if err == io.EOF {
				return 0
			}
			fmt.Fprintln(stderr, "script host: reading a request:", err)
			return 1
		}
		idleTimer.Stop()
		buf = frame
		d := decoder{b: frame}
		switch kind := d.byte(); {
		case kind == msgInit && op == nil:
			name, src, timeout, memory := d.init()
			if d.err != nil {
				break
			}
			op = &operator{name: name, timeout: timeout, memory: memory}
			if vm, f := op.load(src); f != nil {
				enc.failure(f)
			} else {
				op.vms.Put(vm)
				_ = enc.values(nil)
			}
		case kind == msgCall && op != nil:
			rec := d.call()
			if d.err != nil {
				break
			}
			vals, f, _ := op.evaluate(context.Background(), rec)
			if f == nil {
				if err := enc.values(vals); err != nil {
					f = &failure{Reason: catalog.ReasonScript, Text: clip(err.Error())}
				}
			}
			if f != nil {
				enc.failure(f)
			}
		default:
			d.fail()
		}
		if d.err != nil {
			fmt.Fprintln(stderr, "script host:", d.err)
			return 1
		}
		msg, err := enc.frame()
		if err != nil {
			enc.failure(&failure{Reason: catalog.ReasonOversize, Text: clip(err.Error())})
			msg, _ = enc.frame()
		}
		idleTimer.Reset(idle)
		if _, err := w.Write(msg); err != nil {
			return 1
		}
		if err := w.Flush(); err != nil {
			return 1
		}
		if cap(enc.b) > 1<<20 {
			enc.b = nil // do not keep a large result's buffer
		}
		if cap(buf) > 1<<20 {
			buf = nil
		}
	}
}

// startThreads makes the runtime start n OS threads and keep them idle,
// so that the ones it needs later are taken from its idle list rather than
// created under the memory limit. A goroutine locked to a thread and
// blocked keeps that thread to itself; once unlocked, the thread is idle.
func startThreads(n int) {
	var locked, release, done sync.WaitGroup
	locked.Add(n)
	release.Add(1)
	for range n {
		done.Go(func() {
			runtime.LockOSThread()
			locked.Done()
			release.Wait()
			runtime.UnlockOSThread()
		})
	}
	locked.Wait()
	release.Done()
	done.Wait()
}

// hostHeap is what a host's Go heap may hold for a script with the given
// budget: the runtime's live objects (the budget), garbage not yet
// collected, the record and its results.
func hostHeap(budget int64) int64 { return 2*budget + 32<<20 }

// limitMemory caps the host's memory: a soft limit for Go's collector,
// and the kernel's hard one (limit_linux.go) above it.
func limitMemory(budget int64) error {
	heap := hostHeap(budget)
	debug.SetMemoryLimit(heap)
	return hardLimit(heap + 32<<20)
}
