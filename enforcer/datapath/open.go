package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// DefaultPinRoot is where a node's pins live unless Options.PinDir says
// otherwise: one directory per node name.
const DefaultPinRoot = "/sys/fs/bpf/palisade"

// Options configure Open.
type Options struct {
	// NodeName names the node; the pins go under DefaultPinRoot/NodeName
	// unless PinDir is set.
	NodeName string
	// PinDir overrides the pin directory. It must be on a bpf filesystem.
	PinDir string
	// Config sizes the maps and tunes the programs (bpf.NewSpec). A size
	// that differs from the pinned maps' replaces them (see Open).
	Config bpf.Config
	// NetNS is the path of the network namespace holding the pods' host
	// interfaces (e.g. /var/run/netns/node1); empty means the caller's.
	// Interface indexes, tcx attachments and netlink lookups all refer to
	// it.
	NetNS string
	// Conntrack sets the idle timeouts of the conntrack collector; zero
	// fields take the defaults of DefaultConntrackTimeouts.
	Conntrack ConntrackTimeouts
	// ServiceCIDRs are the cluster's service address ranges (kube-
	// apiserver's --service-cluster-ip-range, IPv4 and IPv6). Pods'
	// egress to them is judged after the node's DNAT (kube-proxy),
	// against the backend pod: at the backend's interface when it is
	// local, at an uplink (see Uplinks) when it is not. Empty defers
	// nothing: egress to a service address is judged against the address
	// itself, which no pod selector matches, and no uplink is attached.
	ServiceCIDRs []netip.Prefix
	// Uplinks names the node's interfaces towards other nodes and the
	// world, where deferred service traffic to remote backends is judged
	// (tcx egress). Nil detects them: every interface a route with a
	// gateway (the default route, routes to other nodes' pod ranges) or a
	// device-only default route leaves through, loopback excepted. Used
	// only with ServiceCIDRs; an interface that cannot be found or
	// attached fails Open.
	Uplinks []string
	// PodInterfaces are the name patterns (filepath.Match) of the pods'
	// host-side interfaces, as the node's CNI plugin names them (see
	// DefaultPodInterfaces). A veth or netkit device matching one, with
	// its peer in another network namespace, is enforced from the moment
	// it appears, in quarantine until a Sync names its pod (see
	// WatchPodInterfaces). Empty quarantines nothing: an interface is
	// then enforced only once its pod is known, and passes everything
	// before.
	PodInterfaces []string
	// Logger receives one line per replaced pin, adopted or stale link;
	// nil discards them.
	Logger *slog.Logger
}

func (o Options) pinDir() (string, error) {
	if o.PinDir != "" {
		return filepath.Clean(o.PinDir), nil
	}
	if o.NodeName == "" || o.NodeName == "." || o.NodeName == ".." || strings.ContainsAny(o.NodeName, "/\x00") {
		return "", fmt.Errorf("open datapath: node name %q cannot name a pin directory", o.NodeName)
	}
	return filepath.Join(DefaultPinRoot, o.NodeName), nil
}

// The maps whose contents Sync decides. They are adopted or replaced
// together: a program must never see some of them from one enforcer's
// view and some from another's.
func stateMaps() []string {
	return []string{bpf.PalisadeMapIpIdentity, bpf.PalisadeMapEndpoints, bpf.PalisadeMapPolicy, bpf.PalisadeMapPolicyRanges, bpf.PalisadeMapServiceCidrs, bpf.PalisadeMapEndpointIps, bpf.PalisadeMapSourceCidrs}
}

// The maps the programs fill themselves; each is adopted on its own,
// except conntrack's (conntrackMaps), adopted together.
func runtimeMaps() []string {
	return []string{bpf.PalisadeMapConntrack, bpf.PalisadeMapFragments, bpf.PalisadeMapEvents, bpf.PalisadeMapCounters, bpf.PalisadeMapEventBudget, bpf.PalisadeMapServiceOrigin,
		bpf.PalisadeMapCtEndpointUsed, bpf.PalisadeMapCtEndpointCollected, bpf.PalisadeMapEndpointEventBudget}
}

// Datapath is the loaded, pinned datapath of one node. Its methods are
// safe for concurrent use; Sync calls are serialised.
type Datapath struct {
	opts   Options
	log    *slog.Logger
	pinDir string
	objs   bpf.PalisadeObjects
	finder *InterfaceFinder

	mu     sync.Mutex
	closed bool
	// applied is what the state maps hold; dirty says it may not be, so
	// the next Sync reads the maps first.
	applied Entries
	dirty   bool
	// podIPs holds each endpoint's addresses as last synced.
	podIPs map[policy.PodRef][]netip.Addr
	// revision is the last endpoint revision handed out, node-wide.
	revision uint32
	links    map[uint32]*endpointLinks
	// pending lists adopted links still running a previous enforcer's
	// programs over that enforcer's maps, because this one's state maps
	// were replaced: they switch once a Sync has filled the new maps.
	pending map[uint32]bool
	// uplinks holds palisade_uplink's attachments by interface, and
	// pendingUplinks those adopted with a previous run's programs.
	uplinks        map[uint32]link.Link
	pendingUplinks map[uint32]bool
	// quarantine follows the pod interfaces the State does not name yet.
	quarantine *quarantine

	// shareMu serialises Go's writes of ct_endpoint_collected.
	shareMu sync.Mutex

	// pods maps interfaces to pods for event readers, without mu.
	pods atomic.Pointer[map[uint32]policy.PodRef]
}

// Open checks that the node can run the datapath, then loads the programs
// with the pinned maps of a previous run where they fit, pins the rest,
// and adopts the pinned tcx links, so that a restart never stops
// enforcement.
//
// A pinned object that is not a map of the expected type, key size,
// value size, size or flags is replaced, with a log line. If any state map
// (ip_identity, endpoints, policy, policy_ranges, service_cidrs) is
// replaced, all of them are: the links adopted from the previous run keep
// its programs and complete map set until the first Sync has filled the
// new maps, then switch atomically. A replaced runtime map starts empty,
// except conntrack: the flows of a pinned table of the same layout (a
// previous version's LRU, another size) are carried into the new one, as
// far as they fit; flows not carried are forgotten, and their packets into
// isolated directions are then dropped unless they open a new flow (a TCP
// packet other than a SYN never does).
func Open(opts Options) (*Datapath, error) {
	return open(opts, nodeProbes())
}

func open(opts Options, probes featureProbes) (*Datapath, error) {
	pinDir, err := opts.pinDir()
	if err != nil {
		return nil, err
	}
	if err := checkFeatures(probes, pinDir); err != nil {
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	d := &Datapath{
		opts:    opts,
		log:     opts.Logger,
		pinDir:  pinDir,
		applied: newEntries(),
		links:   map[uint32]*endpointLinks{},
		pending: map[uint32]bool{},

		uplinks:        map[uint32]link.Link{},
		pendingUplinks: map[uint32]bool{},
		quarantine:     newQuarantine(),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.pods.Store(&map[uint32]policy.PodRef{})
	for _, dir := range []string{d.mapsDir(), d.linksDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open datapath: create pin directory: %w", err)
		}
	}
	if err := d.load(); err != nil {
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	fail := func(err error) (*Datapath, error) {
		d.closeFDs()
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	if err := d.readState(); err != nil {
		return fail(err)
	}
	if err := d.seedRevision(); err != nil {
		return fail(err)
	}
	if err := d.adoptLinks(); err != nil {
		return fail(err)
	}
	if d.finder, err = NewInterfaceFinder(opts.NetNS); err != nil {
		return fail(err)
	}
	if err := d.reconcileUplinks(); err != nil {
		return fail(err)
	}
	return d, nil
}

func (d *Datapath) mapsDir() string           { return filepath.Join(d.pinDir, "maps") }
func (d *Datapath) linksDir() string          { return filepath.Join(d.pinDir, "links") }
func (d *Datapath) mapPin(name string) string { return filepath.Join(d.mapsDir(), name) }

// load loads the collection, reusing every compatible pinned map, and
// pins the maps it created in place of missing or unusable pins.
func (d *Datapath) load() error {
	spec, err := bpf.NewSpec(d.opts.Config)
	if err != nil {
		return err
	}
	adopted := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range adopted {
			m.Close() // LoadAndAssign took clones
		}
	}()
	stateComplete := true
	for _, name := range append(stateMaps(), runtimeMaps()...) {
		m, ok := d.pinnedMap(spec.Maps[name], name)
		if ok {
			adopted[name] = m
		} else if isStateMap(name) {
			stateComplete = false
		}
	}
	d.adoptConntrackTogether(adopted)
	if !stateComplete {
		for _, name := range stateMaps() {
			if m, ok := adopted[name]; ok {
				d.log.Warn("replacing pinned map so that all state maps come from one run", "map", name, "pin", d.mapPin(name))
				m.Close()
				delete(adopted, name)
			}
		}
	}

	if err := spec.LoadAndAssign(&d.objs, &ebpf.CollectionOptions{MapReplacements: adopted}); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load programs: %+v", ve)
		}
		return fmt.Errorf("load programs: %w", err)
	}
	if _, ok := adopted[bpf.PalisadeMapConntrack]; !ok {
		d.carryConntrack()
	}
	for name, m := range d.mapsByName() {
		if _, ok := adopted[name]; ok {
			continue
		}
		path := d.mapPin(name)
		if err := os.RemoveAll(path); err != nil {
			d.closeFDs()
			return fmt.Errorf("unpin replaced map %s: %w", name, err)
		}
		if err := m.Pin(path); err != nil {
			d.closeFDs()
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	return nil
}

// pinnedMap opens the pin of one map if it holds a map the spec can use.
// Anything else there is left for load to replace, with a log line.
func (d *Datapath) pinnedMap(spec *ebpf.MapSpec, name string) (*ebpf.Map, bool) {
	path := d.mapPin(name)
	m, err := ebpf.LoadPinnedMap(path, nil)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, false
	case err != nil:
		d.log.Warn("replacing pinned object: not a usable map", "map", name, "pin", path, "error", err)
		return nil, false
	}
	if err := spec.Compatible(m); err != nil {
		d.log.Warn("replacing pinned map: incompatible with this build", "map", name, "pin", path, "error", err)
		m.Close()
		return nil, false
	}
	return m, true
}

func isStateMap(name string) bool {
	for _, n := range stateMaps() {
		if n == name {
			return true
		}
	}
	return false
}

func (d *Datapath) mapsByName() map[string]*ebpf.Map {
	m := d.objs.PalisadeMaps
	return map[string]*ebpf.Map{
		bpf.PalisadeMapIpIdentity:    m.IpIdentity,
		bpf.PalisadeMapEndpoints:     m.Endpoints,
		bpf.PalisadeMapPolicy:        m.Policy,
		bpf.PalisadeMapPolicyRanges:  m.PolicyRanges,
		bpf.PalisadeMapServiceCidrs:  m.ServiceCidrs,
		bpf.PalisadeMapConntrack:     m.Conntrack,
		bpf.PalisadeMapFragments:     m.Fragments,
		bpf.PalisadeMapEvents:        m.Events,
		bpf.PalisadeMapCounters:      m.Counters,
		bpf.PalisadeMapEventBudget:   m.EventBudget,
		bpf.PalisadeMapEndpointIps:   m.EndpointIps,
		bpf.PalisadeMapSourceCidrs:   m.SourceCidrs,
		bpf.PalisadeMapServiceOrigin: m.ServiceOrigin,

		bpf.PalisadeMapCtEndpointUsed:      m.CtEndpointUsed,
		bpf.PalisadeMapCtEndpointCollected: m.CtEndpointCollected,
		bpf.PalisadeMapEndpointEventBudget: m.EndpointEventBudget,
	}
}

// seedRevision starts the node-wide revision counter above every revision
// a tracked flow or an endpoint may still carry, so that no reused
// interface index ever matches an old flow's revision.
func (d *Datapath) seedRevision() error {
	max := uint32(0)
	for _, v := range d.applied.Endpoints {
		max = maxU32(max, v.Revision)
	}
	_, err := d.scanConntrack(func(_ *bpf.PalisadeCtKey, v *bpf.PalisadeCtValue) bool {
		max = maxU32(max, v.Revision)
		return false
	})
	if err != nil {
		return fmt.Errorf("read conntrack revisions: %w", err)
	}
	d.revision = max
	return nil
}

func maxU32(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

// nextRevision hands out the next revision; 0 is skipped because
// conntrack entries never carry it as a valid judgement.
func (d *Datapath) nextRevision() uint32 {
	d.revision++
	if d.revision == 0 {
		d.revision = 1
	}
	return d.revision
}

// Close releases the Datapath's file descriptors. Pinned maps and links
// stay: the programs keep enforcing the last synced state until another
// Open adopts them. Use Remove to take Palisade off the node.
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.closeFDs()
	return nil
}

func (d *Datapath) closeFDs() {
	for _, l := range d.links {
		l.close()
	}
	d.links = map[uint32]*endpointLinks{}
	for _, l := range d.uplinks {
		l.Close()
	}
	d.uplinks = map[uint32]link.Link{}
	if d.finder != nil {
		d.finder.Close()
		d.finder = nil
	}
	d.objs.Close()
}

// Remove detaches every link, unpins every map and deletes the pin
// directory, then closes the Datapath: traffic on the pods' interfaces is
// no longer judged.
func (d *Datapath) Remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for idx, l := range d.links {
		if err := l.detach(); err != nil {
			errs = append(errs, fmt.Errorf("detach interface %d: %w", idx, err))
		}
	}
	d.links = map[uint32]*endpointLinks{}
	for idx, l := range d.uplinks {
		if err := detachLink(l); err != nil {
			errs = append(errs, fmt.Errorf("detach uplink %d: %w", idx, err))
		}
	}
	d.uplinks = map[uint32]link.Link{}
	if err := os.RemoveAll(d.pinDir); err != nil {
		errs = append(errs, fmt.Errorf("remove pins: %w", err))
	}
	if !d.closed {
		d.closed = true
		d.closeFDs()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove datapath: %w", err)
	}
	return nil
}

// PinDir returns the directory holding the pins.
func (d *Datapath) PinDir() string { return d.pinDir }
