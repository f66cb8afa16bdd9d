package podnet

import (
	"fmt"
	"net/netip"
)

// WireConfig describes the link between two nodes.
type WireConfig struct {
	// Subnet4 and Subnet6 address the link (default 192.168.100.0/24 and
	// fd00:ff::/64): the first node takes host 1, the second host 2.
	Subnet4, Subnet6 netip.Prefix
	// Interface names the link's end in each node (default "w-<peer>").
	Interface string
}

// wire is one link between two nodes.
type wire struct {
	a, b   *Node
	a4, a6 netip.Addr // a's addresses on the wire
	b4, b6 netip.Addr
}

// Connect links two nodes with a veth pair and routes each node's pod
// ranges (and the external hosts attached to it) to the other, as the
// nodes of a routed cluster reach each other's pods.
func (nw *Network) Connect(a, b *Node, cfg WireConfig) error {
	if a == b || a.nw != nw || b.nw != nw {
		return fmt.Errorf("connect nodes: want two distinct nodes of this network")
	}
	if !cfg.Subnet4.IsValid() {
		cfg.Subnet4 = netip.MustParsePrefix("192.168.100.0/24")
	}
	if !cfg.Subnet6.IsValid() {
		cfg.Subnet6 = netip.MustParsePrefix("fd00:ff::/64")
	}
	if !cfg.Subnet4.Addr().Is4() || !cfg.Subnet6.Addr().Is6() || cfg.Subnet4.Bits() > 30 || cfg.Subnet6.Bits() > 126 {
		return fmt.Errorf("connect %s and %s: subnets %s, %s: want an IPv4 and an IPv6 range with room for two hosts", a.Name(), b.Name(), cfg.Subnet4, cfg.Subnet6)
	}
	ifA, ifB := cfg.Interface, cfg.Interface
	if ifA == "" {
		ifA, ifB = "w-"+b.Name(), "w-"+a.Name()
	}
	for _, name := range []string{ifA, ifB} {
		if err := validInterfaceName(name); err != nil {
			return fmt.Errorf("connect %s and %s: %w", a.Name(), b.Name(), err)
		}
	}
	w := wire{a: a, b: b,
		a4: addHost(cfg.Subnet4.Masked().Addr(), 1), a6: addHost(cfg.Subnet6.Masked().Addr(), 1),
		b4: addHost(cfg.Subnet4.Masked().Addr(), 2), b6: addHost(cfg.Subnet6.Masked().Addr(), 2),
	}
	bits4, bits6 := cfg.Subnet4.Bits(), cfg.Subnet6.Bits()
	if err := ip(a.netns,
		fmt.Sprintf("link add %s type veth peer name %s netns %s", ifA, ifB, b.netns),
		fmt.Sprintf("addr add %s/%d dev %s", w.a4, bits4, ifA),
		fmt.Sprintf("addr add %s/%d dev %s nodad", w.a6, bits6, ifA),
		fmt.Sprintf("link set %s up", ifA),
	); err != nil {
		return err
	}
	if err := ip(b.netns,
		fmt.Sprintf("addr add %s/%d dev %s", w.b4, bits4, ifB),
		fmt.Sprintf("addr add %s/%d dev %s nodad", w.b6, bits6, ifB),
		fmt.Sprintf("link set %s up", ifB),
	); err != nil {
		return err
	}
	a.addHostIP(w.a4)
	a.addHostIP(w.a6)
	b.addHostIP(w.b4)
	b.addHostIP(w.b6)
	nw.mu.Lock()
	nw.wires = append(nw.wires, w)
	externals := append([]*External(nil), nw.externals...)
	nw.mu.Unlock()
	if err := ip(a.netns, routesVia(b, w.b4, w.b6)...); err != nil {
		return err
	}
	if err := ip(b.netns, routesVia(a, w.a4, w.a6)...); err != nil {
		return err
	}
	for _, e := range externals {
		if err := nw.routeExternal(e); err != nil {
			return err
		}
	}
	return nil
}

// routesVia routes a node's pod ranges to its wire addresses.
func routesVia(to *Node, gw4, gw6 netip.Addr) []string {
	return []string{
		fmt.Sprintf("route add %s via %s", to.cfg.PodCIDR4, gw4),
		fmt.Sprintf("route add %s via %s", to.cfg.PodCIDR6, gw6),
	}
}

// ExternalConfig describes a host outside the cluster, linked to one node.
type ExternalConfig struct {
	// Name names the host's namespace, <prefix>-<Name>.
	Name string
	// Subnet4 and Subnet6 address the link (default 172.30.0.0/24 and
	// fd00:fe::/64): the node takes host 1, the external host host 2.
	Subnet4, Subnet6 netip.Prefix
	// Extra are more addresses of the external host, inside the subnets
	// (e.g. one outside an ipBlock a policy allows).
	Extra []netip.Addr
	// Interface names the link's end in the node (default "e-<Name>").
	Interface string
}

// External is a host outside the cluster: its namespace, reached
// through one node (and from the other nodes through their wires).
type External struct {
	Endpoint
	name   string
	via    *Node
	cfg    ExternalConfig
	gw4    netip.Addr // the node's address on the link
	gw6    netip.Addr
	extras []netip.Addr
}

// Name is the host's name.
func (e *External) Name() string { return e.name }

// Via is the node the host is linked to.
func (e *External) Via() *Node { return e.via }

// Extra are the host's extra addresses.
func (e *External) Extra() []netip.Addr { return append([]netip.Addr(nil), e.extras...) }

// AddExternal creates a host outside the cluster linked to via: its own
// namespace with addresses in the link's subnets, a default route through
// via, and routes to it on every node wired to via.
func (nw *Network) AddExternal(via *Node, cfg ExternalConfig) (*External, error) {
	if via == nil || via.nw != nw {
		return nil, fmt.Errorf("add external host %s: want a node of this network", cfg.Name)
	}
	if err := validName("external host name", cfg.Name); err != nil {
		return nil, err
	}
	if !cfg.Subnet4.IsValid() {
		cfg.Subnet4 = netip.MustParsePrefix("172.30.0.0/24")
	}
	if !cfg.Subnet6.IsValid() {
		cfg.Subnet6 = netip.MustParsePrefix("fd00:fe::/64")
	}
	cfg.Subnet4, cfg.Subnet6 = cfg.Subnet4.Masked(), cfg.Subnet6.Masked()
	if !cfg.Subnet4.Addr().Is4() || !cfg.Subnet6.Addr().Is6() || cfg.Subnet4.Bits() > 30 || cfg.Subnet6.Bits() > 126 {
		return nil, fmt.Errorf("add external host %s: subnets %s, %s: want an IPv4 and an IPv6 range with room for two hosts", cfg.Name, cfg.Subnet4, cfg.Subnet6)
	}
	for _, a := range cfg.Extra {
		if !cfg.Subnet4.Contains(a) && !cfg.Subnet6.Contains(a) {
			return nil, fmt.Errorf("add external host %s: extra address %s is outside %s and %s", cfg.Name, a, cfg.Subnet4, cfg.Subnet6)
		}
	}
	hostIf := cfg.Interface
	if hostIf == "" {
		hostIf = "e-" + cfg.Name
	}
	if err := validInterfaceName(hostIf); err != nil {
		return nil, fmt.Errorf("add external host %s: %w", cfg.Name, err)
	}
	e := &External{name: cfg.Name, via: via, cfg: cfg, extras: append([]netip.Addr(nil), cfg.Extra...),
		gw4: addHost(cfg.Subnet4.Addr(), 1), gw6: addHost(cfg.Subnet6.Addr(), 1)}
	e.v4, e.v6 = addHost(cfg.Subnet4.Addr(), 2), addHost(cfg.Subnet6.Addr(), 2)
	ns, err := nw.newNetns(cfg.Name)
	if err != nil {
		return nil, err
	}
	e.netns = ns
	if err := ns.sysctl("net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"); err != nil {
		return nil, err
	}
	b4, b6 := cfg.Subnet4.Bits(), cfg.Subnet6.Bits()
	if err := ip(via.netns,
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", hostIf, ns),
		fmt.Sprintf("addr add %s/%d dev %s", e.gw4, b4, hostIf),
		fmt.Sprintf("addr add %s/%d dev %s nodad", e.gw6, b6, hostIf),
		fmt.Sprintf("link set %s up", hostIf),
	); err != nil {
		return nil, err
	}
	cmds := []string{
		fmt.Sprintf("addr add %s/%d dev eth0", e.v4, b4),
		fmt.Sprintf("addr add %s/%d dev eth0 nodad", e.v6, b6),
	}
	for _, a := range e.extras {
		if a.Is6() {
			cmds = append(cmds, fmt.Sprintf("addr add %s/%d dev eth0 nodad", a, b6))
		} else {
			cmds = append(cmds, fmt.Sprintf("addr add %s/%d dev eth0", a, b4))
		}
	}
	cmds = append(cmds, "link set eth0 up",
		fmt.Sprintf("route add default via %s", e.gw4),
		fmt.Sprintf("route add ::/0 via %s", e.gw6))
	if err := ip(ns, cmds...); err != nil {
		return nil, err
	}
	via.addHostIP(e.gw4)
	via.addHostIP(e.gw6)
	nw.mu.Lock()
	nw.externals = append(nw.externals, e)
	nw.mu.Unlock()
	return e, nw.routeExternal(e)
}

// routeExternal routes an external host's subnets on every node wired to
// the node it hangs off; a route that exists already is kept.
func (nw *Network) routeExternal(e *External) error {
	nw.mu.Lock()
	wires := append([]wire(nil), nw.wires...)
	nw.mu.Unlock()
	for _, w := range wires {
		var on *Node
		var gw4, gw6 netip.Addr
		switch e.via {
		case w.a:
			on, gw4, gw6 = w.b, w.a4, w.a6
		case w.b:
			on, gw4, gw6 = w.a, w.b4, w.b6
		default:
			continue
		}
		if err := ip(on.netns,
			fmt.Sprintf("route replace %s via %s", e.cfg.Subnet4, gw4),
			fmt.Sprintf("route replace %s via %s", e.cfg.Subnet6, gw6),
		); err != nil {
			return err
		}
	}
	return nil
}
