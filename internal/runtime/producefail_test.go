package runtime_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// TestFailedOutputIsNotCommitted produces an output the broker refuses
// (larger than its topic's max.message.bytes) right before the batch ends:
// with a commit interval of a millisecond, its error comes back while the
// batch is being flushed. The batch must not commit the input's offsets
// without the output, which would lose the record (exactly once did,
// committing a transaction without any of its three outputs).
func TestFailedOutputIsNotCommitted(t *testing.T) {
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		t.Run(delivery, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			in := kafkatest.Topic(t, "big")
			kafkatest.CreateTopic(t, brokers, in, 1)
			adm := kadm.NewClient(kafkatest.Client(t, brokers))
			maxBytes := "1024"
			if _, err := adm.CreateTopic(context.Background(), 1, 1, map[string]*string{"max.message.bytes": &maxBytes}, in+".out"); err != nil {
				t.Fatal(err)
			}
			rt := newRuntime(t, brokers, runtime.CommitInterval(time.Millisecond))
			p := runtime.Pipeline{Revision: "r1", Plan: plan(t, "big-output", "  source: {topic: "+in+"}\n  delivery: "+delivery+
				"\n  steps:\n    - filter: n >= 0\n  sink: {topic: "+in+".out}\n")}
			if err := rt.Apply(context.Background(), []runtime.Pipeline{p}); err != nil {
				t.Fatal(err)
			}
			waitAssigned(t, rt, "big-output", 1, 30*time.Second)
			// Random hex: the client compresses batches, and must not get
			// this one under the limit.
			pad := make([]byte, 4096)
			rand.Read(pad)
			kafkatest.Produce(t, brokers,
				&kgo.Record{Topic: in, Value: []byte(`{"n": 0}`)},
				&kgo.Record{Topic: in, Value: []byte(`{"n": 1, "pad": "` + hex.EncodeToString(pad) + `"}`)},
				&kgo.Record{Topic: in, Value: []byte(`{"n": 2}`)},
			)
			// The pipeline fails on the record and tries again, each time
			// from the last committed offset (or, losing it, goes on).
			for deadline := time.Now().Add(20 * time.Second); statusOf(t, rt, "big-output").Restarts < 3 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			offsets, err := adm.FetchOffsets(context.Background(), "sluice-big-output")
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := offsets.Lookup(in, 0); ok && o.At > 1 {
				t.Errorf("the group committed offset %d, past the record whose output failed (offset 1)", o.At)
			}
			if s := statusOf(t, rt, "big-output"); !strings.Contains(s.Error, "MESSAGE_TOO_LARGE") {
				t.Errorf("the pipeline's error is %q, want the broker's MESSAGE_TOO_LARGE", s.Error)
			}
		})
	}
}
