package runtime_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/sketch"
	"github.com/sluicehq/sluice/observability"
)

// A producer sends 30% of its records with one key: that key's hash is the
// pipeline's top hot key, on the partition the key hashes to, on this
// runner's task; and once the pipeline has caught up its lag view shows
// every partition committed with zero lag.
func TestLagHotKeyThroughRuntime(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.Topic(t, "hot-in")
	kafkatest.CreateTopic(t, brokers, in, 4)
	p := plan(t, "hot", `  source: {topic: `+in+`}
  steps:
    - map: {n: n}
  sink: {topic: `+in+`-out}
`)
	rt := newRuntime(t, brokers, runtime.LagInterval(50*time.Millisecond))
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
		t.Fatal(err)
	}
	var rs []*kgo.Record
	for i := range 1000 {
		key := fmt.Sprintf("user-%d", i)
		if i%10 < 3 {
			key = "whale"
		}
		rs = append(rs, &kgo.Record{Topic: in, Key: []byte(key), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	cl := kafkatest.Client(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := cl.ProduceSync(ctx, rs...)
	if err := results.FirstErr(); err != nil {
		t.Fatal(err)
	}
	var whalePartition int32 = -1
	for _, r := range results {
		if string(r.Record.Key) == "whale" {
			whalePartition = r.Record.Partition
		}
	}
	wantHash := fmt.Sprintf("%016x", sketch.Hash64([]byte("whale")))
	var lag *observability.PipelineLag
	kafkatest.Eventually(t, 30*time.Second, "the hot key in the lag view, and the pipeline caught up", func() bool {
		st := rt.Status()
		if len(st) != 1 || st[0].Lag == nil || len(st[0].Lag.HotKeys) == 0 {
			return false
		}
		lag = st[0].Lag
		return lag.Stages[0].Lag == 0 && len(lag.Stages[0].Partitions) == 4 && lag.Stages[0].Partitions[0].Committed >= 0
	})
	top := lag.HotKeys[0]
	if top.Hash != wantHash || top.Partition != whalePartition || top.Topic != in || top.Stage != 0 {
		t.Fatalf("top hot key %+v, want hash %s on partition %d", top, wantHash, whalePartition)
	}
	if top.Share < 0.3 {
		t.Errorf("the whale has %.2f of its task's records; it sent 30%% of all, so at least that of its partition", top.Share)
	}
	for _, pl := range lag.Stages[0].Partitions {
		if !pl.Owned || pl.Lag != 0 || pl.TimeLagMs != 0 {
			t.Errorf("partition %+v: want owned by the only runner, caught up", pl)
		}
	}
	if lag.Status != observability.StatusOK {
		t.Errorf("status %s, want OK", lag.Status)
	}
}

// namesRegisterer records the names of every series registered with it.
type namesRegisterer struct {
	prometheus.Registerer
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r namesRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return r.Registerer.Register(c)
}

// The dashboards and alert rules in observability query only series a
// runtime registers: a renamed metric fails here, not in someone's Grafana.
func TestLagDashboardSeriesExist(t *testing.T) {
	reg := namesRegisterer{prometheus.NewRegistry(), map[string]bool{}}
	newRuntime(t, kafkatest.Brokers(t), runtime.Registerer(reg), runtime.LagInterval(-1))
	series, err := observability.QueriedSeries()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range series {
		if !reg.names[s] {
			t.Errorf("observability's files query %s, which the runtime does not register", s)
		}
	}
}

// BenchmarkLagTrackingOverhead compares the exactly-once benchmark
// pipeline with lag, skew and hot-key tracking off and on (sampling every
// second, ten times the default rate) in one process on one cluster, in
// interleaved runs: each round runs both, alternating which goes first
// (off/on, on/off, ...), so drift of a shared machine falls on both
// sides. Per round it takes the ratio on/off of the throughput and of the
// CPU per record, and reports the median and the range of each over the
// rounds (target: throughput ratio >= 0.97). Run with -benchtime 1x;
// LAG_OVERHEAD_ROUNDS sets the rounds (default 16).
func BenchmarkLagTrackingOverhead(b *testing.B) {
	rounds := 16
	if v, err := strconv.Atoi(os.Getenv("LAG_OVERHEAD_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	c := newBenchCluster(b)
	newRT := func(opts ...runtime.Opt) *runtime.Runtime {
		rt, err := runtime.New(append([]runtime.Opt{runtime.Brokers(c.brokers...), runtime.KafkaOptions(benchClientOpts...)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = rt.Close(ctx)
		})
		return rt
	}
	off := runner(newRT(runtime.LagInterval(-1), runtime.HotKeys(-1, 0)), "exactly-once")
	on := runner(newRT(runtime.LagInterval(time.Second)), "exactly-once")
	var rate, cpu []float64
	var offRates, onRates []float64
	for range b.N {
		for r := range rounds {
			type result struct{ rate, cpu float64 }
			run := func(pt passThrough, tag string) result {
				wall, u := throughputOnce(b, c, pt, fmt.Sprintf("%s-%d", tag, r), backlogInput, checkTransformed)
				return result{benchRecords / wall.Seconds(), float64(u.Nanoseconds()) / 1e3 / benchRecords}
			}
			var a, z result
			if r%2 == 0 {
				a = run(off, "off")
				z = run(on, "on")
			} else {
				z = run(on, "on")
				a = run(off, "off")
			}
			rate = append(rate, z.rate/a.rate)
			cpu = append(cpu, z.cpu/a.cpu)
			offRates, onRates = append(offRates, a.rate), append(onRates, z.rate)
			b.Logf("round %d: off %.0f records/s %.2f cpu-us/record, on %.0f records/s %.2f cpu-us/record: ratio %.3f, cpu ratio %.3f",
				r, a.rate, a.cpu, z.rate, z.cpu, z.rate/a.rate, z.cpu/a.cpu)
		}
	}
	med := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		if n := len(s); n%2 == 1 {
			return s[n/2]
		} else {
			return (s[n/2-1] + s[n/2]) / 2
		}
	}
	b.ReportMetric(med(rate), "on/off-median")
	b.ReportMetric(slices.Min(rate), "on/off-min")
	b.ReportMetric(slices.Max(rate), "on/off-max")
	b.ReportMetric(med(cpu), "cpu-on/off-median")
	b.ReportMetric(slices.Min(cpu), "cpu-on/off-min")
	b.ReportMetric(slices.Max(cpu), "cpu-on/off-max")
	b.ReportMetric(med(offRates), "off-records/s")
	b.ReportMetric(med(onRates), "on-records/s")
}
