package podnet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// PodConfig describes one pod's network.
type PodConfig struct {
	// Namespace and Name are the pod's Kubernetes namespace and name; its
	// network namespace is <prefix>-<Namespace>-<Name>.
	Namespace, Name string
	// IPv4 and IPv6 are the pod's addresses. Both zero: the node's next
	// free pair. IPv4 set and IPv6 zero: an IPv4-only pod. An address
	// freed by a deleted pod may be given again.
	IPv4, IPv6 netip.Addr
	// HostInterface names the host-side veth in the node's namespace
	// (default: "v<namespace><name>", or a hash when that is too long).
	HostInterface string
}

// Pod is a pod's network namespace: eth0 with its /32 and /128, routed
// from the node over a veth pair, as a routed CNI plugin makes it.
type Pod struct {
	Endpoint
	namespace, name string
	node            *Node
	hostIf          string
}

// Namespace is the pod's Kubernetes namespace.
func (p *Pod) Namespace() string { return p.namespace }

// Name is the pod's Kubernetes name.
func (p *Pod) Name() string { return p.name }

// Ref is "namespace/name".
func (p *Pod) Ref() string { return p.namespace + "/" + p.name }

// Node is the pod's node.
func (p *Pod) Node() *Node { return p.node }

// HostInterface is the host-side veth in the node's namespace, where
// the enforcer attaches.
func (p *Pod) HostInterface() string { return p.hostIf }

// AddPod creates what a CNI ADD creates: the pod's namespace, a veth pair
// whose host side carries the node's gateways, the pod's addresses and
// default routes, and the node's /32 and /128 routes to the pod. A
// failure leaves nothing of the pod behind.
func (n *Node) AddPod(cfg PodConfig) (_ *Pod, err error) {
	if err := validName("pod namespace", cfg.Namespace); err != nil {
		return nil, err
	}
	if err := validName("pod name", cfg.Name); err != nil {
		return nil, err
	}
	hostIf := cfg.HostInterface
	if hostIf == "" {
		hostIf = hostInterfaceName(cfg.Namespace, cfg.Name)
	}
	if err := validInterfaceName(hostIf); err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	ref := cfg.Namespace + "/" + cfg.Name

	n.mu.Lock()
	if n.ifnames[hostIf] {
		n.mu.Unlock()
		return nil, fmt.Errorf("pod %s: node %s already has an interface %s", ref, n.cfg.Name, hostIf)
	}
	v4, v6 := cfg.IPv4, cfg.IPv6
	var aerr error
	switch {
	case !v4.IsValid() && v6.IsValid():
		aerr = fmt.Errorf("IPv6 address %s given without an IPv4 address", v6)
	case !v4.IsValid():
		v4, v6, aerr = n.plan.allocate()
	default:
		aerr = n.plan.reserve(v4, v6)
	}
	if aerr != nil {
		n.mu.Unlock()
		return nil, fmt.Errorf("pod %s: %w", ref, aerr)
	}
	n.ifnames[hostIf] = true
	n.mu.Unlock()

	p := &Pod{Endpoint: Endpoint{v4: v4, v6: v6}, namespace: cfg.Namespace, name: cfg.Name, node: n, hostIf: hostIf}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("pod %s: %w", ref, err), p.remove())
		}
	}()
	if p.netns, err = n.nw.newNetns(cfg.Namespace + "-" + cfg.Name); err != nil {
		return nil, err
	}
	if err := p.netns.sysctl("net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"); err != nil {
		return nil, err
	}
	if err := ip(n.netns, podHostCommands(p.netns, hostIf, n.cfg.gateway4(), v4, v6)...); err != nil {
		return nil, err
	}
	if err := ip(p.netns, podCommands(n.cfg.gateway4(), v4, v6)...); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.pods = append(n.pods, p)
	n.mu.Unlock()
	return p, nil
}

// podHostCommands are the node side of a pod's network.
func podHostCommands(pod Netns, hostIf string, gw4, v4, v6 netip.Addr) []string {
	cmds := []string{
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", hostIf, pod),
		fmt.Sprintf("addr add %s/32 dev %s", gw4, hostIf),
		fmt.Sprintf("link set %s up", hostIf),
		fmt.Sprintf("route add %s/32 dev %s scope link", v4, hostIf),
	}
	if v6.IsValid() {
		cmds = append(cmds,
			fmt.Sprintf("addr add %s/64 dev %s nodad", Gateway6, hostIf),
			fmt.Sprintf("route add %s/128 dev %s", v6, hostIf))
	}
	return cmds
}

// podCommands are the pod side: addresses, and every route through the
// gateway on eth0.
func podCommands(gw4, v4, v6 netip.Addr) []string {
	cmds := []string{fmt.Sprintf("addr add %s/32 dev eth0", v4)}
	if v6.IsValid() {
		cmds = append(cmds, fmt.Sprintf("addr add %s/128 dev eth0 nodad", v6))
	}
	cmds = append(cmds,
		"link set eth0 up",
		fmt.Sprintf("route add %s dev eth0 scope link", gw4),
		fmt.Sprintf("route add default via %s dev eth0", gw4),
	)
	if v6.IsValid() {
		cmds = append(cmds, fmt.Sprintf("route add ::/0 via %s dev eth0", Gateway6))
	}
	return cmds
}

// Delete removes the pod's network as a CNI DEL does: its sockets, its
// veth pair (and with it the node's routes to it) and its namespace. Its
// addresses become free for another pod.
func (p *Pod) Delete() error {
	n := p.node
	n.mu.Lock()
	n.pods = slices.DeleteFunc(n.pods, func(q *Pod) bool { return q == p })
	n.mu.Unlock()
	return p.remove()
}

// remove undoes whatever part of AddPod happened.
func (p *Pod) remove() error {
	var errs []error
	for _, c := range p.takeClosers() {
		if err := c.Close(); err != nil && !errors.Is(err, errClosed) {
			errs = append(errs, err)
		}
	}
	n := p.node
	// The host end first: deleting it deletes the pair at once, even if
	// something outside the network still holds the pod's namespace.
	if n.netns.Exists() {
		if err := ip(n.netns, "link del "+p.hostIf); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
			errs = append(errs, err)
		}
	}
	if p.netns != "" {
		if err := n.nw.dropNetns(p.netns); err != nil {
			errs = append(errs, err)
		}
	}
	n.mu.Lock()
	delete(n.ifnames, p.hostIf)
	n.plan.release(p.v4, p.v6)
	n.mu.Unlock()
	return errors.Join(errs...)
}
