package changelog_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/state"
	"github.com/sluicehq/sluice/internal/state/changelog"
	"github.com/sluicehq/sluice/internal/state/statetest"
)

// The restore of a store of each kind from a changelog with committed and
// aborted transactions is in statetest's conformance suite (memory:
// TestMemoryConformance; disk: pebblestore's TestConformance), and the
// task's lifecycle on a disk store in pebblestore's TestTaskLifecycle.

// TestRestoreOverNewerState: a store can be behind its checkpoint's
// successor state but never ahead; replaying from an older offset onto a
// store that already holds later writes (Pebble lost its checkpoint write
// but not the data, or a crash between commit and Committed) must still
// end at the committed state, since records carry absolute values.
func TestRestoreOverNewerState(t *testing.T) {
	cl := statetest.NewChangelog(t)
	mid := cl.Write(t, []state.Change{statetest.Put("a", "1"), statetest.Put("b", "1"), statetest.Put("c", "1")}, true)
	cl.Write(t, []state.Change{statetest.Put("a", "2"), statetest.Del("b"), statetest.Put("d", "2")}, true)
	r := statetest.NewRestorer(t, cl.Brokers)
	dst := state.NewMemory()
	if _, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, 0, dst, nil); err != nil {
		t.Fatal(err)
	}
	want := statetest.Contents(t, dst)
	res, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, mid-2, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statetest.Contents(t, dst); !maps.Equal(got, want) || res.Applied != 5 { // b, c of the first transaction, all three of the second
		t.Errorf("replay of the tail over newer state: %v (%d applied)", statetest.Diff(got, want), res.Applied)
	}
}

// TestRestoreResetsBadCheckpoint: a checkpoint past the changelog's end
// (the topic was recreated) empties the store and restores from the start.
// (A wiped disk store, whose checkpoint is gone, is restored from the start
// too: pebblestore's TestRestoreAfterWipe.)
func TestRestoreResetsBadCheckpoint(t *testing.T) {
	cl := statetest.NewChangelog(t)
	cl.Write(t, []state.Change{statetest.Put("a", "1"), statetest.Put("b", "2")}, true)
	r := statetest.NewRestorer(t, cl.Brokers)

	dst := state.NewMemory()
	_ = dst.Apply([]state.Change{statetest.Put("stale", "x")}, state.Checkpoint{Offsets: map[int32]int64{statetest.Partition: 1000}, Written: time.Now()})
	res, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, 1000, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reset || res.Applied != 2 || !maps.Equal(statetest.Contents(t, dst), map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("restore past the end: %+v, contents %v", res, statetest.Contents(t, dst))
	}
}

// gauges returns the gathered gauge values by metric name, for one series
// per name.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[mf.GetName()] = m.GetGauge().GetValue()
			if len(m.GetLabel()) != 3 {
				t.Errorf("%s has labels %v, want pipeline, step, partition", mf.GetName(), m.GetLabel())
			}
		}
	}
	return out
}

// TestRestoreMetrics: the observer's gauges follow a restore and show it
// finished.
func TestRestoreMetrics(t *testing.T) {
	cl := statetest.NewChangelog(t)
	var changes []state.Change
	for i := range 100 {
		changes = append(changes, statetest.Put(fmt.Sprint(i), "v"))
	}
	cl.Write(t, changes, true)
	reg := prometheus.NewRegistry()
	m, err := changelog.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	obs := m.Observer("orders", "count", statetest.Partition)
	var sawRestoring bool
	r := statetest.NewRestorer(t, cl.Brokers)
	_, err = r.Restore(context.Background(), cl.Topic, statetest.Partition, 0, state.NewMemory(), func(p changelog.Progress) {
		obs(p)
		if !p.Finished && gauges(t, reg)["sluice_state_restoring"] == 1 {
			sawRestoring = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	g := gauges(t, reg)
	done, total := g["sluice_state_restore_records_done"], g["sluice_state_restore_records_total"]
	if !sawRestoring || done != total || done < 100 || g["sluice_state_restoring"] != 0 || len(g) != 4 {
		t.Errorf("metrics: restoring seen %v, gauges %v", sawRestoring, g)
	}
	m.Forget("orders")
	if g := gauges(t, reg); len(g) != 0 {
		t.Errorf("series after Forget: %v", g)
	}
}

// failingStore fails its second Apply.
type failingStore struct {
	*state.Memory
	applies int
}

var errApply = errors.New("disk full")

func (s *failingStore) Apply(changes []state.Change, cp state.Checkpoint) error {
	if s.applies++; s.applies == 2 {
		return errApply
	}
	return s.Memory.Apply(changes, cp)
}

// TestRestoreApplyFails: batches are applied on a goroutine of their own
// while reading goes on; an error applying one must still end the restore
// with that error, leave the store at the batch before, and not hang.
func TestRestoreApplyFails(t *testing.T) {
	cl := statetest.NewChangelog(t)
	for i := range 5 {
		var b []state.Change
		for j := range 100 {
			b = append(b, statetest.Put(fmt.Sprintf("k%d", j), fmt.Sprint(i)))
		}
		cl.Write(t, b, true)
	}
	r := statetest.NewRestorer(t, cl.Brokers, changelog.BatchRecords(100))
	dst := &failingStore{Memory: state.NewMemory()}
	var last changelog.Progress
	_, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, 0, dst, func(p changelog.Progress) { last = p })
	if !errors.Is(err, errApply) {
		t.Fatalf("restore: %v, want %v", err, errApply)
	}
	if !last.Finished || last.Applied != 100 {
		t.Errorf("last report %+v, want Finished with the first batch applied", last)
	}
	// The first batch ends at the first transaction's commit marker
	// (offset 100): its last record is offset 99.
	if cp := dst.Checkpoint().Offset(statetest.Partition); cp != 100 {
		t.Errorf("checkpoint %d, want 100", cp)
	}
}

// countingStore records the bytes of each Apply's changes.
type countingStore struct {
	*state.Memory
	batches []int
}

func (s *countingStore) Apply(changes []state.Change, cp state.Checkpoint) error {
	n := 0
	for _, c := range changes {
		n += len(c.Key) + len(c.Value)
	}
	s.batches = append(s.batches, n)
	return s.Memory.Apply(changes, cp)
}

// TestRestoreBatchBytes: a batch is applied once it holds BatchBytes of
// keys and values, before BatchRecords, so large records do not make a
// restore hold BatchRecords of them; the store still ends with every key.
func TestRestoreBatchBytes(t *testing.T) {
	cl := statetest.NewChangelog(t)
	want := map[string]string{}
	for i := range 4 {
		var b []state.Change
		for j := range 100 {
			k, v := fmt.Sprintf("k%d-%03d", i, j), strings.Repeat("v", 200)
			b = append(b, statetest.Put(k, v))
			want[k] = v
		}
		cl.Write(t, b, true)
	}
	const limit = 4096
	r := statetest.NewRestorer(t, cl.Brokers, changelog.BatchRecords(1000), changelog.BatchBytes(limit))
	dst := &countingStore{Memory: state.NewMemory()}
	res, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, 0, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statetest.Contents(t, dst.Memory); res.Applied != 400 || !maps.Equal(got, want) {
		t.Fatalf("restored %d records: %v", res.Applied, statetest.Diff(got, want))
	}
	// 400 records of about 206 bytes: at most limit plus one record per
	// batch, so at least 400*206/(limit+206) batches.
	if len(dst.batches) < 400*206/(limit+206) {
		t.Errorf("%d batches %v: BatchBytes %d did not split them", len(dst.batches), dst.batches, limit)
	}
	for _, n := range dst.batches {
		if n > limit+206 {
			t.Errorf("a batch of %d bytes, over BatchBytes %d by more than a record", n, limit)
		}
	}
}

// scribblingPool is a kgo.PoolDecompressBytes that overwrites a buffer
// put back, as reusing it would.
type scribblingPool struct{}

func (scribblingPool) GetDecompressBytes([]byte, kgo.CompressionCodecType) []byte { return nil }
func (scribblingPool) PutDecompressBytes(b []byte) {
	for i := range b[:cap(b)] {
		b[:cap(b)][i] = 'X'
	}
}

// TestRestoreCompressed: a restore recycles the records it has read
// before the batch holding their values is applied. The values of a
// compressed batch are in the buffer it was decompressed into, which a
// decompression pool in KafkaOptions would take back (here: scribble
// over) when its records are recycled; the restored values must be the
// written ones with or without such a pool.
func TestRestoreCompressed(t *testing.T) {
	cl := statetest.NewChangelog(t)
	producer := kafkatest.Client(t, cl.Brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	want := map[string]string{}
	for i := range 6 {
		var rs []*kgo.Record
		for j := range 200 {
			k, v := fmt.Sprintf("k%03d", (i*71+j)%300), fmt.Sprintf("value %d of batch %d, compressible compressible compressible", j, i)
			rs = append(rs, &kgo.Record{Topic: cl.Topic, Partition: statetest.Partition, Key: []byte(k), Value: []byte(v)})
			want[k] = v
		}
		if err := producer.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"no pools", nil},
		{"decompression pool", []kgo.Opt{kgo.WithPools(scribblingPool{})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Small fetches, so the batch spans many of them.
			r := statetest.NewRestorer(t, cl.Brokers, changelog.KafkaOptions(append(tc.opts, kgo.FetchMaxPartitionBytes(1))...))
			dst := state.NewMemory()
			res, err := r.Restore(context.Background(), cl.Topic, statetest.Partition, 0, dst, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := statetest.Contents(t, dst); res.Applied != 1200 || !maps.Equal(got, want) {
				t.Errorf("restored %d records: %v", res.Applied, statetest.Diff(got, want))
			}
		})
	}
}

// TestOptionsValidated: bad options fail construction with
// state.OptionErrors naming each option (the disk store's: pebblestore's
// TestOptionsValidated).
func TestOptionsValidated(t *testing.T) {
	_, err := changelog.NewRestorer(changelog.BatchRecords(0), changelog.BatchBytes(0), changelog.IdleTimeout(-1))
	var oe *state.OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("NewRestorer with bad options: %v", err)
	}
	for _, name := range []string{"Brokers", "BatchRecords", "BatchBytes", "IdleTimeout"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}
