package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// Fan-out: a route case with also: true writes a copy of a record to its
// topic and lets it go on to the sink, both in the input's transaction.
// Every view reaches the sink once and every slow one the slow topic
// once. The inputs are all produced before the pipeline starts, so its
// polls are large and go through the parallel workers; a last, slow
// sentinel is read in both topics, which have one partition, so
// everything before it has been read and a duplicate would show.
func TestRouteAlsoFansOutExactlyOnce(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.Topic(t, "views")
	kafkatest.CreateTopic(t, brokers, in, 1)
	const n = 300 // the sentinel is id n
	var recs []*kgo.Record
	for i := 0; i <= n; i++ {
		ms := i * 7
		if i == n {
			ms = 5000
		}
		recs = append(recs, &kgo.Record{Topic: in, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"id":%d,"ms":%d}`, i, ms))})
	}
	kafkatest.Produce(t, brokers, recs...)
	rt := newRuntime(t, brokers)
	p := runtime.Pipeline{Revision: "r1", Plan: plan(t, "fanout", `  source: {topic: `+in+`}
  steps:
    - route:
        - {when: ms > 1000, to: `+in+`.slow, also: true}
  sink: {topic: `+in+`.clean}
`)}
	if err := rt.Apply(context.Background(), []runtime.Pipeline{p}); err != nil {
		t.Fatal(err)
	}
	clean := readUntilID(t, brokers, in+".clean", n)
	slow := readUntilID(t, brokers, in+".slow", n)
	for i := 0; i <= n; i++ {
		if clean[i] != 1 {
			t.Errorf("id %d reached the sink %d times, want once", i, clean[i])
		}
		want := 0
		if i*7 > 1000 || i == n {
			want = 1
		}
		if slow[i] != want {
			t.Errorf("id %d reached the slow topic %d times, want %d", i, slow[i], want)
		}
	}
}

// readUntilID reads topic from the start with read_committed until it has
// read the record with id last, and counts the records of each id.
func readUntilID(t *testing.T, brokers []string, topic string, last int) map[int]int {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	counts := map[int]int{}
	for counts[last] == 0 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: the record with id %d never came (read %d ids)", topic, last, len(counts))
		}
		for _, r := range f.Records() {
			var v struct{ ID int }
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("%s: %q: %v", topic, r.Value, err)
			}
			counts[v.ID]++
		}
	}
	return counts
}
