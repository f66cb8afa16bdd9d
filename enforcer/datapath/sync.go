package datapath

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// SyncStats describe one Sync.
type SyncStats struct {
	Duration time.Duration
	// Writes counts map elements written (upserted or deleted) per map,
	// transitional writes included.
	Writes map[string]int
	// Quarantined counts prefixes held at the transitional identity
	// while their identity changed.
	Quarantined int
	// EndpointsAdded, EndpointsRemoved and RevisionsBumped count
	// endpoints; a bumped revision makes the endpoint's tracked flows be
	// judged again on their next packet.
	EndpointsAdded, EndpointsRemoved, RevisionsBumped int
	// LinksAttached and LinksDetached count interfaces; LinksSwitched
	// counts adopted interfaces moved onto this run's programs.
	LinksAttached, LinksDetached, LinksSwitched int
	// ConntrackPurged counts flows of removed endpoints deleted.
	ConntrackPurged int
	// Fill is each state map's entries after the Sync, and its capacity.
	Fill map[string]MapFill
	// Isolated lists the pods a failed Sync left isolated both ways with
	// the transitional identity (see isolateTouched): those whose endpoint
	// the plan was about to change. Empty after a Sync that succeeded.
	Isolated []policy.PodRef
	// Unresolved lists the endpoints whose interface lookup failed. One
	// that had an interface before keeps it (and its enforcement) until a
	// lookup succeeds or the pod leaves the State.
	Unresolved map[policy.PodRef]error
	// Released holds, for each interface this Sync took out of
	// quarantine (its pod now known), how long it waited there.
	Released []time.Duration
}

// MapFill is a map's number of entries and its capacity, and the number
// of entries the State being synced needs (more than Max: that State
// cannot be enforced until the map grows).
type MapFill struct {
	Entries, Max, Wanted int
}

// Sync makes the maps and attachments enforce state: it translates state,
// plans the writes against what the maps hold (see plan), applies them
// in batches, attaches tcx to new endpoints' interfaces, detaches removed
// ones and forgets their tracked flows. ifindex resolves endpoints'
// interfaces (d.Endpoint does it with netlink).
//
// An error writing the maps (ErrMapFull among the causes) leaves them
// where the plan stopped: allowing no more than the old State while
// tightening, no more than the new one while loosening. Then, as a last
// step, every endpoint the plan was about to change is isolated both ways
// with the transitional identity (SyncStats.Isolated): a pod the failed
// State concerns sends and receives nothing but the host's traffic until
// a Sync succeeds. The next Sync reads the maps and starts from what they
// hold. Endpoints whose interface cannot be found are listed in
// SyncStats.Unresolved, not returned as an error.
func (d *Datapath) Sync(ctx context.Context, state *policy.State, ifindex IfindexFunc) (SyncStats, error) {
	if err := ctx.Err(); err != nil {
		return SyncStats{}, fmt.Errorf("sync datapath: %w", err)
	}
	if ifindex == nil {
		return SyncStats{}, errors.New("sync datapath: nil ifindex resolver")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return SyncStats{}, errors.New("sync datapath: closed")
	}
	start := time.Now()
	stats := SyncStats{Writes: map[string]int{}, Unresolved: map[policy.PodRef]error{}}
	if d.dirty {
		if err := d.readState(); err != nil {
			return stats, fmt.Errorf("sync datapath: %w", err)
		}
	}

	d.learnAddrsForSync()
	next, err := Translate(state, d.resolver(ifindex, stats.Unresolved), d.opts.ServiceCIDRs...)
	if err != nil {
		return stats, fmt.Errorf("sync datapath: %w", err)
	}
	d.keepUnclaimed(&next)
	stats.Released = d.keepQuarantined(&next)
	for pod, err := range next.Unresolved {
		stats.Unresolved[pod] = err
	}

	ops, final := plan(d.applied, next, d.nextRevision)
	for idx, v := range final {
		old, ok := d.applied.Endpoints[idx]
		switch {
		case !ok:
			stats.EndpointsAdded++
		case old.Revision != v.Revision:
			stats.RevisionsBumped++
		}
	}
	removed := deletedKeys(d.applied.Endpoints, next.Endpoints, cmpUint32)
	stats.EndpointsRemoved = len(removed)
	before := maps.Clone(d.applied.Endpoints)

	for _, o := range ops {
		n, err := d.write(o)
		applyOp(&d.applied, o, n)
		stats.Writes[o.target.String()] += n
		if o.step == "quarantine changing addresses" {
			stats.Quarantined += n
		}
		if err != nil {
			// The rest of the plan never ran, so the maps sit at a
			// moment the plan vouches for. applied holds what the
			// kernel reported taking; the next Sync reads the maps
			// anyway rather than trust a failed call's count.
			d.dirty = true
			var isoErr error
			stats.Isolated, isoErr = d.isolateTouched(before, final, next.Pods)
			stats.Fill = d.fill(next)
			stats.Duration = time.Since(start)
			return stats, fmt.Errorf("sync datapath: %w", errors.Join(err, isoErr))
		}
	}
	d.applied.Pods = next.Pods
	d.podIPs = make(map[policy.PodRef][]netip.Addr, len(state.Endpoints))
	for _, ep := range state.Endpoints {
		d.podIPs[ep.Pod] = ep.IPs
	}
	pods := make(map[uint32]policy.PodRef, len(next.Pods))
	for k, v := range next.Pods {
		pods[k] = v
	}
	d.pods.Store(&pods)

	var errs []error
	attached, detached, err := d.reconcileLinks()
	stats.LinksAttached, stats.LinksDetached = attached, detached
	errs = append(errs, err)
	stats.LinksSwitched, err = d.switchPending()
	errs = append(errs, err)
	// Uplinks come and go with routes (a tunnel device a CNI creates
	// after start-up): detected again on every Sync.
	errs = append(errs, d.switchPendingUplinks(), d.reconcileUplinks())
	if len(removed) > 0 {
		gone := make(map[uint32]bool, len(removed))
		for _, idx := range removed {
			gone[idx] = true
		}
		stats.ConntrackPurged, err = d.scanConntrack(func(k *bpf.PalisadeCtKey, _ *bpf.PalisadeCtValue) bool { return gone[k.Ifindex] })
		errs = append(errs, err)
	}
	stats.Fill = d.fill(next)
	stats.Duration = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return stats, fmt.Errorf("sync datapath: %w", err)
	}
	return stats, nil
}

// resolver wraps the caller's interface lookup. An endpoint synced
// before with the same addresses, whose links are still attached to a
// live interface, keeps that interface without a lookup (netlink costs
// far more than the link check). An endpoint whose lookup fails keeps the
// interface it had, so that a transient failure does not turn its
// enforcement off; the failure is still reported.
func (d *Datapath) resolver(resolve IfindexFunc, unresolved map[policy.PodRef]error) IfindexFunc {
	had := make(map[policy.PodRef]uint32, len(d.applied.Pods))
	for idx, pod := range d.applied.Pods {
		had[pod] = idx
	}
	return func(ep policy.LocalEndpoint) (int, error) {
		prev, known := had[ep.Pod]
		if known && slices.Equal(d.podIPs[ep.Pod], ep.IPs) && d.linkAlive(prev) {
			return int(prev), nil
		}
		idx, err := resolve(ep)
		if err != nil && known {
			unresolved[ep.Pod] = fmt.Errorf("find interface of %s (keeping interface %d): %w", ep.Pod, prev, err)
			return int(prev), nil
		}
		return idx, err
	}
}

// keepUnclaimed keeps, while some endpoint is unresolved, the entries of
// enforced interfaces that no resolved endpoint claims but that still
// exist: after a restart the Datapath cannot tell which pod an interface
// served, and the unresolved pod may be that one. Dropping its entry
// would stop enforcing it; keeping it enforces the identity it had.
func (d *Datapath) keepUnclaimed(next *Entries) {
	if len(next.Unresolved) == 0 {
		return
	}
	for idx, v := range d.applied.Endpoints {
		if _, claimed := next.Endpoints[idx]; claimed || !d.linkAlive(idx) {
			continue
		}
		v.Revision = 0
		next.Endpoints[idx] = v
		if pod, ok := d.applied.Pods[idx]; ok {
			next.Pods[idx] = pod
		}
		for k, ip := range d.applied.EndpointIPs {
			if _, taken := next.EndpointIPs[k]; ip.Ifindex == idx && !taken {
				next.EndpointIPs[k] = ip
			}
		}
		for k, v := range d.applied.SourceCIDRs {
			if k.Ifindex == idx {
				next.SourceCIDRs[k] = v
			}
		}
	}
}

// linkAlive reports whether both programs are attached to interface idx
// and the interface still exists (a deleted interface leaves its links
// defunct, reporting interface 0).
func (d *Datapath) linkAlive(idx uint32) bool {
	el := d.links[idx]
	if el == nil || el.fromPod == nil || el.toPod == nil {
		return false
	}
	info, err := el.fromPod.Info()
	return err == nil && info.TCX() != nil && info.TCX().Ifindex == idx
}

// reconcileLinks attaches both programs to every enforced interface that
// lacks them and detaches those of interfaces no longer enforced. The
// endpoint entries are written by then, so a new interface is judged
// from its first packet on with the complete new state.
func (d *Datapath) reconcileLinks() (attached, detached int, err error) {
	var errs []error
	for idx, el := range d.links {
		if _, ok := d.applied.Endpoints[idx]; ok {
			continue
		}
		if err := el.detach(); err != nil {
			errs = append(errs, fmt.Errorf("detach interface %d: %w", idx, err))
		}
		delete(d.links, idx)
		delete(d.pending, idx)
		detached++
	}
	var missing []uint32
	for _, idx := range sortedKeys(d.applied.Endpoints, cmpUint32) {
		if el := d.links[idx]; el == nil || el.fromPod == nil || el.toPod == nil {
			missing = append(missing, idx)
		}
	}
	if len(missing) > 0 {
		err := runInNetNS(d.opts.NetNS, func() error {
			for _, idx := range missing {
				if err := d.attachWhole(idx); err != nil {
					errs = append(errs, err)
					continue
				}
				attached++
			}
			return nil
		})
		errs = append(errs, err)
	}
	return attached, detached, errors.Join(errs...)
}

// fill reports each state map's entries and capacity, and what next
// needs of it.
func (d *Datapath) fill(next Entries) map[string]MapFill {
	a := d.applied
	return map[string]MapFill{
		bpf.PalisadeMapIpIdentity:   {len(a.IPs), int(d.objs.IpIdentity.MaxEntries()), len(next.IPs)},
		bpf.PalisadeMapEndpoints:    {len(a.Endpoints), int(d.objs.Endpoints.MaxEntries()), len(next.Endpoints)},
		bpf.PalisadeMapPolicy:       {len(a.Policy), int(d.objs.Policy.MaxEntries()), len(next.Policy)},
		bpf.PalisadeMapPolicyRanges: {len(a.PolicyRanges), int(d.objs.PolicyRanges.MaxEntries()), len(next.PolicyRanges)},
		bpf.PalisadeMapServiceCidrs: {len(a.ServiceCIDRs), int(d.objs.ServiceCidrs.MaxEntries()), len(next.ServiceCIDRs)},
		bpf.PalisadeMapEndpointIps:  {len(a.EndpointIPs), int(d.objs.EndpointIps.MaxEntries()), len(next.EndpointIPs)},
		bpf.PalisadeMapSourceCidrs:  {len(a.SourceCIDRs), int(d.objs.SourceCidrs.MaxEntries()), len(next.SourceCIDRs)},
	}
}
