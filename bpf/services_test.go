package bpf

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Service traffic: the pod (podIfindex) talks to clusterIP:80, which the
// node's DNAT rewrites to a backend's 8080. The pod's egress allows peerID
// on 8080 only; otherIP is a backend it may not reach.
const (
	clusterIP   = "10.96.0.10"
	serviceMark = 0x08000000
	backendPort = 8080
)

func newServiceCluster(t *testing.T, flags uint32) *datapath {
	t.Helper()
	d := newCluster(t, flags, Config{})
	d.service("10.96.0.0/12")
	d.endpointIP(podIP, podIfindex)
	d.allow(podID, peerID, egress, protoTCP, backendPort, 11)
	d.allow(podID, peerID, egress, protoUDP, backendPort, 12)
	return d
}

func (d *datapath) endpointAt(ifindex, identity, flags, revision uint32) {
	d.tb.Helper()
	v := PalisadeEndpointValue{Identity: identity, Flags: flags, Revision: revision}
	if err := d.objs.Endpoints.Put(ifindex, &v); err != nil {
		d.tb.Fatalf("put endpoint: %v", err)
	}
}

func (d *datapath) endpointIP(ip string, ifindex uint32) {
	d.tb.Helper()
	a := netip.MustParseAddr(ip)
	k := PalisadeAddrKey{Family: uint8(PalisadeFamilyFAMILY_IPV4), Addr: addr16(ip)}
	if a.Is6() {
		k.Family = uint8(PalisadeFamilyFAMILY_IPV6)
	}
	if err := d.objs.EndpointIps.Put(&k, &PalisadeEndpointIpValue{Ifindex: ifindex}); err != nil {
		d.tb.Fatalf("put endpoint ip: %v", err)
	}
}

// uplink runs palisade_uplink on a packet carrying mark.
func (d *datapath) uplink(frame []byte, mark uint32) (uint32, uint32) {
	d.tb.Helper()
	return d.runWith(d.objs.PalisadeUplink, frame, skbContext{Mark: mark})
}

// deferred sends frame from the pod and checks that it left marked.
func (d *datapath) deferred(t *testing.T, what string, frame []byte) {
	t.Helper()
	ret, mark := d.run(d.objs.PalisadeFromPod, frame)
	if ret != tcActUnspec || mark&serviceMark == 0 {
		t.Fatalf("%s: verdict %#x mark %#x, want passed and marked", what, ret, mark)
	}
}

func (d *datapath) expectUplink(t *testing.T, what string, frame []byte, want uint32) {
	t.Helper()
	ret, mark := d.uplink(frame, serviceMark)
	if ret != want {
		t.Errorf("%s: uplink verdict %#x, want %#x", what, ret, want)
	}
	if ret == tcActUnspec && mark&serviceMark != 0 {
		t.Errorf("%s: mark %#x left on a judged packet", what, mark)
	}
}

func TestUplinkJudgesServiceTrafficAsSourceEgress(t *testing.T) {
	d := newServiceCluster(t, isolatedAll)

	// Allowed backend: the whole conversation.
	d.deferred(t, "syn to the service", frame(podIP, clusterIP, protoTCP, tcp(40000, 80)))
	d.expectUplink(t, "syn after DNAT to an allowed backend", frame(podIP, peerIP, protoTCP, tcp(40000, backendPort)), tcActUnspec)
	d.play(t, []step{{"syn-ack back from the service address", true, frame(clusterIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActUnspec}})
	d.deferred(t, "ack to the service", frame(podIP, clusterIP, protoTCP, tcpFlags(40000, 80, tcpACK)))
	d.expectUplink(t, "ack after DNAT", frame(podIP, peerIP, protoTCP, tcpFlags(40000, backendPort, tcpACK)), tcActUnspec)

	// Refused backend: dropped after DNAT though the service address
	// itself was deferred, reported as the pod's egress to the backend.
	d.events()
	d.deferred(t, "syn to the service", frame(podIP, clusterIP, protoTCP, tcp(40001, 80)))
	d.expectUplink(t, "syn after DNAT to a refused backend", frame(podIP, otherIP, protoTCP, tcp(40001, backendPort)), tcActShot)
	evs := d.events()
	if len(evs) != 1 {
		t.Fatalf("events %+v, want one drop", evs)
	}
	e := evs[0]
	if e.Ifindex != podIfindex || PalisadeDirection(e.Direction) != egress || e.SrcIdentity != podID || e.DstIdentity != otherID ||
		PalisadeReason(e.Reason) != PalisadeReasonREASON_POLICY_MISS || e.Flags != uint32(PalisadeEventFlagsEVENT_F_SERVICE) ||
		e.Daddr != addr16(otherIP) || e.Dport != backendPort || e.ServiceAddr != addr16(clusterIP) || e.ServicePort != 80 {
		t.Errorf("drop event %+v: want the pod's egress to otherIP:8080 via %s:80", e, clusterIP)
	}
	d.play(t, []step{{"syn-ack for the refused flow", true, frame(clusterIP, podIP, protoTCP, tcpFlags(80, 40001, tcpSYN|tcpACK)), tcActShot}})

	// UDP, and a deferred flow no hook ever judged.
	d.deferred(t, "udp to the service", frame(podIP, clusterIP, protoUDP, udp(33333, 80)))
	d.expectUplink(t, "udp after DNAT", frame(podIP, peerIP, protoUDP, udp(33333, backendPort)), tcActUnspec)
	d.play(t, []step{{"udp answer", true, frame(clusterIP, podIP, protoUDP, udp(80, 33333)), tcActUnspec}})
	// The deferred entry evicted while the post-DNAT one lives on: the
	// new deferred entry takes the flow's standing from it.
	dk := PalisadeCtKey{Ifindex: podIfindex, Sport: NetworkOrder16(33333), Dport: NetworkOrder16(80), Saddr: addr16(podIP), Daddr: addr16(clusterIP),
		Protocol: protoUDP, Family: 4, Direction: uint8(egress)}
	if err := d.objs.Conntrack.Delete(&dk); err != nil {
		t.Fatalf("evict deferred entry: %v", err)
	}
	d.deferred(t, "udp again", frame(podIP, clusterIP, protoUDP, udp(33333, 80)))
	d.expectUplink(t, "udp again after DNAT (established)", frame(podIP, peerIP, protoUDP, udp(33333, backendPort)), tcActUnspec)
	d.play(t, []step{{"udp answer to the new deferred entry", true, frame(clusterIP, podIP, protoUDP, udp(80, 33333)), tcActUnspec}})
	d.deferred(t, "udp never judged after DNAT", frame(podIP, clusterIP, protoUDP, udp(33334, 80)))
	d.play(t, []step{{"answer to it", true, frame(clusterIP, podIP, protoUDP, udp(80, 33334)), tcActShot}})

	// Revocation: the established flow's next packet after the bump.
	d.revoke(podID, peerID, egress, protoTCP, backendPort)
	d.endpoint(podID, isolatedAll, 2)
	d.deferred(t, "ack after the withdrawal", frame(podIP, clusterIP, protoTCP, tcpFlags(40000, 80, tcpACK)))
	d.expectUplink(t, "ack after DNAT, revoked", frame(podIP, peerIP, protoTCP, tcpFlags(40000, backendPort, tcpACK)), tcActShot)
	d.play(t, []step{
		{"data back from the service", true, frame(clusterIP, podIP, protoTCP, tcpFlags(80, 40000, tcpACK|tcpPSH)), tcActShot},
		{"ack to the service: no flow any more", false, frame(podIP, clusterIP, protoTCP, tcpFlags(40000, 80, tcpACK)), tcActShot},
	})
	if got := d.counter(PalisadeCounterCOUNTER_CT_REVOKED); got != 1 {
		t.Errorf("ct_revoked = %d, want 1", got)
	}
}

func TestUplinkPassesWhatIsNotPalisades(t *testing.T) {
	d := newServiceCluster(t, isolatedAll)
	if ret, _ := d.uplink(frame(podIP, otherIP, protoTCP, tcp(40000, backendPort)), 0); ret != tcActUnspec {
		t.Errorf("unmarked: verdict %#x, want passed", ret)
	}
	if ret, mark := d.uplink(ether(etherTypeLLDP, make([]byte, 46)), serviceMark|0x4000); ret != tcActUnspec || mark != serviceMark|0x4000 {
		t.Errorf("marked non-IP: verdict %#x mark %#x, want passed untouched", ret, mark)
	}
	if got := d.counter(PalisadeCounterCOUNTER_SERVICE_JUDGED); got != 0 {
		t.Errorf("service_judged = %d, want 0", got)
	}
	// A marked packet from no local pod is refused: nothing here can
	// judge it.
	d.expectUplink(t, "marked, from an unknown source", frame(worldIP, peerIP, protoTCP, tcp(1, backendPort)), tcActShot)
	if evs := d.events(); len(evs) != 1 || PalisadeReason(evs[0].Reason) != PalisadeReasonREASON_SERVICE_SOURCE_UNKNOWN {
		t.Errorf("events %+v, want one SERVICE_SOURCE_UNKNOWN drop", evs)
	}
	// Other mark bits are left alone.
	d.deferred(t, "udp to the service", frame(podIP, clusterIP, protoUDP, udp(33333, 80)))
	if ret, mark := d.uplink(frame(podIP, peerIP, protoUDP, udp(33333, backendPort)), serviceMark|0x4000); ret != tcActUnspec || mark != 0x4000 {
		t.Errorf("judged: verdict %#x mark %#x, want passed with 0x4000 kept", ret, mark)
	}
}

func TestServiceJudgementInAuditMode(t *testing.T) {
	d := newServiceCluster(t, isolatedAll|auditMode)
	d.deferred(t, "syn to the service", frame(podIP, clusterIP, protoTCP, tcp(40000, 80)))
	d.expectUplink(t, "refused backend in audit mode", frame(podIP, otherIP, protoTCP, tcp(40000, backendPort)), tcActUnspec)
	d.play(t, []step{{"its reply", true, frame(clusterIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActUnspec}})
	if evs := d.events(); len(evs) != 1 || PalisadeEventVerdict(evs[0].Verdict) != PalisadeEventVerdictEVENT_AUDIT_WOULD_DROP {
		t.Errorf("events %+v, want one audit would-drop", evs)
	}
	d.endpoint(podID, isolatedAll, 1) // audit ends, without a bump
	d.expectUplink(t, "next packet once enforced", frame(podIP, otherIP, protoTCP, tcpFlags(40000, backendPort, tcpACK)), tcActShot)
}

// inDeviceNetns moves the calling goroutine's thread into a new network
// namespace holding one device (a veth) and returns its index: test runs
// take their skb->ifindex from the caller's namespace. The thread stays
// locked and dies with the test's goroutine.
func inDeviceNetns(t *testing.T) uint32 {
	t.Helper()
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Fatalf("unshare network namespace: %v", err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = "backend0"
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "backend1"}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	l, err := netlink.LinkByName("backend0")
	if err != nil {
		t.Fatal(err)
	}
	return uint32(l.Attrs().Index)
}

// A local backend: to_pod of the backend's interface judges the marked
// packet as the source's egress first, then as the backend's ingress.
func TestToPodJudgesMarkedPacketsAsSourceEgress(t *testing.T) {
	backendIf := inDeviceNetns(t)
	d := newServiceCluster(t, isolatedAll)
	d.endpointAt(backendIf, peerID, isolatedIn, 1)
	d.allow(peerID, podID, ingress, protoTCP, backendPort, 21)
	d.allow(peerID, podID, ingress, protoUDP, backendPort, 22)
	atBackend := func(f []byte) (uint32, uint32) {
		return d.runWith(d.objs.PalisadeToPod, f, skbContext{Mark: serviceMark, Ifindex: backendIf})
	}

	d.deferred(t, "syn to the service", frame(podIP, clusterIP, protoTCP, tcp(40000, 80)))
	if ret, mark := atBackend(frame(podIP, peerIP, protoTCP, tcp(40000, backendPort))); ret != tcActUnspec || mark&serviceMark != 0 {
		t.Fatalf("allowed backend: verdict %#x mark %#x, want passed, mark cleared", ret, mark)
	}
	d.play(t, []step{{"syn-ack back", true, frame(clusterIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActUnspec}})

	// The backend admits the pod on 9090 but the pod's egress does not:
	// the source's verdict comes first.
	d.allow(peerID, podID, ingress, protoUDP, 9090, 23)
	d.deferred(t, "udp to the service", frame(podIP, clusterIP, protoUDP, udp(33333, 53)))
	if ret, _ := atBackend(frame(podIP, peerIP, protoUDP, udp(33333, 9090))); ret != tcActShot {
		t.Errorf("backend port the source may not reach: verdict %#x, want dropped", ret)
	}
	evs := d.events()
	var found bool
	for _, e := range evs {
		if PalisadeEventVerdict(e.Verdict) == PalisadeEventVerdictEVENT_DROP {
			found = e.Ifindex == podIfindex && PalisadeDirection(e.Direction) == egress && e.DstIdentity == peerID &&
				e.ServiceAddr == addr16(clusterIP) && e.ServicePort == 53
		}
	}
	if !found {
		t.Errorf("events %+v: want a drop of the pod's egress via %s:53", evs, clusterIP)
	}

	// Hairpin: the pod reaches itself through the service, masqueraded
	// to the node's address.
	d.allow(podID, podID, egress, protoTCP, backendPort, 31)
	d.deferred(t, "syn to its own service", frame(podIP, clusterIP, protoTCP, tcp(40005, 80)))
	hairpin := func(sport uint16) uint32 {
		ret, _ := d.runWith(d.objs.PalisadeToPod, frame(hostIP, podIP, protoTCP, tcp(sport, backendPort)), skbContext{Mark: serviceMark})
		return ret
	}
	if ret := hairpin(40005); ret != tcActUnspec {
		t.Errorf("hairpin: verdict %#x, want passed", ret)
	}
	if ret := hairpin(40006); ret != tcActShot {
		t.Errorf("masqueraded, no deferred flow from that port: verdict %#x, want dropped", ret)
	}
	if got := d.counter(PalisadeCounterCOUNTER_SERVICE_MASQUERADED); got != 1 {
		t.Errorf("service_masqueraded = %d, want 1", got)
	}
}

func TestServiceJudgementIPv6(t *testing.T) {
	const clusterIP6 = "fd00:96::10"
	d := newServiceCluster(t, isolatedAll)
	d.service("fd00:96::/112")
	d.endpointIP(podIP6, podIfindex)
	d.identity("fd00::3/128", otherID)
	d.deferred(t, "syn to the service", frame(podIP6, clusterIP6, protoTCP, tcp(40000, 80)))
	d.expectUplink(t, "to an allowed backend", frame(podIP6, peerIP6, protoTCP, tcp(40000, backendPort)), tcActUnspec)
	d.play(t, []step{{"syn-ack", true, frame(clusterIP6, podIP6, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActUnspec}})
	d.deferred(t, "syn to the service", frame(podIP6, clusterIP6, protoTCP, tcp(40001, 80)))
	d.expectUplink(t, "to a refused backend", frame(podIP6, "fd00::3", protoTCP, tcp(40001, backendPort)), tcActShot)
	evs := d.events()
	if len(evs) == 0 || evs[len(evs)-1].ServiceAddr != addr16(clusterIP6) || evs[len(evs)-1].DstIdentity != otherID {
		t.Errorf("events %+v: want a drop naming %s and the backend's identity", evs, clusterIP6)
	}
}
