package runtime_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/runtime"
)

// Options are validated at construction, with every problem named at once.
func TestOptionsValidated(t *testing.T) {
	_, err := runtime.New(runtime.CommitInterval(0), runtime.TransactionTimeout(time.Second), runtime.StuckAfter(2*time.Second))
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{"no brokers", "commit interval 0s must be positive", "transaction timeout 1s must be longer than the stuck timeout 2s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
