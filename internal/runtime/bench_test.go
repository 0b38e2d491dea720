package runtime_test

// Benchmarks of the Sluice runtime against a baseline pass-through (R0),
// for the targets in bench/targets.json; docs/performance.md ("Runner")
// says how each is measured and what it measured.
//
// Every benchmark runs against kfake in-process unless KAFKA_BROKERS is set,
// with the same record (200-byte JSON), compression (none), acks (all, the
// client default, idempotent) and input partitions (4) for all of them.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

const (
	// benchRecords are pre-produced per iteration of a throughput benchmark.
	benchRecords = 200_000
	// benchValueSize is the size of every input record value.
	benchValueSize = 200
	// idlePipelines are loaded by BenchmarkIdlePipelineMemory.
	idlePipelines = 1000
	// idleWindow is how long BenchmarkIdlePipelineMemory watches the idle
	// pipelines: longer than the 30s interval at which kfake asks clients
	// to push KIP-714 client metrics, so every client has pushed once.
	idleWindow = 45 * time.Second
	// latencyRun is how long BenchmarkLatencyP99 produces per iteration, and
	// latencyWarmup how much of its start is left out of the percentiles.
	latencyRun    = 10 * time.Second
	latencyWarmup = time.Second
	// latencyRetention is how long the in-process broker keeps the
	// latency run's records (see createShortLivedTopics).
	latencyRetention = 5 * time.Second
	// latencyCalibrations is how many backlogs BenchmarkLatencyP99 runs
	// through the pipeline to find its maximum throughput.
	latencyCalibrations = 2
)

// benchPartitions is the partition count of every input and output topic:
// 4, or SLUICE_BENCH_PARTITIONS, to see how throughput scales with the
// number of partitions (tasks).
var benchPartitions = func() int32 {
	if v := os.Getenv("SLUICE_BENCH_PARTITIONS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			panic(fmt.Sprintf("SLUICE_BENCH_PARTITIONS %q: want a partition count", v))
		}
		return int32(n)
	}
	return 4
}()

// benchRunID keeps topic and group names apart between runs against a
// shared real cluster (KAFKA_BROKERS).
var benchRunID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

// benchClientOpts are the producer settings every client producing in these
// benchmarks uses, the runtime's included: no compression (franz-go's
// default is snappy); acks=all and idempotence are franz-go's defaults.
var benchClientOpts = []kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression())}

// benchValue is a 200-byte JSON telemetry record: the fields of
// internal/driver's benchmark record, sent_us (when it was produced, in
// Unix microseconds) and padding to exactly benchValueSize bytes.
func benchValue(i int, sentUS int64) []byte {
	b := fmt.Appendf(make([]byte, 0, benchValueSize),
		`{"vehicle_id":"truck-%05d","speed":23.7,"lat":52.370216,"lon":4.895168,"heading":271,"fuel":0.62,"driver":{"id":"d-17","shift":"early"},"engine_on":true,"sent_us":%d,"note":"`,
		i%100_000, sentUS)
	if len(b) > benchValueSize-2 {
		panic(fmt.Sprintf("bench record prefix is %d bytes", len(b)))
	}
	b = append(b, bytes.Repeat([]byte("x"), benchValueSize-2-len(b))...)
	return append(b, `"}`...)
}

// benchKey spreads the records over the partitions.
func benchKey(i int) []byte { return fmt.Appendf(nil, "truck-%03d", i%1000) }

// sentUS returns the sent_us field of an input or output value.
func sentUS(v []byte) (int64, bool) {
	const field = `"sent_us":`
	i := bytes.Index(v, []byte(field))
	if i < 0 {
		return 0, false
	}
	v = v[i+len(field):]
	end := bytes.IndexAny(v, ",}")
	if end < 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v[:end]), 64)
	return int64(f), err == nil
}

// benchPlan is the pipeline every runner benchmark runs: a filter that
// keeps every record and a map that computes three fields and keeps
// sent_us (for the latency benchmark).
// The plans share one compiler (and operator registry), as the runner's do.
func benchPlan(b testing.TB, name, in, out, delivery string) *pipeline.Plan {
	b.Helper()
	src := fmt.Sprintf(`apiVersion: sluice/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {topic: %s}
  steps:
    - filter: speed >= 0 && lat != nil
    - map: {vehicle: vehicle_id, kmh: speed * 3.6, low_fuel: fuel < 0.2, sent_us: sent_us}
  sink: {topic: %s}
  delivery: %s
`, name, in, out, delivery)
	p, err := benchCompiler().Compile(name+".yaml", []byte(src))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

var benchCompiler = sync.OnceValue(func() *pipeline.Compiler {
	return &pipeline.Compiler{Registry: all.New()}
})

// benchCluster is the broker of one benchmark with an admin and a producer.
type benchCluster struct {
	brokers []string
	adm     *kadm.Client
	prod    *kgo.Client
}

func newBenchCluster(b *testing.B) *benchCluster {
	b.Helper()
	brokers := kafkatest.Brokers(b)
	return &benchCluster{
		brokers: brokers,
		adm:     kadm.NewClient(kafkatest.Client(b, brokers)),
		prod:    kafkatest.Client(b, brokers, benchClientOpts...),
	}
}

func (c *benchCluster) createTopics(b *testing.B, partitions int32, topics ...string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for chunk := range slices.Chunk(topics, 500) {
		resp, err := c.adm.CreateTopics(ctx, partitions, 1, nil, chunk...)
		if err != nil {
			b.Fatalf("creating topics: %v", err)
		}
		for _, r := range resp {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				b.Fatalf("creating %s: %v", r.Topic, r.Err)
			}
		}
	}
}

// createShortLivedTopics creates topics whose records the in-process broker
// drops once they are latencyRetention old, in segments of 4 MiB.
//
// kfake keeps every record in the benchmark's own heap: over a latency run
// that is gigabytes (records, their segments, and the copies a growing
// segment makes), and the collections of that heap, sharing two cores
// with the runner, set the latency tail (p99 240-330 ms at 256,000
// records/s offered, against 129-133 ms with these topics, 2026-12-06).
// A real broker keeps its log on its own disk, not in the runner's heap.
// Records are read within milliseconds at the rates measured, far inside
// the retention; a record dropped unread would leave the reader short
// and fail the benchmark. Against a real broker (KAFKA_BROKERS) the topics
// are plain.
func (c *benchCluster) createShortLivedTopics(b *testing.B, topics ...string) {
	b.Helper()
	if os.Getenv("KAFKA_BROKERS") != "" {
		c.createTopics(b, benchPartitions, topics...)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// kfake applies retention as often as it would compact.
	every := strconv.Itoa(int((latencyRetention / 10).Milliseconds()))
	if _, err := c.adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "log.cleaner.backoff.ms", Value: &every}}); err != nil {
		b.Fatalf("setting the broker's cleaner interval: %v", err)
	}
	retention, segment := strconv.Itoa(int(latencyRetention.Milliseconds())), strconv.Itoa(4<<20)
	resp, err := c.adm.CreateTopics(ctx, benchPartitions, 1, map[string]*string{"retention.ms": &retention, "segment.bytes": &segment}, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		b.Fatalf("creating %v: %v", topics, err)
	}
}

// deleteTopics frees the broker's memory between iterations.
func (c *benchCluster) deleteTopics(topics ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.adm.DeleteTopics(ctx, topics...)
}

// produceBacklog writes n records to topic and waits for their acks.
func (c *benchCluster) produceBacklog(b *testing.B, topic string, n int) {
	b.Helper()
	sent := time.Now().UnixMicro()
	c.produceRecords(b, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: benchKey(i), Value: benchValue(i, sent)}
	})
}

// produceRecords produces record(i) for i in [0, n), in order, and waits
// for their acks.
func (c *benchCluster) produceRecords(b *testing.B, n int, record func(i int) *kgo.Record) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var first atomic.Value
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		c.prod.Produce(ctx, record(i), func(_ *kgo.Record, err error) {
			if err != nil {
				first.CompareAndSwap(nil, err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		b.Fatalf("producing the backlog: %v", err)
	}
}

// outputReader reads a topic from its start with read_committed isolation
// (what a downstream consumer of an exactly-once pipeline uses) until it
// has n records, calling each for every record with the time its fetch
// returned.
type outputReader struct {
	done   chan struct{}
	err    error
	last   time.Time // when the n-th record was read
	got    int
	cancel context.CancelFunc
}

func startReader(b *testing.B, brokers []string, topic string, n int, each func(r *kgo.Record, now time.Time)) *outputReader {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rd := &outputReader{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(rd.done)
		defer cl.Close()
		for rd.got < n {
			f := cl.PollFetches(ctx)
			now := time.Now()
			if ctx.Err() != nil {
				rd.err = ctx.Err()
				return
			}
			if err := f.Err0(); err != nil {
				rd.err = fmt.Errorf("reading %s: %w", topic, err)
				return
			}
			f.EachRecord(func(r *kgo.Record) {
				if each != nil {
					each(r, now)
				}
			})
			rd.got += f.NumRecords()
			rd.last = now
		}
	}()
	return rd
}

// wait waits for the reader to finish, at most timeout.
func (rd *outputReader) wait(timeout time.Duration) error {
	select {
	case <-rd.done:
	case <-time.After(timeout):
		rd.cancel()
		<-rd.done
		return fmt.Errorf("read %d outputs in %v, want more", rd.got, timeout)
	}
	return rd.err
}

// passThrough is one thing that copies a topic: R0 or a runtime pipeline.
// start returns when it has started; assigned receives the time its group
// assigned it the input partitions; stop stops it.
type passThrough func(b *testing.B, in, out, iter string) (assigned <-chan time.Time, stop func())

// benchInput is what one throughput iteration pre-produces and how many
// outputs pt makes of it.
type benchInput struct {
	// records is the number of input records produce writes.
	records int
	// produce writes the input records to topic in before pt
	// starts, and whatever else iteration iter's pt reads (a table). It
	// returns the topics it created besides in, deleted after the
	// iteration.
	produce func(b *testing.B, c *benchCluster, in, iter string) (created []string)
	// outputs is the number of outputs to wait for.
	outputs int
}

// backlogInput is the input of the stateless benchmarks: benchRecords
// records keyed by benchKey (produceBacklog), one output each.
var backlogInput = benchInput{
	produce: func(b *testing.B, c *benchCluster, in, _ string) []string {
		c.produceBacklog(b, in, benchRecords)
		return nil
	},
	records: benchRecords,
	outputs: benchRecords,
}

// benchThroughput measures records/s of pt over b.N iterations of
// throughputOnce and reports it. records/s counts input records, whatever
// the number of outputs.
func benchThroughput(b *testing.B, c *benchCluster, pt passThrough, input benchInput, check func(b *testing.B, first []byte)) {
	var busy, cpu time.Duration
	for i := range b.N {
		w, u := throughputOnce(b, c, pt, fmt.Sprint(i), input, check)
		busy += w
		cpu += u
	}
	b.ReportMetric(float64(input.records*b.N)/busy.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(input.records*b.N), "cpu-us/record")
}

// benchWarmHeap is how much heap warmHeap has the process touch before
// a timed run.
const benchWarmHeap = 1 << 30

// warmHeap allocates benchWarmHeap bytes, writes to every page and drops
// them, so that the heap a timed run grows into is memory the kernel has
// already handed to the process. Without it, whichever side of a
// comparison happens to grow the heap past what earlier work mapped pays
// a page fault per 4 KiB: the in-process broker alone keeps hundreds of
// MB of records per iteration, which a runner in production never holds,
// and F0's timed part, which follows its recording pass, started warm
// while the runner's stateful benchmarks faulted in 250 MB (about 1 µs
// of CPU per record of a million).
func warmHeap() {
	const chunk = 1 << 20
	held := make([][]byte, 0, benchWarmHeap/chunk)
	for range benchWarmHeap / chunk {
		c := make([]byte, chunk)
		for i := 0; i < len(c); i += 4096 {
			c[i] = 1
		}
		held = append(held, c)
	}
	goruntime.KeepAlive(held)
}

// pageFaults is the number of page faults the process has taken so far
// that needed no I/O: mostly first touches of memory.
func pageFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Minflt
}

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// throughputOnce pre-produces input into a fresh input topic, starts pt,
// and waits until a read_committed reader has read all input.outputs
// outputs. It returns the time from the group's partition assignment
// to the read of the last output, so group join and topic lookups are left
// out; the benchmark timer (ns/op) runs from starting pt, those included.
// It also returns the CPU time the whole process (broker included when
// in-process) used from starting pt to the last output.
func throughputOnce(b *testing.B, c *benchCluster, pt passThrough, iter string, input benchInput, check func(b *testing.B, first []byte)) (wall, cpu time.Duration) {
	b.StopTimer()
	defer b.StartTimer()
	in := fmt.Sprintf("bench-in-%s-%s", benchRunID, iter)
	out := fmt.Sprintf("bench-out-%s-%s", benchRunID, iter)
	c.createTopics(b, benchPartitions, in, out)
	defer c.deleteTopics(in, out, fmt.Sprintf("bench-%s-%s.dlq", benchRunID, iter))
	if created := input.produce(b, c, in, iter); len(created) > 0 {
		defer c.deleteTopics(created...)
	}
	var first []byte
	var once sync.Once
	rd := startReader(b, c.brokers, out, input.outputs, func(r *kgo.Record, _ time.Time) {
		once.Do(func() { first = r.Value })
	})
	warmHeap()
	goruntime.GC()

	stopProfile := profileTimed(b, iter)
	b.StartTimer()
	cpu0, faults0 := cpuTime(), pageFaults()
	assigned, stop := pt(b, in, out, iter)
	err := rd.wait(2 * time.Minute)
	cpu = cpuTime() - cpu0
	if n := pageFaults() - faults0; n > int64(input.records)/100 {
		b.Logf("the timed part took %d page faults (%.3f per record): its heap grew past what warmHeap touched, and its CPU time includes the kernel's first touches", n, float64(n)/float64(input.records))
	}
	stopProfile()
	b.StopTimer()
	defer stop()
	if err != nil {
		b.Fatal(err)
	}
	var at time.Time
	select {
	case at = <-assigned:
	case <-time.After(10 * time.Second):
		b.Fatal("all outputs read but no partition assignment seen")
	}
	if rd.got != input.outputs {
		b.Errorf("read %d outputs, want %d", rd.got, input.outputs)
	}
	if check != nil {
		check(b, first)
	}
	return rd.last.Sub(at), cpu
}

// profiledRuns counts the runs profileTimed profiled.
var profiledRuns atomic.Int64

// profileTimed starts a CPU profile of the timed part of one run when
// SLUICE_BENCH_CPUPROFILE names a directory, into
// <dir>/<benchmark>-<iter>-<n>.prof (n counts the runs of the process, so
// that -count runs can be merged), and returns what stops it. A -cpuprofile of the whole benchmark would also
// hold producing the input and checking every output, which dwarf the
// pipeline in the stateful benchmarks.
func profileTimed(b *testing.B, iter string) func() {
	dir := os.Getenv("SLUICE_BENCH_CPUPROFILE")
	if dir == "" {
		return func() {}
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(b.Name())
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s-%d.prof", name, iter, profiledRuns.Add(1))))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// r0 is the baseline: a minimal franz-go consumer-group pass-through that
// produces every record unchanged and commits the consumed offsets after
// flushing, once per poll. It reads read_committed, as the runtime's
// consumers do in both delivery modes.
func r0(brokers []string) passThrough {
	return func(b *testing.B, in, out, iter string) (<-chan time.Time, func()) {
		assigned := make(chan time.Time, 1)
		var once sync.Once
		opts := append([]kgo.Opt{
			kgo.SeedBrokers(brokers...),
			kgo.ConsumerGroup(fmt.Sprintf("bench-r0-%s-%s", benchRunID, iter)),
			kgo.ConsumeTopics(in),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
				once.Do(func() { assigned <- time.Now() })
			}),
		}, benchClientOpts...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var produceErr atomic.Value
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				produceErr.CompareAndSwap(nil, err)
			}
		}
		done := make(chan error, 1)
		go func() {
			for {
				f := cl.PollFetches(ctx)
				if f.IsClientClosed() || ctx.Err() != nil {
					done <- nil
					return
				}
				if err := f.Err0(); err != nil {
					done <- err
					return
				}
				f.EachRecord(func(r *kgo.Record) {
					cl.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}, promise)
				})
				if err := cl.Flush(ctx); err != nil {
					done <- err
					return
				}
				if err, _ := produceErr.Load().(error); err != nil {
					done <- err
					return
				}
				if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
					done <- err
					return
				}
			}
		}()
		return assigned, func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("R0: %v", err)
			}
			cl.Close()
		}
	}
}

// benchRuntime is a runtime with the benchmarks' client options and the
// default commit interval (100ms).
func benchRuntime(b *testing.B, brokers []string) *runtime.Runtime {
	b.Helper()
	rt, err := runtime.New(runtime.Brokers(brokers...), runtime.KafkaOptions(benchClientOpts...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			b.Errorf("close: %v", err)
		}
	})
	return rt
}

// runner runs the benchmark pipeline in rt with the given delivery.
func runner(rt *runtime.Runtime, delivery string) passThrough {
	return func(b *testing.B, in, out, iter string) (<-chan time.Time, func()) {
		name := fmt.Sprintf("bench-%s-%s", benchRunID, iter)
		p := benchPlan(b, name, in, out, delivery)
		if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "1"}}); err != nil {
			b.Fatal(err)
		}
		return watchAssigned(rt, name, int(benchPartitions)), func() { stopChecked(b, rt, name) }
	}
}

// stopChecked stops every pipeline of rt and fails b if the one named had
// restarted, dead-lettered records or shows an error.
func stopChecked(b *testing.B, rt *runtime.Runtime, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := rt.Status()
	if err := rt.Apply(ctx, nil); err != nil {
		b.Errorf("stopping %s: %v", name, err)
	}
	for _, s := range st {
		if s.Restarts > 0 || s.DeadLetter > 0 || s.Error != "" {
			b.Errorf("pipeline status %+v", s)
		}
	}
}

// watchAssigned sends the time at which pipeline name first held all its
// partitions, polling the runtime's status every millisecond.
func watchAssigned(rt *runtime.Runtime, name string, partitions int) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			for _, s := range rt.Status() {
				if s.Name == name && s.State == runtime.Running && len(s.Partitions) == partitions {
					ch <- time.Now()
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return ch
}

func checkTransformed(b *testing.B, first []byte) {
	if !bytes.Contains(first, []byte(`"kmh":`)) || bytes.Contains(first, []byte(`"note"`)) {
		b.Errorf("output %s is not the mapped record", first)
	}
}

// BenchmarkPassThroughR0 is R0, the baseline of the runner's throughput
// targets: a minimal franz-go consume -> produce pass-through.
func BenchmarkPassThroughR0(b *testing.B) {
	c := newBenchCluster(b)
	benchThroughput(b, c, r0(c.brokers), backlogInput, func(b *testing.B, first []byte) {
		if len(first) != benchValueSize {
			b.Errorf("R0 output %q is not the input", first)
		}
	})
}

// BenchmarkRunnerAtLeastOnce is the runtime running filter + map at least
// once (target: >= 0.8 x R0 records/s).
func BenchmarkRunnerAtLeastOnce(b *testing.B) {
	c := newBenchCluster(b)
	benchThroughput(b, c, runner(benchRuntime(b, c.brokers), "at-least-once"), backlogInput, checkTransformed)
}

// BenchmarkRunnerExactlyOnce is the runtime running filter + map exactly
// once with the default 100ms commit interval (target: >= 0.6 x R0).
func BenchmarkRunnerExactlyOnce(b *testing.B) {
	c := newBenchCluster(b)
	benchThroughput(b, c, runner(benchRuntime(b, c.brokers), "exactly-once"), backlogInput, checkTransformed)
}

// BenchmarkLatencyP99 measures produce-to-output latency under exactly
// once at half of the runner's maximum throughput. The maximum is the one
// of this setup: producer, broker, runner and reader share the machine's
// cores while the latency is measured, so the runner's maximum is measured
// with them all running too: first the backlog rate as
// BenchmarkRunnerExactlyOnce measures it (the best of latencyCalibrations
// backlogs of benchRecords), then the output rate the runner sustains when
// that rate is offered live (maxLiveRate). The benchmark reports both and
// produces at half the live one for latencyRun with a rate-limited
// producer (franz-go defaults but no compression, so up to 10ms of
// linger), each value carrying the time
// it was handed to the producer, while a read_committed reader takes each
// output's latency when its fetch returns. Records of the first
// latencyWarmup are left out (target: p99 <= commit interval + 50ms =
// 150ms). The measured run's topics are short-lived in the in-process
// broker (createShortLivedTopics), so that its log does not fill the
// process's heap. SLUICE_BENCH_LATENCY_RATE (records/s) skips the
// calibration and offers that rate instead, to compare runs at the same
// load.
func BenchmarkLatencyP99(b *testing.B) {
	c := newBenchCluster(b)
	rt := benchRuntime(b, c.brokers)
	b.StopTimer()
	var rate float64
	if v := os.Getenv("SLUICE_BENCH_LATENCY_RATE"); v != "" {
		// A fixed rate, to compare latency at the same load across changes.
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			b.Fatalf("SLUICE_BENCH_LATENCY_RATE %q: want records/s", v)
		}
		rate = r
	} else {
		var best float64
		for i := range latencyCalibrations {
			busy, _ := throughputOnce(b, c, runner(rt, "exactly-once"), fmt.Sprint("max", i), backlogInput, checkTransformed)
			best = max(best, benchRecords/busy.Seconds())
		}
		live := maxLiveRate(b, c, rt, best)
		b.ReportMetric(best, "backlog-max-records/s")
		b.ReportMetric(live, "live-max-records/s")
		rate = live / 2
		// The calibration wrote millions of records to the in-process
		// broker (gigabytes, deleted with their topics since). Without a
		// collection here the heap goal stays that high, and the run
		// below pays for the garbage instead of measuring the runner:
		// the latency run starts from the heap a fresh process has.
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		before := ms.HeapInuse
		debug.FreeOSMemory()
		goruntime.ReadMemStats(&ms)
		b.Logf("after calibration: heap in use %d MiB, %d MiB after a collection", before>>20, ms.HeapInuse>>20)
	}
	var lat []float64 // ms
	for i := range b.N {
		b.StopTimer()
		in := fmt.Sprintf("lat-in-%s-%d", benchRunID, i)
		out := fmt.Sprintf("lat-out-%s-%d", benchRunID, i)
		name := fmt.Sprintf("lat-%s-%d", benchRunID, i)
		c.createShortLivedTopics(b, in, out)
		if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: benchPlan(b, name, in, out, "exactly-once"), Revision: "1"}}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-watchAssigned(rt, name, int(benchPartitions)):
		case <-time.After(time.Minute):
			b.Fatal("pipeline did not get its partitions")
		}
		n := int(rate * latencyRun.Seconds())
		start := time.Now()
		warm := start.Add(latencyWarmup).UnixMicro()
		rd := startReader(b, c.brokers, out, n, func(r *kgo.Record, now time.Time) {
			sent, ok := sentUS(r.Value)
			if !ok {
				b.Errorf("output without sent_us: %s", r.Value)
				return
			}
			if sent >= warm {
				lat = append(lat, float64(now.UnixMicro()-sent)/1000)
			}
		})
		b.StartTimer()
		if err := produceAt(c.prod, in, rate, n, start); err != nil {
			b.Fatal(err)
		}
		err := rd.wait(time.Minute)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := rt.Apply(ctx, nil); err != nil {
			b.Error(err)
		}
		cancel()
		c.deleteTopics(in, out, name+".dlq")
	}
	if len(lat) == 0 {
		b.Fatal("no latency measured")
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(rate, "offered-records/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
}

// maxLiveRate offers rate records/s (the backlog maximum, which a live
// producer on the same cores cannot sustain) for latencyRun and returns the
// rate at which outputs arrived: the most the runner delivers while the
// producer, the broker and a reader compete with it for the cores, as they
// do during the latency measurement.
func maxLiveRate(b *testing.B, c *benchCluster, rt *runtime.Runtime, rate float64) float64 {
	b.Helper()
	in := fmt.Sprintf("live-in-%s", benchRunID)
	out := fmt.Sprintf("live-out-%s", benchRunID)
	name := fmt.Sprintf("live-%s", benchRunID)
	c.createTopics(b, benchPartitions, in, out)
	defer c.deleteTopics(in, out, name+".dlq")
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: benchPlan(b, name, in, out, "exactly-once"), Revision: "1"}}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Apply(ctx, nil); err != nil {
			b.Error(err)
		}
	}()
	select {
	case <-watchAssigned(rt, name, int(benchPartitions)):
	case <-time.After(time.Minute):
		b.Fatal("pipeline did not get its partitions")
	}
	n := int(rate * latencyRun.Seconds())
	start := time.Now()
	rd := startReader(b, c.brokers, out, n, nil)
	if err := produceAt(c.prod, in, rate, n, start); err != nil {
		b.Fatal(err)
	}
	if err := rd.wait(2 * time.Minute); err != nil {
		b.Fatal(err)
	}
	return float64(n) / rd.last.Sub(start).Seconds()
}

// produceAt produces n benchmark records to topic at rate records/s from
// start on, stamping each with the time it is handed to the client, and
// waits for their acks.
func produceAt(cl *kgo.Client, topic string, rate float64, n int, start time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var first atomic.Value
	var wg sync.WaitGroup
	wg.Add(n)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			first.CompareAndSwap(nil, err)
		}
		wg.Done()
	}
	for i := 0; i < n; {
		due := min(n, int(rate*time.Since(start).Seconds()))
		for ; i < due; i++ {
			now := time.Now().UnixMicro()
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: benchKey(i), Value: benchValue(i, now)}, promise)
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	err, _ := first.Load().(error)
	return err
}

// BenchmarkIdlePipelineMemory loads idlePipelines exactly-once pipelines,
// each on its own 1-partition input topic, waits until all run and hold
// their partition, leaves them idle for idleWindow, and reports per
// pipeline (target: <= 1 MiB resident each):
//
//   - rss-bytes/pipeline: the growth of the process's resident memory
//     (VmRSS) from before Apply to its highest value, sampled every second
//     during the idle window without forcing a collection, i.e. what the
//     operating system sees;
//   - rss-after-gc-bytes/pipeline: the same growth at the end of the
//     window after a forced collection and debug.FreeOSMemory;
//   - heap-bytes/pipeline: the growth of the Go heap in use
//     (MemStats.HeapInuse) after that forced collection: live memory;
//   - idle-alloc-bytes/s/pipeline: how fast idle pipelines allocate;
//   - goroutines/pipeline.
//
// With the in-process kfake, the broker lives in the same process: the
// baseline is taken after every topic (input, output, DLQ) exists but
// before Apply, so the topics are left out, but the broker's connections,
// groups and producer state for the pipelines are counted. Set
// KAFKA_BROKERS to measure the runtime alone.
func BenchmarkIdlePipelineMemory(b *testing.B) {
	window := idleWindow
	if v := os.Getenv("SLUICE_BENCH_IDLE_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("SLUICE_BENCH_IDLE_WINDOW: %v", err)
		}
		window = d
	}
	var sum idleCost
	for i := range b.N {
		c := idleMemory(b, strconv.Itoa(i), window)
		sum.rss += c.rss
		sum.rssGC += c.rssGC
		sum.heap += c.heap
		sum.allocRate += c.allocRate
		sum.goroutines += c.goroutines
	}
	n := float64(b.N)
	b.ReportMetric(sum.rss/n, "rss-bytes/pipeline")
	b.ReportMetric(sum.rssGC/n, "rss-after-gc-bytes/pipeline")
	b.ReportMetric(sum.heap/n, "heap-bytes/pipeline")
	b.ReportMetric(sum.allocRate/n, "idle-alloc-bytes/s/pipeline")
	b.ReportMetric(sum.goroutines/n, "goroutines/pipeline")
}

// idleCost is what one idle pipeline costs; see BenchmarkIdlePipelineMemory.
type idleCost struct {
	rss, rssGC, heap, allocRate, goroutines float64
}

func idleMemory(b *testing.B, iter string, window time.Duration) idleCost {
	b.StopTimer()
	defer b.StartTimer()
	var c *benchCluster
	if os.Getenv("KAFKA_BROKERS") != "" {
		c = newBenchCluster(b)
	} else {
		// A cluster of its own, closed before the next iteration measures.
		cl, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		adm, err := kgo.NewClient(kgo.SeedBrokers(cl.ListenAddrs()...))
		if err != nil {
			b.Fatal(err)
		}
		defer adm.Close()
		c = &benchCluster{brokers: cl.ListenAddrs(), adm: kadm.NewClient(adm)}
	}

	names := make([]string, idlePipelines)
	var topics []string
	for j := range names {
		names[j] = fmt.Sprintf("idle-%s-%s-%04d", benchRunID, iter, j)
		topics = append(topics, names[j]+"-in", names[j]+"-out", names[j]+".dlq")
	}
	c.createTopics(b, 1, topics...)
	defer c.deleteTopics(topics...)

	base := memNow(b, true)
	b.StartTimer()
	rt, err := runtime.New(runtime.Brokers(c.brokers...), runtime.KafkaOptions(benchClientOpts...))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			b.Errorf("close: %v", err)
		}
	}()
	ps := make([]runtime.Pipeline, len(names))
	for j, name := range names {
		ps[j] = runtime.Pipeline{Plan: benchPlan(b, name, name+"-in", name+"-out", "exactly-once"), Revision: "1"}
	}
	if err := rt.Apply(context.Background(), ps); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ready := 0
		for _, s := range rt.Status() {
			if s.State == runtime.Running && len(s.Partitions) == 1 {
				ready++
			}
		}
		if ready == len(names) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d pipelines running after 2m", ready, len(names))
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()

	start := memNow(b, false)
	peak := start.rss
	for end := time.Now().Add(window); time.Now().Before(end); {
		time.Sleep(time.Second)
		peak = max(peak, memNow(b, false).rss)
	}
	idle := memNow(b, false)
	gc := memNow(b, true)
	n := float64(len(names))
	for _, s := range rt.Status() {
		if s.State != runtime.Running || s.Restarts > 0 {
			b.Errorf("after idling: %+v", s)
			break
		}
	}
	return idleCost{
		rss:        (peak - base.rss) / n,
		rssGC:      (gc.rss - base.rss) / n,
		heap:       (gc.heap - base.heap) / n,
		allocRate:  (idle.alloc - start.alloc) / idle.at.Sub(start.at).Seconds() / n,
		goroutines: (gc.goroutines - base.goroutines) / n,
	}
}

// memSample is the process's memory at one moment.
type memSample struct {
	at         time.Time
	rss        float64 // VmRSS, bytes
	heap       float64 // MemStats.HeapInuse
	alloc      float64 // MemStats.TotalAlloc
	goroutines float64
}

// memNow reads the process's resident memory (VmRSS of /proc/self/status),
// the Go heap in use, the bytes allocated so far and the goroutine count;
// with collect, it first collects garbage and returns freed memory to the
// operating system.
func memNow(b *testing.B, collect bool) memSample {
	b.Helper()
	if collect {
		goruntime.GC()
		debug.FreeOSMemory()
	}
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	m := memSample{at: time.Now(), heap: float64(ms.HeapInuse), alloc: float64(ms.TotalAlloc), goroutines: float64(goruntime.NumGoroutine())}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatalf("reading VmRSS: %v", err)
	}
	for line := range strings.SplitSeq(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", v, err)
			}
			m.rss = kb * 1024
		}
	}
	if m.rss == 0 {
		b.Fatal("no VmRSS in /proc/self/status")
	}
	return m
}
