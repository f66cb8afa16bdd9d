package policy

import (
	"fmt"
	"net/netip"
	"strings"
)

// Endpoint is one side of a packet for Decide: an address, or the node
// itself.
type Endpoint struct {
	IP netip.Addr
	// Host marks the node the State was compiled for; IP may then be
	// unset.
	Host bool
}

// EndpointOf returns the Endpoint of a pod's primary address.
func (s *State) EndpointOf(pod PodRef) (Endpoint, bool) {
	ep, ok := s.Endpoint(pod)
	if !ok || len(ep.IPs) == 0 {
		return Endpoint{}, false
	}
	return Endpoint{IP: ep.IPs[0]}, true
}

// Cause says why one direction of a packet was allowed or denied. Values
// 0-4 are the datapath's REASON_* (bpf/include/abi.h); the others are the
// model's own.
type Cause uint8

const (
	// CauseNotLocal: the pod on this side is not enforced by the State
	// (not a pod, or a pod of another node); nothing to judge here.
	CauseNotLocal    Cause = 0
	CausePolicyAllow Cause = 1
	CauseNotIsolated Cause = 2
	CauseHost        Cause = 3
	CausePolicyMiss  Cause = 4
	// CauseLoopback: the packet never leaves the pod.
	CauseLoopback Cause = 128
)

func (c Cause) String() string {
	switch c {
	case CauseNotLocal:
		return "not local"
	case CausePolicyAllow:
		return "allowed by policy"
	case CauseNotIsolated:
		return "not isolated"
	case CauseHost:
		return "from the node"
	case CausePolicyMiss:
		return "no rule allows"
	case CauseLoopback:
		return "loopback"
	}
	return fmt.Sprintf("cause(%d)", uint8(c))
}

// Judgement is the verdict of one direction at one endpoint.
type Judgement struct {
	// Pod is the endpoint judged; zero when Cause is CauseNotLocal.
	Pod      PodRef
	Allowed  bool
	Cause    Cause
	Isolated bool
	// IsolatedBy names the policies isolating this direction.
	IsolatedBy []PolicyRef
	// Rule and Source are the matching entry when Cause is
	// CausePolicyAllow.
	Rule   RuleKey
	Source RuleSource
	// Audit: the endpoint runs in audit mode, so a denial here is only
	// reported.
	Audit bool
}

// Verdict is Decide's answer.
type Verdict struct {
	// Allowed is what the policies decide.
	Allowed bool
	// Passes is what happens to the packet: Allowed, or denied only by
	// endpoints in audit mode.
	Passes bool
	// Egress is judged at the source pod, Ingress at the destination pod.
	Egress, Ingress Judgement
	// SrcIdentity and DstIdentity are the identities the datapath derives.
	SrcIdentity, DstIdentity NumericIdentity
}

// Decide judges a new flow's first packet from src to dst against a
// compiled State only, the way the datapath does: egress at the source pod
// if it is local, ingress at the destination pod if it is local; both must
// allow. port is ignored for protocols without ports.
func Decide(s *State, src, dst Endpoint, proto Protocol, port uint16) Verdict {
	x := s.index()
	if !proto.hasPorts() {
		port = 0
	}
	v := Verdict{SrcIdentity: identityFor(x, src), DstIdentity: identityFor(x, dst)}
	srcEP, dstEP := endpointFor(s, x, src), endpointFor(s, x, dst)
	if srcEP != nil && srcEP == dstEP {
		v.Egress = Judgement{Pod: srcEP.Pod, Allowed: true, Cause: CauseLoopback}
		v.Ingress = v.Egress
		v.Allowed, v.Passes = true, true
		return v
	}
	v.Egress = judge(s, x, srcEP, Egress, v.DstIdentity, dst.IP, proto, port)
	v.Ingress = judge(s, x, dstEP, Ingress, v.SrcIdentity, src.IP, proto, port)
	v.Allowed = v.Egress.Allowed && v.Ingress.Allowed
	v.Passes = (v.Egress.Allowed || v.Egress.Audit) && (v.Ingress.Allowed || v.Ingress.Audit)
	return v
}

func identityFor(x *stateIndex, e Endpoint) NumericIdentity {
	if e.Host {
		return IdentityHost
	}
	if !e.IP.IsValid() {
		return IdentityWorld
	}
	return x.lookup(e.IP.Unmap())
}

func endpointFor(s *State, x *stateIndex, e Endpoint) *LocalEndpoint {
	if e.Host || !e.IP.IsValid() {
		return nil
	}
	if i, ok := x.endpoints[e.IP.Unmap()]; ok {
		return &s.Endpoints[i]
	}
	return nil
}

func judge(s *State, x *stateIndex, ep *LocalEndpoint, dir Direction, peer NumericIdentity, peerIP netip.Addr, proto Protocol, port uint16) Judgement {
	if ep == nil {
		return Judgement{Allowed: true, Cause: CauseNotLocal}
	}
	j := Judgement{Pod: ep.Pod, Audit: ep.Mode == ModeAudit}
	if dir == Ingress {
		j.Isolated, j.IsolatedBy = ep.IngressIsolated, ep.IngressIsolatedBy
	} else {
		j.Isolated, j.IsolatedBy = ep.EgressIsolated, ep.EgressIsolatedBy
	}
	switch {
	case !j.Isolated:
		j.Allowed, j.Cause = true, CauseNotIsolated
	case dir == Ingress && peer == IdentityHost:
		j.Allowed, j.Cause = true, CauseHost
	default:
		// As the datapath: the peer's own entries, every-pod ones,
		// every-address-of-the-family ones, then any-peer ones.
		i, ok := x.allows(ep.Identity, peer, dir, proto, port)
		if !ok && IsPodIdentity(peer) {
			i, ok = x.allows(ep.Identity, PeerAnyPod, dir, proto, port)
		}
		if !ok && IsAddressedIdentity(peer) && peerIP.IsValid() {
			i, ok = x.allows(ep.Identity, FamilyWildcard(peerIP), dir, proto, port)
		}
		if !ok {
			i, ok = x.allows(ep.Identity, PeerAny, dir, proto, port)
		}
		if ok {
			r := s.Rules[i]
			j.Allowed, j.Cause, j.Rule = true, CausePolicyAllow, r.RuleKey
			j.Source, _ = s.RuleSource(r.RuleID())
		} else {
			j.Cause = CausePolicyMiss
		}
	}
	return j
}

// allows looks up the entries for one peer most specific first, as the
// datapath does: exact port, any port of the protocol, a port range, any
// protocol.
func (x *stateIndex) allows(local, peer NumericIdentity, dir Direction, proto Protocol, port uint16) (int, bool) {
	k := RuleKey{Local: local, Peer: peer, Direction: dir, Protocol: proto, Port: port}
	if port != 0 {
		if i, ok := x.rules[k]; ok {
			return i, true
		}
		k.Port = 0
	}
	if i, ok := x.rules[k]; ok {
		return i, true
	}
	if port != 0 {
		for _, r := range x.ranges[k] {
			if r.port <= port && port <= r.end {
				return r.rule, true
			}
		}
	}
	k.Protocol = ProtocolAny
	i, ok := x.rules[k]
	return i, ok
}

// Reason explains the verdict: for an allow, what allowed each enforced
// side ("ingress of x/a allowed by x/p ingress rule 0 (peer 1)"); for a
// drop, only what denied ("ingress of x/a isolated by x/p1, x/p2; no rule
// allows").
func (v Verdict) Reason() string {
	if v.Egress.Cause == CauseLoopback {
		return "allowed: loopback within pod " + v.Egress.Pod.String()
	}
	var b strings.Builder
	if v.Allowed {
		b.WriteString("allowed: ")
	} else {
		b.WriteString("denied: ")
	}
	part := func(dir Direction, j Judgement) string {
		switch j.Cause {
		case CauseNotLocal:
			return ""
		case CauseNotIsolated:
			return fmt.Sprintf("%s of %s not isolated", dir, j.Pod)
		case CauseHost:
			return fmt.Sprintf("%s of %s from the node", dir, j.Pod)
		case CausePolicyAllow:
			return fmt.Sprintf("%s of %s allowed by %s", dir, j.Pod, j.Source)
		case CausePolicyMiss:
			names := make([]string, len(j.IsolatedBy))
			for i, p := range j.IsolatedBy {
				names[i] = p.String()
			}
			audit := ""
			if j.Audit {
				audit = " (audit mode: passes, reported)"
			}
			return fmt.Sprintf("%s of %s isolated by %s; no rule allows%s", dir, j.Pod, strings.Join(names, ", "), audit)
		}
		return j.Cause.String()
	}
	var parts []string
	for _, p := range []string{part(Egress, v.Egress), part(Ingress, v.Ingress)} {
		if p == "" {
			continue
		}
		if !v.Allowed && !strings.Contains(p, "no rule allows") {
			continue // a denial names only what denies
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return b.String() + "neither side is enforced here"
	}
	b.WriteString(strings.Join(parts, "; "))
	return b.String()
}
