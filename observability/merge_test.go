package observability

import (
	"testing"
	"time"
)

// Two runners each hold half of the partitions and each sampled all of
// them: the merged view takes each partition from its owner, and the
// skew view names the hot partition and the hot key with its runner.
func TestLagMergeAndSkew(t *testing.T) {
	mk := func(at time.Time, owned map[int32]bool, lagOf func(int32) int64, keys []HotKey) *PipelineLag {
		var parts []PartitionLag
		for p := range int32(4) {
			parts = append(parts, PartitionLag{Partition: p, Lag: lagOf(p), ConsumeRate: 10, Owned: owned[p]})
		}
		l := &PipelineLag{SampledAt: at, Stages: []StageLag{SummarizeStage(0, "in", parts)}, HotKeys: keys}
		Rollup(l)
		return l
	}
	stale := func(int32) int64 { return 999 }
	fresh := func(p int32) int64 {
		if p == 3 {
			return 400
		}
		return 10
	}
	a := RunnerReport{Runner: "a", Partitions: []int32{0, 1}, Lag: mk(t0.Add(time.Second), map[int32]bool{0: true, 1: true}, fresh, nil)}
	b := RunnerReport{Runner: "b", Partitions: []int32{2, 3}, Lag: mk(t0, map[int32]bool{2: true, 3: true}, func(p int32) int64 {
		if p < 2 {
			return stale(p)
		}
		return fresh(p)
	}, []HotKey{{Hash: "00000000000000ff", Stage: 0, Topic: "in", Partition: 3, Count: 30, Records: 100, Share: 0.3}})}
	a.Lag.Restores = []Restore{{Step: "count", Partition: 1, Restoring: true, Done: 5, Total: 10, Rate: 1, ETASeconds: 5}}
	b.Lag.Restores = []Restore{{Step: "count", Partition: 0, Done: 7, Total: 7}}
	m := Merge([]RunnerReport{b, a})
	if len(m.Restores) != 2 || m.Restores[0].Runner != "b" || m.Restores[1].Runner != "a" || !m.Restores[1].Restoring {
		t.Errorf("restores %+v: want both runners', by partition", m.Restores)
	}
	if m == nil || len(m.Stages) != 1 || len(m.Stages[0].Partitions) != 4 {
		t.Fatalf("merged %+v", m)
	}
	for _, p := range m.Stages[0].Partitions {
		if p.Lag == 999 {
			t.Errorf("partition %d taken from a runner that does not own it", p.Partition)
		}
	}
	if len(m.HotKeys) != 1 || m.HotKeys[0].Runner != "b" {
		t.Fatalf("hot keys %+v", m.HotKeys)
	}
	v := Skew(m, []RunnerReport{a, b})
	st := v.Stages[0]
	if st.MaxLagPartition != 3 || st.LagSkew != 40 {
		t.Errorf("lag skew %v on %d, want 40 on 3", st.LagSkew, st.MaxLagPartition)
	}
	if len(st.Flagged) != 1 || st.Flagged[0].Partition != 3 || len(st.Flagged[0].Reasons) != 2 {
		t.Errorf("flagged %+v", st.Flagged)
	}
	if v.RunnerImbalance != 1 || v.Runners[0].ConsumeRate != 20 {
		t.Errorf("runners %+v imbalance %v", v.Runners, v.RunnerImbalance)
	}
	if Merge(nil) != nil {
		t.Error("merging nothing gave a view")
	}
}
