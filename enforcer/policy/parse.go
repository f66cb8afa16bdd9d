package policy

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// parsedPolicy is a NetworkPolicy ready to compile. An invalid policy keeps
// only what fail-closed isolation needs: its selector (nil if that too is
// invalid, meaning every pod of the namespace) and its directions.
type parsedPolicy struct {
	ref     PolicyRef
	valid   bool
	podSel  labels.Selector
	ingress bool            // isolates ingress
	egress  bool            // isolates egress
	rules   [3][]parsedRule // by Direction
}

type parsedRule struct {
	index    int
	allPeers bool
	peers    []parsedPeer
	allPorts bool
	ports    []parsedPort
}

type parsedPeer struct {
	index int
	// block is set for an ipBlock peer; the selectors otherwise.
	block *ipBlock
	// nsSel nil: the policy's own namespace. podSel nil: every pod.
	nsSel  labels.Selector
	podSel labels.Selector
}

type parsedPort struct {
	proto   Protocol
	port    uint16 // 0: every port of proto
	endPort uint16 // 0: a single port
	name    string // a named port, resolved per destination pod
}

// ipBlock is one ipBlock in canonical form; blocks equal in content are
// one block.
type ipBlock struct {
	cidr   netip.Prefix
	except []netip.Prefix
	key    string
}

func (b *ipBlock) contains(a netip.Addr) bool {
	if !b.cidr.Contains(a) {
		return false
	}
	for _, e := range b.except {
		if e.Contains(a) {
			return false
		}
	}
	return true
}

// containsPrefix reports whether every address of p is in the block; p
// must be nested in or disjoint from each of the block's prefixes.
func (b *ipBlock) containsPrefix(p netip.Prefix) bool {
	if !prefixWithin(p, b.cidr) {
		return false
	}
	for _, e := range b.except {
		if prefixWithin(p, e) {
			return false
		}
	}
	return true
}

func prefixWithin(inner, outer netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// policyTypes returns the directions a policy isolates, defaulted as the
// API server does: Ingress always, Egress when it has egress rules.
func policyTypes(spec *networkingv1.NetworkPolicySpec) (ingress, egress bool, valid bool) {
	if len(spec.PolicyTypes) == 0 {
		return true, len(spec.Egress) > 0, true
	}
	valid = true
	for _, t := range spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		default:
			valid = false
		}
	}
	return ingress, egress, valid
}

// parsePolicy turns a policy into its compiled form, registering its
// ipBlocks in blocks. An invalid policy comes back with valid false and the
// problems found.
func parsePolicy(np *networkingv1.NetworkPolicy, blocks *blockSet) (*parsedPolicy, []string) {
	ref := PolicyRef{Namespace: namespaceOf(np.Namespace), Name: np.Name}
	p := &parsedPolicy{ref: ref}
	ingress, egress, typesValid := policyTypes(&np.Spec)
	if errs := ValidatePolicy(np); len(errs) > 0 {
		problems := make([]string, 0, len(errs))
		for _, e := range errs {
			problems = append(problems, e.Error())
		}
		// Fail closed: isolate what it selects (or, if its selector is
		// itself unreadable, its whole namespace) in every direction it
		// declares, or both if its types are unreadable.
		if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err == nil {
			p.podSel = sel
		}
		p.ingress, p.egress = ingress || !typesValid, egress || !typesValid
		return p, problems
	}
	p.valid = true
	p.podSel = mustSelector(&np.Spec.PodSelector)
	p.ingress, p.egress = ingress, egress
	if ingress {
		for i := range np.Spec.Ingress {
			r := &np.Spec.Ingress[i]
			p.rules[Ingress] = append(p.rules[Ingress], parseRule(i, r.From, r.Ports, blocks))
		}
	}
	if egress {
		for i := range np.Spec.Egress {
			r := &np.Spec.Egress[i]
			p.rules[Egress] = append(p.rules[Egress], parseRule(i, r.To, r.Ports, blocks))
		}
	}
	return p, nil
}

func parseRule(index int, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, blocks *blockSet) parsedRule {
	r := parsedRule{index: index, allPeers: len(peers) == 0, allPorts: len(ports) == 0}
	for j := range peers {
		peer := &peers[j]
		pp := parsedPeer{index: j}
		if peer.IPBlock != nil {
			pp.block = blocks.add(peer.IPBlock)
		} else {
			if peer.NamespaceSelector != nil {
				pp.nsSel = mustSelector(peer.NamespaceSelector)
			}
			if peer.PodSelector != nil {
				pp.podSel = mustSelector(peer.PodSelector)
			}
		}
		r.peers = append(r.peers, pp)
	}
	for j := range ports {
		port := &ports[j]
		pp := parsedPort{proto: ProtocolTCP}
		if port.Protocol != nil {
			pp.proto = protocolOf(*port.Protocol)
		}
		if port.Port != nil {
			if port.Port.Type == intstr.String {
				pp.name = port.Port.StrVal
			} else {
				pp.port = uint16(port.Port.IntVal)
				if port.EndPort != nil && uint16(*port.EndPort) != pp.port {
					pp.endPort = uint16(*port.EndPort)
				}
			}
		}
		r.ports = append(r.ports, pp)
	}
	return r
}

// mustSelector converts a selector that passed validation.
func mustSelector(s *metav1.LabelSelector) labels.Selector {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return labels.Nothing()
	}
	return sel
}

func protocolOf(p corev1.Protocol) Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return ProtocolUDP
	case corev1.ProtocolSCTP:
		return ProtocolSCTP
	}
	return ProtocolTCP
}

func namespaceOf(ns string) string {
	if ns == "" {
		return metav1.NamespaceDefault
	}
	return ns
}

// selectorKeys adds every label key s reads to keys.
func selectorKeys(s *metav1.LabelSelector, keys map[string]struct{}) {
	if s == nil {
		return
	}
	for k := range s.MatchLabels {
		keys[k] = struct{}{}
	}
	for _, e := range s.MatchExpressions {
		keys[e.Key] = struct{}{}
	}
}

// blockSet deduplicates ipBlocks across all policies.
type blockSet struct {
	byKey map[string]*ipBlock
}

func (s *blockSet) add(b *networkingv1.IPBlock) *ipBlock {
	cidr, _ := parseStrictCIDR(b.CIDR)
	ex := make([]netip.Prefix, 0, len(b.Except))
	for _, e := range b.Except {
		p, _ := parseStrictCIDR(e)
		ex = append(ex, p)
	}
	slices.SortFunc(ex, comparePrefix)
	ex = slices.Compact(ex)
	var key strings.Builder
	key.WriteString(cidr.String())
	for i, e := range ex {
		if i == 0 {
			key.WriteString(" except ")
		} else {
			key.WriteString(",")
		}
		key.WriteString(e.String())
	}
	if old, ok := s.byKey[key.String()]; ok {
		return old
	}
	nb := &ipBlock{cidr: cidr, except: ex, key: key.String()}
	if s.byKey == nil {
		s.byKey = map[string]*ipBlock{}
	}
	s.byKey[nb.key] = nb
	return nb
}

// sorted returns the blocks by key.
func (s *blockSet) sorted() []*ipBlock {
	out := make([]*ipBlock, 0, len(s.byKey))
	for _, b := range s.byKey {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *ipBlock) int { return cmpString(a.key, b.key) })
	return out
}
