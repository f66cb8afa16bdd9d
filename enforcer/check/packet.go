package check

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// probeSourcePort is the probe packets' source port. Each probe's flow is
// removed from conntrack right after it is judged, so one port serves all.
const probeSourcePort = 40000

// probeFrame builds the first packet of a new connection as the pod's
// veth carries it: Ethernet, IPv4 or IPv6, and a TCP SYN, a UDP datagram
// or an SCTP common header. Checksums stay zero; the datapath never reads
// them.
func probeFrame(src, dst netip.Addr, proto policy.Protocol, sport, dport uint16) ([]byte, error) {
	var l4 []byte
	switch proto {
	case policy.ProtocolTCP:
		l4 = make([]byte, 20)
		l4[12] = 5 << 4 // data offset: 5 words
		l4[13] = 0x02   // SYN
	case policy.ProtocolUDP:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[4:6], 8)
	case policy.ProtocolSCTP:
		l4 = make([]byte, 12)
	default:
		return nil, fmt.Errorf("build probe packet: protocol %s has no ports", proto)
	}
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)

	frame := make([]byte, 14, 14+40+len(l4))
	copy(frame[0:6], []byte{0x02, 0, 0, 0, 0, 2})
	copy(frame[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	switch {
	case src.Is4() && dst.Is4():
		binary.BigEndian.PutUint16(frame[12:14], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:4], uint16(20+len(l4)))
		ip[8] = 64
		ip[9] = uint8(proto)
		s, d := src.As4(), dst.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		frame = append(frame, ip...)
	case src.Is6() && dst.Is6():
		binary.BigEndian.PutUint16(frame[12:14], 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:6], uint16(len(l4)))
		ip[6] = uint8(proto)
		ip[7] = 64
		s, d := src.As16(), dst.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
		frame = append(frame, ip...)
	default:
		return nil, fmt.Errorf("build probe packet: %s and %s are of different families", src, dst)
	}
	return append(frame, l4...), nil
}
