package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/state"
)

// A task opened again on the same stores (a restart, or the partition
// coming back) starts its stream time where its steps left it, also
// without a record (Resume), instead of from zero.
func TestStreamTimeResumes(t *testing.T) {
	p := compilePlan(t, "{topic: in, timestamp: ts}", `    - dedupe: {by: id, within: 1h}
    - window: {tumbling: 1m, grace: 0s, aggregates: {n: count}}`)
	stores := map[string]*state.Memory{}
	factory := func(step string, _ int32) (catalog.Store, error) {
		if stores[step] == nil {
			stores[step] = state.NewMemory()
		}
		return stores[step], nil
	}
	emit := func(context.Context, engine.Message) error { return nil }
	// The plan may put the window behind a repartition; use the last stage.
	last := len(p.Stages) - 1
	st, err := engine.NewStage(p, last, emit, engine.WithStores(factory))
	if err != nil {
		t.Fatal(err)
	}
	in := p.Stages[last].Input
	for i, ts := range []string{"2026-01-01T10:00:00Z", "2026-01-01T10:05:30Z", "2026-01-01T10:02:00Z"} {
		m := engine.Message{Topic: in, Partition: 3, Offset: int64(i), Key: []byte("k"), Value: []byte(`{"id":"` + ts + `","ts":"` + ts + `"}`)}
		if last > 0 {
			m.Timestamp, _ = time.Parse(time.RFC3339, ts)
		}
		if err := st.Process(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	want, ok := st.StreamTime(3)
	if !ok || want.IsZero() {
		t.Fatalf("no stream time after three records: %v %v", want, ok)
	}

	again, err := engine.NewStage(p, last, emit, engine.WithStores(factory))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := again.StreamTime(3); ok {
		t.Fatal("a new stage has a task before any record")
	}
	if err := again.Resume(3); err != nil {
		t.Fatal(err)
	}
	got, ok := again.StreamTime(3)
	if !ok || !got.Equal(want) {
		t.Fatalf("stream time after Resume = %v (%v), want %v", got, ok, want)
	}
}
