package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// The stateful acceptance tests run a pipeline that dedupes by id (the input
// holds deliberate redeliveries) and counts per key in tumbling windows of
// event time, emitting each window once, when it closes. An oracle computes
// every window's count from the input; the read_committed output must hold
// each window exactly once with exactly that count, however the runners
// were killed, restarted or joined.

// countIn describes the input: unique ids [0, ids), each followed, when
// id%10 == 9, by a redelivery of id-3. Id u has key k(u%13) and event time
// base + u ms.
//
// With a table, the pipeline also joins each record with its key's row in
// the table (k<i> has weight i+1) and sums the weights per window, so a
// window's sum must be its count times its key's weight.
type countIn struct {
	topic string
	ids   int
	table string // the join's table topic; none when empty
}

// countKeys are the keys k0..k12 of the input.
const countKeys = 13

// tableRows are the rows of the join's table, one per key.
func (c countIn) tableRows() []*kgo.Record {
	var out []*kgo.Record
	for i := range countKeys {
		out = append(out, &kgo.Record{Topic: c.table, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"weight":%d}`, i+1)})
	}
	return out
}

// lastStage is the input topic of the stage that computes the windows.
func (c countIn) lastStage(name string) string {
	if c.table != "" {
		return name + "-join-repartition"
	}
	return name + "-window-repartition"
}

var countBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	countWindow = 5 * time.Second
	// countGrace is longer than the input's event time (182,000 ids are
	// about 3 minutes), so that no record is ever late and the results
	// do not depend on how the partitions interleave on their way through
	// the stages: a stage's task that catches up on a backlog can run
	// far ahead of another in event time (a grace of 90s was seen to be
	// too short, with records of one partition 90,000 ids behind another
	// after a restart). Windows therefore close when the flush records
	// come, which the crash test kills a runner in the middle of.
	countGrace = 10 * time.Minute
)

// records returns the input records of ids [from, to) with their redeliveries.
func (c countIn) records(from, to int) []*kgo.Record {
	rec := func(u int) *kgo.Record {
		id := fmt.Sprint(u)
		ts := countBase.Add(time.Duration(u) * time.Millisecond).Format(time.RFC3339Nano)
		return &kgo.Record{Topic: c.topic, Key: []byte(id), Value: []byte(`{"id":"` + id + `","k":"k` + fmt.Sprint(u%countKeys) + `","ts":"` + ts + `"}`)}
	}
	var out []*kgo.Record
	for u := from; u < to; u++ {
		out = append(out, rec(u))
		if u%10 == 9 {
			out = append(out, rec(u-3))
		}
	}
	return out
}

// total is the number of input records, redeliveries included.
func (c countIn) total() int { return c.ids + c.ids/10 }

// flush returns records far in the future, with ids and keys enough to
// reach every partition of every stage: they close every window of the
// input. Their own windows stay open. With a table, they have the input's
// keys, which the (inner) join lets through and which reach every
// partition of the window stage that holds any window.
func (c countIn) flush() []*kgo.Record {
	ts := countBase.Add(24 * time.Hour).Format(time.RFC3339Nano)
	var out []*kgo.Record
	for i := range 64 {
		id := fmt.Sprintf("flush-%d", i)
		k := id
		if c.table != "" {
			k = fmt.Sprintf("k%d", i%countKeys)
		}
		out = append(out, &kgo.Record{Topic: c.topic, Key: []byte(id), Value: []byte(`{"id":"` + id + `","k":"` + k + `","ts":"` + ts + `"}`)})
	}
	return out
}

// oracle is every window's expected count, by "key@start".
func (c countIn) oracle() map[string]int {
	want := map[string]int{}
	for u := range c.ids {
		start := countBase.Add(time.Duration(u) * time.Millisecond).Truncate(countWindow)
		want[fmt.Sprintf("k%d@%s", u%countKeys, start.Format(time.RFC3339Nano))]++
	}
	return want
}

// produceRecords writes records, asynchronously batched, and returns the
// first error.
func produceRecords(brokers []string, rs []*kgo.Record) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100000))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, r := range rs {
		wg.Add(1)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return firstErr
}

func writeCountsPipeline(t *testing.T, name string, c countIn, out, store string) string {
	t.Helper()
	dir := t.TempDir()
	join, aggs := "", "{n: count}"
	if c.table != "" {
		join = fmt.Sprintf("\n    - join: {table: %s, on: k, as: kind}", c.table)
		aggs = "{n: count, w: {sum: kind.weight}}"
	}
	src := fmt.Sprintf(`apiVersion: sluice/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {topic: %s, format: json, key: id, timestamp: ts}
  steps:
    - dedupe: {by: id, within: 1h}%s
    - window: {by: k, tumbling: %s, grace: %s, aggregates: %s}
  sink: {topic: %s}
  state: {store: %s}
`, name, c.topic, join, countWindow, countGrace, aggs, out, store)
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitStageConsumed reads topic read_committed until it holds n records
// and waits until the group has committed offsets past all of them.
func waitStageConsumed(t *testing.T, brokers []string, adm *kadm.Client, group, topic string, n int, timeout time.Duration, logs func() string) {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	next := map[int32]int64{}
	seen := 0
	deadline := time.Now().Add(timeout)
	for seen < n {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		f := cl.PollFetches(ctx)
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d of %d records after %v\n%s", topic, seen, n, timeout, logs())
		}
		f.EachRecord(func(r *kgo.Record) {
			seen++
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		})
	}
	for {
		offs, err := adm.FetchOffsetsForTopics(context.Background(), group, topic)
		done := err == nil && offs.Error() == nil
		for p, o := range next {
			if c, ok := offs.Lookup(topic, p); !done || !ok || c.At < o {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s has not consumed %s after %v\n%s%s", group, topic, timeout, groupReport(adm, group, topic), logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAllCommitted waits until group has committed offsets past the last
// record of each topic, in the order given: a pipeline's input and then
// its repartition topics in stage order, so that each is read once the
// stage writing it has committed its whole input and will write no more.
// The last record is found by reading the topic up to its end offsets: a
// transactional topic's end offset is one past its last commit marker,
// which no consumer commits past.
func waitAllCommitted(t *testing.T, brokers []string, adm *kadm.Client, group string, timeout time.Duration, logs func() string, topics ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, topic := range topics {
		next := map[int32]int64{}
		readCommitted(t, brokers, topic, func(r *kgo.Record) error {
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
			return nil
		})
		for {
			offs, err := adm.FetchOffsetsForTopics(context.Background(), group, topic)
			done := err == nil && offs.Error() == nil
			for p, o := range next {
				if c, ok := offs.Lookup(topic, p); !done || !ok || c.At < o {
					done = false
				}
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("group %s has not committed all of %s after %v\n%s%s", group, topic, timeout, groupReport(adm, group, topic), logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// flushAndCheck waits until every input record is through the dedupe
// stage, so that the flush records come after all of them everywhere,
// produces the flush, and checks the windows against the oracle.
// afterFlush, when not nil, runs once the flush is produced.
func flushAndCheck(t *testing.T, brokers []string, adm *kadm.Client, name string, c countIn, out string, logs func() string, afterFlush func()) {
	t.Helper()
	group := "sluice-" + name
	waitConsumed(t, adm, group, c.topic, c.total(), 3*time.Minute, logs)
	waitStageConsumed(t, brokers, adm, group, name+"-dedupe-repartition", c.total(), 2*time.Minute, logs)
	// And through the window stage: then the flush's windows close in a
	// runner that is up to date, not in one still catching up.
	waitStageConsumed(t, brokers, adm, group, c.lastStage(name), c.ids, 2*time.Minute, logs)
	if err := produceRecords(brokers, c.flush()); err != nil {
		t.Fatal(err)
	}
	if afterFlush != nil {
		afterFlush()
	}
	// Every stage has committed the flush: the output holds every window
	// result it will hold, so a duplicate shows when it is read.
	waitAllCommitted(t, brokers, adm, group, 3*time.Minute, logs, c.topic, name+"-dedupe-repartition", c.lastStage(name))
	want := c.oracle()
	got := readWindows(t, brokers, out)
	bad := 0
	for k, n := range want {
		if g, ok := got[k]; !ok || len(g) != 1 || g[0] != n {
			if bad++; bad <= 10 {
				t.Errorf("window %s: emitted counts %v, want [%d]", k, g, n)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			if bad++; bad <= 10 {
				t.Errorf("window %s: emitted %v, not in the input", k, g)
			}
		}
	}
	if late := readAll(t, brokers, name+".dlq"); len(late) > 0 {
		t.Errorf("%d records in the DLQ (late ones would mean the grace is too short for the test), first %s", len(late), late[0].Value)
	}
	if bad > 0 {
		t.Fatalf("%d windows wrong of %d\n%s", bad, len(want), logs())
	}
	t.Logf("all %d windows emitted exactly once with the oracle's counts", len(want))
}

// readWindows reads the window results read_committed up to the end
// offsets (so duplicates show), by "key@start"; flush windows are skipped.
func readWindows(t *testing.T, brokers []string, topic string) map[string][]int {
	t.Helper()
	got := map[string][]int{}
	readCommitted(t, brokers, topic, func(r *kgo.Record) error {
		if strings.HasPrefix(string(r.Key), "flush") {
			return nil
		}
		var v struct {
			Window struct{ Start string } `json:"window"`
			N      *int                   `json:"n"`
			W      *int                   `json:"w"` // with the join
		}
		if json.Unmarshal(r.Value, &v) != nil || v.N == nil || v.Window.Start == "" {
			return fmt.Errorf("output %q is not a window result", r.Value)
		}
		var key int
		if v.W != nil && (!scanKey(string(r.Key), &key) || *v.W != *v.N*(key+1)) {
			return fmt.Errorf("window result %s %q: the sum of the joined weights is not count × the key's weight", r.Key, r.Value)
		}
		k := string(r.Key) + "@" + v.Window.Start
		got[k] = append(got[k], *v.N)
		return nil
	})
	return got
}

// scanKey parses key k<i>.
func scanKey(k string, i *int) bool {
	_, err := fmt.Sscanf(k, "k%d", i)
	return err == nil
}

// readAll reads what topic holds, read_committed, up to its end offsets;
// nothing if it does not exist.
func readAll(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	readCommitted(t, brokers, topic, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	})
	return out
}

// The stateful crash test: 200,000 input records (182,000 ids and their
// redeliveries) streamed over about fifteen seconds through a runner with
// on-disk state (dedupe, a stream-table join and a windowed count and sum)
// that is killed with SIGKILL at 5 random moments and restarted on the
// same state directory. Pebble runs without a WAL, so a kill loses its
// memtable and the store restarts behind the changelog, from the
// checkpoint it has on disk. Every window must come out exactly once with
// the oracle's count, and the sum of the joined rows' weights.
func TestStatefulCrash(t *testing.T) {
	ids, kills := 182000, 5
	brokers := kafkatest.Brokers(t)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e9)
	name := "stcrash-" + suffix
	in, out := "stcrash-in-"+suffix, "stcrash-out-"+suffix
	group := "sluice-" + name
	kafkatest.CreateTopic(t, brokers, in, 4)
	c := countIn{topic: in, ids: ids, table: "stcrash-kinds-" + suffix}
	kafkatest.CreateTopic(t, brokers, c.table, 4)
	if err := produceRecords(brokers, c.tableRows()); err != nil {
		t.Fatal(err)
	}

	// As in TestCrash, a fifth of the input is there at the start and the
	// rest arrives in steps over about fifteen seconds.
	start := time.Now()
	upfront := ids / 5
	if err := produceRecords(brokers, c.records(0, upfront)); err != nil {
		t.Fatal(err)
	}
	produced := make(chan error, 1)
	go func() {
		const steps = 60
		for i := range steps {
			time.Sleep(250 * time.Millisecond)
			from, to := upfront+(ids-upfront)*i/steps, upfront+(ids-upfront)*(i+1)/steps
			if err := produceRecords(brokers, c.records(from, to)); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()

	dir := writeCountsPipeline(t, name, c, out, "disk")
	stateDir := t.TempDir()
	args := []string{"--brokers", strings.Join(brokers, ","), "--instance-id", "stcrash", "--commit-interval", "100ms",
		"--session-timeout", "2s", "--shutdown-timeout", "20s", "--state-dir", stateDir}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	var all []*runner
	logs := func() string {
		if len(all) == 0 {
			return ""
		}
		return "last runner's output:\n" + tail(all[len(all)-1].out.String(), 4096)
	}

	// Kill points are progress of the last stage, the window's: the
	// first stage only repartitions and runs far ahead. Its input holds
	// one record per id (and a transaction marker per transaction, which
	// committed offsets count too).
	windowIn := c.lastStage(name)
	total := int64(ids)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	prev := int64(0)
	for k := 1; k <= kills; k++ {
		r := startRunner(t, fmt.Sprintf("runner #%d", k), dir, args...)
		all = append(all, r)
		at := prev + 1 + rng.Int64N(max(1, (total*6/10-prev)/int64(kills-k+1)))
		deadline := time.Now().Add(60 * time.Second)
		for {
			cm := committed(adm, group, windowIn)
			if cm >= at {
				break
			}
			if !r.running() {
				t.Fatalf("runner #%d exited (%v)\n%s", k, r.err, logs())
			}
			if time.Now().After(deadline) {
				t.Fatalf("runner #%d made no progress in 60s (committed %d of %d)\n%s", k, cm, total, logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(100 * time.Millisecond))))
		r.kill()
		cm := committed(adm, group, windowIn)
		if cm < 0 {
			cm = prev
		}
		t.Logf("kill -9 #%d at %v (kill point %d): window stage committed offsets %d (of about %d), input %d of %d", k, time.Since(start).Round(time.Millisecond), at, cm, total, committed(adm, group, in), c.total())
		if cm >= total {
			t.Fatalf("runner #%d finished all records before it was killed: make the test bigger", k)
		}
		prev = max(prev, cm)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	t.Logf("produced %d records to %s (4 partitions) in %v", c.total(), in, time.Since(start).Round(time.Millisecond))

	last := startRunner(t, "runner #6", dir, args...)
	all = append(all, last)
	// The flush closes every window at once; runner #6 is killed while it
	// emits them and deletes their state, and runner #7 finishes.
	flushAndCheck(t, brokers, adm, name, c, out, logs, func() {
		time.Sleep(time.Duration(rng.Int64N(int64(600 * time.Millisecond))))
		last.kill()
		// The killed runner's transaction stays open until the next one
		// fences it, so this counts what a second's read finds.
		t.Logf("kill -9 #6 at %v, after the flush: %d window results committed", time.Since(start).Round(time.Millisecond),
			len(kafkatest.ReadCommitted(t, brokers, out, math.MaxInt, time.Second)))
		last = startRunner(t, "runner #7", dir, args...)
		all = append(all, last)
	})
	t.Logf("done in %v with %d kills", time.Since(start).Round(time.Millisecond), kills+1)
	last.stop(30 * time.Second)
}

// The restore test: a runner with on-disk state processes half the input
// and stops; its state directory is deleted; the next runner restores
// every store from the changelogs, showing the progress in /status and in
// the sluice_state_restore_* metrics while it does, and the results stay
// exact.
func TestStateRestore(t *testing.T) {
	ids := 150000
	brokers := kafkatest.Brokers(t)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e9)
	name := "strestore-" + suffix
	in, out := "strestore-in-"+suffix, "strestore-out-"+suffix
	group := "sluice-" + name
	kafkatest.CreateTopic(t, brokers, in, 4)
	c := countIn{topic: in, ids: ids}
	dir := writeCountsPipeline(t, name, c, out, "disk")
	stateDir := t.TempDir()
	args := []string{"--brokers", strings.Join(brokers, ","), "--instance-id", "strestore", "--commit-interval", "100ms",
		"--session-timeout", "2s", "--shutdown-timeout", "20s", "--state-dir", stateDir}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))

	half := c.records(0, ids/2)
	if err := produceRecords(brokers, half); err != nil {
		t.Fatal(err)
	}
	first := startRunner(t, "runner #1", dir, args...)
	logs := func() string { return "runner #1's output:\n" + tail(first.out.String(), 4096) }
	waitConsumed(t, adm, group, in, len(half), 2*time.Minute, logs)
	waitStageConsumed(t, brokers, adm, group, name+"-dedupe-repartition", len(half), time.Minute, logs)
	first.stop(30 * time.Second)
	if _, err := os.Stat(filepath.Join(stateDir, name, "dedupe")); err != nil {
		t.Fatalf("runner #1 kept no state on disk: %v", err)
	}
	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}

	// The rest of the input is there before the second runner starts, so
	// it has records for every partition at once and restores them all.
	if err := produceRecords(brokers, c.records(ids/2, ids)); err != nil {
		t.Fatal(err)
	}
	second := startRunner(t, "runner #2", dir, args...)
	logs = func() string { return "runner #2's output:\n" + tail(second.out.String(), 4096) }
	addr := second.opsAddr()
	var during runtime.RestoreStatus
	seen := false
	deadline := time.Now().Add(60 * time.Second)
	for !seen && time.Now().Before(deadline) {
		for _, s := range second.status(addr) {
			for _, r := range s.Restores {
				if s.Name == name && r.Restoring && r.Total > 0 {
					during, seen = r, true
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !seen {
		t.Fatalf("/status never showed a restore in progress\n%s", logs())
	}
	t.Logf("/status during the restore: %+v", during)

	flushAndCheck(t, brokers, adm, name, c, out, logs, nil)

	// Every store was restored to the end of its changelog.
	var st runtime.Status
	for _, s := range second.status(addr) {
		if s.Name == name {
			st = s
		}
	}
	restored := 0
	for _, r := range st.Restores {
		if r.Restoring || r.Done != r.Total {
			t.Errorf("restore %+v not finished", r)
		}
		if r.Step == "dedupe" && r.Total > 0 {
			restored++
		}
	}
	if restored != 4 {
		t.Errorf("%d dedupe stores restored from a changelog, want 4: %+v", restored, st.Restores)
	}
	metrics := scrape(t, addr)
	for _, want := range []string{
		`sluice_state_restore_records_total{partition="0",pipeline="` + name + `",step="dedupe"}`,
		`sluice_state_restore_records_done{partition="0",pipeline="` + name + `",step="dedupe"}`,
		`sluice_state_restoring{partition="0",pipeline="` + name + `",step="dedupe"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	second.stop(30 * time.Second)
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The rebalance test: a runner works through a streamed input, a second
// runner joins midway (taking partitions and restoring their state from
// the changelogs the first one wrote) and later leaves with SIGTERM (the
// first takes them back and catches its stores up from where it left
// them). The pipeline joins a table too, whose partitions must move with
// the stream's. Every window must still come out exactly once, exactly
// counted.
func TestStatefulRebalance(t *testing.T) {
	ids := 120000
	brokers := kafkatest.Brokers(t)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e9)
	name := "streb-" + suffix
	in, out := "streb-in-"+suffix, "streb-out-"+suffix
	group := "sluice-" + name
	kafkatest.CreateTopic(t, brokers, in, 4)
	// With the join: the runners' groups must keep the table's partitions
	// with the stream's as they move.
	c := countIn{topic: in, ids: ids, table: "streb-kinds-" + suffix}
	kafkatest.CreateTopic(t, brokers, c.table, 4)
	if err := produceRecords(brokers, c.tableRows()); err != nil {
		t.Fatal(err)
	}
	dir := writeCountsPipeline(t, name, c, out, "memory")
	args := func(id string) []string {
		return []string{"--brokers", strings.Join(brokers, ","), "--instance-id", id, "--commit-interval", "100ms",
			"--session-timeout", "2s", "--shutdown-timeout", "20s", "--state-dir", t.TempDir()}
	}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	a := startRunner(t, "runner a", dir, args("streb-a")...)
	var b *runner
	logs := func() string {
		s := "runner a's output:\n" + tail(a.out.String(), 2048)
		if b != nil {
			s += "\nrunner b's output:\n" + tail(b.out.String(), 2048)
		}
		return s
	}
	partitions := func(r *runner, addr string) []int32 {
		for _, s := range r.status(addr) {
			if s.Name == name && s.State == runtime.Running {
				return s.Partitions
			}
		}
		return nil
	}
	aAddr := a.opsAddr()

	// The input streams in over about ten seconds.
	start := time.Now()
	produced := make(chan error, 1)
	go func() {
		const steps = 40
		for i := range steps {
			from, to := ids*i/steps, ids*(i+1)/steps
			if err := produceRecords(brokers, c.records(from, to)); err != nil {
				produced <- err
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		produced <- nil
	}()
	windowIn := c.lastStage(name)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 60s\n%s%s", what, groupReport(adm, group, in), logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// b joins once a quarter of the ids are through the window stage.
	waitFor("a quarter done", func() bool { return committed(adm, group, windowIn) >= int64(ids/4) })
	b = startRunner(t, "runner b", dir, args("streb-b")...)
	bAddr := b.opsAddr()
	waitFor("b holding partitions", func() bool { return len(partitions(b, bAddr)) > 0 })
	pa, pb := partitions(a, aAddr), partitions(b, bAddr)
	t.Logf("runner b joined at %v: a holds %v, b %v; window stage at %d", time.Since(start).Round(time.Millisecond), pa, pb, committed(adm, group, windowIn))

	// b leaves once it has done some of its own work.
	from := committed(adm, group, windowIn)
	statusOf := func(r *runner, addr string) runtime.Status {
		for _, s := range r.status(addr) {
			if s.Name == name {
				return s
			}
		}
		return runtime.Status{}
	}
	// b must have done stateful work of its own: held stores (restored
	// from the changelogs a wrote) and processed records.
	waitFor("progress with b", func() bool {
		st := statusOf(b, bAddr)
		return committed(adm, group, windowIn) >= from+int64(ids/5) && st.Processed > uint64(ids/10) && len(st.Restores) > 0
	})
	st := statusOf(b, bAddr)
	t.Logf("runner b processed %d records with stores %+v", st.Processed, st.Restores)
	b.stop(30 * time.Second)
	left := committed(adm, group, windowIn)
	t.Logf("runner b left at %v; window stage at %d", time.Since(start).Round(time.Millisecond), left)
	if left >= int64(ids) {
		t.Fatalf("the window stage was done (%d) before b left: make the test bigger", left)
	}
	waitFor("a holding every partition again", func() bool { return len(partitions(a, aAddr)) == 4 })
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	flushAndCheck(t, brokers, adm, name, c, out, logs, nil)
	a.stop(30 * time.Second)
}
