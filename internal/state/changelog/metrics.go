package changelog

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports restore progress as Prometheus gauges labelled by
// pipeline, step and partition (the series are listed in the package
// comment). Gauges rather than counters: each restore starts again from 0.
type Metrics struct {
	done, total, rate, restoring *prometheus.GaugeVec
}

// NewMetrics registers the restore series with reg (none when reg is nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"pipeline", "step", "partition"}
	m := &Metrics{
		done:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_state_restore_records_done", Help: "Changelog offsets restored so far by the current or last restore of a store."}, labels),
		total:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_state_restore_records_total", Help: "Changelog offsets the current or last restore of a store has to restore."}, labels),
		rate:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_state_restore_rate", Help: "Changelog offsets restored per second by the current or last restore of a store."}, labels),
		restoring: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_state_restoring", Help: "1 while a store is being restored from its changelog."}, labels),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.done, m.total, m.rate, m.restoring} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observer returns a progress callback for [Restorer.Restore] that updates
// the series of one store.
func (m *Metrics) Observer(pipeline, step string, partition int32) func(Progress) {
	l := prometheus.Labels{"pipeline": pipeline, "step": step, "partition": strconv.Itoa(int(partition))}
	done, total, rate, restoring := m.done.With(l), m.total.With(l), m.rate.With(l), m.restoring.With(l)
	return func(p Progress) {
		done.Set(float64(p.Done))
		total.Set(float64(p.Total))
		rate.Set(p.Rate)
		if p.Finished {
			restoring.Set(0)
		} else {
			restoring.Set(1)
		}
	}
}

// Forget drops a removed pipeline's series.
func (m *Metrics) Forget(pipeline string) {
	l := prometheus.Labels{"pipeline": pipeline}
	for _, v := range []*prometheus.GaugeVec{m.done, m.total, m.rate, m.restoring} {
		v.DeletePartialMatch(l)
	}
}
