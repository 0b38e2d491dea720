package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	sluice "github.com/sluicehq/sluice/internal/runtime"
)

// 500 pipelines in one runtime start, each processes its record, and all
// stop cleanly within a deadline.
func TestScale(t *testing.T) {
	const n = 500
	brokers := kafkatest.Brokers(t)
	ctx := context.Background()

	inputs := make([]string, n)
	outputs := make([]string, n)
	for i := range n {
		inputs[i], outputs[i] = fmt.Sprintf("scale%03d-in", i), fmt.Sprintf("scale%03d-out", i)
	}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	resp, err := adm.CreateTopics(ctx, 1, 1, nil, inputs...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("creating inputs: %v", err)
	}

	rt, err := sluice.New(sluice.Brokers(brokers...), sluice.CommitInterval(100*time.Millisecond),
		sluice.RetryBackoff(50*time.Millisecond, time.Second), sluice.SessionTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = rt.Close(context.Background())
		}
	})
	goroutines := runtime.NumGoroutine()

	ps := make([]sluice.Pipeline, n)
	for i := range n {
		ps[i] = sluice.Pipeline{Revision: "r1", Plan: plan(t, fmt.Sprintf("scale%03d", i), fmt.Sprintf(`  source: {topic: %s}
  steps:
    - filter: n >= 0
    - map: {n: n, pipeline: %d}
  sink: {topic: %s}
`, inputs[i], i, outputs[i]))}
	}
	start := time.Now()
	if err := rt.Apply(ctx, ps); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 90*time.Second, "every pipeline running with its partition", func() bool {
		for _, s := range rt.Status() {
			if s.State != sluice.Running || len(s.Partitions) != 1 {
				return false
			}
		}
		return true
	})
	tStart := time.Since(start)
	t.Logf("%d pipelines running in %v; %d goroutines (%d before)", n, tStart, runtime.NumGoroutine(), goroutines)

	start = time.Now()
	in := make([]*kgo.Record, n)
	for i := range n {
		in[i] = &kgo.Record{Topic: inputs[i], Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	kafkatest.Produce(t, brokers, in...)
	reader := kafkatest.Client(t, brokers, kgo.ConsumeTopics(outputs...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	seen := map[string]int{}
	for len(seen) < n && rctx.Err() == nil {
		f := reader.PollFetches(rctx)
		for _, fe := range f.Errors() {
			if rctx.Err() == nil {
				t.Fatalf("reading outputs: %v", fe.Err)
			}
		}
		f.EachRecord(func(r *kgo.Record) {
			var v struct{ N, Pipeline int }
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("output %q: %v", r.Value, err)
			}
			if want := fmt.Sprintf("scale%03d-out", v.N); r.Topic != want || v.Pipeline != v.N {
				t.Fatalf("output %s in %s, want it in %s from pipeline %d", r.Value, r.Topic, want, v.N)
			}
			seen[r.Topic]++
		})
	}
	tProcess := time.Since(start)
	if len(seen) != n {
		t.Fatalf("outputs in %d of %d topics after %v", len(seen), n, tProcess)
	}
	for topic, c := range seen {
		if c != 1 {
			t.Errorf("%s has %d outputs, want 1", topic, c)
		}
	}
	for _, s := range rt.Status() {
		if s.State != sluice.Running || s.Processed != 1 || s.Restarts != 0 {
			t.Errorf("status %+v, want running, 1 processed, no restarts", s)
		}
	}
	t.Logf("one record through each of %d pipelines in %v", n, tProcess)

	start = time.Now()
	cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
	defer ccancel()
	err = rt.Close(cctx)
	closed = true
	tClose := time.Since(start)
	if err != nil {
		t.Fatalf("close after %v: %v", tClose, err)
	}
	if st := rt.Status(); len(st) != 0 {
		t.Errorf("after close, status lists %d pipelines", len(st))
	}
	t.Logf("closed %d pipelines in %v", n, tClose)
}
