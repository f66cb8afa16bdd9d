package bpf

import (
	"net/netip"
	"testing"
)

// step is one packet of a conversation and the verdict it must get.
type step struct {
	name  string
	toPod bool
	frame []byte
	want  uint32
}

func (d *datapath) play(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		var got uint32
		if s.toPod {
			got = d.toPod(s.frame)
		} else {
			got = d.fromPod(s.frame)
		}
		if got != s.want {
			t.Errorf("%s: verdict = %#x, want %#x", s.name, got, s.want)
		}
	}
}

func TestRepliesPassWhereTheReverseIsIsolated(t *testing.T) {
	cases := []struct {
		name  string
		setup func(d *datapath)
		steps []step
	}{
		{
			name:  "tcp started by the pod",
			setup: allowEgressTCP80,
			steps: []step{
				{"syn", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec},
				{"reply", true, frame(peerIP, podIP, protoTCP, tcp(80, 40000)), tcActUnspec},
				{"more from the pod", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec},
				{"peer opens its own connection", true, frame(peerIP, podIP, protoTCP, tcp(80, 40001)), tcActShot},
				{"reply to another pod port", true, frame(peerIP, podIP, protoTCP, tcp(80, 40002)), tcActShot},
			},
		},
		{
			name:  "tcp started by the peer",
			setup: func(d *datapath) { d.allow(podID, peerID, ingress, protoTCP, 8080, 3) },
			steps: []step{
				{"syn", true, frame(peerIP, podIP, protoTCP, tcp(5555, 8080)), tcActUnspec},
				{"pod replies", false, frame(podIP, peerIP, protoTCP, tcp(8080, 5555)), tcActUnspec},
				{"pod opens a connection back", false, frame(podIP, peerIP, protoTCP, tcp(8080, 5556)), tcActShot},
			},
		},
		{
			name:  "udp",
			setup: func(d *datapath) { d.allow(podID, peerID, egress, protoUDP, 53, 4) },
			steps: []step{
				{"query", false, frame(podIP, peerIP, protoUDP, udp(33333, 53)), tcActUnspec},
				{"answer", true, frame(peerIP, podIP, protoUDP, udp(53, 33333)), tcActUnspec},
				{"answer from another address", true, frame(otherIP, podIP, protoUDP, udp(53, 33333)), tcActShot},
			},
		},
		{
			name:  "sctp",
			setup: func(d *datapath) { d.allow(podID, peerID, egress, protoSCTP, 3868, 5) },
			steps: []step{
				{"init", false, frame(podIP, peerIP, protoSCTP, sctp(40000, 3868)), tcActUnspec},
				{"init ack", true, frame(peerIP, podIP, protoSCTP, sctp(3868, 40000)), tcActUnspec},
			},
		},
		{
			name:  "icmp echo",
			setup: func(d *datapath) { d.allow(podID, peerID, egress, 0, 0, 6) },
			steps: []step{
				{"request", false, frame(podIP, peerIP, protoICMP, icmpEcho(8, 77, 1)), tcActUnspec},
				{"reply", true, frame(peerIP, podIP, protoICMP, icmpEcho(0, 77, 1)), tcActUnspec},
				{"reply with another identifier", true, frame(peerIP, podIP, protoICMP, icmpEcho(0, 78, 1)), tcActShot},
				{"request from the peer", true, frame(peerIP, podIP, protoICMP, icmpEcho(8, 77, 1)), tcActShot},
			},
		},
		{
			name:  "ipv6 tcp",
			setup: allowEgressTCP80,
			steps: []step{
				{"syn", false, frame(podIP6, peerIP6, protoTCP, tcp(40000, 80)), tcActUnspec},
				{"reply", true, frame(peerIP6, podIP6, protoTCP, tcp(80, 40000)), tcActUnspec},
				{"peer opens its own", true, frame(peerIP6, podIP6, protoTCP, tcp(80, 40001)), tcActShot},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newCluster(t, isolatedAll, Config{})
			c.setup(d)
			d.play(t, c.steps)
		})
	}
}

func TestEstablishedFlowsAreCountedNotReported(t *testing.T) {
	d := newCluster(t, isolatedAll, Config{})
	allowEgressTCP80(d)
	d.play(t, []step{
		{"syn", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec},
		{"reply", true, frame(peerIP, podIP, protoTCP, tcp(80, 40000)), tcActUnspec},
		{"ack", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec},
	})
	if evs := d.events(); len(evs) != 1 {
		t.Errorf("got %d events, want one ALLOWED_NEW: %+v", len(evs), evs)
	}
	for c, want := range map[PalisadeCounter]uint64{
		PalisadeCounterCOUNTER_ALLOWED_POLICY: 1,
		PalisadeCounterCOUNTER_CT_REPLY:       1,
		PalisadeCounterCOUNTER_CT_ESTABLISHED: 1,
	} {
		if got := d.counter(c); got != want {
			t.Errorf("counter %d = %d, want %d", c, got, want)
		}
	}
	var k PalisadeCtKey
	var v PalisadeCtValue
	if !d.objs.Conntrack.Iterate().Next(&k, &v) {
		t.Fatal("no conntrack entry")
	}
	want := PalisadeCtKey{Ifindex: podIfindex, Sport: NetworkOrder16(40000), Dport: NetworkOrder16(80),
		Saddr: addr16(podIP), Daddr: addr16(peerIP), Protocol: protoTCP, Family: 4, Direction: uint8(egress)}
	if k != want {
		t.Errorf("conntrack key = %+v, want %+v", k, want)
	}
	if v.Revision != 1 || v.RuleId != 7 || v.Flags != uint32(PalisadeCtFlagsCT_F_SEEN_REPLY) || v.CreatedNs == 0 {
		t.Errorf("conntrack value = %+v, want revision 1, rule 7, seen-reply", v)
	}
}

func TestICMPErrorsRelatedToAllowedFlowsPass(t *testing.T) {
	v4, v6 := netip.MustParseAddr, netip.MustParseAddr
	outbound := ipv4Packet(v4(podIP), v4(peerIP), protoUDP, 0, udp(33333, 53))
	otherFlow := ipv4Packet(v4(podIP), v4(peerIP), protoUDP, 0, udp(33334, 53))
	inbound := ipv4Packet(v4(peerIP), v4(podIP), protoUDP, 0, udp(44444, 5353))
	outbound6 := ipv6Packet(v6(podIP6), v6(peerIP6), protoTCP, nil, tcp(40000, 80))
	otherFlow6 := ipv6Packet(v6(podIP6), v6(peerIP6), protoTCP, nil, tcp(40001, 80))

	d := newCluster(t, isolatedAll, Config{})
	d.allow(podID, peerID, egress, protoUDP, 53, 1)
	d.allow(podID, peerID, ingress, protoUDP, 5353, 2)
	allowEgressTCP80(d)
	d.play(t, []step{
		{"udp query", false, ether(etherTypeIPv4, outbound), tcActUnspec},
		{"port unreachable from the peer", true, frame(peerIP, podIP, protoICMP, icmpError(3, 3, outbound)), tcActUnspec},
		{"time exceeded from a router", true, frame(routerIP, podIP, protoICMP, icmpError(11, 0, outbound)), tcActUnspec},
		{"unreachable about an unknown flow", true, frame(peerIP, podIP, protoICMP, icmpError(3, 3, otherFlow)), tcActShot},
		{"inbound query", true, ether(etherTypeIPv4, inbound), tcActUnspec},
		{"pod answers port unreachable", false, frame(podIP, peerIP, protoICMP, icmpError(3, 3, inbound)), tcActUnspec},
		{"ipv6 syn", false, ether(etherTypeIPv6, outbound6), tcActUnspec},
		{"ipv6 packet too big", true, frame(peerIP6, podIP6, protoICMPv6, icmpError(2, 0, outbound6)), tcActUnspec},
		{"ipv6 unreachable about an unknown flow", true, frame(peerIP6, podIP6, protoICMPv6, icmpError(1, 4, otherFlow6)), tcActShot},
	})
	if got := d.counter(PalisadeCounterCOUNTER_CT_RELATED); got != 4 {
		t.Errorf("related counter = %d, want 4", got)
	}
}

func TestRevisionBumpRejudgesFlows(t *testing.T) {
	syn := frame(podIP, peerIP, protoTCP, tcp(40000, 80))
	reply := frame(peerIP, podIP, protoTCP, tcp(80, 40000))

	t.Run("still allowed", func(t *testing.T) {
		d := newCluster(t, isolatedAll, Config{})
		allowEgressTCP80(d)
		d.play(t, []step{{"syn", false, syn, tcActUnspec}})
		d.endpoint(podID, isolatedAll, 2)
		d.play(t, []step{{"reply", true, reply, tcActUnspec}, {"ack", false, syn, tcActUnspec}})
		if got := d.counter(PalisadeCounterCOUNTER_CT_REVALIDATED); got != 1 {
			t.Errorf("revalidated = %d, want 1", got)
		}
	})
	t.Run("withdrawn without a bump keeps established flows", func(t *testing.T) {
		d := newCluster(t, isolatedAll, Config{})
		allowEgressTCP80(d)
		d.play(t, []step{{"syn", false, syn, tcActUnspec}})
		d.revoke(podID, peerID, egress, protoTCP, 80)
		d.play(t, []step{{"reply", true, reply, tcActUnspec}})
	})
	for _, first := range []step{{"reply", true, reply, tcActShot}, {"ack", false, syn, tcActShot}} {
		t.Run("withdrawn stops the next "+first.name, func(t *testing.T) {
			d := newCluster(t, isolatedAll, Config{})
			allowEgressTCP80(d)
			d.play(t, []step{{"syn", false, syn, tcActUnspec}})
			d.events()
			d.revoke(podID, peerID, egress, protoTCP, 80)
			d.endpoint(podID, isolatedAll, 2)
			d.play(t, []step{first, {"reply after", true, reply, tcActShot}, {"ack after", false, syn, tcActShot}})
			evs := d.events()
			if len(evs) == 0 || PalisadeReason(evs[0].Reason) != PalisadeReasonREASON_REVOKED {
				t.Errorf("events %+v, want REVOKED first", evs)
			}
			if got := d.counter(PalisadeCounterCOUNTER_CT_REVOKED); got != 1 {
				t.Errorf("revoked = %d, want 1", got)
			}
			if n := d.conntrackLen(); n != 0 {
				t.Errorf("%d conntrack entries left, want 0", n)
			}
		})
	}
	t.Run("identity change of the peer", func(t *testing.T) {
		d := newCluster(t, isolatedAll, Config{})
		allowEgressTCP80(d)
		d.play(t, []step{{"syn", false, syn, tcActUnspec}})
		d.identity(peerIP+"/32", otherID)
		d.endpoint(podID, isolatedAll, 2)
		d.play(t, []step{{"reply", true, reply, tcActShot}})
	})
	t.Run("audit admissions end with audit", func(t *testing.T) {
		d := newCluster(t, isolatedAll|auditMode, Config{})
		d.play(t, []step{
			{"syn in audit", false, syn, tcActUnspec},
			{"reply in audit", true, reply, tcActUnspec},
		})
		if evs := d.events(); len(evs) != 1 {
			t.Errorf("got %d events in audit mode, want one per flow: %+v", len(evs), evs)
		}
		d.endpoint(podID, isolatedAll, 1) // flag change without a bump
		d.play(t, []step{{"reply enforced", true, reply, tcActShot}})
	})
}

func TestServiceTrafficIsDeferred(t *testing.T) {
	const clusterIP = "10.96.0.10"
	d := newCluster(t, isolatedAll, Config{})
	d.service("10.96.0.0/12")
	ret, mark := d.run(d.objs.PalisadeFromPod, frame(podIP, clusterIP, protoUDP, udp(33333, 53)))
	if ret != tcActUnspec || mark&0x08000000 == 0 {
		t.Errorf("to a service: verdict %#x mark %#x, want passed with mark 0x08000000", ret, mark)
	}
	ret, mark = d.run(d.objs.PalisadeFromPod, frame(podIP, clusterIP, protoUDP, udp(33333, 53)))
	if ret != tcActUnspec || mark&0x08000000 == 0 {
		t.Errorf("again: verdict %#x mark %#x, want passed and marked", ret, mark)
	}
	d.play(t, []step{
		// No post-DNAT hook judged the flow: its deferred entry is
		// unconfirmed, and the pod's egress is isolated.
		{"reply from the service address, unconfirmed", true, frame(clusterIP, podIP, protoUDP, udp(53, 33333)), tcActShot},
		{"not a service", false, frame(podIP, peerIP, protoUDP, udp(33333, 53)), tcActShot},
		// kube-proxy rejecting a service without endpoints.
		{"port unreachable from the node", true, frame(hostIP, podIP, protoICMP,
			icmpError(3, 3, ipv4Packet(netip.MustParseAddr(podIP), netip.MustParseAddr(clusterIP), protoUDP, 0, udp(33333, 53)))), tcActUnspec},
	})
	if got := d.counter(PalisadeCounterCOUNTER_DEFERRED); got != 1 {
		t.Errorf("deferred = %d, want 1", got)
	}
}

func TestCustomDeferMark(t *testing.T) {
	d := newCluster(t, isolatedAll, Config{DeferMark: 0x100})
	d.service("10.96.0.0/12")
	if _, mark := d.run(d.objs.PalisadeFromPod, frame(podIP, "10.96.0.1", protoTCP, tcp(1, 443))); mark != 0x100 {
		t.Errorf("mark = %#x, want 0x100", mark)
	}
}
