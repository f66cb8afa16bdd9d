package datapath

import (
	"errors"
	"fmt"
	"math"
	"net/netip"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// IfindexFunc finds the host-side interface of a local pod: the index the
// programs see as skb->ifindex.
type IfindexFunc func(policy.LocalEndpoint) (int, error)

// Entries is the exact content of the maps the enforcer owns, as the bpf
// package encodes it. Endpoint revisions are left zero by Translate: they
// come from the Datapath's node-wide counter when Sync writes them.
type Entries struct {
	IPs          map[bpf.PalisadeIpKey]bpf.PalisadeIdentityValue
	Endpoints    map[uint32]bpf.PalisadeEndpointValue
	Policy       map[bpf.PalisadePolicyKey]bpf.PalisadePolicyValue
	PolicyRanges map[bpf.PalisadePolicyRangeKey]bpf.PalisadePolicyValue
	// ServiceCIDRs are the service address ranges whose egress is judged
	// after the node's DNAT, against the backend (Translate's services).
	ServiceCIDRs map[bpf.PalisadeIpKey]bpf.PalisadeServiceValue
	// EndpointIPs maps each enforced pod's addresses to its interface:
	// how a packet judged after DNAT, away from its source's interface,
	// finds its source. Every entry names an endpoint of Endpoints (the
	// plan's ordering relies on it).
	EndpointIPs map[bpf.PalisadeAddrKey]bpf.PalisadeEndpointIpValue
	// SourceCIDRs are the ranges each endpoint may send from besides its
	// own addresses (policy.LocalEndpoint.SourceCIDRs), keyed by its
	// interface. Every entry names an endpoint of Endpoints.
	SourceCIDRs map[bpf.PalisadeSourceCidrKey]bpf.PalisadeSourceCidrValue

	// Pods names the pod behind each endpoint, for reports.
	Pods map[uint32]policy.PodRef
	// Unresolved holds the endpoints left out because their interface
	// could not be found (or clashed with another pod's); they are not
	// enforced until a later Translate resolves them.
	Unresolved map[policy.PodRef]error
}

func newEntries() Entries {
	return Entries{
		IPs:          map[bpf.PalisadeIpKey]bpf.PalisadeIdentityValue{},
		Endpoints:    map[uint32]bpf.PalisadeEndpointValue{},
		Policy:       map[bpf.PalisadePolicyKey]bpf.PalisadePolicyValue{},
		PolicyRanges: map[bpf.PalisadePolicyRangeKey]bpf.PalisadePolicyValue{},
		ServiceCIDRs: map[bpf.PalisadeIpKey]bpf.PalisadeServiceValue{},
		EndpointIPs:  map[bpf.PalisadeAddrKey]bpf.PalisadeEndpointIpValue{},
		SourceCIDRs:  map[bpf.PalisadeSourceCidrKey]bpf.PalisadeSourceCidrValue{},
		Pods:         map[uint32]policy.PodRef{},
		Unresolved:   map[policy.PodRef]error{},
	}
}

// Translate computes the map entries that enforce state on this node.
// ifindex resolves each local endpoint's host interface; an endpoint it
// cannot resolve is left out and listed in Entries.Unresolved rather than
// failing the whole node. The error reports input no datapath can hold
// (a rule or prefix that cannot be encoded), naming it.
//
// services are the cluster's service address ranges (kube-apiserver's
// --service-cluster-ip-range): pods' egress to them is deferred to the
// post-DNAT hooks and judged against the backend. None defers nothing:
// egress to a service address is then judged against the address itself.
func Translate(state *policy.State, ifindex IfindexFunc, services ...netip.Prefix) (Entries, error) {
	if state == nil {
		return Entries{}, errors.New("translate state: nil state")
	}
	if ifindex == nil {
		return Entries{}, errors.New("translate state: nil ifindex resolver")
	}
	e := newEntries()
	if err := e.addIPs(state.IPs); err != nil {
		return Entries{}, err
	}
	if err := e.addRules(state.Rules); err != nil {
		return Entries{}, err
	}
	if err := e.addServices(services); err != nil {
		return Entries{}, err
	}
	e.addEndpoints(state.Endpoints, ifindex)
	return e, nil
}

func (e *Entries) addServices(services []netip.Prefix) error {
	for _, p := range services {
		k, err := bpf.NewIPKey(p.Masked())
		if err != nil {
			return fmt.Errorf("translate service range %s: %w", p, err)
		}
		e.ServiceCIDRs[k] = bpf.PalisadeServiceValue{}
	}
	return nil
}

// NewAddrKey encodes a pod address as an endpoint_ips key.
func NewAddrKey(a netip.Addr) (bpf.PalisadeAddrKey, bool) {
	a = a.Unmap()
	switch {
	case a.Is4():
		k := bpf.PalisadeAddrKey{Family: uint8(bpf.PalisadeFamilyFAMILY_IPV4)}
		v4 := a.As4()
		copy(k.Addr[:], v4[:])
		return k, true
	case a.Is6():
		return bpf.PalisadeAddrKey{Family: uint8(bpf.PalisadeFamilyFAMILY_IPV6), Addr: a.As16()}, true
	}
	return bpf.PalisadeAddrKey{}, false
}

func (e *Entries) addIPs(ips []policy.IPEntry) error {
	for _, ip := range ips {
		if ip.Identity == policy.IdentityUnknown {
			return fmt.Errorf("translate ip %s: identity 0 names no peer", ip.Prefix)
		}
		// The kernel matches only a key's first prefixlen bits; masked,
		// equal prefixes are equal keys here too.
		k, err := bpf.NewIPKey(ip.Prefix.Masked())
		if err != nil {
			return fmt.Errorf("translate ip %s: %w", ip.Prefix, err)
		}
		v := bpf.PalisadeIdentityValue{Identity: uint32(ip.Identity)}
		if prev, dup := e.IPs[k]; dup && prev != v {
			// Only an IPv4-mapped prefix and its IPv4 twin share a key.
			return fmt.Errorf("translate ip %s: same key as another prefix with identity %d, this one %d", ip.Prefix, prev.Identity, v.Identity)
		}
		e.IPs[k] = v
	}
	return nil
}

func (e *Entries) addRules(rules []policy.Rule) error {
	for _, r := range rules {
		if err := e.addRule(r); err != nil {
			return fmt.Errorf("translate rule %s: %w", r.RuleKey, err)
		}
	}
	return nil
}

func (e *Entries) addRule(r policy.Rule) error {
	if r.Direction != policy.Ingress && r.Direction != policy.Egress {
		return fmt.Errorf("invalid direction %d", r.Direction)
	}
	if r.Local == policy.IdentityUnknown {
		return errors.New("local identity 0 names no endpoint")
	}
	if r.Protocol == policy.ProtocolAny && (r.Port != 0 || r.EndPort != 0) {
		return errors.New("a port needs a protocol")
	}
	if r.Port == 0 && r.EndPort != 0 {
		return errors.New("a port range needs a start port")
	}
	v := bpf.PalisadePolicyValue{Verdict: uint8(bpf.PalisadePolicyVerdictPOLICY_ALLOW), RuleId: r.RuleID()}
	if r.EndPort == 0 || r.EndPort == r.Port {
		k := bpf.PalisadePolicyKey{
			LocalIdentity: uint32(r.Local),
			PeerIdentity:  uint32(r.Peer),
			Direction:     uint8(r.Direction),
			Protocol:      uint8(r.Protocol),
			Dport:         r.Port,
		}
		e.Policy[k] = lowerRuleID(e.Policy, k, v)
		return nil
	}
	keys, err := bpf.NewPolicyRangeKeys(uint32(r.Local), uint32(r.Peer), bpf.PalisadeDirection(r.Direction), uint8(r.Protocol), r.Port, r.EndPort)
	if err != nil {
		return err
	}
	for _, k := range keys {
		e.PolicyRanges[k] = lowerRuleID(e.PolicyRanges, k, v)
	}
	return nil
}

// lowerRuleID keeps the lower rule id where two rules need the same key
// (overlapping port ranges): both allow, so only which one a flow record
// names depends on the choice, and it must not depend on map order.
func lowerRuleID[K comparable](m map[K]bpf.PalisadePolicyValue, k K, v bpf.PalisadePolicyValue) bpf.PalisadePolicyValue {
	if prev, ok := m[k]; ok && prev.RuleId < v.RuleId {
		return prev
	}
	return v
}

func (e *Entries) addEndpoints(eps []policy.LocalEndpoint, ifindex IfindexFunc) {
	for _, ep := range eps {
		idx, err := ifindex(ep)
		switch {
		case err != nil:
			e.Unresolved[ep.Pod] = fmt.Errorf("find interface of %s: %w", ep.Pod, err)
			continue
		case idx <= 0 || idx > math.MaxUint32:
			e.Unresolved[ep.Pod] = fmt.Errorf("find interface of %s: invalid interface index %d", ep.Pod, idx)
			continue
		case ep.Identity == policy.IdentityUnknown:
			e.Unresolved[ep.Pod] = fmt.Errorf("translate endpoint %s: identity 0 names no endpoint", ep.Pod)
			continue
		}
		k := uint32(idx)
		if other, dup := e.Pods[k]; dup {
			// Endpoints come sorted by pod, so the first one keeps the
			// interface on every translation.
			e.Unresolved[ep.Pod] = fmt.Errorf("find interface of %s: interface %d already belongs to %s", ep.Pod, idx, other)
			continue
		}
		e.Endpoints[k] = endpointValue(ep)
		e.Pods[k] = ep.Pod
		for _, a := range ep.IPs {
			ak, ok := NewAddrKey(a)
			if _, taken := e.EndpointIPs[ak]; !ok || taken {
				continue // the first pod (by name) keeps a shared address
			}
			e.EndpointIPs[ak] = bpf.PalisadeEndpointIpValue{Ifindex: k}
		}
		for _, p := range ep.SourceCIDRs {
			sk, err := bpf.NewSourceCIDRKey(k, p.Masked())
			if err != nil {
				continue // the compiler hands out only valid prefixes; none granted otherwise
			}
			e.SourceCIDRs[sk] = bpf.PalisadeSourceCidrValue{}
		}
	}
}

func endpointValue(ep policy.LocalEndpoint) bpf.PalisadeEndpointValue {
	var flags uint32
	if ep.IngressIsolated {
		flags |= uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_INGRESS_ISOLATED)
	}
	if ep.EgressIsolated {
		flags |= uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_EGRESS_ISOLATED)
	}
	if ep.Mode == policy.ModeAudit {
		flags |= uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_AUDIT)
	}
	return bpf.PalisadeEndpointValue{Identity: uint32(ep.Identity), Flags: flags}
}

// prefixOf decodes an ip_identity key back into the prefix it encodes.
func prefixOf(k bpf.PalisadeIpKey) (netip.Prefix, bool) {
	bits := int(k.Prefixlen) - 32
	switch k.Family {
	case uint8(bpf.PalisadeFamilyFAMILY_IPV4):
		if bits < 0 || bits > 32 {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(k.Addr[:4])), bits), true
	case uint8(bpf.PalisadeFamilyFAMILY_IPV6):
		if bits < 0 || bits > 128 {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(netip.AddrFrom16(k.Addr), bits), true
	}
	return netip.Prefix{}, false
}
