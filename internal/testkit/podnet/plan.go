package podnet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// NodeConfig describes one node of a Network.
type NodeConfig struct {
	// Name is the Kubernetes node name (the enforcer's --node-name); the
	// node's namespace is <prefix>-<Name>.
	Name string
	// Index picks the node's pod ranges, 10.244.<Index>.0/24 and
	// fd00:<Index>::/64, unless PodCIDR4 or PodCIDR6 are set. 1 to 250
	// (fd00:fe:: and fd00:ff:: are the default external and wire links).
	Index int
	// PodCIDR4 and PodCIDR6 override the ranges Index picks. The first
	// address of PodCIDR4 is the node's gateway for its pods.
	PodCIDR4, PodCIDR6 netip.Prefix
}

// firstPodHost is the host number of a node's first allocated pod
// address: the gateway is host 1 and a few low numbers stay free for
// addresses a test wants to pick by hand.
const firstPodHost = 10

// resolve fills in the ranges from Index and checks the whole config.
func (c NodeConfig) resolve() (NodeConfig, error) {
	if err := validName("node name", c.Name); err != nil {
		return c, err
	}
	if !c.PodCIDR4.IsValid() || !c.PodCIDR6.IsValid() {
		if c.Index < 1 || c.Index > 250 {
			return c, fmt.Errorf("node %s: index %d: want 1 to 250 (it picks 10.244.<index>.0/24), or set both pod CIDRs", c.Name, c.Index)
		}
	}
	if !c.PodCIDR4.IsValid() {
		c.PodCIDR4 = netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", c.Index))
	}
	if !c.PodCIDR6.IsValid() {
		c.PodCIDR6 = netip.MustParsePrefix(fmt.Sprintf("fd00:%x::/64", c.Index))
	}
	c.PodCIDR4, c.PodCIDR6 = c.PodCIDR4.Masked(), c.PodCIDR6.Masked()
	if !c.PodCIDR4.Addr().Is4() || c.PodCIDR4.Bits() > 28 {
		return c, fmt.Errorf("node %s: pod CIDR %s: want an IPv4 range of at least 16 addresses", c.Name, c.PodCIDR4)
	}
	if !c.PodCIDR6.Addr().Is6() || c.PodCIDR6.Addr().Is4In6() || c.PodCIDR6.Bits() > 124 {
		return c, fmt.Errorf("node %s: pod CIDR %s: want an IPv6 range of at least 16 addresses", c.Name, c.PodCIDR6)
	}
	return c, nil
}

// gateway4 is the node's address on every pod veth: the range's first
// host.
func (c NodeConfig) gateway4() netip.Addr { return c.PodCIDR4.Addr().Next() }

// Gateway6 is the node's address on every pod veth. Link-local, as
// Calico's fe80::1-style gateways are: the pods' default route points at
// it on their only interface.
var Gateway6 = netip.MustParseAddr("fe80::1")

// addrPlan hands out a node's pod addresses: the same host number in
// both families, fresh numbers before reused ones (so a new pod does not
// inherit a deleted pod's tracked connections by accident), and exactly
// the addresses asked for when a caller picks them.
type addrPlan struct {
	cidr4, cidr6 netip.Prefix
	next         uint64
	used4, used6 map[netip.Addr]bool
}

func newAddrPlan(cidr4, cidr6 netip.Prefix) *addrPlan {
	return &addrPlan{cidr4: cidr4, cidr6: cidr6, next: firstPodHost, used4: map[netip.Addr]bool{}, used6: map[netip.Addr]bool{}}
}

// hosts is how many host numbers the smaller range offers, broadcast and
// network address left out.
func (p *addrPlan) hosts() uint64 {
	bits4 := 32 - p.cidr4.Bits()
	bits6 := min(128-p.cidr6.Bits(), 63)
	return min(uint64(1)<<bits4, uint64(1)<<bits6) - 1
}

// allocate returns the next free pair.
func (p *addrPlan) allocate() (netip.Addr, netip.Addr, error) {
	n := p.hosts()
	for tried := uint64(0); tried < n; tried++ {
		host := p.next
		p.next++
		if p.next >= n {
			p.next = firstPodHost
		}
		if host < 2 {
			continue
		}
		v4, v6 := addHost(p.cidr4.Addr(), host), addHost(p.cidr6.Addr(), host)
		if !p.used4[v4] && !p.used6[v6] {
			p.used4[v4], p.used6[v6] = true, true
			return v4, v6, nil
		}
	}
	return netip.Addr{}, netip.Addr{}, fmt.Errorf("no free pod address left in %s and %s", p.cidr4, p.cidr6)
}

// reserve claims a pair the caller picked. Addresses outside the node's
// ranges are allowed (a test may route anything), the gateway is not.
func (p *addrPlan) reserve(v4, v6 netip.Addr) error {
	if !v4.Is4() {
		return fmt.Errorf("pod address %s: want an IPv4 address", v4)
	}
	if v6.IsValid() && (!v6.Is6() || v6.Is4In6()) {
		return fmt.Errorf("pod address %s: want an IPv6 address", v6)
	}
	if v4 == p.cidr4.Addr().Next() {
		return fmt.Errorf("pod address %s is the node's gateway", v4)
	}
	if p.used4[v4] {
		return fmt.Errorf("pod address %s is in use", v4)
	}
	if v6.IsValid() && p.used6[v6] {
		return fmt.Errorf("pod address %s is in use", v6)
	}
	p.used4[v4] = true
	if v6.IsValid() {
		p.used6[v6] = true
	}
	return nil
}

func (p *addrPlan) release(v4, v6 netip.Addr) {
	delete(p.used4, v4)
	delete(p.used6, v6)
}

// addHost adds a host number to a network address.
func addHost(base netip.Addr, host uint64) netip.Addr {
	b := base.AsSlice()
	carry := host
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		sum := uint64(b[i]) + carry&0xff
		b[i] = byte(sum)
		carry = carry>>8 + sum>>8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// maxInterfaceName is the kernel's IFNAMSIZ less the terminating NUL.
const maxInterfaceName = 15

// validInterfaceName reports why name cannot name a network interface.
func validInterfaceName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("interface name is empty")
	case len(name) > maxInterfaceName:
		return fmt.Errorf("interface name %q is %d bytes, the kernel allows %d", name, len(name), maxInterfaceName)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is reserved", name)
	case strings.ContainsAny(name, "/: \t\n\x00"):
		return fmt.Errorf("interface name %q has a character the kernel refuses (/, :, or white space)", name)
	}
	return nil
}

// hostInterfaceName is a pod's host-side veth name when the caller gives
// none: "v<namespace><name>" when that is a valid name (readable in `ip
// link`), else "v" and a hash of both, so long names still get a stable,
// distinct interface.
func hostInterfaceName(namespace, name string) string {
	if n := "v" + namespace + name; validInterfaceName(n) == nil {
		return n
	}
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	return "v" + hex.EncodeToString(sum[:])[:maxInterfaceName-1]
}

// validName checks a name that becomes part of a namespace's file name
// under /var/run/netns and of `ip` commands.
func validName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > 63 {
		return fmt.Errorf("%s %q is longer than 63 bytes", what, s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("%s %q: only lower-case letters, digits, '-' and '.' are allowed", what, s)
		}
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%s %q is reserved", what, s)
	}
	return nil
}
