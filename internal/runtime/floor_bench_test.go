package runtime_test

// The re-based yardsticks of the runner's throughput targets (issue 11,
// "Performance: re-based targets"), measured in the same run as R0 and the
// runner benchmarks (bench_test.go, statebench_test.go) and with the same
// setup: kfake in-process, the 200-byte record, 4 partitions, no
// compression, benchRecords records pre-produced, records/s from the
// group's assignment to the last output read_committed.
//
//   - H, hand-written (BenchmarkHandWritten*): the benchmark pipeline's
//     filter + map written directly against franz-go, decoding each value
//     into a typed Go struct and encoding one with github.com/goccy/go-json,
//     the library the engine uses for typed work (internal/record), in the
//     same delivery mode as the runner it is compared with.
//   - F0, the I/O floor of a pipeline (BenchmarkFloor*): a franz-go consume
//     -> produce in the pipeline's delivery mode that writes, for every
//     input record, the records the pipeline writes for it, byte for byte,
//     to the same topics (output and changelogs; these pipelines have no
//     repartition), without decoding anything. What the pipeline writes is
//     recorded once per benchmark process by running the pipeline itself
//     over the same input (recordWrites, not timed): per partition, each
//     written topic's records in order, handed out to the partition's input
//     records in proportion (input j of n gets records [j*m/n, (j+1)*m/n)
//     of m), so the floor writes the same number of records of the same
//     sizes to the same partitions as the pipeline, at the same pace.
//
// Both fetch with the runtime's fetch sizes (yardstickFetch).

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

// floorCommitInterval is how often the exactly-once floor and hand-written
// copies commit their transaction: the runtime's default commit interval.
const floorCommitInterval = 100 * time.Millisecond

// copyFunc turns one input record into the records to write for it.
type copyFunc func(r *kgo.Record, emit func(*kgo.Record))

// copier is a minimal franz-go consumer-group client that reads in
// read_committed and writes what each input record turns into. At least
// once, it produces a poll's records, flushes and commits the poll's
// offsets, as R0 does; exactly once, it is a kgo.GroupTransactSession that
// commits its transaction (outputs and offsets) every floorCommitInterval,
// as the runtime does. The records it writes carry their partition. It
// fetches as the runtime does (yardstickFetch).
func copier(brokers []string, delivery, role string, transform copyFunc) passThrough {
	return func(b *testing.B, in, _, iter string) (<-chan time.Time, func()) {
		assigned := make(chan time.Time, 1)
		var once sync.Once
		group := fmt.Sprintf("bench-%s-%s-%s", role, benchRunID, iter)
		opts := append([]kgo.Opt{
			kgo.SeedBrokers(brokers...),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(in),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
				once.Do(func() { assigned <- time.Now() })
			}),
		}, benchClientOpts...)
		opts = append(opts, yardstickFetch...)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var closeClient func()
		if delivery == "exactly-once" {
			sess, err := kgo.NewGroupTransactSession(append(opts, kgo.TransactionalID(group))...)
			if err != nil {
				b.Fatal(err)
			}
			closeClient = sess.Close
			go func() { done <- copyTransactional(ctx, sess, transform) }()
		} else {
			cl, err := kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
			if err != nil {
				b.Fatal(err)
			}
			closeClient = cl.Close
			go func() { done <- copyAtLeastOnce(ctx, cl, transform) }()
		}
		return assigned, func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("%s: %v", role, err)
			}
			closeClient()
		}
	}
}

func copyAtLeastOnce(ctx context.Context, cl *kgo.Client, transform copyFunc) error {
	var produceErr atomic.Value
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			produceErr.CompareAndSwap(nil, err)
		}
	}
	emit := func(r *kgo.Record) { cl.Produce(ctx, r, promise) }
	for {
		f := cl.PollFetches(ctx)
		if f.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		if err := f.Err0(); err != nil {
			return err
		}
		f.EachRecord(func(r *kgo.Record) { transform(r, emit) })
		if err := cl.Flush(ctx); err != nil {
			return nil // canceled
		}
		if err, _ := produceErr.Load().(error); err != nil {
			return err
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

func copyTransactional(ctx context.Context, sess *kgo.GroupTransactSession, transform copyFunc) error {
	var produceErr atomic.Value
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			produceErr.CompareAndSwap(nil, err)
		}
	}
	emit := func(r *kgo.Record) { sess.Produce(ctx, r, promise) }
	var began time.Time // zero when no transaction is open
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if !began.IsZero() {
			pollCtx, cancel = context.WithDeadline(ctx, began.Add(floorCommitInterval))
		}
		f := sess.PollFetches(pollCtx)
		cancel()
		if f.IsClientClosed() || ctx.Err() != nil {
			if !began.IsZero() {
				_, _ = sess.End(context.Background(), kgo.TryAbort)
			}
			return nil
		}
		if err := f.Err0(); err != nil && pollCtx.Err() == nil {
			return err
		}
		if f.NumRecords() > 0 && began.IsZero() {
			if err := sess.Begin(); err != nil {
				return err
			}
			began = time.Now()
		}
		f.EachRecord(func(r *kgo.Record) { transform(r, emit) })
		if !began.IsZero() && time.Since(began) >= floorCommitInterval {
			if _, err := sess.End(ctx, kgo.TryCommit); err != nil && ctx.Err() == nil {
				return err
			}
			began = time.Time{}
			if err, _ := produceErr.Load().(error); err != nil {
				return err
			}
		}
	}
}

// handInput is the part of the benchmark record the hand-written filter +
// map reads, as typed fields: a hand-written program declares what it
// uses, and goccy skips the rest (as the engine decodes only the fields a
// stage reads).
type handInput struct {
	VehicleID string   `json:"vehicle_id"`
	Speed     float64  `json:"speed"`
	Lat       *float64 `json:"lat"`
	Fuel      float64  `json:"fuel"`
	SentUS    int64    `json:"sent_us"`
}

// handOutput is what the benchmark pipeline's map writes, in the engine's
// key order (sorted).
type handOutput struct {
	Kmh     float64 `json:"kmh"`
	LowFuel bool    `json:"low_fuel"`
	SentUS  int64   `json:"sent_us"`
	Vehicle string  `json:"vehicle"`
}

// handFilterMap is benchPlan's filter + map hand-written: records that do
// not decode are skipped (the engine dead-letters them; the benchmark has
// none).
func handFilterMap(out string) copyFunc {
	return func(r *kgo.Record, emit func(*kgo.Record)) {
		var v handInput
		if err := gojson.Unmarshal(r.Value, &v); err != nil {
			return
		}
		if !(v.Speed >= 0 && v.Lat != nil) {
			return
		}
		value, err := gojson.MarshalWithOption(handOutput{Kmh: v.Speed * 3.6, LowFuel: v.Fuel < 0.2, SentUS: v.SentUS, Vehicle: v.VehicleID},
			gojson.DisableHTMLEscape())
		if err != nil {
			return
		}
		emit(&kgo.Record{Topic: out, Partition: r.Partition, Key: r.Key, Value: value, Timestamp: r.Timestamp})
	}
}

// BenchmarkHandWrittenAtLeastOnce is H for BenchmarkRunnerAtLeastOnce
// (target: runner >= 1.0 x H records/s).
func BenchmarkHandWrittenAtLeastOnce(b *testing.B) { benchHand(b, "at-least-once") }

// BenchmarkHandWrittenExactlyOnce is H for BenchmarkRunnerExactlyOnce
// (target: runner >= 1.0 x H records/s).
func BenchmarkHandWrittenExactlyOnce(b *testing.B) { benchHand(b, "exactly-once") }

func benchHand(b *testing.B, delivery string) {
	c := newBenchCluster(b)
	hand := func(b *testing.B, in, out, iter string) (<-chan time.Time, func()) {
		return copier(c.brokers, delivery, "hand", handFilterMap(out))(b, in, out, iter)
	}
	benchThroughput(b, c, hand, backlogInput, checkTransformed)
}

// yardstickFetch are the fetch sizes of H and F0: the runtime's
// (runtime.DefaultFetchMaxBytes), so that the runner and its yardsticks
// differ in what they do with the records, not in how they fetch them.
// With each run starting from a heap returned to the system (measured
// 2026-12-06), they were as fast as franz-go's defaults for H and F0 at
// least once and faster exactly once; measured one after the other in a
// warm process, the second of two runs gains from the heap the first left
// behind, whichever fetch sizes it has.
var yardstickFetch = []kgo.Opt{
	kgo.FetchMaxBytes(runtime.DefaultFetchMaxBytes),
	kgo.FetchMaxPartitionBytes(runtime.DefaultFetchMaxPartitionBytes),
}

// floorShape is a measured pipeline shape for F0: its pipeline and input.
type floorShape struct {
	name     string
	delivery string
	input    benchInput
	plan     func(b *testing.B, name, in, out, iter string) *pipeline.Plan
}

func statelessShape(delivery string) floorShape {
	return floorShape{
		name: "filter-map-" + delivery, delivery: delivery, input: backlogInput,
		plan: func(b *testing.B, name, in, out, _ string) *pipeline.Plan {
			return benchPlan(b, name, in, out, delivery)
		},
	}
}

func statefulShape(sb *stateBench) floorShape {
	return floorShape{name: sb.name, delivery: "exactly-once", input: sb.input, plan: sb.plan}
}

// writes is what a pipeline wrote for its input records: per written
// topic (the output first), per partition, its records in order.
type writes struct {
	topics [][]*recordedPartition // [topic][partition]
}

// recordedPartition is the records written to one partition of a topic,
// kept without a pointer per record: the process keeps every recording,
// and millions of *kgo.Record left every garbage collection of the
// benchmarks after them (the runner's) marking them all, which slowed
// those by up to half.
type recordedPartition struct {
	data []byte // keys, values, header keys and values, back to back
	recs []recordedRecord
	hdrs []recordedHeader
}

// span is a slice of recordedPartition.data; n < 0 stands for nil (a
// tombstone's value).
type span struct{ off, n int }

type recordedRecord struct {
	key, value     span
	ts             int64 // Unix nanoseconds
	hdrFrom, hdrTo int   // its headers: hdrs[hdrFrom:hdrTo]
}

type recordedHeader struct{ key, value span }

func (rp *recordedPartition) put(b []byte) span {
	if b == nil {
		return span{n: -1}
	}
	sp := span{off: len(rp.data), n: len(b)}
	rp.data = append(rp.data, b...)
	return sp
}

func (rp *recordedPartition) get(sp span) []byte {
	if sp.n < 0 {
		return nil
	}
	return rp.data[sp.off : sp.off+sp.n : sp.off+sp.n]
}

func (rp *recordedPartition) add(r *kgo.Record) {
	rec := recordedRecord{key: rp.put(r.Key), value: rp.put(r.Value), ts: r.Timestamp.UnixNano(), hdrFrom: len(rp.hdrs)}
	for _, h := range r.Headers {
		rp.hdrs = append(rp.hdrs, recordedHeader{key: rp.put([]byte(h.Key)), value: rp.put(h.Value)})
	}
	rec.hdrTo = len(rp.hdrs)
	rp.recs = append(rp.recs, rec)
}

// record returns recorded record i, to be produced to topic, partition.
func (rp *recordedPartition) record(i int, topic string, partition int32) *kgo.Record {
	x := &rp.recs[i]
	r := &kgo.Record{Topic: topic, Partition: partition, Key: rp.get(x.key), Value: rp.get(x.value), Timestamp: time.Unix(0, x.ts)}
	for _, h := range rp.hdrs[x.hdrFrom:x.hdrTo] {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: string(rp.get(h.key)), Value: rp.get(h.value)})
	}
	return r
}

var (
	recordedMu sync.Mutex
	recorded   = map[string]*writes{} // by floorShape.name
)

// recordWrites runs shape's pipeline once over its input (not timed) and
// returns what it wrote to its output and changelog topics, read
// read_committed after the pipeline stopped. The recording is kept for the
// process's later runs of the same shape.
func recordWrites(b *testing.B, c *benchCluster, shape floorShape) *writes {
	b.Helper()
	recordedMu.Lock()
	defer recordedMu.Unlock()
	if w := recorded[shape.name]; w != nil {
		return w
	}
	b.StopTimer()
	defer b.StartTimer()
	iter := "rec-" + shape.name
	in := fmt.Sprintf("bench-in-%s-%s", benchRunID, iter)
	out := fmt.Sprintf("bench-out-%s-%s", benchRunID, iter)
	name := fmt.Sprintf("bench-%s-%s", benchRunID, iter)
	c.createTopics(b, benchPartitions, in, out)
	topics := []string{in, out, name + ".dlq"}
	if created := shape.input.produce(b, c, in, iter); len(created) > 0 {
		topics = append(topics, created...)
	}
	defer func() { c.deleteTopics(topics...) }()
	rt, err := runtime.New(runtime.Brokers(c.brokers...), runtime.KafkaOptions(benchClientOpts...))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = rt.Close(ctx)
	}()
	p := shape.plan(b, name, in, out, iter)
	written := []string{out}
	for _, s := range p.Steps {
		if s.Stateful {
			written = append(written, runtime.ChangelogTopic(name, s.Name))
		}
	}
	topics = append(topics, written[1:]...)
	rd := startReader(b, c.brokers, out, shape.input.outputs, nil)
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "1"}}); err != nil {
		b.Fatal(err)
	}
	if err := rd.wait(2 * time.Minute); err != nil {
		b.Fatalf("recording %s: %v", shape.name, err)
	}
	stopChecked(b, rt, name)
	w := &writes{}
	for _, topic := range written {
		parts := make([]*recordedPartition, benchPartitions)
		for i := range parts {
			parts[i] = &recordedPartition{}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := kafkatest.ReadToEnd(ctx, c.brokers, topic, func(r *kgo.Record) error {
			if int(r.Partition) >= len(parts) {
				return fmt.Errorf("%s has partition %d, want %d partitions", topic, r.Partition, benchPartitions)
			}
			parts[r.Partition].add(r)
			return nil
		})
		cancel()
		if err != nil {
			b.Fatalf("recording %s: %v", shape.name, err)
		}
		w.topics = append(w.topics, parts)
	}
	if n := countRecords(w.topics[0]); n != shape.input.outputs {
		b.Fatalf("recording %s: %d outputs, want %d", shape.name, n, shape.input.outputs)
	}
	for i, parts := range w.topics {
		n, size := 0, 0
		for _, p := range parts {
			for _, r := range p.recs {
				n++
				size += max(r.key.n, 0) + max(r.value.n, 0)
			}
		}
		b.Logf("%s writes to %s: %d records for %d inputs, %.0f bytes of key and value on average", shape.name, written[i], n, shape.input.records, float64(size)/float64(max(n, 1)))
	}
	recorded[shape.name] = w
	return w
}

func countRecords(parts []*recordedPartition) int {
	n := 0
	for _, p := range parts {
		n += len(p.recs)
	}
	return n
}

// floor is F0 of shape: it writes the recorded records to the output topic
// and to one compacted topic per recorded changelog, created per iteration.
func floor(c *benchCluster, shape floorShape, w *writes) passThrough {
	return func(b *testing.B, in, out, iter string) (<-chan time.Time, func()) {
		// How many input records each partition has: the input is not
		// transactional, so its end offsets.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		ends, err := c.adm.ListEndOffsets(ctx, in)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		inputs := make([]int64, benchPartitions)
		ends.Each(func(o kadm.ListedOffset) { inputs[o.Partition] = o.Offset })
		topics := []string{out}
		for i := 1; i < len(w.topics); i++ {
			t := fmt.Sprintf("bench-f0-changelog-%s-%s-%d", benchRunID, iter, i)
			c.createCompacted(b, t)
			topics = append(topics, t)
		}
		write := func(r *kgo.Record, emit func(*kgo.Record)) {
			n := inputs[r.Partition]
			for t, parts := range w.topics {
				rp := parts[r.Partition]
				m := int64(len(rp.recs))
				for i := r.Offset * m / n; i < (r.Offset+1)*m/n; i++ {
					emit(rp.record(int(i), topics[t], r.Partition))
				}
			}
		}
		assigned, stop := copier(c.brokers, shape.delivery, "f0-"+shape.name, write)(b, in, out, iter)
		return assigned, func() {
			stop()
			c.deleteTopics(topics[1:]...)
		}
	}
}

func benchFloor(b *testing.B, shape floorShape, check func(b *testing.B, first []byte)) {
	c := newBenchCluster(b)
	w := recordWrites(b, c, shape)
	benchThroughput(b, c, floor(c, shape, w), shape.input, check)
}

// BenchmarkFloorFilterMapAtLeastOnce is F0 of BenchmarkRunnerAtLeastOnce.
func BenchmarkFloorFilterMapAtLeastOnce(b *testing.B) {
	benchFloor(b, statelessShape("at-least-once"), checkTransformed)
}

// BenchmarkFloorFilterMapExactlyOnce is F0 of BenchmarkRunnerExactlyOnce.
func BenchmarkFloorFilterMapExactlyOnce(b *testing.B) {
	benchFloor(b, statelessShape("exactly-once"), checkTransformed)
}

// BenchmarkFloorWindowedCount is F0 of BenchmarkRunnerWindowedCount
// (target: runner >= 0.6 x F0 records/s).
func BenchmarkFloorWindowedCount(b *testing.B) {
	sb := windowBench()
	benchFloor(b, statefulShape(sb), nil)
}

// BenchmarkFloorWindowedCountFinal is F0 of
// BenchmarkRunnerWindowedCountFinal (target: runner >= 0.6 x F0 records/s).
func BenchmarkFloorWindowedCountFinal(b *testing.B) {
	sb := windowFinalBench()
	benchFloor(b, statefulShape(sb), nil)
}

// BenchmarkFloorDedupe is F0 of BenchmarkRunnerDedupe (target: runner >=
// 0.6 x F0 records/s).
func BenchmarkFloorDedupe(b *testing.B) {
	sb := dedupeBench()
	benchFloor(b, statefulShape(sb), nil)
}

// BenchmarkFloorJoin is F0 of BenchmarkRunnerJoin (target: runner >= 0.6 x
// F0 records/s). It writes what the join writes; it does not read the
// table (stateKeys rows, 5% of the stream's records), which the runner
// reads into its store before it joins.
func BenchmarkFloorJoin(b *testing.B) {
	sb := joinBench()
	benchFloor(b, statefulShape(sb), nil)
}
