package bpf

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ipKeyFixedBits is the part of an ip_key before the address: family and
// its padding, always fully matched.
const ipKeyFixedBits = 32

// policyRangeFixedBits covers identities, direction and protocol of a
// policy_range_key: everything but the port.
const policyRangeFixedBits = 80

// NewIPKey encodes a prefix as an ip_identity or service_cidrs key. An
// IPv4-mapped IPv6 prefix is stored as IPv4, since that is how its packets
// arrive.
func NewIPKey(p netip.Prefix) (PalisadeIpKey, error) {
	if !p.IsValid() {
		return PalisadeIpKey{}, fmt.Errorf("encode ip key: invalid prefix %q", p)
	}
	addr, bits := p.Addr(), p.Bits()
	if addr.Is4In6() {
		if bits < 96 {
			return PalisadeIpKey{}, fmt.Errorf("encode ip key: %s: IPv4-mapped prefix shorter than /96", p)
		}
		addr, bits = addr.Unmap(), bits-96
	}
	k := PalisadeIpKey{Prefixlen: uint32(ipKeyFixedBits + bits)}
	if addr.Is4() {
		k.Family = uint8(PalisadeFamilyFAMILY_IPV4)
		a := addr.As4()
		copy(k.Addr[:], a[:])
	} else {
		k.Family = uint8(PalisadeFamilyFAMILY_IPV6)
		k.Addr = addr.As16()
	}
	return k, nil
}

// sourceCIDRFixedBits is the part of a source_cidr_key before the
// address: interface index, family and padding.
const sourceCIDRFixedBits = 64

// NewSourceCIDRKey encodes a range the pod behind ifindex may send from
// as a source_cidrs key. p must be masked; IPv4-mapped is stored as IPv4,
// as for NewIPKey.
func NewSourceCIDRKey(ifindex uint32, p netip.Prefix) (PalisadeSourceCidrKey, error) {
	ip, err := NewIPKey(p)
	if err != nil {
		return PalisadeSourceCidrKey{}, fmt.Errorf("encode source range: %w", err)
	}
	if p.Masked() != p {
		return PalisadeSourceCidrKey{}, fmt.Errorf("encode source range %s: host bits set", p)
	}
	return PalisadeSourceCidrKey{
		Prefixlen: ip.Prefixlen - ipKeyFixedBits + sourceCIDRFixedBits,
		Ifindex:   ifindex,
		Family:    ip.Family,
		Addr:      ip.Addr,
	}, nil
}

// PortBlock is one aligned power-of-two run of ports: Bits high bits of
// Port are fixed, the rest free.
type PortBlock struct {
	Port uint16
	Bits int
}

// PortBlocks splits the inclusive range [start, end] into the fewest
// aligned blocks (at most 30), each one LPM entry in policy_ranges.
func PortBlocks(start, end uint16) ([]PortBlock, error) {
	if start > end {
		return nil, fmt.Errorf("split port range: start %d after end %d", start, end)
	}
	var blocks []PortBlock
	for lo := uint32(start); lo <= uint32(end); {
		size := uint32(1)
		// Grow while the block stays aligned at lo and inside the range.
		for size < 1<<16 && lo%(size*2) == 0 && lo+size*2-1 <= uint32(end) {
			size *= 2
		}
		bits := 16
		for s := size; s > 1; s >>= 1 {
			bits--
		}
		blocks = append(blocks, PortBlock{Port: uint16(lo), Bits: bits})
		lo += size
	}
	return blocks, nil
}

// NewPolicyRangeKeys encodes one endPort rule as policy_ranges keys: every
// port in [start, end] of protocol, for traffic between local and peer in
// dir, and no other port.
func NewPolicyRangeKeys(local, peer uint32, dir PalisadeDirection, protocol uint8, start, end uint16) ([]PalisadePolicyRangeKey, error) {
	blocks, err := PortBlocks(start, end)
	if err != nil {
		return nil, fmt.Errorf("encode policy range %d-%d: %w", start, end, err)
	}
	keys := make([]PalisadePolicyRangeKey, 0, len(blocks))
	for _, b := range blocks {
		keys = append(keys, PalisadePolicyRangeKey{
			Prefixlen:     uint32(policyRangeFixedBits + b.Bits),
			LocalIdentity: local,
			PeerIdentity:  peer,
			Direction:     uint8(dir),
			Protocol:      protocol,
			Dport:         NetworkOrder16(b.Port),
		})
	}
	return keys, nil
}

// NetworkOrder16 returns v with its bytes laid out big-endian in memory,
// as the kernel's __be16 fields (conntrack ports, range key ports) hold it.
func NetworkOrder16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
