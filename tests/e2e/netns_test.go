package e2e

import (
	"fmt"
	"net/netip"

	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

// The routed topology, built with internal/testkit/podnet, all in network
// namespaces named <prefix>-<what>:
//
//	pod netns ──veth── node1 netns ──veth "wire"── node2 netns ──veth── pod netns
//	                       │
//	                   veth "ext0"
//	                       │
//	                   ext netns (172.30.0.2 and 172.30.0.200: outside the cluster)
//
// Pods are routed the way Calico, kindnet and the ptp plugin do it: each
// pod's /32 and /128 are routed to its own veth, whose node side carries
// the gateway 10.244.N.1 (IPv6: fe80::1). The nodes route each other's pod
// ranges over the wire; node2 reaches ext through node1.

// nodeNet is what one node's addressing looks like.
type nodeNet struct {
	name   string // Kubernetes node name: node1, node2
	index  int    // N in 10.244.N.0/24 and fd00:N::/64
	wire4  string // the node's address on the wire
	wire6  string
	hostIP []string // what --host-ips says
}

func (n nodeNet) gateway4() string { return fmt.Sprintf("10.244.%d.1", n.index) }

func (n nodeNet) podAddrs(host int) (netip.Addr, netip.Addr) {
	return netip.MustParseAddr(fmt.Sprintf("10.244.%d.%d", n.index, host)), netip.MustParseAddr(fmt.Sprintf("fd00:%d::%d", n.index, host))
}

var (
	node1Net = nodeNet{name: "node1", index: 1, wire4: "192.168.100.1", wire6: "fd00:ff::1", hostIP: []string{"10.244.1.1", "192.168.100.1", "172.30.0.1"}}
	node2Net = nodeNet{name: "node2", index: 2, wire4: "192.168.100.2", wire6: "fd00:ff::2", hostIP: []string{"10.244.2.1", "192.168.100.2"}}
)

const (
	extIP   = "172.30.0.2"
	extHiIP = "172.30.0.200" // outside the /25 that some ipBlocks allow
)

// extSubnet6 is the external link's IPv6 range: podnet gives every link
// one, and its default (fd00:fe::/64) is node3's link to node1. No test
// reaches ext over IPv6.
var extSubnet6 = netip.MustParsePrefix("fd00:fd::/64")

// buildNodes creates both nodes, the wire between them and the external
// host, and registers their removal.
func (w *world) buildNodes() error {
	nw, err := podnet.New(w.prefix)
	if err != nil {
		return err
	}
	w.net = nw
	w.onTeardown(func() { nw.Close() })
	for _, n := range []nodeNet{node1Net, node2Net} {
		pn, err := nw.AddNode(podnet.NodeConfig{Name: n.name, Index: n.index})
		if err != nil {
			return err
		}
		w.nodes[n.name] = &node{net: n, netns: string(pn.Netns()), pn: pn}
	}
	n1, n2 := w.nodes["node1"].pn, w.nodes["node2"].pn
	if err := nw.Connect(n1, n2, podnet.WireConfig{
		Subnet4:   netip.MustParsePrefix(node1Net.wire4 + "/24"),
		Subnet6:   netip.MustParsePrefix(node1Net.wire6 + "/64"),
		Interface: "wire",
	}); err != nil {
		return err
	}
	ext, err := nw.AddExternal(n1, podnet.ExternalConfig{
		Name:      "ext",
		Subnet4:   netip.MustParsePrefix("172.30.0.0/24"),
		Subnet6:   extSubnet6,
		Extra:     []netip.Addr{netip.MustParseAddr(extHiIP)},
		Interface: "ext0",
	})
	if err != nil {
		return err
	}
	if ext.IPv4() != netip.MustParseAddr(extIP) {
		return fmt.Errorf("external host has %s, want %s", ext.IPv4(), extIP)
	}
	for _, n := range []nodeNet{node1Net, node2Net} {
		if err := checkHostIPs(n, w.nodes[n.name].pn); err != nil {
			return err
		}
	}
	w.ext = &pod{name: "ext", netns: string(ext.Netns()), v4: ext.IPv4()}
	return nil
}

// checkHostIPs fails when an address --host-ips names is not one podnet
// gave the node.
func checkHostIPs(n nodeNet, pn *podnet.Node) error {
	has := map[string]bool{}
	for _, a := range pn.HostIPs() {
		has[a.String()] = true
	}
	for _, a := range n.hostIP {
		if !has[a] {
			return fmt.Errorf("node %s: --host-ips names %s, but its addresses are %v", n.name, a, pn.HostIPs())
		}
	}
	return nil
}

// addPodNetwork creates a pod's namespace and routed veth on its node.
func (w *world) addPodNetwork(p *pod) error {
	pp, err := p.node.pn.AddPod(podnet.PodConfig{Namespace: p.ns, Name: p.name, IPv4: p.v4, IPv6: p.v6, HostInterface: p.hostIf})
	if err != nil {
		return err
	}
	if got := string(pp.Netns()); got != p.netns {
		pp.Delete()
		return fmt.Errorf("pod %s: podnet named its namespace %s, want %s", p.ref(), got, p.netns)
	}
	p.pn = pp
	return nil
}

// removePodNetwork deletes a pod's namespace and veth pair, as a CNI DEL
// does. Bridged pods are not podnet's: deleting their namespace deletes
// their veth, and so their bridge port.
func (w *world) removePodNetwork(p *pod) error {
	if p.pn == nil {
		return sh("ip", "netns", "del", p.netns)
	}
	return p.pn.Delete()
}
