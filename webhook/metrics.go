package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook's Prometheus series.
type Metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	violations *prometheus.CounterVec
	restored   *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "palisade_admission_requests_total",
			Help: "Admission requests by kind, operation and decision.",
		}, []string{"kind", "operation", "decision"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "palisade_admission_duration_seconds",
			Help:    "Time to decide an admission request, by webhook path.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}, []string{"webhook"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "palisade_admission_violations_total",
			Help: "Rule violations by rule ID and effective action.",
		}, []string{"rule", "action"}),
		restored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "palisade_baseline_changes_total",
			Help: "Baseline NetworkPolicy writes by the reconciler or the pod path, by operation (create, update, delete).",
		}, []string{"operation"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.violations, m.restored} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
