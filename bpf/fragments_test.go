package bpf

import (
	"net/netip"
	"testing"
)

func TestFragmentsAreJudgedAsTheirFlow(t *testing.T) {
	v4, v6 := netip.MustParseAddr, netip.MustParseAddr
	const moreFragments = 0x2000
	// A fragmented UDP reply: only the first piece has the UDP header.
	first := func(src, dst string, sport, dport uint16) []byte {
		return ether(etherTypeIPv4, ipv4Packet(v4(src), v4(dst), protoUDP, moreFragments, udp(sport, dport)))
	}
	later := func(src, dst string) []byte {
		return ether(etherTypeIPv4, ipv4Packet(v4(src), v4(dst), protoUDP, 0x0003, make([]byte, 24)))
	}
	frag6 := func(offsetFlags uint16, l4 []byte) []byte {
		h := ipv6Ext{kind: 44, body: []byte{byte(offsetFlags >> 8), byte(offsetFlags), 0, 0, 0x12, 0x34}}
		return ether(etherTypeIPv6, ipv6Packet(v6(peerIP6), v6(podIP6), protoUDP, []ipv6Ext{h}, l4))
	}

	d := newCluster(t, isolatedAll, Config{})
	d.allow(podID, peerID, egress, protoUDP, 53, 1)
	d.play(t, []step{
		{"query", false, frame(podIP, peerIP, protoUDP, udp(33333, 53)), tcActUnspec},
		{"first piece of the answer", true, first(peerIP, podIP, 53, 33333), tcActUnspec},
		{"later piece of the answer", true, later(peerIP, podIP), tcActUnspec},
		{"later piece from another address", true, later(otherIP, podIP), tcActShot},
		{"query over ipv6", false, frame(podIP6, peerIP6, protoUDP, udp(33333, 53)), tcActUnspec},
		{"first ipv6 piece", true, frag6(0x0001, udp(53, 33333)), tcActUnspec},
		{"later ipv6 piece", true, frag6(0x00b9, make([]byte, 16)), tcActUnspec},
	})
	if got := d.counter(PalisadeCounterCOUNTER_FRAGMENT_MATCHED); got != 2 {
		t.Errorf("matched fragments = %d, want 2", got)
	}

	d = newCluster(t, isolatedAll, Config{})
	d.play(t, []step{
		{"first piece of an unrequested datagram", true, first(peerIP, podIP, 53, 33333), tcActShot},
		{"its later piece", true, later(peerIP, podIP), tcActShot},
	})
	evs := d.events()
	if len(evs) != 2 || evs[1].Sport != 53 || evs[1].Dport != 33333 {
		t.Errorf("events %+v, want the later piece reported with its datagram's ports", evs)
	}
}
