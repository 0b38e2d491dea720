package agent

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/observability"
)

// A runner with many wide pipelines still posts a report the control plane
// accepts: partition detail goes, stage summaries and hot keys stay.
func TestLagReportFitsBudget(t *testing.T) {
	rep := &agentproto.StatusReport{}
	for i := range 60 {
		var parts []observability.PartitionLag
		for p := range int32(64) {
			parts = append(parts, observability.PartitionLag{Partition: p, State: observability.StateActive, End: 1 << 40, Committed: 1 << 39,
				Lag: 1 << 39, TimeLagMs: 123456, ConsumeRate: 1234.5, ProduceRate: 1234.5, Owned: true})
		}
		l := &observability.PipelineLag{SampledAt: time.Now(), Stages: []observability.StageLag{observability.SummarizeStage(0, "in", parts)},
			HotKeys: []observability.HotKey{{Hash: "00ff00ff00ff00ff", Partition: 3, Count: 10, Records: 30, Share: 0.33}}}
		observability.Rollup(l)
		rep.Pipelines = append(rep.Pipelines, agentproto.PipelineStatus{Name: fmt.Sprintf("p%d", i), Lag: l.ForReport()})
	}
	fitLag(rep)
	b, _ := json.Marshal(rep)
	if len(b) > lagBudget {
		t.Fatalf("report of %d bytes, budget %d", len(b), lagBudget)
	}
	for _, p := range rep.Pipelines {
		if p.Lag == nil || len(p.Lag.Stages) != 1 || p.Lag.Stages[0].Lag != 64<<39 || len(p.Lag.HotKeys) != 1 {
			t.Fatalf("pipeline %s lost its summary: %+v", p.Name, p.Lag)
		}
	}
	small := &agentproto.StatusReport{Pipelines: rep.Pipelines[:1]}
	small.Pipelines[0].Lag.Stages[0].Partitions = []observability.PartitionLag{{Partition: 0}}
	fitLag(small)
	if len(small.Pipelines[0].Lag.Stages[0].Partitions) != 1 {
		t.Error("a small report lost its partitions")
	}
}

// A monitor's report sheds the partition detail of the groups it watches
// before that of the pipelines it runs.
func TestLagReportMonitorFirst(t *testing.T) {
	mk := func() *observability.PipelineLag {
		var parts []observability.PartitionLag
		for p := range int32(256) {
			parts = append(parts, observability.PartitionLag{Partition: p, State: observability.StateActive, End: 1 << 40, Committed: 1 << 39,
				Lag: 1 << 39, TimeLagMs: 123456, Status: observability.StatusStopped, Reason: "no commits for 5m0s (a long reason to take room)"})
		}
		return &observability.PipelineLag{Stages: []observability.StageLag{observability.SummarizeStage(0, "in", parts)}}
	}
	rep := &agentproto.StatusReport{Pipelines: []agentproto.PipelineStatus{{Name: "run", Lag: mk()}}}
	for i := range 4 {
		rep.Monitor = append(rep.Monitor, agentproto.MonitoredLag{Name: fmt.Sprintf("w%d", i), Lag: mk()})
	}
	fitLag(rep)
	if len(rep.Pipelines[0].Lag.Stages[0].Partitions) != 256 {
		t.Fatal("the pipeline it runs lost its partitions while the monitor's views could shrink")
	}
	for _, m := range rep.Monitor {
		if len(m.Lag.Stages[0].Partitions) != 0 || m.Lag.Stages[0].Lag != 256<<39 {
			t.Fatalf("monitor view %s: %d partitions, lag %d", m.Name, len(m.Lag.Stages[0].Partitions), m.Lag.Stages[0].Lag)
		}
	}
}
