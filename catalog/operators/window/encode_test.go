package window_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/window"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/state"
)

// cachingTask is a task that keeps the step's model (catalog.TaskCache) and
// flushes it as the runtime does before a commit.
type cachingTask struct {
	store  *state.Memory
	st     time.Time
	cached any
}

func (t *cachingTask) Store() catalog.Store  { return t.store }
func (t *cachingTask) StreamTime() time.Time { return t.st }
func (t *cachingTask) Cached() any           { return t.cached }
func (t *cachingTask) SetCached(v any)       { t.cached = v }

// outputs collects what a window emits, as the sink would write it.
type outputs struct {
	vals    []string
	encoded int // values handed over encoded
}

func (o *outputs) Next(_ context.Context, r *record.Record) error {
	b, err := record.EncodeJSON(r.Value) // as the engine's tail encodes it
	o.vals = append(o.vals, fmt.Sprintf("%s@%d %s", r.Key, r.Timestamp.UnixMilli(), b))
	return err
}

func (o *outputs) To(context.Context, string, *record.Record) error {
	return fmt.Errorf("window used To")
}

// encodingOutputs is outputs as the last step's output, which takes values
// encoded (catalog.EncodedOutput).
type encodingOutputs struct{ outputs }

func (o *encodingOutputs) NextEncoded(_ context.Context, r *record.Record, value []byte) error {
	o.encoded++
	o.vals = append(o.vals, fmt.Sprintf("%s@%d %s", r.Key, r.Timestamp.UnixMilli(), value))
	return nil
}

// A window that writes its results itself, when they go straight to the
// sink, must write what the sink would have encoded from the map it builds
// otherwise, byte for byte: members in key order (aggregate names around
// "window", an aggregate named window hiding the bounds), and values of
// every kind its aggregates give (ints, floats, nulls, strings, lists and
// objects).
func TestEncodedResultsAreTheSinksEncoding(t *testing.T) {
	reg := operatortest.Registry(t, window.Register)
	aggs := "aggregates:\n  n: count\n  avg: {avg: v}\n  sum: {sum: v}\n  zmax: {max: v}\n  p: {percentiles: v, at: [50, 99]}\n  last: {last: s}\n  head: {collect: s, first: 2}\n  _w: count\n  windows: count\n"
	for _, step := range []string{
		"tumbling: 1m\ngrace: 5s\nemit: update\nby: user\n" + aggs,
		"tumbling: 1m\ngrace: 5s\nemit: final\nby: user\n" + aggs,
		"hopping: {size: 2m, advance: 1m}\ngrace: 0s\nemit: update\nby: user\n" + aggs,
		"tumbling: 1m\ngrace: 0s\nemit: final\nby: user\naggregates:\n  window: count\n  a: {sum: v}\n",
		"session: {gap: 30s}\ngrace: 0s\nemit: update\nby: user\n" + aggs,
	} {
		rng := rand.New(rand.NewPCG(1, 2))
		base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
		var in []*record.Record
		for i := range 400 {
			v := map[string]any{"user": fmt.Sprintf("u%d", rng.IntN(5)), "s": fmt.Sprintf("s%d", rng.IntN(9))}
			switch rng.IntN(4) {
			case 0:
				v["v"] = rng.IntN(100)
			case 1:
				v["v"] = float64(rng.IntN(100)) / 4
			case 2: // no v
			default:
				v["v"] = 3.0
			}
			in = append(in, &record.Record{Value: v, Timestamp: base.Add(time.Duration(i)*time.Second + time.Duration(rng.IntN(20))*time.Second)})
		}
		run := func(out catalog.Output) {
			op, err := operatortest.Build(reg, "window", step)
			if err != nil {
				t.Fatal(err)
			}
			sop := op.(catalog.StatefulOperator)
			task := &cachingTask{store: state.NewMemory()}
			for i, r := range in {
				if r.Timestamp.After(task.st) {
					task.st = r.Timestamp
				}
				if err := sop.ProcessTask(t.Context(), task, r.Clone(), out); err != nil && catalog.ReasonOf(err) != catalog.ReasonLate {
					t.Fatalf("%s: record %d: %v", step, i, err)
				}
				if i%37 == 0 {
					if err := task.cached.(catalog.StateFlusher).FlushState(); err != nil {
						t.Fatal(err)
					}
				}
			}
			task.st = catalog.EndOfTime
			if err := sop.OnWatermark(t.Context(), task, out); err != nil {
				t.Fatal(err)
			}
		}
		var plain outputs
		var enc encodingOutputs
		run(&plain)
		run(&enc)
		if len(plain.vals) == 0 || enc.encoded == 0 {
			t.Fatalf("%s: %d outputs, %d of them encoded by the window", step, len(plain.vals), enc.encoded)
		}
		if len(plain.vals) != len(enc.vals) {
			t.Fatalf("%s: %d outputs through Next, %d with encoded values", step, len(plain.vals), len(enc.vals))
		}
		for i := range plain.vals {
			if plain.vals[i] != enc.vals[i] {
				t.Fatalf("%s: output %d\n%s\nencoded by the window as\n%s", step, i, plain.vals[i], enc.vals[i])
			}
		}
	}
}
