package bpf

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// Forged sources and address resolution (include/source.h,
// include/neighbour.h): every case is one frame through the real program.

const (
	unusedIP   = "10.0.0.99" // no pod's
	unusedIP6  = "fd00::99"
	linkLocal  = "fe80::1"
	linkLocal2 = "fe80::2"
	allNodes   = "ff02::1"
	allRouters = "ff02::2"
	mldv2      = "ff02::16"
	peerIf     = 7 // the interface of the pod owning peerIP in endpoint_ips
)

// arpFrame is an IPv4-over-Ethernet ARP packet (op 1 request, 2 reply).
func arpFrame(op uint16, spa, tpa string, pad ...byte) []byte {
	a := make([]byte, 28)
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], op)
	copy(a[8:14], []byte{0x02, 0, 0, 0, 0, 1})
	s, t := netip.MustParseAddr(spa).As4(), netip.MustParseAddr(tpa).As4()
	copy(a[14:18], s[:])
	copy(a[24:28], t[:])
	return ether(etherTypeARP, append(a, pad...))
}

// ndOption is one neighbour discovery option of one 8-byte unit.
func ndOption(typ uint8) []byte { return []byte{typ, 1, 0x02, 0, 0, 0, 0, 1} }

const (
	optSLLA  = 1
	optTLLA  = 2
	optMTU   = 5
	optNonce = 14
)

// ndFrame is an ICMPv6 message of type typ with hop limit hop: 4 reserved
// bytes, the target (NS, NA, redirect; "" for none), then rest.
func ndFrame(src, dst string, hop, typ uint8, target string, rest ...[]byte) []byte {
	body := make([]byte, 4)
	if target != "" {
		t := netip.MustParseAddr(target).As16()
		body = append(body, t[:]...)
	}
	for _, r := range rest {
		body = append(body, r...)
	}
	f := ether(etherTypeIPv6, ipv6Packet(netip.MustParseAddr(src), netip.MustParseAddr(dst), protoICMPv6, nil, icmpMessage(typ, 0, body)))
	f[14+7] = hop
	return f
}

type neighbourCase struct {
	name  string
	flags uint32
	setup func(d *datapath)
	toPod bool
	frame []byte
	want  uint32
	// counter must have counted the frame once.
	counter PalisadeCounter
	// event and reason: the one event expected, or none when event is 0.
	event  PalisadeEventVerdict
	reason PalisadeReason
}

func runNeighbourCases(t *testing.T, cases []neighbourCase) {
	t.Helper()
	shared := newCluster(t, 0, Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &datapath{tb: t, objs: shared.objs}
			d.clear()
			d.endpoint(podID, c.flags, 1)
			d.endpointIP(peerIP, peerIf)
			d.endpointIP(peerIP6, peerIf)
			if c.setup != nil {
				c.setup(d)
			}
			before := d.counter(c.counter)
			var got uint32
			if c.toPod {
				got = d.toPod(c.frame)
			} else {
				got = d.fromPod(c.frame)
			}
			if got != c.want {
				t.Errorf("verdict = %#x, want %#x", got, c.want)
			}
			if n := d.counter(c.counter) - before; n != 1 {
				t.Errorf("counter %d moved by %d, want 1", c.counter, n)
			}
			evs := d.events()
			switch {
			case c.event == 0 && len(evs) != 0:
				t.Errorf("got events %+v, want none", evs)
			case c.event != 0 && len(evs) != 1:
				t.Errorf("got %d events %+v, want one", len(evs), evs)
			case c.event != 0:
				e := evs[0]
				if PalisadeEventVerdict(e.Verdict) != c.event || PalisadeReason(e.Reason) != c.reason {
					t.Errorf("event verdict %d reason %d, want %d %d", e.Verdict, e.Reason, c.event, c.reason)
				}
				own := e.SrcIdentity
				if c.toPod {
					own = e.DstIdentity
				}
				if e.Ifindex != podIfindex || own != podID {
					t.Errorf("event names interface %d identity %d, want the pod's (%d, %d)", e.Ifindex, own, podIfindex, podID)
				}
			}
		})
	}
}

func sourceCIDR(d *datapath, prefix string, ifindex uint32) {
	d.tb.Helper()
	k, err := NewSourceCIDRKey(ifindex, netip.MustParsePrefix(prefix))
	if err != nil {
		d.tb.Fatal(err)
	}
	if err := d.objs.SourceCidrs.Put(&k, &PalisadeSourceCidrValue{}); err != nil {
		d.tb.Fatalf("put source range %s: %v", prefix, err)
	}
}

func TestForgedSourcesAreDropped(t *testing.T) {
	const (
		dropped  = PalisadeEventVerdictEVENT_DROP
		allowed  = PalisadeEventVerdictEVENT_ALLOWED_NEW
		spoofed  = PalisadeReasonREASON_SPOOFED_SOURCE
		cSpoofed = PalisadeCounterCOUNTER_DROP_SPOOFED
		cOpen    = PalisadeCounterCOUNTER_ALLOWED_OPEN
	)
	v4 := netip.MustParseAddr
	vpn := func(d *datapath) {
		sourceCIDR(d, "10.9.0.0/16", podIfindex)
		sourceCIDR(d, "fd00:9::/64", podIfindex)
	}
	// isolatedIn: the pod's egress is open, the common case the attack needs.
	cases := []neighbourCase{
		{name: "own address passes open egress", flags: isolatedIn,
			frame: frame(podIP, otherIP, protoTCP, tcp(40000, 80)), want: tcActUnspec, counter: cOpen, event: allowed, reason: PalisadeReasonREASON_NOT_ISOLATED},
		{name: "own ipv6 address passes open egress", flags: isolatedIn,
			frame: frame(podIP6, peerIP6, protoUDP, udp(40000, 53)), want: tcActUnspec, counter: cOpen, event: allowed, reason: PalisadeReasonREASON_NOT_ISOLATED},
		{name: "tcp syn with another pod's address", flags: isolatedIn,
			frame: frame(peerIP, otherIP, protoTCP, tcp(40000, 80)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "udp with another pod's address", flags: isolatedIn,
			frame: frame(peerIP, otherIP, protoUDP, udp(40000, 53)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "tcp syn with an unused address", flags: isolatedIn,
			frame: frame(unusedIP, otherIP, protoTCP, tcp(40000, 80)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "udp with an unused address", flags: isolatedIn,
			frame: frame(unusedIP, otherIP, protoUDP, udp(40000, 53)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "ipv6 tcp syn with another pod's address", flags: isolatedIn,
			frame: frame(peerIP6, podIP6, protoTCP, tcp(40000, 80)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "ipv6 udp with an unused address", flags: isolatedIn,
			frame: frame(unusedIP6, peerIP6, protoUDP, udp(40000, 53)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "ipv6 link-local source outside neighbour discovery", flags: isolatedIn,
			frame: frame(linkLocal, linkLocal2, protoUDP, udp(546, 547)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "unspecified source", flags: isolatedIn,
			frame: frame("0.0.0.0", "255.255.255.255", protoUDP, udp(68, 67)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "audit mode still drops a forged source", flags: isolatedAll | auditMode,
			frame: frame(peerIP, otherIP, protoTCP, tcp(40000, 80)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "an allow for the forged flow does not help", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(otherIP, peerIP, protoTCP, tcp(40000, 80)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "forged later fragment", flags: isolatedIn,
			frame: ether(etherTypeIPv4, ipv4Packet(v4(peerIP), v4(otherIP), protoUDP, 0x0010, make([]byte, 16))), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "forged truncated tcp", flags: isolatedIn,
			frame: ether(etherTypeIPv4, ipv4Packet(v4(peerIP), v4(otherIP), protoTCP, 0, tcp(40000, 80)[:8])), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "forged tcp ack (no flow)", flags: isolatedIn,
			frame: frame(peerIP, otherIP, protoTCP, tcpFlags(40000, 80, tcpACK)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "source range of the annotation passes", flags: isolatedIn, setup: vpn,
			frame: frame("10.9.1.2", otherIP, protoUDP, udp(40000, 53)), want: tcActUnspec, counter: cOpen, event: allowed, reason: PalisadeReasonREASON_NOT_ISOLATED},
		{name: "ipv6 source range of the annotation passes", flags: isolatedIn, setup: vpn,
			frame: frame("fd00:9::7", peerIP6, protoTCP, tcp(40000, 80)), want: tcActUnspec, counter: cOpen, event: allowed, reason: PalisadeReasonREASON_NOT_ISOLATED},
		{name: "outside the source range dropped", flags: isolatedIn, setup: vpn,
			frame: frame("10.10.0.1", otherIP, protoUDP, udp(40000, 53)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "another interface's source range does not apply", flags: isolatedIn, setup: func(d *datapath) { sourceCIDR(d, "10.9.0.0/16", peerIf) },
			frame: frame("10.9.1.2", otherIP, protoUDP, udp(40000, 53)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "source range traffic is still judged by policy", flags: isolatedAll, setup: vpn,
			frame: frame("10.9.1.2", otherIP, protoUDP, udp(40000, 53)), want: tcActShot, counter: PalisadeCounterCOUNTER_DROP_POLICY, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "towards the pod the source is the peer's", flags: isolatedOut, toPod: true,
			frame: frame(peerIP, podIP, protoTCP, tcp(40000, 80)), want: tcActUnspec, counter: cOpen, event: allowed, reason: PalisadeReasonREASON_NOT_ISOLATED},
	}
	runNeighbourCases(t, cases)
}

func TestAddressResolutionCarriesNoData(t *testing.T) {
	const (
		dropped  = PalisadeEventVerdictEVENT_DROP
		spoofed  = PalisadeReasonREASON_SPOOFED_SOURCE
		router   = PalisadeReasonREASON_ROUTER_MESSAGE
		cPassed  = PalisadeCounterCOUNTER_NEIGHBOUR_PASSED
		cSpoofed = PalisadeCounterCOUNTER_DROP_SPOOFED
		cNeigh   = PalisadeCounterCOUNTER_DROP_NEIGHBOUR
		cPolicy  = PalisadeCounterCOUNTER_DROP_POLICY
		cOpen    = PalisadeCounterCOUNTER_ALLOWED_OPEN
		ns, na   = 135, 136
	)
	zeros := make([]byte, 18)
	junk := append(make([]byte, 17), 'x')
	mtu := []byte{optMTU, 1, 0, 0, 0, 0, 0x05, 0xdc}
	prefixInfo := append([]byte{3, 4, 64, 0xc0}, make([]byte, 28)...)
	cases := []neighbourCase{
		// ARP from the pod.
		{name: "arp request from its own address", flags: isolatedAll,
			frame: arpFrame(1, podIP, routerIP), want: tcActUnspec, counter: cPassed},
		{name: "arp reply from its own address", flags: isolatedAll,
			frame: arpFrame(2, podIP, routerIP), want: tcActUnspec, counter: cPassed},
		{name: "arp with ethernet padding", flags: isolatedAll,
			frame: arpFrame(1, podIP, routerIP, zeros...), want: tcActUnspec, counter: cPassed},
		{name: "arp probe for its own address", flags: isolatedAll,
			frame: arpFrame(1, "0.0.0.0", podIP), want: tcActUnspec, counter: cPassed},
		{name: "arp probe for another's address", flags: isolatedAll,
			frame: arpFrame(1, "0.0.0.0", peerIP), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "arp for another pod's address", flags: isolatedIn,
			frame: arpFrame(2, peerIP, routerIP), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "arp for an unused address in audit mode", flags: isolatedAll | auditMode,
			frame: arpFrame(1, unusedIP, routerIP), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "arp carrying data in its padding", flags: isolatedIn,
			frame: arpFrame(1, podIP, routerIP, junk...), want: tcActShot, counter: cNeigh, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "arp with a payload", flags: isolatedIn,
			frame: arpFrame(1, podIP, routerIP, make([]byte, 100)...), want: tcActShot, counter: cNeigh, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "rarp", flags: isolatedIn,
			frame: arpFrame(3, podIP, routerIP), want: tcActShot, counter: cNeigh, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "truncated arp", flags: isolatedIn,
			frame: ether(etherTypeARP, make([]byte, 20)), want: tcActShot, counter: cNeigh, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		// ARP to the pod.
		{name: "arp to the pod for its address", flags: isolatedAll, toPod: true,
			frame: arpFrame(1, routerIP, podIP), want: tcActUnspec, counter: cPassed},
		{name: "arp to the pod for another's address dropped unreported", flags: isolatedAll, toPod: true,
			frame: arpFrame(1, routerIP, peerIP), want: tcActShot, counter: cNeigh},

		// Neighbour discovery from the pod.
		{name: "ns from link-local", flags: isolatedAll,
			frame: ndFrame(linkLocal, "ff02::1:ff00:2", 255, ns, peerIP6, ndOption(optSLLA)), want: tcActUnspec, counter: cPassed},
		{name: "ns from its own address", flags: isolatedAll,
			frame: ndFrame(podIP6, peerIP6, 255, ns, peerIP6, ndOption(optSLLA)), want: tcActUnspec, counter: cPassed},
		{name: "ns for duplicate address detection", flags: isolatedAll,
			frame: ndFrame("::", "ff02::1:ff00:1", 255, ns, podIP6, ndOption(optNonce)), want: tcActUnspec, counter: cPassed},
		{name: "dad ns for another's address", flags: isolatedAll,
			frame: ndFrame("::", "ff02::1:ff00:2", 255, ns, peerIP6), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "na for its own address", flags: isolatedAll,
			frame: ndFrame(linkLocal, linkLocal2, 255, na, podIP6, ndOption(optTLLA)), want: tcActUnspec, counter: cPassed},
		{name: "na for its link-local address", flags: isolatedAll,
			frame: ndFrame(linkLocal, allNodes, 255, na, linkLocal, ndOption(optTLLA)), want: tcActUnspec, counter: cPassed},
		{name: "na claiming another pod's address", flags: isolatedIn,
			frame: ndFrame(linkLocal, allNodes, 255, na, peerIP6, ndOption(optTLLA)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "rs from link-local", flags: isolatedAll,
			frame: ndFrame(linkLocal, allRouters, 255, 133, "", ndOption(optSLLA)), want: tcActUnspec, counter: cPassed},
		{name: "ns with hop limit 64 from link-local", flags: isolatedIn,
			frame: ndFrame(linkLocal, linkLocal2, 64, ns, linkLocal2), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "ns with hop limit 64 judged by policy", flags: isolatedAll,
			frame: ndFrame(podIP6, peerIP6, 64, ns, peerIP6), want: tcActShot, counter: cPolicy, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "ns with hop limit 64 where egress is open is any icmpv6", flags: isolatedIn,
			frame: ndFrame(podIP6, peerIP6, 64, ns, peerIP6), want: tcActUnspec, counter: cOpen, event: PalisadeEventVerdictEVENT_ALLOWED_NEW, reason: PalisadeReasonREASON_NOT_ISOLATED},
		{name: "ns carrying data after its options", flags: isolatedAll,
			frame: ndFrame(linkLocal, linkLocal2, 255, ns, linkLocal2, ndOption(optSLLA), []byte("exfiltrated data")), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "ns carrying data from its own address judged by policy", flags: isolatedAll,
			frame: ndFrame(podIP6, peerIP6, 255, ns, peerIP6, []byte("exfiltrated data")), want: tcActShot, counter: cPolicy, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "ns with an option pods never send", flags: isolatedAll,
			frame: ndFrame(linkLocal, linkLocal2, 255, ns, linkLocal2, mtu), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "ns with a long option", flags: isolatedAll,
			frame: ndFrame(linkLocal, linkLocal2, 255, ns, linkLocal2, []byte{optSLLA, 2, 0, 0, 0, 0, 0, 0, 'd', 'a', 't', 'a', 0, 0, 0, 0}), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "ns with five options", flags: isolatedAll,
			frame: ndFrame(linkLocal, linkLocal2, 255, ns, linkLocal2, ndOption(optNonce), ndOption(optNonce), ndOption(optNonce), ndOption(optNonce), ndOption(optNonce)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "ns cut short", flags: isolatedAll,
			frame: ndFrame(linkLocal, linkLocal2, 255, ns, "", make([]byte, 8)), want: tcActShot, counter: cSpoofed, event: dropped, reason: spoofed},
		{name: "router advertisement from a pod", flags: 0,
			frame: ndFrame(linkLocal, allNodes, 255, 134, "", make([]byte, 8), prefixInfo), want: tcActShot, counter: cNeigh, event: dropped, reason: router},
		{name: "router advertisement from a pod in audit mode", flags: isolatedAll | auditMode,
			frame: ndFrame(linkLocal, allNodes, 255, 134, "", make([]byte, 8)), want: tcActShot, counter: cNeigh, event: dropped, reason: router},
		{name: "redirect from a pod", flags: isolatedIn,
			frame: ndFrame(linkLocal, linkLocal2, 255, 137, peerIP6, net16(peerIP6)), want: tcActShot, counter: cNeigh, event: dropped, reason: router},
		{name: "mld report from link-local dropped unreported", flags: isolatedIn,
			frame: ndFrame(linkLocal, mldv2, 1, 143, "", make([]byte, 4)), want: tcActShot, counter: cNeigh},

		// Neighbour discovery to the pod.
		{name: "the node's router advertisement", flags: isolatedAll, toPod: true,
			frame: ndFrame(linkLocal2, allNodes, 255, 134, "", make([]byte, 8), prefixInfo, mtu), want: tcActUnspec, counter: cPassed},
		{name: "ns to the pod for its address", flags: isolatedAll, toPod: true,
			frame: ndFrame(linkLocal2, "ff02::1:ff00:1", 255, ns, podIP6, ndOption(optSLLA)), want: tcActUnspec, counter: cPassed},
		{name: "na to the pod", flags: isolatedAll, toPod: true,
			frame: ndFrame(linkLocal2, linkLocal, 255, na, routerIP6, ndOption(optTLLA)), want: tcActUnspec, counter: cPassed},
		{name: "ns to the pod for another's address dropped unreported", flags: isolatedAll, toPod: true,
			frame: ndFrame(linkLocal2, "ff02::1:ff00:2", 255, ns, peerIP6), want: tcActShot, counter: cNeigh},
		{name: "ns to the pod with hop limit 64 judged by policy", flags: isolatedAll, toPod: true,
			frame: ndFrame(peerIP6, podIP6, 64, ns, podIP6), want: tcActShot, counter: cPolicy, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "redirect to the pod judged by policy", flags: isolatedAll, toPod: true,
			frame: ndFrame(linkLocal2, linkLocal, 255, 137, peerIP6, net16(peerIP6)), want: tcActShot, counter: cPolicy, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
	}
	runNeighbourCases(t, cases)
}

const routerIP6 = "fd00::fe"

// net16 is an address's 16 bytes (a redirect's destination field).
func net16(s string) []byte {
	a := netip.MustParseAddr(s).As16()
	return a[:]
}

// After DNAT, sources are found by pod address: the post-DNAT judgement
// of a pod's own service traffic still finds it, and a router pod's
// traffic from a granted range (which has no pod address) is dropped
// there as from no local pod: fail closed, a known gap.
func TestServiceTrafficFromAGrantedRangeIsDroppedAfterDNAT(t *testing.T) {
	d := newServiceCluster(t, isolatedAll)
	sourceCIDR(d, "10.9.0.0/16", podIfindex)

	d.deferred(t, "own address to the service", frame(podIP, clusterIP, protoUDP, udp(33335, 80)))
	d.expectUplink(t, "own address after DNAT", frame(podIP, peerIP, protoUDP, udp(33335, backendPort)), tcActUnspec)

	d.events()
	before := d.counter(PalisadeCounterCOUNTER_DROP_SERVICE_SOURCE)
	d.deferred(t, "granted range to the service", frame("10.9.1.2", clusterIP, protoUDP, udp(33336, 80)))
	d.expectUplink(t, "granted range after DNAT", frame("10.9.1.2", peerIP, protoUDP, udp(33336, backendPort)), tcActShot)
	if n := d.counter(PalisadeCounterCOUNTER_DROP_SERVICE_SOURCE) - before; n != 1 {
		t.Errorf("drop_service_source moved by %d, want 1", n)
	}
	if evs := d.events(); len(evs) != 1 || PalisadeReason(evs[0].Reason) != PalisadeReasonREASON_SERVICE_SOURCE_UNKNOWN {
		t.Errorf("events %+v: want one drop, service source unknown", evs)
	}
}
