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
// without a record (Resume), instead of from zero. Steps hold their
// watermark with the task until FlushState, which the runtime calls
// before every commit, so that is where a restart picks up from.
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
	if err := st.FlushState(3); err != nil {
		t.Fatal(err)
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

// A window keeps its model with the task (catalog.TaskCache) rather than
// reading it from the store for every record. The runtime drops the task
// whenever the store changes behind the step (an aborted transaction
// discards its writes; a restore), and the model must go with it: here
// the writes of two records, the second five minutes on (closing the
// first window in the model), are discarded as an abort discards them,
// and the records processed again count from the committed state, not
// from a model that saw them. The model holds its accumulators back until
// FlushState, which a commit must call first.
func TestWindowModelForgottenWithTask(t *testing.T) {
	p := compilePlan(t, "{topic: in}", `    - window: {tumbling: 1m, grace: 0s, emit: update, aggregates: {n: count}}`)
	logged := map[string]*state.Logged{}
	factory := func(step string, partition int32) (catalog.Store, error) {
		if logged[step] == nil {
			logged[step] = state.NewLogged(state.NewMemory(), partition)
		}
		return logged[step], nil
	}
	var outs []string
	st, err := engine.NewStage(p, 0, func(_ context.Context, m engine.Message) error {
		outs = append(outs, m.Topic+" "+string(m.Value))
		return nil
	}, engine.WithStores(factory))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	process := func(offset int64, after time.Duration) {
		m := engine.Message{Topic: "in", Offset: offset, Key: []byte("k"), Value: []byte(`{}`), Timestamp: at.Add(after)}
		if err := st.Process(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	process(0, 0)
	l := logged[p.Steps[0].Name]
	// As the runtime commits: the model's held-back writes first.
	if err := st.FlushState(0); err != nil {
		t.Fatal(err)
	}
	l.Drain()
	if err := l.Committed(1); err != nil {
		t.Fatal(err)
	}
	process(1, time.Second)
	process(2, 5*time.Minute)
	l.Aborted()
	st.DropTask(0)
	outs = outs[:0]
	process(1, time.Second)
	process(2, 2*time.Second)
	want := []string{
		`out {"n":2,"window":{"end":"2026-01-01T10:01:00Z","start":"2026-01-01T10:00:00Z"}}`,
		`out {"n":3,"window":{"end":"2026-01-01T10:01:00Z","start":"2026-01-01T10:00:00Z"}}`,
	}
	if len(outs) != len(want) || outs[0] != want[0] || outs[1] != want[1] {
		t.Fatalf("after the abort, outputs\n%q\nwant\n%q", outs, want)
	}
}
