package rules

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReservedKeys reports labels and annotations under a reserved prefix that
// were added or changed between old (nil on create) and new; keys kept as
// they were, and removals, pass. allowed lists reserved keys Palisade
// itself sets, with the only value accepted for each.
//
// ns supplies the reserved-key override. A request that itself adds,
// changes or removes AnnotationRuleActions is always judged deny, so a
// namespace update cannot relax the check that judges it.
func (e *Evaluator) ReservedKeys(object string, old, new *metav1.ObjectMeta, allowed map[string]string, ns *corev1.Namespace) []Violation {
	if new == nil || len(e.reservedPrefixes) == 0 {
		return nil
	}
	var oldLabels, oldAnnotations map[string]string
	if old != nil {
		oldLabels, oldAnnotations = old.Labels, old.Annotations
	}
	var hits []reservedHit
	hits = e.reservedChanges(hits, "label", oldLabels, new.Labels, allowed)
	hits = e.reservedChanges(hits, "annotation", oldAnnotations, new.Annotations, allowed)
	if len(hits) == 0 {
		return nil
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].key != hits[j].key {
			return hits[i].key < hits[j].key
		}
		return hits[i].kind > hits[j].kind // label before annotation
	})
	action := e.ActionFor(RuleReservedKey, ns)
	oldRA, oldHas := oldAnnotations[AnnotationRuleActions]
	newRA, newHas := new.Annotations[AnnotationRuleActions]
	if oldHas != newHas || oldRA != newRA {
		action = ActionDeny
	}
	who := "only Palisade"
	if len(e.std.Spec.PrivilegedGroups) > 0 {
		who += " and members of " + joinOr(e.std.Spec.PrivilegedGroups)
	}
	out := make([]Violation, 0, len(hits))
	for _, h := range hits {
		k := showKey(h.key)
		var problem, fix string
		if h.hasAllowed {
			problem = h.kind + " " + k + "=" + quoteValue(h.value) + " is reserved; Palisade sets it to " + quoteValue(h.allowed)
			fix = "remove " + h.kind + " " + k + " or set it to " + quoteValue(h.allowed)
		} else {
			problem = h.kind + " " + k + " is reserved"
			fix = "remove " + h.kind + " " + k + " (" + who + " may set " + h.prefix + " keys)"
		}
		out = append(out, newViolation(RuleReservedKey, object, h.key, problem, fix, action))
	}
	return out
}

type reservedHit struct {
	kind, key, value, prefix string
	allowed                  string
	hasAllowed               bool
}

func (e *Evaluator) reservedChanges(hits []reservedHit, kind string, old, new, allowed map[string]string) []reservedHit {
	for k, v := range new {
		prefix := e.reservedPrefix(k)
		if prefix == "" {
			continue
		}
		if ov, ok := old[k]; ok && ov == v {
			continue
		}
		want, isAllowed := allowed[k]
		if isAllowed && want == v {
			continue
		}
		hits = append(hits, reservedHit{kind: kind, key: k, value: v, prefix: prefix, allowed: want, hasAllowed: isAllowed})
	}
	return hits
}
