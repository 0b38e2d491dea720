package changelog_test

// Benchmarks of restoring a store from its changelog against a plain
// consume of the same changelog partition (the target: restore >= 0.8 x
// consume records/s), in the style of internal/runtime/bench_test.go.
//
// The changelog is written once, in the parent benchmark, and every
// sub-benchmark reads the same partition of the same broker (kfake
// in-process unless KAFKA_BROKERS is set): restoreBenchRecords records of
// ~100-byte values over restoreBenchKeys keys, in transactions of
// restoreBenchTxn records as a task writes them, no compression. records/s
// counts the data records of the range (control markers are not counted)
// per second of reading, from creating the reading client to the last
// record. The disk store (package pebblestore) is measured beside the
// memory store against the same baseline. It is an external test (package
// changelog_test) because statetest, which writes the changelog, imports
// this package; bench/targets.json names its sub-benchmarks.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/state"
	"github.com/sluicehq/sluice/internal/state/changelog"
	"github.com/sluicehq/sluice/internal/state/pebblestore"
	"github.com/sluicehq/sluice/internal/state/statetest"
)

const (
	restoreBenchRecords = 200_000
	restoreBenchKeys    = 10_000
	restoreBenchTxn     = 5_000
	restoreBenchValue   = 100
)

func BenchmarkRestore(b *testing.B) {
	cl := statetest.NewChangelog(b)
	ctx := context.Background()
	value := func(i int) []byte {
		v := fmt.Appendf(make([]byte, 0, restoreBenchValue), `{"count":%d,"sum":%d,"last":"`, i, i*3)
		for len(v) < restoreBenchValue-2 {
			v = append(v, 'x')
		}
		return append(v, `"}`...)
	}
	for start := 0; start < restoreBenchRecords; start += restoreBenchTxn {
		changes := make([]state.Change, 0, restoreBenchTxn)
		for i := start; i < start+restoreBenchTxn; i++ {
			changes = append(changes, state.Change{Key: fmt.Appendf(nil, "key-%05d", i%restoreBenchKeys), Value: value(i)})
		}
		cl.Write(b, changes, true)
	}
	r, err := changelog.NewRestorer(changelog.Brokers(cl.Brokers...), changelog.KafkaOptions(kgo.ProducerBatchCompression(kgo.NoCompression())))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)

	report := func(b *testing.B, busy time.Duration) {
		b.ReportMetric(float64(restoreBenchRecords*b.N)/busy.Seconds(), "records/s")
	}

	// consume is the baseline: a direct-partition read_committed consumer
	// that counts records until it has them all.
	b.Run("consume", func(b *testing.B) {
		var busy time.Duration
		for range b.N {
			t0 := time.Now()
			c, err := kgo.NewClient(kgo.SeedBrokers(cl.Brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
				kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cl.Topic: {statetest.Partition: kgo.NewOffset().AtStart()}}))
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for n < restoreBenchRecords {
				fs := c.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					b.Fatal(err)
				}
				n += fs.NumRecords()
			}
			busy += time.Since(t0)
			c.Close()
		}
		report(b, busy)
	})
	restore := func(b *testing.B, open func(b *testing.B) state.Committer) {
		var busy time.Duration
		for range b.N {
			b.StopTimer()
			dst := open(b)
			b.StartTimer()
			t0 := time.Now()
			res, err := r.Restore(ctx, cl.Topic, statetest.Partition, 0, dst, nil)
			busy += time.Since(t0)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if res.Applied != restoreBenchRecords {
				b.Fatalf("applied %d records", res.Applied)
			}
			_ = dst.Close()
			b.StartTimer()
		}
		report(b, busy)
	}
	b.Run("memory", func(b *testing.B) {
		restore(b, func(*testing.B) state.Committer { return state.NewMemory() })
	})
	b.Run("pebble", func(b *testing.B) {
		restore(b, func(b *testing.B) state.Committer {
			p, err := pebblestore.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return p
		})
	})
}
