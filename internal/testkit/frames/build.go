package frames

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// IP protocol numbers.
const (
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Broadcast is the Ethernet broadcast address.
var Broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Ethernet is a frame from src to dst carrying payload.
func Ethernet(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
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

// IP wraps l4 in an IPv4 (with its header checksum) or IPv6 header, by
// the family of src, in an Ethernet frame, and fills the L4 checksum at
// csumOff over the pseudo-header.
func IP(dst, srcMAC net.HardwareAddr, src, to netip.Addr, proto, hopLimit uint8, l4 []byte, csumOff int) []byte {
	pseudo := checksum(0, src.AsSlice())
	pseudo = checksum(pseudo, to.AsSlice())
	pseudo += uint32(proto) + uint32(len(l4))
	binary.BigEndian.PutUint16(l4[csumOff:], 0)
	binary.BigEndian.PutUint16(l4[csumOff:], fold(checksum(pseudo, l4)))
	if src.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:4], uint16(20+len(l4)))
		h[8] = hopLimit
		h[9] = proto
		copy(h[12:16], src.AsSlice())
		copy(h[16:20], to.AsSlice())
		binary.BigEndian.PutUint16(h[10:12], fold(checksum(0, h)))
		return Ethernet(dst, srcMAC, 0x0800, append(h, l4...))
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(l4)))
	h[6] = proto
	h[7] = hopLimit
	copy(h[8:24], src.AsSlice())
	copy(h[24:40], to.AsSlice())
	return Ethernet(dst, srcMAC, 0x86dd, append(h, l4...))
}

// TCPSYN is a TCP SYN from src:sport to to:dport.
func TCPSYN(dst, srcMAC net.HardwareAddr, src, to netip.Addr, sport, dport uint16) []byte {
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	binary.BigEndian.PutUint32(l4[4:8], 0x1000)
	l4[12] = 5 << 4
	l4[13] = 0x02
	binary.BigEndian.PutUint16(l4[14:16], 64240)
	return IP(dst, srcMAC, src, to, ProtoTCP, 64, l4, 16)
}

// UDP is a datagram carrying data from src:sport to to:dport.
func UDP(dst, srcMAC net.HardwareAddr, src, to netip.Addr, sport, dport uint16, data []byte) []byte {
	l4 := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	binary.BigEndian.PutUint16(l4[4:6], uint16(8+len(data)))
	return IP(dst, srcMAC, src, to, ProtoUDP, 64, append(l4, data...), 6)
}

// ND is an ICMPv6 message of type typ, code 0: 4 reserved bytes (none for
// a router advertisement, whose fixed fields come in rest), the target
// (nil for none), then rest. dst nil: the multicast MAC of to.
func ND(dst, srcMAC net.HardwareAddr, src, to netip.Addr, hopLimit, typ uint8, target []byte, rest ...[]byte) []byte {
	l4 := []byte{typ, 0, 0, 0, 0, 0, 0, 0}
	if typ == 134 {
		l4 = l4[:4]
	}
	l4 = append(l4, target...)
	for _, r := range rest {
		l4 = append(l4, r...)
	}
	if dst == nil {
		dst = MulticastMAC(to)
	}
	return IP(dst, srcMAC, src, to, ProtoICMPv6, hopLimit, l4, 2)
}

// LinkLayerOption is a source (1) or target (2) link-layer address option.
func LinkLayerOption(typ uint8, mac net.HardwareAddr) []byte { return append([]byte{typ, 1}, mac...) }

// PrefixInformation is a router advertisement's prefix option, on-link
// and autonomous.
func PrefixInformation(p netip.Prefix) []byte {
	o := make([]byte, 32)
	o[0], o[1], o[2], o[3] = 3, 4, byte(p.Bits()), 0xc0
	binary.BigEndian.PutUint32(o[4:8], 86400)
	binary.BigEndian.PutUint32(o[8:12], 14400)
	copy(o[16:32], p.Addr().AsSlice())
	return o
}

// MulticastMAC is the Ethernet address of an IPv6 multicast group.
func MulticastMAC(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// ARP is an IPv4-over-Ethernet ARP packet (op 1 request, 2 reply) whose
// sender is spa at srcMAC, for tpa.
func ARP(dst, srcMAC net.HardwareAddr, op uint16, spa, tpa netip.Addr) []byte {
	a := make([]byte, 28)
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], op)
	copy(a[8:14], srcMAC)
	copy(a[14:18], spa.AsSlice())
	copy(a[24:28], tpa.AsSlice())
	return Ethernet(dst, srcMAC, 0x0806, a)
}

// IPOf returns the source, protocol and L4 bytes of an IP frame.
func IPOf(f []byte) (src netip.Addr, proto uint8, l4 []byte, ok bool) {
	if len(f) < 14 {
		return
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x0800:
		if len(f) < 34 {
			return
		}
		ihl := int(f[14]&0xf) * 4
		if ihl < 20 || len(f) < 14+ihl {
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
