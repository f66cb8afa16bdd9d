package datapath

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
	"github.com/vishvananda/netlink"
)

func TestIsPodInterface(t *testing.T) {
	veth := func(name string, nsid int) netlink.Link {
		return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, NetNsID: nsid}}
	}
	patterns := []string{"veth*", "cali*"}
	for _, tc := range []struct {
		link    netlink.Link
		uplinks []string
		want    bool
	}{
		{veth("veth12ab", 3), nil, true},
		{veth("cali0", 0), nil, true},
		{veth("veth12ab", -1), nil, false}, // peer in this namespace: not a pod's
		{veth("eth0", 3), nil, false},      // no pattern matches
		{veth("veth-up", 3), []string{"veth-up"}, false},
		{&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "veth0", NetNsID: 3}}, nil, false},
	} {
		a := tc.link.Attrs()
		if got := isPodInterface(tc.link, patterns, tc.uplinks); got != tc.want {
			t.Errorf("isPodInterface(%s %s, netnsid %d, uplinks %v) = %v, want %v", tc.link.Type(), a.Name, a.NetNsID, tc.uplinks, got, tc.want)
		}
	}
}

func TestValidPodInterfacePatterns(t *testing.T) {
	if err := ValidPodInterfacePatterns(DefaultPodInterfaces); err != nil {
		t.Errorf("default patterns: %v", err)
	}
	for _, bad := range [][]string{{""}, {"veth["}} {
		if err := ValidPodInterfacePatterns(bad); err == nil {
			t.Errorf("patterns %q accepted", bad)
		}
	}
}

// A pod interface that appears while the datapath runs is enforced at
// once, before any State names its pod: nothing in, nothing out (real
// TCP both ways, counted at the server). A Sync naming its pod releases
// it; a Sync that no longer names it (the Pod object gone, the interface
// still there) puts it back; deleting the interface removes its entry and
// links.
func TestQuarantineHoldsANewPodInterfaceUntilItsPodIsKnown(t *testing.T) {
	node := quarantineNode(t)
	server, err := node.AddPod(podnet.PodConfig{Namespace: "open", Name: "server", HostInterface: "qserver"})
	if err != nil {
		t.Fatal(err)
	}
	accepted := countAccepts(t, server, 8080)

	d, err := Open(Options{NodeName: "node1", PinDir: testPinDir(t), NetNS: node.Netns().Path(), PodInterfaces: []string{"q*"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	serverOnly := namespace("open") + pod("open", "server", "server", server.IPv4().String())
	if _, err := d.Sync(ctx, compile(t, serverOnly), d.Endpoint); err != nil {
		t.Fatal(err)
	}
	events := make(chan InterfaceEvent, 16)
	watching := make(chan error, 1)
	go func() { watching <- d.WatchPodInterfaces(ctx, func(ev InterfaceEvent) { events <- ev }) }()
	t.Cleanup(func() {
		cancel()
		<-watching
	})

	client, err := node.AddPod(podnet.PodConfig{Namespace: "open", Name: "client", HostInterface: "qclient"})
	if err != nil {
		t.Fatal(err)
	}
	idx := uint32(ifindexIn(t, node.Netns(), "qclient"))
	waitInterfaceEvent(t, events, func(ev InterfaceEvent) bool { return ev.Ifindex == idx && ev.Quarantined })
	var ep bpf.PalisadeEndpointValue
	if err := d.objs.Endpoints.Lookup(idx, &ep); err != nil {
		t.Fatalf("quarantined interface has no endpoint entry: %v", err)
	}
	if ep.Identity != QuarantineIdentity || ep.Flags != isolationFlags {
		t.Fatalf("quarantined endpoint = %+v, want identity %d isolated both ways", ep, QuarantineIdentity)
	}
	clientAccepts := countAccepts(t, client, 9090)
	// Its own addresses, as the CNI configured them inside the pod, are
	// known while it waits (neighbour resolution, sources), and no other
	// pod's.
	for _, a := range []netip.Addr{client.IPv4(), client.IPv6()} {
		waitAddrOf(t, d, a, idx)
	}
	serverKey, _ := NewAddrKey(server.IPv4())
	var serverIP bpf.PalisadeEndpointIpValue
	if err := d.objs.EndpointIps.Lookup(serverKey, &serverIP); err != nil || serverIP.Ifindex == idx {
		t.Fatalf("server's address in endpoint_ips: %+v (%v), want its own interface", serverIP, err)
	}

	// Its namespace isolates nothing, yet nothing passes while its pod
	// is unknown.
	for i := 0; i < 5; i++ {
		if dialOnce(client, server.IPv4(), 8080) == nil {
			t.Fatalf("quarantined pod reached the server (attempt %d)", i)
		}
		if dialOnce(server, client.IPv4(), 9090) == nil {
			t.Fatalf("server reached the quarantined pod (attempt %d)", i)
		}
	}
	if n := accepted.Load() + clientAccepts.Load(); n != 0 {
		t.Fatalf("%d connections accepted across a quarantined interface", n)
	}
	if n := d.QuarantinedInterfaces(); n != 1 {
		t.Fatalf("QuarantinedInterfaces = %d, want 1", n)
	}

	both := serverOnly + pod("open", "client", "client", client.IPv4().String())
	stats, err := d.Sync(ctx, compile(t, both), d.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.Released) != 1 {
		t.Fatalf("Released = %v, want one release", stats.Released)
	}
	// Its neighbours were resolved in quarantine: the first connection
	// after the release passes.
	if err := dialOnce(client, server.IPv4(), 8080); err != nil {
		t.Fatalf("released pod in an unisolated namespace cannot connect: %v", err)
	}
	if d.QuarantinedInterfaces() != 0 {
		t.Fatal("released interface still counted as quarantined")
	}

	// The Pod object goes, the interface stays: back in quarantine, not
	// open.
	if _, err := d.Sync(ctx, compile(t, serverOnly), d.Endpoint); err != nil {
		t.Fatal(err)
	}
	if err := d.objs.Endpoints.Lookup(idx, &ep); err != nil || ep.Identity != QuarantineIdentity {
		t.Fatalf("interface of a pod no longer known: entry %+v (%v), want quarantine", ep, err)
	}
	if dialOnce(client, server.IPv4(), 8080) == nil {
		t.Fatal("interface of a pod no longer known still passes traffic")
	}

	if err := client.Delete(); err != nil {
		t.Fatal(err)
	}
	waitInterfaceEvent(t, events, func(ev InterfaceEvent) bool { return ev.Ifindex == idx && !ev.Quarantined })
	if err := d.objs.Endpoints.Lookup(idx, &ep); err == nil {
		t.Fatalf("deleted quarantined interface keeps its endpoint entry %+v", ep)
	}
	if d.QuarantinedInterfaces() != 0 {
		t.Fatal("deleted interface still counted as quarantined")
	}
	if _, err := d.Sync(ctx, compile(t, serverOnly), d.Endpoint); err != nil {
		t.Fatalf("sync after the quarantined interface went: %v", err)
	}
}

// countAccepts serves TCP port in e and counts the connections accepted.
func countAccepts(t *testing.T, e *podnet.Pod, port int) *atomic.Int64 {
	t.Helper()
	ln, err := e.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return &n
}

func dialOnce(from *podnet.Pod, to netip.Addr, port int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c, err := from.Dial(ctx, nil, "tcp", netip.AddrPortFrom(to, uint16(port)).String())
	if err != nil {
		return err
	}
	return c.Close()
}

func ifindexIn(t *testing.T, ns podnet.Netns, name string) int {
	t.Helper()
	var idx int
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		idx = ifi.Index
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func waitInterfaceEvent(t *testing.T, events <-chan InterfaceEvent, want func(InterfaceEvent) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Err != nil {
				t.Fatalf("interface watch: %s (%d): %v", ev.Name, ev.Ifindex, ev.Err)
			}
			if want(ev) {
				return
			}
		case <-deadline:
			t.Fatal("no interface event within 5s")
		}
	}
}

// A restarted datapath keeps a previous run's quarantine: its first Sync,
// which runs before the interface watch, leaves the interface closed.
func TestQuarantineSurvivesARestart(t *testing.T) {
	node := quarantineNode(t)
	if _, err := node.AddPod(podnet.PodConfig{Namespace: "open", Name: "early", HostInterface: "qearly"}); err != nil {
		t.Fatal(err)
	}
	idx := uint32(ifindexIn(t, node.Netns(), "qearly"))
	opts := Options{NodeName: "node1", PinDir: testPinDir(t), NetNS: node.Netns().Path(), PodInterfaces: []string{"q*"}}
	d, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := d.Quarantine(idx, "qearly"); !ok || err != nil {
		t.Fatalf("Quarantine = %v, %v", ok, err)
	}
	d.Close()

	d, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Sync(context.Background(), compile(t, namespace("open")), d.Endpoint); err != nil {
		t.Fatal(err)
	}
	var ep bpf.PalisadeEndpointValue
	if err := d.objs.Endpoints.Lookup(idx, &ep); err != nil || ep.Identity != QuarantineIdentity {
		t.Fatalf("after a restart and a Sync without its pod: entry %+v (%v), want quarantine", ep, err)
	}
	if !d.linkAlive(idx) {
		t.Fatal("after a restart the quarantined interface lost its programs")
	}
	if d.QuarantinedInterfaces() != 1 {
		t.Fatalf("QuarantinedInterfaces = %d, want 1", d.QuarantinedInterfaces())
	}
}

// waitAddrOf waits until endpoint_ips maps a to interface idx.
func waitAddrOf(t *testing.T, d *Datapath, a netip.Addr, idx uint32) {
	t.Helper()
	k, ok := NewAddrKey(a)
	if !ok {
		t.Fatalf("address %s", a)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		var v bpf.PalisadeEndpointIpValue
		err := d.objs.EndpointIps.Lookup(k, &v)
		if err == nil && v.Ifindex == idx {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint_ips[%s] = %+v (%v), want interface %d", a, v, err, idx)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quarantineNode is one node of a network of its own, for the
// quarantine tests; it needs the kernel.
func quarantineNode(t *testing.T) *podnet.Node {
	t.Helper()
	requireKernel(t)
	nw, err := podnet.New(podnet.NewPrefix("pq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	node, err := nw.AddNode(podnet.NodeConfig{Name: "node1", Index: 1})
	if err != nil {
		t.Fatal(err)
	}
	return node
}
