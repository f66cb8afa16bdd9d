package enforcer

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/palisade-dev/palisade/enforcer/datapath"
)

// metrics are the agent's Prometheus series. Names start with
// palisade_enforcer_.
type metrics struct {
	syncs          prometheus.Counter
	syncErrors     *prometheus.CounterVec
	mapFull        prometheus.Counter
	syncFailing    prometheus.Gauge
	isolated       prometheus.Gauge
	syncDuration   prometheus.Histogram
	compileTime    prometheus.Histogram
	enforceLatency prometheus.Histogram
	invalidObjects *prometheus.GaugeVec
	objects        *prometheus.GaugeVec
	endpoints      prometheus.Gauge
	unresolved     prometheus.Gauge
	mapEntries     *prometheus.GaugeVec
	mapCapacity    *prometheus.GaugeVec
	mapNeeded      *prometheus.GaugeVec
	mapFill        *prometheus.GaugeVec
	lastSync       prometheus.Gauge
	flowRecords    *prometheus.CounterVec
	conntrackGC    prometheus.Counter
	eventsLost     *prometheus.CounterVec
	datapath       *counterCollector
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	latency := []float64{.005, .01, .025, .05, .075, .1, .15, .25, .5, 1, 2.5, 5, 10}
	m := &metrics{
		syncs: prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_enforcer_syncs_total",
			Help: "Datapath syncs that completed, each enforcing a compiled State."}),
		syncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palisade_enforcer_sync_errors_total",
			Help: "Datapath syncs that failed, by cause (map_full, other); each is retried with backoff."}, []string{"cause"}),
		mapFull: prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_enforcer_map_full_total",
			Help: "Syncs stopped by a map at capacity; what the maps hold then allows no more than the old or the new State."}),
		syncFailing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "palisade_enforcer_sync_failing",
			Help: "1 while the last Sync failed (the pods it touched are isolated, /readyz is unready, retried with backoff), else 0."}),
		isolated: prometheus.NewGauge(prometheus.GaugeOpts{Name: "palisade_enforcer_isolated_endpoints",
			Help: "Pods the last failed Sync left isolated both ways until a Sync succeeds; 0 after a success."}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "palisade_enforcer_sync_duration_seconds",
			Help: "Time to write one compiled State into the datapath.", Buckets: latency}),
		compileTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "palisade_enforcer_compile_duration_seconds",
			Help: "Time to compile the cluster's objects into a State.", Buckets: latency}),
		enforceLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "palisade_enforcer_change_to_enforced_seconds",
			Help: "Time from the first watch event of a batch of changes to the end of the Sync that enforces it.", Buckets: latency}),
		invalidObjects: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "palisade_enforcer_invalid_objects",
			Help: "Objects the last compilation could not use as written, by kind (policy: compiled fail-closed)."}, []string{"kind"}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "palisade_enforcer_objects",
			Help: "Objects in the last enforced compilation, by kind."}, []string{"kind"}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{Name: "palisade_enforcer_endpoints",
			Help: "Pods of this node in the last enforced State."}),
		unresolved: prometheus.NewGauge(prometheus.GaugeOpts{Name: "palisade_enforcer_unresolved_endpoints",
			Help: "Pods of this node whose host interface the last Sync could not find (retried)."}),
		mapEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "palisade_enforcer_map_entries",
			Help: "Entries in each datapath state map after the last Sync."}, []string{"map"}),
		mapCapacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "palisade_enforcer_map_capacity",
			Help: "Capacity of each datapath state map."}, []string{"map"}),
		mapNeeded: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "palisade_enforcer_map_needed_entries",
			Help: "Entries the last State synced (enforced or not) needs in each datapath state map."}, []string{"map"}),
		mapFill: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "palisade_enforcer_map_fill_ratio",
			Help: "Entries in use or needed, whichever is more, over the capacity of each datapath state map; warned about from 0.8, above 1 a Sync fails."}, []string{"map"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "palisade_enforcer_last_sync_timestamp_seconds",
			Help: "Unix time of the last completed Sync."}),
		flowRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palisade_enforcer_flow_records_total",
			Help: "Flow records written, by verdict (forwarded, dropped, audit)."}, []string{"verdict"}),
		conntrackGC: prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_enforcer_conntrack_collected_total",
			Help: "Idle or orphaned tracked flows deleted by the collector."}),
		eventsLost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palisade_enforcer_flow_events_lost_total",
			Help: "Drop and audit events the datapath did not send, by pod (namespace/name, or \"interface N\"): over the pod's event budget or with the ring buffer full. Each loss is also a flow record with verdict \"lost\"."}, []string{"pod"}),
		datapath: &counterCollector{desc: prometheus.NewDesc("palisade_enforcer_datapath_packets_total",
			"The datapath programs' counters by name (verdicts such as allowed_policy, drop_policy, audit_would_drop, ct_reply; and event_lost), since the counters map was created.",
			[]string{"counter"}, nil)},
	}
	// Series that exist from the start, so that alerts see a zero.
	for _, cause := range []string{"map_full", "other"} {
		m.syncErrors.WithLabelValues(cause)
	}
	for _, v := range []string{"forwarded", "dropped", "audit", "lost"} {
		m.flowRecords.WithLabelValues(v)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.syncs, m.syncErrors, m.mapFull, m.syncFailing, m.isolated, m.mapNeeded, m.mapFill, m.syncDuration, m.compileTime, m.enforceLatency,
		m.invalidObjects, m.objects, m.endpoints, m.unresolved, m.mapEntries, m.mapCapacity, m.lastSync, m.flowRecords,
		m.conntrackGC, m.eventsLost, m.datapath} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(errors.New("register enforcer metrics"), err)
	}
	return m, nil
}

// recordFill publishes a Sync's map fill, one gauge per map.
func (m *metrics) recordFill(fill map[string]datapath.MapFill) {
	for name, f := range fill {
		m.mapEntries.WithLabelValues(name).Set(float64(f.Entries))
		m.mapCapacity.WithLabelValues(name).Set(float64(f.Max))
		m.mapNeeded.WithLabelValues(name).Set(float64(f.Wanted))
		if f.Max > 0 {
			m.mapFill.WithLabelValues(name).Set(float64(max(f.Entries, f.Wanted)) / float64(f.Max))
		}
	}
}

// counterCollector reads the programs' counters at scrape time, so the
// series is exactly what the kernel counted.
type counterCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	read func() (map[string]uint64, error)
}

func (c *counterCollector) setSource(read func() (map[string]uint64, error)) {
	c.mu.Lock()
	c.read = read
	c.mu.Unlock()
}

func (c *counterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *counterCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	read := c.read
	c.mu.Unlock()
	if read == nil {
		return
	}
	counters, err := read()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for name, v := range counters {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), name)
	}
}
