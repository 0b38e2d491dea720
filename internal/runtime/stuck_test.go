package runtime_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/opsserver"
	"github.com/sluicehq/sluice/internal/runtime"
)

// A record held in the chain past the stuck timeout by an operator that
// ignores its context (the gate) must not sit there silently, uncommitted
// behind a pipeline that reports itself running: the pipeline fails at
// once, naming the step and the record, /readyz is not ready, and the
// stuck gauge and counter say so. Replacing it through Apply must not
// wait for the operator (the old code waited out Apply's whole deadline,
// holding every other reload): the Apply that replaces it and changes
// another pipeline returns promptly, the new revision takes the partition
// over and processes the record the stuck one held (nothing was committed
// past it), and the other pipeline runs its new revision.
func TestStuckRecordFailsVisibly(t *testing.T) {
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		t.Run(delivery, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			in, other := kafkatest.Topic(t, "stuck-in"), kafkatest.Topic(t, "other-in")
			kafkatest.CreateTopic(t, brokers, in, 1)
			kafkatest.CreateTopic(t, brokers, other, 1)
			metrics := prometheus.NewRegistry()
			rt := newRuntime(t, brokers, runtime.Registerer(metrics), runtime.StuckAfter(time.Second), runtime.TransactionTimeout(5*time.Second))
			entered, release := make(chan struct{}, 100), make(chan struct{})
			t.Cleanup(func() { close(release) }) // before rt.Close: lets the abandoned goroutine end
			reg := gateRegistry(t, entered, release)
			pipe := func(name, topic, rev, steps string) runtime.Pipeline {
				return runtime.Pipeline{Revision: rev, Plan: planWith(t, reg, name, `  source: {topic: `+topic+`}
  delivery: `+delivery+`
  steps:
    - map: {n: n, rev: '"`+rev+`"'}
`+steps+`  sink: {topic: `+topic+`.out}
`)}
			}
			if err := rt.Apply(context.Background(), []runtime.Pipeline{
				pipe("stuck", in, "r1", "    - gate: true\n"), pipe("other", other, "r1", ""),
			}); err != nil {
				t.Fatal(err)
			}
			waitAssigned(t, rt, "stuck", 1, 30*time.Second)
			waitAssigned(t, rt, "other", 1, 30*time.Second)
			kafkatest.Produce(t, brokers, numbered(in, 0, 1)...)
			select {
			case <-entered:
			case <-time.After(30 * time.Second):
				t.Fatal("the record never reached the gate")
			}

			want := "the record at " + in + "/0 offset 0 has been in step gate for more than 1s"
			kafkatest.Eventually(t, 30*time.Second, "the stuck pipeline failed visibly", func() bool {
				s := statusOf(t, rt, "stuck")
				return s.State == runtime.Failed && strings.Contains(s.Error, want)
			})
			if r := opsserver.Ready(rt.Status()); r.Ready {
				t.Errorf("/readyz ready with a record stuck: %+v", r)
			}
			if g, c := gauge(t, metrics, "sluice_pipeline_stuck", "stuck"), gauge(t, metrics, "sluice_pipeline_stuck_total", "stuck"); g != 1 || c != 1 {
				t.Errorf("sluice_pipeline_stuck %v, sluice_pipeline_stuck_total %v; want 1 and 1", g, c)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			if err := rt.Apply(ctx, []runtime.Pipeline{pipe("stuck", in, "r2", ""), pipe("other", other, "r2", "")}); err != nil {
				t.Fatalf("replacing the stuck pipeline: %v", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("the Apply replacing a stuck pipeline took %v", took)
			}
			kafkatest.Produce(t, brokers, numbered(other, 0, 1)...)
			if out := kafkatest.ReadCommitted(t, brokers, other+".out", 1, 30*time.Second); len(out) != 1 || !strings.Contains(string(out[0].Value), `"rev":"r2"`) {
				t.Fatalf("other's output %v, want one record from r2", values(out))
			}
			out := kafkatest.ReadCommitted(t, brokers, in+".out", 1, 30*time.Second)
			if len(out) != 1 || string(out[0].Value) != `{"n":0,"rev":"r2"}` {
				t.Fatalf("the stuck record's output %v, want it processed once by r2", values(out))
			}
			kafkatest.Eventually(t, 30*time.Second, "the new revision running without the stuck gauge", func() bool {
				s := statusOf(t, rt, "stuck")
				return s.State == runtime.Running && s.Revision == "r2" && s.Error == "" && gauge(t, metrics, "sluice_pipeline_stuck", "stuck") == 0
			})
		})
	}
}

// gauge returns the value of the named gauge or counter of pipeline.
func gauge(t *testing.T, reg *prometheus.Registry, name, pipeline string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pipeline" && l.GetValue() == pipeline {
					if m.GetGauge() != nil {
						return m.GetGauge().GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}
