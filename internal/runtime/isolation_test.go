package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/runtime"
)

// planWith compiles a pipeline with a given operator registry.
func planWith(t testing.TB, reg *catalog.Registry, name, body string) *pipeline.Plan {
	t.Helper()
	src := fmt.Sprintf("apiVersion: sluice/v1\nkind: Pipeline\nmetadata: {name: %s}\nspec:\n%s", name, body)
	p, err := (&pipeline.Compiler{Registry: reg}).Compile(name+".yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// boomRegistry is the standard registry plus `boom`, an operator that
// panics on every record: only Go code can panic, scripts cannot.
func boomRegistry(t testing.TB) *catalog.Registry {
	t.Helper()
	reg := all.New().Clone()
	err := reg.Register(catalog.Spec{
		Name:    "boom",
		Summary: "Panics on every record (test only).",
		Config:  `{"type": "boolean"}`,
		New: func(*catalog.Build, catalog.Config) (catalog.Operator, error) {
			return catalog.OperatorFunc(func(context.Context, *record.Record, catalog.Output) error {
				panic("boom: deliberate test panic")
			}), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// panicAtRegistry is the standard registry plus `panic_at`, an operator
// that panics on the record whose field n is its config value and passes
// the others on.
func panicAtRegistry(t testing.TB) *catalog.Registry {
	t.Helper()
	reg := all.New().Clone()
	err := reg.Register(catalog.Spec{
		Name:    "panic_at",
		Summary: "Panics on one record (test only).",
		Config:  `{"type": "string"}`,
		New: func(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
			at := conf.String()
			return catalog.OperatorFunc(func(ctx context.Context, r *record.Record, out catalog.Output) error {
				if m, ok := r.Object(); ok && fmt.Sprint(m["n"]) == at {
					panic("panic_at: deliberate test panic on n=" + at)
				}
				return out.Next(ctx, r)
			}), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// numbered returns n records {"n": from+i} for topic, keyed by the number.
func numbered(topic string, from, n int) []*kgo.Record {
	rs := make([]*kgo.Record, n)
	for i := range rs {
		id := from + i
		rs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(id)), Value: []byte(fmt.Sprintf(`{"n":%d}`, id))}
	}
	return rs
}

// statusOf returns the named pipeline's status.
func statusOf(t testing.TB, rt *runtime.Runtime, name string) runtime.Status {
	t.Helper()
	for _, s := range rt.Status() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for pipeline %s in %+v", name, rt.Status())
	return runtime.Status{}
}

// waitAssigned waits until the pipeline runs and holds parts partitions.
func waitAssigned(t testing.TB, rt *runtime.Runtime, name string, parts int, timeout time.Duration) {
	t.Helper()
	kafkatest.Eventually(t, timeout, name+" running with its partitions", func() bool {
		s := statusOf(t, rt, name)
		return s.State == runtime.Running && len(s.Partitions) == parts
	})
}

// checkDoubled checks that outs are exactly {"n": i, "twice": 2i} for every
// i in [from, from+n), each once.
func checkDoubled(t testing.TB, outs []*kgo.Record, from, n int) {
	t.Helper()
	seen := make([]int, n)
	for _, r := range outs {
		var v struct{ N, Twice int }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("output %q: %v", r.Value, err)
		}
		if v.N < from || v.N >= from+n || v.Twice != 2*v.N {
			t.Fatalf("unexpected output %s", r.Value)
		}
		seen[v.N-from]++
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("output for n=%d seen %d times, want once (%d outputs in all)", from+i, c, len(outs))
		}
	}
}

// throughputPipeline is the plain filter+map pipeline whose throughput the
// isolation test measures.
func throughputPipeline(t testing.TB, name, in, out string) *pipeline.Plan {
	return plan(t, name, fmt.Sprintf(`  source: {topic: %s}
  steps:
    - filter: n >= 0
    - map: {n: n, twice: n * 2}
  sink: {topic: %s}
`, in, out))
}

// throughputMeter times batches of records through a pipeline.
type throughputMeter struct {
	t       *testing.T
	brokers []string
	in, out string
	reader  *kgo.Client
	next    int // the first id of the next batch
}

func newThroughputMeter(t *testing.T, brokers []string, in, out string) *throughputMeter {
	reader := kafkatest.Client(t, brokers, kgo.ConsumeTopics(out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	return &throughputMeter{t: t, brokers: brokers, in: in, out: out, reader: reader}
}

// measure produces n records and returns the time from producing them
// until all their outputs could be read with read_committed. It checks
// every output.
func (m *throughputMeter) measure(n int) time.Duration {
	t := m.t
	t.Helper()
	from := m.next
	m.next += n
	start := time.Now()
	kafkatest.Produce(t, m.brokers, numbered(m.in, from, n)...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var outs []*kgo.Record
	for len(outs) < n && ctx.Err() == nil {
		f := m.reader.PollFetches(ctx)
		for _, fe := range f.Errors() {
			if ctx.Err() == nil {
				t.Fatalf("reading %s: %v", m.out, fe.Err)
			}
		}
		outs = append(outs, f.Records()...)
	}
	took := time.Since(start)
	if len(outs) != n {
		t.Fatalf("%s: read %d outputs in %v, want %d", m.out, len(outs), took, n)
	}
	checkDoubled(t, outs, from, n)
	return took
}

// burnCore keeps one core busy, as B's spinning script does, until the
// returned function is called.
func burnCore() (stop func()) {
	var done atomic.Bool
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for x := 0; !done.Load(); x++ {
			_ = x * x
		}
	}()
	return func() { done.Store(true); <-finished }
}

// Of three pipelines in one runtime, A panics on every record and B is
// blocked by a slow script; C still processes everything, at (nearly) the
// speed it has alone, and the process lives on.
//
// C's throughput is measured alone and next to A and B in turns (A and B
// are removed and added again between turns), so that both see the same
// background load on a shared machine; the best turn of each is compared.
// B's script spins a core for real, which C cannot have while B runs: the
// alone turns spin one core too (burnCore), so the comparison measures what
// isolation is about (no shared goroutine, queue or lock between
// pipelines), not the core B legitimately uses. C processes chunks on
// every core, so without that it would take about 2x on 2 cores anyway.
func TestIsolation(t *testing.T) {
	const n, rounds, bRecords = 20000, 2, 50
	brokers := kafkatest.Brokers(t)
	for _, topic := range []string{"c-in", "a-in", "b-in"} {
		kafkatest.CreateTopic(t, brokers, topic, 3)
	}
	kafkatest.Produce(t, brokers, numbered("a-in", 0, 1000)...)
	kafkatest.Produce(t, brokers, numbered("b-in", 0, bRecords)...)
	rt := newRuntime(t, brokers)
	ctx := context.Background()

	// A panics on every record; B spends 1.5s on every record; C is plain.
	a := runtime.Pipeline{Revision: "r1", Plan: planWith(t, boomRegistry(t), "a", `  source: {topic: a-in}
  steps:
    - boom: true
  sink: {topic: a-out}
`)}
	b := runtime.Pipeline{Revision: "r1", Plan: plan(t, "b", `  source: {topic: b-in}
  steps:
    - script:
        timeout: 2s
        source: |
          function process(r) {
            var start = Date.now();
            while (Date.now() < start + 1500) {}
            return r.value;
          }
  sink: {topic: b-out}
`)}
	c := runtime.Pipeline{Plan: throughputPipeline(t, "c", "c-in", "c-out"), Revision: "r1"}
	meter := newThroughputMeter(t, brokers, "c-in", "c-out")
	var tAlone, tShared time.Duration
	for round := 1; round <= rounds; round++ {
		if err := rt.Apply(ctx, []runtime.Pipeline{c}); err != nil {
			t.Fatal(err)
		}
		waitAssigned(t, rt, "c", 3, 30*time.Second)
		stop := burnCore()
		took := meter.measure(n)
		stop()
		t.Logf("round %d: C alone (one core busy elsewhere): %d records in %v (%.0f records/s)", round, n, took, float64(n)/took.Seconds())
		if tAlone == 0 || took < tAlone {
			tAlone = took
		}

		if err := rt.Apply(ctx, []runtime.Pipeline{a, b, c}); err != nil {
			t.Fatal(err)
		}
		kafkatest.Eventually(t, 30*time.Second, "A failing on its panic", func() bool {
			s := statusOf(t, rt, "a")
			return s.State == runtime.Failed && s.Restarts > 0
		})
		kafkatest.Eventually(t, 30*time.Second, "B busy with its slow script", func() bool {
			return statusOf(t, rt, "b").Processed > 0
		})
		took = meter.measure(n)
		t.Logf("round %d: C next to A and B: %d records in %v (%.0f records/s)", round, n, took, float64(n)/took.Seconds())
		if tShared == 0 || took < tShared {
			tShared = took
		}
	}
	t.Logf("C: %d records in %v alone (%.0f records/s), in %v next to a panicking and a blocked pipeline (%.0f records/s): %.2fx the time (best of %d each)",
		n, tAlone, float64(n)/tAlone.Seconds(), tShared, float64(n)/tShared.Seconds(), tShared.Seconds()/tAlone.Seconds(), rounds)
	if tShared > 2*tAlone {
		t.Errorf("C took %v next to A and B, more than twice its %v alone", tShared, tAlone)
	}

	// A failed on the panic and keeps being retried; the process lives.
	kafkatest.Eventually(t, 30*time.Second, "A failed with the panic in its status", func() bool {
		s := statusOf(t, rt, "a")
		return s.State == runtime.Failed && s.Restarts > 0 && strings.Contains(s.Error, "panic") && strings.Contains(s.Error, "boom")
	})
	if got := kafkatest.ReadCommitted(t, brokers, "a-out", 1, time.Second); len(got) != 0 {
		t.Errorf("A committed %d outputs, want none", len(got))
	}
	// B is slow, not failed: it is still on its first records.
	sb := statusOf(t, rt, "b")
	if sb.State != runtime.Running || sb.Restarts != 0 || sb.Processed >= bRecords {
		t.Errorf("B: %+v, want running (slow, not failed) and not done", sb)
	}
	// C ran throughout, never disturbed by A and B coming and going.
	sc := statusOf(t, rt, "c")
	if sc.State != runtime.Running || sc.Restarts != 0 || sc.Processed != n*2*rounds {
		t.Errorf("C: %+v, want running, no restarts, %d processed", sc, n*2*rounds)
	}
	sa := statusOf(t, rt, "a")
	t.Logf("A: %s, %d restarts, error %q; B: %s, %d processed", sa.State, sa.Restarts, sa.Error, sb.State, sb.Processed)
}

// slowRegistry is the standard registry plus `slow`, an operator that
// sleeps for its configured duration on every record and passes it on.
func slowRegistry(t testing.TB) *catalog.Registry {
	t.Helper()
	reg := all.New().Clone()
	err := reg.Register(catalog.Spec{
		Name:    "slow",
		Summary: "Sleeps on every record (test only).",
		Config:  `{"type": "string"}`,
		New: func(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
			d, err := time.ParseDuration(conf.String())
			if err != nil {
				return nil, conf.Errorf("%v", err)
			}
			return catalog.OperatorFunc(func(ctx context.Context, r *record.Record, out catalog.Output) error {
				time.Sleep(d)
				return out.Next(ctx, r)
			}), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// A pipeline whose records are slow, though far from stuck, still makes
// progress: its transactions must not outlive the transaction timeout
// because one poll brought more records than fit in one. A stateful one's
// workers hold records while the run polls on (executor.dispatch), and
// until one has been timed it polls one at a time too.
func TestSlowPipelineMakesProgress(t *testing.T) {
	for _, tc := range []struct{ name, delivery, source, steps string }{
		{"exactly-once", "exactly-once", "{topic: in}", ""},
		{"at-least-once", "at-least-once", "{topic: in}", ""},
		{"exactly-once with state", "exactly-once", "{topic: in, key: n, partitioned_by_key: true}", "    - dedupe: {by: n, within: 1h}\n"},
	} {
		delivery := tc.delivery
		t.Run(tc.name, func(t *testing.T) {
			const n = 16
			brokers := kafkatest.Brokers(t)
			kafkatest.CreateTopic(t, brokers, "in", 1)
			kafkatest.Produce(t, brokers, numbered("in", 0, n)...)
			rt := newRuntime(t, brokers, runtime.TransactionTimeout(time.Second), runtime.StuckAfter(900*time.Millisecond))
			p := planWith(t, slowRegistry(t), "slow", `  source: `+tc.source+`
  steps:
`+tc.steps+`    - slow: 200ms
    - map: {n: n, twice: n * 2}
  sink: {topic: out}
  delivery: `+delivery+"\n")
			start := time.Now()
			if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			outs := kafkatest.ReadCommitted(t, brokers, "out", n, 30*time.Second)
			t.Logf("%d records of 200ms each in %v; status %+v", len(outs), time.Since(start), statusOf(t, rt, "slow"))
			if len(outs) < n {
				t.Fatalf("read %d outputs, want %d", len(outs), n)
			}
			if delivery == "exactly-once" {
				// Once the group has committed all the input, a
				// duplicate would be there, beyond the n.
				checkDoubled(t, readAfterCommit(t, brokers, p, "out"), 0, n)
			}
			if s := statusOf(t, rt, "slow"); s.Restarts != 0 {
				t.Errorf("the slow pipeline restarted: %+v", s)
			}
		})
	}
}

// Apply changes the running set live: a changed pipeline restarts on its
// new revision, a removed one stops and leaves its group, an added one
// starts, and an unchanged one goes on undisturbed.
func TestApplyLiveChange(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	for _, topic := range []string{"keep-in", "change-in", "gone-in", "new-in"} {
		kafkatest.CreateTopic(t, brokers, topic, 3)
	}
	rt := newRuntime(t, brokers)
	ctx := context.Background()
	pipe := func(name, rev, expr string) runtime.Pipeline {
		return runtime.Pipeline{Revision: rev, Plan: plan(t, name, fmt.Sprintf(`  source: {topic: %s-in}
  steps:
    - map: {n: n, twice: %s}
  sink: {topic: %s-out}
`, name, expr, name))}
	}
	keep, change, gone := pipe("keep", "r1", "n * 2"), pipe("change", "r1", "n * 2"), pipe("gone", "r1", "n * 2")
	if err := rt.Apply(ctx, []runtime.Pipeline{keep, change, gone}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keep", "change", "gone"} {
		kafkatest.Produce(t, brokers, numbered(name+"-in", 0, 100)...)
	}
	// Each output is read once its group has committed all the input, so
	// that a duplicate would be there too.
	for _, p := range []runtime.Pipeline{keep, change, gone} {
		checkDoubled(t, readAfterCommit(t, brokers, p.Plan, p.Plan.Name+"-out"), 0, 100)
	}
	before := statusOf(t, rt, "keep")
	if before.State != runtime.Running || before.Processed != 100 || len(before.Partitions) != 3 {
		t.Fatalf("keep before the change: %+v", before)
	}

	// change gets a new revision with a different map, gone goes, new comes.
	change2 := pipe("change", "r2", "n * 3")
	added := pipe("new", "r1", "n * 2")
	if err := rt.Apply(ctx, []runtime.Pipeline{keep, change2, added}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rt.Status() {
		names = append(names, s.Name+"@"+s.Revision)
	}
	if got := strings.Join(names, " "); got != "change@r2 keep@r1 new@r1" {
		t.Fatalf("pipelines after the change: %s", got)
	}
	after := statusOf(t, rt, "keep")
	if after.State != runtime.Running || after.Processed != before.Processed || after.Restarts != 0 ||
		!after.Since.Equal(before.Since) || fmt.Sprint(after.Partitions) != fmt.Sprint(before.Partitions) {
		t.Fatalf("keep was disturbed by the change:\nbefore %+v\nafter  %+v", before, after)
	}

	// keep goes on where it was: its counter continues and nothing repeats.
	kafkatest.Produce(t, brokers, numbered("keep-in", 100, 100)...)
	checkDoubled(t, readAfterCommit(t, brokers, keep.Plan, "keep-out"), 0, 200)
	if s := statusOf(t, rt, "keep"); s.Processed != 200 || !s.Since.Equal(before.Since) {
		t.Errorf("keep after more records: %+v, want 200 processed, running since %v", s, before.Since)
	}

	// change's new records go through the new map; its old ones are not
	// processed again (the group's committed offsets carry over).
	kafkatest.Produce(t, brokers, numbered("change-in", 100, 100)...)
	outs := readAfterCommit(t, brokers, change2.Plan, "change-out")
	if len(outs) != 200 {
		t.Fatalf("change-out has %d records, want 200", len(outs))
	}
	for _, r := range outs {
		var v struct{ N, Twice int }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		if want := v.N * 2; v.N >= 100 {
			want = v.N * 3
			if v.Twice != want {
				t.Fatalf("change output %s after the new revision, want twice=%d", r.Value, want)
			}
		} else if v.Twice != want {
			t.Fatalf("change output %s from the old revision, want twice=%d", r.Value, want)
		}
	}
	if s := statusOf(t, rt, "change"); s.State != runtime.Running || s.Processed != 100 {
		t.Errorf("change: %+v, want running with the 100 new records processed", s)
	}

	// new runs.
	kafkatest.Produce(t, brokers, numbered("new-in", 0, 50)...)
	checkDoubled(t, readAfterCommit(t, brokers, added.Plan, "new-out"), 0, 50)

	// gone left its group and processes nothing more.
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	groups, err := adm.DescribeGroups(ctx, "sluice-gone")
	if err != nil {
		t.Fatal(err)
	}
	if g := groups["sluice-gone"]; len(g.Members) != 0 {
		t.Errorf("gone's group still has members: %+v", g)
	}
	// That it processes nothing takes a wait to show: half a second, then
	// gone-out is read to its end.
	kafkatest.Produce(t, brokers, numbered("gone-in", 100, 10)...)
	time.Sleep(500 * time.Millisecond)
	outs = nil
	readToEnd(t, brokers, "gone-out", func(r *kgo.Record) { outs = append(outs, r) })
	if len(outs) != 100 {
		t.Errorf("gone-out has %d records, want the 100 from before it was removed", len(outs))
	}
}

// Under at-least-once, the offsets of the last records before the input
// goes quiet are committed too, within about a commit interval, so that
// lag reaches zero and a restart does not repeat them.
func TestAtLeastOnceCommitsWhenIdle(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "in", 2)
	rt := newRuntime(t, brokers)
	p := plan(t, "idle", `  source: {topic: in}
  steps:
    - map: {n: n, twice: n * 2}
  sink: {topic: out}
  delivery: at-least-once
`)
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, rt, "idle", 2, 30*time.Second)
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	for round := range 3 {
		kafkatest.Produce(t, brokers, numbered("in", round*10, 10)...)
		want := int64((round + 1) * 10)
		var got int64
		kafkatest.Eventually(t, 5*time.Second, fmt.Sprintf("%d offsets committed", want), func() bool {
			offs, err := adm.FetchOffsets(context.Background(), "sluice-idle")
			if err != nil {
				return false
			}
			got = 0
			offs.Each(func(o kadm.OffsetResponse) { got += max(o.At, 0) })
			return got == want
		})
		// With everything committed, each output is there once.
		var outs []*kgo.Record
		readToEnd(t, brokers, "out", func(r *kgo.Record) { outs = append(outs, r) })
		checkDoubled(t, outs, 0, (round+1)*10)
	}
}

// A runner that restarts with the same instance ID fences its previous
// incarnation at once: a transaction the dead process left open with a
// pending offset commit is aborted when the pipeline starts, instead of
// blocking the group's offsets (and so the pipeline) until the dead
// transaction times out.
func TestRestartFencesZombieTransaction(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "in", 1)
	kafkatest.CreateTopic(t, brokers, "zombie-out", 1)
	kafkatest.Produce(t, brokers, numbered("in", 0, 10)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The zombie: what a runner killed between committing offsets in its
	// transaction and ending it leaves behind.
	const group, instance = "sluice-fence", "runner-1"
	zombie := kafkatest.Client(t, brokers, kgo.TransactionalID(group+"/"+instance), kgo.TransactionTimeout(time.Minute))
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Topic: "zombie-out", Value: []byte("uncommitted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := zombie.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = group+"/"+instance, pid, epoch, group
	if resp, err := add.RequestWith(ctx, zombie); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %v", err, kerr.ErrorForCode(resp.ErrorCode))
	}
	topics, err := kadm.NewClient(zombie).ListTopics(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	oc := kmsg.NewPtrTxnOffsetCommitRequest()
	oc.TransactionalID, oc.Group, oc.ProducerID, oc.ProducerEpoch, oc.Generation = group+"/"+instance, group, pid, epoch, -1
	ot := kmsg.NewTxnOffsetCommitRequestTopic()
	ot.Topic, ot.TopicID = "in", topics["in"].ID
	op := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	op.Partition, op.Offset, op.LeaderEpoch = 0, 5, -1
	ot.Partitions = append(ot.Partitions, op)
	oc.Topics = append(oc.Topics, ot)
	if resp, err := oc.RequestWith(ctx, zombie); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("TxnOffsetCommit: %v %+v", err, resp)
	}

	// The restarted runner.
	rt := newRuntime(t, brokers, runtime.InstanceID(instance))
	p := plan(t, "fence", `  source: {topic: in}
  steps:
    - map: {n: n, twice: n * 2}
  sink: {topic: out}
`)
	start := time.Now()
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
		t.Fatal(err)
	}
	// The zombie's offset commit (5) was aborted: all 10 records are
	// processed, each once.
	// The group commits all 10 within readAfterCommit's 30s only if the
	// zombie transaction does not block it; then a duplicate would be in
	// out too.
	outs := readAfterCommit(t, brokers, p, "out")
	t.Logf("%d outputs %v after the restart", len(outs), time.Since(start))
	checkDoubled(t, outs, 0, 10)
	// Read to its end, zombie-out shows the zombie's transaction decided
	// (an open one would make the read fail) and aborted.
	var got []*kgo.Record
	readToEnd(t, brokers, "zombie-out", func(r *kgo.Record) { got = append(got, r) })
	if len(got) != 0 {
		t.Errorf("the zombie's record is visible to read_committed: %v", values(got))
	}
}

// A record whose operator panics fails its pipeline, which retries it: the
// failure never commits past the record, so neither it nor the records
// polled after it are lost, under either delivery.
func TestPanicLosesNothing(t *testing.T) {
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		t.Run(delivery, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			kafkatest.CreateTopic(t, brokers, "in", 1)
			rt := newRuntime(t, brokers, runtime.RetryBackoff(100*time.Millisecond, 100*time.Millisecond))
			p := planWith(t, panicAtRegistry(t), "panicky", `  source: {topic: in}
  steps:
    - panic_at: "5"
    - map: {n: n, twice: n * 2}
  sink: {topic: out}
  delivery: `+delivery+"\n")
			if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			waitAssigned(t, rt, "panicky", 1, 30*time.Second)
			kafkatest.Produce(t, brokers, numbered("in", 0, 10)...)
			kafkatest.Eventually(t, 30*time.Second, "a failure on the panicking record", func() bool {
				return statusOf(t, rt, "panicky").Restarts >= 1
			})
			time.Sleep(time.Second) // ten retries' worth
			if s := statusOf(t, rt, "panicky"); s.Restarts < 3 {
				t.Errorf("status %+v: the record that panics stopped failing; was it skipped?", s)
			}
			adm := kadm.NewClient(kafkatest.Client(t, brokers))
			offs, err := adm.FetchOffsets(context.Background(), "sluice-panicky")
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := offs.Lookup("in", 0); ok && o.At > 5 {
				t.Errorf("committed offset %d: past the record that panics (offset 5), so records were skipped", o.At)
			}
			for _, r := range kafkatest.ReadCommitted(t, brokers, "out", 10, time.Second) {
				var v struct{ N int }
				if err := json.Unmarshal(r.Value, &v); err != nil || v.N >= 5 {
					t.Errorf("output %s: the pipeline went past the record that panics", r.Value)
				}
			}
			kafkatest.Eventually(t, 10*time.Second, "the panic in the status", func() bool {
				s := statusOf(t, rt, "panicky")
				return s.State == runtime.Failed && strings.Contains(s.Error, "n=5")
			})
		})
	}
}
