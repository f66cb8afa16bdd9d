package rules

import (
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The checks in this file judge namespace label changes that only a
// privileged group may make: they change what other people's policies or
// compliance scope mean, not only the namespace's own labels. The caller
// skips them for privileged requesters.

// ClassificationLowered reports a namespace label change that lowers its
// data classification. The order is the classification rule's values as
// the standard lists them, least sensitive first (the default standard:
// public < internal < pci < hipaa): lowering is moving to an earlier
// value, or to none or an unlisted one from any but the first. A regulated
// namespace leaving pci or hipaa loses its restricted baseline and its
// place in the compliance report, so a namespace's own users must not do
// it. Nothing is reported when the standard declares no such values, or
// on create (old is nil).
func (e *Evaluator) ClassificationLowered(object string, old, new map[string]string, ns *corev1.Namespace) []Violation {
	if old == nil {
		return nil
	}
	ruleID, order := classificationValues(e.std)
	if ruleID == "" {
		return nil
	}
	key := e.classificationLabel
	from, hadOld := old[key]
	to, hasNew := new[key]
	rank := func(v string, has bool) int {
		if !has {
			return -1
		}
		for i, o := range order {
			if o == v {
				return i
			}
		}
		return -1
	}
	oldRank, newRank := rank(from, hadOld), rank(to, hasNew)
	if oldRank <= 0 || newRank >= oldRank {
		return nil
	}
	k := showKey(key)
	var problem string
	if hasNew {
		problem = "lowering label " + k + " from " + quoteValue(from) + " to " + quoteValue(to)
	} else {
		problem = "removing label " + k + "=" + quoteValue(from)
	}
	problem += " lowers the namespace's data classification (" + joinOrder(order) + ")"
	return []Violation{newViolation(RuleClassificationLowered, object, key, problem,
		"keep "+k+"="+showValue(from)+" ("+e.privilegedWho()+" may lower it)", e.ActionFor(RuleClassificationLowered, ns))}
}

func joinOrder(values []string) string {
	out := ""
	for i, v := range values {
		if i > 0 {
			out += " < "
		}
		out += v
	}
	return out
}

// privilegedWho names who may make a privileged change, for fixes.
func (e *Evaluator) privilegedWho() string {
	if len(e.std.Spec.PrivilegedGroups) == 0 {
		return "only Palisade"
	}
	return "only members of " + joinOr(e.std.Spec.PrivilegedGroups)
}

// SelectedByPolicies reports every NetworkPolicy of another namespace whose
// namespaceSelector (in an ingress from or egress to peer) matches namespace
// nsName with its old labels and not with its new ones, or the other way
// round: relabelling a namespace into (or out of) another team's selector
// grants (or withdraws) access that team decided, so it takes a privileged
// group. old is nil on create: a new namespace is compared with an
// unlabelled one, so a selector matching every namespace without labels
// (NotIn, DoesNotExist) does not count, while one naming the new
// namespace's labels or name does, and only gaining a match counts. The API server sets the name label
// kubernetes.io/metadata.name itself; it is counted on both sides.
// Policies of nsName itself, and selectors the API server would not
// accept, are skipped. One violation per policy, naming its first peer
// that changes, in namespace/name order.
func (e *Evaluator) SelectedByPolicies(object, nsName string, old, new map[string]string, policies []networkingv1.NetworkPolicy, ns *corev1.Namespace) []Violation {
	before, after := withName(old, nsName, old != nil), withName(new, nsName, true)
	type hit struct{ namespace, name, peer, change string }
	var hits []hit
	for i := range policies {
		np := &policies[i]
		if np.Namespace == nsName {
			continue
		}
		if peer, change := selectorChange(np, before, after, old != nil); peer != "" {
			hits = append(hits, hit{np.Namespace, np.Name, peer, change})
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].namespace != hits[j].namespace {
			return hits[i].namespace < hits[j].namespace
		}
		return hits[i].name < hits[j].name
	})
	out := make([]Violation, 0, len(hits))
	for _, h := range hits {
		out = append(out, newViolation(RuleSelectedByPolicy, object, h.peer,
			"the label change makes it "+h.change+" "+h.peer+" of networkpolicy "+showValue(h.namespace)+"/"+showValue(h.name)+", which decides access by namespace labels",
			"keep the labels that policy selects on ("+e.privilegedWho()+" may change them; the owners of namespace "+showValue(h.namespace)+" decide whom their policy admits)",
			e.ActionFor(RuleSelectedByPolicy, ns)))
	}
	return out
}

// withName returns the labels a namespace has as the API server stores
// them: with its name label. present=false is "no namespace yet".
func withName(l map[string]string, name string, present bool) labels.Set {
	out := labels.Set{}
	if !present {
		return out
	}
	for k, v := range l {
		out[k] = v
	}
	out[corev1.LabelMetadataName] = name
	return out
}

// selectorChange returns the path of np's first namespaceSelector whose
// match differs between before and after, and "match" or "stop matching"
// (only when existed: a namespace being created had nothing to lose).
func selectorChange(np *networkingv1.NetworkPolicy, before, after labels.Set, existed bool) (string, string) {
	check := func(sel *metav1.LabelSelector, path string) (string, string) {
		if sel == nil {
			return "", ""
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return "", ""
		}
		was, is := s.Matches(before), s.Matches(after)
		switch {
		case is && !was:
			return path, "match"
		case was && !is && existed:
			return path, "stop matching"
		}
		return "", ""
	}
	for i, r := range np.Spec.Ingress {
		for k, p := range r.From {
			if path, change := check(p.NamespaceSelector, "spec.ingress["+strconv.Itoa(i)+"].from["+strconv.Itoa(k)+"].namespaceSelector"); path != "" {
				return path, change
			}
		}
	}
	for i, r := range np.Spec.Egress {
		for k, p := range r.To {
			if path, change := check(p.NamespaceSelector, "spec.egress["+strconv.Itoa(i)+"].to["+strconv.Itoa(k)+"].namespaceSelector"); path != "" {
				return path, change
			}
		}
	}
	return "", ""
}
