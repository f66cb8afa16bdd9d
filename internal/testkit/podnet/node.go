package podnet

import (
	"net/netip"
	"slices"
	"sync"
)

// Node is one node's network namespace: it holds the host side of every
// pod's veth (where the enforcer attaches) and routes between them.
type Node struct {
	nw    *Network
	cfg   NodeConfig
	netns Netns

	mu      sync.Mutex
	plan    *addrPlan
	ifnames map[string]bool
	pods    []*Pod
	hostIPs []netip.Addr // addresses beyond the gateway: wires, external links
}

// Name is the Kubernetes node name.
func (n *Node) Name() string { return n.cfg.Name }

// Netns is the node's namespace (the enforcer's --netns).
func (n *Node) Netns() Netns { return n.netns }

// PodCIDRs are the node's pod ranges, IPv4 then IPv6.
func (n *Node) PodCIDRs() (netip.Prefix, netip.Prefix) { return n.cfg.PodCIDR4, n.cfg.PodCIDR6 }

// Gateway4 is the node's address on every pod veth, and its source
// address toward its pods.
func (n *Node) Gateway4() netip.Addr { return n.cfg.gateway4() }

// HostIPs are the node's own addresses, what the enforcer's --host-ips
// says: the pod gateway, then its wire and external-link addresses.
func (n *Node) HostIPs() []netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]netip.Addr{n.cfg.gateway4()}, n.hostIPs...)
}

// Pods lists the node's pods, oldest first.
func (n *Node) Pods() []*Pod {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.pods)
}

func (n *Node) addHostIP(a netip.Addr) {
	n.mu.Lock()
	n.hostIPs = append(n.hostIPs, a)
	n.mu.Unlock()
}
