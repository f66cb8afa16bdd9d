package bpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// FuzzFramesOnAnIsolatedEndpoint feeds arbitrary frames through both real
// programs for an endpoint isolated both ways with no allow at all (and
// no identities: every peer is world, no address is the node's). Nothing
// may pass, in either direction, but what the design passes on purpose,
// which expectedPass spells out: ARP and neighbour discovery in exactly
// the shape resolving the endpoint's own addresses needs. A frame the
// kernel refuses to run (shorter than an Ethernet header, or an IPv4 frame
// shorter than its header) is no verdict and is skipped.
func FuzzFramesOnAnIsolatedEndpoint(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	d := newDatapath(f, Config{Conntrack: 4096})
	d.endpoint(podID, isolatedAll, 1)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > 1514 {
			frame = frame[:1514]
		}
		for _, c := range []struct {
			dir  PalisadeDirection
			prog *ebpf.Program
		}{{egress, d.objs.PalisadeFromPod}, {ingress, d.objs.PalisadeToPod}} {
			var out skbContext
			ret, err := c.prog.Run(&ebpf.RunOptions{Data: frame, Context: skbContext{}, ContextOut: &out})
			if err != nil {
				continue // refused by BPF_PROG_TEST_RUN: not a frame a device delivers
			}
			want := uint32(tcActShot)
			if expectedPass(c.dir, frame) {
				want = tcActUnspec
			}
			if ret != want {
				t.Fatalf("direction %d: verdict %#x, want %#x for frame %x", c.dir, ret, want, frame)
			}
			if out.Mark != 0 {
				t.Fatalf("direction %d: mark %#x set on frame %x", c.dir, out.Mark, frame)
			}
		}
	})
}

// expectedPass is the only traffic an isolated endpoint with no allow
// passes: address resolution for its own addresses (podIP, podIP6), as
// bpf/include/neighbour.h has it, written again independently.
func expectedPass(dir PalisadeDirection, f []byte) bool {
	if len(f) < 14 {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case etherTypeARP:
		return arpPasses(dir, f)
	case etherTypeIPv6:
		return ndPasses(dir, f)
	}
	return false
}

func arpPasses(dir PalisadeDirection, f []byte) bool {
	if len(f) < 42 {
		return false
	}
	a := f[14:42]
	op := binary.BigEndian.Uint16(a[6:8])
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 || a[4] != 6 || a[5] != 4 || (op != 1 && op != 2) {
		return false
	}
	own := addr16(podIP)
	spa, tpa := a[14:18], a[24:28]
	if dir == ingress {
		return bytes.Equal(tpa, own[:4])
	}
	switch {
	case len(f) == 42:
	case len(f) == 60 && bytes.Equal(f[42:], make([]byte, 18)):
	default:
		return false
	}
	return bytes.Equal(spa, own[:4]) || op == 1 && bytes.Equal(spa, []byte{0, 0, 0, 0}) && bytes.Equal(tpa, own[:4])
}

func ndPasses(dir PalisadeDirection, f []byte) bool {
	const l4 = 14 + 40
	if len(f) < l4 || f[14]>>4 != 6 || f[14+6] != protoICMPv6 {
		return false // no IPv6 header, or extension headers first
	}
	end := l4 + int(binary.BigEndian.Uint16(f[18:20]))
	if end > len(f) || end < l4+8 {
		return false
	}
	hop, typ, code := f[14+7], f[l4], f[l4+1]
	src := netip.AddrFrom16([16]byte(f[22:38]))
	if hop != 255 || code != 0 {
		return false
	}
	own := netip.MustParseAddr(podIP6)
	opts := l4 + 8
	var target netip.Addr
	if typ == 135 || typ == 136 {
		if opts+16 > end {
			return false
		}
		target = netip.AddrFrom16([16]byte(f[opts : opts+16]))
		opts += 16
	}
	if dir == ingress {
		return typ == 134 || typ == 136 || typ == 135 && (target.IsLinkLocalUnicast() || target == own)
	}
	if typ != 133 && typ != 135 && typ != 136 {
		return false
	}
	switch {
	case src.IsUnspecified():
		if typ == 136 {
			return false
		}
	case !src.IsLinkLocalUnicast() && src != own:
		return false
	}
	if (typ == 136 || typ == 135 && src.IsUnspecified()) && !target.IsLinkLocalUnicast() && target != own {
		return false
	}
	for range 4 {
		if opts >= end {
			break
		}
		if opts+8 > end || f[opts+1] != 1 || (f[opts] != 1 && f[opts] != 2 && f[opts] != 14) {
			return false
		}
		opts += 8
	}
	return opts == end
}

// fuzzSeeds: frames of every kind the programs tell apart, passing and
// not, so that the fuzzer starts at each branch.
func fuzzSeeds() [][]byte {
	v4, v6 := netip.MustParseAddr, netip.MustParseAddr
	return [][]byte{
		frame(podIP, peerIP, protoTCP, tcp(40000, 80)),
		frame(peerIP, podIP, protoUDP, udp(53, 40000)),
		frame(podIP6, peerIP6, protoTCP, tcp(40000, 443)),
		frame(podIP, peerIP, protoICMP, icmpEcho(8, 1, 1)),
		frame(podIP, peerIP, protoICMP, icmpError(3, 3, ipPacket(peerIP, podIP, protoUDP, udp(1, 2)))),
		ether(etherTypeIPv4, ipv4Packet(v4(podIP), v4(peerIP), protoUDP, 0x2000, udp(1, 2))),
		ether(etherTypeIPv6, ipv6Packet(v6(podIP6), v6(peerIP6), protoTCP, []ipv6Ext{{kind: 0, body: make([]byte, 6)}}, tcp(1, 2))),
		ether(etherTypeLLDP, make([]byte, 32)),
		arpFrame(1, podIP, routerIP),
		arpFrame(2, peerIP, routerIP),
		arpFrame(1, "0.0.0.0", podIP),
		arpFrame(1, podIP, routerIP, make([]byte, 18)...),
		ndFrame(linkLocal, "ff02::1:ff00:2", 255, 135, peerIP6, ndOption(optSLLA)),
		ndFrame("::", "ff02::1:ff00:1", 255, 135, podIP6, ndOption(optNonce)),
		ndFrame(linkLocal, allNodes, 255, 136, podIP6, ndOption(optTLLA)),
		ndFrame(linkLocal, allRouters, 255, 133, "", ndOption(optSLLA)),
		ndFrame(linkLocal, allNodes, 255, 134, "", make([]byte, 8)),
		ndFrame(linkLocal, linkLocal2, 255, 137, peerIP6, net16(peerIP6)),
		ndFrame(linkLocal, mldv2, 1, 143, "", make([]byte, 4)),
		ndFrame(linkLocal, linkLocal2, 64, 135, linkLocal2),
		ndFrame(podIP6, peerIP6, 255, 135, peerIP6, []byte("data")),
	}
}
