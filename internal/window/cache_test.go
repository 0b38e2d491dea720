package window

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// A write-back operator (WriteBack) must behave as one that writes through,
// and its store, once flushed, must hold the same bytes: that is what a
// commit puts in the changelog and a restore reads back. The same random
// records go through both, with the write-back one flushed at random
// points and sometimes reopened from its store after a flush, as a task is
// after a commit and a crash.
func TestWriteBackAgreesWithWriteThrough(t *testing.T) {
	specs := map[string]Spec{}
	specs["tumbling"], _ = Tumbling(40)
	specs["hopping"], _ = Hopping(60, 20)
	specs["session"], _ = Session(30)
	for name, spec := range specs {
		for _, emit := range []Emit{EmitFinal, EmitUpdate} {
			t.Run(fmt.Sprintf("%s/%d", name, emit), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(7, uint64(emit)))
				cfg := Config{Window: spec, Grace: oracleGrace, Emit: emit, Aggregates: oracleAggregates()}
				p, err := Prepare(cfg)
				if err != nil {
					t.Fatal(err)
				}
				sa, sb := NewMemStore(), NewMemStore()
				a, err := p.Open(sa)
				if err != nil {
					t.Fatal(err)
				}
				open := func() *Operator {
					b, err := p.Open(sb, WriteBack(), AccumulatorResults())
					if err != nil {
						t.Fatal(err)
					}
					return b
				}
				b := open()
				deferred := false // the stores differed before a flush
				var wm int64
				for i, ev := range genEvents(rng, 3000) {
					if ev.tick {
						continue
					}
					wm = max(wm, ev.t-10)
					ra, erra := a.Advance(wm)
					rb, errb := b.Advance(wm)
					sameResults(t, i, "advance", b, ra, rb, erra, errb)
					ra, erra = a.Process([]byte(ev.key), ev.t, ev.value)
					rb, errb = b.Process([]byte(ev.key), ev.t, ev.value)
					sameResults(t, i, "process", b, ra, rb, erra, errb)
					if rng.IntN(50) != 0 {
						continue
					}
					deferred = deferred || !sameStores(sa, sb)
					if err := b.FlushState(); err != nil {
						t.Fatal(err)
					}
					if !sameStores(sa, sb) {
						t.Fatalf("record %d: after FlushState the stores differ", i)
					}
					if rng.IntN(3) == 0 {
						b = open()
					}
				}
				ra, erra := a.Flush()
				rb, errb := b.Flush()
				sameResults(t, -1, "flush", b, ra, rb, erra, errb)
				if err := b.FlushState(); err != nil {
					t.Fatal(err)
				}
				if !sameStores(sa, sb) {
					t.Fatal("at the end the stores differ")
				}
				if wantDeferred := spec.kind != KindSession; deferred != wantDeferred {
					t.Errorf("writes held back until a flush: %v, want %v (sessions write through)", deferred, wantDeferred)
				}
			})
		}
	}
}

func sameResults(t *testing.T, i int, what string, b *Operator, ra, rb []Result, erra, errb error) {
	t.Helper()
	var rea, reb *RecordError
	if errors.As(erra, &rea) != errors.As(errb, &reb) || (erra == nil) != (errb == nil) {
		t.Fatalf("record %d, %s: errors %v and %v", i, what, erra, errb)
	}
	if rea != nil && rea.Reason != reb.Reason {
		t.Fatalf("record %d, %s: rejected for %s and %s", i, what, rea.Reason, reb.Reason)
	}
	if len(ra) != len(rb) {
		t.Fatalf("record %d, %s: %d and %d results", i, what, len(ra), len(rb))
	}
	for j := range ra {
		x, y := ra[j], rb[j]
		if !bytes.Equal(x.Key, y.Key) || x.Window != y.Window || x.Retract != y.Retract {
			t.Fatalf("record %d, %s: result %d is %q %v %v and %q %v %v", i, what, j, x.Key, x.Window, x.Retract, y.Key, y.Window, y.Retract)
		}
		if y.Values != nil || (y.Accs == nil) != x.Retract {
			t.Fatalf("record %d, %s: result %d of AccumulatorResults has values %v, accumulators %v", i, what, j, y.Values, y.Accs)
		}
		if va, vb := x.Values, b.Values(y); !reflect.DeepEqual(va, vb) {
			t.Fatalf("record %d, %s: result %d is %v and %v", i, what, j, va, vb)
		}
	}
}

func sameStores(a, b *MemStore) bool {
	if a.Len() != b.Len() {
		return false
	}
	for i := range a.entries {
		if !bytes.Equal(a.entries[i].k, b.entries[i].k) || !bytes.Equal(a.entries[i].v, b.entries[i].v) {
			return false
		}
	}
	return true
}

// The accumulators Process reuses from record to record must reset to
// exactly what a new one is, or a record would carry the last one's inputs.
func TestResetAccsIsNew(t *testing.T) {
	aggs := []Aggregate{
		{Name: "n", Func: Count},
		{Name: "n_v", Func: Count, Input: field("v")},
		{Name: "sum", Func: Sum, Input: field("v")},
		{Name: "avg", Func: Avg, Input: field("v")},
		{Name: "min", Func: Min, Input: field("v")},
		{Name: "max", Func: Max, Input: field("v")},
	}
	var accs, fresh []Accumulator
	for i := range aggs {
		acc, err := aggs[i].newAcc()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []any{3, 2.5, 7, int64(-4)} {
			if err := acc.Add(Input{Value: v}); err != nil {
				t.Fatal(err)
			}
		}
		accs = append(accs, acc)
		acc, _ = aggs[i].newAcc()
		fresh = append(fresh, acc)
	}
	if !resetAccs(accs) {
		t.Fatal("numeric accumulators were not reset")
	}
	if !reflect.DeepEqual(accs, fresh) {
		t.Fatalf("reset accumulators %+v, new ones %+v", accs, fresh)
	}
	pick, _ := (&Aggregate{Name: "f", Func: First, Input: field("v")}).newAcc()
	if resetAccs([]Accumulator{fresh[0], pick}) {
		t.Fatal("an accumulator without a reset was reported reset")
	}
}

// A dedupe model that holds its watermark back writes it on FlushState,
// not before: a model reopened from the store then resumes from it.
func TestDedupeHoldsWatermarkUntilFlush(t *testing.T) {
	store := NewMemStore()
	d, err := NewDedupe(100, store)
	if err != nil {
		t.Fatal(err)
	}
	d.HoldWatermark()
	for i, tm := range []int64{1000, 1010, 1020} {
		if err := d.Advance(tm); err != nil {
			t.Fatal(err)
		}
		if pass, err := d.Process([]byte(fmt.Sprint(i)), tm); err != nil || !pass {
			t.Fatalf("record %d: pass %v, %v", i, pass, err)
		}
	}
	if _, ok, _ := StoredStreamTime(store); ok {
		t.Fatal("the watermark was written before FlushState")
	}
	if err := d.FlushState(); err != nil {
		t.Fatal(err)
	}
	if at, ok, err := StoredStreamTime(store); err != nil || !ok || at != 1020 {
		t.Fatalf("after FlushState the stored watermark is %d (%v, %v), want 1020", at, ok, err)
	}
	// Without HoldWatermark every Advance writes it.
	d2, _ := NewDedupe(100, NewMemStore())
	if err := d2.Advance(5); err != nil {
		t.Fatal(err)
	}
	if at, ok, _ := StoredStreamTime(d2.store); !ok || at != 5 {
		t.Fatalf("a write-through dedupe stored watermark %d (%v), want 5", at, ok)
	}
}

// TestNewCachedCopies checks that an entry keeps its key and accumulator
// list whether they fit inline or not, and does not share the caller's key
// buffer.
func TestNewCachedCopies(t *testing.T) {
	for _, n := range []int{0, 1, inlineKey, inlineKey + 1} {
		for _, na := range []int{1, inlineAccs, inlineAccs + 1} {
			sk := []byte(strings.Repeat("x", n))
			accs := make([]Accumulator, na)
			for i := range accs {
				accs[i] = &countAcc{n: int64(i)}
			}
			e := newCached(sk, 7, accs)
			for i := range sk {
				sk[i] = 'y'
			}
			if e.key != strings.Repeat("x", n) || len(e.accs) != na || e.end != 7 {
				t.Fatalf("key %d, %d accumulators: entry %q with %d", n, na, e.key, len(e.accs))
			}
			for i := range accs {
				if e.accs[i] != accs[i] {
					t.Fatalf("accumulator %d is not the one given", i)
				}
			}
		}
	}
}
