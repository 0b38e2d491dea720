package observability

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the lag and skew series a runner exports (listed in the
// package doc). Stage series cover every partition of the stage, so every
// runner of a pipeline exports the same values: aggregate them with max by
// (pipeline, stage). Partition series are exported only by the runner that
// holds the partition's task.
type Metrics struct {
	stageLag, stageTimeLag, stageStatus, stageRate *prometheus.GaugeVec
	partLag, partTimeLag, partRate, partKeyShare   *prometheus.GaugeVec
	pipelineAge, pipelineStatus                    *prometheus.GaugeVec
	names                                          []string
}

// NewMetrics makes the series and registers them with reg (none when reg
// is nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	stage := []string{"pipeline", "stage", "topic"}
	part := []string{"pipeline", "stage", "partition"}
	var names []string
	g := func(name, help string, labels []string) *prometheus.GaugeVec {
		names = append(names, name)
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		stageLag:       g("sluice_stage_lag_records", "Records between the pipeline group's committed offsets and the high watermarks of a stage's input topic, summed over its partitions.", stage),
		stageTimeLag:   g("sluice_stage_time_lag_seconds", "Largest time lag of a stage's partitions: now minus the timestamp of the record at the committed offset.", stage),
		stageStatus:    g("sluice_stage_lag_status", "Burrow evaluation of a stage: 0 OK, 1 WARNING, 2 STOPPED, 3 STALLED, 4 REWIND.", stage),
		stageRate:      g("sluice_stage_consume_rate", "Records per second the pipeline's group commits on a stage's input topic.", stage),
		partLag:        g("sluice_partition_lag_records", "Lag in records of a partition whose task this runner holds.", part),
		partTimeLag:    g("sluice_partition_time_lag_seconds", "Time lag of a partition whose task this runner holds.", part),
		partRate:       g("sluice_partition_consume_rate", "Records per second committed on a partition whose task this runner holds.", part),
		partKeyShare:   g("sluice_partition_hot_key_share", "Share of a task's records (last window) that carry its most frequent key.", part),
		pipelineAge:    g("sluice_pipeline_event_age_seconds", "Age of the oldest record not yet through the pipeline: the largest time lag of its stages.", []string{"pipeline"}),
		pipelineStatus: g("sluice_pipeline_lag_status", "Worst Burrow evaluation of the pipeline's stages: 0 OK, 1 WARNING, 2 STOPPED, 3 STALLED, 4 REWIND.", []string{"pipeline"}),
	}
	m.names = names
	if reg == nil {
		return m, nil
	}
	for _, c := range m.all() {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) all() []*prometheus.GaugeVec {
	return []*prometheus.GaugeVec{m.stageLag, m.stageTimeLag, m.stageStatus, m.stageRate, m.partLag, m.partTimeLag, m.partRate, m.partKeyShare, m.pipelineAge, m.pipelineStatus}
}

// Set replaces pipeline's series with l's.
func (m *Metrics) Set(pipeline string, l PipelineLag) {
	m.Forget(pipeline)
	m.pipelineAge.WithLabelValues(pipeline).Set(float64(l.EventAgeMs) / 1000)
	m.pipelineStatus.WithLabelValues(pipeline).Set(float64(l.Status))
	for _, st := range l.Stages {
		s := strconv.Itoa(st.Stage)
		m.stageLag.WithLabelValues(pipeline, s, st.Topic).Set(float64(st.Lag))
		m.stageTimeLag.WithLabelValues(pipeline, s, st.Topic).Set(float64(st.MaxTimeLagMs) / 1000)
		m.stageStatus.WithLabelValues(pipeline, s, st.Topic).Set(float64(st.Status))
		m.stageRate.WithLabelValues(pipeline, s, st.Topic).Set(st.ConsumeRate)
		for _, p := range st.Partitions {
			if !p.Owned {
				continue
			}
			ps := strconv.Itoa(int(p.Partition))
			m.partLag.WithLabelValues(pipeline, s, ps).Set(float64(p.Lag))
			m.partTimeLag.WithLabelValues(pipeline, s, ps).Set(float64(p.TimeLagMs) / 1000)
			m.partRate.WithLabelValues(pipeline, s, ps).Set(p.ConsumeRate)
		}
	}
	seen := map[[2]int]bool{}
	for _, k := range l.HotKeys { // largest first: the first per task is its top key
		id := [2]int{k.Stage, int(k.Partition)}
		if !seen[id] {
			seen[id] = true
			m.partKeyShare.WithLabelValues(pipeline, strconv.Itoa(k.Stage), strconv.Itoa(int(k.Partition))).Set(k.Share)
		}
	}
}

// Names lists the series' names.
func (m *Metrics) Names() []string { return append([]string(nil), m.names...) }

// Forget drops pipeline's series.
func (m *Metrics) Forget(pipeline string) {
	for _, v := range m.all() {
		v.DeletePartialMatch(prometheus.Labels{"pipeline": pipeline})
	}
}
