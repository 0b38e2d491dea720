package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

// countsPipeline dedupes by id and counts records per key k in tumbling
// 10-second windows of the event time ts, emitting each window once when
// it closes. The grace is long enough that no record of the test's input
// is ever late, however the partitions interleave.
func countsPipeline(name, in, out, store, delivery string) string {
	return fmt.Sprintf(`  source: {topic: %s, format: json, key: id, timestamp: ts}
  steps:
    - dedupe: {by: id, within: 1h}
    - window: {by: k, tumbling: 10s, grace: 2m, aggregates: {n: count}}
  sink: {topic: %s}
  state: {store: %s}
  delivery: %s
`, in, out, store, delivery)
}

var stateBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// countsInput is records [from, to) of the input: record i has id i, key
// k(i mod 7), event time base + 10ms*i, and every tenth record is followed
// by a copy of record i-3 (a redelivery, which dedupe must drop).
func countsInput(topic string, from, to int) []*kgo.Record {
	var out []*kgo.Record
	rec := func(i int) *kgo.Record {
		id := fmt.Sprint(i)
		ts := stateBase.Add(time.Duration(i) * 10 * time.Millisecond).Format(time.RFC3339Nano)
		return &kgo.Record{Topic: topic, Key: []byte(id), Value: []byte(fmt.Sprintf(`{"id":%q,"k":"k%d","ts":%q}`, id, i%7, ts))}
	}
	for i := from; i < to; i++ {
		out = append(out, rec(i))
		if i%10 == 9 {
			out = append(out, rec(i-3))
		}
	}
	return out
}

// flushRecords are far in the future, with keys enough to reach every
// partition of every stage, so that every window of the input closes.
func flushRecords(topic string) []*kgo.Record {
	var out []*kgo.Record
	ts := stateBase.Add(24 * time.Hour).Format(time.RFC3339Nano)
	for i := range 64 {
		id := fmt.Sprintf("flush-%d", i)
		out = append(out, &kgo.Record{Topic: topic, Key: []byte(id), Value: []byte(fmt.Sprintf(`{"id":%q,"k":"flush-%d","ts":%q}`, id, i, ts))})
	}
	return out
}

// countsOracle is every (key, window start) -> count of the first n ids.
func countsOracle(n int) map[string]int {
	want := map[string]int{}
	for i := range n {
		start := stateBase.Add(time.Duration(i) * 10 * time.Millisecond).Truncate(10 * time.Second)
		want[fmt.Sprintf("k%d@%s", i%7, start.Format(time.RFC3339Nano))]++
	}
	return want
}

// windowResults decodes window outputs to (key, window start) -> count,
// failing on a window seen twice; flush windows are skipped.
func windowResults(t testing.TB, rs []*kgo.Record) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range rs {
		if strings.HasPrefix(string(r.Key), "flush") {
			continue
		}
		var v struct {
			Window struct{ Start string } `json:"window"`
			N      int                    `json:"n"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("output %s: %v", r.Value, err)
		}
		k := string(r.Key) + "@" + v.Window.Start
		if _, dup := got[k]; dup {
			t.Errorf("window %s emitted twice", k)
		}
		got[k] = v.N
	}
	return got
}

func compareCounts(t testing.TB, got, want map[string]int) {
	t.Helper()
	bad := 0
	for k, n := range want {
		if got[k] != n {
			if bad++; bad <= 10 {
				t.Errorf("window %s: count %d, want %d", k, got[k], n)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			if bad++; bad <= 10 {
				t.Errorf("unexpected window %s", k)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d windows wrong", bad, len(want))
	}
}

// TestStatefulRestarts runs a dedupe + window pipeline in a runtime that
// is closed half-way and replaced by a new one (a new process: memory
// stores start empty, disk stores find their checkpoint, or, with the
// directory deleted, nothing), and requires every window's count to be
// exact and emitted once: the state the second runtime restores from the
// changelog must equal what the first committed.
func TestStatefulRestarts(t *testing.T) {
	for _, tc := range []struct {
		name, store, delivery string
		wipe                  bool
	}{
		{"memory", "memory", "exactly-once", false},
		{"disk", "disk", "exactly-once", false},
		{"disk-wiped", "disk", "exactly-once", true},
		// At least once, a clean stop commits everything, so the
		// results are exact too.
		{"memory-alo", "memory", "at-least-once", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			in, out := "st-in-"+tc.name, "st-out-"+tc.name
			kafkatest.CreateTopic(t, brokers, in, 4)
			name := "counts-" + tc.name
			p := plan(t, name, countsPipeline(name, in, out, tc.store, tc.delivery))
			dir := t.TempDir()
			const n = 3000

			rt1 := newRuntime(t, brokers, runtime.StateDir(dir), runtime.InstanceID("a"))
			if err := rt1.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			kafkatest.Produce(t, brokers, countsInput(in, 0, n/2)...)
			waitConsumedAll(t, brokers, "sluice-"+name, in, n/2+n/20)
			waitConsumedAll(t, brokers, "sluice-"+name, name+"-dedupe-repartition", n/2+n/20)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := rt1.Close(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			if tc.store == "disk" {
				if _, err := os.Stat(filepath.Join(dir, name, "dedupe")); err != nil {
					t.Fatalf("no disk state: %v", err)
				}
			}
			if tc.wipe {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
			}

			rt2 := newRuntime(t, brokers, runtime.StateDir(dir), runtime.InstanceID("b"))
			if err := rt2.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			kafkatest.Produce(t, brokers, countsInput(in, n/2, n)...)
			// The flush must come after every record in every stage, or
			// it would close windows that records still on their way
			// belong to: wait until the input and the dedupe stage's
			// input are consumed.
			group := "sluice-" + name
			waitConsumedAll(t, brokers, group, in, n+n/10)
			waitConsumedAll(t, brokers, group, name+"-dedupe-repartition", n+n/10)
			kafkatest.Produce(t, brokers, flushRecords(in)...)
			want := countsOracle(n)
			// Every output once the flush is committed: anything after the
			// expected windows would be a duplicate.
			outs := readAfterCommit(t, brokers, p, out)
			compareCounts(t, windowResults(t, outs), want)
			st := statusOf(t, rt2, name)
			if len(st.Restores) == 0 {
				t.Errorf("status shows no restores: %+v", st)
			}
		})
	}
}

// waitConsumedAll reads topic read_committed until it has n records, then
// waits until group has committed offsets past every one of them.
func waitConsumedAll(t testing.TB, brokers []string, group, topic string, n int) {
	t.Helper()
	rs := kafkatest.ReadCommitted(t, brokers, topic, n, 30*time.Second)
	if len(rs) < n {
		t.Fatalf("%s has %d records, want %d", topic, len(rs), n)
	}
	next := map[int32]int64{}
	for _, r := range rs {
		next[r.Partition] = max(next[r.Partition], r.Offset+1)
	}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	kafkatest.Eventually(t, 30*time.Second, group+" consuming "+topic, func() bool {
		offs, err := adm.FetchOffsets(context.Background(), group)
		if err != nil {
			return false
		}
		for p, o := range next {
			c, ok := offs.Lookup(topic, p)
			if !ok || c.Err != nil || c.At < o {
				return false
			}
		}
		return true
	})
}

// waitCaughtUp waits until group has committed offsets past the last record
// of each topic, in the order given: a pipeline's stages in order, so that
// a repartition topic is read once the stage writing it has committed its
// whole input and will write no more. The last record is found by reading
// each topic to its end offsets: a transactional topic's end offset is one
// past its last commit marker, which no consumer commits past.
func waitCaughtUp(t testing.TB, brokers []string, group string, topics ...string) {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	for _, topic := range topics {
		next := map[int32]int64{} // by partition: the offset after the last record
		readToEnd(t, brokers, topic, func(r *kgo.Record) {
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		})
		kafkatest.Eventually(t, 30*time.Second, group+" committing all of "+topic, func() bool {
			offs, err := adm.FetchOffsets(context.Background(), group)
			if err != nil {
				return false
			}
			for p, o := range next {
				c, ok := offs.Lookup(topic, p)
				if !ok || c.Err != nil || c.At < o {
					return false
				}
			}
			return true
		})
	}
}

// readToEnd reads topic read_committed up to its end offsets, handing each
// record to each, and fails the test if it cannot.
func readToEnd(t testing.TB, brokers []string, topic string, each func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kafkatest.ReadToEnd(ctx, brokers, topic, func(r *kgo.Record) error { each(r); return nil }); err != nil {
		t.Fatal(err)
	}
}

// readAfterCommit waits until p's group has committed everything p reads
// (waitCaughtUp over every stage's input and side inputs) and returns all
// that topic, an output of p, then holds: every output exactly as often
// as it was committed, so a duplicate shows without waiting for more to
// come.
func readAfterCommit(t testing.TB, brokers []string, p *pipeline.Plan, topic string) []*kgo.Record {
	t.Helper()
	var topics []string
	for _, st := range p.Stages {
		topics = append(topics, st.Input)
		topics = append(topics, st.Tables...)
	}
	waitCaughtUp(t, brokers, "sluice-"+p.Name, topics...)
	var out []*kgo.Record
	readToEnd(t, brokers, topic, func(r *kgo.Record) { out = append(out, r) })
	return out
}

// A window on a partition that goes quiet closes once the task has been
// idle for the idle timeout: its stream time then moves on with processing
// time, with no record to carry it.
// openWindow is three records of one 1s window, all on one partition
// (same key), with event time now: no record after them would close the
// window.
func openWindow(topic string) []*kgo.Record {
	now := time.Now().UTC().Truncate(time.Second)
	var recs []*kgo.Record
	for i := range 3 {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("a"), Value: []byte(fmt.Sprintf(`{"i":%d,"ts":%q}`, i, now.Add(time.Duration(i)*100*time.Millisecond).Format(time.RFC3339Nano)))})
	}
	return recs
}

func TestStatefulIdleClosesWindows(t *testing.T) {
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		t.Run(delivery, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			in, out := "idle-in-"+delivery, "idle-out-"+delivery
			kafkatest.CreateTopic(t, brokers, in, 2)
			p := plan(t, "idle-"+delivery, `  source: {topic: `+in+`, format: json, timestamp: ts}
  steps:
    - window: {tumbling: 1s, grace: 0s, aggregates: {n: count}}
  sink: {topic: `+out+`}
  delivery: `+delivery+"\n")
			rt := newRuntime(t, brokers, runtime.IdleTimeout(300*time.Millisecond))
			if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			kafkatest.Produce(t, brokers, openWindow(in)...)
			outs := kafkatest.ReadCommitted(t, brokers, out, 1, 20*time.Second)
			if len(outs) != 1 || !strings.Contains(string(outs[0].Value), `"n":3`) {
				t.Fatalf("outputs %v, want the window of 3", values(outs))
			}
		})
	}
}

// After a restart, a partition that gets no more records still has its
// windows closed by idle time: the new runner restores the partition's
// state when it is assigned, starts its stream time where the window left
// it, and moves it on with processing time.
func TestStatefulIdleAfterRestart(t *testing.T) {
	for _, store := range []string{"memory", "disk"} {
		t.Run(store, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			in, out := "idler-in-"+store, "idler-out-"+store
			kafkatest.CreateTopic(t, brokers, in, 2)
			name := "idler-" + store
			p := plan(t, name, `  source: {topic: `+in+`, format: json, timestamp: ts}
  steps:
    - window: {tumbling: 1s, grace: 0s, aggregates: {n: count}}
  sink: {topic: `+out+`}
  state: {store: `+store+"}\n")
			dir := t.TempDir()
			// The first runner never goes idle: the window stays open.
			rt1 := newRuntime(t, brokers, runtime.StateDir(dir), runtime.IdleTimeout(time.Hour), runtime.InstanceID("a"))
			if err := rt1.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			kafkatest.Produce(t, brokers, openWindow(in)...)
			waitConsumedAll(t, brokers, "sluice-"+name, in, 3)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := rt1.Close(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			if got := kafkatest.ReadCommitted(t, brokers, out, 1, 500*time.Millisecond); len(got) != 0 {
				t.Fatalf("the window closed before the restart: %v", values(got))
			}

			rt2 := newRuntime(t, brokers, runtime.StateDir(dir), runtime.IdleTimeout(300*time.Millisecond), runtime.InstanceID("b"))
			if err := rt2.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			outs := kafkatest.ReadCommitted(t, brokers, out, 1, 20*time.Second)
			if len(outs) != 1 || !strings.Contains(string(outs[0].Value), `"n":3`) {
				t.Fatalf("outputs %v, want the window of 3 closed by idle time after the restart", values(outs))
			}
		})
	}
}

// A new revision whose window changed shape cannot read the state of the
// running one: Apply refuses it unless the step says reset: true, and then
// the step starts from empty state (its changelog is truncated, so nothing
// is restored), instead of counting on from the old windows.
func TestStatefulReset(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "reset-in", 2)
	src := func(size, extra string) *pipeline.Plan {
		return plan(t, "reset", `  source: {topic: reset-in, format: json, timestamp: ts}
  steps:
    - window: {by: k, tumbling: `+size+`, grace: 1m, aggregates: {n: count}}
`+extra+`  sink: {topic: reset-out}
  state: {store: disk}
`)
	}
	rt := newRuntime(t, brokers, runtime.StateDir(t.TempDir()))
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: src("10s", ""), Revision: "r1"}}); err != nil {
		t.Fatal(err)
	}
	records := func(n int, k string, ts time.Time) []*kgo.Record {
		var rs []*kgo.Record
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: "reset-in", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"k":%q,"ts":%q}`, k, ts.Format(time.RFC3339Nano)))})
		}
		return rs
	}
	kafkatest.Produce(t, brokers, records(100, "a", stateBase)...)
	waitConsumedAll(t, brokers, "sluice-reset", "reset-in", 100)
	waitConsumedAll(t, brokers, "sluice-reset", "reset-window-repartition", 100)

	err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: src("20s", ""), Revision: "r2"}})
	if err == nil || !strings.Contains(err.Error(), "reset: true") {
		t.Fatalf("a reshaped window without reset: %v", err)
	}
	if st := statusOf(t, rt, "reset"); st.Revision != "r1" {
		t.Fatalf("revision %s runs, want r1 kept", st.Revision)
	}
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: src("20s", "      reset: true\n"), Revision: "r3"}}); err != nil {
		t.Fatal(err)
	}
	kafkatest.Produce(t, brokers, records(50, "a", stateBase.Add(time.Second))...)
	waitConsumedAll(t, brokers, "sluice-reset", "reset-in", 150)
	waitConsumedAll(t, brokers, "sluice-reset", "reset-window-repartition", 150)
	var flush []*kgo.Record
	for i := range 32 {
		flush = append(flush, records(1, fmt.Sprintf("flush-%d", i), stateBase.Add(24*time.Hour))...)
	}
	kafkatest.Produce(t, brokers, flush...)
	waitCaughtUp(t, brokers, "sluice-reset", "reset-in", "reset-window-repartition")
	var outs []*kgo.Record
	readToEnd(t, brokers, "reset-out", func(r *kgo.Record) { outs = append(outs, r) })
	got := windowResults(t, outs)
	if want := map[string]int{"a@" + stateBase.Format(time.RFC3339Nano): 50}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("windows %v, want %v: only the records since the reset", got, want)
	}
}

// Stateful steps and joins are accepted; an unknown store kind is not.
func TestCheckPlanStateful(t *testing.T) {
	if err := runtime.CheckPlan(plan(t, "counts", countsPipeline("counts", "in", "out", "disk", "exactly-once"))); err != nil {
		t.Fatalf("dedupe + window refused: %v", err)
	}
	join := plan(t, "enrich", `  source: {topic: orders}
  steps:
    - join: {table: customers, on: customer_id, as: customer, type: left}
  sink: {topic: out}
`)
	if err := runtime.CheckPlan(join); err != nil {
		t.Fatalf("join refused: %v", err)
	}
	join.StateStore = "tape"
	if err := runtime.CheckPlan(join); err == nil || !strings.Contains(err.Error(), `unknown state store "tape"`) {
		t.Fatalf("unknown store: %v", err)
	}
}

// With `standbys: 1`, each of two runners keeps a warm copy of the other's
// partition, caught up from the changelog. When one runner leaves, the
// other adopts its copy and restores only the changelog's tail, and the
// counts go on from where they were.
func TestStandbyTakeover(t *testing.T) {
	for _, store := range []string{"memory", "disk"} {
		t.Run(store, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			in, out := "sb-in-"+store, "sb-out-"+store
			kafkatest.CreateTopic(t, brokers, in, 2)
			name := "sb-" + store
			p := plan(t, name, `  source: {topic: `+in+`, format: json, timestamp: ts}
  steps:
    - window: {tumbling: 1h, grace: 1h, emit: update, aggregates: {n: count}}
  sink: {topic: `+out+`}
  state: {store: `+store+", standbys: 1}\n")
			apply := func(rt *runtime.Runtime) {
				if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
					t.Fatal(err)
				}
			}
			a := newRuntime(t, brokers, runtime.StateDir(t.TempDir()), runtime.InstanceID("a"))
			b := newRuntime(t, brokers, runtime.StateDir(t.TempDir()), runtime.InstanceID("b"))
			apply(a)
			apply(b)
			kafkatest.Eventually(t, 20*time.Second, "each runner holding one partition", func() bool {
				return len(statusOf(t, a, name).Partitions) == 1 && len(statusOf(t, b, name).Partitions) == 1
			})
			ts := stateBase.Format(time.RFC3339Nano)
			const n, keys = 4000, 40
			var recs []*kgo.Record
			for i := range n {
				recs = append(recs, &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "k%d", i%keys), Value: fmt.Appendf(nil, `{"i":%d,"ts":%q}`, i, ts)})
			}
			kafkatest.Produce(t, brokers, recs...)
			kafkatest.ReadCommitted(t, brokers, out, n, 30*time.Second)

			// b's copy of a's partition catches up every 2s: after two
			// rounds it holds everything a committed.
			time.Sleep(4500 * time.Millisecond)
			pa := statusOf(t, a, name).Partitions[0]
			kafkatest.Eventually(t, 20*time.Second, "b's standby copy of partition "+fmt.Sprint(pa)+" caught up", func() bool {
				for _, r := range statusOf(t, b, name).Restores {
					if r.Standby && r.Partition == pa && !r.Restoring && r.Done == r.Total {
						return true
					}
				}
				return false
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			kafkatest.Eventually(t, 20*time.Second, "b holding both partitions", func() bool {
				return len(statusOf(t, b, name).Partitions) == 2
			})
			// One more record of every key: each count goes on from n/keys.
			recs = recs[:0]
			for i := range keys {
				recs = append(recs, &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"i":%d,"ts":%q}`, n+i, ts)})
			}
			kafkatest.Produce(t, brokers, recs...)
			// Each key's updates are its counts 1..n/keys+1, each once: the
			// last one came after the takeover and went on from n/keys.
			// (Outputs are read in no order across partitions, so this
			// looks at each key's counts, not at the last outputs read.)
			outs := readAfterCommit(t, brokers, p, out) // a duplicate count would be there too
			counts := map[string][]int{}
			for _, r := range outs {
				var v struct{ N int }
				if err := json.Unmarshal(r.Value, &v); err != nil {
					t.Fatalf("output %s: %v", r.Value, err)
				}
				counts[string(r.Key)] = append(counts[string(r.Key)], v.N)
			}
			for i := range keys {
				k := fmt.Sprintf("k%d", i)
				got := counts[k]
				slices.Sort(got)
				ok := len(got) == n/keys+1
				for j := 0; ok && j < len(got); j++ {
					ok = got[j] == j+1
				}
				if !ok {
					t.Errorf("%s: counts %v, want 1..%d each once", k, got, n/keys+1)
				}
			}
			// The takeover restored only the tail of a's changelog: the
			// copy was caught up before a left.
			took := false
			for _, r := range statusOf(t, b, name).Restores {
				if r.Partition != pa || r.Standby {
					continue
				}
				took = true
				if r.Total > 5 {
					t.Errorf("taking over partition %d restored %d changelog offsets, want only the few since the copy's last catch-up: %+v", pa, r.Total, r)
				}
			}
			if !took {
				t.Errorf("no restore of partition %d after the takeover: %+v", pa, statusOf(t, b, name).Restores)
			}
		})
	}
}
