package podnet

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNodeConfigResolve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     NodeConfig
		cidr4   string
		cidr6   string
		gw      string
		wantErr string
	}{
		{name: "index picks both ranges", cfg: NodeConfig{Name: "node1", Index: 1}, cidr4: "10.244.1.0/24", cidr6: "fd00:1::/64", gw: "10.244.1.1"},
		{name: "index is written in hex in IPv6", cfg: NodeConfig{Name: "node12", Index: 12}, cidr4: "10.244.12.0/24", cidr6: "fd00:c::/64", gw: "10.244.12.1"},
		{name: "explicit ranges win and are masked", cfg: NodeConfig{Name: "n", PodCIDR4: netip.MustParsePrefix("10.9.0.7/16"), PodCIDR6: netip.MustParsePrefix("fd09::5/64")}, cidr4: "10.9.0.0/16", cidr6: "fd09::/64", gw: "10.9.0.1"},
		{name: "index zero without ranges", cfg: NodeConfig{Name: "node0"}, wantErr: "index 0: want 1 to 250"},
		{name: "index colliding with the default links", cfg: NodeConfig{Name: "node255", Index: 255}, wantErr: "want 1 to 250"},
		{name: "empty name", cfg: NodeConfig{Index: 1}, wantErr: "node name is empty"},
		{name: "name with a slash", cfg: NodeConfig{Name: "a/b", Index: 1}, wantErr: `node name "a/b": only lower-case`},
		{name: "IPv6 range given as IPv4", cfg: NodeConfig{Name: "n", Index: 1, PodCIDR6: netip.MustParsePrefix("10.1.0.0/16")}, wantErr: "want an IPv6 range"},
		{name: "IPv4 range too small", cfg: NodeConfig{Name: "n", Index: 1, PodCIDR4: netip.MustParsePrefix("10.1.0.0/30")}, wantErr: "at least 16 addresses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("resolve() error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.PodCIDR4.String() != tc.cidr4 || got.PodCIDR6.String() != tc.cidr6 || got.gateway4().String() != tc.gw {
				t.Errorf("resolve() = %s %s gateway %s, want %s %s gateway %s", got.PodCIDR4, got.PodCIDR6, got.gateway4(), tc.cidr4, tc.cidr6, tc.gw)
			}
		})
	}
}

func TestAddrPlan(t *testing.T) {
	plan := newAddrPlan(netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:1::/64"))
	v4, v6, err := plan.allocate()
	if err != nil || v4.String() != "10.244.1.10" || v6.String() != "fd00:1::a" {
		t.Fatalf("first allocation = %s %s %v, want 10.244.1.10 fd00:1::a", v4, v6, err)
	}
	// A picked pair is refused while in use, and the gateway never.
	if err := plan.reserve(v4, v6); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("reserve of an allocated pair: %v, want in use", err)
	}
	if err := plan.reserve(netip.MustParseAddr("10.244.1.1"), netip.Addr{}); err == nil || !strings.Contains(err.Error(), "gateway") {
		t.Errorf("reserve of the gateway: %v, want an error naming it", err)
	}
	if err := plan.reserve(netip.MustParseAddr("fd00:1::3"), netip.Addr{}); err == nil {
		t.Error("reserve accepted an IPv6 address as IPv4")
	}
	// Picking the next number by hand makes allocation skip it.
	if err := plan.reserve(netip.MustParseAddr("10.244.1.11"), netip.MustParseAddr("fd00:1::b")); err != nil {
		t.Fatal(err)
	}
	if v4b, _, _ := plan.allocate(); v4b.String() != "10.244.1.12" {
		t.Errorf("allocation after a reserved 11 = %s, want 10.244.1.12", v4b)
	}
	// A released pair is reused only after the fresh numbers run out,
	// and then it is.
	plan.release(v4, v6)
	if err := plan.reserve(v4, v6); err != nil {
		t.Errorf("reserve of a released pair: %v", err)
	}
	plan.release(v4, v6)
	seen := map[netip.Addr]bool{}
	for {
		a, _, err := plan.allocate()
		if err != nil {
			if !strings.Contains(err.Error(), "no free pod address") {
				t.Fatalf("exhaustion error %v", err)
			}
			break
		}
		if seen[a] {
			t.Fatalf("%s allocated twice", a)
		}
		seen[a] = true
		if a == netip.MustParseAddr("10.244.1.255") || a == netip.MustParseAddr("10.244.1.1") || a == netip.MustParseAddr("10.244.1.0") {
			t.Fatalf("allocated %s", a)
		}
	}
	if !seen[v4] {
		t.Errorf("released %s was never allocated again", v4)
	}
	// 10..254 allocatable except the two still held (11, 12).
	if want := 254 - 10 + 1 - 2; len(seen) != want {
		t.Errorf("allocated %d addresses, want %d", len(seen), want)
	}
}

func TestAddHost(t *testing.T) {
	for _, tc := range []struct {
		base string
		host uint64
		want string
	}{
		{"10.244.1.0", 10, "10.244.1.10"},
		{"10.9.0.0", 300, "10.9.1.44"},
		{"fd00:1::", 255, "fd00:1::ff"},
		{"fd00:1::", 0x1_0001, "fd00:1::1:1"},
	} {
		if got := addHost(netip.MustParseAddr(tc.base), tc.host); got.String() != tc.want {
			t.Errorf("addHost(%s, %d) = %s, want %s", tc.base, tc.host, got, tc.want)
		}
	}
}

func TestHostInterfaceName(t *testing.T) {
	for _, tc := range []struct{ ns, name, want string }{
		{"x", "a", "vxa"},
		{"payments", "web", "vpaymentsweb"},
	} {
		if got := hostInterfaceName(tc.ns, tc.name); got != tc.want {
			t.Errorf("hostInterfaceName(%s, %s) = %s, want %s", tc.ns, tc.name, got, tc.want)
		}
	}
	long1 := hostInterfaceName("payments", "checkout-7d9f")
	long2 := hostInterfaceName("payments", "checkout-7d9g")
	for _, n := range []string{long1, long2} {
		if err := validInterfaceName(n); err != nil {
			t.Errorf("derived name: %v", err)
		}
	}
	if long1 == long2 {
		t.Errorf("two long pod names share interface %s", long1)
	}
	// A '.' in a pod name is valid in an interface name, a ':' is not.
	if err := validInterfaceName("va:b"); err == nil {
		t.Error("validInterfaceName accepted a colon")
	}
}

func TestPodCommands(t *testing.T) {
	gw := netip.MustParseAddr("10.244.1.1")
	v4 := netip.MustParseAddr("10.244.1.10")
	// An IPv4-only pod gets no IPv6 address or route on either side.
	for _, cmd := range append(podHostCommands("p-x-a", "vxa", gw, v4, netip.Addr{}), podCommands(gw, v4, netip.Addr{})...) {
		if strings.Contains(cmd, ":") {
			t.Errorf("IPv4-only pod: command %q has an IPv6 part", cmd)
		}
	}
	dual := strings.Join(podCommands(gw, v4, netip.MustParseAddr("fd00:1::a")), "\n")
	for _, want := range []string{"addr add fd00:1::a/128 dev eth0 nodad", "route add ::/0 via fe80::1 dev eth0", "route add default via 10.244.1.1 dev eth0"} {
		if !strings.Contains(dual, want) {
			t.Errorf("dual-stack pod commands lack %q:\n%s", want, dual)
		}
	}
}

func TestNewRejectsBadPrefix(t *testing.T) {
	for _, p := range []string{"", "Bad", "a/b", "prefix-far-too-long"} {
		if _, err := New(p); err == nil {
			t.Errorf("New(%q) accepted it", p)
		}
	}
	if got := NewPrefix("pd"); len(got) != 6 || !strings.HasPrefix(got, "pd") {
		t.Errorf("NewPrefix(pd) = %q, want pd and four hex digits", got)
	}
}
