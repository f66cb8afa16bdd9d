package datapath

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/enforcer/policy"
	"golang.org/x/sys/unix"
)

// Forged sources and neighbour discovery, attacked for real: an attacker
// pod whose egress is open writes whole Ethernet frames onto its own
// interface (an AF_PACKET socket in its namespace), the way a pod with
// CAP_NET_RAW can, and the victim's namespace counts what reaches it.

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
	get := func(ns, name string) net.HardwareAddr {
		var mac net.HardwareAddr
		if err := runInNetNS(ns, func() error {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			mac = ifi.HardwareAddr
			return nil
		}); err != nil {
			t.Fatalf("find %s: %v", name, err)
		}
		return mac
	}
	return get(p.path(), "eth0"), get(w.node.path(), p.hostIf)
}

// sendFrames writes whole Ethernet frames onto the pod's eth0.
func sendFrames(t *testing.T, p *testPod, frames ...[]byte) {
	t.Helper()
	err := runInNetNS(p.path(), func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // send only
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		for _, f := range frames {
			sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
			copy(sa.Addr[:], f[:6])
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("send frame: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send from %s: %v", p.name, err)
	}
}

// capture records every frame arriving on the pod's eth0, from inside
// its namespace.
type capture struct {
	fd     int
	mu     sync.Mutex
	frames [][]byte
	done   chan struct{}
}

func captureOn(t *testing.T, p *testPod) *capture {
	t.Helper()
	c := &capture{done: make(chan struct{})}
	err := runInNetNS(p.path(), func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		if c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto); err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		tv := unix.Timeval{Usec: 50_000}
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("capture in %s: %v", p.name, err)
	}
	stop := make(chan struct{})
	go func() {
		defer close(c.done)
		buf := make([]byte, 65536)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, from, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil {
				continue // the read timeout: look at stop again
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			c.mu.Lock()
			c.frames = append(c.frames, append([]byte(nil), buf[:n]...))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(stop); <-c.done; unix.Close(c.fd) })
	return c
}

// count returns how many captured frames carry an IP packet from src to
// dst port dport (0: any port, or no ports).
func (c *capture) count(src netip.Addr, dport uint16) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		s, proto, l4, ok := ipOf(f)
		if !ok || s != src {
			continue
		}
		if dport == 0 || (proto == protoTCP || proto == protoUDP) && len(l4) >= 4 && binary.BigEndian.Uint16(l4[2:4]) == dport {
			n++
		}
	}
	return n
}

func ipOf(f []byte) (src netip.Addr, proto uint8, l4 []byte, ok bool) {
	if len(f) < 14 {
		return
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x0800:
		if len(f) < 34 {
			return
		}
		ihl := int(f[14]&0xf) * 4
		if len(f) < 14+ihl {
			return
		}
		return netip.AddrFrom4([4]byte(f[26:30])), f[23], f[14+ihl:], true
	case 0x86dd:
		if len(f) < 54 {
			return
		}
		return netip.AddrFrom16([16]byte(f[22:38])), f[20], f[54:], true
	}
	return
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
		{"TCP SYN as the client", x, tcpSYNFrame(xHost, xMAC, c.ip, s.ip, 40001, forgedPort), c.ip},
		{"UDP as the client", x, udpFrame(xHost, xMAC, c.ip, s.ip, 40002, forgedPort, []byte("forged")), c.ip},
		{"TCP SYN from an unused address", x, tcpSYNFrame(xHost, xMAC, netip.MustParseAddr(unusedPodIP), s.ip, 40003, forgedPort), netip.MustParseAddr(unusedPodIP)},
		{"IPv6 TCP SYN as the client", x6, tcpSYNFrame(x6Host, x6MAC, c6.ip, s6.ip, 40004, forgedPort), c6.ip},
		{"IPv6 UDP as the client", x6, udpFrame(x6Host, x6MAC, c6.ip, s6.ip, 40005, forgedPort, []byte("forged")), c6.ip},
	}

	// Without Palisade the attack works: every forged packet reaches the
	// server's namespace. This is what makes the zero below mean something.
	before := map[*testPod]*capture{s: captureOn(t, s), s6: captureOn(t, s6)}
	for _, f := range forged {
		sendFrames(t, f.from, f.frame)
	}
	settle()
	for _, f := range forged {
		target := s
		if f.from == x6 {
			target = s6
		}
		if before[target].count(f.src, forgedPort) == 0 {
			t.Fatalf("control: %s did not reach the server before enforcement; the test cannot tell a drop from a broken path", f.what)
		}
	}

	w.enforce(t)
	expectPass(t, "client → server TCP 8080", c.tcp(s, port))
	expectPass(t, "client → server UDP 8080", c.udp(s, port))
	expectPass(t, "IPv6 client → server TCP 8080", c6.tcp(s6, port))
	expectDrop(t, "attacker → server TCP 8080 from its own address", x.tcp(s, port))

	after := map[*testPod]*capture{s: captureOn(t, s), s6: captureOn(t, s6)}
	dropped := w.counter(t, "drop_spoofed")
	for _, f := range forged {
		sendFrames(t, f.from, f.frame)
	}
	settle()
	for _, f := range forged {
		target := s
		if f.from == x6 {
			target = s6
		}
		if n := after[target].count(f.src, forgedPort); n != 0 {
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
	if after[s].count(c.ip, port) == 0 {
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

	nsWithData := ndFrame(x6Host, x6MAC, lladdr, nodeLL, 255, 135, nodeLL.AsSlice(), ndOpt(1, x6MAC), payload)
	nsWithDataToServer := ndFrame(x6Host, x6MAC, w.attacker6.ip, s6.ip, 255, 135, s6.ip.AsSlice(), ndOpt(1, x6MAC), payload)
	ra := ndFrame(multicastMAC(netip.MustParseAddr("ff02::1")), x6MAC, lladdr, netip.MustParseAddr("ff02::1"), 255, 134, nil,
		[]byte{64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}, prefixInfo(netip.MustParsePrefix("fd00:bad::/64")))
	arpAsClient := arpFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, xMAC, 1, clientAddr, gw)

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
	if n := capture.count(w.attacker6.ip, 0); n != 0 {
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

// Frame builders: Ethernet, IPv4 with its header checksum, IPv6, and TCP,
// UDP, ICMPv6 with their checksums (the receiving stack checks them).

const (
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func ethFrame(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], etherType)
	return append(f, payload...)
}

func checksum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ipFrame wraps l4 (checksum field at csumOff, zeroed) in IPv4 or IPv6
// by the family of src, filling the L4 checksum over the pseudo-header.
func ipFrame(dst, srcMAC net.HardwareAddr, src, to netip.Addr, proto uint8, hop uint8, l4 []byte, csumOff int) []byte {
	pseudo := checksum(0, src.AsSlice())
	pseudo = checksum(pseudo, to.AsSlice())
	pseudo += uint32(proto) + uint32(len(l4))
	binary.BigEndian.PutUint16(l4[csumOff:], 0)
	binary.BigEndian.PutUint16(l4[csumOff:], fold(checksum(pseudo, l4)))
	if src.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:4], uint16(20+len(l4)))
		h[8] = hop
		h[9] = proto
		copy(h[12:16], src.AsSlice())
		copy(h[16:20], to.AsSlice())
		binary.BigEndian.PutUint16(h[10:12], fold(checksum(0, h)))
		return ethFrame(dst, srcMAC, 0x0800, append(h, l4...))
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(l4)))
	h[6] = proto
	h[7] = hop
	copy(h[8:24], src.AsSlice())
	copy(h[24:40], to.AsSlice())
	return ethFrame(dst, srcMAC, 0x86dd, append(h, l4...))
}

func tcpSYNFrame(dst, srcMAC net.HardwareAddr, src, to netip.Addr, sport, dport uint16) []byte {
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	binary.BigEndian.PutUint32(l4[4:8], 0x1000)
	l4[12] = 5 << 4
	l4[13] = 0x02
	binary.BigEndian.PutUint16(l4[14:16], 64240)
	return ipFrame(dst, srcMAC, src, to, protoTCP, 64, l4, 16)
}

func udpFrame(dst, srcMAC net.HardwareAddr, src, to netip.Addr, sport, dport uint16, data []byte) []byte {
	l4 := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	binary.BigEndian.PutUint16(l4[4:6], uint16(8+len(data)))
	return ipFrame(dst, srcMAC, src, to, protoUDP, 64, append(l4, data...), 6)
}

// ndFrame is an ICMPv6 message: type, code 0, 4 reserved bytes, target
// (nil for none), then the rest.
func ndFrame(dst, srcMAC net.HardwareAddr, src, to netip.Addr, hop, typ uint8, target []byte, rest ...[]byte) []byte {
	l4 := []byte{typ, 0, 0, 0, 0, 0, 0, 0}
	if typ == 134 {
		l4 = l4[:4] // an RA's fixed fields come in rest
	}
	l4 = append(l4, target...)
	for _, r := range rest {
		l4 = append(l4, r...)
	}
	if dst == nil {
		dst = multicastMAC(to)
	}
	return ipFrame(dst, srcMAC, src, to, protoICMPv6, hop, l4, 2)
}

func ndOpt(typ uint8, mac net.HardwareAddr) []byte { return append([]byte{typ, 1}, mac...) }

func prefixInfo(p netip.Prefix) []byte {
	o := make([]byte, 32)
	o[0], o[1], o[2], o[3] = 3, 4, byte(p.Bits()), 0xc0
	binary.BigEndian.PutUint32(o[4:8], 86400)
	binary.BigEndian.PutUint32(o[8:12], 14400)
	copy(o[16:32], p.Addr().AsSlice())
	return o
}

func multicastMAC(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

func arpFrame(dst, srcMAC net.HardwareAddr, op uint16, spa, tpa netip.Addr) []byte {
	a := make([]byte, 28)
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], op)
	copy(a[8:14], srcMAC)
	copy(a[14:18], spa.AsSlice())
	copy(a[24:28], tpa.AsSlice())
	return ethFrame(dst, srcMAC, 0x0806, a)
}
