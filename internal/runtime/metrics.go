package runtime

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's Prometheus series. Every series carries the
// pipeline label; where it applies, stage and step (operator) too.
//
//	sluice_records_in_total{pipeline,stage}            records consumed
//	sluice_records_out_total{pipeline,topic}           records produced to outputs
//	sluice_dlq_total{pipeline,reason,step}             records sent to the DLQ
//	sluice_commits_total{pipeline,result}              transactions/commits (committed, aborted, failed)
//	sluice_commit_seconds{pipeline}                    time to end a transaction or commit offsets
//	sluice_pipeline_up{pipeline}                       1 while the pipeline runs, 0 while it is failed
//	sluice_pipeline_restarts_total{pipeline}           restarts after a failure
//	sluice_pipeline_partitions{pipeline}               partitions (tasks) assigned here
//	sluice_pipeline_group_lost_total{pipeline}         removals from the consumer group (rejoined, not restarted)
//	sluice_pipeline_stuck{pipeline}                    1 while a record is stuck in the operator chain
//	sluice_pipeline_stuck_total{pipeline}              records found stuck in the operator chain
//
// The lag and skew series (sluice_*_lag_*, sluice_*_time_lag_seconds,
// sluice_partition_hot_key_share, ...) are observability.Metrics, listed
// in that package's doc and set by each pipeline's lag tracker (lag.go).
type metrics struct {
	in         *prometheus.CounterVec
	out        *prometheus.CounterVec
	dlq        *prometheus.CounterVec
	commits    *prometheus.CounterVec
	commitSecs *prometheus.HistogramVec
	up         *prometheus.GaugeVec
	restarts   *prometheus.CounterVec
	partitions *prometheus.GaugeVec
	groupLost  *prometheus.CounterVec
	stuck      *prometheus.GaugeVec
	stuckTotal *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		in:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_in_total", Help: "Records consumed, per pipeline and stage."}, []string{"pipeline", "stage"}),
		out:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_out_total", Help: "Records produced, per pipeline and output topic."}, []string{"pipeline", "topic"}),
		dlq:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_dlq_total", Help: "Records sent to the dead-letter topic, per pipeline, reason and step."}, []string{"pipeline", "reason", "step"}),
		commits:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_commits_total", Help: "Transactions or offset commits, per pipeline and result."}, []string{"pipeline", "result"}),
		commitSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_commit_seconds", Help: "Time to end a transaction or commit offsets.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"pipeline"}),
		up:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_pipeline_up", Help: "1 while the pipeline runs, 0 while it is failed and waiting to restart."}, []string{"pipeline"}),
		restarts:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_pipeline_restarts_total", Help: "Restarts of a pipeline after a failure."}, []string{"pipeline"}),
		partitions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_pipeline_partitions", Help: "Input partitions (tasks) assigned to this runner."}, []string{"pipeline"}),
		groupLost:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_pipeline_group_lost_total", Help: "Times the runner found itself removed from the pipeline's consumer group (its heartbeats missed the session timeout) and rejoined."}, []string{"pipeline"}),
		stuck:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_pipeline_stuck", Help: "1 while a record has been in the pipeline's operator chain longer than the stuck timeout."}, []string{"pipeline"}),
		stuckTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_pipeline_stuck_total", Help: "Records found in the pipeline's operator chain longer than the stuck timeout."}, []string{"pipeline"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.in, m.out, m.dlq, m.commits, m.commitSecs, m.up, m.restarts, m.partitions, m.groupLost, m.stuck, m.stuckTotal} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// forget drops a removed pipeline's series so 10,000 pipelines coming and
// going do not grow /metrics forever.
func (m *metrics) forget(name string) {
	l := prometheus.Labels{"pipeline": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{m.in, m.out, m.dlq, m.commits, m.commitSecs, m.up, m.restarts, m.partitions, m.groupLost, m.stuck, m.stuckTotal} {
		v.DeletePartialMatch(l)
	}
}
