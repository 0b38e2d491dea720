package runtime

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/observability"
)

// lagScenario is a topic, a consumer group whose commits the test makes by
// hand, and a tracker on a clock the test moves: every step is one sample,
// 10 s after the last, so statuses follow from the offsets alone.
type lagScenario struct {
	t        *testing.T
	brokers  []string
	topic    string
	group    string
	adm      *kadm.Client
	prod     *kgo.Client
	lt       *lagTracker
	clock    time.Time
	holding  bool                       // the consumer holds its partitions (a live member)
	produced map[int32][]*kgo.Record    // by partition, in offset order
	last     *observability.PipelineLag // the last sample
}

func newLagScenario(t *testing.T) *lagScenario {
	brokers := kafkatest.Brokers(t)
	sc := &lagScenario{t: t, brokers: brokers, topic: kafkatest.Topic(t, "lag-in"), group: "lag-group",
		clock: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), produced: map[int32][]*kgo.Record{}}
	kafkatest.CreateTopic(t, brokers, sc.topic, 2)
	sc.adm = kadm.NewClient(kafkatest.Client(t, brokers))
	sc.prod = kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	sc.lt = &lagTracker{
		cfg:    lagConfig{interval: 10 * time.Second, window: 5, now: func() time.Time { return sc.clock }}.withDefaults(),
		group:  sc.group,
		stages: []lagStage{{index: 0, topic: sc.topic}},
		admin:  sc.adm,
		owned:  func(string, int32) bool { return sc.holding },
		name:   "lag-test",
		reader: newHeadReader(brokers, nil),
	}
	sc.lt.init()
	t.Cleanup(sc.lt.reader.close)
	return sc
}

// produce writes n records to partition, stamped with the clock (and a
// millisecond per record, so each has its own timestamp).
func (sc *lagScenario) produce(partition int32, n int) {
	sc.t.Helper()
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Topic: sc.topic, Partition: partition, Key: []byte("k"), Value: []byte("v"),
			Timestamp: sc.clock.Add(time.Duration(i) * time.Millisecond)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sc.prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		sc.t.Fatal(err)
	}
	sc.produced[partition] = append(sc.produced[partition], rs...)
}

// commit sets the group's committed offset of partition (an empty group
// takes commits from the admin API).
func (sc *lagScenario) commit(partition int32, offset int64) {
	sc.t.Helper()
	var os kadm.Offsets
	os.AddOffset(sc.topic, partition, offset, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := sc.adm.CommitOffsets(ctx, sc.group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		sc.t.Fatal(err)
	}
}

// sample moves the clock 10 s and samples.
func (sc *lagScenario) sample() observability.PipelineLag {
	sc.t.Helper()
	sc.clock = sc.clock.Add(10 * time.Second)
	if err := sc.lt.sample(context.Background()); err != nil {
		sc.t.Fatal(err)
	}
	sc.last = sc.lt.view()
	return *sc.last
}

func (sc *lagScenario) partition(p int32) observability.PartitionLag {
	sc.t.Helper()
	for _, pl := range sc.last.Stages[0].Partitions {
		if pl.Partition == p {
			return pl
		}
	}
	sc.t.Fatalf("partition %d not in the sample: %+v", p, sc.last.Stages[0])
	return observability.PartitionLag{}
}

// A consumer that falls behind while producers go on is WARNING; one that
// holds its partition without moving is STALLED; one gone is STOPPED; and
// catching up is OK again. Partition 1 gets nothing after its first
// records and stays idle with zero lag throughout. The time lag is always
// the clock minus the timestamp of the record at the committed offset,
// exactly as produced.
func TestLagStoppedConsumerOnKfake(t *testing.T) {
	sc := newLagScenario(t)
	sc.produce(1, 5)
	sc.commit(1, 5)
	sc.commit(0, 0)
	sc.holding = true
	committed := int64(0)
	checkTimeLag := func() {
		t.Helper()
		p0 := sc.partition(0)
		want := sc.clock.Sub(sc.produced[0][committed].Timestamp).Milliseconds()
		if p0.TimeLagMs != want {
			t.Fatalf("time lag %d ms, want %d (clock minus the timestamp of record %d)", p0.TimeLagMs, want, committed)
		}
		if p1 := sc.partition(1); p1.State != observability.StateIdle && sc.lt.parts[topicPartition{sc.topic, 1}] != nil {
			if p1.Lag != 0 || p1.TimeLagMs != 0 {
				t.Fatalf("idle partition 1: %+v", p1)
			}
		}
	}

	// Falling behind: 100 records in, 50 committed per step.
	for i := range 6 {
		sc.produce(0, 100)
		if i > 0 {
			committed += 50
			sc.commit(0, committed)
		}
		sc.sample()
		checkTimeLag()
	}
	if p0 := sc.partition(0); p0.Status != observability.StatusWarning || p0.Lag != 600-committed {
		t.Fatalf("falling behind: %+v, want WARNING with lag %d", p0, 600-committed)
	}
	if p1 := sc.partition(1); p1.State != observability.StateIdle || p1.Lag != 0 || p1.TimeLagMs != 0 || p1.Status != observability.StatusOK {
		t.Fatalf("partition 1: %+v, want idle, OK, zero lag", p1)
	}

	// Held but not moving: STALLED once the whole window has one offset.
	var p0 observability.PartitionLag
	for range 5 {
		sc.produce(0, 100)
		sc.sample()
		checkTimeLag()
		p0 = sc.partition(0)
	}
	if p0.Status != observability.StatusStalled {
		t.Fatalf("held without commits: %+v, want STALLED", p0)
	}
	lagBefore, ageBefore := p0.Lag, p0.TimeLagMs

	// Gone: no member, no commits. STOPPED once the time since the last
	// commit exceeds the window's span and the recent ends are past it.
	sc.holding = false
	for range 6 {
		sc.produce(0, 100)
		sc.sample()
		checkTimeLag()
	}
	p0 = sc.partition(0)
	if p0.Status != observability.StatusStopped || p0.Lag <= lagBefore || p0.TimeLagMs <= ageBefore {
		t.Fatalf("stopped: %+v, want STOPPED with lag and time lag still growing", p0)
	}
	if sc.last.Status != observability.StatusStopped || sc.last.Slowest == nil || sc.last.Slowest.Stage != 0 {
		t.Fatalf("pipeline roll-up %+v, slowest %+v", sc.last, sc.last.Slowest)
	}

	// Back and caught up: OK, lag 0.
	sc.holding = true
	end := int64(len(sc.produced[0]))
	sc.commit(0, end)
	sc.sample()
	if p0 = sc.partition(0); p0.Status != observability.StatusOK || p0.Lag != 0 || p0.TimeLagMs != 0 {
		t.Fatalf("caught up: %+v", p0)
	}
}

// The record at the committed offset is read once per committed offset:
// samples that find the offset unchanged use the cached timestamp.
func TestLagHeadReadOncePerOffset(t *testing.T) {
	sc := newLagScenario(t)
	sc.produce(0, 10)
	sc.commit(0, 3)
	sc.sample()
	h := sc.lt.heads[topicPartition{sc.topic, 0}]
	if h.offset != 3 || !h.ts.Equal(sc.produced[0][3].Timestamp) {
		t.Fatalf("head %+v, want offset 3 at %v", h, sc.produced[0][3].Timestamp)
	}
	// Poison the cache: a second sample at the same offset must not read
	// the topic again, so it reports the poisoned timestamp.
	poisoned := h
	poisoned.ts = h.ts.Add(-time.Hour)
	sc.lt.heads[topicPartition{sc.topic, 0}] = poisoned
	sc.sample()
	if got, want := sc.partition(0).TimeLagMs, sc.clock.Sub(poisoned.ts).Milliseconds(); got != want {
		t.Fatalf("time lag %d, want %d from the cached head", got, want)
	}
	sc.commit(0, 4)
	sc.sample()
	if got, want := sc.partition(0).TimeLagMs, sc.clock.Sub(sc.produced[0][4].Timestamp).Milliseconds(); got != want {
		t.Fatalf("after a commit: time lag %d, want %d read anew", got, want)
	}
}

// A partition the group never committed says so instead of showing the
// whole topic as lag.
func TestLagNoCommitOnKfake(t *testing.T) {
	sc := newLagScenario(t)
	sc.produce(0, 10)
	sc.sample()
	if p0 := sc.partition(0); p0.State != observability.StateNoCommit || p0.Lag != 0 || p0.Status != observability.StatusOK {
		t.Fatalf("got %+v, want no-commit with zero lag", p0)
	}
}

// A two-stage pipeline whose second stage (its repartition topic) is
// throttled: the pipeline is WARNING, the slowest stage is the second, and
// the end-to-end event age (records keep their event time through the
// repartition topic) is larger than the first stage's time lag.
func TestLagTwoStagesSlowestOnKfake(t *testing.T) {
	sc := newLagScenario(t)
	repart := kafkatest.Topic(t, "lag-repartition")
	kafkatest.CreateTopic(t, sc.brokers, repart, 2)
	sc.lt.stages = append(sc.lt.stages, lagStage{index: 1, topic: repart})
	sc.holding = true
	commitTo := func(topic string, p int32, off int64) {
		var os kadm.Offsets
		os.AddOffset(topic, p, off, -1)
		if resp, err := sc.adm.CommitOffsets(context.Background(), sc.group, os); err != nil || resp.Error() != nil {
			t.Fatal(err, resp.Error())
		}
	}
	var second []*kgo.Record
	for p := range int32(2) {
		commitTo(sc.topic, p, 0)
		commitTo(repart, p, 0)
	}
	for i := range 8 {
		// Stage 0 keeps up: everything produced is committed and handed on
		// to the repartition topic with its event time.
		sc.produce(0, 50)
		commitTo(sc.topic, 0, int64(len(sc.produced[0])))
		var rs []*kgo.Record
		for _, r := range sc.produced[0][i*50:] {
			rs = append(rs, &kgo.Record{Topic: repart, Partition: 0, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp})
		}
		if err := sc.prod.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		second = append(second, rs...)
		// Stage 1 is throttled: 20 of every 50.
		if i > 0 {
			commitTo(repart, 0, int64(20*i))
		}
		sc.sample()
	}
	l := sc.last
	if l.Status != observability.StatusWarning || l.Slowest == nil || l.Slowest.Stage != 1 || l.Slowest.Topic != repart {
		t.Fatalf("pipeline %s, slowest %+v: want WARNING on stage 1", l.Status, l.Slowest)
	}
	if l.Stages[0].Status != observability.StatusOK || l.Stages[0].Lag != 0 {
		t.Fatalf("stage 0 %+v: want caught up", l.Stages[0])
	}
	want := sc.clock.Sub(second[20*7].Timestamp).Milliseconds()
	if l.EventAgeMs != want || l.EventAgeMs <= l.Stages[0].MaxTimeLagMs {
		t.Fatalf("event age %d ms (stage 0 %d ms), want %d: the event time of repartition record %d", l.EventAgeMs, l.Stages[0].MaxTimeLagMs, want, 20*7)
	}
	if !strings.Contains(l.Slowest.Reason, "partition 0") {
		t.Errorf("reason %q does not name the partition", l.Slowest.Reason)
	}
}

// BenchmarkLagObserve is the per-record cost tracking adds to a poll: one
// hash and one sketch update (reported as ns/record; compare with the
// runner's per-record cost from BenchmarkRunnerExactlyOnce, and see
// BenchmarkLagTrackingOverhead for the same-run comparison).
func BenchmarkLagObserve(b *testing.B) {
	lt := &lagTracker{cfg: lagConfig{}.withDefaults()}
	lt.init()
	var recs []*kgo.Record
	for i := range 1000 {
		key := fmt.Appendf(nil, "vehicle-%07d", (i*7919)%10000)
		if i%10 < 3 {
			key = []byte("vehicle-hot")
		}
		recs = append(recs, &kgo.Record{Topic: "in", Partition: 0, Offset: int64(i), Key: key})
	}
	f := kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "in", Partitions: []kgo.FetchPartition{{Partition: 0, Records: recs}}}}}}
	stageOf := map[string]int{"in": 0}
	b.ResetTimer()
	for range b.N {
		lt.observe(f, stageOf)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
