// Package keyedtest has what the keyed operators' property tests share:
// running records through a stateful operator with a restore in between,
// and delivering records out of order within a grace.
package keyedtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/state"
)

type task struct {
	store catalog.Store
	st    time.Time
}

func (t *task) Store() catalog.Store  { return t.store }
func (t *task) StreamTime() time.Time { return t.st }

type collect struct{ out *[]string }

func (c collect) Next(_ context.Context, r *record.Record) error {
	b, err := record.EncodeJSON(record.Plain(r.Value))
	if err != nil {
		return err
	}
	*c.out = append(*c.out, fmt.Sprintf("%v@%s %s", r.Key, r.Timestamp.UTC().Format(time.RFC3339Nano), b))
	return nil
}

func (c collect) To(context.Context, string, *record.Record) error {
	return fmt.Errorf("unexpected To")
}

// Run passes in through op as one task would, then ends the input
// (catalog.EndOfTime). When restoreAt is in [1, len(in)), the store is
// copied key by key into a fresh one after that many records and the
// operator is rebuilt with build, as a task restored from its changelog on
// another runner. It returns every output as "key@time value" and the DLQ
// reasons by input index.
func Run(t testing.TB, build func() catalog.Operator, in []*record.Record, restoreAt int) (outs []string, dlq map[int]catalog.Reason) {
	t.Helper()
	ctx := context.Background()
	op := build().(catalog.StatefulOperator)
	tk := &task{store: state.NewMemory()}
	dlq = map[int]catalog.Reason{}
	for i, r := range in {
		if i == restoreAt && i > 0 {
			fresh := state.NewMemory()
			if err := tk.store.Scan(nil, nil, func(k, v []byte) error { return fresh.Put(slices.Clone(k), slices.Clone(v)) }); err != nil {
				t.Fatal(err)
			}
			op = build().(catalog.StatefulOperator)
			rec, ok := op.(catalog.StreamTimeRecorder)
			if !ok {
				t.Fatal("a keyed operator must record its stream time")
			}
			at, ok, err := rec.StoredStreamTime(&task{store: fresh})
			if err != nil || !ok || !at.Equal(tk.st) {
				t.Fatalf("restored stream time %v %v %v, want %v", at, ok, err, tk.st)
			}
			tk = &task{store: fresh, st: at}
		}
		if r.Timestamp.After(tk.st) {
			tk.st = r.Timestamp
		}
		if err := op.ProcessTask(ctx, tk, r.Clone(), collect{&outs}); err != nil {
			dlq[i] = catalog.ReasonOf(err)
		}
	}
	tk.st = catalog.EndOfTime
	if err := op.OnWatermark(ctx, tk, collect{&outs}); err != nil {
		t.Fatal(err)
	}
	return outs, dlq
}

// Disorder returns in (sorted by timestamp) in an arrival order in which
// no record is more than grace behind the latest timestamp before it, so
// none is late for a step with that grace.
func Disorder(rng *rand.Rand, in []*record.Record, grace time.Duration) []*record.Record {
	type arrival struct {
		at time.Time
		r  *record.Record
	}
	as := make([]arrival, len(in))
	for i, r := range in {
		as[i] = arrival{r.Timestamp.Add(time.Duration(rng.Int64N(int64(grace) + 1))), r}
	}
	slices.SortStableFunc(as, func(a, b arrival) int { return a.at.Compare(b.at) })
	out := make([]*record.Record, len(in))
	for i, a := range as {
		out[i] = a.r
	}
	return out
}

// Record makes a record with value v (plain JSON-like) at ts.
func Record(key any, ts time.Time, v any) *record.Record {
	return &record.Record{Key: key, Timestamp: ts, Value: record.Plain(v)}
}
