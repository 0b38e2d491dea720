package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

func plan(t testing.TB, name, body string) *pipeline.Plan {
	t.Helper()
	src := fmt.Sprintf("apiVersion: sluice/v1\nkind: Pipeline\nmetadata: {name: %s}\nspec:\n%s", name, body)
	p, err := (&pipeline.Compiler{Registry: all.New()}).Compile(name+".yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newRuntime(t testing.TB, brokers []string, opts ...runtime.Opt) *runtime.Runtime {
	t.Helper()
	// The runtime's log is printed when the test fails (after Close, which
	// is why this cleanup is registered first): a pipeline's restarts and
	// their reasons are in it and nowhere else.
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runtime log:\n%s", logs.String())
		}
	})
	rt, err := runtime.New(append([]runtime.Opt{runtime.Brokers(brokers...), runtime.CommitInterval(50 * time.Millisecond),
		runtime.RetryBackoff(50*time.Millisecond, time.Second), runtime.SessionTimeout(time.Second),
		runtime.Logger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return rt
}

// logBuffer collects log lines from the runtime's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func values(rs []*kgo.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Value)
	}
	sort.Strings(out)
	return out
}

func TestExactlyOnceTransformsAndDeadLetters(t *testing.T) {
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		t.Run(delivery, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			kafkatest.CreateTopic(t, brokers, "in", 3)
			p := plan(t, "double", `  source: {topic: in}
  steps:
    - filter: int(n) % 2 == 0
    - map: {n: n * 10}
  sink: {topic: out}
  delivery: `+delivery+"\n")
			rt := newRuntime(t, brokers)
			if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			var in []*kgo.Record
			for i := 0; i < 100; i++ {
				in = append(in, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
			}
			in = append(in, &kgo.Record{Topic: "in", Value: []byte(`not json`)})
			kafkatest.Produce(t, brokers, in...)
			// Read once the group has committed all the input: a duplicate
			// would be there by then, beyond the 50.
			out := readAfterCommit(t, brokers, p, "out")
			if len(out) != 50 {
				t.Fatalf("read %d outputs, want 50", len(out))
			}
			var want []string
			for i := 0; i < 100; i += 2 {
				want = append(want, fmt.Sprintf(`{"n":%d}`, i*10))
			}
			sort.Strings(want)
			if got := values(out); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("outputs %v\nwant %v", got, want)
			}
			dlq := readAfterCommit(t, brokers, p, "double.dlq")
			if len(dlq) != 1 || string(dlq[0].Value) != "not json" {
				t.Fatalf("DLQ %v, want the undecodable record", values(dlq))
			}
			var reason string
			for _, h := range dlq[0].Headers {
				if h.Key == "sluice.reason" {
					reason = string(h.Value)
				}
			}
			if reason != "decode" {
				t.Errorf("DLQ reason %q, want decode", reason)
			}
			st := rt.Status()
			if len(st) != 1 || st[0].State != runtime.Running || st[0].Processed != 101 || st[0].DeadLetter != 1 {
				t.Errorf("status %+v", st)
			}
		})
	}
}
