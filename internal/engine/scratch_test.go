package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/engine"
)

// TestStatefulStagesReuseRecords: a stage whose stateful steps keep
// nothing of a record (engine.Transient) decodes message after message
// into one scratch record, as a filter and map stage does, and its outputs
// and dead letters are those of the same stage allocating a record per
// message. The inputs spread over keys and event time, so windows open,
// update and close, ids repeat within and beyond the horizon, and table
// rows are found and missed.
func TestStatefulStagesReuseRecords(t *testing.T) {
	tests := []struct {
		name    string
		source  string
		steps   string
		scratch bool
	}{
		{"window count", "{topic: in}", `    - window: {tumbling: 1m, grace: 0s, emit: update, aggregates: {n: count}}`, true},
		{"window of numbers", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - filter: speed != nil
    - window:
        by: vehicle_id
        tumbling: 1m
        grace: 10s
        aggregates: {s: {sum: speed}, m: {max: lat}, a: {avg: fuel}, d: {count_distinct: driver.id}, p: {percentiles: speed, at: [50]}}`, true},
		{"window keeping values", "{topic: in}", `    - window: {tumbling: 1m, grace: 0s, emit: update, aggregates: {f: {first: note}}}`, false},
		{"top_n", "{topic: in}", `    - top_n: {tumbling: 1m, grace: 0s, emit: update, n: 2, rank: speed, value: vehicle_id}`, false},
		{"dedupe", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - dedupe: {by: vehicle_id, within: 1m}`, true},
		{"dedupe then map", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - dedupe: {by: vehicle_id, within: 30s}
    - map: {v: vehicle_id, s: speed}`, true},
		{"table join", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - join: {table: t, on: vehicle_id, as: row, type: left}`, true},
		{"table join then map", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - join: {table: t, on: vehicle_id, as: row}
    - map: {v: vehicle_id, r: row}`, true},
		{"stream join", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - join: {stream: t, on: vehicle_id, as: o, within: 1m, grace: 0s}`, false},
	}
	inputs := differentialInputs()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := compilePlan(t, tt.source, tt.steps)
			if len(p.Stages) != 1 {
				t.Fatalf("%d stages, want 1:\n%s", len(p.Stages), p.Describe())
			}
			run := func(opts ...engine.StageOption) ([]string, *engine.Stage) {
				var out []string
				st := textStage(t, p, &out, opts...)
				base := time.UnixMilli(1_700_000_000_000)
				for i, v := range inputs {
					m := engine.Message{Topic: "in", Partition: 1, Offset: int64(i), Key: fmt.Appendf(nil, "k%d", i%3), Value: v,
						Timestamp: base.Add(time.Duration(i) * 7 * time.Second)}
					if i%4 == 0 {
						// A table row (or the other stream's record) for the
						// vehicle of the next inputs.
						row := engine.Message{Topic: "t", Partition: 1, Offset: int64(i), Key: []byte("v1"),
							Value: fmt.Appendf(nil, `{"n":%d}`, i), Timestamp: m.Timestamp}
						if err := st.Process(context.Background(), row); err != nil {
							t.Fatal(err)
						}
					}
					if err := st.Process(context.Background(), m); err != nil {
						t.Fatal(err)
					}
				}
				if err := st.Advance(context.Background(), 1, catalog.EndOfTime); err != nil {
					t.Fatal(err)
				}
				return out, st
			}
			reused, st := run()
			if st.ReusesScratch() != tt.scratch {
				t.Errorf("the stage reuses its scratch record: %v, want %v", st.ReusesScratch(), tt.scratch)
			}
			own, _ := run(engine.WithoutScratch())
			if len(reused) == 0 {
				t.Fatal("the stage emitted nothing")
			}
			requireSameMessages(t, "reusing a record", reused, "a record per message", own)
		})
	}
}
