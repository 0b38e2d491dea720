package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// A stateful pipeline's status and lag view carry the size of every store
// of the tasks the runner holds: the dedupe step keeps an entry per id it
// has seen, so its stores hold one key per record (and its watermark per
// partition); the disk store's estimate, from its
// tables and the writes since the last flush, agrees.
func TestLagStoreSizes(t *testing.T) {
	for _, store := range []string{"memory", "disk"} {
		t.Run(store, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			in, out := "sz-in-"+store, "sz-out-"+store
			kafkatest.CreateTopic(t, brokers, in, 2)
			name := "sizes-" + store
			p := plan(t, name, countsPipeline(name, in, out, store, "exactly-once"))
			rt := newRuntime(t, brokers, runtime.StateDir(t.TempDir()), runtime.LagInterval(200*time.Millisecond))
			if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
				t.Fatal(err)
			}
			const n = 400
			kafkatest.Produce(t, brokers, countsInput(in, 0, n)...)
			deadline := time.Now().Add(30 * time.Second)
			for {
				st := statusOf(t, rt, name)
				var keys, bytes int64
				parts := map[int32]bool{}
				for _, s := range st.Stores {
					if s.Step == "dedupe" {
						keys += s.Keys
						bytes += s.Bytes
						parts[s.Partition] = true
						if s.Kind != store || s.Estimated != (store == "disk") {
							t.Fatalf("store %+v", s)
						}
					}
				}
				inLag := st.Lag != nil && len(st.Lag.Stores) == len(st.Stores)
				if keys >= n && keys <= n+10 && len(parts) == 2 && bytes >= n && inLag {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("dedupe stores hold %d keys (%d bytes) over %d partitions, in the lag view: %v; want %d keys over 2\n%+v", keys, bytes, len(parts), inLag, n, st.Stores)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
