package datapath

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// reuseBridge is a bridge of its own (not bridgedPod's br0) holding an
// IPv4 and an IPv6 gateway, so both families go through it.
const reuseBridge = "brr"

// bridgePortPod gives a pod a veth on reuseBridge with a fixed MAC and
// both addresses; it sends nothing by itself (no router solicitations).
func (n *testNode) bridgePortPod(name, mac string, v4, v6 netip.Addr) *testPod {
	n.t.Helper()
	p := &testPod{name: name, netns: n.prefix + "-" + name, ip: v4, hostIf: "q" + name}
	n.addNetns(p.netns)
	for _, kv := range []string{"net.ipv6.conf.default.router_solicitations=0", "net.ipv6.conf.default.accept_dad=0"} {
		run(n.t, "ip", "netns", "exec", p.netns, "sysctl", "-qw", kv)
	}
	n.ip("link", "add", p.hostIf, "type", "veth", "peer", "name", "eth0", "netns", p.netns)
	n.ip("link", "set", p.hostIf, "master", reuseBridge)
	n.ip("link", "set", p.hostIf, "up")
	pip := func(args ...string) { run(n.t, "ip", append([]string{"-n", p.netns}, args...)...) }
	pip("link", "set", "eth0", "address", mac)
	pip("addr", "add", v4.String()+"/24", "dev", "eth0")
	pip("addr", "add", v6.String()+"/64", "dev", "eth0", "nodad")
	pip("link", "set", "eth0", "up")
	return p
}

// neighbourOf returns the node's neighbour entry for addr on reuseBridge
// as ip prints it ("" when there is none).
func (n *testNode) neighbourOf(addr netip.Addr) string {
	n.t.Helper()
	return strings.TrimSpace(n.ip("neigh", "show", addr.String(), "dev", reuseBridge))
}

// TestBridgedAddressReuseBySilentPod: pod A is deleted and pod B gets its
// addresses on the same bridge with a new MAC, while the node's neighbour
// entries still hold A's MAC. B never sends anything, yet its veth is
// found in both families; an address nobody took over again leads to no
// interface, never to some port.
func TestBridgedAddressReuseBySilentPod(t *testing.T) {
	requireKernel(t)
	n := newTestNode(t)
	// The kernel sends neighbour solicitations of its own (NTF_USE) only
	// from a link-local address past DAD: no DAD, as on node3 of the e2e
	// suite (a real node's bridge is long past it).
	for _, kv := range []string{"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"} {
		run(t, "ip", "netns", "exec", n.name, "sysctl", "-qw", kv)
	}
	n.ip("link", "add", reuseBridge, "type", "bridge", "forward_delay", "0", "mcast_snooping", "0")
	n.ip("link", "set", reuseBridge, "address", "02:00:00:00:99:01")
	n.ip("addr", "add", "10.246.0.1/24", "dev", reuseBridge)
	n.ip("addr", "add", "fd00:246::1/64", "dev", reuseBridge, "nodad")
	n.ip("link", "set", reuseBridge, "up")
	v4, v6 := netip.MustParseAddr("10.246.0.2"), netip.MustParseAddr("fd00:246::2")
	const macA, macB = "02:00:00:00:aa:01", "02:00:00:00:bb:02"
	// A bystander keeps the bridge's carrier up as A's port goes: a
	// bridge losing its carrier flushes its neighbour entries.
	n.bridgePortPod("by", "02:00:00:00:cc:03", netip.MustParseAddr("10.246.0.9"), netip.MustParseAddr("fd00:246::9"))
	a := n.bridgePortPod("a", macA, v4, v6)

	// The node talks to A: its neighbour entries learn A's MAC.
	err := runInNetNS(n.path(), func() error {
		for _, addr := range []netip.Addr{v4, v6} {
			c, err := net.Dial("udp", netip.AddrPortFrom(addr, 9).String())
			if err != nil {
				return err
			}
			c.Write([]byte("hello"))
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, addr := range []netip.Addr{v4, v6} {
		for !strings.Contains(n.neighbourOf(addr), macA) {
			if time.Now().After(deadline) {
				t.Fatalf("the node did not learn A's MAC for %s: %q", addr, n.neighbourOf(addr))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	n.ip("link", "del", a.hostIf)
	b := n.bridgePortPod("b", macB, v4, v6)
	for _, addr := range []netip.Addr{v4, v6} {
		if e := n.neighbourOf(addr); !strings.Contains(e, macA) {
			t.Fatalf("neighbour entry of %s after the reuse: %q, want A's MAC %s still", addr, e, macA)
		}
	}
	f, err := NewInterfaceFinder(n.path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := n.ifindex(b)
	for _, addr := range []netip.Addr{v4, v6} {
		got, err := f.HostInterface(addr)
		if err != nil {
			t.Errorf("host interface of %s (reused by silent pod B): %v", addr, err)
			continue
		}
		if got != want {
			t.Errorf("host interface of %s: %d, want B's %d (%s)", addr, got, want, b.hostIf)
		}
		if e := n.neighbourOf(addr); !strings.Contains(e, macB) {
			t.Errorf("neighbour entry of %s after the lookup: %q, want B's MAC %s", addr, e, macB)
		}
	}

	// B goes too, nobody takes its addresses: no interface, in bounded
	// time, though the neighbour entries still hold B's MAC.
	n.ip("link", "del", b.hostIf)
	f.NeighbourWait = 300 * time.Millisecond
	for _, addr := range []netip.Addr{v4, v6} {
		start := time.Now()
		got, err := f.HostInterface(addr)
		if !errors.Is(err, ErrNoInterface) {
			t.Errorf("host interface of %s with no pod: %d, %v; want ErrNoInterface", addr, got, err)
		}
		if took := time.Since(start); took > 3*f.NeighbourWait {
			t.Errorf("host interface of %s with no pod took %v, NeighbourWait is %v", addr, took, f.NeighbourWait)
		}
	}
}
