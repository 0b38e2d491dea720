package script

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/record"
)

// Isolation: scripts in child processes.
//
// The guards and the watchdog (memory.go, watchdog.go) keep a script's
// memory near its budget, but not hard: a string that doubles in one
// instruction can overshoot when the watchdog runs late, and Go cannot
// recover from running out of memory. A process that must never die of a
// script (the control plane, which compiles every pushed pipeline) runs
// its scripts in script hosts (host.go) instead: child processes with a
// kernel memory limit, each holding one runtime of one script that ran its
// top-level code. A host that dies takes only the record (reason resource)
// or the build (a compile error) with it.

// HostConfig configures the script hosts of an isolated registry.
type HostConfig struct {
	// Processes caps the script hosts alive at once; default 4. A call
	// waits for a free one; an idle host of another script is stopped to
	// make room.
	Processes int
	// Idle is how long an unused host lives; default 10s.
	Idle time.Duration
	// Executable is the binary started as a host; default this process's
	// own (os.Executable), which must call ServeHostIfChild first in main.
	Executable string
	// Logger receives hosts that died, with the end of their stderr;
	// default none.
	Logger *slog.Logger
}

// Deadlines in the parent, over the budgets a host enforces itself: a host
// that does not answer in time is killed.
const (
	// initGrace covers starting a host process (a large binary, a busy
	// machine) besides the top-level code's initTimeout.
	initGrace = 5 * time.Second
	// callGrace is added to a call's timeout × attempts.
	callGrace = 2 * time.Second
	// stderrTail is how much of a host's stderr is kept for the log.
	stderrTail = 4 << 10
)

// Isolate makes r's script operator run scripts in script hosts. The
// binary must call ServeHostIfChild (see there).
func Isolate(r *catalog.Registry, cfg HostConfig) error {
	spec, ok := r.Lookup("script")
	if !ok {
		return errors.New("isolate scripts: the registry has no script operator")
	}
	if cfg.Processes <= 0 {
		cfg.Processes = 4
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 10 * time.Second
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("isolate scripts: %w", err)
		}
		cfg.Executable = exe
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &hosts{cfg: cfg, wake: make(chan struct{})}
	s := *spec
	s.New = h.newOperator
	return r.Replace(s)
}

// hosts is the set of script hosts of one isolated registry.
type hosts struct {
	cfg  HostConfig
	mu   sync.Mutex
	live int           // hosts started and not yet exited
	idle []*host       // ready for a call of their script, oldest first
	wake chan struct{} // closed and replaced when a host exits or turns idle
}

// isolated is an operator's script as hosts run it. It holds nothing of
// the operator, so that a cleanup can drop its hosts once the operator is
// gone.
type isolated struct {
	h       *hosts
	name    string
	src     string
	timeout time.Duration
	memory  int64
}

// newOperator is New with the script in hosts.
func (h *hosts) newOperator(b *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	op, src, err := parse(b, conf)
	if err != nil {
		return nil, err
	}
	iso := &isolated{h: h, name: op.name, src: src, timeout: op.timeout, memory: op.memory}
	// The first host runs the top-level code now: what fails there is a
	// configuration error.
	c, f := h.get(context.Background(), iso)
	if f != nil {
		return nil, op.compileError(f)
	}
	h.put(c)
	op.iso = iso
	runtime.AddCleanup(op, func(iso *isolated) { iso.h.drop(iso) }, iso)
	return op, nil
}

// call runs the script on r in a host.
func (iso *isolated) call(ctx context.Context, r *record.Record) ([]any, *failure, error) {
	c, f := iso.h.get(ctx, iso)
	if f != nil {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("script interrupted: %w", context.Cause(ctx))
		}
		f.Text = "starting the script: " + f.Text
		return nil, f, nil
	}
	if err := c.enc.call(r); err != nil {
		iso.h.put(c)
		return nil, &failure{Reason: catalog.ReasonScript, Text: clip(err.Error())}, nil
	}
	msg, err := c.enc.frame()
	if err != nil {
		iso.h.put(c)
		return nil, &failure{Reason: catalog.ReasonOversize, Text: clip(err.Error())}, nil
	}
	payload, err := c.roundTrip(ctx, msg, iso.timeout*attempts+callGrace)
	if err == nil {
		d := decoder{b: payload}
		vals, f := d.answer()
		if d.err == nil {
			if f != nil && f.Reason == catalog.ReasonResource {
				// Its heap may still be near the limit: the next record
				// gets a fresh host rather than pay for this one.
				c.close()
			} else {
				iso.h.put(c)
			}
			return vals, f, nil
		}
		err = d.err
	}
	why := c.end(err)
	switch why {
	case stopContext:
		return nil, nil, fmt.Errorf("script interrupted: %w", context.Cause(ctx))
	case stopTimeout:
		return nil, &failure{Reason: catalog.ReasonTimeout, Text: fmt.Sprintf("script ran past its budget of %s (tried %d times)", iso.timeout, attempts)}, nil
	}
	return nil, &failure{Reason: catalog.ReasonResource, Text: fmt.Sprintf("script went past its memory budget of %s: %s", formatSize(iso.memory), c.death()), Line: -1}, nil
}

// get returns a host of iso's script that ran its top-level code: an
// idle one, or a new one. It fails only with a failure, which says why
// the top-level code failed or that ctx ended.
func (h *hosts) get(ctx context.Context, iso *isolated) (*host, *failure) {
	h.mu.Lock()
	for {
		// A host idle for half its idle time exits by itself soon: do not
		// hand it a call that might reach it as it does.
		fresh := time.Now().Add(-h.cfg.Idle / 2)
		h.idle = slices.DeleteFunc(h.idle, func(c *host) bool {
			if c.lastUsed.Before(fresh) {
				c.close()
				return true
			}
			return false
		})
		for i := len(h.idle) - 1; i >= 0; i-- {
			if c := h.idle[i]; c.iso == iso {
				h.idle = slices.Delete(h.idle, i, i+1)
				h.mu.Unlock()
				return c, nil
			}
		}
		if h.live < h.cfg.Processes {
			h.live++
			break
		}
		if len(h.idle) > 0 {
			// Make room: the host idle the longest goes.
			h.idle[0].close()
			h.idle = h.idle[1:]
		}
		wake := h.wake
		h.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, &failure{Reason: catalog.ReasonTimeout, Text: context.Cause(ctx).Error()}
		}
		h.mu.Lock()
	}
	h.mu.Unlock()
	c, err := h.start(iso)
	if err != nil {
		h.exited(nil)
		return nil, &failure{Reason: catalog.ReasonError, Text: "cannot start a script host: " + clip(err.Error()), Line: -1}
	}
	c.enc.init(iso.name, iso.src, iso.timeout, iso.memory)
	msg, _ := c.enc.frame() // the source fits: pipeline files are far smaller
	payload, err := c.roundTrip(ctx, msg, initTimeout+initGrace)
	if err == nil {
		d := decoder{b: payload}
		vals, f := d.answer()
		switch {
		case d.err == nil && f != nil:
			c.close()
			return nil, f
		case d.err == nil && len(vals) == 0:
			return c, nil
		case d.err != nil:
			err = d.err
		default:
			err = errFrame
		}
	}
	switch c.end(err) {
	case stopContext:
		return nil, &failure{Reason: catalog.ReasonTimeout, Text: context.Cause(ctx).Error()}
	case stopTimeout:
		return nil, &failure{Reason: catalog.ReasonTimeout, Text: fmt.Sprintf("%v (%s)", errInit, initTimeout), Line: -1}
	}
	return nil, &failure{Reason: catalog.ReasonResource, Text: fmt.Sprintf("the script's top-level code went past its memory budget of %s: %s", formatSize(iso.memory), c.death()), Line: -1}
}

// put returns a host that answered to the idle set.
func (h *hosts) put(c *host) {
	c.lastUsed = time.Now()
	h.mu.Lock()
	h.idle = append(h.idle, c)
	h.signal()
	h.mu.Unlock()
}

// drop stops the idle hosts of a script whose operator is gone.
func (h *hosts) drop(iso *isolated) {
	h.mu.Lock()
	h.idle = slices.DeleteFunc(h.idle, func(c *host) bool {
		if c.iso == iso {
			c.close()
			return true
		}
		return false
	})
	h.mu.Unlock()
}

// exited frees the place of a host that exited (or never started).
func (h *hosts) exited(c *host) {
	h.mu.Lock()
	h.live--
	if c != nil {
		h.idle = slices.DeleteFunc(h.idle, func(x *host) bool { return x == c })
	}
	h.signal()
	h.mu.Unlock()
}

// signal wakes the calls waiting for a host; h.mu is held.
func (h *hosts) signal() {
	close(h.wake)
	h.wake = make(chan struct{})
}

// Why a round trip was cut short.
const (
	stopNone = iota
	stopTimeout
	stopContext
)

// host is one script host process, used by one call at a time.
type host struct {
	iso      *isolated
	cmd      *exec.Cmd
	in       *os.File // its stdin
	out      *os.File // its stdout
	r        *bufio.Reader
	stderr   *tail
	enc      encoder
	buf      []byte
	lastUsed time.Time
	stopped  atomic.Int32 // why it was killed, if it was
	done     chan struct{}
	waitErr  error // how it exited, once done is closed
}

func (h *hosts) start(iso *isolated) (*host, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c := &host{iso: iso, in: inW, out: outR, r: bufio.NewReaderSize(outR, 64<<10), stderr: &tail{}, done: make(chan struct{})}
	c.cmd = exec.Command(h.cfg.Executable)
	c.cmd.Env = append(os.Environ(), hostEnv+"="+strconv.FormatInt(iso.memory, 10)+":"+strconv.FormatInt(h.cfg.Idle.Milliseconds(), 10))
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = inR, outW, c.stderr
	err = c.cmd.Start()
	inR.Close() // the host's ends
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
		// A host that exits has said all it will: a read still waiting
		// fails (and data it wrote before dying is not awaited).
		c.out.Close()
		h.exited(c)
	}()
	return c, nil
}

// roundTrip sends msg and reads the answer within limit. Past limit, or
// when ctx ends, the host is killed and the read fails.
func (c *host) roundTrip(ctx context.Context, msg []byte, limit time.Duration) ([]byte, error) {
	t := time.AfterFunc(limit, func() { c.kill(stopTimeout) })
	defer t.Stop()
	if ctx.Done() != nil {
		defer context.AfterFunc(ctx, func() { c.kill(stopContext) })()
	}
	if _, err := c.in.Write(msg); err != nil {
		return nil, err
	}
	payload, err := readFrame(c.r, c.buf)
	if err != nil {
		return nil, err
	}
	c.buf = payload[:0]
	if cap(c.buf) > 1<<20 {
		c.buf = nil
	}
	return payload, nil
}

func (c *host) kill(why int32) {
	c.stopped.CompareAndSwap(stopNone, why)
	_ = c.cmd.Process.Kill()
}

// close ends an idle host: it exits when its stdin closes.
func (c *host) close() { c.in.Close() }

// end finishes a host whose round trip failed with err: it is killed if
// it is not dead yet and waited for. It returns why it was stopped, and
// logs a host that died by itself.
func (c *host) end(err error) int32 {
	c.kill(stopNone)
	c.in.Close()
	<-c.done
	why := c.stopped.Load()
	if why == stopNone {
		c.iso.h.cfg.Logger.Warn("script host died", "script", c.iso.name, "err", err, "exit", c.waitErr, "stderr", c.stderr.String())
	}
	return why
}

// death says how a host that died by itself ended, for messages.
func (c *host) death() string {
	s := c.stderr.String()
	if strings.Contains(s, "out of memory") || strings.Contains(s, "cannot allocate") || strings.Contains(s, "failed to allocate") {
		return "its process ran out of memory"
	}
	var ee *exec.ExitError
	if errors.As(c.waitErr, &ee) {
		return "its process died (" + ee.String() + ")"
	}
	return "its process died"
}

// tail keeps the start and the end of what is written to it: a Go
// runtime's fatal error comes first, then a dump of every goroutine.
type tail struct {
	mu   sync.Mutex
	head []byte
	b    []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	written := len(p)
	if n := min(stderrTail/4-len(t.head), len(p)); n > 0 {
		t.head = append(t.head, p[:n]...)
		p = p[n:]
	}
	t.b = append(t.b, p...)
	if len(t.b) > stderrTail {
		t.b = append(t.b[:0], t.b[len(t.b)-stderrTail:]...)
	}
	return written, nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) == 0 {
		return string(t.head)
	}
	return string(t.head) + "\n…\n" + string(t.b)
}

var _ io.Writer = (*tail)(nil)
