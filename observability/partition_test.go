package observability

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// step is one sample of a synthetic history: the end offset, the committed
// offset and whether a live member holds the partition, 10 s apart.
type step struct {
	end, committed int64
	owned          bool
}

func replay(p *Partition, steps []step) []PartitionLag {
	var out []PartitionLag
	for i, s := range steps {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		out = append(out, p.Observe(Sample{At: at, End: s.end, Start: 0, Committed: s.committed, Owned: s.owned,
			Head: at.Add(-time.Duration(s.end-s.committed) * time.Second)}))
	}
	return out
}

// Synthetic commit histories through Partition: what Burrow would say of
// the same commits, plus the states that keep false numbers out.
func TestLagPartitionHistories(t *testing.T) {
	grow := func(n int, f func(i int) step) []step {
		var s []step
		for i := range n {
			s = append(s, f(i))
		}
		return s
	}
	cases := []struct {
		name  string
		steps []step
		state State
		want  Status
	}{
		{"keeping up", grow(12, func(i int) step { return step{int64(100 * i), int64(100 * i), true} }), StateActive, StatusOK},
		{"slow consumer: lag grows", grow(12, func(i int) step { return step{int64(100 * i), int64(60 * i), true} }), StateActive, StatusWarning},
		// A member holds the partition but its offset does not move.
		{"stalled", grow(12, func(i int) step { return step{int64(100 * i), 50, true} }), StateActive, StatusStalled},
		// Nobody holds the partition and nothing commits: once the time
		// since the last commit exceeds the window's span, and the recent
		// high watermarks (Burrow's broker offsets) no longer reach back to
		// the committed offset, it is "stopped".
		{"stopped", append(grow(6, func(i int) step { return step{int64(100*i + 50), int64(100 * i), true} }),
			grow(10, func(i int) step { return step{int64(700 + 100*i), 500, false} })...), StateActive, StatusStopped},
		{"rewind", []step{{100, 10, true}, {200, 50, true}, {300, 90, true}, {400, 20, true}, {500, 100, true}}, StateActive, StatusRewind},
		{"idle partition", grow(12, func(int) step { return step{100, 100, true} }), StateIdle, StatusOK},
		{"no commit", grow(5, func(i int) step { return step{int64(100 * i), -1, false} }), StateNoCommit, StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := replay(NewPartition(10), c.steps)
			last := got[len(got)-1]
			if last.State != c.state || last.Status != c.want {
				t.Fatalf("last sample: state %s status %s (%s), want %s %s", last.State, last.Status, last.Reason, c.state, c.want)
			}
			if last.Status != StatusOK && last.Reason == "" {
				t.Error("a status other than OK without a reason")
			}
			if last.State == StateIdle || last.State == StateNoCommit {
				if last.Lag != 0 || last.TimeLagMs != 0 {
					t.Errorf("%s with lag %d, time lag %d ms: want zeros", last.State, last.Lag, last.TimeLagMs)
				}
			}
		})
	}
}

// A committed offset below the log start is a compacted gap: lag counts
// what remains, not records that no longer exist.
func TestLagCompactedGap(t *testing.T) {
	p := NewPartition(0)
	got := p.Observe(Sample{At: t0, End: 1000, Start: 900, Committed: 10, Head: t0.Add(-time.Minute)})
	if got.State != StateCompactedGap || got.Lag != 100 || got.TimeLagMs != 60000 {
		t.Fatalf("got %+v", got)
	}
}

// Only transaction markers after the committed offset: caught up.
func TestLagDrainedIsZero(t *testing.T) {
	p := NewPartition(0)
	got := p.Observe(Sample{At: t0, End: 11, Start: 0, Committed: 10, Owned: true, Drained: true})
	if got.Lag != 0 || got.TimeLagMs != 0 || got.Status != StatusOK {
		t.Fatalf("got %+v", got)
	}
}

// Time lag is read from the head record's timestamp, and rates come from
// the offsets' progress between samples.
func TestLagTimeLagAndRates(t *testing.T) {
	p := NewPartition(0)
	p.Observe(Sample{At: t0, End: 100, Committed: 50, Head: t0.Add(-3 * time.Second)})
	got := p.Observe(Sample{At: t0.Add(10 * time.Second), End: 300, Committed: 150, Head: t0.Add(-1500 * time.Millisecond)})
	if got.TimeLagMs != 11500 {
		t.Errorf("time lag %d ms, want 11500", got.TimeLagMs)
	}
	if got.ConsumeRate != 10 || got.ProduceRate != 20 {
		t.Errorf("rates %v/%v, want 10/20", got.ConsumeRate, got.ProduceRate)
	}
}

func TestLagRollupNamesSlowestStage(t *testing.T) {
	l := PipelineLag{Stages: []StageLag{
		SummarizeStage(0, "in", []PartitionLag{{Partition: 0, Lag: 5, TimeLagMs: 2000}, {Partition: 1}}),
		SummarizeStage(1, "repart", []PartitionLag{{Partition: 0, Lag: 50, TimeLagMs: 9000, Status: StatusWarning, Reason: "lag not decreasing"}}),
	}}
	Rollup(&l)
	if l.Status != StatusWarning || l.Slowest == nil || l.Slowest.Stage != 1 || l.EventAgeMs != 9000 {
		t.Fatalf("rollup %+v slowest %+v", l, l.Slowest)
	}
	if l.Stages[0].Lag != 5 || l.Stages[0].MaxTimeLagMs != 2000 {
		t.Errorf("stage 0 summary %+v", l.Stages[0])
	}
	caught := PipelineLag{Stages: []StageLag{SummarizeStage(0, "in", []PartitionLag{{Partition: 0}})}}
	Rollup(&caught)
	if caught.Slowest != nil {
		t.Errorf("a caught-up pipeline names a slowest stage: %+v", caught.Slowest)
	}
}
