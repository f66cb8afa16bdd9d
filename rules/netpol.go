package rules

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NetworkPolicy judges a user's NetworkPolicy in namespace ns: selectors on
// keys outside the identity set, egress isolation without DNS, 0.0.0.0/0
// (or ::/0) peers, and ingress from all namespaces in regulated namespaces.
// Violations come in the standard's order of the checks; within a check,
// selector findings are sorted by label key and the others follow the
// policy's own order. Checks limited to classifications are skipped when ns
// is nil.
func (e *Evaluator) NetworkPolicy(np *networkingv1.NetworkPolicy, ns *corev1.Namespace) []Violation {
	return e.NetworkPolicyAmong(np, ns, nil)
}

// NetworkPolicyAmong is NetworkPolicy for np among the other policies of
// its namespace (its own earlier version, by name, is skipped). Policies
// add up, so egress isolation without DNS is reported only when no policy
// selecting all of np's pods (by selector: its podSelector requires no
// more than np's does) allows DNS either: the baseline palisade-allow-dns,
// with podSelector {}, covers every pod of a governed namespace.
func (e *Evaluator) NetworkPolicyAmong(np *networkingv1.NetworkPolicy, ns *corev1.Namespace, others []networkingv1.NetworkPolicy) []Violation {
	if np == nil {
		return nil
	}
	nsName := np.Namespace
	if nsName == "" && ns != nil {
		nsName = ns.Name
	}
	j := netpolJudge{e: e, np: np, ns: ns, nsName: nsName, others: others, object: "networkpolicy " + showValue(nsName) + "/" + showValue(np.Name)}
	for _, c := range e.netpol {
		if !e.appliesIn(c, ns) {
			continue
		}
		switch c.id {
		case RuleNonIdentitySelector:
			j.nonIdentitySelectors()
		case RuleEgressWithoutDNS:
			j.egressWithoutDNS()
		case RuleOpenCIDR:
			j.openCIDRs()
		case RuleRegulatedAllNS:
			j.regulatedAllNamespaces()
		}
	}
	return j.out
}

func (e *Evaluator) appliesIn(c netpolCheck, ns *corev1.Namespace) bool {
	if len(c.classifications) == 0 {
		return true
	}
	if ns == nil {
		return false
	}
	class, ok := ns.Labels[e.classificationLabel]
	return ok && contains(c.classifications, class)
}

type netpolJudge struct {
	e      *Evaluator
	np     *networkingv1.NetworkPolicy
	ns     *corev1.Namespace
	nsName string
	others []networkingv1.NetworkPolicy
	object string
	out    []Violation
}

func (j *netpolJudge) add(id, key, problem, fix string) {
	j.out = append(j.out, newViolation(id, j.object, key, problem, fix, j.e.ActionFor(id, j.ns)))
}

type selectorHit struct {
	namespace bool
	key, path string
}

func (j *netpolJudge) nonIdentitySelectors() {
	var hits []selectorHit
	seen := map[selectorHit]bool{}
	check := func(sel *metav1.LabelSelector, path string, namespace bool) {
		if sel == nil {
			return
		}
		allowed := j.e.identity
		if namespace {
			allowed = j.e.nsIdentity
		}
		note := func(k string) {
			if _, ok := allowed[k]; ok {
				return
			}
			id := selectorHit{namespace: namespace, key: k}
			if !seen[id] {
				seen[id] = true
				hits = append(hits, selectorHit{namespace: namespace, key: k, path: path})
			}
		}
		keys := make([]string, 0, len(sel.MatchLabels))
		for k := range sel.MatchLabels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			note(k)
		}
		for _, r := range sel.MatchExpressions {
			note(r.Key)
		}
	}
	check(&j.np.Spec.PodSelector, "spec.podSelector", false)
	for i, r := range j.np.Spec.Ingress {
		for k, p := range r.From {
			base := "spec.ingress[" + strconv.Itoa(i) + "].from[" + strconv.Itoa(k) + "]"
			check(p.PodSelector, base+".podSelector", false)
			check(p.NamespaceSelector, base+".namespaceSelector", true)
		}
	}
	for i, r := range j.np.Spec.Egress {
		for k, p := range r.To {
			base := "spec.egress[" + strconv.Itoa(i) + "].to[" + strconv.Itoa(k) + "]"
			check(p.PodSelector, base+".podSelector", false)
			check(p.NamespaceSelector, base+".namespaceSelector", true)
		}
	}
	sort.SliceStable(hits, func(a, b int) bool {
		if hits[a].key != hits[b].key {
			return hits[a].key < hits[b].key
		}
		return !hits[a].namespace && hits[b].namespace
	})
	for _, h := range hits {
		k := showKey(h.key)
		if h.namespace {
			j.add(RuleNonIdentitySelector, h.key,
				h.path+" selects on namespace label "+k+", which is not part of a namespace's identity, so it cannot select by identity",
				"select namespaces by "+joinOr(j.e.nsIdentityKeys))
		} else {
			j.add(RuleNonIdentitySelector, h.key,
				h.path+" selects on pod label "+k+", which is not an identity label, so it cannot select by identity",
				"select pods by "+joinOr(j.e.identityKeys))
		}
	}
}

// policyAffects applies the API server's defaulting of policyTypes:
// Ingress always, Egress when egress rules are present.
func policyAffects(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return t == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	for _, pt := range np.Spec.PolicyTypes {
		if pt == t {
			return true
		}
	}
	return false
}

func (j *netpolJudge) egressWithoutDNS() {
	if !policyAffects(j.np, networkingv1.PolicyTypeEgress) || allowsDNS(j.np, j.nsName) {
		return
	}
	for i := range j.others {
		o := &j.others[i]
		if o.Name == j.np.Name || !policyAffects(o, networkingv1.PolicyTypeEgress) {
			continue
		}
		if selectorCovers(&o.Spec.PodSelector, &j.np.Spec.PodSelector) && allowsDNS(o, j.nsName) {
			return
		}
	}
	j.add(RuleEgressWithoutDNS, "spec.egress",
		"isolates egress and allows no DNS (UDP/TCP port 53), nor does any other policy in namespace "+showValue(j.nsName)+" selecting the same pods, so they cannot resolve names",
		"add an egress rule to namespace kube-system pods k8s-app=kube-dns on UDP and TCP port 53")
}

func allowsDNS(np *networkingv1.NetworkPolicy, nsName string) bool {
	for _, r := range np.Spec.Egress {
		if portsAllowDNS(r.Ports) && peersMayReachDNS(r.To, nsName) {
			return true
		}
	}
	return false
}

// selectorCovers reports whether every pod sub selects is selected by sup,
// judged from the selectors alone (pods may not exist yet): each of sup's
// requirements must follow from one of sub's. It may answer false for a
// pair that does cover (a warning too many), never true for one that does
// not (a warning missed); a selector the API server would reject covers
// nothing.
func selectorCovers(sup, sub *metav1.LabelSelector) bool {
	supSel, err := metav1.LabelSelectorAsSelector(sup)
	if err != nil {
		return false
	}
	subSel, err := metav1.LabelSelectorAsSelector(sub)
	if err != nil {
		return false
	}
	subReqs, _ := subSel.Requirements()
	supReqs, _ := supSel.Requirements()
	for _, r := range supReqs {
		implied := false
		for _, q := range subReqs {
			if q.Key() == r.Key() && requirementImplies(q, r) {
				implied = true
				break
			}
		}
		if !implied {
			return false
		}
	}
	return true
}

// requirementImplies reports whether every label set meeting q (on the
// same key) meets r.
func requirementImplies(q, r labels.Requirement) bool {
	qVals, rVals := q.Values(), r.Values()
	qIn := q.Operator() == selection.In || q.Operator() == selection.Equals || q.Operator() == selection.DoubleEquals
	switch r.Operator() {
	case selection.Exists:
		return qIn || q.Operator() == selection.Exists
	case selection.In, selection.Equals, selection.DoubleEquals:
		return qIn && rVals.IsSuperset(qVals)
	case selection.NotIn, selection.NotEquals:
		switch {
		case qIn:
			return !qVals.HasAny(rVals.UnsortedList()...)
		case q.Operator() == selection.NotIn || q.Operator() == selection.NotEquals:
			return qVals.IsSuperset(rVals)
		}
		return q.Operator() == selection.DoesNotExist
	case selection.DoesNotExist:
		return q.Operator() == selection.DoesNotExist
	}
	return false
}

func portsAllowDNS(ports []networkingv1.NetworkPolicyPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP {
			continue
		}
		if p.Port == nil {
			return true
		}
		switch p.Port.Type {
		case intstr.Int:
			if p.Port.IntVal == 53 || (p.EndPort != nil && p.Port.IntVal <= 53 && *p.EndPort >= 53) {
				return true
			}
		case intstr.String:
			// The port names CoreDNS and kube-dns give port 53.
			if p.Port.StrVal == "dns" || p.Port.StrVal == "dns-tcp" {
				return true
			}
		}
	}
	return false
}

// peersMayReachDNS reports whether some peer could be the cluster DNS. A
// peer that is only a podSelector means pods of the policy's own
// namespace, which is not where DNS runs (unless that is kube-system).
func peersMayReachDNS(peers []networkingv1.NetworkPolicyPeer, nsName string) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.NamespaceSelector != nil || p.IPBlock != nil || nsName == "kube-system" {
			return true
		}
	}
	return false
}

func (j *netpolJudge) openCIDRs() {
	check := func(b *networkingv1.IPBlock, path string) {
		if b == nil {
			return
		}
		pfx, err := netip.ParsePrefix(strings.TrimSpace(b.CIDR))
		if err != nil || pfx.Bits() != 0 {
			return
		}
		j.add(RuleOpenCIDR, path,
			path+" "+quoteValue(b.CIDR)+" matches every address",
			"name the address ranges the pods need")
	}
	for i, r := range j.np.Spec.Ingress {
		for k, p := range r.From {
			check(p.IPBlock, "spec.ingress["+strconv.Itoa(i)+"].from["+strconv.Itoa(k)+"].ipBlock.cidr")
		}
	}
	for i, r := range j.np.Spec.Egress {
		for k, p := range r.To {
			check(p.IPBlock, "spec.egress["+strconv.Itoa(i)+"].to["+strconv.Itoa(k)+"].ipBlock.cidr")
		}
	}
}

func (j *netpolJudge) regulatedAllNamespaces() {
	if !policyAffects(j.np, networkingv1.PolicyTypeIngress) {
		return
	}
	why := "namespace " + showValue(j.nsName) + " is regulated"
	if j.ns != nil {
		if class := j.ns.Labels[j.e.classificationLabel]; class != "" {
			why = "namespace " + showValue(j.nsName) + " holds " + showValue(class) + " data"
		}
	}
	for i, r := range j.np.Spec.Ingress {
		base := "spec.ingress[" + strconv.Itoa(i) + "]"
		if len(r.From) == 0 {
			j.add(RuleRegulatedAllNS, base,
				base+" has no from, so it admits every source, and "+why,
				"list the allowed sources in from")
			continue
		}
		for k, p := range r.From {
			s := p.NamespaceSelector
			if s == nil || len(s.MatchLabels) > 0 || len(s.MatchExpressions) > 0 {
				continue
			}
			path := base + ".from[" + strconv.Itoa(k) + "].namespaceSelector"
			j.add(RuleRegulatedAllNS, path,
				path+" {} admits pods from every namespace, and "+why,
				"select the namespaces allowed in, e.g. by kubernetes.io/metadata.name")
		}
	}
}
