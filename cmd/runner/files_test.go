package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog/operators/all"
)

// Files in the pipelines directory that are not regular files inside it
// are not pipelines: a FIFO would block the scan (and with it reloads and,
// before, signals), a device could be endless, and a symbolic link out of
// the directory would make the runner read, compile and log a file
// elsewhere (its compile errors quote it). Each is skipped with its
// reason, reported once; a link to a regular file inside the directory
// is still followed.
func TestPipelineDirSkipsSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), pipelineV1)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret.yaml")
	writeFile(t, secret, strings.Replace(pipelineV1, "name: scale", "name: secret", 1))
	symlink(t, secret, filepath.Join(dir, "out.yaml"))
	symlink(t, "../"+filepath.Base(outside)+"/secret.yaml", filepath.Join(dir, "relative-out.yaml"))
	symlink(t, "/dev/zero", filepath.Join(dir, "zero.yaml"))
	symlink(t, "missing.yaml", filepath.Join(dir, "dangling.yaml"))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, "sub", filepath.Join(dir, "dir.yaml"))
	if err := os.Mkdir(filepath.Join(dir, ".inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, ".inner", "b.yaml"), strings.Replace(pipelineV1, "name: scale", "name: inner", 1))
	symlink(t, ".inner/b.yaml", filepath.Join(dir, "in.yaml"))

	pd := newPipelineDir(dir, all.New())
	done := make(chan struct{})
	var errs []fileError
	var err error
	go func() {
		defer close(done)
		_, errs, _, err = pd.scan()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the scan did not finish: a special file blocked it")
	}
	if err != nil || len(errs) != 0 {
		t.Fatalf("scan: errs=%v err=%v", errs, err)
	}
	var names []string
	for _, p := range pd.desired() {
		names = append(names, p.Plan.Name)
	}
	if got := strings.Join(names, ","); got != "inner,scale" {
		t.Errorf("pipelines %s, want inner (through the link inside the directory) and scale", got)
	}
	skips := strings.Join(pd.newSkips(), "\n")
	for _, want := range []string{
		"fifo.yaml: not a regular file (a named pipe)",
		"out.yaml: symbolic link to " + secret + ", outside the pipelines directory",
		"relative-out.yaml: symbolic link to ",
		"zero.yaml: symbolic link to /dev/zero, outside the pipelines directory",
		"dangling.yaml: symbolic link that does not resolve",
		"dir.yaml: not a regular file (a directory)",
	} {
		if !strings.Contains(skips, want) {
			t.Errorf("skips do not say %q:\n%s", want, skips)
		}
	}
	if strings.Contains(skips, filepath.Join(dir, "in.yaml")+":") {
		t.Errorf("the link inside the directory was skipped:\n%s", skips)
	}
	if _, _, _, err := pd.scan(); err != nil {
		t.Fatal(err)
	}
	if again := pd.newSkips(); len(again) != 0 {
		t.Errorf("skips reported again on the next scan: %q", again)
	}
}

// A file listed as regular and replaced by a FIFO before it is read must
// not block the reader either.
func TestReadPipelineFileRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := readPipelineFile(path)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("reading a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
}

// A signal must end `runner run` while a scan of the directory hangs (a
// stalled network file system), at start and between reloads: scans run
// on a goroutine of their own.
func TestSignalDoesNotWaitForScan(t *testing.T) {
	for _, when := range []string{"start", "reload"} {
		t.Run(when, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "a.yaml"), pipelineV1)
			cfg, err := parseArgs([]string{"run", "--pipelines", dir, "--embedded-addr", freePort(t), "--listen", freePort(t),
				"--reload-interval", "20ms", "--shutdown-timeout", "10s"}, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			pd := newPipelineDir(dir, all.New())
			entered, release := make(chan struct{}, 1), make(chan struct{})
			defer close(release)
			hold := make(chan bool, 1)
			hold <- when == "start"
			pd.read = func(path string) ([]byte, error) {
				h := <-hold
				hold <- true // every later read hangs
				if h {
					select {
					case entered <- struct{}{}:
					default:
					}
					<-release
				}
				return readPipelineFile(path)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs syncBuffer
			done := make(chan error, 1)
			go func() { done <- runDir(ctx, cfg.run, pd, &logs, &logs) }()
			select {
			case <-entered:
			case err := <-done:
				t.Fatalf("runner run ended before the scan hung: %v\n%s", err, logs.String())
			case <-time.After(30 * time.Second):
				t.Fatalf("no scan reached the file\n%s", logs.String())
			}
			cancel() // SIGTERM
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("runner run: %v\n%s", err, logs.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("runner run did not end on the signal while a scan hung\n%s", logs.String())
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
