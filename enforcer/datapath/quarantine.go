package datapath

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/palisade-dev/palisade/bpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// QuarantineIdentity is the identity of a pod interface enforced before
// its pod is known. The compiler allocates workload identities from 256
// and names only world (1) and host (2) below that, so no rule names it:
// with both directions isolated, such an interface sends and receives
// nothing but what the node itself sends it.
const QuarantineIdentity = 3

// DefaultPodInterfaces are the host-side interface names of common CNI
// plugins' pods: the bridge, ptp and flannel plugins and kindnet (veth),
// Calico (cali), Cilium (lxc), the AWS VPC CNI (eni), GKE (gke) and Azure
// (azv).
var DefaultPodInterfaces = []string{"veth*", "cali*", "lxc*", "eni*", "gke*", "azv*"}

// quarantine is what the Datapath knows of the node's pod interfaces
// beyond the State: every one the interface watch has seen, and when each
// unidentified one went into quarantine. Guarded by Datapath.mu.
type quarantine struct {
	// seen holds the live pod interfaces by index, with their names.
	seen map[uint32]string
	// since holds the interfaces in quarantine, by index: when they
	// entered it.
	since map[uint32]time.Time
	// peers says where each pod interface's other end is (for its
	// addresses), addrs which endpoint_ips entries a quarantined
	// interface holds.
	peers map[uint32]peerRef
	addrs map[uint32][]bpf.PalisadeAddrKey
	// polled is when every quarantined interface's addresses were last
	// looked for.
	polled time.Time
}

// peerRef is a veth's other end: its namespace id and index there.
type peerRef struct{ nsid, index int }

func newQuarantine() *quarantine {
	return &quarantine{seen: map[uint32]string{}, since: map[uint32]time.Time{},
		peers: map[uint32]peerRef{}, addrs: map[uint32][]bpf.PalisadeAddrKey{}}
}

func quarantineValue() bpf.PalisadeEndpointValue {
	return bpf.PalisadeEndpointValue{Identity: QuarantineIdentity, Flags: isolationFlags}
}

// ValidPodInterfacePatterns checks patterns as Options.PodInterfaces
// takes them.
func ValidPodInterfacePatterns(patterns []string) error {
	for _, p := range patterns {
		if p == "" {
			return errors.New("empty pod interface pattern")
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return fmt.Errorf("pod interface pattern %q: %w", p, err)
		}
	}
	return nil
}

// isPodInterface reports whether l is a pod's host-side interface: a veth
// or netkit device whose peer lives in another network namespace and
// whose name one of patterns matches, and not an uplink.
func isPodInterface(l netlink.Link, patterns []string, uplinks []string) bool {
	a := l.Attrs()
	if t := l.Type(); t != "veth" && t != "netkit" {
		return false
	}
	if a.NetNsID < 0 || slices.Contains(uplinks, a.Name) {
		return false
	}
	for _, p := range patterns {
		if ok, _ := filepath.Match(p, a.Name); ok {
			return true
		}
	}
	return false
}

// InterfaceEvent is one thing the interface watch did.
type InterfaceEvent struct {
	Ifindex uint32
	Name    string
	// Quarantined is set when the interface was put in quarantine,
	// unset when a quarantined interface went away.
	Quarantined bool
	// Took is how long the quarantine took from the notification: the
	// time a new pod interface ran without programs, less the kernel's
	// delivery of the notification.
	Took time.Duration
	Err  error
}

// WatchPodInterfaces enforces every pod interface from its first
// packet: it follows the node namespace's interfaces with a netlink
// subscription and attaches both programs to each new pod interface at
// once, as a quarantined endpoint (QuarantineIdentity, both directions
// isolated) until a Sync names its pod. Interfaces existing when it
// starts that no Sync has claimed are quarantined too. It returns when
// ctx ends; a broken subscription is opened again (listing every
// interface afresh), so that a lost notification delays a quarantine
// but never loses it. Without Options.PodInterfaces it returns at once.
// report, when not nil, is told of every quarantine and release.
func (d *Datapath) WatchPodInterfaces(ctx context.Context, report func(InterfaceEvent)) error {
	if len(d.opts.PodInterfaces) == 0 {
		return nil
	}
	if report == nil {
		report = func(InterfaceEvent) {}
	}
	for ctx.Err() == nil {
		err := d.watchInterfacesOnce(ctx, report)
		if ctx.Err() != nil {
			return nil
		}
		d.log.Warn("pod interface watch broke; subscribing again", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func (d *Datapath) watchInterfacesOnce(ctx context.Context, report func(InterfaceEvent)) error {
	ns := netns.None()
	if d.opts.NetNS != "" {
		var err error
		if ns, err = netns.GetFromPath(d.opts.NetNS); err != nil {
			return fmt.Errorf("watch pod interfaces: open network namespace %s: %w", d.opts.NetNS, err)
		}
		defer ns.Close()
	}
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	broken := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		Namespace:         &ns,
		ListExisting:      true,
		ReceiveBufferSize: 1 << 20,
		ErrorCallback: func(err error) {
			select {
			case broken <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch pod interfaces: subscribe: %w", err)
	}
	// The listing of existing interfaces ends with a done message the
	// library swallows; what was seen before the first update after it
	// cannot be told apart, so pruning waits for a full listing below.
	if err := d.pruneInterfaces(report); err != nil {
		d.log.Warn("list pod interfaces", "error", err)
	}
	// A pod's addresses are configured after its interface appears:
	// looked for again until they are there.
	tick := time.NewTicker(addressPoll)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			d.learnQuarantinedAddrs()
		case <-ctx.Done():
			return nil
		case err := <-broken:
			return fmt.Errorf("watch pod interfaces: %w", err)
		case u, ok := <-updates:
			if !ok {
				return errors.New("watch pod interfaces: subscription closed")
			}
			d.interfaceUpdate(u, report)
		}
	}
}

// interfaceUpdate handles one notification.
func (d *Datapath) interfaceUpdate(u netlink.LinkUpdate, report func(InterfaceEvent)) {
	if u.Link == nil {
		return
	}
	idx := uint32(u.Link.Attrs().Index)
	name := u.Link.Attrs().Name
	if u.Header.Type == unix.RTM_DELLINK {
		if gone := d.forgetInterface(idx); gone {
			report(InterfaceEvent{Ifindex: idx, Name: name})
		}
		return
	}
	if !isPodInterface(u.Link, d.opts.PodInterfaces, d.opts.Uplinks) {
		return
	}
	start := time.Now()
	d.mu.Lock()
	if peer := u.Link.Attrs().ParentIndex; peer > 0 {
		d.quarantine.peers[idx] = peerRef{nsid: u.Link.Attrs().NetNsID, index: peer}
	}
	d.mu.Unlock()
	quarantined, err := d.Quarantine(idx, name)
	if quarantined && err == nil {
		d.learnAddrs(idx)
	}
	if err != nil || quarantined {
		report(InterfaceEvent{Ifindex: idx, Name: name, Quarantined: quarantined, Took: time.Since(start), Err: err})
	}
}

// pruneInterfaces forgets interfaces that no longer exist, for the
// notifications a broken subscription lost.
func (d *Datapath) pruneInterfaces(report func(InterfaceEvent)) error {
	links, err := d.finder.links()
	if err != nil {
		return err
	}
	alive := make(map[uint32]bool, len(links))
	for _, l := range links {
		alive[uint32(l.Attrs().Index)] = true
	}
	d.mu.Lock()
	var gone []uint32
	for idx := range d.quarantine.seen {
		if !alive[idx] {
			gone = append(gone, idx)
		}
	}
	d.mu.Unlock()
	for _, idx := range gone {
		if d.forgetInterface(idx) {
			report(InterfaceEvent{Ifindex: idx})
		}
	}
	return nil
}

// Quarantine enforces interface idx as a pod interface whose pod is not
// known yet, unless it is enforced already: the endpoint entry first
// (isolated both ways, QuarantineIdentity), then both programs. It
// reports whether it quarantined the interface. The interface stays a
// pod interface for every later Sync: one that no endpoint claims (its
// pod not known yet, or gone while the interface lives on) is kept in
// quarantine, never left open.
func (d *Datapath) Quarantine(idx uint32, name string) (bool, error) {
	if idx == 0 {
		return false, errors.New("quarantine interface: index 0")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false, errors.New("quarantine interface: datapath closed")
	}
	d.quarantine.seen[idx] = name
	if _, enforced := d.applied.Endpoints[idx]; enforced && !d.dirty {
		return false, nil
	}
	if d.dirty {
		if err := d.readState(); err != nil {
			return false, fmt.Errorf("quarantine interface %s: %w", name, err)
		}
		if _, enforced := d.applied.Endpoints[idx]; enforced {
			return false, nil
		}
	}
	v := quarantineValue()
	v.Revision = d.nextRevision()
	if err := d.objs.Endpoints.Put(idx, v); err != nil {
		return false, fmt.Errorf("quarantine interface %s: write endpoint: %w", name, err)
	}
	d.applied.Endpoints[idx] = v
	d.quarantine.since[idx] = time.Now()
	if el := d.links[idx]; el != nil && el.fromPod != nil && el.toPod != nil {
		return true, nil
	}
	err := runInNetNS(d.opts.NetNS, func() error { return d.attachWhole(idx) })
	if err != nil {
		// Gone already (a pod deleted as it was created), or the kernel
		// refused: the next Sync tries again while the interface lives.
		return true, fmt.Errorf("quarantine interface %s: %w", name, err)
	}
	return true, nil
}

// forgetInterface drops a deleted interface: a quarantined one's
// endpoint entry and links go at once (no Sync will name it); a pod's
// wait for the Sync that removes its pod. It reports whether a
// quarantined interface went.
func (d *Datapath) forgetInterface(idx uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, seen := d.quarantine.seen[idx]; !seen {
		return false
	}
	delete(d.quarantine.seen, idx)
	delete(d.quarantine.peers, idx)
	_, quarantined := d.quarantine.since[idx]
	delete(d.quarantine.since, idx)
	addrs := d.quarantine.addrs[idx]
	delete(d.quarantine.addrs, idx)
	if !quarantined || d.closed {
		return false
	}
	for _, k := range addrs {
		if v, ok := d.applied.EndpointIPs[k]; ok && v.Ifindex == idx {
			if err := d.objs.EndpointIps.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				d.dirty = true
			}
			delete(d.applied.EndpointIPs, k)
		}
	}
	if v, ok := d.applied.Endpoints[idx]; ok && v.Identity == QuarantineIdentity {
		if err := d.objs.Endpoints.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			d.log.Warn("remove quarantined endpoint of a deleted interface", "ifindex", idx, "error", err)
			d.dirty = true
		}
		delete(d.applied.Endpoints, idx)
	}
	if el := d.links[idx]; el != nil {
		el.detach()
		delete(d.links, idx)
		delete(d.pending, idx)
	}
	return true
}

// keepQuarantined puts back into next, in quarantine, every live pod
// interface that no endpoint of next claims, and records how long each
// claimed one waited: the release latency. Sync calls it with mu held.
func (d *Datapath) keepQuarantined(next *Entries) (released []time.Duration) {
	now := time.Now()
	for idx, v := range d.applied.Endpoints {
		// Quarantined by a previous run (the pins adopted): still a pod
		// interface until it is gone, or the first Sync of this run
		// would open it before the interface watch starts.
		if _, seen := d.quarantine.seen[idx]; !seen && v.Identity == QuarantineIdentity {
			d.quarantine.seen[idx] = ""
		}
	}
	for idx := range d.quarantine.seen {
		if _, claimed := next.Endpoints[idx]; claimed {
			if t, ok := d.quarantine.since[idx]; ok {
				released = append(released, now.Sub(t))
				delete(d.quarantine.since, idx)
			}
			delete(d.quarantine.addrs, idx)
			continue
		}
		if el := d.links[idx]; (el == nil || !d.linkAlive(idx)) && !d.finder.linkExists(idx) {
			// Its deletion's notification was lost: gone.
			delete(d.quarantine.seen, idx)
			delete(d.quarantine.since, idx)
			continue
		}
		next.Endpoints[idx] = quarantineValue()
		// The addresses it holds stay its own (one back from a pod that
		// left the State keeps its pod's until another pod claims them),
		// so that it can still answer neighbour resolution.
		for k, ip := range d.applied.EndpointIPs {
			if _, taken := next.EndpointIPs[k]; ip.Ifindex == idx && !taken && !slices.Contains(d.quarantine.addrs[idx], k) {
				d.quarantine.addrs[idx] = append(d.quarantine.addrs[idx], k)
			}
		}
		for _, k := range d.quarantine.addrs[idx] {
			if _, taken := next.EndpointIPs[k]; !taken {
				next.EndpointIPs[k] = bpf.PalisadeEndpointIpValue{Ifindex: idx}
			}
		}
		if _, ok := d.quarantine.since[idx]; !ok {
			d.quarantine.since[idx] = now
		}
	}
	return released
}

// QuarantinedInterfaces is how many pod interfaces wait for their pod.
func (d *Datapath) QuarantinedInterfaces() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.quarantine.since)
}

// addressPoll is how often the pod addresses of quarantined interfaces
// that have none yet are looked for (a pod's first ARP request waits for
// them: one dropped is retried by its kernel only a second later);
// addressRepoll how often those of every quarantined interface are
// (addresses added later).
const (
	addressPoll   = 10 * time.Millisecond
	addressRepoll = 500 * time.Millisecond
)

// learnQuarantinedAddrs looks for the pod addresses of the quarantined
// interfaces: those without any at every call, all of them every
// addressRepoll.
func (d *Datapath) learnQuarantinedAddrs() {
	d.mu.Lock()
	all := time.Since(d.quarantine.polled) >= addressRepoll
	if all {
		d.quarantine.polled = time.Now()
	}
	idxs := make([]uint32, 0, len(d.quarantine.since))
	for idx := range d.quarantine.since {
		if all || len(d.quarantine.addrs[idx]) == 0 {
			idxs = append(idxs, idx)
		}
	}
	d.mu.Unlock()
	for _, idx := range idxs {
		d.learnAddrs(idx)
	}
}

// learnAddrs gives a quarantined interface the endpoint_ips entries of
// the addresses its pod side carries (see peerAddrs), so that the pod
// can resolve its neighbours and is known to send from its own
// addresses, while nothing but the node's traffic passes. An address
// another interface holds is never taken over. A pod interface whose
// other end cannot be read keeps none: its neighbour resolution then
// waits for its release.
func (d *Datapath) learnAddrs(idx uint32) {
	d.mu.Lock()
	p, known := d.quarantine.peers[idx]
	_, held := d.quarantine.since[idx]
	d.mu.Unlock()
	if !known || !held || p.nsid < 0 {
		return
	}
	addrs, err := d.readPeerAddrs(p)
	if err != nil {
		d.log.Debug("read a quarantined pod's addresses", "ifindex", idx, "error", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recordQuarantinedAddrs(idx, addrs)
}

// learnAddrsForSync does learnAddrs, mu held, for the quarantined
// interfaces that have no address yet: a Sync about to look for pods'
// interfaces calls it first, for on a bridge that lookup resolves the
// pod's address, which the pod can answer only once it is known (and the
// Sync holds mu, so the interface watch cannot record it meanwhile).
func (d *Datapath) learnAddrsForSync() {
	for idx := range d.quarantine.since {
		p, known := d.quarantine.peers[idx]
		if !known || p.nsid < 0 || len(d.quarantine.addrs[idx]) > 0 {
			continue
		}
		if addrs, err := d.readPeerAddrs(p); err == nil {
			d.recordQuarantinedAddrs(idx, addrs)
		}
	}
}

func (d *Datapath) readPeerAddrs(p peerRef) (addrs []netip.Addr, err error) {
	err = runInNetNS(d.opts.NetNS, func() (err error) {
		addrs, err = peerAddrs(p.nsid, p.index)
		return err
	})
	return addrs, err
}

// recordQuarantinedAddrs writes the endpoint_ips entries of a quarantined
// interface's addresses that no interface holds yet. mu is held.
func (d *Datapath) recordQuarantinedAddrs(idx uint32, addrs []netip.Addr) {
	if _, held := d.quarantine.since[idx]; !held || d.closed {
		return
	}
	if v, ok := d.applied.Endpoints[idx]; !ok || v.Identity != QuarantineIdentity {
		return
	}
	for _, a := range addrs {
		k, ok := NewAddrKey(a)
		if !ok {
			continue
		}
		if cur, taken := d.applied.EndpointIPs[k]; taken {
			if cur.Ifindex == idx && !slices.Contains(d.quarantine.addrs[idx], k) {
				// Its own already (it held it before going back into
				// quarantine): kept through the coming Syncs.
				d.quarantine.addrs[idx] = append(d.quarantine.addrs[idx], k)
			}
			continue
		}
		v := bpf.PalisadeEndpointIpValue{Ifindex: idx}
		if err := d.objs.EndpointIps.Put(k, v); err != nil {
			d.log.Warn("record a quarantined pod's address", "ifindex", idx, "address", a, "error", err)
			continue
		}
		d.applied.EndpointIPs[k] = v
		d.quarantine.addrs[idx] = append(d.quarantine.addrs[idx], k)
		d.finder.solicit(idx, a)
	}
}
