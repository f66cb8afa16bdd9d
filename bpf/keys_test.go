package bpf

import (
	"net/netip"
	"testing"
)

func TestNewIPKey(t *testing.T) {
	cases := []struct {
		prefix string
		want   PalisadeIpKey
	}{
		{"10.1.2.3/32", PalisadeIpKey{Prefixlen: 64, Family: 4, Addr: [16]byte{10, 1, 2, 3}}},
		{"10.1.0.0/16", PalisadeIpKey{Prefixlen: 48, Family: 4, Addr: [16]byte{10, 1}}},
		{"0.0.0.0/0", PalisadeIpKey{Prefixlen: 32, Family: 4}},
		{"::ffff:10.1.2.3/128", PalisadeIpKey{Prefixlen: 64, Family: 4, Addr: [16]byte{10, 1, 2, 3}}},
		{"fd00::1/128", PalisadeIpKey{Prefixlen: 160, Family: 6, Addr: [16]byte{0: 0xfd, 15: 1}}},
		{"::/0", PalisadeIpKey{Prefixlen: 32, Family: 6}},
	}
	for _, c := range cases {
		got, err := NewIPKey(netip.MustParsePrefix(c.prefix))
		if err != nil {
			t.Errorf("%s: %v", c.prefix, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.prefix, got, c.want)
		}
	}
	for _, bad := range []netip.Prefix{{}, netip.MustParsePrefix("::ffff:0:0/80")} {
		if _, err := NewIPKey(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestNewSourceCIDRKey(t *testing.T) {
	for prefix, want := range map[string]PalisadeSourceCidrKey{
		"10.9.0.0/16":  {Prefixlen: 80, Ifindex: 7, Family: 4, Addr: [16]byte{10, 9}},
		"0.0.0.0/0":    {Prefixlen: 64, Ifindex: 7, Family: 4},
		"fd00:9::/64":  {Prefixlen: 128, Ifindex: 7, Family: 6, Addr: [16]byte{0: 0xfd, 3: 9}},
		"192.0.2.1/32": {Prefixlen: 96, Ifindex: 7, Family: 4, Addr: [16]byte{192, 0, 2, 1}},
	} {
		got, err := NewSourceCIDRKey(7, netip.MustParsePrefix(prefix))
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", prefix, got, err, want)
		}
	}
	for _, bad := range []netip.Prefix{{}, netip.MustParsePrefix("10.9.1.0/16")} {
		if _, err := NewSourceCIDRKey(7, bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestPortBlocks(t *testing.T) {
	cases := []struct {
		start, end uint16
		want       []PortBlock
	}{
		{80, 80, []PortBlock{{80, 16}}},
		{0, 65535, []PortBlock{{0, 0}}},
		{8000, 8007, []PortBlock{{8000, 13}}},
		{8000, 8100, []PortBlock{{8000, 10}, {8064, 11}, {8096, 14}, {8100, 16}}},
		{1, 65534, nil},
		{65535, 65535, []PortBlock{{65535, 16}}},
	}
	for _, c := range cases {
		got, err := PortBlocks(c.start, c.end)
		if err != nil {
			t.Fatal(err)
		}
		if c.want == nil { // only the count is pinned: the worst case
			if len(got) != 30 {
				t.Errorf("%d-%d: %d blocks, want 30", c.start, c.end, len(got))
			}
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%d-%d: got %v, want %v", c.start, c.end, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%d-%d: got %v, want %v", c.start, c.end, got, c.want)
				break
			}
		}
	}
	if _, err := PortBlocks(10, 9); err == nil {
		t.Error("reversed range: no error")
	}
}

// FuzzPortBlocks checks the split against its definition: the blocks are
// aligned, disjoint, in order, at most 30, and cover exactly the range.
func FuzzPortBlocks(f *testing.F) {
	f.Add(uint16(8000), uint16(8100))
	f.Add(uint16(1), uint16(65534))
	f.Add(uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, start, end uint16) {
		blocks, err := PortBlocks(start, end)
		if start > end {
			if err == nil {
				t.Fatal("reversed range accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) > 30 {
			t.Fatalf("%d blocks", len(blocks))
		}
		next := uint32(start)
		for _, b := range blocks {
			size := uint32(1) << (16 - b.Bits)
			if uint32(b.Port) != next || uint32(b.Port)%size != 0 {
				t.Fatalf("block %v: want aligned start at %d", b, next)
			}
			next += size
		}
		if next != uint32(end)+1 {
			t.Fatalf("blocks end at %d, want %d", next-1, end)
		}
	})
}

func TestNewPolicyRangeKeys(t *testing.T) {
	keys, err := NewPolicyRangeKeys(300, 400, egress, protoTCP, 8000, 8007)
	if err != nil {
		t.Fatal(err)
	}
	want := PalisadePolicyRangeKey{Prefixlen: 93, LocalIdentity: 300, PeerIdentity: 400, Direction: uint8(egress), Protocol: protoTCP, Dport: NetworkOrder16(8000)}
	if len(keys) != 1 || keys[0] != want {
		t.Errorf("got %+v, want [%+v]", keys, want)
	}
	if _, err := NewPolicyRangeKeys(1, 2, egress, protoTCP, 9, 8); err == nil {
		t.Error("reversed range: no error")
	}
}
