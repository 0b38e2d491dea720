package observability

import (
	"sort"
	"time"
)

// RunnerReport is what one runner last reported about one pipeline.
type RunnerReport struct {
	Runner string
	// Partitions are the source partitions (tasks) the runner holds.
	Partitions []int32
	Lag        *PipelineLag
}

// MaxHotKeys bounds the hot keys of a merged view.
const MaxHotKeys = 20

// Merge combines the reports of every runner of a pipeline into one view.
// Every runner samples every partition, so the stage summaries are the
// freshest report's; partition detail is merged per partition, preferring
// the runner that holds its task, then the freshest sample; hot keys are
// the union, largest share first, with their runner named. It returns nil
// when no report has lag.
func Merge(reports []RunnerReport) *PipelineLag {
	var fresh *RunnerReport
	for i := range reports {
		r := &reports[i]
		if r.Lag != nil && (fresh == nil || r.Lag.SampledAt.After(fresh.Lag.SampledAt)) {
			fresh = r
		}
	}
	if fresh == nil {
		return nil
	}
	out := *fresh.Lag
	out.Stages = make([]StageLag, len(fresh.Lag.Stages))
	out.HotKeys, out.Restores, out.Stores = nil, nil, nil
	type pick struct {
		p  PartitionLag
		at time.Time
	}
	for i, st := range fresh.Lag.Stages {
		best := map[int32]pick{}
		for _, r := range reports {
			if r.Lag == nil {
				continue
			}
			for _, rs := range r.Lag.Stages {
				if rs.Stage != st.Stage {
					continue
				}
				for _, p := range rs.Partitions {
					cur, ok := best[p.Partition]
					better := !ok || p.Owned && !cur.p.Owned ||
						p.Owned == cur.p.Owned && r.Lag.SampledAt.After(cur.at)
					if better {
						best[p.Partition] = pick{p, r.Lag.SampledAt}
					}
				}
			}
		}
		st.Partitions = make([]PartitionLag, 0, len(best))
		for _, b := range best {
			st.Partitions = append(st.Partitions, b.p)
		}
		sort.Slice(st.Partitions, func(a, b int) bool { return st.Partitions[a].Partition < st.Partitions[b].Partition })
		out.Stages[i] = st
	}
	for _, r := range reports {
		if r.Lag == nil {
			continue
		}
		for _, k := range r.Lag.HotKeys {
			k.Runner = r.Runner
			out.HotKeys = append(out.HotKeys, k)
		}
	}
	for _, r := range reports {
		if r.Lag == nil {
			continue
		}
		for _, rs := range r.Lag.Restores {
			rs.Runner = r.Runner
			out.Restores = append(out.Restores, rs)
		}
	}
	for _, r := range reports {
		if r.Lag == nil {
			continue
		}
		for _, ss := range r.Lag.Stores {
			ss.Runner = r.Runner
			out.Stores = append(out.Stores, ss)
		}
	}
	sort.SliceStable(out.Stores, func(i, j int) bool {
		a, b := out.Stores[i], out.Stores[j]
		if a.Step != b.Step {
			return a.Step < b.Step
		}
		return a.Partition < b.Partition
	})
	sort.SliceStable(out.Restores, func(i, j int) bool {
		a, b := out.Restores[i], out.Restores[j]
		if a.Step != b.Step {
			return a.Step < b.Step
		}
		return a.Partition < b.Partition
	})
	sortHotKeys(out.HotKeys)
	if len(out.HotKeys) > MaxHotKeys {
		out.HotKeys = out.HotKeys[:MaxHotKeys]
	}
	return &out
}

func sortHotKeys(ks []HotKey) {
	sort.SliceStable(ks, func(i, j int) bool {
		if ks[i].Share != ks[j].Share {
			return ks[i].Share > ks[j].Share
		}
		return ks[i].Count > ks[j].Count
	})
}

// SkewView is how unevenly a pipeline's work is spread.
type SkewView struct {
	SampledAt time.Time   `json:"sampled_at"`
	Stages    []StageSkew `json:"stages"`
	// Runners is the load per runner; RunnerImbalance is the most
	// partitions any runner holds over the mean (1 is even).
	Runners         []RunnerLoad `json:"runners"`
	RunnerImbalance float64      `json:"runner_imbalance"`
	HotKeys         []HotKey     `json:"hot_keys"`
}

// StageSkew is partition skew within a stage: the largest partition over
// the median, for lag and for throughput (consume rate). The median is
// floored at 1 (record, record per second), so idle partitions do not
// divide by zero.
type StageSkew struct {
	Stage            int                `json:"stage"`
	Topic            string             `json:"topic"`
	LagSkew          float64            `json:"lag_skew"`
	RateSkew         float64            `json:"rate_skew"`
	MaxLagPartition  int32              `json:"max_lag_partition"`
	MaxRatePartition int32              `json:"max_rate_partition"`
	Flagged          []FlaggedPartition `json:"flagged"`
}

// FlaggedPartition is a partition that stands out, and why.
type FlaggedPartition struct {
	Partition int32    `json:"partition"`
	Reasons   []string `json:"reasons"`
}

// RunnerLoad is one runner's share of a pipeline.
type RunnerLoad struct {
	Runner      string  `json:"runner"`
	Partitions  int     `json:"partitions"`
	ConsumeRate float64 `json:"consume_rate"`
}

// Skew thresholds: a partition is flagged at SkewFactor times the
// median, and a hot key at HotKeyShare of its task's records.
const (
	SkewFactor  = 2.0
	HotKeyShare = 0.2
)

// Skew computes the skew view of a merged pipeline view and its runners'
// reports.
func Skew(l *PipelineLag, reports []RunnerReport) SkewView {
	v := SkewView{Stages: []StageSkew{}, Runners: []RunnerLoad{}, HotKeys: []HotKey{}}
	if l == nil {
		return v
	}
	v.SampledAt = l.SampledAt
	for _, k := range l.HotKeys {
		if k.Share >= HotKeyShare {
			v.HotKeys = append(v.HotKeys, k)
		}
	}
	owner := map[int32]string{}
	for _, r := range reports {
		load := RunnerLoad{Runner: r.Runner, Partitions: len(r.Partitions)}
		for _, p := range r.Partitions {
			owner[p] = r.Runner
		}
		v.Runners = append(v.Runners, load)
	}
	for si, st := range l.Stages {
		ss := StageSkew{Stage: st.Stage, Topic: st.Topic, Flagged: []FlaggedPartition{}}
		if len(st.Partitions) == 0 {
			v.Stages = append(v.Stages, ss)
			continue
		}
		lags := make([]float64, len(st.Partitions))
		rates := make([]float64, len(st.Partitions))
		maxLag, maxRate := 0, 0
		for i, p := range st.Partitions {
			lags[i], rates[i] = float64(p.Lag), p.ConsumeRate
			if p.Lag > st.Partitions[maxLag].Lag {
				maxLag = i
			}
			if p.ConsumeRate > st.Partitions[maxRate].ConsumeRate {
				maxRate = i
			}
			if si == 0 {
				for j := range v.Runners {
					if v.Runners[j].Runner == owner[p.Partition] {
						v.Runners[j].ConsumeRate += p.ConsumeRate
					}
				}
			}
		}
		ss.MaxLagPartition, ss.MaxRatePartition = st.Partitions[maxLag].Partition, st.Partitions[maxRate].Partition
		medLag, medRate := max(median(lags), 1), max(median(rates), 1)
		ss.LagSkew = maxOf(lags) / medLag
		ss.RateSkew = maxOf(rates) / medRate
		for _, p := range st.Partitions {
			var why []string
			if float64(p.Lag) >= SkewFactor*medLag && p.Lag > 1 {
				why = append(why, "lag above twice the median")
			}
			if p.ConsumeRate >= SkewFactor*medRate && p.ConsumeRate > 1 {
				why = append(why, "throughput above twice the median")
			}
			for _, k := range v.HotKeys {
				if k.Stage == st.Stage && k.Partition == p.Partition {
					why = append(why, "hot key "+k.Hash)
				}
			}
			if len(why) > 0 {
				ss.Flagged = append(ss.Flagged, FlaggedPartition{Partition: p.Partition, Reasons: why})
			}
		}
		v.Stages = append(v.Stages, ss)
	}
	if n := len(v.Runners); n > 0 {
		total, most := 0, 0
		for _, r := range v.Runners {
			total += r.Partitions
			most = max(most, r.Partitions)
		}
		if total > 0 {
			v.RunnerImbalance = float64(most) / (float64(total) / float64(n))
		}
	}
	return v
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
