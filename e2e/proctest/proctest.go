// Package proctest runs Sluice's binaries as subprocesses for the
// end-to-end tests: it builds them once per test binary, starts them with
// their output kept for the test (and printed when it fails), and reads
// what a test waits for or measures (a line printed, peak memory).
package proctest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build builds the named commands (under cmd/) into a new directory and
// returns their paths by name and a function that removes them. The
// directory is readable by others, since PostgreSQL runs as postgres when
// the tests run as root.
func Build(names ...string) (map[string]string, func(), error) {
	dir, err := os.MkdirTemp("", "sluice-e2e-bin-")
	if err != nil {
		return nil, nil, err
	}
	_ = os.Chmod(dir, 0o755)
	cleanup := func() { os.RemoveAll(dir) }
	out := map[string]string{}
	for _, name := range names {
		path := filepath.Join(dir, name)
		if b, err := exec.Command("go", "build", "-o", path, "github.com/sluicehq/sluice/cmd/"+name).CombinedOutput(); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, b)
		}
		out[name] = path
	}
	return out, cleanup, nil
}

// Proc is a running subprocess.
type Proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// Start runs path with args and env added to the test's environment. The
// process is killed when the test ends, and its output logged if the test
// failed (LogOutput).
func Start(t testing.TB, name string, env []string, path string, args ...string) *Proc {
	t.Helper()
	p := &Proc{name: name, cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() { _ = p.cmd.Wait(); pw.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			LogOutput(t, name, p.Output())
		}
	})
	return p
}

// Output is everything the process printed so far.
func (p *Proc) Output() string { p.mu.Lock(); defer p.mu.Unlock(); return p.out.String() }

// Alive reports whether the process still runs.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill kills the process and waits for it.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to 45 s for the exit.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(45 * time.Second):
		t.Fatalf("%s did not stop within 45s of SIGTERM", p.name)
	}
}

// WaitFor returns re's first submatch in the output once it is there.
func (p *Proc) WaitFor(t testing.TB, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(p.Output()); m != nil {
			return m[1]
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before printing %s", p.name, re)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s printed no %s within %s", p.name, re, timeout)
		}
	}
}

var hwmRE = regexp.MustCompile(`VmHWM:\s+(\d+) kB`)

// PeakRSS is the process's high-water mark of resident memory (VmHWM).
func (p *Proc) PeakRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := hwmRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// FreeAddr is a loopback address nothing listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Credentials reads the KEY=value lines `controlplane dev` writes.
func Credentials(t testing.TB, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		out[k] = v
	}
	return out
}

// LogOutput logs the last 6 KiB of out, the output of the process name,
// and with SLUICE_E2E_LOGDIR set writes all of it to a file there
// (SaveOutput). Start calls it when a test fails; a test that runs a
// process by itself calls it too.
func LogOutput(t testing.TB, name, out string) {
	t.Helper()
	t.Logf("%s output (last 6 KiB):\n%s", name, Tail(out, 6<<10))
	dir := os.Getenv("SLUICE_E2E_LOGDIR")
	if dir == "" {
		return
	}
	if path, err := SaveOutput(dir, t.Name(), name, out); err != nil {
		t.Logf("saving %s's output: %v", name, err)
	} else {
		t.Logf("%s output in full (%d bytes): %s", name, len(out), path)
	}
}

// SaveOutput writes out, the output of the process name started by test,
// to a new file in dir (made if missing) named after both, and returns
// its path. A process started again under the same name gets a file of
// its own.
func SaveOutput(dir, test, name, out string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	clean := strings.NewReplacer("/", "_", " ", "_", string(filepath.Separator), "_")
	f, err := os.CreateTemp(dir, clean.Replace(test)+"-"+clean.Replace(name)+"-*.log")
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(out); err != nil {
		f.Close()
		return "", err
	}
	return f.Name(), f.Close()
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
