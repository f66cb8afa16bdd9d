package bpf

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built frames for Program.Run: Ethernet, IPv4/IPv6, and just enough
// of each L4 header for the datapath to read. Checksums are left zero: the
// programs never look at them.

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	etherTypeLLDP = 0x88cc

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoGRE    = 47
	protoICMPv6 = 58
	protoSCTP   = 132
)

func ether(etherType uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:14], etherType)
	return append(f, payload...)
}

// ipPacket wraps l4 in an IPv4 or IPv6 header, by the family of src.
func ipPacket(src, dst string, proto uint8, l4 []byte) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	if s.Is4() {
		return ipv4Packet(s, d, proto, 0, l4)
	}
	return ipv6Packet(s, d, proto, nil, l4)
}

// frame is a whole Ethernet frame carrying ipPacket(src, dst, proto, l4).
func frame(src, dst string, proto uint8, l4 []byte) []byte {
	if netip.MustParseAddr(src).Is4() {
		return ether(etherTypeIPv4, ipPacket(src, dst, proto, l4))
	}
	return ether(etherTypeIPv6, ipPacket(src, dst, proto, l4))
}

// ipv4Packet: fragOff is the raw flags+offset field (0x2000 = more fragments).
func ipv4Packet(src, dst netip.Addr, proto uint8, fragOff uint16, l4 []byte) []byte {
	p := make([]byte, 20, 20+len(l4))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(p[4:6], 0x1234)
	binary.BigEndian.PutUint16(p[6:8], fragOff)
	p[8] = 64
	p[9] = proto
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	return append(p, l4...)
}

// ipv6Ext is one extension header: its type and its body after the
// next-header/length bytes (padded to a multiple of 8 with those two).
type ipv6Ext struct {
	kind uint8
	body []byte
}

func ipv6Packet(src, dst netip.Addr, proto uint8, exts []ipv6Ext, l4 []byte) []byte {
	var chain []byte
	next := proto
	for i := len(exts) - 1; i >= 0; i-- {
		e := exts[i]
		h := append([]byte{next, 0}, e.body...)
		if e.kind == 44 { // fragment header: fixed 8 bytes, length field reserved
			h = h[:8]
		} else {
			for len(h)%8 != 0 {
				h = append(h, 0)
			}
			h[1] = uint8(len(h)/8 - 1)
		}
		chain = append(h, chain...)
		next = e.kind
	}
	payload := append(chain, l4...)
	p := make([]byte, 40, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(len(payload)))
	p[6] = next
	p[7] = 64
	s, d := src.As16(), dst.As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	return append(p, payload...)
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// tcp is a SYN: the packet that opens a connection.
func tcp(sport, dport uint16) []byte { return tcpFlags(sport, dport, tcpSYN) }

func tcpFlags(sport, dport uint16, flags uint8) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:2], sport)
	binary.BigEndian.PutUint16(h[2:4], dport)
	h[12] = 5 << 4
	h[13] = flags
	return h
}

func udp(sport, dport uint16) []byte {
	h := make([]byte, 8, 12)
	binary.BigEndian.PutUint16(h[0:2], sport)
	binary.BigEndian.PutUint16(h[2:4], dport)
	binary.BigEndian.PutUint16(h[4:6], 12)
	return append(h, 'p', 'i', 'n', 'g')
}

func sctp(sport, dport uint16) []byte {
	h := make([]byte, 12)
	binary.BigEndian.PutUint16(h[0:2], sport)
	binary.BigEndian.PutUint16(h[2:4], dport)
	return h
}

func icmpMessage(typ, code uint8, rest []byte) []byte {
	return append([]byte{typ, code, 0, 0}, rest...)
}

func icmpEcho(typ uint8, id, seq uint16) []byte {
	var rest [4]byte
	binary.BigEndian.PutUint16(rest[0:2], id)
	binary.BigEndian.PutUint16(rest[2:4], seq)
	return icmpMessage(typ, 0, rest[:])
}

// icmpError reports on the packet inner (an IP packet), quoting its header
// and the first 8 bytes after it as routers do.
func icmpError(typ, code uint8, inner []byte) []byte {
	hdr := 20
	if inner[0]>>4 == 6 {
		hdr = 40
	}
	quote := inner
	if len(quote) > hdr+8 {
		quote = quote[:hdr+8]
	}
	return icmpMessage(typ, code, append([]byte{0, 0, 0, 0}, quote...))
}
