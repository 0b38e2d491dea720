package agent

import (
	"encoding/json"
	"sort"

	"github.com/sluicehq/sluice/internal/agentproto"
)

// lagBudget is how much of a status report (the control plane takes
// at most 1 MiB of JSON, gitops/deploy.MaxReportBytes) the pipelines' partition detail may
// fill; over it, the pipelines with the most partitions report their
// stage summaries only, so a runner with many pipelines never has its
// heartbeat refused for its lag view.
const lagBudget = 192 << 10

// fitLag drops partition detail from rep's lag views, largest first,
// until the report fits lagBudget: first from the groups the runner
// watches as its fleet's monitor (they matter only for pipelines no
// runner runs), then from the pipelines it runs.
func fitLag(rep *agentproto.StatusReport) {
	size := func() int {
		b, _ := json.Marshal(rep)
		return len(b)
	}
	if size() <= lagBudget {
		return
	}
	for i := range rep.Monitor {
		rep.Monitor[i].Lag = rep.Monitor[i].Lag.WithoutPartitions()
	}
	if size() <= lagBudget {
		return
	}
	idx := make([]int, 0, len(rep.Pipelines))
	parts := make([]int, len(rep.Pipelines))
	for i, p := range rep.Pipelines {
		if p.Lag == nil {
			continue
		}
		for _, st := range p.Lag.Stages {
			parts[i] += len(st.Partitions)
		}
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return parts[idx[a]] > parts[idx[b]] })
	for _, i := range idx {
		rep.Pipelines[i].Lag = rep.Pipelines[i].Lag.WithoutPartitions()
		if size() <= lagBudget {
			return
		}
	}
}

// reportBudget is how large a whole status report may grow with its DLQ
// views (the control plane takes at most 1 MiB,
// gitops/deploy.MaxReportBytes): over it, the pipeline with the largest
// DLQ view keeps only its newer half of dead letters, again until it
// fits; totals per reason always stay.
const reportBudget = 960 << 10

// fitDLQ trims the DLQ views of rep until the report fits reportBudget.
func fitDLQ(rep *agentproto.StatusReport) {
	for {
		b, _ := json.Marshal(rep)
		if len(b) <= reportBudget {
			return
		}
		largest, size := -1, 0
		for i, p := range rep.Pipelines {
			if p.DLQ == nil || len(p.DLQ.Letters) == 0 {
				continue
			}
			d, _ := json.Marshal(p.DLQ)
			if len(d) > size {
				largest, size = i, len(d)
			}
		}
		if largest < 0 {
			return
		}
		v := *rep.Pipelines[largest].DLQ
		v.Letters = v.Letters[:len(v.Letters)/2]
		rep.Pipelines[largest].DLQ = &v
	}
}
