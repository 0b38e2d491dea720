package runtime_test

// Benchmarks of the runtime's stateful steps (window, dedupe, join), for
// the targets runner-window-vs-f0, runner-window-final-vs-f0,
// runner-dedupe-vs-f0 and runner-join-vs-f0 in bench/targets.json (their
// F0s are in floor_bench_test.go). They share the stateless benchmarks'
// setup (bench_test.go): the same 200-byte JSON record (benchValue), 4
// partitions, no compression, exactly-once with the default 100ms commit interval, and
// records/s counting input records from the group's partition assignment to
// the last output. State is in the memory store and, as for every stateful
// step, in a changelog topic written inside each task's transaction.
//
// Every input is partitioned by the key its stateful step groups on (the
// window groups on the record key; dedupe and join name vehicle_id, which
// the source declares as its key and partitioned by it), so the plan is one
// stage without a repartition topic; each benchmark checks that, so that it
// measures the step rather than a repartition.
// After each iteration the pipeline is stopped and its output topic read
// once more in full to check every output, beyond their number: a dedupe
// that let duplicates through would reach the wanted count early.
//
// Each iteration pre-produces stateRecords input records, five times the
// stateless benchmarks' benchRecords: a stateful iteration of 200,000
// records took 100-400ms, a few of the 100ms transactions, so its
// records/s measured when the last commit fell as much as the step's
// throughput (docs/performance.md).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

const (
	// stateRecords are pre-produced per iteration of a stateful benchmark
	// and of its F0.
	stateRecords = 1_000_000
	// stateKeys is the number of distinct keys (vehicles) of the window and
	// join benchmarks' input, and the number of rows of the join's table.
	stateKeys = 10_000
	// windowTick is how far the event time of each input record of the
	// window benchmark is after the one before: stateRecords records span
	// 1000s, 17 or 18 1-minute windows per key with 6 records each, of
	// which all but the last close during the run.
	windowTick = time.Millisecond
	// dedupeIDs is the number of distinct ids (vehicle_id values of
	// benchValue) the dedupe benchmark's input cycles through, and
	// dedupeTick the event time between two of its records: an id comes back
	// after dedupeIDs*dedupeTick = 1000s, more than the step's 10m horizon,
	// so that record is a new reading and passes.
	dedupeIDs  = 100_000
	dedupeTick = 10 * time.Millisecond
	// dedupeEvery: every dedupeEvery-th input record of the dedupe benchmark
	// is a redelivery of the record dedupeLag records before it (same key,
	// value and timestamp), which the step drops: 10% of the input.
	dedupeEvery = 10
	dedupeLag   = 5
)

// stateBenchKey is the key of input record i of the window and join
// benchmarks: one of stateKeys vehicles, the vehicle_id of
// benchValue(i%stateKeys).
func stateBenchKey(i int) []byte { return fmt.Appendf(nil, "truck-%05d", i%stateKeys) }

// stateBench is one stateful benchmark: a pipeline of one stateful step,
// its input, and the checks of its outputs.
type stateBench struct {
	// name names the benchmark's pipelines (bench-<name>-<run>-<iteration>).
	name string
	// source is the source's fields besides topic, steps the steps in YAML
	// with $table for the table topic of the iteration.
	source, steps string
	input         benchInput
	// first checks the first output, as throughputOnce's check.
	first func(b *testing.B, first []byte)
	// outputs returns the check of every output of the iteration that
	// input.produce has just produced.
	outputs func() outputCheck
}

// outputCheck checks the outputs of one iteration, given one by one in the
// order of their partition.
type outputCheck interface {
	output(r *kgo.Record) error
	// done checks what the outputs added up to.
	done() error
}

// stateBenchTable is the table topic of iteration iter of the benchmark
// named name.
func stateBenchTable(name, iter string) string {
	return fmt.Sprintf("bench-%s-table-%s-%s", name, benchRunID, iter)
}

func (sb *stateBench) plan(b *testing.B, name, in, out, iter string) *pipeline.Plan {
	b.Helper()
	source := "topic: " + in
	if sb.source != "" {
		source += ", " + sb.source
	}
	src := fmt.Sprintf(`apiVersion: sluice/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {%s}
  steps:
%s  sink: {topic: %s}
  delivery: exactly-once
  state: {store: memory}
`, name, source, strings.ReplaceAll(sb.steps, "$table", stateBenchTable(sb.name, iter)), out)
	p, err := benchCompiler().Compile(name+".yaml", []byte(src))
	if err != nil {
		b.Fatal(err)
	}
	if len(p.Stages) != 1 {
		b.Fatalf("the benchmark pipeline has %d stages, want 1 without a repartition:\n%s", len(p.Stages), p.Describe())
	}
	return p
}

// run measures sb as benchThroughput measures the stateless pipelines,
// with a runtime of its own.
func (sb *stateBench) run(b *testing.B) {
	c := newBenchCluster(b)
	benchThroughput(b, c, sb.runner(c, benchRuntime(b, c.brokers)), sb.input, sb.first)
}

// runner runs sb's pipeline in rt. Stopping it checks the pipeline's status
// as runner does, then every output, and deletes the pipeline's changelog
// and DLQ topics.
func (sb *stateBench) runner(c *benchCluster, rt *runtime.Runtime) passThrough {
	return func(b *testing.B, in, out, iter string) (<-chan time.Time, func()) {
		name := fmt.Sprintf("bench-%s-%s-%s", sb.name, benchRunID, iter)
		p := sb.plan(b, name, in, out, iter)
		if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "1"}}); err != nil {
			b.Fatal(err)
		}
		return watchAssigned(rt, name, int(benchPartitions)), func() {
			topics := []string{p.DLQ}
			for _, s := range p.Steps {
				if s.Stateful {
					topics = append(topics, runtime.ChangelogTopic(name, s.Name))
				}
			}
			defer c.deleteTopics(topics...)
			stopChecked(b, rt, name)
			check := sb.outputs()
			n, err := readAllOutputs(c.brokers, out, check.output)
			if err == nil {
				err = check.done()
			}
			if err != nil {
				b.Errorf("outputs of %s: %v", name, err)
			}
			if n != sb.input.outputs {
				b.Errorf("%s has %d outputs in all, want %d", out, n, sb.input.outputs)
			}
		}
	}
}

// readAllOutputs reads topic from its start with read_committed isolation
// up to its end offsets, handing every record to each until it fails, and
// returns the number of records read. The pipeline has stopped, so its
// last transaction is committed and the end offsets are final: a duplicate
// shows in the count without waiting for more to come.
func readAllOutputs(brokers []string, topic string, each func(*kgo.Record) error) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return kafkatest.ReadToEnd(ctx, brokers, topic, each)
}

// BenchmarkRunnerWindowedCount is the runtime counting records per key in
// 1-minute tumbling windows (a `window` step with `emit: update`), exactly
// once, state in the memory store and its changelog (target: >= 0.6 x its
// F0 records/s). The input is keyed by vehicle over stateKeys keys, the
// window's grouping key, and its event time is the Kafka timestamp, 1ms
// apart from record to record and ending about now: of the 17 or 18
// windows of each key in its 1000s of event time, all but the last close on
// the way. With `emit: update` each record
// yields one output, its window's count so far, so outputs equal inputs as
// for R0. Every output is checked: the counts of a key and window go up by
// one, each output is timestamped at its window's end, and the last count of
// each key and window is its number of input records.
func BenchmarkRunnerWindowedCount(b *testing.B) { windowBench().run(b) }

func windowBench() *stateBench {
	var base int64 // the event time of the first input record, Unix ms
	return &stateBench{
		name: "window",
		steps: `    - window:
        tumbling: 1m
        grace: 5s
        emit: update
        aggregates:
          readings: count
`,
		input: benchInput{
			produce: func(b *testing.B, c *benchCluster, in, _ string) []string {
				now := time.Now()
				base = now.Add(-stateRecords * windowTick).UnixMilli()
				sent := now.UnixMicro()
				c.produceRecords(b, stateRecords, func(i int) *kgo.Record {
					return &kgo.Record{Topic: in, Key: stateBenchKey(i), Value: benchValue(i%stateKeys, sent),
						Timestamp: time.UnixMilli(base + int64(i)*windowTick.Milliseconds())}
				})
				return nil
			},
			records: stateRecords,
			outputs: stateRecords,
		},
		first: func(b *testing.B, first []byte) {
			// A partition's first output is for the first record of its key.
			var v windowBenchOutput
			if err := json.Unmarshal(first, &v); err != nil || v.Readings != 1 || v.Window.Start == "" {
				b.Errorf("first output %s is not a window with readings 1 (%v)", first, err)
			}
		},
		outputs: func() outputCheck {
			want := map[windowBenchKey]int{}
			size := time.Minute.Milliseconds()
			for i := range stateRecords {
				t := base + int64(i)*windowTick.Milliseconds()
				want[windowBenchKey{string(stateBenchKey(i)), t - t%size}]++
			}
			return &windowBenchCheck{size: size, want: want, got: map[windowBenchKey]int{}}
		},
	}
}

// windowBenchOutput is an output of BenchmarkRunnerWindowedCount.
type windowBenchOutput struct {
	Window struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"window"`
	Readings int `json:"readings"`
}

// windowBenchKey is a key and the start of one of its windows (Unix ms).
type windowBenchKey struct {
	key   string
	start int64
}

type windowBenchCheck struct {
	size      int64
	want, got map[windowBenchKey]int // records per key and window; the last count output
}

func (c *windowBenchCheck) output(r *kgo.Record) error {
	var v windowBenchOutput
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return fmt.Errorf("output %s: %w", r.Value, err)
	}
	start, err1 := time.Parse(time.RFC3339Nano, v.Window.Start)
	end, err2 := time.Parse(time.RFC3339Nano, v.Window.End)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("output %s: %w", r.Value, err)
	}
	if end.Sub(start).Milliseconds() != c.size || start.UnixMilli()%c.size != 0 {
		return fmt.Errorf("output %s is not a tumbling window of %dms", r.Value, c.size)
	}
	if !r.Timestamp.Equal(end) {
		return fmt.Errorf("output %s has timestamp %v, want the window's end", r.Value, r.Timestamp.UTC())
	}
	k := windowBenchKey{string(r.Key), start.UnixMilli()}
	if v.Readings != c.got[k]+1 {
		return fmt.Errorf("key %s: output %s after a count of %d", r.Key, r.Value, c.got[k])
	}
	c.got[k] = v.Readings
	return nil
}

func (c *windowBenchCheck) done() error {
	if len(c.got) != len(c.want) {
		return fmt.Errorf("outputs for %d keys and windows, want %d", len(c.got), len(c.want))
	}
	for k, n := range c.want {
		if c.got[k] != n {
			return fmt.Errorf("key %s, window at %d: last count %d, want %d", k.key, k.start, c.got[k], n)
		}
	}
	return nil
}

// BenchmarkRunnerWindowedCountFinal is BenchmarkRunnerWindowedCount with
// `emit: final`: one output per key and window, when the window closes
// (target: >= 0.6 x its F0 records/s; records/s counts input records). The
// event times are those of BenchmarkRunnerWindowedCount shifted so that the
// last record is 30s into its minute: every task's stream time then passes
// the end plus grace (5s) of every window but the last, so exactly those
// windows come out, and the benchmark waits for that many outputs. Every
// output is checked: one per key and closed window, with the window's
// number of input records, timestamped at the window's end.
func BenchmarkRunnerWindowedCountFinal(b *testing.B) { windowFinalBench().run(b) }

func windowFinalBench() *stateBench {
	size := time.Minute.Milliseconds()
	// base is the event time of the first input record (Unix ms): a minute
	// boundary at least the input's span plus a minute ago, plus the
	// offset that puts the last record 30s into its minute.
	base := func() int64 {
		last := int64(stateRecords-1) * windowTick.Milliseconds()
		m := (time.Now().UnixMilli() - last - size) / size * size
		return m + ((30_000-last)%size+size)%size
	}()
	last := base + int64(stateRecords-1)*windowTick.Milliseconds()
	lastStart := last - last%size
	want := map[windowBenchKey]int{} // records per key and closed window
	for i := range stateRecords {
		t := base + int64(i)*windowTick.Milliseconds()
		if start := t - t%size; start < lastStart {
			want[windowBenchKey{string(stateBenchKey(i)), start}]++
		}
	}
	return &stateBench{
		name: "window-final",
		steps: `    - window:
        tumbling: 1m
        grace: 5s
        emit: final
        aggregates:
          readings: count
`,
		input: benchInput{
			produce: func(b *testing.B, c *benchCluster, in, _ string) []string {
				sent := time.Now().UnixMicro()
				c.produceRecords(b, stateRecords, func(i int) *kgo.Record {
					return &kgo.Record{Topic: in, Key: stateBenchKey(i), Value: benchValue(i%stateKeys, sent),
						Timestamp: time.UnixMilli(base + int64(i)*windowTick.Milliseconds())}
				})
				return nil
			},
			records: stateRecords,
			outputs: len(want),
		},
		first: func(b *testing.B, first []byte) {
			var v windowBenchOutput
			if err := json.Unmarshal(first, &v); err != nil || v.Readings < 1 || v.Window.Start == "" {
				b.Errorf("first output %s is not a window with readings (%v)", first, err)
			}
		},
		outputs: func() outputCheck {
			return &windowFinalCheck{windowBenchCheck{size: size, want: want, got: map[windowBenchKey]int{}}}
		},
	}
}

// windowFinalCheck checks the outputs of BenchmarkRunnerWindowedCountFinal:
// one per key and closed window, with its whole count.
type windowFinalCheck struct{ windowBenchCheck }

func (c *windowFinalCheck) output(r *kgo.Record) error {
	var v windowBenchOutput
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return fmt.Errorf("output %s: %w", r.Value, err)
	}
	start, err := time.Parse(time.RFC3339Nano, v.Window.Start)
	if err != nil {
		return fmt.Errorf("output %s: %w", r.Value, err)
	}
	k := windowBenchKey{string(r.Key), start.UnixMilli()}
	if _, dup := c.got[k]; dup {
		return fmt.Errorf("key %s: window %s came out twice", r.Key, v.Window.Start)
	}
	if !r.Timestamp.Equal(start.Add(time.Duration(c.size) * time.Millisecond)) {
		return fmt.Errorf("output %s has timestamp %v, want the window's end", r.Value, r.Timestamp.UTC())
	}
	c.got[k] = v.Readings
	return nil
}

// BenchmarkRunnerDedupe is the runtime dropping redelivered records with a
// `dedupe` step by vehicle_id within 10 minutes of event time, exactly once,
// state in the memory store and its changelog (target: >= 0.6 x its F0
// records/s). records/s counts input records, as for R0, although only the
// 90% that are unique come out: the benchmark waits for exactly that many.
//
// The input models vehicles that each report once every 1000s of event
// time (record i is the reading of vehicle i%dedupeIDs, dedupeTick after
// record i-1, timestamps ending about now), of which every dedupeEvery-th
// record is a redelivery of the reading dedupeLag records before it, as an
// at-least-once producer sends after a retry: same key, value and timestamp.
// A vehicle's next reading comes 1000s after its last, beyond the horizon,
// so it passes; the horizon holds about 60,000 ids and forgets them as the
// stream time moves on. The source is keyed (and partitioned) by
// vehicle_id, the id, so every copy of an id meets in one task without a
// repartition. Every output is checked: each unique reading comes out
// exactly once, in event-time order per vehicle, as the record it was.
func BenchmarkRunnerDedupe(b *testing.B) { dedupeBench().run(b) }

func dedupeBench() *stateBench {
	var base int64 // the event time of the first input record, Unix ms
	// reading is the index of the unique reading input record i carries.
	reading := func(i int) int {
		if i%dedupeEvery == dedupeEvery-1 {
			return i - dedupeLag
		}
		return i
	}
	unique := stateRecords - stateRecords/dedupeEvery
	return &stateBench{
		name:   "dedupe",
		source: "key: vehicle_id, partitioned_by_key: true",
		steps:  "    - dedupe: {by: vehicle_id, within: 10m}\n",
		input: benchInput{
			produce: func(b *testing.B, c *benchCluster, in, _ string) []string {
				now := time.Now()
				base = now.Add(-stateRecords * dedupeTick).UnixMilli()
				sent := now.UnixMicro()
				c.produceRecords(b, stateRecords, func(i int) *kgo.Record {
					j := reading(i)
					return &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "truck-%05d", j%dedupeIDs), Value: benchValue(j, sent),
						Timestamp: time.UnixMilli(base + int64(j)*dedupeTick.Milliseconds())}
				})
				return nil
			},
			records: stateRecords,
			outputs: unique,
		},
		first: func(b *testing.B, first []byte) {
			var v struct {
				VehicleID string `json:"vehicle_id"`
				Note      string `json:"note"`
			}
			if err := json.Unmarshal(first, &v); err != nil || v.VehicleID == "" || v.Note == "" {
				b.Errorf("first output %s is not an input record (%v)", first, err)
			}
		},
		outputs: func() outputCheck {
			return &dedupeBenchCheck{base: base, seen: make(map[int]bool, unique), last: map[string]int{}}
		},
	}
}

type dedupeBenchCheck struct {
	base int64
	seen map[int]bool   // the readings output, by input record index
	last map[string]int // the last reading output of each vehicle
}

func (c *dedupeBenchCheck) output(r *kgo.Record) error {
	var v struct {
		VehicleID string `json:"vehicle_id"`
	}
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return fmt.Errorf("output %s: %w", r.Value, err)
	}
	if v.VehicleID != string(r.Key) {
		return fmt.Errorf("output keyed %s is %s", r.Key, r.Value)
	}
	var id int
	if _, err := fmt.Sscanf(v.VehicleID, "truck-%05d", &id); err != nil {
		return fmt.Errorf("output %s: %w", r.Value, err)
	}
	// The reading is the input record with this id and event time.
	since := r.Timestamp.UnixMilli() - c.base
	i := int(since / dedupeTick.Milliseconds())
	if since%dedupeTick.Milliseconds() != 0 || i < 0 || i >= stateRecords || i%dedupeIDs != id || i%dedupeEvery == dedupeEvery-1 {
		return fmt.Errorf("output %s at %v is no input reading", r.Value, r.Timestamp.UTC())
	}
	if prev, ok := c.last[v.VehicleID]; ok && prev >= i {
		return fmt.Errorf("%s: reading %d after %d", v.VehicleID, i, prev)
	}
	c.last[v.VehicleID] = i
	if c.seen[i] {
		return fmt.Errorf("reading %d (%s) came out twice", i, r.Value)
	}
	c.seen[i] = true
	return nil
}

func (c *dedupeBenchCheck) done() error {
	if want := stateRecords - stateRecords/dedupeEvery; len(c.seen) != want {
		return fmt.Errorf("%d distinct readings came out, want %d", len(c.seen), want)
	}
	return nil
}

// vehicleRow is a row of BenchmarkRunnerJoin's table, ~110 bytes of JSON.
type vehicleRow struct {
	VehicleID  string `json:"vehicle_id"`
	Plate      string `json:"plate"`
	Model      string `json:"model"`
	Depot      string `json:"depot"`
	CapacityKg int    `json:"capacity_kg"`
}

// vehicleOf is the table row of the vehicle with key (stateBenchKey).
func vehicleOf(key string) vehicleRow {
	return vehicleRow{VehicleID: key, Plate: "NL-" + key[len(key)-5:] + "-T", Model: "Volvo FH16", Depot: "Rotterdam", CapacityKg: 24000}
}

// BenchmarkRunnerJoin is the runtime enriching each record with its
// vehicle's row in a table (a stream-table inner `join`), exactly once,
// state in the memory store and its changelog (target: >= 0.6 x its F0
// records/s). The table is a compacted topic of stateKeys rows
// (vehicleRow) over the same 4 partitions, produced before the runner
// starts: producing it is not measured, the runner reading it into its
// store before the stream is. The stream is keyed by vehicle over the same stateKeys keys and
// the source declares that key (vehicle_id, partitioned by it), which is
// also the join's `on`, so the stream meets its table partitions without a
// repartition. Every stream record finds its row, so outputs equal inputs
// as for R0; every output is checked to carry its own vehicle's row.
func BenchmarkRunnerJoin(b *testing.B) { joinBench().run(b) }

func joinBench() *stateBench {
	return &stateBench{
		name:   "join",
		source: "key: vehicle_id, partitioned_by_key: true",
		steps:  "    - join: {table: $table, on: vehicle_id, as: vehicle}\n",
		input: benchInput{
			produce: func(b *testing.B, c *benchCluster, in, iter string) []string {
				table := stateBenchTable("join", iter)
				c.createCompacted(b, table)
				c.produceRecords(b, stateKeys, func(i int) *kgo.Record {
					key := stateBenchKey(i)
					row, err := json.Marshal(vehicleOf(string(key)))
					if err != nil {
						b.Fatal(err)
					}
					return &kgo.Record{Topic: table, Key: key, Value: row}
				})
				sent := time.Now().UnixMicro()
				c.produceRecords(b, stateRecords, func(i int) *kgo.Record {
					return &kgo.Record{Topic: in, Key: stateBenchKey(i), Value: benchValue(i%stateKeys, sent)}
				})
				return []string{table}
			},
			records: stateRecords,
			outputs: stateRecords,
		},
		first: func(b *testing.B, first []byte) {
			if err := checkJoinBenchOutput(nil, first); err != nil {
				b.Error(err)
			}
		},
		outputs: func() outputCheck { return &joinBenchCheck{perKey: map[string]int{}} },
	}
}

// createCompacted creates a compacted topic of benchPartitions partitions.
func (c *benchCluster) createCompacted(b *testing.B, topic string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.adm.CreateTopic(ctx, benchPartitions, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		b.Fatalf("creating %s: %v", topic, err)
	}
}

// checkJoinBenchOutput checks that output v of BenchmarkRunnerJoin is an
// input record with the row of its vehicle, and that its key is the
// vehicle's (unless key is nil).
func checkJoinBenchOutput(key, v []byte) error {
	var out struct {
		VehicleID string      `json:"vehicle_id"`
		Note      string      `json:"note"`
		Vehicle   *vehicleRow `json:"vehicle"`
	}
	if err := json.Unmarshal(v, &out); err != nil {
		return fmt.Errorf("output %s: %w", v, err)
	}
	if out.Note == "" || out.Vehicle == nil || *out.Vehicle != vehicleOf(out.VehicleID) || (key != nil && string(key) != out.VehicleID) {
		return fmt.Errorf("output %s (key %s) is not an input record joined with its vehicle's row", v, key)
	}
	return nil
}

type joinBenchCheck struct{ perKey map[string]int }

func (c *joinBenchCheck) output(r *kgo.Record) error {
	c.perKey[string(r.Key)]++
	return checkJoinBenchOutput(r.Key, r.Value)
}

func (c *joinBenchCheck) done() error {
	if len(c.perKey) != stateKeys {
		return fmt.Errorf("outputs for %d keys, want %d", len(c.perKey), stateKeys)
	}
	for k, n := range c.perKey {
		if n != stateRecords/stateKeys {
			return fmt.Errorf("key %s has %d outputs, want %d", k, n, stateRecords/stateKeys)
		}
	}
	return nil
}
