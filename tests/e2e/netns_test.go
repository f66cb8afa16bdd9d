package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// The topology, all in network namespaces named <prefix>-<what>:
//
//	pod netns ──veth── node1 netns ──veth "wire"── node2 netns ──veth── pod netns
//	                       │
//	                     veth
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

func netnsPath(name string) string { return filepath.Join("/var/run/netns", name) }

// sh runs one command and returns an error with its output on failure.
func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipBatch runs `ip -batch` in a namespace: one process for many commands.
func ipBatch(netnsName string, cmds ...string) error {
	args := []string{"-batch", "-"}
	if netnsName != "" {
		args = append([]string{"-n", netnsName}, args...)
	}
	c := exec.Command("ip", args...)
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s -batch: %v: %s\ncommands:\n%s", netnsName, err, strings.TrimSpace(string(out)), strings.Join(cmds, "\n"))
	}
	return nil
}

// addNetns creates a network namespace and registers its deletion.
func (w *world) addNetns(name string) error {
	if err := sh("ip", "netns", "add", name); err != nil {
		return err
	}
	w.onTeardown(func() { exec.Command("ip", "netns", "del", name).Run() })
	return ipBatch(name, "link set lo up")
}

// buildNodes creates both nodes, the wire between them and the external
// host.
func (w *world) buildNodes() error {
	for _, n := range []nodeNet{node1Net, node2Net} {
		ns := w.prefix + "-" + n.name
		if err := w.addNetns(ns); err != nil {
			return err
		}
		for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.forwarding=1",
			// No duplicate address detection: link-local addresses would stay
			// tentative for seconds, and IPv6 between the nodes with them.
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"} {
			if err := sh("ip", "netns", "exec", ns, "sysctl", "-qw", kv); err != nil {
				return err
			}
		}
		w.nodes[n.name] = &node{net: n, netns: ns}
	}
	n1, n2 := w.nodes["node1"].netns, w.nodes["node2"].netns
	if err := ipBatch(n1,
		"link add wire type veth peer name wire netns "+n2,
		"addr add 192.168.100.1/24 dev wire",
		"addr add fd00:ff::1/64 dev wire nodad",
		"link set wire up",
	); err != nil {
		return err
	}
	if err := ipBatch(n2,
		"addr add 192.168.100.2/24 dev wire",
		"addr add fd00:ff::2/64 dev wire nodad",
		"link set wire up",
		"route add 10.244.1.0/24 via 192.168.100.1",
		"route add fd00:1::/64 via fd00:ff::1",
		"route add 172.30.0.0/24 via 192.168.100.1",
	); err != nil {
		return err
	}
	if err := ipBatch(n1,
		"route add 10.244.2.0/24 via 192.168.100.2",
		"route add fd00:2::/64 via fd00:ff::2",
	); err != nil {
		return err
	}
	ext := w.prefix + "-ext"
	if err := w.addNetns(ext); err != nil {
		return err
	}
	if err := ipBatch(n1,
		"link add ext0 type veth peer name eth0 netns "+ext,
		"addr add 172.30.0.1/24 dev ext0",
		"link set ext0 up",
	); err != nil {
		return err
	}
	if err := ipBatch(ext,
		"addr add "+extIP+"/24 dev eth0",
		"addr add "+extHiIP+"/24 dev eth0",
		"link set eth0 up",
		"route add default via 172.30.0.1",
	); err != nil {
		return err
	}
	w.ext = &pod{name: "ext", netns: ext, v4: netip.MustParseAddr(extIP)}
	return nil
}

// addPodNetwork creates a pod's namespace and routed veth on its node.
func (w *world) addPodNetwork(p *pod) error {
	if err := w.addNetns(p.netns); err != nil {
		return err
	}
	if err := sh("ip", "netns", "exec", p.netns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"); err != nil {
		return err
	}
	n := p.node
	gw := n.net.gateway4()
	if err := ipBatch(n.netns,
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", p.hostIf, p.netns),
		fmt.Sprintf("addr add %s/32 dev %s", gw, p.hostIf),
		fmt.Sprintf("addr add fe80::1/64 dev %s nodad", p.hostIf),
		fmt.Sprintf("link set %s up", p.hostIf),
		fmt.Sprintf("route add %s/32 dev %s scope link", p.v4, p.hostIf),
		fmt.Sprintf("route add %s/128 dev %s", p.v6, p.hostIf),
	); err != nil {
		return err
	}
	return ipBatch(p.netns,
		fmt.Sprintf("addr add %s/32 dev eth0", p.v4),
		fmt.Sprintf("addr add %s/128 dev eth0 nodad", p.v6),
		"link set eth0 up",
		fmt.Sprintf("route add %s dev eth0 scope link", gw),
		fmt.Sprintf("route add default via %s dev eth0", gw),
		"route add ::/0 via fe80::1 dev eth0",
	)
}

// removePodNetwork deletes a pod's namespace (and so its veth pair), as a
// CNI DEL does.
func (w *world) removePodNetwork(p *pod) error {
	return sh("ip", "netns", "del", p.netns)
}

// runInNetNS runs fn on an OS thread inside the network namespace at
// path. Sockets keep the namespace they were created in, so a listener or
// connection made here is usable from any goroutine afterwards.
func runInNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: Go retires a locked thread when its goroutine
		// exits, so no other goroutine inherits the namespace.
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", path, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
