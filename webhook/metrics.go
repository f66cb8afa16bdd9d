package webhook

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/palisade-dev/palisade/audit"
)

// OtherLabel replaces a label value outside the known set, so that a
// request cannot mint series.
const OtherLabel = "other"

// Refusal reasons: why a request never reached a handler
// (palisade_webhook_refused_requests_total).
const (
	RefusedNoCertificate        = "no-certificate"        // 401: no client certificate
	RefusedUntrustedCertificate = "untrusted-certificate" // 403: not signed by the client CA, expired, not for client auth
	RefusedNameNotAllowed       = "name-not-allowed"      // 403: signed, but not one of the allowed names
	RefusedOverloaded           = "overloaded"            // 429: too many requests in flight
)

var refusalReasons = []string{RefusedNoCertificate, RefusedUntrustedCertificate, RefusedNameNotAllowed, RefusedOverloaded}

// countedKinds are the kinds some judge understands (governedKinds);
// any other kind is counted as "other".
func countedKinds() []string {
	var kinds []string
	for _, gks := range governedKinds {
		for gk := range gks {
			kind := gk[strings.LastIndex(gk, "/")+1:]
			if !slices.Contains(kinds, kind) {
				kinds = append(kinds, kind)
			}
		}
	}
	return kinds
}

var operations = []string{"CREATE", "UPDATE", "DELETE", "CONNECT"}

// maxRuleLabels bounds the distinct rule IDs counted by name: they come
// from the standard and the custom rules, but a huge rule set must not
// make huge series either.
const maxRuleLabels = 256

// Metrics are the webhook's Prometheus series. Every label value taken
// from a request is one of a known set, else "other".
type Metrics struct {
	requests   boundedCounter
	duration   boundedHistogram
	violations boundedCounter
	restored   boundedCounter
	refused    boundedCounter
	inFlight   prometheus.Gauge
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	decisions := make([]string, 0, len(audit.Decisions()))
	for _, d := range audit.Decisions() {
		decisions = append(decisions, string(d))
	}
	m := &Metrics{
		requests: newBoundedCounter(prometheus.CounterOpts{
			Name: "palisade_admission_requests_total",
			Help: "Admission requests by kind, operation and decision.",
		}, []string{"kind", "operation", "decision"}, countedKinds(), operations, decisions),
		duration: boundedHistogram{vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "palisade_admission_duration_seconds",
			Help:    "Time to decide an admission request, by webhook path.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}, []string{"webhook"}), bound: newCapped(64)},
		violations: newBoundedCounter(prometheus.CounterOpts{
			Name: "palisade_admission_violations_total",
			Help: "Rule violations by rule ID and effective action.",
		}, []string{"rule", "action"}, nil, []string{"deny", "warn", "dryrun"}),
		restored: newBoundedCounter(prometheus.CounterOpts{
			Name: "palisade_baseline_changes_total",
			Help: "Baseline NetworkPolicy writes by the reconciler or the pod path, by operation (create, update, delete).",
		}, []string{"operation"}, []string{"create", "update", "delete"}),
		refused: newBoundedCounter(prometheus.CounterOpts{
			Name: "palisade_webhook_refused_requests_total",
			Help: "Requests refused before any handler saw them (never judged, recorded or turned into an Event), by reason: no-certificate, untrusted-certificate, name-not-allowed, overloaded.",
		}, []string{"reason"}, refusalReasons),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "palisade_webhook_requests_in_flight",
			Help: "Authenticated admission requests being served.",
		}),
	}
	m.violations.bounds[0] = newCapped(maxRuleLabels)
	for _, c := range []prometheus.Collector{m.requests.vec, m.duration.vec, m.violations.vec, m.restored.vec, m.refused.vec, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	// The refusal series exist from the start, so that "no refusals" is
	// a zero, not an absent series an alert cannot tell from a scrape gap.
	for _, r := range refusalReasons {
		m.refused.vec.WithLabelValues(r)
	}
	return m, nil
}

// refuse counts one request refused for reason; m may be nil.
func (m *Metrics) refuse(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

// labelBound maps a label value to itself when known, else OtherLabel.
type labelBound func(string) string

func allowed(values []string) labelBound {
	return func(v string) string {
		if slices.Contains(values, v) {
			return v
		}
		return OtherLabel
	}
}

// newCapped admits the first n distinct values seen, for labels whose
// set is fixed by configuration rather than known in the code.
func newCapped(n int) labelBound {
	var mu sync.Mutex
	seen := map[string]struct{}{}
	return func(v string) string {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := seen[v]; ok {
			return v
		}
		if len(seen) >= n || v == OtherLabel {
			return OtherLabel
		}
		seen[v] = struct{}{}
		return v
	}
}

type boundedCounter struct {
	vec    *prometheus.CounterVec
	bounds []labelBound
}

// newBoundedCounter bounds each label to its allowed values; a nil list
// is filled in by the caller.
func newBoundedCounter(opts prometheus.CounterOpts, labels []string, values ...[]string) boundedCounter {
	b := boundedCounter{vec: prometheus.NewCounterVec(opts, labels), bounds: make([]labelBound, len(labels))}
	for i, v := range values {
		if v != nil {
			b.bounds[i] = allowed(v)
		}
	}
	return b
}

// WithLabelValues is prometheus.CounterVec's, with each value bounded.
func (b boundedCounter) WithLabelValues(values ...string) prometheus.Counter {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = v
		if i < len(b.bounds) && b.bounds[i] != nil {
			out[i] = b.bounds[i](v)
		}
	}
	return b.vec.WithLabelValues(out...)
}

type boundedHistogram struct {
	vec   *prometheus.HistogramVec
	bound labelBound
}

// WithLabelValues is prometheus.HistogramVec's, with the value bounded.
func (b boundedHistogram) WithLabelValues(value string) prometheus.Observer {
	return b.vec.WithLabelValues(b.bound(value))
}
