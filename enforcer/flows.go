package enforcer

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// FlowRecord is one flow event of the datapath as written to the flow
// log: one JSON line each.
type FlowRecord struct {
	Time time.Time `json:"time"`
	Node string    `json:"node"`
	// Verdict is "forwarded" (a new allowed connection; rate-limited in
	// the kernel), "dropped", or "audit" (would have been dropped; passed
	// because the pod's namespace runs in audit mode); "lost" for a
	// record of events of Pod the kernel did not send (Lost says how
	// many, Reason "N events of POD lost"), written every few seconds
	// while a pod loses some.
	Verdict string `json:"verdict"`
	// Pod is the enforced pod ("namespace/name") whose Direction judged
	// the packet.
	Pod         string       `json:"pod,omitempty"`
	Direction   string       `json:"direction"`
	Protocol    string       `json:"protocol"`
	Source      FlowEndpoint `json:"source"`
	Destination FlowEndpoint `json:"destination"`
	// Reason explains the verdict: the allowing policy and rule, or for
	// a drop "<direction> of <pod> isolated by P1, P2; no rule allows".
	Reason string `json:"reason"`
	// Policy and Rule name the allowing clause ("ns/name", "ingress rule
	// 0 (peer 1)") when a rule decided.
	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule,omitempty"`
	// IsolatedBy lists the policies isolating the judged direction when
	// nothing allowed the packet.
	IsolatedBy []string `json:"isolatedBy,omitempty"`
	// Service is the service address ("ip:port") the pod sent to when
	// the packet was judged after kube-proxy's DNAT; Destination is then
	// the backend. "unknown" if the datapath lost track of it.
	Service string `json:"service,omitempty"`
	// Lost counts the events of a "lost" record.
	Lost uint64 `json:"lost,omitempty"`
	// Quarantined says the interface's pod was not known yet: the
	// enforcer held it in quarantine, whatever policies will say.
	Quarantined bool `json:"quarantined,omitempty"`
}

// FlowEndpoint is one side of a flow.
type FlowEndpoint struct {
	IP   string `json:"ip,omitempty"`
	Port uint16 `json:"port,omitempty"`
	// Namespace and Pod name the pod holding IP when the cluster has one.
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	// Identity is the number the datapath derived for IP; Entity says
	// what it stands for: pod, host, world or cidr.
	Identity uint32 `json:"identity"`
	Entity   string `json:"entity"`
	// Labels are the identity's labels (the standard's identity labels
	// and those policies select on).
	Labels map[string]string `json:"labels,omitempty"`
	// Blocks are the ipBlocks containing IP, for addresses outside pods.
	Blocks []string `json:"blocks,omitempty"`
}

// view is what flow records are explained against: the last enforced
// State and which pod holds each address.
type view struct {
	state *policy.State
	pods  map[netip.Addr]policy.PodRef
	// objects counts the compiled objects by kind, for metrics.
	objects map[string]int
}

// viewFor picks the view to explain ev with: during a Sync the kernel
// holds entries of both the enforced State and the one being written
// (identities renumbered, addresses parked), so an event is explained by
// the first view that knows both its identities (the one being written is
// passed first: the tightening a Sync writes first is what drops), else
// the first view there is.
func viewFor(ev datapath.Event, views ...*view) *view {
	var first *view
	for _, v := range views {
		if v == nil || v.state == nil {
			continue
		}
		if first == nil {
			first = v
		}
		if v.knows(ev.SrcIdentity) && v.knows(ev.DstIdentity) {
			return v
		}
	}
	return first
}

// knows reports whether id is reserved or one of the State's identities.
func (v *view) knows(id policy.NumericIdentity) bool {
	if id < policy.FirstWorkloadIdentity {
		return true
	}
	_, ok := v.state.Identity(id)
	return ok
}

// explain turns a datapath event into a flow record, naming the policies
// behind the verdict from the State's rule sources and endpoints. An event
// that refers to something the State no longer has (it raced a Sync) is
// still recorded, with what is known.
func explain(node string, v *view, ev datapath.Event) FlowRecord {
	if v == nil || v.state == nil {
		v = &view{state: &policy.State{}}
	}
	r := FlowRecord{
		Time:        ev.Time.UTC(),
		Node:        node,
		Verdict:     ev.Verdict.String(),
		Direction:   ev.Direction.String(),
		Protocol:    protocolName(ev.Protocol),
		Source:      v.endpoint(ev.Src, ev.SrcIdentity),
		Destination: v.endpoint(ev.Dst, ev.DstIdentity),
	}
	who := fmt.Sprintf("interface %d", ev.Ifindex)
	if ev.Reason == datapath.ReasonServiceSourceUnknown {
		// Seen at a backend's or an uplink's interface: the pod behind
		// it is not the one whose egress failed to be judged.
		r.Reason = fmt.Sprintf("service traffic from %s to backend %s dropped at %s after DNAT: its source is no pod of this node (masqueraded before the judgement?)",
			ev.Src.Addr(), backendName(r.Destination, ev.Dst), who)
		return r
	}
	if ev.Pod != (policy.PodRef{}) {
		r.Pod = ev.Pod.String()
		who = r.Pod
	}
	subject := fmt.Sprintf("%s of %s", ev.Direction, who)
	if quarantined(ev) {
		// Before a Sync names its pod, whatever the program found
		// (a source it does not own, no rule for identity 3) is the
		// quarantine.
		r.Quarantined = true
		if ev.Direction == policy.Ingress {
			r.Destination.Entity = "quarantined"
		} else {
			r.Source.Entity = "quarantined"
		}
		r.Reason = fmt.Sprintf("%s: quarantined: a pod interface whose pod is not known yet sends and receives nothing but the node's traffic", subject)
		return r
	}
	if ev.AfterDNAT {
		r.Service = "unknown"
		if ev.Service.IsValid() {
			r.Service = ev.Service.String()
		}
		subject += fmt.Sprintf(" to backend %s of service %s", backendName(r.Destination, ev.Dst), r.Service)
	}
	switch ev.Reason {
	case datapath.ReasonPolicyAllow:
		src, ok := v.state.RuleSource(ev.RuleID)
		if !ok {
			r.Reason = fmt.Sprintf("%s allowed by rule %d (no longer in the policy state)", subject, ev.RuleID)
			break
		}
		r.Policy = src.Policy.String()
		r.Rule = ruleText(src)
		r.Reason = fmt.Sprintf("%s allowed by %s %s", subject, r.Policy, r.Rule)
	case datapath.ReasonNotIsolated:
		r.Reason = subject + " not isolated"
	case datapath.ReasonHost:
		r.Reason = subject + " from the node"
	case datapath.ReasonSpoofedSource:
		// The sender is the pod behind the interface, whoever holds the
		// address it forged.
		forged := "no address"
		if ev.Src.IsValid() {
			forged = ev.Src.Addr().String()
			if owner, ok := v.pods[ev.Src.Addr().Unmap()]; ok {
				forged += " (" + owner.String() + "'s)"
			}
		}
		r.Source.Namespace, r.Source.Pod = ev.Pod.Namespace, ev.Pod.Name
		r.Reason = fmt.Sprintf("%s: spoofed source: %s is not one of its addresses (dropped in every mode)", subject, forged)
	case datapath.ReasonConntrackEndpointLimit:
		r.Reason = fmt.Sprintf("%s: new flow refused: the conntrack share it counts in is used up (the pod's own, or for a flow from another pod of the node, the sender's); established flows are kept", subject)
	case datapath.ReasonConntrackTableFull:
		r.Reason = fmt.Sprintf("%s: new flow refused: the node's conntrack table is full (established flows are kept)", subject)
	case datapath.ReasonRouterMessage:
		r.Reason = fmt.Sprintf("%s: router message from a pod (a router advertisement or redirect; dropped in every mode)", subject)
	case datapath.ReasonPolicyMiss, datapath.ReasonRevoked, datapath.ReasonTCPNotNew, datapath.ReasonServiceUnconfirmed:
		r.IsolatedBy = isolatedBy(v.state, ev.Pod, ev.Direction)
		by := "isolated"
		if len(r.IsolatedBy) > 0 {
			by = "isolated by " + strings.Join(r.IsolatedBy, ", ")
		}
		r.Reason = fmt.Sprintf("%s %s; no rule allows", subject, by)
		switch ev.Reason {
		case datapath.ReasonRevoked:
			r.Reason += " (tracked flow revoked)"
		case datapath.ReasonTCPNotNew:
			r.Reason = fmt.Sprintf("%s %s; TCP packet of no tracked connection (only a SYN opens one)", subject, by)
		case datapath.ReasonServiceUnconfirmed:
			r.Reason = fmt.Sprintf("%s %s; reply of service traffic no post-DNAT hook allowed", subject, by)
		}
		if ev.Verdict == datapath.VerdictAuditWouldDrop {
			r.Reason += " (audit mode: passed, reported)"
		}
	default:
		r.Reason = fmt.Sprintf("%s: %s", subject, ev.Reason)
	}
	return r
}

// backendName is a service backend as a reason names it: its pod, else
// its address.
func backendName(e FlowEndpoint, dst netip.AddrPort) string {
	if e.Pod != "" {
		return e.Namespace + "/" + e.Pod
	}
	return dst.String()
}

func (v *view) endpoint(ap netip.AddrPort, id policy.NumericIdentity) FlowEndpoint {
	e := FlowEndpoint{Identity: uint32(id), Entity: entity(id)}
	if ap.IsValid() {
		e.IP = ap.Addr().String()
		e.Port = ap.Port()
		if pod, ok := v.pods[ap.Addr().Unmap()]; ok {
			e.Namespace, e.Pod = pod.Namespace, pod.Name
		}
	}
	if info, ok := v.state.Identity(id); ok {
		if info.Kind == policy.KindWorkload {
			if e.Namespace == "" {
				e.Namespace = info.Namespace
			}
			if len(info.Labels) > 0 {
				e.Labels = info.Labels
			}
		}
		e.Blocks = info.Blocks
	}
	return e
}

func entity(id policy.NumericIdentity) string {
	switch {
	case id == policy.IdentityHost:
		return "host"
	case id == policy.IdentityWorld:
		return "world"
	case id >= policy.FirstCIDRIdentity:
		return "cidr"
	case id >= policy.FirstWorkloadIdentity:
		return "pod"
	}
	return "unknown"
}

func isolatedBy(s *policy.State, pod policy.PodRef, dir policy.Direction) []string {
	ep, ok := s.Endpoint(pod)
	if !ok {
		return nil
	}
	refs := ep.IngressIsolatedBy
	if dir == policy.Egress {
		refs = ep.EgressIsolatedBy
	}
	out := make([]string, len(refs))
	for i, p := range refs {
		out[i] = p.String()
	}
	return out
}

// ruleText is a rule source without its policy: "ingress rule 0 (peer 1)".
func ruleText(s policy.RuleSource) string {
	peer := "all peers"
	if s.Peer >= 0 {
		peer = fmt.Sprintf("peer %d", s.Peer)
	}
	return fmt.Sprintf("%s rule %d (%s)", s.Direction, s.Rule, peer)
}

func protocolName(p policy.Protocol) string {
	switch p {
	case 1:
		return "ICMP"
	case 58:
		return "ICMPv6"
	}
	return p.String()
}

// flowWriter writes flow records as JSON lines, one Write per record so
// that concurrent readers of a file never see half a line.
type flowWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *flowWriter) write(r FlowRecord) error {
	if f == nil || f.w == nil {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode flow record: %w", err)
	}
	line = append(line, '\n')
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.w.Write(line); err != nil {
		return fmt.Errorf("write flow record: %w", err)
	}
	return nil
}
