package datapath

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

func TestTranslateSourceCIDRs(t *testing.T) {
	vpn := strings.Replace(pod("x", "vpn", "vpn", "10.0.0.2,fd00::2"), "  labels:", "  annotations: {"+policy.AnnotationSourceCIDRs+": \"10.9.0.0/16,fd00:9::/64\"}\n  labels:", 1)
	s := compile(t, namespace("x")+vpn+pod("x", "web", "web", "10.0.0.3"))
	e, err := Translate(s, byIP(map[string]int{"10.0.0.2": 7, "10.0.0.3": 8}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[bpf.PalisadeSourceCidrKey]bool{}
	for _, p := range []string{"10.9.0.0/16", "fd00:9::/64"} {
		k, err := bpf.NewSourceCIDRKey(7, netip.MustParsePrefix(p))
		if err != nil {
			t.Fatal(err)
		}
		want[k] = true
	}
	if len(e.SourceCIDRs) != len(want) {
		t.Errorf("source ranges %v, want those of interface 7 only: %v", e.SourceCIDRs, want)
	}
	for k := range want {
		if _, ok := e.SourceCIDRs[k]; !ok {
			t.Errorf("source range %+v missing", k)
		}
	}
}

// sourceModel: a packet from interface idx with source addr passes the
// source check of bpf/include/source.h.
func sourceModel(e Entries, idx uint32, addr netip.Addr) bool {
	if ak, ok := NewAddrKey(addr); ok && e.EndpointIPs[ak].Ifindex == idx {
		if _, owned := e.EndpointIPs[ak]; owned {
			return true
		}
	}
	for k := range e.SourceCIDRs {
		bits := int(k.Prefixlen) - 64
		var a netip.Addr
		if k.Family == uint8(bpf.PalisadeFamilyFAMILY_IPV4) {
			a = netip.AddrFrom4([4]byte(k.Addr[:4]))
		} else {
			a = netip.AddrFrom16(k.Addr)
		}
		if k.Ifindex == idx && netip.PrefixFrom(a, bits).Contains(addr) {
			return true
		}
	}
	return false
}

// egressModel: the first packet of a new flow from interface idx, source
// src, to dst passes (source check first, then policy), as palisade.c.
func egressModel(e Entries, idx uint32, src, dst netip.Addr, proto uint8, port uint16) bool {
	if _, managed := e.Endpoints[idx]; !managed {
		return true
	}
	if !sourceModel(e, idx, src) {
		return false
	}
	pass, _ := modelVerdict(e, idx, uint8(bpf.PalisadeDirectionDIR_EGRESS), dst, proto, port)
	return pass
}

var sourceRanges = []string{"10.9.0.0/16", "10.9.1.0/24", "fd00:9::/64"}

func randomSourceCIDRs(r *rand.Rand, e *Entries) {
	for idx := range e.Endpoints {
		for _, p := range sourceRanges {
			if r.IntN(3) == 0 {
				k, _ := bpf.NewSourceCIDRKey(idx, netip.MustParsePrefix(p))
				e.SourceCIDRs[k] = bpf.PalisadeSourceCidrValue{}
			}
		}
	}
}

// TestPlanNeverAcceptsASourceNeitherStateAccepts replays plans between
// random contents with pod addresses and source ranges one element at a
// time: a packet from a pod passes, source check and policy together, only
// if the old or the new contents let it pass. Source ranges and addresses
// go first and come last, so no moment pairs an old source with a new
// allow.
func TestPlanNeverAcceptsASourceNeitherStateAccepts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	srcs := []netip.Addr{netip.MustParseAddr("10.9.1.5"), netip.MustParseAddr("10.9.200.1"), netip.MustParseAddr("fd00:9::5"), netip.MustParseAddr("10.8.0.1")}
	for n := uint32(1); n <= 4; n++ {
		srcs = append(srcs, planPodAddr(n))
	}
	dsts := []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("fd00::1")}
	cases := 300
	if testing.Short() {
		cases = 60
	}
	for i := range cases {
		old, next := randomEntries(r), randomEntries(r)
		randomSourceCIDRs(r, &old)
		if r.IntN(2) == 0 {
			next = old.clone()
			mutate(r, &next)
			dropDanglingAddresses(&next)
			for k := range next.SourceCIDRs {
				if r.IntN(3) == 0 {
					delete(next.SourceCIDRs, k)
				}
			}
		} else {
			randomSourceCIDRs(r, &next)
		}
		for k := range next.SourceCIDRs {
			if _, ok := next.Endpoints[k.Ifindex]; !ok {
				delete(next.SourceCIDRs, k) // Translate's guarantee
			}
		}
		for k, v := range next.Endpoints {
			v.Revision = 0
			next.Endpoints[k] = v
		}
		counter := uint32(1000)
		ops, _ := plan(old, next, func() uint32 { counter++; return counter })

		check := func(mid Entries, step string, n int) {
			for idx := uint32(1); idx <= 4; idx++ {
				for _, src := range srcs {
					for _, dst := range dsts {
						if src.Is4() != dst.Is4() {
							continue
						}
						if egressModel(mid, idx, src, dst, 6, 80) && !egressModel(old, idx, src, dst, 6, 80) && !egressModel(next, idx, src, dst, 6, 80) {
							t.Fatalf("case %d: after %d of %q, %s → %s from interface %d passes; neither state lets it", i, n, step, src, dst, idx)
						}
					}
				}
			}
		}
		cur := old.clone()
		for _, o := range ops {
			for n := 1; n <= o.len(); n++ {
				mid := cur.clone()
				applyOp(&mid, o, n)
				check(mid, o.step, n)
			}
			applyOp(&cur, o, o.len())
		}
		if !equalMaps(cur.SourceCIDRs, next.SourceCIDRs) {
			t.Fatalf("case %d: source ranges %v, want %v", i, cur.SourceCIDRs, next.SourceCIDRs)
		}
	}
}
