package bpf

import (
	"net/netip"
	"testing"
)

// Identities and addresses shared by the datapath tests.
const (
	podID   = 300
	peerID  = 400
	otherID = 500
	cidrID  = 600

	podIP    = "10.0.0.1"
	peerIP   = "10.0.0.2"
	otherIP  = "10.0.0.3"
	hostIP   = "192.168.1.1"
	worldIP  = "198.51.100.7"
	cidrIP   = "203.0.113.9"
	podIP6   = "fd00::1"
	peerIP6  = "fd00::2"
	routerIP = "10.0.0.254"
)

// newCluster loads the datapath with the test pod on podIfindex and the
// address plan above in ip_identity.
func newCluster(tb testing.TB, flags uint32, cfg Config) *datapath {
	if cfg.Conntrack == 0 {
		cfg.Conntrack = 4096 // the preallocated default makes each load slow
	}
	d := newDatapath(tb, cfg)
	d.endpoint(podID, flags, 1)
	for prefix, id := range map[string]uint32{
		podIP + "/32":    podID,
		peerIP + "/32":   peerID,
		otherIP + "/32":  otherID,
		hostIP + "/32":   uint32(PalisadeIdentityIDENTITY_HOST),
		"203.0.113.0/24": cidrID,
		podIP6 + "/128":  podID,
		peerIP6 + "/128": peerID,
	} {
		d.identity(prefix, id)
	}
	return d
}

type verdictCase struct {
	name  string
	flags uint32
	setup func(d *datapath)
	// toPod sends the frame towards the pod (its ingress); otherwise it
	// comes from the pod (its egress).
	toPod  bool
	frame  []byte
	want   uint32
	event  PalisadeEventVerdict // 0: no event expected
	reason PalisadeReason
}

func allowEgressTCP80(d *datapath) { d.allow(podID, peerID, egress, protoTCP, 80, 7) }

func truncate(b []byte, n int) []byte { return b[:n] }

func TestFirstPacketVerdicts(t *testing.T) {
	const (
		allowed = PalisadeEventVerdictEVENT_ALLOWED_NEW
		dropped = PalisadeEventVerdictEVENT_DROP
		audited = PalisadeEventVerdictEVENT_AUDIT_WOULD_DROP
	)
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	hopByHop := ipv6Ext{kind: 0, body: make([]byte, 6)}
	destOpts := ipv6Ext{kind: 60, body: make([]byte, 14)}
	routing := ipv6Ext{kind: 43, body: []byte{0, 0, 0, 0, 0, 0}}
	firstFrag := ipv6Ext{kind: 44, body: []byte{0x00, 0x01, 0, 0, 0, 9}} // offset 0, more fragments
	laterFrag := ipv6Ext{kind: 44, body: []byte{0x00, 0xb8, 0, 0, 0, 9}} // offset 23*8
	badTotLen := ether(etherTypeIPv4, ipv4Packet(v4(podIP), v4(peerIP), protoTCP, 0, tcp(40000, 80)))
	badTotLen[14+3] = 200 // claims more bytes than the frame has
	badIHL := frame(podIP, peerIP, protoTCP, tcp(40000, 80))
	badIHL[14] = 0x44
	longIHL := frame(podIP, peerIP, protoTCP, tcp(40000, 80))
	longIHL[14] = 0x4f // 60 bytes of header in a 40-byte packet
	badVersion := frame(podIP, peerIP, protoTCP, tcp(40000, 80))
	badVersion[14] = 0x65
	shortTCP := ether(etherTypeIPv4, ipv4Packet(v4(podIP), v4(peerIP), protoTCP, 0, tcp(40000, 80)[:8]))
	shortExt := ether(etherTypeIPv6, truncate(ipv6Packet(v4(podIP6), v4(peerIP6), protoTCP, []ipv6Ext{destOpts}, nil), 44))
	shortExt[14+5] = 4 // payload length matches what is there

	cases := []verdictCase{
		{name: "tcp egress allowed by exact port", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(podIP, peerIP, protoTCP, tcp(40000, 80)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "tcp egress to another port dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(podIP, peerIP, protoTCP, tcp(40000, 81)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "tcp egress to another peer dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(podIP, otherIP, protoTCP, tcp(40000, 80)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "egress not isolated passes", flags: isolatedIn,
			frame: frame(podIP, otherIP, protoTCP, tcp(40000, 80)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_NOT_ISOLATED},
		{name: "ingress not isolated passes", flags: isolatedOut,
			frame: frame(otherIP, podIP, protoTCP, tcp(40000, 22)), toPod: true, want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_NOT_ISOLATED},
		{name: "tcp ingress allowed", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, peerID, ingress, protoTCP, 8080, 8) },
			frame: frame(peerIP, podIP, protoTCP, tcp(5555, 8080)), toPod: true, want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "ingress rule does not open egress", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, peerID, ingress, protoTCP, 8080, 8) },
			frame: frame(podIP, peerIP, protoTCP, tcp(5555, 8080)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "tcp ingress dropped", flags: isolatedIn,
			frame: frame(peerIP, podIP, protoTCP, tcp(5555, 8080)), toPod: true, want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "udp allowed", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, peerID, egress, protoUDP, 53, 9) },
			frame: frame(podIP, peerIP, protoUDP, udp(40000, 53)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "udp to a tcp-only port dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(podIP, peerIP, protoUDP, udp(40000, 80)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "sctp allowed", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, peerID, egress, protoSCTP, 3868, 10) },
			frame: frame(podIP, peerIP, protoSCTP, sctp(40000, 3868)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "sctp to a tcp-only port dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(podIP, peerIP, protoSCTP, sctp(40000, 80)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "ipv6 tcp allowed", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(podIP6, peerIP6, protoTCP, tcp(40000, 80)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "ipv6 tcp dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(podIP6, peerIP6, protoTCP, tcp(40000, 443)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "ipv6 through extension headers allowed", flags: isolatedAll, setup: allowEgressTCP80,
			frame: ether(etherTypeIPv6, ipv6Packet(v4(podIP6), v4(peerIP6), protoTCP, []ipv6Ext{hopByHop, destOpts, routing}, tcp(40000, 80))),
			want:  tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "ipv6 through extension headers judged by port", flags: isolatedAll, setup: allowEgressTCP80,
			frame: ether(etherTypeIPv6, ipv6Packet(v4(podIP6), v4(peerIP6), protoTCP, []ipv6Ext{hopByHop, destOpts}, tcp(40000, 81))),
			want:  tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "ipv6 first fragment judged by port", flags: isolatedAll, setup: allowEgressTCP80,
			frame: ether(etherTypeIPv6, ipv6Packet(v4(podIP6), v4(peerIP6), protoTCP, []ipv6Ext{firstFrag}, tcp(40000, 80))),
			want:  tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "ipv6 later fragment without its first dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: ether(etherTypeIPv6, ipv6Packet(v4(podIP6), v4(peerIP6), protoTCP, []ipv6Ext{laterFrag}, make([]byte, 16))),
			want:  tcActShot, event: dropped, reason: PalisadeReasonREASON_FRAGMENT},
		{name: "ipv6 later fragment without its first passes where open", flags: isolatedIn,
			frame: ether(etherTypeIPv6, ipv6Packet(v4(podIP6), v4(peerIP6), protoTCP, []ipv6Ext{laterFrag}, make([]byte, 16))),
			want:  tcActUnspec},
		{name: "ipv6 too many extension headers dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: ether(etherTypeIPv6, ipv6Packet(v4(podIP6), v4(peerIP6), protoTCP, []ipv6Ext{destOpts, destOpts, destOpts, destOpts, destOpts, destOpts, destOpts}, tcp(40000, 80))),
			want:  tcActShot, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "ipv6 truncated extension header dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: shortExt, want: tcActShot, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "ipv4 first fragment judged by port", flags: isolatedAll, setup: allowEgressTCP80,
			frame: ether(etherTypeIPv4, ipv4Packet(v4(podIP), v4(peerIP), protoTCP, 0x2000, tcp(40000, 80))),
			want:  tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "ipv4 later fragment without its first dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: ether(etherTypeIPv4, ipv4Packet(v4(podIP), v4(peerIP), protoTCP, 0x0010, make([]byte, 16))),
			want:  tcActShot, event: dropped, reason: PalisadeReasonREASON_FRAGMENT},
		// (BPF_PROG_TEST_RUN itself refuses IPv4 frames shorter than an
		// IPv4 header, so the cut falls inside the options.)
		{name: "ipv4 options past the end dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: longIHL, want: tcActShot, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "ipv4 total length past the frame dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: badTotLen, want: tcActShot, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "ipv4 header length below 20 dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: badIHL, want: tcActShot, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "ipv4 frame with version 6 dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: badVersion, want: tcActShot, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "tcp header cut short dropped", flags: isolatedAll, setup: allowEgressTCP80,
			frame: shortTCP, want: tcActShot, event: dropped, reason: PalisadeReasonREASON_MALFORMED},
		{name: "truncated packet passes where open", flags: isolatedIn,
			frame: shortTCP, want: tcActUnspec},
		{name: "unknown protocol dropped where isolated", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(podIP, peerIP, protoGRE, make([]byte, 8)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "unknown protocol allowed by an any-protocol rule", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, peerID, egress, 0, 0, 11) },
			frame: frame(podIP, peerIP, protoGRE, make([]byte, 8)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "any port of a protocol", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, peerID, egress, protoTCP, 0, 12) },
			frame: frame(podIP, peerIP, protoTCP, tcp(40000, 12345)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "any port of tcp is not udp", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, peerID, egress, protoTCP, 0, 12) },
			frame: frame(podIP, peerIP, protoUDP, udp(40000, 12345)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "any peer", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, 0, egress, protoTCP, 80, 13) },
			frame: frame(podIP, otherIP, protoTCP, tcp(40000, 80)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "any peer covers unknown addresses", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, 0, egress, protoTCP, 80, 13) },
			frame: frame(podIP, worldIP, protoTCP, tcp(40000, 80)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "any protocol", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, peerID, egress, 0, 0, 14) },
			frame: frame(podIP, peerIP, protoUDP, udp(40000, 9)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "cidr identity by longest prefix", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, cidrID, egress, protoTCP, 443, 15) },
			frame: frame(podIP, cidrIP, protoTCP, tcp(40000, 443)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "unknown address is world", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, uint32(PalisadeIdentityIDENTITY_WORLD), egress, protoTCP, 443, 16) },
			frame: frame(podIP, worldIP, protoTCP, tcp(40000, 443)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "ingress from the node always allowed", flags: isolatedAll,
			frame: frame(hostIP, podIP, protoTCP, tcp(40000, 8080)), toPod: true, want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_HOST},
		{name: "egress to the node needs a policy", flags: isolatedAll,
			frame: frame(podIP, hostIP, protoTCP, tcp(40000, 10250)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "icmp echo dropped where isolated", flags: isolatedAll, setup: allowEgressTCP80,
			frame: frame(podIP, peerIP, protoICMP, icmpEcho(8, 77, 1)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "icmp echo allowed by an any-protocol rule", flags: isolatedAll, setup: func(d *datapath) { d.allow(podID, peerID, egress, 0, 0, 17) },
			frame: frame(podIP, peerIP, protoICMP, icmpEcho(8, 77, 1)), want: tcActUnspec, event: allowed, reason: PalisadeReasonREASON_POLICY_ALLOW},
		{name: "other ethertypes dropped where isolated", flags: isolatedAll,
			frame: ether(etherTypeLLDP, make([]byte, 32)), want: tcActShot, event: dropped, reason: PalisadeReasonREASON_NON_IP},
		{name: "other ethertypes pass where open", flags: isolatedIn,
			frame: ether(etherTypeLLDP, make([]byte, 32)), want: tcActUnspec},
		{name: "audit mode passes and reports", flags: isolatedAll | auditMode, setup: allowEgressTCP80,
			frame: frame(podIP, peerIP, protoTCP, tcp(40000, 81)), want: tcActUnspec, event: audited, reason: PalisadeReasonREASON_POLICY_MISS},
		{name: "audit mode passes malformed packets and reports", flags: isolatedAll | auditMode,
			frame: shortTCP, want: tcActUnspec, event: audited, reason: PalisadeReasonREASON_MALFORMED},
	}
	shared := newCluster(t, 0, Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &datapath{tb: t, objs: shared.objs}
			d.clear()
			d.endpoint(podID, c.flags, 1)
			if c.setup != nil {
				c.setup(d)
			}
			var got uint32
			if c.toPod {
				got = d.toPod(c.frame)
			} else {
				got = d.fromPod(c.frame)
			}
			if got != c.want {
				t.Errorf("verdict = %#x, want %#x", got, c.want)
			}
			evs := d.events()
			switch {
			case c.event == 0 && len(evs) != 0:
				t.Errorf("got events %+v, want none", evs)
			case c.event != 0 && len(evs) != 1:
				t.Errorf("got %d events %+v, want one", len(evs), evs)
			case c.event != 0:
				if got := PalisadeEventVerdict(evs[0].Verdict); got != c.event {
					t.Errorf("event verdict = %d, want %d", got, c.event)
				}
				if got := PalisadeReason(evs[0].Reason); got != c.reason {
					t.Errorf("event reason = %d, want %d", got, c.reason)
				}
			}
		})
	}
}

func TestUnmanagedInterfacePasses(t *testing.T) {
	d := newDatapath(t, Config{})
	for _, prog := range []func([]byte) uint32{d.fromPod, d.toPod} {
		if got := prog(frame(podIP, peerIP, protoTCP, tcp(40000, 80))); got != tcActUnspec {
			t.Errorf("verdict = %#x, want %#x", got, uint32(tcActUnspec))
		}
	}
	if n := d.counter(PalisadeCounterCOUNTER_UNMANAGED); n != 2 {
		t.Errorf("unmanaged counter = %d, want 2", n)
	}
	if evs := d.events(); len(evs) != 0 {
		t.Errorf("events %+v, want none", evs)
	}
}
