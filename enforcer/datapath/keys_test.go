package datapath

import (
	"testing"

	"github.com/palisade-dev/palisade/bpf"
)

// Keys read back from the kernel carry whatever address bits were
// written; the cache must hold them as Translate computes them.
func TestCanonicalIPKey(t *testing.T) {
	stray := ipKey(t, "10.0.0.0/8")
	stray.Addr[1], stray.Addr[3] = 7, 9
	v6 := ipKey(t, "fd00::/64")
	v6.Addr[15] = 1
	foreign := ipKey(t, "10.0.0.0/8")
	foreign.Pad[0] = 1
	badLen := bpf.PalisadeIpKey{Prefixlen: 99, Family: 4}
	cases := []struct {
		name string
		in   bpf.PalisadeIpKey
		want bpf.PalisadeIpKey
	}{
		{"masked already", ipKey(t, "10.1.2.3/32"), ipKey(t, "10.1.2.3/32")},
		{"stray ipv4 bits", stray, ipKey(t, "10.0.0.0/8")},
		{"stray ipv6 bits", v6, ipKey(t, "fd00::/64")},
		{"non-zero padding kept as is", foreign, foreign},
		{"impossible length kept as is", badLen, badLen},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := canonicalIPKey(c.in); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestEffectiveIdentity(t *testing.T) {
	ips := map[bpf.PalisadeIpKey]bpf.PalisadeIdentityValue{
		ipKey(t, "10.0.0.0/8"):  {Identity: 300},
		ipKey(t, "10.1.0.0/16"): {Identity: 301},
	}
	cases := map[string]uint32{
		"10.1.0.0/16":  301, // its own entry
		"10.1.2.3/32":  301, // longest container
		"10.2.0.0/16":  300,
		"192.0.2.0/24": 1, // world
	}
	for prefix, want := range cases {
		if got := effectiveIdentity(ips, ipKey(t, prefix)); got != want {
			t.Errorf("%s: %d, want %d", prefix, got, want)
		}
	}
}

func TestParseLinkPin(t *testing.T) {
	cases := []struct {
		name  string
		idx   uint32
		which string
		ok    bool
	}{
		{"12_from_pod", 12, pinFromPod, true},
		{"7_to_pod", 7, pinToPod, true},
		{"0_to_pod", 0, "", false},
		{"x_to_pod", 0, "", false},
		{"12_sideways", 0, "", false},
		{"12", 0, "", false},
		{"4294967296_to_pod", 0, "", false},
	}
	for _, c := range cases {
		idx, which, ok := parseLinkPin(c.name)
		if idx != c.idx || which != c.which || ok != c.ok {
			t.Errorf("%s: got (%d, %q, %v), want (%d, %q, %v)", c.name, idx, which, ok, c.idx, c.which, c.ok)
		}
	}
}
