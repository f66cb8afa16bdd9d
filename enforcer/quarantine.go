package enforcer

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// quarantineMetrics follow the pod interfaces enforced before their pod
// is known.
type quarantineMetrics struct {
	quarantined prometheus.Gauge
	entered     prometheus.Counter
	attach      prometheus.Histogram
	released    prometheus.Histogram
}

func newQuarantineMetrics(reg prometheus.Registerer) (*quarantineMetrics, error) {
	m := &quarantineMetrics{
		quarantined: prometheus.NewGauge(prometheus.GaugeOpts{Name: "palisade_enforcer_quarantined_interfaces",
			Help: "Pod interfaces enforced in quarantine (nothing in, nothing out) because their pod is not known yet."}),
		entered: prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_enforcer_quarantines_total",
			Help: "Pod interfaces put in quarantine as they appeared."}),
		attach: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "palisade_enforcer_quarantine_attach_seconds",
			Help:    "Time from the notification of a new pod interface to its programs attached in quarantine: how long it ran unenforced, less the kernel's delivery of the notification.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}}),
		released: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "palisade_enforcer_quarantine_release_seconds",
			Help:    "Time from a pod interface's quarantine to the end of the Sync that enforces its pod's policies.",
			Buckets: []float64{.01, .025, .05, .075, .1, .15, .25, .5, 1, 2.5, 5, 10, 30}}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.quarantined, m.entered, m.attach, m.released} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register quarantine metrics: %w", err)
		}
	}
	return m, nil
}

// watchPodInterfaces runs the datapath's interface watch until ctx ends.
// A new quarantine is a change: the pod it waits for may be known already
// with an interface the last Sync could not find.
func (a *Agent) watchPodInterfaces(ctx context.Context, dp *datapath.Datapath) {
	log := a.opts.Logger
	err := dp.WatchPodInterfaces(ctx, func(ev datapath.InterfaceEvent) {
		switch {
		case ev.Err != nil:
			log.Warn("quarantine pod interface", "interface", ev.Name, "ifindex", ev.Ifindex, "error", ev.Err)
		case ev.Quarantined:
			a.quarantine.entered.Inc()
			a.quarantine.attach.Observe(ev.Took.Seconds())
			log.Info("pod interface quarantined until its pod is known", "interface", ev.Name, "ifindex", ev.Ifindex, "took", ev.Took)
			a.changes.mark(time.Now())
		default:
			log.Info("quarantined interface removed", "interface", ev.Name, "ifindex", ev.Ifindex)
		}
		a.quarantine.quarantined.Set(float64(dp.QuarantinedInterfaces()))
	})
	if err != nil {
		log.Error("watch pod interfaces", "error", err)
	}
}

// recordReleases observes the quarantines a Sync ended.
func (a *Agent) recordReleases(dp *datapath.Datapath, released []time.Duration) {
	for _, d := range released {
		a.quarantine.released.Observe(d.Seconds())
	}
	a.quarantine.quarantined.Set(float64(dp.QuarantinedInterfaces()))
}

// quarantined reports whether ev was judged on an interface in quarantine:
// its pod not known yet, its endpoint the quarantine identity.
func quarantined(ev datapath.Event) bool {
	if ev.Pod != (policy.PodRef{}) || ev.Verdict == datapath.VerdictAllowedNew {
		return false
	}
	local := ev.SrcIdentity
	if ev.Direction == policy.Ingress {
		local = ev.DstIdentity
	}
	return local == datapath.QuarantineIdentity
}
