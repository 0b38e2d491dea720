package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

// Large polls are processed by several workers at once; their outputs must
// still reach each output partition, and the DLQ, in input order, exactly
// as a record-by-record pass writes them.
func TestParallelKeepsOrder(t *testing.T) {
	if goruntime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2 to process records in parallel")
	}
	const n = 20_000
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		t.Run(delivery, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			kafkatest.CreateTopic(t, brokers, "in", 1)
			kafkatest.CreateTopic(t, brokers, "out", 1)
			kafkatest.CreateTopic(t, brokers, "ordered.dlq", 1)
			// The backlog is there before the pipeline starts, so it polls
			// in large batches.
			var in []*kgo.Record
			var want, wantDLQ []string
			for i := range n {
				v := fmt.Sprintf(`{"n":%d,"pad":"xxxxxxxxxxxxxxxx"}`, i)
				switch {
				case i%97 == 0:
					v = fmt.Sprintf(`{"n":%d,`, i) // undecodable
					wantDLQ = append(wantDLQ, v)
				case i%89 == 0:
					v = fmt.Sprintf(`{"n":"%d"}`, i) // n * 3 fails
					wantDLQ = append(wantDLQ, v)
				case i%3 == 0: // filtered out
				default:
					want = append(want, fmt.Sprintf(`{"n":%d,"thrice":%d}`, i, 3*i))
				}
				in = append(in, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprint(i)), Value: []byte(v)})
			}
			kafkatest.Produce(t, brokers, in...)
			rt := newRuntime(t, brokers)
			p := plan(t, "ordered", `  source: {topic: in}
  steps:
    - filter: n == nil || type(n) != "int" && type(n) != "float" || int(n) % 3 != 0
    - map: {n: n, thrice: n * 3}
  sink: {topic: out}
  delivery: `+delivery+"\n")
			if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			// Read once the group has committed all the input: a duplicate
			// would be there by then.
			out := readAfterCommit(t, brokers, p, "out")
			if len(out) != len(want) {
				t.Fatalf("read %d outputs, want %d", len(out), len(want))
			}
			for i, r := range out {
				if string(r.Value) != want[i] {
					t.Fatalf("output %d is %s, want %s: out of order", i, r.Value, want[i])
				}
			}
			dlq := readAfterCommit(t, brokers, p, "ordered.dlq")
			if len(dlq) != len(wantDLQ) {
				t.Fatalf("read %d dead letters, want %d", len(dlq), len(wantDLQ))
			}
			for i, r := range dlq {
				if string(r.Value) != wantDLQ[i] {
					t.Fatalf("dead letter %d is %s, want %s", i, r.Value, wantDLQ[i])
				}
			}
			if s := statusOf(t, rt, "ordered"); s.Processed < n || s.DeadLetter < uint64(len(wantDLQ)) || s.Restarts != 0 {
				t.Errorf("status %+v", s)
			}
		})
	}
}

// A panic in the middle of a large poll, processed by several workers,
// fails the pipeline without committing past the record that panics, as
// on the record-by-record path (TestPanicLosesNothing).
func TestParallelPanicLosesNothing(t *testing.T) {
	if goruntime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2 to process records in parallel")
	}
	const n, at = 6000, 4321
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		t.Run(delivery, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			kafkatest.CreateTopic(t, brokers, "in", 1)
			kafkatest.Produce(t, brokers, numbered("in", 0, n)...)
			rt := newRuntime(t, brokers, runtime.RetryBackoff(100*time.Millisecond, 100*time.Millisecond))
			p := planWith(t, panicAtRegistry(t), "panicky", `  source: {topic: in}
  steps:
    - panic_at: "`+fmt.Sprint(at)+`"
    - map: {n: n, twice: n * 2}
  sink: {topic: out}
  delivery: `+delivery+"\n")
			offs := failRepeatedly(t, rt, brokers, p)
			if o, ok := offs.Lookup("in", 0); ok && o.At > at {
				t.Errorf("committed offset %d: past the record that panics (offset %d), so records were skipped", o.At, at)
			}
			if delivery == "exactly-once" {
				for _, r := range kafkatest.ReadCommitted(t, brokers, "out", n, 2*time.Second) {
					var v struct{ N int }
					if err := json.Unmarshal(r.Value, &v); err != nil || v.N >= at {
						t.Fatalf("output %s: the pipeline went past the record that panics", r.Value)
					}
				}
			}
		})
	}
}

// A stateful pipeline's workers process a poll's partitions while the run
// polls on (executor.dispatch). A panic on one record of a backlog over
// several partitions fails the pipeline without committing past that
// record, and exactly once, nothing of the failed transactions comes out:
// no output for the record or after it in its partition, none twice.
func TestStatefulPanicLosesNothing(t *testing.T) {
	if goruntime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2 to process partitions on workers")
	}
	const n, at = 8000, 6543
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "in", 4)
	in := numbered("in", 0, n)
	kafkatest.Produce(t, brokers, in...) // sets each record's partition and offset
	panics := in[at]
	rt := newRuntime(t, brokers, runtime.RetryBackoff(100*time.Millisecond, 100*time.Millisecond))
	p := planWith(t, panicAtRegistry(t), "panicky", fmt.Sprintf(`  source: {topic: in, key: n, partitioned_by_key: true}
  steps:
    - dedupe: {by: n, within: 1h}
    - panic_at: "%d"
    - map: {n: n, twice: n * 2}
  sink: {topic: out}
  delivery: exactly-once
`, at))
	if len(p.Stages) != 1 {
		t.Fatalf("plan has %d stages, want the dedupe in the source's stage", len(p.Stages))
	}
	offs := failRepeatedly(t, rt, brokers, p)
	if o, ok := offs.Lookup("in", panics.Partition); ok && o.At > panics.Offset {
		t.Errorf("committed offset %d of partition %d: past the record that panics (offset %d)", o.At, panics.Partition, panics.Offset)
	}
	seen := map[int]bool{}
	for _, r := range kafkatest.ReadCommitted(t, brokers, "out", n, 2*time.Second) {
		var v struct{ N int }
		if err := json.Unmarshal(r.Value, &v); err != nil || v.N < 0 || v.N >= n {
			t.Fatalf("output %s is not one of the inputs (%v)", r.Value, err)
		}
		if seen[v.N] {
			t.Fatalf("output for n=%d twice", v.N)
		}
		seen[v.N] = true
		if src := in[v.N]; src.Partition == panics.Partition && src.Offset >= panics.Offset {
			t.Fatalf("output for n=%d (partition %d, offset %d): at or past the record that panics (offset %d)", v.N, src.Partition, src.Offset, panics.Offset)
		}
	}
}

// failRepeatedly runs p, whose panic_at step panics, until it has failed
// and restarted three times, and returns its group's committed offsets.
func failRepeatedly(t *testing.T, rt *runtime.Runtime, brokers []string, p *pipeline.Plan) kadm.OffsetResponses {
	t.Helper()
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 30*time.Second, "repeated failures on the panicking record", func() bool {
		return statusOf(t, rt, p.Name).Restarts >= 3
	})
	offs, err := kadm.NewClient(kafkatest.Client(t, brokers)).FetchOffsets(context.Background(), "sluice-"+p.Name)
	if err != nil {
		t.Fatal(err)
	}
	return offs
}
