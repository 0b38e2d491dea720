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
	keys := make([][]byte, 10_000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "truck-%05d", i)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, emit := range []string{"update", "final"} {
		b.Run(emit, func(b *testing.B) {
			benchStateful(b, "{topic: in}", `    - window: {tumbling: 1m, grace: 5s, emit: `+emit+`, aggregates: {readings: count}}`,
				func(i int) engine.Message {
					return engine.Message{Topic: "in", Key: keys[i%len(keys)], Value: sample, Offset: int64(i), Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
				}, emit == "update")
		})
	}
}

// BenchmarkEngineDedupe is the engine's side of BenchmarkRunnerDedupe
// (internal/runtime): ids by vehicle within 10m, 100,000 vehicles each
// reporting every 1000s of event time, every tenth record a redelivery
// of the reading five records before it, which is dropped.
func BenchmarkEngineDedupe(b *testing.B) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	values := make([][]byte, 100_000)
	for i := range values {
		values[i] = fmt.Appendf(nil, `{"vehicle_id":"truck-%05d","speed":23.7,"lat":52.370216,"lon":4.895168,"heading":271,"fuel":0.62,"driver":{"id":"d-17","shift":"early"},"engine_on":true}`, i)
	}
	benchStateful(b, "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - dedupe: {by: vehicle_id, within: 10m}`,
		func(i int) engine.Message {
			if i%10 == 9 {
				i -= 5
			}
			return engine.Message{Topic: "in", Value: values[i%len(values)], Offset: int64(i), Timestamp: base.Add(time.Duration(i) * 10 * time.Millisecond)}
		}, true)
}

// BenchmarkEngineJoin is the engine's side of BenchmarkRunnerJoin: a
// stream-table inner join of the sample against 10,000 rows, which are
// read before the stream.
func BenchmarkEngineJoin(b *testing.B) {
	const rows = 10_000
	values := make([][]byte, rows)
	for i := range values {
		values[i] = fmt.Appendf(nil, `{"vehicle_id":"truck-%05d","speed":23.7,"lat":52.370216,"lon":4.895168,"heading":271,"fuel":0.62,"driver":{"id":"d-17","shift":"early"},"engine_on":true}`, i)
	}
	benchStateful(b, "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - join: {table: vehicles, on: vehicle_id, as: vehicle}`,
		func(i int) engine.Message {
			if i < rows {
				return engine.Message{Topic: "vehicles", Key: fmt.Appendf(nil, "truck-%05d", i),
					Value: fmt.Appendf(nil, `{"model":"FH16","depot":"AMS-%d","capacity_kg":%d}`, i%7, 18_000+i)}
			}
			return engine.Message{Topic: "in", Value: values[i%rows], Offset: int64(i)}
		}, true)
}

// benchStateful runs one stateful step over the records msg makes, record
// i for iteration i, with a changelogged memory store committed every
// 10,000 records. With outputs set, most records must produce one.
func benchStateful(b *testing.B, source, steps string, msg func(i int) engine.Message, outputs bool) {
	p := compileB(b, `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: bench}
spec:
  source: `+source+`
  steps:
`+steps+`
  sink: {topic: out}
`)
	if len(p.Stages) != 1 {
		b.Fatalf("%d stages, want 1", len(p.Stages))
	}
	logged := state.NewLogged(state.NewMemory(), 0)
	var n, dead int
	st, err := engine.NewStage(p, 0, func(_ context.Context, m engine.Message) error {
		if m.Topic == p.DLQ {
			dead++
		}
		n++
		return nil
	}, engine.WithStores(func(string, int32) (catalog.Store, error) { return logged, nil }))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.SetBytes(int64(len(sample)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.Process(ctx, msg(i)); err != nil {
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
	if dead > 0 {
		b.Fatalf("%d records went to the DLQ", dead)
	}
	if outputs && b.N > 100_000 && n < b.N/2 {
		b.Fatalf("%d outputs for %d records", n, b.N)
	}
}
