package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// node3 is bridged the way flannel and the bridge plugin do it, next to
// the routed node1 and node2:
//
//	pod netns ──veth──┐
//	                  cni0 (10.244.3.1/24, fd00:3::1/64) in node3 netns ──veth "wire" ── "wire3" in node1 netns
//	pod netns ──veth──┘
//
// Every pod's host veth is a port of the bridge cni0, which holds the
// subnet's gateway; pods have 10.244.3.N/24 and fd00:3::N/64 with default
// routes via the bridge. Traffic between two pods of node3 never leaves
// the bridge: it crosses only the two pods' veths. node3 reaches node1
// over its own veth (192.168.103.0/24, fd00:fe::/64) and node2 and the
// external host through node1; node1 and node2 route 10.244.3.0/24 and
// fd00:3::/64 towards it.
//
// node3 exists only while a bridged test runs (buildBridgedNode), so the
// routed world every other test sees stays as it was.
var node3Net = nodeNet{name: "node3", index: 3, wire4: "192.168.103.3", wire6: "fd00:fe::3", hostIP: []string{"10.244.3.1", "192.168.103.3"}}

const (
	bridgeName   = "cni0"
	bridgeGW6    = "fd00:3::1"
	node1Wire3v4 = "192.168.103.1"
	node1Wire3v6 = "fd00:fe::1"
	node1Wire3If = "wire3"
)

// buildBridgedNode creates node3, its bridge, its link to node1, the
// routes both ways and its enforcer, and registers their complete
// removal with t (and with the world, should t's cleanups not run).
func (w *world) buildBridgedNode(t testing.TB) *node {
	t.Helper()
	if _, ok := w.nodes[node3Net.name]; ok {
		t.Fatalf("node %s already exists", node3Net.name)
	}
	n := &node{net: node3Net, netns: w.prefix + "-" + node3Net.name}
	t.Cleanup(func() {
		if err := w.removeBridgedNode(n); err != nil {
			t.Errorf("tear down %s: %v", n.net.name, err)
		}
	})
	if err := w.bridgedNodeNetwork(n); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.nodes[n.net.name] = n
	w.mu.Unlock()
	n.enforcer = w.newEnforcer(n)
	if err := n.enforcer.start(); err != nil {
		t.Fatal(err)
	}
	if err := n.enforcer.waitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return n
}

func (w *world) bridgedNodeNetwork(n *node) error {
	if err := w.addNetns(n.netns); err != nil {
		return err
	}
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.forwarding=1",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"} {
		if err := sh("ip", "netns", "exec", n.netns, "sysctl", "-qw", kv); err != nil {
			return err
		}
	}
	n1, n2 := w.nodes["node1"].netns, w.nodes["node2"].netns
	// A fixed bridge MAC: otherwise it follows the lowest port's, and
	// pods' neighbour entries for the gateway go stale as ports come and
	// go.
	if err := ipBatch(n.netns,
		"link add "+bridgeName+" type bridge forward_delay 0 mcast_snooping 0",
		"link set "+bridgeName+" address 02:00:00:00:03:01",
		"addr add "+n.net.gateway4()+"/24 dev "+bridgeName,
		"addr add "+bridgeGW6+"/64 dev "+bridgeName+" nodad",
		"link set "+bridgeName+" up",
	); err != nil {
		return err
	}
	if err := ipBatch(n1,
		"link add "+node1Wire3If+" type veth peer name wire netns "+n.netns,
		"addr add "+node1Wire3v4+"/24 dev "+node1Wire3If,
		"addr add "+node1Wire3v6+"/64 dev "+node1Wire3If+" nodad",
		"link set "+node1Wire3If+" up",
		"route add 10.244.3.0/24 via "+n.net.wire4,
		"route add fd00:3::/64 via "+n.net.wire6,
	); err != nil {
		return err
	}
	if err := ipBatch(n.netns,
		"addr add "+n.net.wire4+"/24 dev wire",
		"addr add "+n.net.wire6+"/64 dev wire nodad",
		"link set wire up",
		"route add default via "+node1Wire3v4,
		"route add ::/0 via "+node1Wire3v6,
	); err != nil {
		return err
	}
	return ipBatch(n2,
		"route add 10.244.3.0/24 via "+node1Net.wire4,
		"route add fd00:3::/64 via "+node1Net.wire6,
	)
}

// removeBridgedNode undoes buildBridgedNode whatever state it reached:
// the enforcer, node3's pods (objects and namespaces), the routes and
// veth towards node1 and node2, the bridge, node3's namespace and its
// pins; then checks nothing of it is left.
func (w *world) removeBridgedNode(n *node) error {
	ctx := context.Background()
	if n.enforcer != nil {
		n.enforcer.stop()
	}
	var errs []error
	w.mu.Lock()
	var pods []*pod
	for _, p := range w.pods {
		if p.node == n {
			pods = append(pods, p)
		}
	}
	w.mu.Unlock()
	for _, p := range pods {
		w.mu.Lock()
		delete(w.pods, p.ref())
		w.mu.Unlock()
		for _, c := range p.closers {
			c.Close()
		}
		exec.Command("ip", "netns", "del", p.netns).Run()
	}
	// Every object naming the node, including those of pods whose network
	// a test already removed.
	var list corev1.PodList
	if err := w.client.List(ctx, &list); err != nil {
		errs = append(errs, fmt.Errorf("list pods: %w", err))
	}
	for i := range list.Items {
		if list.Items[i].Spec.NodeName == n.net.name {
			if err := w.client.Delete(ctx, &list.Items[i], client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", list.Items[i].Namespace, list.Items[i].Name, err))
			}
		}
	}
	// Deleting node1's end removes the veth pair and node1's routes
	// through it; node2's routes go by hand.
	exec.Command("ip", "-n", w.nodes["node1"].netns, "link", "del", node1Wire3If).Run()
	exec.Command("ip", "-n", w.nodes["node2"].netns, "route", "del", "10.244.3.0/24").Run()
	exec.Command("ip", "-n", w.nodes["node2"].netns, "-6", "route", "del", "fd00:3::/64").Run()
	exec.Command("ip", "-n", n.netns, "link", "del", bridgeName).Run()
	exec.Command("ip", "netns", "del", n.netns).Run()
	if err := os.RemoveAll(filepath.Join(w.pinRoot, n.net.name)); err != nil {
		errs = append(errs, fmt.Errorf("remove %s's pins: %w", n.net.name, err))
	}
	w.mu.Lock()
	delete(w.nodes, n.net.name)
	w.mu.Unlock()
	if err := w.bridgedNodeGone(n); err != nil {
		errs = append(errs, err)
	}
	// node1's and node2's enforcers forget node3's pods before the next
	// test.
	if err := w.settled(ctx, 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// bridgedNodeGone checks that no trace of node3 is left: namespaces,
// node1's veth, node1's and node2's routes, a running enforcer.
func (w *world) bridgedNodeGone(n *node) error {
	var left []string
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip netns list: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name == n.netns || strings.HasPrefix(name, w.prefix+"-") && strings.HasSuffix(name, "-b3") {
			left = append(left, "namespace "+name)
		}
	}
	for _, c := range []struct{ netns, what string }{
		{w.nodes["node1"].netns, "link show " + node1Wire3If},
		{w.nodes["node1"].netns, "route show 10.244.3.0/24"},
		{w.nodes["node1"].netns, "-6 route show fd00:3::/64"},
		{w.nodes["node2"].netns, "route show 10.244.3.0/24"},
		{w.nodes["node2"].netns, "-6 route show fd00:3::/64"},
	} {
		out, _ := exec.Command("ip", append([]string{"-n", c.netns}, strings.Fields(c.what)...)...).CombinedOutput()
		if s := strings.TrimSpace(string(out)); s != "" && !strings.Contains(s, "does not exist") {
			left = append(left, fmt.Sprintf("%s: ip %s: %s", c.netns, c.what, s))
		}
	}
	if n.enforcer != nil && n.enforcer.running() {
		left = append(left, "the enforcer of "+n.net.name)
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(left, "; "))
	}
	return nil
}

// addBridgedPod gives a pod the next free addresses of a bridged node,
// its network and its API object.
func (w *world) addBridgedPod(ctx context.Context, ns, name string, n *node, app string) (*pod, error) {
	v4, v6 := w.nextAddrs(n)
	p, err := w.bridgedPodNetwork(ns, name, n, v4, v6)
	if err != nil {
		return nil, err
	}
	return p, w.podObject(ctx, p, app)
}

// bridgedPodNetwork is what the bridge plugin does for a pod: a veth
// whose host end is a port of the bridge, the pod's addresses in the
// bridge's subnets, default routes via the bridge's gateway addresses;
// then the pod's servers.
func (w *world) bridgedPodNetwork(ns, name string, n *node, v4, v6 netip.Addr) (*pod, error) {
	p := &pod{ns: ns, name: name, node: n, netns: fmt.Sprintf("%s-%s-%s-b3", w.prefix, ns, name), hostIf: "b" + ns + name, v4: v4, v6: v6}
	if len(p.hostIf) > 15 {
		return nil, fmt.Errorf("pod %s: interface name %q too long", p.ref(), p.hostIf)
	}
	if err := w.addNetns(p.netns); err != nil {
		return nil, err
	}
	if err := sh("ip", "netns", "exec", p.netns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"); err != nil {
		return nil, err
	}
	if err := ipBatch(n.netns,
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", p.hostIf, p.netns),
		fmt.Sprintf("link set %s master %s", p.hostIf, bridgeName),
		fmt.Sprintf("link set %s up", p.hostIf),
	); err != nil {
		return nil, err
	}
	if err := ipBatch(p.netns,
		fmt.Sprintf("addr add %s/24 dev eth0", p.v4),
		fmt.Sprintf("addr add %s/64 dev eth0 nodad", p.v6),
		"link set eth0 up",
		fmt.Sprintf("route add default via %s dev eth0", n.net.gateway4()),
		fmt.Sprintf("route add ::/0 via %s dev eth0", bridgeGW6),
	); err != nil {
		return nil, err
	}
	if err := w.serve(p); err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.pods[p.ref()] = p
	w.mu.Unlock()
	return p, nil
}

// settledWith waits, like settled, until node1's and node2's enforcers
// and also n's have enforced what the API server holds.
func (w *world) settledWith(ctx context.Context, n *node, within time.Duration) error {
	if err := w.settled(ctx, within); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := w.client.List(ctx, &pods); err != nil {
		return err
	}
	policies, err := w.policyCount(ctx)
	if err != nil {
		return err
	}
	return n.enforcer.waitMetrics(within, map[string]float64{
		`palisade_enforcer_objects{kind="pods"}`:            float64(len(pods.Items)),
		`palisade_enforcer_objects{kind="networkpolicies"}`: float64(policies),
	})
}

// sh runs one command and returns an error with its output on failure.
func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipBatch runs `ip -batch` in a namespace: one process for many commands.
// podnet has no bridge, so node3 is built with these.
func ipBatch(netnsName string, cmds ...string) error {
	c := exec.Command("ip", "-n", netnsName, "-batch", "-")
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
