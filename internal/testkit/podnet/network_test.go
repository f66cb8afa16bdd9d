package podnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// needRoot skips without root, or fails under
// PALISADE_REQUIRE_PRIVILEGED=1 (CI), where nothing may be skipped.
func needRoot(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("PALISADE_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("prerequisite missing (PALISADE_REQUIRE_PRIVILEGED=1): %v", err)
		}
		t.Skipf("skipped: %v", err)
	}
}

// serveEcho answers on port 7 of e with what it is sent.
func serveEcho(t *testing.T, e *Endpoint) {
	t.Helper()
	srv, err := e.Netns().ServeEcho(7)
	if err != nil {
		t.Fatal(err)
	}
	e.Track(srv)
}

// echo connects from one endpoint to an address and checks a line comes
// back.
func echo(from Netns, to netip.Addr) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, nil, "tcp", netip.AddrPortFrom(to, 7).String())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "hello %s\n", to); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("hello %s\n", to); got != want {
		return fmt.Errorf("echo %q, want %q", got, want)
	}
	return nil
}

// hostLinkExists reports whether this process's namespace has a link.
func hostLinkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

// TestPodsPassTCPAndTeardownLeavesNothing builds two nodes with a wire,
// three pods and an external host, passes TCP over IPv4 and IPv6 between
// them, deletes and re-creates a pod on the same addresses, and then
// proves Close destroyed every namespace: a veth from this process's
// namespace into each of them disappears only when the kernel frees the
// namespace it points into.
func TestPodsPassTCPAndTeardownLeavesNothing(t *testing.T) {
	needRoot(t)
	nw, err := New(NewPrefix("pt"))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			nw.Close()
		}
	})
	node1, err := nw.AddNode(NodeConfig{Name: "node1", Index: 1})
	if err != nil {
		t.Fatal(err)
	}
	node2, err := nw.AddNode(NodeConfig{Name: "node2", Index: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nw.AddNode(NodeConfig{Name: "node3", PodCIDR4: netip.MustParsePrefix("10.244.1.0/25"), PodCIDR6: netip.MustParsePrefix("fd00:3::/64")}); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("a node overlapping node1's range: %v, want an overlap error", err)
	}
	ext, err := nw.AddExternal(node1, ExternalConfig{Name: "ext", Extra: []netip.Addr{netip.MustParseAddr("172.30.0.200")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.Connect(node1, node2, WireConfig{}); err != nil {
		t.Fatal(err)
	}
	a, err := node1.AddPod(PodConfig{Namespace: "x", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := node1.AddPod(PodConfig{Namespace: "x", Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := node2.AddPod(PodConfig{Namespace: "y", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node1.AddPod(PodConfig{Namespace: "x", Name: "a"}); err == nil {
		t.Error("a second pod x/a on node1 was created")
	}
	for _, e := range []*Endpoint{&a.Endpoint, &b.Endpoint, &c.Endpoint, &ext.Endpoint} {
		serveEcho(t, e)
	}
	if got, want := fmt.Sprint(node1.HostIPs()), "[10.244.1.1 172.30.0.1 fd00:fe::1 192.168.100.1 fd00:ff::1]"; got != want {
		t.Errorf("node1 host IPs %s, want %s", got, want)
	}

	for _, tc := range []struct {
		what string
		from Netns
		to   netip.Addr
	}{
		{"pod to pod, same node, IPv4", a.Netns(), b.IPv4()},
		{"pod to pod, same node, IPv6", a.Netns(), b.IPv6()},
		{"pod to pod across the wire, IPv4", a.Netns(), c.IPv4()},
		{"pod to pod across the wire, IPv6", c.Netns(), a.IPv6()},
		{"pod to external, via the other node", c.Netns(), ext.IPv4()},
		{"pod to external's extra address", a.Netns(), netip.MustParseAddr("172.30.0.200")},
		{"external to pod, IPv6", ext.Netns(), c.IPv6()},
		{"node to its pod", node1.Netns(), a.IPv4()},
	} {
		if err := echo(tc.from, tc.to); err != nil {
			t.Errorf("%s (%s -> %s): %v", tc.what, tc.from, tc.to, err)
		}
	}

	// A CNI DEL, then the same addresses for another pod.
	if err := b.Delete(); err != nil {
		t.Fatal(err)
	}
	if b.Netns().Exists() {
		t.Errorf("deleted pod's namespace %s still exists", b.Netns())
	}
	if err := ip(node1.Netns(), "link show dev "+b.HostInterface()); err == nil {
		t.Errorf("deleted pod's veth %s is still on node1", b.HostInterface())
	}
	if err := echo(a.Netns(), b.IPv4()); err == nil {
		t.Error("a deleted pod's address still answers")
	}
	reuser, err := node1.AddPod(PodConfig{Namespace: "z", Name: "reuser", IPv4: b.IPv4(), IPv6: b.IPv6()})
	if err != nil {
		t.Fatalf("re-use a deleted pod's addresses: %v", err)
	}
	serveEcho(t, &reuser.Endpoint)
	if err := echo(c.Netns(), reuser.IPv6()); err != nil {
		t.Errorf("pod on a re-used address: %v", err)
	}

	// An observer veth per namespace, its near end here.
	names := nw.Netns()
	if len(names) != 6 {
		t.Fatalf("network has namespaces %v, want 6 (2 nodes, ext, 3 pods)", names)
	}
	var observers []string
	for i, ns := range names {
		obs := fmt.Sprintf("o%s%d", nw.Prefix(), i)
		if err := ip("", fmt.Sprintf("link add %s type veth peer name obs netns %s", obs, ns)); err != nil {
			t.Fatal(err)
		}
		observers = append(observers, obs)
		t.Cleanup(func() { exec.Command("ip", "link", "del", obs).Run() })
	}
	// An open connection must not keep a namespace alive past Close.
	held, err := a.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}

	closed = true
	if err := nw.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := held.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a pod's listener after Close: Accept returned %v, want it closed", err)
	}
	for _, ns := range names {
		if ns.Exists() {
			t.Errorf("namespace %s is still named after Close", ns)
		}
	}
	// The kernel frees a namespace asynchronously (its cleanup work runs
	// after the last reference goes): ~20 ms per namespace here.
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	for _, obs := range observers {
		for hostLinkExists(obs) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if hostLinkExists(obs) {
			t.Errorf("observer veth %s survived Close: its namespace was not freed", obs)
		}
	}
	if err := nw.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := nw.AddNode(NodeConfig{Name: "late", Index: 9}); err == nil {
		t.Error("a closed network created a node")
	}
}
