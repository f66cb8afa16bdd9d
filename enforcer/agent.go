package enforcer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"

	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Agent is one node's enforcer: watches → compiler → datapath, plus flow
// records and metrics. Create it with New and start it with Run.
type Agent struct {
	cfg     *rest.Config
	opts    Options
	metrics *metrics
	// quarantine: pod interfaces enforced before their pod is known.
	quarantine *quarantineMetrics
	flows      *flowWriter
	changes    *changeSet
	view       atomic.Pointer[view]
	// syncing is the view a Sync in progress is writing: events judged
	// by its entries carry its numbers before view moves to it.
	syncing atomic.Pointer[view]
	ready   atomic.Bool
	started atomic.Bool
	// failure is the last Sync's error while it stands: /readyz is
	// unready until a Sync succeeds.
	failure atomic.Pointer[error]
	events  *nodeEvents

	// Owned by the loop goroutine.
	alloc   *policy.IdentityAllocator
	last    *policy.State
	pending *view // compiled but not (fully) enforced: retried as is
	invalid map[string]bool
	missing map[policy.PodRef]bool
	filling map[string]bool

	// observed holds the adopted maps' numbers until the first
	// compilation seeds alloc with them.
	observed *policy.Observed
}

// New checks opts and prepares an agent; it contacts neither the API
// server nor the kernel.
func New(cfg *rest.Config, opts Options) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("configure enforcer: nil API server config")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("configure enforcer: %w", err)
	}
	qm, err := newQuarantineMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("configure enforcer: %w", err)
	}
	return &Agent{
		cfg:        cfg,
		opts:       opts,
		metrics:    m,
		quarantine: qm,
		flows:      &flowWriter{w: opts.Flows},
		changes:    newChangeSet(),
		alloc:      policy.NewIdentityAllocator(nil),
		invalid:    map[string]bool{},
		missing:    map[policy.PodRef]bool{},
		filling:    map[string]bool{},
	}, nil
}

// Ready reports nil once a compiled State has been enforced, and while
// no Sync has failed since the last one that succeeded.
func (a *Agent) Ready() error {
	if !a.ready.Load() {
		return errors.New("no policy state enforced yet")
	}
	if err := a.failure.Load(); err != nil {
		return fmt.Errorf("last sync failed, the pods it touched are isolated until one succeeds: %w", *err)
	}
	return nil
}

// Run enforces until ctx ends, then returns nil; the pinned maps and
// links stay, so the node keeps enforcing the last State until the next
// agent adopts them — unless Options.DaemonSetName names a DaemonSet that
// is gone or being deleted (an uninstall): then the links are detached
// and the pins removed. It returns an error at once when the node cannot run
// the datapath (wrapping datapath.ErrUnsupported; a
// *datapath.MissingFeatureError names the feature) or the HTTP endpoints
// cannot listen. Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("run enforcer: already started")
	}
	log := a.opts.Logger
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	dp, err := datapath.Open(datapath.Options{
		NodeName: a.opts.NodeName, PinDir: a.opts.PinDir, NetNS: a.opts.NetNS,
		Config: a.opts.Config, Conntrack: a.opts.Conntrack, Logger: log,
		ServiceCIDRs: a.opts.ServiceCIDRs, Uplinks: a.opts.Uplinks, PodInterfaces: a.opts.PodInterfaces,
	})
	if err != nil {
		return fmt.Errorf("start enforcer: %w", err)
	}
	defer dp.Close()
	if len(a.opts.ServiceCIDRs) > 0 {
		log.Info("service traffic is judged after DNAT", "serviceCIDRs", a.opts.ServiceCIDRs, "uplinkIfindexes", dp.UplinkIndexes())
	}
	if obs, err := dp.Observed(); err != nil {
		log.Warn("read the adopted maps' numbers; the first sync renumbers", "error", err)
	} else {
		a.observed = &obs
	}
	a.metrics.datapath.setSource(dp.Counters)
	defer a.metrics.datapath.setSource(nil)

	stopHTTP, err := a.serveHTTP(ctx)
	if err != nil {
		return fmt.Errorf("start enforcer: %w", err)
	}
	defer stopHTTP()

	if a.events, err = newNodeEvents(ctx, a.cfg, a.opts.NodeName); err != nil {
		log.Warn("report to the Node's events; failures are logged and counted only", "error", err)
	} else {
		defer a.events.stop()
	}

	w, err := newWatcher(a.cfg, a.opts.NodeName, a.opts.HostIPs == nil)
	if err != nil {
		return fmt.Errorf("start enforcer: %w", err)
	}
	if err := w.watch(ctx, a.changes); err != nil {
		return fmt.Errorf("start enforcer: %w", err)
	}
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- w.cache.Start(ctx) }()
	log.Info("enforcer started; the pinned datapath keeps enforcing until the caches sync",
		"node", a.opts.NodeName, "pinDir", dp.PinDir(), "netns", a.opts.NetNS)
	if !w.cache.WaitForCacheSync(ctx) {
		cancel()
		if err := <-cacheDone; err != nil && ctx.Err() == nil {
			return fmt.Errorf("start enforcer: sync caches: %w", err)
		}
		a.release(dp)
		return nil
	}
	// The first State covers everything the caches hold; its latency is
	// the start-up's, not a change's.
	a.changes.take()
	synced := a.apply(ctx, dp, w, time.Time{})

	events := dp.Events(ctx)
	go a.recordFlows(events)
	go a.reportEventLosses(ctx, dp, eventLossInterval)
	// After the first Sync: an interface existing at start that it did
	// not claim goes into quarantine then, not before, so that a first
	// install does not cut off every running pod until the caches sync.
	go a.watchPodInterfaces(ctx, dp)
	go dp.RunConntrackGC(ctx, a.opts.ConntrackGCInterval, func(n int, err error) {
		if err != nil {
			log.Warn("collect conntrack", "error", err)
			return
		}
		a.metrics.conntrackGC.Add(float64(n))
	})
	a.loop(ctx, dp, w, synced)
	cancel()
	<-cacheDone
	a.release(dp)
	return nil
}

// loop compiles and syncs after each batch of changes, retrying with
// backoff while a Sync fails or leaves pods without an interface.
func (a *Agent) loop(ctx context.Context, dp *datapath.Datapath, w *watcher, synced bool) {
	backoff := retryMin
	var retry <-chan time.Time
	if !synced {
		retry = time.After(backoff)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.changes.wake:
			t := time.NewTimer(a.opts.Debounce)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		case <-retry:
		}
		since := a.changes.take()
		if since.IsZero() && retry == nil {
			continue // a wake-up whose changes an earlier round took
		}
		retry = nil
		if a.apply(ctx, dp, w, since) {
			backoff = retryMin
			continue
		}
		if ctx.Err() != nil {
			return
		}
		retry = time.After(backoff)
		backoff = min(backoff*2, retryMax)
	}
}

// apply enforces the cluster's current State: it compiles when anything
// changed since the last compilation (since is set) or nothing was ever
// compiled, else re-syncs the State a failed round left pending. It
// reports whether the State is fully enforced.
func (a *Agent) apply(ctx context.Context, dp *datapath.Datapath, w *watcher, since time.Time) bool {
	log := a.opts.Logger
	next := a.pending
	if next == nil || !since.IsZero() {
		var err error
		if next, err = a.compile(ctx, w); err != nil {
			log.Error("compile policy state", "error", err)
			a.changes.restore(since)
			return false
		}
	}
	a.pending = next
	a.syncing.Store(next)
	stats, err := dp.Sync(ctx, next.state, dp.Endpoint)
	if err != nil {
		// Part of next may be in the kernel: syncing stays until the
		// retry, which writes it again or replaces it.
		cause := "other"
		if errors.Is(err, datapath.ErrMapFull) {
			cause = "map_full"
			a.metrics.mapFull.Inc()
		}
		a.metrics.syncErrors.WithLabelValues(cause).Inc()
		a.checkFill(stats.Fill)
		if ctx.Err() == nil {
			a.failure.Store(&err)
			a.metrics.syncFailing.Set(1)
			a.metrics.isolated.Set(float64(len(stats.Isolated)))
			a.events.syncFailed(err, stats.Isolated)
			log.Error("sync datapath; retrying with backoff, the pods it touched isolated meanwhile", "error", err, "isolated", len(stats.Isolated))
		}
		a.changes.restore(since)
		return false
	}
	a.last = next.state
	a.view.Store(next)
	// Only now: an event read between the two stores finds next in view.
	a.syncing.Store(nil)
	a.failure.Store(nil)
	a.ready.Store(true)
	a.events.syncRecovered()
	m := a.metrics
	m.syncFailing.Set(0)
	m.isolated.Set(0)
	m.syncs.Inc()
	m.syncDuration.Observe(stats.Duration.Seconds())
	m.lastSync.Set(float64(time.Now().UnixNano()) / 1e9)
	m.endpoints.Set(float64(len(next.state.Endpoints) - len(stats.Unresolved)))
	m.unresolved.Set(float64(len(stats.Unresolved)))
	a.checkFill(stats.Fill)
	for kind, n := range next.objects {
		m.objects.WithLabelValues(kind).Set(float64(n))
	}
	if !since.IsZero() {
		m.enforceLatency.Observe(time.Since(since).Seconds())
	}
	writes := 0
	for _, n := range stats.Writes {
		writes += n
	}
	log.Info("enforced", "endpoints", len(next.state.Endpoints), "identities", len(next.state.Identities),
		"rules", len(next.state.Rules), "writes", writes, "attached", stats.LinksAttached, "detached", stats.LinksDetached,
		"revisionsBumped", stats.RevisionsBumped, "duration", stats.Duration)
	a.reportUnresolved(stats.Unresolved)
	a.recordReleases(dp, stats.Released)
	if len(stats.Unresolved) > 0 {
		return false
	}
	a.pending = nil
	return true
}

// compile reads the caches and compiles them for this node.
func (a *Agent) compile(ctx context.Context, w *watcher) (*view, error) {
	snap, err := w.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	hostIPs := a.opts.HostIPs
	if hostIPs == nil {
		hostIPs = snap.hostIPs
	}
	opts := policy.Options{NodeName: a.opts.NodeName, IdentityLabels: a.opts.IdentityLabels, HostIPs: hostIPs}
	if a.observed != nil {
		// After a restart, keep the numbers the adopted maps enforce.
		a.alloc = policy.NewIdentityAllocatorFromObserved(snap.cluster, opts, *a.observed)
		a.observed = nil
	}
	opts.Allocator = a.alloc
	start := time.Now()
	st, err := policy.Compile(snap.cluster, opts)
	a.metrics.compileTime.Observe(time.Since(start).Seconds())
	if st == nil {
		// The allocator may be half-updated: start again from what is
		// enforced.
		a.alloc = policy.NewIdentityAllocator(a.last)
		return nil, err
	}
	a.reportInvalid(err)
	return &view{state: st, pods: snap.pods, objects: map[string]int{
		"namespaces": len(snap.cluster.Namespaces), "pods": len(snap.cluster.Pods), "networkpolicies": len(snap.cluster.Policies),
	}}, nil
}

// reportInvalid publishes the compilation's problems: a gauge per kind,
// and a log line for each problem when it first appears.
func (a *Agent) reportInvalid(err error) {
	counts := map[string]int{"policy": 0, "namespace": 0, "pod": 0}
	seen := map[string]bool{}
	for _, e := range flatten(err) {
		kind := "other"
		var ip *policy.InvalidPolicyError
		var io *policy.InvalidObjectError
		switch {
		case errors.As(e, &ip):
			kind = "policy"
		case errors.As(e, &io):
			kind = io.Kind
		}
		counts[kind]++
		msg := e.Error()
		seen[msg] = true
		if !a.invalid[msg] {
			a.opts.Logger.Warn("invalid object; compiled fail-closed", "kind", kind, "problem", msg)
		}
	}
	a.invalid = seen
	for kind, n := range counts {
		a.metrics.invalidObjects.WithLabelValues(kind).Set(float64(n))
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// reportUnresolved logs pods whose interface could not be found, once
// per pod until it resolves.
func (a *Agent) reportUnresolved(unresolved map[policy.PodRef]error) {
	now := map[policy.PodRef]bool{}
	for pod, err := range unresolved {
		now[pod] = true
		if !a.missing[pod] {
			a.opts.Logger.Warn("pod interface not found; retrying", "pod", pod.String(), "error", err)
		}
	}
	a.missing = now
}

// recordFlows writes a flow record per datapath event until the stream
// ends.
func (a *Agent) recordFlows(events <-chan datapath.Event) {
	failed := false
	for ev := range events {
		rec := explain(a.opts.NodeName, viewFor(ev, a.syncing.Load(), a.view.Load()), ev)
		a.metrics.flowRecords.WithLabelValues(rec.Verdict).Inc()
		if err := a.flows.write(rec); err != nil {
			if !failed {
				a.opts.Logger.Error("write flow records", "error", err)
			}
			failed = true
			continue
		}
		failed = false
	}
}
