// Package statetest is the conformance suite every state store runs
// ([Run]), so the memory store and the disk store (package pebblestore)
// are held to the same reference, and the changelog helpers of tests that
// restore stores from Kafka ([Changelog], on franz-go's kfake unless
// KAFKA_BROKERS is set). It is for tests only.
package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/state"
	"github.com/sluicehq/sluice/internal/state/changelog"
)

// Open returns a new, empty store, used by t alone; the suite closes it.
type Open func(t *testing.T) state.Committer

// Run runs the conformance suite on stores from open: each subtest opens
// the stores it needs.
func Run(t *testing.T, open Open) {
	t.Run("MatchesOracle", func(t *testing.T) { matchesOracle(t, open) })
	t.Run("ScanStopsOnError", func(t *testing.T) { scanStopsOnError(t, open) })
	t.Run("RestoreCommittedState", func(t *testing.T) { restoreCommittedState(t, open) })
}

// oracle is the reference the stores are compared with: a map, sorted on
// every scan.
type oracle map[string][]byte

func (o oracle) scan(lo, hi []byte) [][2]string {
	var out [][2]string
	for _, k := range slices.Sorted(maps.Keys(o)) {
		if k >= string(lo) && (hi == nil || k < string(hi)) {
			out = append(out, [2]string{k, string(o[k])})
		}
	}
	return out
}

// randKey draws from a small key space, so keys are overwritten, deleted
// and put again; "" and keys that are prefixes of others are included, and
// keys start with one of a few bytes (the lowest and highest among them),
// as operators' families of keys do.
func randKey(r *rand.Rand) []byte {
	n := r.IntN(300)
	if n == 0 {
		return []byte{}
	}
	return fmt.Appendf(nil, "%s%d", []string{"k", "\x00", "z", "\xff"}[n%4], n)
}

func randValue(r *rand.Rand) []byte {
	if r.IntN(20) == 0 {
		return []byte{} // empty, which is not a delete
	}
	return fmt.Appendf(nil, "v%d", r.Int64())
}

// matchesOracle runs one random sequence of puts, deletes, gets and range
// scans on a store and on another wrapped in a Logged store, committing
// and aborting the Logged one now and then, and requires each to answer
// as the oracle does. The Memory store's lazy index is the part most
// likely to go wrong (a key deleted and put again between scans, dead
// entries, compaction of the added list), so the sequence scans often but
// irregularly; the sequence is the same for every kind of store.
func matchesOracle(t *testing.T, open Open) {
	type subject struct {
		name   string
		store  state.Store
		logged *state.Logged
	}
	logged := state.NewLogged(open(t), 0)
	subjects := []subject{
		{"plain", open(t), nil},
		{"logged", logged, logged},
	}
	for _, s := range subjects {
		t.Cleanup(func() { _ = s.store.Close() })
	}
	r := rand.New(rand.NewPCG(1, 2))
	live := oracle{}      // what every store must answer now
	committed := oracle{} // the Logged store's state after a commit
	for i := range 6000 {
		switch op := r.IntN(100); {
		case op < 45:
			k, v := randKey(r), randValue(r)
			live[string(k)] = bytes.Clone(v)
			for _, s := range subjects {
				if err := s.store.Put(k, v); err != nil {
					t.Fatalf("%s: put: %v", s.name, err)
				}
			}
			if len(v) > 0 { // Put must have copied: scribbling on v changes nothing
				v[0] = 'X'
			}
		case op < 70:
			k := randKey(r)
			delete(live, string(k))
			for _, s := range subjects {
				if err := s.store.Delete(k); err != nil {
					t.Fatalf("%s: delete: %v", s.name, err)
				}
			}
		case op < 90:
			k := randKey(r)
			want, wantOK := live[string(k)]
			for _, s := range subjects {
				got, ok, err := s.store.Get(k)
				if err != nil || ok != wantOK || !bytes.Equal(got, want) || (ok && got == nil) {
					t.Fatalf("op %d %s: get %q = %q, %v, %v; want %q, %v", i, s.name, k, got, ok, err, want, wantOK)
				}
			}
		case op < 97:
			lo, hi := randKey(r), randKey(r)
			switch r.IntN(4) {
			case 0:
				lo = nil
			case 1:
				hi = nil
			}
			want := live.scan(lo, hi)
			for _, s := range subjects {
				if got := ScanAll(t, s.store, lo, hi); !slices.Equal(got, want) {
					t.Fatalf("op %d %s: scan [%q, %q) = %v\nwant %v", i, s.name, lo, hi, got, want)
				}
			}
		default:
			// End a commit interval of the Logged store: commit two
			// times out of three, else abort and roll the oracle back.
			commit := r.IntN(3) > 0
			for _, s := range subjects {
				if s.logged == nil {
					continue
				}
				s.logged.Drain()
				if commit {
					if err := s.logged.Committed(int64(i)); err != nil {
						t.Fatal(err)
					}
				} else {
					s.logged.Aborted()
				}
			}
			if commit {
				committed = maps.Clone(live)
				continue
			}
			// The plain store cannot roll back: bring it to the
			// committed state by hand.
			for _, s := range subjects {
				if s.logged != nil {
					continue
				}
				for k := range live {
					if _, ok := committed[k]; !ok {
						_ = s.store.Delete([]byte(k))
					}
				}
				for k, v := range committed {
					_ = s.store.Put([]byte(k), v)
				}
			}
			live = maps.Clone(committed)
		}
	}
}

// scanStopsOnError: an error from fn ends the scan and comes back, and a
// closed store answers ErrClosed.
func scanStopsOnError(t *testing.T, open Open) {
	stop := errors.New("stop")
	for _, s := range []state.Store{open(t), state.NewLogged(open(t), 0)} {
		for _, k := range []string{"a", "b", "c"} {
			_ = s.Put([]byte(k), []byte(k))
		}
		n := 0
		err := s.Scan(nil, nil, func(k, v []byte) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("%T: scan = %v after %d calls, want stop after 1", s, err, n)
		}
		_ = s.Close()
		if _, _, err := s.Get([]byte("a")); !errors.Is(err, state.ErrClosed) {
			t.Errorf("%T: get after close = %v, want ErrClosed", s, err)
		}
	}
}

// restoreCommittedState writes a changelog of committed transactions with
// puts, tombstones and an empty value, and an aborted transaction in the
// middle whose writes would change every key, then restores it into a
// store: the result must be the committed state only, every offset of the
// range accounted for (Done == Total) although markers and aborted
// records are skipped.
func restoreCommittedState(t *testing.T, open Open) {
	cl := NewChangelog(t)
	var batches [][]state.Change
	for i := range 5 {
		var b []state.Change
		for j := range 200 {
			b = append(b, Put(fmt.Sprintf("k%03d", (i*37+j)%300), fmt.Sprintf("v%d-%d", i, j)))
		}
		batches = append(batches, b)
	}
	batches = append(batches, []state.Change{Del("k001"), Del("k002"), Del("never-existed"), Put("empty", "")})
	want := map[string]string{}
	applied := int64(0)
	for i, b := range batches {
		cl.Write(t, b, true)
		applied += int64(len(b))
		for _, c := range b {
			if c.Value == nil {
				delete(want, string(c.Key))
			} else {
				want[string(c.Key)] = string(c.Value)
			}
		}
		if i == 2 {
			var aborted []state.Change
			for k := range want {
				aborted = append(aborted, Put(k, "ABORTED"), Del(k))
			}
			aborted = append(aborted, Put("aborted-only", "x"))
			cl.Write(t, aborted, false)
		}
	}
	r := NewRestorer(t, cl.Brokers, changelog.BatchRecords(64), changelog.ProgressEvery(time.Hour, 100))
	dst := open(t)
	defer dst.Close()
	pl := &progressLog{t: t}
	res, err := r.Restore(context.Background(), cl.Topic, Partition, 0, dst, pl.add)
	if err != nil {
		t.Fatal(err)
	}
	pl.checkFinished()
	if len(pl.reports) < 5 {
		t.Errorf("%d progress reports for %d offsets every 100, want more", len(pl.reports), res.Total)
	}
	if got := Contents(t, dst); !maps.Equal(got, want) {
		t.Errorf("restored %d keys, want %d; differences: %v", len(got), len(want), Diff(got, want))
	}
	if res.Applied != applied || res.Reset {
		t.Errorf("result %+v, want %d applied, no reset", res, applied)
	}
	if cp := dst.Checkpoint().Offset(Partition); cp != res.End {
		t.Errorf("checkpoint %d, want the end %d", cp, res.End)
	}
}

// progressLog records reports and checks they only move forward.
type progressLog struct {
	t       *testing.T
	reports []changelog.Progress
}

func (p *progressLog) add(pr changelog.Progress) {
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

// Changelog is a test changelog topic with two partitions; tests restore
// [Partition], and partition 0 holds records that must not be read.
type Changelog struct {
	Brokers []string
	Topic   string
	txn     *kgo.Client
}

// Partition is the changelog partition tests write and restore.
const Partition = 1

// NewChangelog creates a changelog topic on kafkatest's brokers, with a
// transactional producer closed when the test ends.
func NewChangelog(t testing.TB) *Changelog {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "p-step-changelog")
	kafkatest.CreateTopic(t, brokers, topic, 2)
	txn := kafkatest.Client(t, brokers, kgo.TransactionalID(topic+"-txn"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	return &Changelog{Brokers: brokers, Topic: topic, txn: txn}
}

// Write produces changes to Partition (and a decoy to the other one) in
// one transaction, committed or aborted, and returns the offset after the
// last record, as a task passes it to Logged.Committed.
func (c *Changelog) Write(t testing.TB, changes []state.Change, commit bool) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	rs := make([]*kgo.Record, 0, len(changes)+1)
	for _, ch := range changes {
		rs = append(rs, &kgo.Record{Topic: c.Topic, Partition: Partition, Key: ch.Key, Value: ch.Value})
	}
	rs = append(rs, &kgo.Record{Topic: c.Topic, Partition: 0, Key: []byte("decoy"), Value: []byte("other partition")})
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
		if r.Record.Partition == Partition {
			next = max(next, r.Record.Offset+1)
		}
	}
	return next
}

// NewRestorer returns a restorer for brokers with a 10s idle timeout and
// opts, closed when the test ends.
func NewRestorer(t testing.TB, brokers []string, opts ...changelog.Opt) *changelog.Restorer {
	t.Helper()
	r, err := changelog.NewRestorer(append([]changelog.Opt{changelog.Brokers(brokers...), changelog.IdleTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// Put is a change that sets k to v.
func Put(k, v string) state.Change { return state.Change{Key: []byte(k), Value: []byte(v)} }

// Del is a change that deletes k (a tombstone).
func Del(k string) state.Change { return state.Change{Key: []byte(k)} }

// ScanAll returns the pairs of s in [lo, hi), in order.
func ScanAll(t testing.TB, s state.Store, lo, hi []byte) [][2]string {
	t.Helper()
	var out [][2]string
	if err := s.Scan(lo, hi, func(k, v []byte) error {
		out = append(out, [2]string{string(k), string(v)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Contents returns everything s holds.
func Contents(t testing.TB, s state.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, kv := range ScanAll(t, s, nil, nil) {
		out[kv[0]] = kv[1]
	}
	return out
}

// Diff describes how got differs from want, sorted, for a failure message.
func Diff(got, want map[string]string) []string {
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
