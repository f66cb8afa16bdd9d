package datapath

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/palisade-dev/palisade/bpf"
)

// modelVerdict judges a new flow's first packet at an interface against
// map contents the way bpf/include/policy.h does. passes includes
// would-drops of audit endpoints; allowed does not.
func modelVerdict(e Entries, ifindex uint32, dir uint8, addr netip.Addr, proto uint8, port uint16) (passes, allowed bool) {
	ep, ok := e.Endpoints[ifindex]
	if !ok {
		return true, true // unmanaged
	}
	iso := fOut
	if dir == uint8(bpf.PalisadeDirectionDIR_INGRESS) {
		iso = fIn
	}
	if ep.Flags&iso == 0 {
		return true, true
	}
	peer := modelLookup(e.IPs, addr)
	if dir == uint8(bpf.PalisadeDirectionDIR_INGRESS) && peer == uint32(bpf.PalisadeIdentityIDENTITY_HOST) {
		return true, true
	}
	family := uint32(bpf.PalisadeIdentityIDENTITY_ANY_IPV6)
	if addr.Is4() {
		family = uint32(bpf.PalisadeIdentityIDENTITY_ANY_IPV4)
	}
	if modelAllows(e, ep.Identity, peer, dir, proto, port) || isPodIdentity(peer) && modelAllows(e, ep.Identity, anyPod, dir, proto, port) ||
		isAddressedIdentity(peer) && modelAllows(e, ep.Identity, family, dir, proto, port) ||
		modelAllows(e, ep.Identity, 0, dir, proto, port) {
		return true, true
	}
	return ep.Flags&fAudit != 0, false
}

func modelLookup(ips map[bpf.PalisadeIpKey]bpf.PalisadeIdentityValue, addr netip.Addr) uint32 {
	for bits := addr.BitLen(); bits >= 0; bits-- {
		k, _ := bpf.NewIPKey(netip.PrefixFrom(addr, bits).Masked())
		if v, ok := ips[k]; ok {
			return v.Identity
		}
	}
	return uint32(bpf.PalisadeIdentityIDENTITY_WORLD)
}

func modelAllows(e Entries, local, peer uint32, dir, proto uint8, port uint16) bool {
	k := bpf.PalisadePolicyKey{LocalIdentity: local, PeerIdentity: peer, Direction: dir, Protocol: proto, Dport: port}
	if port != 0 {
		if e.Policy[k].Verdict == allow {
			return true
		}
		k.Dport = 0
	}
	if e.Policy[k].Verdict == allow {
		return true
	}
	if port != 0 {
		for rk, v := range e.PolicyRanges {
			bits := int(rk.Prefixlen) - 80
			start := bpf.NetworkOrder16(rk.Dport) // an involution
			if rk.LocalIdentity == local && rk.PeerIdentity == peer && rk.Direction == dir && rk.Protocol == proto &&
				v.Verdict == allow && port>>(16-bits) == start>>(16-bits) {
				return true
			}
		}
	}
	k.Protocol = 0
	return e.Policy[k].Verdict == allow
}

const anyPod = uint32(bpf.PalisadeIdentityIDENTITY_ANY_POD)

// The small world random states are drawn from: nested prefixes, both
// families, identities that rules can name.
var (
	worldPrefixes = []string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.2.4/32", "10.2.0.5/32", "192.168.0.1/32", "fd00::/64", "fd00::1/128", "0.0.0.0/0"}
	probeAddrs    = []string{"10.1.2.3", "10.1.2.4", "10.1.2.9", "10.1.3.1", "10.3.0.1", "10.2.0.5", "192.168.0.1", "8.8.8.8", "fd00::1", "fd00::2"}
	peerIDs       = []uint32{1, 2, 256, 257, 258, 259, 1 << 24}
	localIDs      = []uint32{256, 257, 258, 259}
	protos        = []uint8{0, 6, 17}
	ports         = []uint16{0, 80, 443}
)

func randomEntries(r *rand.Rand) Entries {
	e := newEntries()
	for _, p := range worldPrefixes {
		if r.IntN(2) == 0 {
			k, _ := bpf.NewIPKey(netip.MustParsePrefix(p))
			e.IPs[k] = bpf.PalisadeIdentityValue{Identity: peerIDs[r.IntN(len(peerIDs))]}
		}
	}
	for idx := uint32(1); idx <= 4; idx++ {
		if r.IntN(4) == 0 {
			continue
		}
		e.Endpoints[idx] = bpf.PalisadeEndpointValue{Identity: localIDs[r.IntN(len(localIDs))], Flags: uint32(r.IntN(8)), Revision: uint32(100 + r.IntN(3))}
	}
	for range r.IntN(12) {
		proto := protos[r.IntN(len(protos))]
		port := ports[r.IntN(len(ports))]
		if proto == 0 {
			port = 0
		}
		peer := uint32(0)
		switch r.IntN(6) {
		case 0:
		case 1:
			peer = anyPod
		case 2:
			peer = uint32(bpf.PalisadeIdentityIDENTITY_ANY_IPV4 + bpf.PalisadeIdentity(r.IntN(2)))
		default:
			peer = peerIDs[r.IntN(len(peerIDs))]
		}
		k := bpf.PalisadePolicyKey{LocalIdentity: localIDs[r.IntN(len(localIDs))], PeerIdentity: peer, Direction: uint8(1 + r.IntN(2)), Protocol: proto, Dport: port}
		e.Policy[k] = bpf.PalisadePolicyValue{Verdict: allow, RuleId: uint32(1 + r.IntN(3))}
	}
	for range r.IntN(2) {
		keys, _ := bpf.NewPolicyRangeKeys(localIDs[r.IntN(len(localIDs))], peerIDs[r.IntN(len(peerIDs))], bpf.PalisadeDirection(1+r.IntN(2)), 6, 64, 511)
		for _, k := range keys {
			e.PolicyRanges[k] = bpf.PalisadePolicyValue{Verdict: allow, RuleId: 7}
		}
	}
	if r.IntN(2) == 0 {
		k, _ := bpf.NewIPKey(netip.MustParsePrefix("10.96.0.0/12"))
		e.ServiceCIDRs[k] = bpf.PalisadeServiceValue{}
	}
	for idx := range e.Endpoints {
		switch r.IntN(8) {
		case 0: // unresolved address
		case 1: // another endpoint's (a stale or shared address)
			e.EndpointIPs[podAddrKey(idx)] = bpf.PalisadeEndpointIpValue{Ifindex: uint32(1 + r.IntN(4))}
		default:
			e.EndpointIPs[podAddrKey(idx)] = bpf.PalisadeEndpointIpValue{Ifindex: idx}
		}
	}
	dropDanglingAddresses(&e)
	return e
}

// dropDanglingAddresses keeps what Translate guarantees: an endpoint_ips
// entry names an endpoint of the same Entries.
func dropDanglingAddresses(e *Entries) {
	for k, v := range e.EndpointIPs {
		if _, ok := e.Endpoints[v.Ifindex]; !ok {
			delete(e.EndpointIPs, k)
		}
	}
}

// planPodAddr: 10.244.0.<n> belongs to interface n.
func planPodAddr(n uint32) netip.Addr { return netip.AddrFrom4([4]byte{10, 244, 0, byte(n)}) }

func podAddrKey(n uint32) bpf.PalisadeAddrKey {
	k, _ := NewAddrKey(planPodAddr(n))
	return k
}

// serviceProbe is a new flow from interface ifindex, source address
// planPodAddr(src), to a service address the node's DNAT sends to backend.
type serviceProbe struct {
	ifindex, src     uint32
	service, backend netip.Addr
	proto            uint8
	port             uint16
}

func (p serviceProbe) String() string {
	return fmt.Sprintf("service flow from interface %d (%s) to %s → %s proto %d port %d", p.ifindex, planPodAddr(p.src), p.service, p.backend, p.proto, p.port)
}

// modelServiceVerdict judges a service flow as palisade.c does: against
// the service address at the sender's interface, unless the address is in
// a service range; then against the backend, as the egress of the
// endpoint endpoint_ips names for the source address (none: dropped).
func modelServiceVerdict(e Entries, p serviceProbe) bool {
	egress := uint8(bpf.PalisadeDirectionDIR_EGRESS)
	if _, managed := e.Endpoints[p.ifindex]; !managed {
		return true
	}
	deferred := false
	for k := range e.ServiceCIDRs {
		if pfx, ok := prefixOf(k); ok && pfx.Contains(p.service) {
			deferred = true
		}
	}
	if !deferred {
		pass, _ := modelVerdict(e, p.ifindex, egress, p.service, p.proto, p.port)
		return pass
	}
	src, ok := e.EndpointIPs[podAddrKey(p.src)]
	if !ok {
		return false
	}
	if _, ok := e.Endpoints[src.Ifindex]; !ok {
		return false
	}
	pass, _ := modelVerdict(e, src.Ifindex, egress, p.backend, p.proto, p.port)
	return pass
}

func allServiceProbes() []serviceProbe {
	var out []serviceProbe
	for ifindex := uint32(1); ifindex <= 4; ifindex++ {
		for src := uint32(1); src <= 4; src++ {
			for _, backend := range []string{"10.1.2.3", "10.2.0.5", "8.8.8.8"} {
				for _, proto := range []uint8{6, 17} {
					out = append(out, serviceProbe{ifindex, src, netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr(backend), proto, 80})
				}
			}
		}
	}
	return out
}

type probe struct {
	ifindex uint32
	dir     uint8
	addr    netip.Addr
	proto   uint8
	port    uint16
}

func (p probe) String() string {
	return fmt.Sprintf("if%d dir%d %s proto%d port%d", p.ifindex, p.dir, p.addr, p.proto, p.port)
}

func allProbes() []probe {
	var out []probe
	for idx := uint32(1); idx <= 4; idx++ {
		for dir := uint8(1); dir <= 2; dir++ {
			for _, a := range probeAddrs {
				for _, proto := range []uint8{6, 17} {
					for _, port := range []uint16{80, 100, 443, 8080} {
						out = append(out, probe{idx, dir, netip.MustParseAddr(a), proto, port})
					}
				}
			}
		}
	}
	return out
}

// TestPlanNeverAllowsWhatNeitherStateAllows replays plans between random
// map contents one element at a time and judges every probe after every
// element: a packet may pass only if the old or the new contents let it
// pass. It also checks that an endpoint keeping its revision judges every
// probe as before, since its tracked flows are not judged again.
func TestPlanNeverAllowsWhatNeitherStateAllows(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	probes := allProbes()
	svcProbes := allServiceProbes()
	cases := 500
	if testing.Short() {
		cases = 100
	}
	for i := range cases {
		old, next := randomEntries(r), randomEntries(r)
		if r.IntN(3) == 0 {
			// Small changes are the common case: mutate a copy.
			next = old.clone()
			mutate(r, &next)
			dropDanglingAddresses(&next)
		}
		for k, v := range next.Endpoints {
			v.Revision = 0
			next.Endpoints[k] = v
		}
		counter := uint32(1000)
		ops, final := plan(old, next, func() uint32 { counter++; return counter })

		type verdict struct{ oldPass, newPass bool }
		want := make([]verdict, len(probes))
		for j, p := range probes {
			want[j].oldPass, _ = modelVerdict(old, p.ifindex, p.dir, p.addr, p.proto, p.port)
			want[j].newPass, _ = modelVerdict(next, p.ifindex, p.dir, p.addr, p.proto, p.port)
		}
		wantSvc := make([]verdict, len(svcProbes))
		for j, p := range svcProbes {
			wantSvc[j] = verdict{modelServiceVerdict(old, p), modelServiceVerdict(next, p)}
		}
		cur := old.clone()
		for _, o := range ops {
			for n := 1; n <= o.len(); n++ {
				mid := cur.clone()
				applyOp(&mid, o, n)
				for j, p := range probes {
					if pass, _ := modelVerdict(mid, p.ifindex, p.dir, p.addr, p.proto, p.port); pass && !want[j].oldPass && !want[j].newPass {
						t.Fatalf("case %d: after %d of %q, %s passes; neither state lets it", i, n, o.step, p)
					}
				}
				for j, p := range svcProbes {
					if modelServiceVerdict(mid, p) && !wantSvc[j].oldPass && !wantSvc[j].newPass {
						t.Fatalf("case %d: after %d of %q, %s passes; neither state lets it", i, n, o.step, p)
					}
				}
			}
			applyOp(&cur, o, o.len())
		}

		// The maps end up holding next, with the planned revisions.
		wantFinal := next.clone()
		for k, v := range final {
			wantFinal.Endpoints[k] = v
		}
		if !mapsEqual(cur, wantFinal) {
			t.Fatalf("case %d: plan did not reach next:\n got %+v\nwant %+v", i, cur, wantFinal)
		}
		for idx, v := range final {
			if v.Revision == 0 {
				t.Fatalf("case %d: endpoint %d left at revision 0", i, idx)
			}
			o, ok := old.Endpoints[idx]
			if !ok || o.Revision != v.Revision {
				continue
			}
			for _, p := range probes {
				if p.ifindex != idx {
					continue
				}
				_, before := modelVerdict(old, p.ifindex, p.dir, p.addr, p.proto, p.port)
				_, after := modelVerdict(next, p.ifindex, p.dir, p.addr, p.proto, p.port)
				if before != after {
					t.Fatalf("case %d: endpoint %d kept revision %d but %s changed from %v to %v", i, idx, v.Revision, p, before, after)
				}
			}
		}
	}
}

// mutate makes one or two small changes, like pod churn or a policy edit.
func mutate(r *rand.Rand, e *Entries) {
	for range 1 + r.IntN(2) {
		switch r.IntN(7) {
		case 0:
			k, _ := bpf.NewIPKey(netip.MustParsePrefix(worldPrefixes[r.IntN(len(worldPrefixes))]))
			if r.IntN(2) == 0 {
				delete(e.IPs, k)
			} else {
				e.IPs[k] = bpf.PalisadeIdentityValue{Identity: peerIDs[r.IntN(len(peerIDs))]}
			}
		case 1:
			idx := uint32(1 + r.IntN(4))
			if ep, ok := e.Endpoints[idx]; ok {
				ep.Flags ^= 1 << r.IntN(3)
				e.Endpoints[idx] = ep
			}
		case 2:
			for k := range e.Policy {
				delete(e.Policy, k)
				break
			}
		case 3:
			k := bpf.PalisadePolicyKey{LocalIdentity: localIDs[r.IntN(len(localIDs))], PeerIdentity: peerIDs[r.IntN(len(peerIDs))], Direction: uint8(1 + r.IntN(2)), Protocol: 6, Dport: 80}
			e.Policy[k] = bpf.PalisadePolicyValue{Verdict: allow, RuleId: 9}
		case 4:
			idx := uint32(1 + r.IntN(4))
			if ep, ok := e.Endpoints[idx]; ok {
				ep.Identity = localIDs[r.IntN(len(localIDs))]
				e.Endpoints[idx] = ep
			}
		case 5: // a pod address moves to another interface, or goes
			k := podAddrKey(uint32(1 + r.IntN(4)))
			if r.IntN(2) == 0 {
				delete(e.EndpointIPs, k)
			} else {
				e.EndpointIPs[k] = bpf.PalisadeEndpointIpValue{Ifindex: uint32(1 + r.IntN(4))}
			}
		case 6: // the service ranges change (an enforcer restarted with other flags)
			k, _ := bpf.NewIPKey(netip.MustParsePrefix("10.96.0.0/12"))
			if _, ok := e.ServiceCIDRs[k]; ok {
				delete(e.ServiceCIDRs, k)
			} else {
				e.ServiceCIDRs[k] = bpf.PalisadeServiceValue{}
			}
		}
	}
}

func mapsEqual(a, b Entries) bool {
	return equalMaps(a.IPs, b.IPs) && equalMaps(a.Endpoints, b.Endpoints) && equalMaps(a.Policy, b.Policy) &&
		equalMaps(a.PolicyRanges, b.PolicyRanges) && equalMaps(a.ServiceCIDRs, b.ServiceCIDRs) && equalMaps(a.EndpointIPs, b.EndpointIPs)
}

func equalMaps[K, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestPlanKeepsRevisionsOfUntouchedEndpoints(t *testing.T) {
	k := func(p string) bpf.PalisadeIpKey { return ipKey(t, p) }
	base := newEntries()
	base.IPs[k("10.0.0.2/32")] = bpf.PalisadeIdentityValue{Identity: 256}
	base.IPs[k("10.0.0.3/32")] = bpf.PalisadeIdentityValue{Identity: 257}
	base.Endpoints[1] = bpf.PalisadeEndpointValue{Identity: 256, Flags: fIn, Revision: 5}
	base.Endpoints[2] = bpf.PalisadeEndpointValue{Identity: 257, Flags: fIn, Revision: 6}
	// 256 accepts 257 on TCP 80; 257 accepts anyone on TCP 443.
	base.Policy[bpf.PalisadePolicyKey{LocalIdentity: 256, PeerIdentity: 257, Direction: 1, Protocol: 6, Dport: 80}] = bpf.PalisadePolicyValue{Verdict: allow, RuleId: 1}
	base.Policy[bpf.PalisadePolicyKey{LocalIdentity: 257, Direction: 1, Protocol: 6, Dport: 443}] = bpf.PalisadePolicyValue{Verdict: allow, RuleId: 2}

	cases := []struct {
		name   string
		change func(e *Entries)
		bumped []uint32
	}{
		{"nothing", func(*Entries) {}, nil},
		{"new pod address of a new identity", func(e *Entries) { e.IPs[k("10.0.0.9/32")] = bpf.PalisadeIdentityValue{Identity: 300} }, nil},
		{"new pod address of a named peer", func(e *Entries) { e.IPs[k("10.0.0.9/32")] = bpf.PalisadeIdentityValue{Identity: 257} }, []uint32{1}},
		{"rule of one identity", func(e *Entries) {
			e.Policy[bpf.PalisadePolicyKey{LocalIdentity: 257, Direction: 1, Protocol: 17}] = bpf.PalisadePolicyValue{Verdict: allow, RuleId: 3}
		}, []uint32{2}},
		{"rule id only", func(e *Entries) {
			e.Policy[bpf.PalisadePolicyKey{LocalIdentity: 257, Direction: 1, Protocol: 6, Dport: 443}] = bpf.PalisadePolicyValue{Verdict: allow, RuleId: 9}
		}, nil},
		{"flags", func(e *Entries) { e.Endpoints[2] = bpf.PalisadeEndpointValue{Identity: 257, Flags: fIn | fOut} }, []uint32{2}},
		{"host address", func(e *Entries) { e.IPs[k("10.0.0.1/32")] = bpf.PalisadeIdentityValue{Identity: 2} }, []uint32{1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next := base.clone()
			for idx, v := range next.Endpoints {
				v.Revision = 0
				next.Endpoints[idx] = v
			}
			c.change(&next)
			rev := uint32(100)
			_, final := plan(base, next, func() uint32 { rev++; return rev })
			var bumped []uint32
			for _, idx := range []uint32{1, 2} {
				if final[idx].Revision != base.Endpoints[idx].Revision {
					bumped = append(bumped, idx)
					if final[idx].Revision <= 100 {
						t.Errorf("endpoint %d revision %d not from the counter", idx, final[idx].Revision)
					}
				}
			}
			if fmt.Sprint(bumped) != fmt.Sprint(c.bumped) {
				t.Errorf("bumped %v, want %v", bumped, c.bumped)
			}
		})
	}
}

func TestPlanOfEqualEntriesIsEmpty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	e := randomEntries(r)
	ops, _ := plan(e, e.clone(), func() uint32 { t.Fatal("revision taken for no change"); return 0 })
	if len(ops) != 0 {
		t.Errorf("plan for no change has %d ops: %+v", len(ops), ops)
	}
}

// TestPlanWritesNewEndpointsIsolatedFirst stops plans between random map
// contents after every element: once the first step has run, an endpoint
// the old contents lacked (unmanaged, passing everything) passes only what
// the new contents let it pass (or the host's ingress), so a plan cut short by a full map never
// leaves a new pod open. The first op holds every new endpoint, isolated
// both ways with the transitional identity.
func TestPlanWritesNewEndpointsIsolatedFirst(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	probes := allProbes()
	for i := range 300 {
		old, next := randomEntries(r), randomEntries(r)
		for k, v := range next.Endpoints {
			v.Revision = 0
			next.Endpoints[k] = v
		}
		var added []uint32
		for idx := range next.Endpoints {
			if _, ok := old.Endpoints[idx]; !ok {
				added = append(added, idx)
			}
		}
		counter := uint32(1000)
		ops, final := plan(old, next, func() uint32 { counter++; return counter })
		if len(added) == 0 {
			continue
		}
		first := ops[0]
		if first.target != mapEndpoints || first.delete || first.step != "tighten endpoints" {
			t.Fatalf("case %d: first op is %q on %s, want the tightened endpoints", i, first.step, first.target)
		}
		firstKeys, firstValues := first.keys.([]uint32), first.values.([]bpf.PalisadeEndpointValue)
		for _, idx := range added {
			j := slices.Index(firstKeys, idx)
			if j < 0 {
				t.Fatalf("case %d: new endpoint %d not in the first op", i, idx)
			}
			v := firstValues[j]
			if v.Identity != transitIdentity || v.Flags != isolationFlags || v.Revision == 0 || v.Revision == final[idx].Revision {
				t.Fatalf("case %d: new endpoint %d first written as %+v, want isolated, identity %d, a revision of its own", i, idx, v, transitIdentity)
			}
		}
		newPass := make([]bool, len(probes))
		for j, p := range probes {
			newPass[j], _ = modelVerdict(next, p.ifindex, p.dir, p.addr, p.proto, p.port)
		}
		cur := old.clone()
		applyOp(&cur, first, first.len())
		for _, o := range ops[1:] {
			for n := 0; n <= o.len(); n++ {
				mid := cur.clone()
				applyOp(&mid, o, n)
				for j, p := range probes {
					if !slices.Contains(added, p.ifindex) {
						continue
					}
					// The host's ingress passes every endpoint; what
					// is the host's may change during the plan.
					fromHost := p.dir == uint8(bpf.PalisadeDirectionDIR_INGRESS) && modelLookup(mid.IPs, p.addr) == uint32(bpf.PalisadeIdentityIDENTITY_HOST)
					if pass, _ := modelVerdict(mid, p.ifindex, p.dir, p.addr, p.proto, p.port); pass && !newPass[j] && !fromHost {
						t.Fatalf("case %d: stopped after %d of %q, new endpoint: %s passes; the new state does not let it", i, n, o.step, p)
					}
				}
			}
			applyOp(&cur, o, o.len())
		}
	}
}

// TestPlanNewEndpointFullMapLeavesItClosed is the case the ordering is
// for: a new pod in an unisolated namespace (next passes everything) whose
// allows do not fit. Cut after the first op, the pod is isolated.
func TestPlanNewEndpointFullMapLeavesItClosed(t *testing.T) {
	cur := newEntries()
	next := newEntries()
	next.Endpoints[7] = bpf.PalisadeEndpointValue{Identity: 256, Flags: fIn}
	next.Policy[bpf.PalisadePolicyKey{LocalIdentity: 256, Direction: 1, Protocol: 6, Dport: 80}] = bpf.PalisadePolicyValue{Verdict: allow, RuleId: 1}
	rev := uint32(0)
	ops, _ := plan(cur, next, func() uint32 { rev++; return rev })
	var steps []string
	for _, o := range ops {
		steps = append(steps, o.step)
	}
	if want := []string{"tighten endpoints", "add allows", "set endpoints"}; !slices.Equal(steps, want) {
		t.Fatalf("steps %q, want %q", steps, want)
	}
	mid := cur.clone()
	applyOp(&mid, ops[0], ops[0].len())
	for _, dir := range []uint8{1, 2} {
		if pass, _ := modelVerdict(mid, 7, dir, netip.MustParseAddr("10.1.2.3"), 6, 80); pass {
			t.Errorf("direction %d passes with the allows not written", dir)
		}
	}
}
