package driver_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/record"
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
