package check

import (
	"fmt"
	"net/netip"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Probe is one new connection's first packet: from a pod to a pod's port.
type Probe struct {
	From, To policy.PodRef
	Port     Port
}

func (p Probe) String() string { return fmt.Sprintf("%s -> %s %s", p.From, p.To, p.Port) }

// Result is an engine's judgement of one probe.
type Result struct {
	Probe
	// Src and Dst are the addresses the probe packet carried.
	Src, Dst netip.Addr
	// Verdict carries both directions' judgements (egress at From, ingress
	// at To) and what decided each.
	Verdict policy.Verdict
}

// Allowed reports whether the policies allow the connection (audit mode
// does not count: it reports, it does not allow).
func (r Result) Allowed() bool { return r.Verdict.Allowed }

// Reason says what decided the verdict, naming policies and rules.
func (r Result) Reason() string { return r.Verdict.Reason() }

// Matrix lists the probes for every ordered pair of distinct pods from ×
// to and every port, port by port. A pod's traffic to itself never leaves
// it, so such pairs are left out.
func Matrix(from, to []policy.PodRef, ports []Port) []Probe {
	out := make([]Probe, 0, len(from)*len(to)*len(ports))
	for _, port := range ports {
		for _, f := range from {
			for _, t := range to {
				if f != t {
					out = append(out, Probe{From: f, To: t, Port: port})
				}
			}
		}
	}
	return out
}

// addresses picks the probe packet's source and destination: the pods'
// first addresses of one family, the source's primary family first, so
// that dual-stack pods are probed as their primary addresses.
func addresses(st *policy.State, p Probe) (src, dst netip.Addr, err error) {
	from, ok := st.Endpoint(p.From)
	if !ok || len(from.IPs) == 0 {
		return src, dst, fmt.Errorf("probe %s: no address for pod %s", p, p.From)
	}
	to, ok := st.Endpoint(p.To)
	if !ok || len(to.IPs) == 0 {
		return src, dst, fmt.Errorf("probe %s: no address for pod %s", p, p.To)
	}
	for _, s := range from.IPs {
		for _, d := range to.IPs {
			if s.Is4() == d.Is4() {
				return s, d, nil
			}
		}
	}
	return src, dst, fmt.Errorf("probe %s: the pods share no address family (%s has %v, %s has %v)", p, p.From, from.IPs, p.To, to.IPs)
}
