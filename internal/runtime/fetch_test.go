package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// TestFetchSizes checks what a pipeline's consumer asks the broker for in
// one fetch: the runtime's bounds by default (runtime.DefaultFetchMaxBytes),
// and what KafkaOptions says when it sets them. It watches the requests in
// kfake, so it runs on the in-process broker only; lag tracking is off, so
// that the pipeline's client is the only one fetching.
func TestFetchSizes(t *testing.T) {
	for _, tc := range []struct {
		name           string
		opts           []runtime.Opt
		total, perPart int32
	}{
		{"defaults", nil, runtime.DefaultFetchMaxBytes, runtime.DefaultFetchMaxPartitionBytes},
		{"KafkaOptions", []runtime.Opt{runtime.KafkaOptions(kgo.FetchMaxBytes(4<<20), kgo.FetchMaxPartitionBytes(64<<10))}, 4 << 20, 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			type sizes struct{ total, perPart int32 }
			var mu sync.Mutex
			var seen []sizes
			c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				f := req.(*kmsg.FetchRequest)
				mu.Lock()
				defer mu.Unlock()
				for _, tp := range f.Topics {
					for _, p := range tp.Partitions {
						seen = append(seen, sizes{f.MaxBytes, p.PartitionMaxBytes})
					}
				}
				return nil, nil, false
			})
			brokers := c.ListenAddrs()
			kafkatest.CreateTopic(t, brokers, "fetch-in", 2)
			rt := newRuntime(t, brokers, append([]runtime.Opt{runtime.LagInterval(-1)}, tc.opts...)...)
			p := runtime.Pipeline{Revision: "r1", Plan: plan(t, "fetch", `  source: {topic: fetch-in}
  steps:
    - map: {n: n}
  sink: {topic: fetch-out}
`)}
			if err := rt.Apply(context.Background(), []runtime.Pipeline{p}); err != nil {
				t.Fatal(err)
			}
			waitAssigned(t, rt, "fetch", 2, 30*time.Second)
			kafkatest.Eventually(t, 30*time.Second, "a fetch of both partitions", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(seen) >= 2
			})
			mu.Lock()
			defer mu.Unlock()
			for _, s := range seen {
				if s.total != tc.total || s.perPart != tc.perPart {
					t.Fatalf("a fetch asked for %d bytes, %d per partition; want %d and %d", s.total, s.perPart, tc.total, tc.perPart)
				}
			}
		})
	}
}
