package policy

import (
	"net/netip"
	"slices"
)

// State is the compiled, datapath-ready result. Every slice is sorted, so
// two compilations of the same input are equal field by field; Diff tells a
// datapath what to change.
type State struct {
	// Identities, by ID: the reserved ones, then workload, then CIDR.
	Identities []Identity
	// IPs, by prefix (family, address, length).
	IPs []IPEntry
	// Endpoints, by pod namespace/name: the pods enforced here.
	Endpoints []LocalEndpoint
	// Rules, by key: allow entries for the local endpoints' identities.
	Rules []Rule
	// RuleSources, by ID: where each rule came from.
	RuleSources []RuleSource

	// idx speeds up Decide; it is derived from the fields above.
	idx *stateIndex
}

// Identity returns the description of id.
func (s *State) Identity(id NumericIdentity) (Identity, bool) {
	i, ok := slices.BinarySearchFunc(s.Identities, id, func(e Identity, t NumericIdentity) int { return cmpNum(e.ID, t) })
	if !ok {
		return Identity{}, false
	}
	return s.Identities[i], true
}

// RuleSource returns the source with the given ID.
func (s *State) RuleSource(id uint32) (RuleSource, bool) {
	i, ok := slices.BinarySearchFunc(s.RuleSources, id, func(e RuleSource, t uint32) int { return cmpNum(e.ID, t) })
	if !ok {
		return RuleSource{}, false
	}
	return s.RuleSources[i], true
}

// Endpoint returns the local endpoint of a pod.
func (s *State) Endpoint(pod PodRef) (LocalEndpoint, bool) {
	i, ok := slices.BinarySearchFunc(s.Endpoints, pod, func(e LocalEndpoint, t PodRef) int { return comparePodRef(e.Pod, t) })
	if !ok {
		return LocalEndpoint{}, false
	}
	return s.Endpoints[i], true
}

// Lookup returns the identity the datapath derives for addr: the entry of
// the longest prefix containing it, else IdentityWorld.
func (s *State) Lookup(addr netip.Addr) NumericIdentity {
	return s.index().lookup(addr.Unmap())
}

// Equal reports whether s and o hold the same state.
func (s *State) Equal(o *State) bool {
	return slices.EqualFunc(s.Identities, o.Identities, identityEqual) &&
		slices.Equal(s.IPs, o.IPs) &&
		slices.EqualFunc(s.Endpoints, o.Endpoints, endpointEqual) &&
		slices.EqualFunc(s.Rules, o.Rules, func(a, b Rule) bool { return a.RuleKey == b.RuleKey && slices.Equal(a.Sources, b.Sources) }) &&
		slices.Equal(s.RuleSources, o.RuleSources)
}

func identityEqual(a, b Identity) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.Key == b.Key
}

func endpointEqual(a, b LocalEndpoint) bool {
	return a.Pod == b.Pod && slices.Equal(a.IPs, b.IPs) && a.Identity == b.Identity &&
		a.IngressIsolated == b.IngressIsolated && a.EgressIsolated == b.EgressIsolated &&
		slices.Equal(a.IngressIsolatedBy, b.IngressIsolatedBy) && slices.Equal(a.EgressIsolatedBy, b.EgressIsolatedBy) &&
		a.Mode == b.Mode && a.Revision == b.Revision
}

func compareIPEntry(a, b IPEntry) int { return comparePrefix(a.Prefix, b.Prefix) }

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmpNum(a.Bits(), b.Bits())
}
