package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/observability"
)

// A watch samples a group no pipeline of the runtime runs: given no
// topics it takes those the group committed offsets for; its view is
// marked as the monitor's, counts the records past the committed offsets,
// and, nobody committing, turns STOPPED. Replacing the watches stops it.
func TestLagWatch(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "watched", 1)
	var rs []*kgo.Record
	for i := range 40 {
		rs = append(rs, &kgo.Record{Topic: "watched", Value: []byte{byte(i)}})
	}
	kafkatest.Produce(t, brokers, rs...)
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "watched", Partition: 0, At: 10, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(context.Background(), "gone-group", offs); err != nil {
		t.Fatal(err)
	}

	rt := newRuntime(t, brokers, runtime.LagInterval(100*time.Millisecond), runtime.LagWindow(3))
	rt.SetWatches(context.Background(), []runtime.Watch{{Name: "gone", Group: "gone-group"}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		ws := rt.Watches()
		if len(ws) != 1 {
			t.Fatalf("watches %+v", ws)
		}
		l := ws[0].Lag
		if l != nil && l.Source == observability.SourceMonitor && len(l.Stages) == 1 && l.Stages[0].Topic == "watched" &&
			l.Stages[0].Lag == 30 && l.Status == observability.StatusStopped && l.EventAgeMs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch view %+v", l)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rt.SetWatches(context.Background(), nil)
	if ws := rt.Watches(); len(ws) != 0 {
		t.Fatalf("watches left: %+v", ws)
	}
}

// A stage whose topic does not exist yet (a new pipeline's repartition
// topic before it starts) is left out of a sample, not a failure of the
// whole sample: the stage that exists is still seen (its partition has
// no commit yet, and says so).
func TestLagWatchMissingStageTopic(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "present", 1)
	var rs []*kgo.Record
	for i := range 12 {
		rs = append(rs, &kgo.Record{Topic: "present", Value: []byte{byte(i)}})
	}
	kafkatest.Produce(t, brokers, rs...)
	rt := newRuntime(t, brokers, runtime.LagInterval(100*time.Millisecond), runtime.LagWindow(3))
	rt.SetWatches(context.Background(), []runtime.Watch{{Name: "new", Group: "new-group", Topics: []string{"present", "not-created-yet"}}})
	defer rt.SetWatches(context.Background(), nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ws := rt.Watches()
		if l := ws[0].Lag; l != nil && len(l.Stages) >= 1 && l.Stages[0].Topic == "present" &&
			len(l.Stages[0].Partitions) == 1 && l.Stages[0].Partitions[0].End == 12 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch view %+v", ws[0].Lag)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
