package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/enforcer/policy"
	"github.com/palisade-dev/palisade/internal/testkit/frames"
)

// Forged sources and neighbour discovery, attacked for real: an attacker
// pod whose egress is open writes whole Ethernet frames onto its own
// interface (internal/testkit/frames: an AF_PACKET socket in its namespace), the
// way a pod with CAP_NET_RAW can, and the victim's namespace counts what
// reaches it.

const (
	client6IP   = "fd00:244::2"
	server6IP   = "fd00:244::3"
	attackerIP  = "10.244.0.5"
	attacker6IP = "fd00:244::5"
	unusedPodIP = "10.244.0.99"
	forgedPort  = 8080 // the port the server allows its client on
)

// serverOnlyFromClient isolates the server pods (both families) to
// ingress from the client pods; namespace "open" has no policy at all, so
// its attacker's egress is open.
const serverOnlyFromClient = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: server-from-client}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: 8080}, {protocol: UDP, port: 8080}]
---
`

type spoofWorld struct {
	node                        *testNode
	client, server, attacker    *testPod
	client6, server6, attacker6 *testPod
	d                           *Datapath
	events                      <-chan Event
}

func newSpoofWorld(t *testing.T) *spoofWorld {
	requireKernel(t)
	n := newTestNode(t)
	w := &spoofWorld{node: n}
	w.client = n.routedPod("client", clientIP)
	w.server = n.routedPod("server", serverIP)
	w.attacker = n.routedPod("attacker", attackerIP)
	w.client6 = n.routedPod("client6", client6IP)
	w.server6 = n.routedPod("server6", server6IP)
	w.attacker6 = n.routedPod("attacker6", attacker6IP)
	w.server.serve(t, port)
	w.server6.serve(t, port)
	return w
}

func (w *spoofWorld) enforce(t *testing.T) {
	t.Helper()
	rw := &routedWorld{node: w.node, pinDir: testPinDir(t), logs: &logBuffer{}}
	w.d = rw.open(t)
	manifests := namespace("x") + namespace("open") +
		pod("x", "client", "client", clientIP) + pod("x", "server", "server", serverIP) +
		pod("x", "client6", "client", client6IP) + pod("x", "server6", "server", server6IP) +
		pod("open", "attacker", "attacker", attackerIP) + pod("open", "attacker6", "attacker", attacker6IP) +
		serverOnlyFromClient
	syncState(t, w.d, compile(t, manifests))
	w.events = w.d.Events(t.Context())
}

func (w *spoofWorld) counter(t *testing.T, name string) uint64 {
	t.Helper()
	c, err := w.d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	v, ok := c[name]
	if !ok {
		t.Fatalf("no counter %q in %v", name, c)
	}
	return v
}

// macs returns the pod's own MAC and that of its host-side interface.
func (w *spoofWorld) macs(t *testing.T, p *testPod) (pod, host net.HardwareAddr) {
	t.Helper()
	pod, err := frames.HardwareAddr(p.path(), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if host, err = frames.HardwareAddr(w.node.path(), p.hostIf); err != nil {
		t.Fatal(err)
	}
	return pod, host
}

// sendFrames writes whole Ethernet frames onto the pod's eth0.
func sendFrames(t *testing.T, p *testPod, fs ...[]byte) {
	t.Helper()
	if err := frames.Send(p.path(), "eth0", fs...); err != nil {
		t.Fatalf("send from %s: %v", p.name, err)
	}
}

// captureOn records what arrives on the pod's eth0, inside its namespace.
func captureOn(t *testing.T, p *testPod) *frames.Capture {
	t.Helper()
	c, err := frames.Listen(p.path(), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// settle gives forged frames time to be forwarded (or not).
func settle() { time.Sleep(300 * time.Millisecond) }

func TestForgedSourcesNeverReachTheTarget(t *testing.T) {
	w := newSpoofWorld(t)
	c, s, x := w.client, w.server, w.attacker
	c6, s6, x6 := w.client6, w.server6, w.attacker6
	xMAC, xHost := w.macs(t, x)
	x6MAC, x6Host := w.macs(t, x6)
	forged := []struct {
		what  string
		from  *testPod
		frame []byte
		src   netip.Addr
	}{
		{"TCP SYN as the client", x, frames.TCPSYN(xHost, xMAC, c.ip, s.ip, 40001, forgedPort), c.ip},
		{"UDP as the client", x, frames.UDP(xHost, xMAC, c.ip, s.ip, 40002, forgedPort, []byte("forged")), c.ip},
		{"TCP SYN from an unused address", x, frames.TCPSYN(xHost, xMAC, netip.MustParseAddr(unusedPodIP), s.ip, 40003, forgedPort), netip.MustParseAddr(unusedPodIP)},
		{"IPv6 TCP SYN as the client", x6, frames.TCPSYN(x6Host, x6MAC, c6.ip, s6.ip, 40004, forgedPort), c6.ip},
		{"IPv6 UDP as the client", x6, frames.UDP(x6Host, x6MAC, c6.ip, s6.ip, 40005, forgedPort, []byte("forged")), c6.ip},
	}

	// arrived sends every forged frame and says how many of each the
	// server it was aimed at took in, seen by caps.
	captures := func() map[*testPod]*frames.Capture {
		return map[*testPod]*frames.Capture{s: captureOn(t, s), s6: captureOn(t, s6)}
	}
	arrived := func(caps map[*testPod]*frames.Capture) []int {
		for _, f := range forged {
			sendFrames(t, f.from, f.frame)
		}
		settle()
		counts := make([]int, len(forged))
		for i, f := range forged {
			target := s
			if f.from == x6 {
				target = s6
			}
			counts[i] = caps[target].Count(f.src, forgedPort)
		}
		return counts
	}
	// Without Palisade the attack works: every forged packet reaches the
	// server's namespace. This is what makes the zero below mean something.
	for i, n := range arrived(captures()) {
		if f := forged[i]; n == 0 {
			t.Fatalf("control: %s did not reach the server before enforcement; the test cannot tell a drop from a broken path", f.what)
		}
	}

	w.enforce(t)
	expectPass(t, "client → server TCP 8080", c.tcp(s, port))
	expectPass(t, "client → server UDP 8080", c.udp(s, port))
	expectPass(t, "IPv6 client → server TCP 8080", c6.tcp(s6, port))
	expectDrop(t, "attacker → server TCP 8080 from its own address", x.tcp(s, port))

	after := captures()
	dropped := w.counter(t, "drop_spoofed")
	for i, n := range arrived(after) {
		if f := forged[i]; n != 0 {
			t.Errorf("%s: %d packets reached the server's namespace, want none", f.what, n)
		}
	}
	if n := w.counter(t, "drop_spoofed") - dropped; n < uint64(len(forged)) {
		t.Errorf("drop_spoofed counted %d drops, want at least %d", n, len(forged))
	}
	attacker := policy.PodRef{Namespace: "open", Name: "attacker"}
	ev := waitEvent(t, w.events, func(e Event) bool {
		return e.Reason == ReasonSpoofedSource && e.Src.Addr() == c.ip && e.Protocol == policy.ProtocolTCP
	})
	if ev.Pod != attacker || ev.Verdict != VerdictDrop || ev.Direction != policy.Egress || ev.Dst.Addr() != s.ip {
		t.Errorf("event %+v: want a drop of open/attacker's egress to the server", ev)
	}
	waitEvent(t, w.events, func(e Event) bool {
		return e.Reason == ReasonSpoofedSource && e.Src.Addr() == c6.ip && e.Pod == (policy.PodRef{Namespace: "open", Name: "attacker6"})
	})

	// The legitimate pod still connects, and its own packets arrive.
	expectPass(t, "client → server TCP 8080 after the attack", c.tcp(s, port))
	expectPass(t, "IPv6 client → server UDP 8080 after the attack", c6.udp(s6, port))
	// The capture reads in the background: give it a moment to see them.
	seen := false
	for deadline := time.Now().Add(2 * time.Second); !seen && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		seen = after[s].Count(c.ip, port) > 0
	}
	if !seen {
		t.Error("the client's own packets were not seen in the server's namespace: the capture is blind")
	}
}

// icmp6In reads one of the node's ICMPv6 input counters of the pod's
// host-side interface (/proc/net/dev_snmp6 of the node's namespace), e.g.
// "Icmp6InType135".
func icmp6In(t *testing.T, n *testNode, p *testPod, name string) uint64 {
	t.Helper()
	var v uint64
	err := runInNetNS(n.path(), func() error {
		b, err := os.ReadFile("/proc/thread-self/net/dev_snmp6/" + p.hostIf) // this thread's namespace, not the process's
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == name {
				_, err := fmt.Sscan(f[1], &v)
				return err
			}
		}
		return nil // a type never seen has no line yet
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNeighbourDiscoveryFromPodsCarriesNoData(t *testing.T) {
	w := newSpoofWorld(t)
	x, x6, s6 := w.attacker, w.attacker6, w.server6
	xMAC, _ := w.macs(t, x)
	x6MAC, x6Host := w.macs(t, x6)
	lladdr := netip.MustParseAddr("fe80::5")
	nodeLL := netip.MustParseAddr("fe80::1")
	gw := netip.MustParseAddr("10.244.0.1")
	clientAddr := netip.MustParseAddr(clientIP)
	payload := []byte("exfiltrated: the quarterly numbers")

	nsWithData := frames.ND(x6Host, x6MAC, lladdr, nodeLL, 255, 135, nodeLL.AsSlice(), frames.LinkLayerOption(1, x6MAC), payload)
	nsWithDataToServer := frames.ND(x6Host, x6MAC, w.attacker6.ip, s6.ip, 255, 135, s6.ip.AsSlice(), frames.LinkLayerOption(1, x6MAC), payload)
	ra := frames.ND(frames.MulticastMAC(netip.MustParseAddr("ff02::1")), x6MAC, lladdr, netip.MustParseAddr("ff02::1"), 255, 134, nil,
		[]byte{64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}, frames.PrefixInformation(netip.MustParsePrefix("fd00:bad::/64")))
	arpAsClient := frames.ARP(frames.Broadcast, xMAC, 1, clientAddr, gw)

	// Controls without Palisade: the node takes each of these in.
	ns0, ra0 := icmp6In(t, w.node, x6, "Icmp6InType135"), icmp6In(t, w.node, x6, "Icmp6InType134")
	sendFrames(t, x6, nsWithData, ra)
	sendFrames(t, x, arpAsClient)
	settle()
	if icmp6In(t, w.node, x6, "Icmp6InType135") == ns0 || icmp6In(t, w.node, x6, "Icmp6InType134") == ra0 {
		t.Fatal("control: the node did not receive the attacker's NS and RA before enforcement")
	}
	if !strings.Contains(w.node.ip("neigh", "show", "dev", x.hostIf), clientIP) {
		t.Fatal("control: an ARP request as the client did not give the node a neighbour entry for the client on the attacker's interface")
	}
	w.node.ip("neigh", "flush", "dev", x.hostIf)

	w.enforce(t)
	capture := captureOn(t, s6)
	neighDrops, spoofDrops := w.counter(t, "drop_neighbour"), w.counter(t, "drop_spoofed")
	ns0, ra0 = icmp6In(t, w.node, x6, "Icmp6InType135"), icmp6In(t, w.node, x6, "Icmp6InType134")
	sendFrames(t, x6, nsWithData, nsWithDataToServer, ra)
	sendFrames(t, x, arpAsClient)
	settle()

	if got := icmp6In(t, w.node, x6, "Icmp6InType135") - ns0; got != 0 {
		t.Errorf("the node received %d neighbour solicitations carrying data, want none", got)
	}
	if got := icmp6In(t, w.node, x6, "Icmp6InType134") - ra0; got != 0 {
		t.Errorf("the node received %d router advertisements from a pod, want none", got)
	}
	if n := capture.Count(w.attacker6.ip, 0); n != 0 {
		t.Errorf("%d solicitations carrying data reached the server's namespace, want none", n)
	}
	if out := w.node.ip("neigh", "show", "dev", x.hostIf); strings.Contains(out, clientIP) {
		t.Errorf("the node learnt the client's address on the attacker's interface: %s", out)
	}
	if w.counter(t, "drop_neighbour") == neighDrops || w.counter(t, "drop_spoofed")-spoofDrops < 2 {
		t.Errorf("counters: drop_neighbour %d → %d, drop_spoofed %d → %d; want the RA and the spoofed NS and ARP counted",
			neighDrops, w.counter(t, "drop_neighbour"), spoofDrops, w.counter(t, "drop_spoofed"))
	}
	waitEvent(t, w.events, func(e Event) bool { return e.Reason == ReasonRouterMessage && e.Pod.Name == "attacker6" })
	waitEvent(t, w.events, func(e Event) bool {
		return e.Reason == ReasonSpoofedSource && e.Pod.Name == "attacker" && e.Src.Addr() == clientAddr
	})

	// What address resolution needs still works: the attacker reaches
	// the node and a pod open to it from its own addresses (ARP and NS
	// resolve the gateway first).
	w.node.ip("neigh", "flush", "dev", x.hostIf)
	w.node.ip("-6", "neigh", "flush", "dev", x6.hostIf)
	if err := runInNetNS(x.path(), func() error { return pingOnce(gw) }); err != nil {
		t.Errorf("attacker → node gateway after a neighbour flush: %v", err)
	}
	// (From its own address: a link-local source is for neighbour
	// discovery only.)
	if err := runInNetNS(x6.path(), func() error { return pingOnce(w.client6.ip) }); err != nil {
		t.Errorf("attacker6 → client6 after a neighbour flush: %v", err)
	}
}

// pingOnce sends a UDP datagram to a closed port and waits for the ICMP
// port unreachable the kernel answers with: proof that the path (and
// address resolution) works, without an echo server.
func pingOnce(to netip.Addr) error {
	network := "udp4"
	if to.Is6() {
		network = "udp6"
	}
	c, err := net.Dial(network, netip.AddrPortFrom(to, 9).String())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	for range 3 {
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if strings.Contains(err.Error(), "refused") {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return err
		}
	}
	return fmt.Errorf("no answer from %s", to)
}

// withSourceCIDRs adds the source-ranges annotation to a rendered pod.
func withSourceCIDRs(podYAML, value string) string {
	return strings.Replace(podYAML, "  labels:", "  annotations: {"+policy.AnnotationSourceCIDRs+": \""+value+"\"}\n  labels:", 1)
}

// A router pod granted 10.9.0.0/16 by its annotation sends from it, through
// a real Sync, and only from it; once the annotation is gone (the next
// Sync withdraws the range) it no longer can.
func TestAnnotatedSourceRangesPassAndAreWithdrawn(t *testing.T) {
	requireKernel(t)
	n := newTestNode(t)
	target := n.routedPod("client", clientIP) // its ingress is open
	router := n.routedPod("router", "10.244.0.6")
	rw := &routedWorld{node: n, pinDir: testPinDir(t), logs: &logBuffer{}}
	d := rw.open(t)
	manifests := func(annotated bool) string {
		r := pod("open", "router", "router", "10.244.0.6")
		if annotated {
			r = withSourceCIDRs(r, "10.9.0.0/16")
		}
		return namespace("x") + namespace("open") + pod("x", "client", "client", clientIP) + r
	}
	syncState(t, d, compile(t, manifests(true)))

	mac, host := (&spoofWorld{node: n}).macs(t, router)
	granted, outside := netip.MustParseAddr("10.9.1.2"), netip.MustParseAddr("10.10.0.1")
	send := func(sport uint16) {
		sendFrames(t, router,
			frames.UDP(host, mac, granted, target.ip, sport, forgedPort, []byte("routed")),
			frames.UDP(host, mac, outside, target.ip, sport, forgedPort, []byte("routed")))
		settle()
	}
	c := captureOn(t, target)
	send(42001)
	if c.Count(granted, forgedPort) != 1 {
		t.Errorf("a datagram from the granted range 10.9.0.0/16: %d arrived, want 1", c.Count(granted, forgedPort))
	}
	if n := c.Count(outside, forgedPort); n != 0 {
		t.Errorf("a datagram from outside the granted range: %d arrived, want none", n)
	}

	syncState(t, d, compile(t, manifests(false)))
	c2 := captureOn(t, target)
	send(42002)
	if n := c2.Count(granted, forgedPort); n != 0 {
		t.Errorf("after the annotation was removed, %d datagrams from 10.9.0.0/16 arrived, want none", n)
	}
}
