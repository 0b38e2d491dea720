package driver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/state"
)

// sample is a ~200-byte telemetry record.
var sample = []byte(`{"vehicle_id":"truck-0042","speed":23.7,"lat":52.370216,"lon":4.895168,"heading":271,"fuel":0.62,"driver":{"id":"d-17","shift":"early"},"engine_on":true,"ts":"2026-01-01T00:00:00Z"}`)

const benchPipeline = `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: bench}
spec:
  source: {topic: in}
  steps:
    - filter: speed >= 0 && lat != nil
    - map: {vehicle: vehicle_id, kmh: speed * 3.6, low_fuel: fuel < 0.2}
  sink: {topic: out}
`

// BenchmarkEngineRecord is the engine's cost per record for decode ->
// filter -> map (3 computed fields) -> encode. Compare it with
// BenchmarkHandWrittenRecord (target: <= 1.5x, see bench/targets.json).
func BenchmarkEngineRecord(b *testing.B) {
	p := compileB(b, benchPipeline)
	var n int
	st, err := engine.NewStage(p, 0, func(_ context.Context, m engine.Message) error {
		n += len(m.Value)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	m := engine.Message{Topic: "in", Key: []byte("truck-0042"), Value: sample}
	b.SetBytes(int64(len(sample)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.Process(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	if n == 0 {
		b.Fatal("nothing was produced")
	}
}

// BenchmarkHandWrittenRecord does the same work as BenchmarkEngineRecord in
// plain Go with the same JSON library: the floor the engine is measured against.
func BenchmarkHandWrittenRecord(b *testing.B) {
	var n int
	b.SetBytes(int64(len(sample)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out, err := handWritten(sample)
		if err != nil {
			b.Fatal(err)
		}
		n += len(out)
	}
	if n == 0 {
		b.Fatal("nothing was produced")
	}
}

func handWritten(in []byte) ([]byte, error) {
	v, err := record.DecodeJSON(in)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object")
	}
	speed, ok := m["speed"].(float64)
	if !ok || speed < 0 || m["lat"] == nil {
		return nil, nil
	}
	fuel, _ := m["fuel"].(float64)
	out := map[string]any{
		"vehicle":  m["vehicle_id"],
		"kmh":      speed * 3.6,
		"low_fuel": fuel < 0.2,
	}
	return record.EncodeJSON(out)
}

// TestHandWrittenMatchesEngine keeps the benchmark pair honest: both must
// produce the same bytes.
func TestHandWrittenMatchesEngine(t *testing.T) {
	p := compile(t, benchPipeline)
	var got []byte
	st, err := engine.NewStage(p, 0, func(_ context.Context, m engine.Message) error {
		got = m.Value
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Process(context.Background(), engine.Message{Topic: "in", Value: sample}); err != nil {
		t.Fatal(err)
	}
	want, err := handWritten(sample)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("engine produced %s, hand-written %s", got, want)
	}
}

// BenchmarkEngineWindow is the engine's cost per record for a keyed
// 1-minute tumbling count (the runtime's window benchmarks without Kafka):
// decode, window state through a changelogged store, and for emit update
// an output per record. A commit (flush, drain, apply) every 10,000
// records, as the runtime's exactly-once loop makes them, is included.
func BenchmarkEngineWindow(b *testing.B) {
	for _, emit := range []string{"update", "final"} {
		b.Run(emit, func(b *testing.B) {
			p := compileB(b, `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: bench}
spec:
  source: {topic: in}
  steps:
    - window: {tumbling: 1m, grace: 5s, emit: `+emit+`, aggregates: {readings: count}}
  sink: {topic: out}
`)
			logged := state.NewLogged(state.NewMemory(), 0)
			var n int
			st, err := engine.NewStage(p, 0, func(_ context.Context, m engine.Message) error {
				n++
				return nil
			}, engine.WithStores(func(string, int32) (catalog.Store, error) { return logged, nil }))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			keys := make([][]byte, 10_000)
			for i := range keys {
				keys[i] = fmt.Appendf(nil, "truck-%05d", i)
			}
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			b.SetBytes(int64(len(sample)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := engine.Message{Topic: "in", Key: keys[i%len(keys)], Value: sample, Offset: int64(i), Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
				if err := st.Process(ctx, m); err != nil {
					b.Fatal(err)
				}
				if i%10_000 == 9_999 {
					if err := st.FlushState(0); err != nil {
						b.Fatal(err)
					}
					logged.Drain()
					if err := logged.Committed(int64(i)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			if n == 0 && b.N > 100_000 {
				b.Fatal("nothing was produced")
			}
		})
	}
}
