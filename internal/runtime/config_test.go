package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/runtime"
)

// Options are validated at construction, with every problem named at once.
func TestOptionsValidated(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runtime.New(runtime.CommitInterval(0), runtime.TransactionTimeout(time.Second), runtime.StuckAfter(2*time.Second),
		runtime.IdleTimeout(-time.Second), runtime.StateDir(file))
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{"no brokers", "commit interval 0s must be positive", "transaction timeout 1s must be longer than the stuck timeout 2s",
		"idle timeout -1s must be positive", "state directory " + file + " is not a directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
