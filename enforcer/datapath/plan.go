package datapath

import (
	"net/netip"
	"slices"

	"github.com/palisade-dev/palisade/bpf"
)

// transitIdentity stands in, during one Sync, for every address whose
// identity changes and every endpoint whose own identity changes. The
// compiler allocates workload identities from 256 and only world (1) and
// host (2) below that, so no rule names 255: a peer holding it matches
// only "any peer" entries, and an endpoint holding it matches none.
const transitIdentity = 255

const (
	isolationFlags = uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_INGRESS_ISOLATED | bpf.PalisadeEndpointFlagsENDPOINT_F_EGRESS_ISOLATED)
	auditFlag      = uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_AUDIT)
	ingressIso     = uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_INGRESS_ISOLATED)
)

// mapID names the maps a plan writes.
type mapID int

const (
	mapIPIdentity mapID = iota
	mapEndpoints
	mapPolicy
	mapPolicyRanges
	mapServiceCIDRs
	mapEndpointIPs
	mapSourceCIDRs
)

func (m mapID) String() string {
	switch m {
	case mapIPIdentity:
		return bpf.PalisadeMapIpIdentity
	case mapEndpoints:
		return bpf.PalisadeMapEndpoints
	case mapPolicy:
		return bpf.PalisadeMapPolicy
	case mapPolicyRanges:
		return bpf.PalisadeMapPolicyRanges
	case mapServiceCIDRs:
		return bpf.PalisadeMapServiceCidrs
	case mapEndpointIPs:
		return bpf.PalisadeMapEndpointIps
	case mapSourceCIDRs:
		return bpf.PalisadeMapSourceCidrs
	}
	return "unknown map"
}

// op is one batch write: keys (and, for upserts, values) are slices of
// the target map's key and value types. The kernel applies a batch element
// by element, in order, so the plan's argument holds inside a batch too.
type op struct {
	step   string
	target mapID
	delete bool
	keys   any
	values any
}

func (o op) len() int {
	switch k := o.keys.(type) {
	case []bpf.PalisadeIpKey:
		return len(k)
	case []uint32:
		return len(k)
	case []bpf.PalisadePolicyKey:
		return len(k)
	case []bpf.PalisadePolicyRangeKey:
		return len(k)
	case []bpf.PalisadeAddrKey:
		return len(k)
	case []bpf.PalisadeSourceCidrKey:
		return len(k)
	}
	return 0
}

// plan returns the writes that turn the maps holding cur into maps
// holding next, and next's endpoints with their revisions.
//
// The order guarantees that at every moment in between (every single
// element written) a packet passes only if cur or next lets it pass. It
// runs in two phases:
//
// Tighten, where every moment allows no more than cur:
//  1. endpoints that change get a transitional value: isolated in every
//     direction either side isolates, audit only if both audit, identity
//     transitIdentity if it changes (no rule names it). Set before any
//     allow is withdrawn, so that an endpoint losing its last open
//     direction never sees the old allows without its new isolation.
//     Endpoints cur lacks are written here too, isolated both ways with
//     transitIdentity (see newEndpointTransit): a plan that stops at any
//     later step (ErrMapFull) leaves them closed, never unmanaged.
//  2. endpoint_ips entries next lacks or points elsewhere are deleted: a
//     packet judged after DNAT whose source address has no entry is
//     dropped, so no moment judges it as another pod's egress. So is a
//     packet from a pod whose source is neither in endpoint_ips for its
//     interface nor in source_cidrs, whose entries next lacks are deleted
//     here too: an address or range a pod loses stops passing first.
//  3. policy and policy_ranges keys next lacks are deleted.
//  4. every ip_identity prefix that appears, disappears or changes
//     identity is set to transitIdentity. With all old and new prefixes
//     present, an address resolves to its unchanged identity or to
//     transitIdentity whatever the order of the writes.
//
// After step 4 the maps allow only what both cur and next allow: rules are
// cur∩next, every changed address or endpoint identity matches no rule
// but "any peer" ones, isolation is the union, audit the intersection.
//
// Pivot: service_cidrs entries next lacks are deleted, then those it adds
// are written. Neither judging egress to a service address before DNAT
// (against the address) nor after (against the backend) is the stricter
// one in general, so the ranges change only here, where the rules in
// force are those both States share: up to this point a flow is treated
// as cur treats it, under rules no looser than cur's; from here on as next
// treats it, under rules no looser than next's.
//
// Loosen, where every moment allows no more than next:
//  5. policy and policy_ranges keys next adds (or re-attributes) are
//     written. Identities are still next's or transitional, so a new
//     allow can only apply to whom next applies it.
//  6. ip_identity prefixes get next's identities, then prefixes next
//     lacks are deleted (all of next's prefixes are present throughout,
//     so each address resolves to next's identity or transitIdentity).
//  7. endpoints get next's values, with a fresh revision from the
//     node-wide counter wherever a verdict may have changed. Only now,
//     with every other map final, are tracked flows judged again: a
//     revision bumped earlier would let a flow be re-judged against an
//     intermediate state and keep that verdict.
//  8. endpoints next lacks are deleted (Sync detaches their interfaces
//     afterwards), then endpoint_ips entries next adds or points
//     elsewhere are written: every endpoint they can name holds next's
//     value by now, and none of cur's leftovers remains to be named.
//     Then source_cidrs entries next adds, for the same reason: a pod
//     may send from a new address or range only once it is enforced as
//     next has it.
//
// An endpoint keeps its revision only when nothing that can decide one of
// its verdicts changed: its identity and flags, any entry keyed by its
// identity, and the effective identity of any address it has a peer-
// specific entry for (or of the host's, if its ingress is isolated).
func plan(cur, next Entries, nextRevision func() uint32) ([]op, map[uint32]bpf.PalisadeEndpointValue) {
	var ops []op
	add := func(o op) {
		if o.len() > 0 {
			ops = append(ops, o)
		}
	}

	// 1. transitional endpoint values.
	var transit keyValues[uint32, bpf.PalisadeEndpointValue]
	for _, idx := range sortedKeys(next.Endpoints, cmpUint32) {
		old, ok := cur.Endpoints[idx]
		nv := next.Endpoints[idx]
		if !ok {
			transit.add(idx, newEndpointTransit(nextRevision()))
			continue
		}
		if old.Identity == nv.Identity && old.Flags == nv.Flags {
			continue
		}
		t := old
		if old.Identity != nv.Identity {
			t.Identity = transitIdentity
		}
		t.Flags = (old.Flags|nv.Flags)&isolationFlags | old.Flags&nv.Flags&auditFlag
		if t != old {
			transit.add(idx, t)
		}
	}
	add(op{step: "tighten endpoints", target: mapEndpoints, keys: transit.keys, values: transit.values})

	// 2. pod addresses that go or move.
	var goneIPs []bpf.PalisadeAddrKey
	for _, k := range sortedKeys(cur.EndpointIPs, compareAddrKey) {
		if v, ok := next.EndpointIPs[k]; !ok || v != cur.EndpointIPs[k] {
			goneIPs = append(goneIPs, k)
		}
	}
	add(op{step: "withdraw pod addresses", target: mapEndpointIPs, delete: true, keys: goneIPs})
	add(op{step: "withdraw source ranges", target: mapSourceCIDRs, delete: true, keys: deletedKeys(cur.SourceCIDRs, next.SourceCIDRs, compareSourceCIDRKey)})

	// 3. withdrawn allows.
	add(op{step: "withdraw allows", target: mapPolicy, delete: true, keys: deletedKeys(cur.Policy, next.Policy, comparePolicyKey)})
	add(op{step: "withdraw range allows", target: mapPolicyRanges, delete: true, keys: deletedKeys(cur.PolicyRanges, next.PolicyRanges, compareRangeKey)})

	// 4. quarantine changing prefixes.
	changed := changedIPKeys(cur.IPs, next.IPs)
	var quarantine keyValues[bpf.PalisadeIpKey, bpf.PalisadeIdentityValue]
	for _, k := range changed {
		if v, ok := cur.IPs[k]; !ok || v.Identity != transitIdentity {
			quarantine.add(k, bpf.PalisadeIdentityValue{Identity: transitIdentity})
		}
	}
	add(op{step: "quarantine changing addresses", target: mapIPIdentity, keys: quarantine.keys, values: quarantine.values})

	// Pivot: service ranges.
	add(op{step: "delete service ranges", target: mapServiceCIDRs, delete: true, keys: deletedKeys(cur.ServiceCIDRs, next.ServiceCIDRs, compareIPKey)})
	svc := upserts(cur.ServiceCIDRs, next.ServiceCIDRs, compareIPKey)
	add(op{step: "add service ranges", target: mapServiceCIDRs, keys: svc.keys, values: svc.values})

	// 5. new allows.
	pol := upserts(cur.Policy, next.Policy, comparePolicyKey)
	add(op{step: "add allows", target: mapPolicy, keys: pol.keys, values: pol.values})
	rng := upserts(cur.PolicyRanges, next.PolicyRanges, compareRangeKey)
	add(op{step: "add range allows", target: mapPolicyRanges, keys: rng.keys, values: rng.values})

	// 6. final identities.
	var ipUp keyValues[bpf.PalisadeIpKey, bpf.PalisadeIdentityValue]
	var ipDel []bpf.PalisadeIpKey
	for _, k := range changed {
		if v, ok := next.IPs[k]; ok {
			ipUp.add(k, v)
		} else {
			ipDel = append(ipDel, k)
		}
	}
	add(op{step: "set identities", target: mapIPIdentity, keys: ipUp.keys, values: ipUp.values})
	add(op{step: "delete identities", target: mapIPIdentity, delete: true, keys: ipDel})

	// 7. final endpoints, revisions bumped where verdicts may change.
	affected := affectedLocals(cur, next, changed)
	final := make(map[uint32]bpf.PalisadeEndpointValue, len(next.Endpoints))
	var eps keyValues[uint32, bpf.PalisadeEndpointValue]
	for _, idx := range sortedKeys(next.Endpoints, cmpUint32) {
		nv := next.Endpoints[idx]
		old, ok := cur.Endpoints[idx]
		switch {
		case ok && old.Revision != 0 && old.Identity == nv.Identity && old.Flags == nv.Flags && !affected(nv):
			nv.Revision = old.Revision
		default:
			nv.Revision = nextRevision()
		}
		final[idx] = nv
		if !ok || old != nv {
			eps.add(idx, nv)
		}
	}
	add(op{step: "set endpoints", target: mapEndpoints, keys: eps.keys, values: eps.values})

	// 8. endpoints that are gone, then pod addresses. Addresses removed
	// in step 2 only because they moved are written back here.
	add(op{step: "delete endpoints", target: mapEndpoints, delete: true, keys: deletedKeys(cur.Endpoints, next.Endpoints, cmpUint32)})
	var ipsUp keyValues[bpf.PalisadeAddrKey, bpf.PalisadeEndpointIpValue]
	for _, k := range sortedKeys(next.EndpointIPs, compareAddrKey) {
		if v, ok := cur.EndpointIPs[k]; !ok || v != next.EndpointIPs[k] {
			ipsUp.add(k, next.EndpointIPs[k])
		}
	}
	add(op{step: "add pod addresses", target: mapEndpointIPs, keys: ipsUp.keys, values: ipsUp.values})
	src := upserts(cur.SourceCIDRs, next.SourceCIDRs, compareSourceCIDRKey)
	add(op{step: "add source ranges", target: mapSourceCIDRs, keys: src.keys, values: src.values})
	return ops, final
}

// newEndpointTransit is what an endpoint the maps do not hold yet holds
// until the plan's last steps: both directions isolated, no audit, and an
// identity no rule is keyed by, so nothing but the host's ingress (always
// let through) reaches it. Its revision is its own (not the final one), so that flows
// judged meanwhile are judged again once the endpoint holds its value.
// Sync writes the same value to the endpoints a failed plan touched.
func newEndpointTransit(revision uint32) bpf.PalisadeEndpointValue {
	return bpf.PalisadeEndpointValue{Identity: transitIdentity, Flags: isolationFlags, Revision: revision}
}

// affectedLocals returns whether an endpoint (by its next value) may judge
// some flow differently because rules keyed by its identity changed, or
// because an address it has a peer-specific rule for changed identity.
func affectedLocals(cur, next Entries, changedIPs []bpf.PalisadeIpKey) func(bpf.PalisadeEndpointValue) bool {
	locals := map[uint32]bool{}
	for k := range symmetricDiff(cur.Policy, next.Policy) {
		locals[k.LocalIdentity] = true
	}
	for k := range symmetricDiff(cur.PolicyRanges, next.PolicyRanges) {
		locals[k.LocalIdentity] = true
	}
	peers := map[uint32]bool{}
	for _, k := range changedIPs {
		peers[effectiveIdentity(cur.IPs, k)] = true
		peers[effectiveIdentity(next.IPs, k)] = true
	}
	// Every-pod entries change verdicts only where an address moves
	// between a pod identity and anything else.
	// Family ones where it moves between an addressed identity (world,
	// pod, CIDR) and the host.
	podness, addressedness := false, false
	for _, k := range changedIPs {
		was, is := effectiveIdentity(cur.IPs, k), effectiveIdentity(next.IPs, k)
		podness = podness || isPodIdentity(was) != isPodIdentity(is)
		addressedness = addressedness || isAddressedIdentity(was) != isAddressedIdentity(is)
	}
	if len(peers) > 0 {
		mark := func(local, peer uint32) {
			switch peer {
			case uint32(bpf.PalisadeIdentityIDENTITY_ANY):
			case uint32(bpf.PalisadeIdentityIDENTITY_ANY_POD):
				locals[local] = locals[local] || podness
			case uint32(bpf.PalisadeIdentityIDENTITY_ANY_IPV4), uint32(bpf.PalisadeIdentityIDENTITY_ANY_IPV6):
				locals[local] = locals[local] || addressedness
			default:
				locals[local] = locals[local] || peers[peer]
			}
		}
		for _, m := range []map[bpf.PalisadePolicyKey]bpf.PalisadePolicyValue{cur.Policy, next.Policy} {
			for k := range m {
				mark(k.LocalIdentity, k.PeerIdentity)
			}
		}
		for _, m := range []map[bpf.PalisadePolicyRangeKey]bpf.PalisadePolicyValue{cur.PolicyRanges, next.PolicyRanges} {
			for k := range m {
				mark(k.LocalIdentity, k.PeerIdentity)
			}
		}
	}
	hostChanged := peers[uint32(bpf.PalisadeIdentityIDENTITY_HOST)]
	return func(ep bpf.PalisadeEndpointValue) bool {
		return locals[ep.Identity] || hostChanged && ep.Flags&ingressIso != 0
	}
}

// isPodIdentity is bpf/include/policy.h's is_pod_identity: what
// IDENTITY_ANY_POD entries match.
func isPodIdentity(id uint32) bool {
	return id >= uint32(bpf.PalisadeIdentityIDENTITY_FIRST_USER) && id < uint32(bpf.PalisadeIdentityIDENTITY_FIRST_CIDR)
}

// isAddressedIdentity is policy.h's is_addressed_identity: what the
// family wildcards match.
func isAddressedIdentity(id uint32) bool {
	return id == uint32(bpf.PalisadeIdentityIDENTITY_WORLD) || id >= uint32(bpf.PalisadeIdentityIDENTITY_FIRST_USER)
}

// effectiveIdentity is the identity the addresses of prefix k resolve to
// in ips, leaving aside longer prefixes inside k: k's own entry, else the
// longest entry containing it, else world.
func effectiveIdentity(ips map[bpf.PalisadeIpKey]bpf.PalisadeIdentityValue, k bpf.PalisadeIpKey) uint32 {
	if v, ok := ips[k]; ok {
		return v.Identity
	}
	p, ok := prefixOf(k)
	if !ok {
		return uint32(bpf.PalisadeIdentityIDENTITY_WORLD)
	}
	for bits := p.Bits() - 1; bits >= 0; bits-- {
		outer, err := bpf.NewIPKey(netip.PrefixFrom(p.Addr(), bits).Masked())
		if err != nil {
			break
		}
		if v, ok := ips[outer]; ok {
			return v.Identity
		}
	}
	return uint32(bpf.PalisadeIdentityIDENTITY_WORLD)
}

// keyValues collects a batch.
type keyValues[K, V any] struct {
	keys   []K
	values []V
}

func (kv *keyValues[K, V]) add(k K, v V) {
	kv.keys = append(kv.keys, k)
	kv.values = append(kv.values, v)
}

// upserts lists the keys of next that cur lacks or holds with another value.
func upserts[K comparable, V comparable](cur, next map[K]V, cmp func(a, b K) int) keyValues[K, V] {
	var kv keyValues[K, V]
	for _, k := range sortedKeys(next, cmp) {
		if v, ok := cur[k]; !ok || v != next[k] {
			kv.add(k, next[k])
		}
	}
	return kv
}

func deletedKeys[K comparable, V any](cur, next map[K]V, cmp func(a, b K) int) []K {
	var out []K
	for _, k := range sortedKeys(cur, cmp) {
		if _, ok := next[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// changedIPKeys lists the prefixes that appear, disappear or change.
func changedIPKeys(cur, next map[bpf.PalisadeIpKey]bpf.PalisadeIdentityValue) []bpf.PalisadeIpKey {
	var out []bpf.PalisadeIpKey
	for k, v := range next {
		if o, ok := cur[k]; !ok || o != v {
			out = append(out, k)
		}
	}
	for k := range cur {
		if _, ok := next[k]; !ok {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, compareIPKey)
	return out
}

// symmetricDiff yields the keys present in exactly one of a and b.
func symmetricDiff[K comparable, V any](a, b map[K]V) map[K]struct{} {
	out := map[K]struct{}{}
	for k := range a {
		if _, ok := b[k]; !ok {
			out[k] = struct{}{}
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out[k] = struct{}{}
		}
	}
	return out
}

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, cmp)
	return out
}

func cmpUint32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareIPKey(a, b bpf.PalisadeIpKey) int {
	if a.Family != b.Family {
		return int(a.Family) - int(b.Family)
	}
	if c := slices.Compare(a.Addr[:], b.Addr[:]); c != 0 {
		return c
	}
	return cmpUint32(a.Prefixlen, b.Prefixlen)
}

func compareAddrKey(a, b bpf.PalisadeAddrKey) int {
	if a.Family != b.Family {
		return int(a.Family) - int(b.Family)
	}
	return slices.Compare(a.Addr[:], b.Addr[:])
}

func compareSourceCIDRKey(a, b bpf.PalisadeSourceCidrKey) int {
	switch {
	case a.Ifindex != b.Ifindex:
		return cmpUint32(a.Ifindex, b.Ifindex)
	case a.Family != b.Family:
		return int(a.Family) - int(b.Family)
	}
	if c := slices.Compare(a.Addr[:], b.Addr[:]); c != 0 {
		return c
	}
	return cmpUint32(a.Prefixlen, b.Prefixlen)
}

func comparePolicyKey(a, b bpf.PalisadePolicyKey) int {
	switch {
	case a.LocalIdentity != b.LocalIdentity:
		return cmpUint32(a.LocalIdentity, b.LocalIdentity)
	case a.PeerIdentity != b.PeerIdentity:
		return cmpUint32(a.PeerIdentity, b.PeerIdentity)
	case a.Direction != b.Direction:
		return int(a.Direction) - int(b.Direction)
	case a.Protocol != b.Protocol:
		return int(a.Protocol) - int(b.Protocol)
	}
	return int(a.Dport) - int(b.Dport)
}

func compareRangeKey(a, b bpf.PalisadePolicyRangeKey) int {
	switch {
	case a.LocalIdentity != b.LocalIdentity:
		return cmpUint32(a.LocalIdentity, b.LocalIdentity)
	case a.PeerIdentity != b.PeerIdentity:
		return cmpUint32(a.PeerIdentity, b.PeerIdentity)
	case a.Direction != b.Direction:
		return int(a.Direction) - int(b.Direction)
	case a.Protocol != b.Protocol:
		return int(a.Protocol) - int(b.Protocol)
	case a.Dport != b.Dport:
		return int(a.Dport) - int(b.Dport)
	}
	return cmpUint32(a.Prefixlen, b.Prefixlen)
}
