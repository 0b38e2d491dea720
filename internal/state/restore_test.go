package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
)

// changelog is a test changelog topic with two partitions; the tests
// restore partition 1, and partition 0 holds records that must not be read.
type changelog struct {
	brokers []string
	topic   string
	txn     *kgo.Client
}

const restorePartition = 1

func newChangelog(t testing.TB) *changelog {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "p-step-changelog")
	kafkatest.CreateTopic(t, brokers, topic, 2)
	txn := kafkatest.Client(t, brokers, kgo.TransactionalID(topic+"-txn"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	return &changelog{brokers: brokers, topic: topic, txn: txn}
}

// write produces changes to partition (and a decoy to the other one) in
// one transaction, committed or aborted, and returns the offset after the
// last record, as a task passes it to Logged.Committed.
func (c *changelog) write(t testing.TB, changes []Change, commit bool) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	rs := make([]*kgo.Record, 0, len(changes)+1)
	for _, ch := range changes {
		rs = append(rs, &kgo.Record{Topic: c.topic, Partition: restorePartition, Key: ch.Key, Value: ch.Value})
	}
	rs = append(rs, &kgo.Record{Topic: c.topic, Partition: 0, Key: []byte("decoy"), Value: []byte("other partition")})
	res := c.txn.ProduceSync(ctx, rs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	end := kgo.TryAbort
	if commit {
		end = kgo.TryCommit
	}
	if err := c.txn.EndTransaction(ctx, end); err != nil {
		t.Fatal(err)
	}
	var next int64
	for _, r := range res {
		if r.Record.Partition == restorePartition {
			next = max(next, r.Record.Offset+1)
		}
	}
	return next
}

func newRestorer(t testing.TB, brokers []string, opts ...RestoreOpt) *Restorer {
	t.Helper()
	r, err := NewRestorer(append([]RestoreOpt{Brokers(brokers...), IdleTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// progressLog records reports and checks they only move forward.
type progressLog struct {
	t       *testing.T
	reports []Progress
}

func (p *progressLog) add(pr Progress) {
	if n := len(p.reports); n > 0 {
		last := p.reports[n-1]
		if pr.Done < last.Done || pr.Applied < last.Applied || pr.Total != last.Total || last.Finished {
			p.t.Errorf("progress went from %+v to %+v", last, pr)
		}
	}
	if pr.Done > pr.Total || pr.ETA < 0 || pr.Rate < 0 {
		p.t.Errorf("progress %+v out of range", pr)
	}
	p.reports = append(p.reports, pr)
}

func (p *progressLog) checkFinished() {
	if len(p.reports) < 2 {
		p.t.Fatalf("%d progress reports, want a first and a last", len(p.reports))
	}
	if first := p.reports[0]; first.Done != 0 || first.Finished {
		p.t.Errorf("first report %+v", first)
	}
	if last := p.reports[len(p.reports)-1]; !last.Finished || last.Done != last.Total {
		p.t.Errorf("last report %+v, want Finished with Done == Total", last)
	}
}

func contents(t *testing.T, s Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, kv := range scanAll(t, s, nil, nil) {
		out[kv[0]] = kv[1]
	}
	return out
}

func put(k, v string) Change { return Change{Key: []byte(k), Value: []byte(v)} }
func del(k string) Change    { return Change{Key: []byte(k)} }

// TestRestoreCommittedState writes a changelog of committed transactions
// with puts, tombstones and an empty value, and an aborted transaction in
// the middle whose writes would change every key, then restores it into
// both kinds of store: the result must be the committed state only, every
// offset of the range accounted for (Done == Total) although markers and
// aborted records are skipped.
func TestRestoreCommittedState(t *testing.T) {
	cl := newChangelog(t)
	var batches [][]Change
	for i := range 5 {
		var b []Change
		for j := range 200 {
			b = append(b, put(fmt.Sprintf("k%03d", (i*37+j)%300), fmt.Sprintf("v%d-%d", i, j)))
		}
		batches = append(batches, b)
	}
	batches = append(batches, []Change{del("k001"), del("k002"), del("never-existed"), put("empty", "")})
	want := map[string]string{}
	applied := int64(0)
	for i, b := range batches {
		cl.write(t, b, true)
		applied += int64(len(b))
		for _, c := range b {
			if c.Value == nil {
				delete(want, string(c.Key))
			} else {
				want[string(c.Key)] = string(c.Value)
			}
		}
		if i == 2 {
			var aborted []Change
			for k := range want {
				aborted = append(aborted, put(k, "ABORTED"), del(k))
			}
			aborted = append(aborted, put("aborted-only", "x"))
			cl.write(t, aborted, false)
		}
	}
	r := newRestorer(t, cl.brokers, BatchRecords(64), ProgressEvery(time.Hour, 100))
	for _, kind := range []string{"memory", "pebble"} {
		t.Run(kind, func(t *testing.T) {
			var dst Committer = NewMemory()
			if kind == "pebble" {
				dst = openPebble(t, t.TempDir())
			}
			defer dst.Close()
			pl := &progressLog{t: t}
			res, err := r.Restore(context.Background(), cl.topic, restorePartition, 0, dst, pl.add)
			if err != nil {
				t.Fatal(err)
			}
			pl.checkFinished()
			if len(pl.reports) < 5 {
				t.Errorf("%d progress reports for %d offsets every 100, want more", len(pl.reports), res.Total)
			}
			if got := contents(t, dst); !maps.Equal(got, want) {
				t.Errorf("restored %d keys, want %d; differences: %v", len(got), len(want), diff(got, want))
			}
			if res.Applied != applied || res.Reset {
				t.Errorf("result %+v, want %d applied, no reset", res, applied)
			}
			if cp := dst.Checkpoint().Offset(restorePartition); cp != res.End {
				t.Errorf("checkpoint %d, want the end %d", cp, res.End)
			}
		})
	}
}

func diff(got, want map[string]string) []string {
	var out []string
	for k := range maps.Keys(got) {
		if want[k] != got[k] {
			out = append(out, fmt.Sprintf("%s: got %q want %q", k, got[k], want[k]))
		}
	}
	for k := range maps.Keys(want) {
		if _, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("%s: missing", k))
		}
	}
	slices.Sort(out)
	return out
}

// TestTaskLifecycle runs the protocol a task follows, on a Pebble store:
// writes through Logged, Drain, produce in a transaction, Committed with
// the offset after the last record; an aborted interval in between. Then
// the store is closed (the task moves away), another owner commits more
// to the changelog, and the store is reopened and restored from its
// checkpoint: it must read only the tail, and end equal to a full restore.
func TestTaskLifecycle(t *testing.T) {
	cl := newChangelog(t)
	dir := t.TempDir()
	p := openPebble(t, dir)
	l := NewLogged(p, restorePartition)
	for round := range 4 {
		for i := range 500 {
			k := fmt.Appendf(nil, "k%d", i%50)
			if i%7 == 0 {
				_ = l.Delete(k)
			} else {
				_ = l.Put(k, fmt.Appendf(nil, "r%d-%d", round, i))
			}
		}
		changes := l.Drain()
		if len(changes) != 50 {
			t.Fatalf("drained %d changes for 50 keys", len(changes))
		}
		commit := round != 2
		next := cl.write(t, changes, commit)
		if commit {
			if err := l.Committed(next); err != nil {
				t.Fatal(err)
			}
		} else {
			l.Aborted()
		}
	}
	before := contents(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Another owner of the task writes 30 more records.
	var tail []Change
	for i := range 30 {
		tail = append(tail, put(fmt.Sprintf("k%d", i), "tail"))
	}
	tail = append(tail[:29], del("k0"))
	cl.write(t, tail, true)
	for _, c := range tail {
		if c.Value == nil {
			delete(before, string(c.Key))
		} else {
			before[string(c.Key)] = string(c.Value)
		}
	}

	p = openPebble(t, dir)
	defer p.Close()
	if p.Wiped() != "" {
		t.Fatalf("wiped: %s", p.Wiped())
	}
	from := p.Checkpoint().Offset(restorePartition)
	r := newRestorer(t, cl.brokers)
	res, err := r.Restore(context.Background(), cl.topic, restorePartition, from, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != from || res.Applied != int64(len(tail)) {
		t.Errorf("restore from checkpoint %d: %+v, want %d records applied", from, res, len(tail))
	}
	if got := contents(t, p); !maps.Equal(got, before) {
		t.Errorf("after tail restore: %v", diff(got, before))
	}
	full := NewMemory()
	if _, err := r.Restore(context.Background(), cl.topic, restorePartition, 0, full, nil); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, full); !maps.Equal(got, before) {
		t.Errorf("full restore: %v", diff(got, before))
	}
}

// TestRestoreOverNewerState: a store can be behind its checkpoint's
// successor state but never ahead; replaying from an older offset onto a
// store that already holds later writes (Pebble lost its checkpoint write
// but not the data, or a crash between commit and Committed) must still
// end at the committed state, since records carry absolute values.
func TestRestoreOverNewerState(t *testing.T) {
	cl := newChangelog(t)
	mid := cl.write(t, []Change{put("a", "1"), put("b", "1"), put("c", "1")}, true)
	cl.write(t, []Change{put("a", "2"), del("b"), put("d", "2")}, true)
	r := newRestorer(t, cl.brokers)
	dst := NewMemory()
	if _, err := r.Restore(context.Background(), cl.topic, restorePartition, 0, dst, nil); err != nil {
		t.Fatal(err)
	}
	want := contents(t, dst)
	res, err := r.Restore(context.Background(), cl.topic, restorePartition, mid-2, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(t, dst); !maps.Equal(got, want) || res.Applied != 5 { // b, c of the first transaction, all three of the second
		t.Errorf("replay of the tail over newer state: %v (%d applied)", diff(got, want), res.Applied)
	}
}

// TestRestoreResetsBadCheckpoint: a checkpoint past the changelog's end
// (the topic was recreated) empties the store and restores from the start;
// so does a wiped (corrupt) Pebble store, whose checkpoint is gone.
func TestRestoreResetsBadCheckpoint(t *testing.T) {
	cl := newChangelog(t)
	cl.write(t, []Change{put("a", "1"), put("b", "2")}, true)
	r := newRestorer(t, cl.brokers)

	dst := NewMemory()
	_ = dst.Apply([]Change{put("stale", "x")}, Checkpoint{Offsets: map[int32]int64{restorePartition: 1000}, Written: time.Now()})
	res, err := r.Restore(context.Background(), cl.topic, restorePartition, 1000, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reset || res.Applied != 2 || !maps.Equal(contents(t, dst), map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("restore past the end: %+v, contents %v", res, contents(t, dst))
	}

	dir := t.TempDir()
	p := openPebble(t, dir)
	if _, err := r.Restore(context.Background(), cl.topic, restorePartition, 0, p, nil); err != nil {
		t.Fatal(err)
	}
	_ = p.db.Set(checkpointKey, []byte("garbage"), pebble.NoSync)
	_ = p.Close()
	p = openPebble(t, dir)
	defer p.Close()
	if p.Wiped() == "" {
		t.Fatal("corrupt checkpoint not wiped")
	}
	res, err = r.Restore(context.Background(), cl.topic, restorePartition, p.Checkpoint().Offset(restorePartition), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.Applied != 2 || !maps.Equal(contents(t, p), map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("full restore after wipe: %+v, contents %v", res, contents(t, p))
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
	cl := newChangelog(t)
	var changes []Change
	for i := range 100 {
		changes = append(changes, put(fmt.Sprint(i), "v"))
	}
	cl.write(t, changes, true)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	obs := m.Observer("orders", "count", restorePartition)
	var sawRestoring bool
	r := newRestorer(t, cl.brokers)
	_, err = r.Restore(context.Background(), cl.topic, restorePartition, 0, NewMemory(), func(p Progress) {
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

// TestRestoreBatchKeepsLastPerKey checks the batch a restore applies
// against a map: one change per key, in the order the keys first came,
// with the last value read, across batches (the index is reset and
// reused) and while its table grows well past its first size.
func TestRestoreBatchKeepsLastPerKey(t *testing.T) {
	b := restoreBatch{index: newKeyIndex()}
	for round := range 3 {
		var order []string
		want := map[string]string{}
		keys := 20_000 << round
		for i := range 3 * keys {
			k := fmt.Sprintf("k%d", (i*7919)%keys)
			if _, ok := want[k]; !ok {
				order = append(order, k)
			}
			v := fmt.Sprintf("v%d-%d", round, i)
			want[k] = v
			b.add([]byte(k), []byte(v))
		}
		if b.read != 3*keys || len(b.changes) != len(order) {
			t.Fatalf("round %d: %d read, %d changes, want %d and %d", round, b.read, len(b.changes), 3*keys, len(order))
		}
		for i, c := range b.changes {
			if string(c.Key) != order[i] || string(c.Value) != want[order[i]] {
				t.Fatalf("round %d: change %d is %s=%s, want %s=%s", round, i, c.Key, c.Value, order[i], want[order[i]])
			}
		}
		b.reset()
	}
}

// failingStore fails its second Apply.
type failingStore struct {
	*Memory
	applies int
}

var errApply = errors.New("disk full")

func (s *failingStore) Apply(changes []Change, cp Checkpoint) error {
	if s.applies++; s.applies == 2 {
		return errApply
	}
	return s.Memory.Apply(changes, cp)
}

// TestRestoreApplyFails: batches are applied on a goroutine of their own
// while reading goes on; an error applying one must still end the restore
// with that error, leave the store at the batch before, and not hang.
func TestRestoreApplyFails(t *testing.T) {
	cl := newChangelog(t)
	for i := range 5 {
		var b []Change
		for j := range 100 {
			b = append(b, put(fmt.Sprintf("k%d", j), fmt.Sprint(i)))
		}
		cl.write(t, b, true)
	}
	r := newRestorer(t, cl.brokers, BatchRecords(100))
	dst := &failingStore{Memory: NewMemory()}
	var last Progress
	_, err := r.Restore(context.Background(), cl.topic, restorePartition, 0, dst, func(p Progress) { last = p })
	if !errors.Is(err, errApply) {
		t.Fatalf("restore: %v, want %v", err, errApply)
	}
	if !last.Finished || last.Applied != 100 {
		t.Errorf("last report %+v, want Finished with the first batch applied", last)
	}
	// The first batch ends at the first transaction's commit marker
	// (offset 100): its last record is offset 99.
	if cp := dst.Checkpoint().Offset(restorePartition); cp != 100 {
		t.Errorf("checkpoint %d, want 100", cp)
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
	cl := newChangelog(t)
	producer := kafkatest.Client(t, cl.brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	want := map[string]string{}
	for i := range 6 {
		var rs []*kgo.Record
		for j := range 200 {
			k, v := fmt.Sprintf("k%03d", (i*71+j)%300), fmt.Sprintf("value %d of batch %d, compressible compressible compressible", j, i)
			rs = append(rs, &kgo.Record{Topic: cl.topic, Partition: restorePartition, Key: []byte(k), Value: []byte(v)})
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
			r := newRestorer(t, cl.brokers, KafkaOptions(append(tc.opts, kgo.FetchMaxPartitionBytes(1))...))
			dst := NewMemory()
			res, err := r.Restore(context.Background(), cl.topic, restorePartition, 0, dst, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := contents(t, dst); res.Applied != 1200 || !maps.Equal(got, want) {
				t.Errorf("restored %d records: %v", res.Applied, diff(got, want))
			}
		})
	}
}
