package rules

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Namespace judges a namespace's own labels, and the syntax of its
// AnnotationRuleActions override. Actions are resolved with the
// namespace's own override annotation.
func (e *Evaluator) Namespace(ns *corev1.Namespace) []Violation {
	if ns == nil {
		return nil
	}
	var out []Violation
	object := ""
	obj := func() string {
		if object == "" {
			object = "namespace " + showValue(ns.Name)
		}
		return object
	}
	for i := range e.nsRules {
		r := &e.nsRules[i]
		v, ok := ns.Labels[r.key]
		if !ok {
			if r.required {
				out = append(out, e.labelViolation(r, obj(), "missing label "+r.shownKey, r.addFix, ns))
			}
			continue
		}
		if problem := r.checkValue(v); problem != "" {
			out = append(out, e.labelViolation(r, obj(), problem, r.setFix, ns))
		}
	}
	if ann, ok := ns.Annotations[AnnotationRuleActions]; ok {
		if err := e.ruleActionsProblem(ann); err != nil {
			out = append(out, newViolation(RuleInvalidActionsSyntax, obj(), AnnotationRuleActions,
				"annotation "+AnnotationRuleActions+" is malformed: "+err.Error(),
				"write comma-separated ruleID=action pairs (actions: deny, warn, dryrun; * for every rule)",
				e.ActionFor(RuleInvalidActionsSyntax, ns)))
		} else if relaxed := relaxedGuards(ann); len(relaxed) > 0 {
			out = append(out, newViolation(RuleInvalidActionsSyntax, obj(), AnnotationRuleActions,
				"annotation "+AnnotationRuleActions+" "+guardProblem(relaxed),
				"remove "+strings.Join(relaxed, ", ")+" (only the labeling and NetworkPolicy rules can be relaxed)",
				e.ActionFor(RuleInvalidActionsSyntax, ns)))
		}
	}
	return out
}

// Pod judges a pod's (or pod template's) labels, after inheritance, within
// namespace ns (nil if unknown: namespace-relative checks are then skipped).
// object describes the judged object for messages. A compliant pod costs
// no allocation.
func (e *Evaluator) Pod(object string, labels map[string]string, ns *corev1.Namespace) []Violation {
	var out []Violation
	for i := range e.podRules {
		r := &e.podRules[i]
		v, own := labels[r.key]
		fromNamespace := false
		if ns != nil && (r.match || r.inherit) {
			nsv, nsHas := ns.Labels[r.key]
			switch {
			case own && r.match && !nsHas:
				nsName := showValue(ns.Name)
				out = append(out, e.labelViolation(r, object,
					"label "+r.shownKey+"="+quoteValue(v)+" but namespace "+nsName+" has no label "+r.shownKey,
					"remove label "+r.shownKey+" or label namespace "+nsName+" "+r.shownKey+"="+showValue(v), ns))
				continue
			case own && r.match && nsv != v:
				fix := "set " + r.shownKey + " to " + showValue(nsv)
				if r.inherit {
					fix = "remove label " + r.shownKey + " (it is inherited) or set it to " + showValue(nsv)
				}
				out = append(out, e.labelViolation(r, object,
					"label "+r.shownKey+"="+quoteValue(v)+" differs from namespace "+showValue(ns.Name)+" "+r.shownKey+"="+quoteValue(nsv), fix, ns))
				continue
			case !own && r.inherit && nsHas:
				v, own = nsv, true
				fromNamespace = true
			case own && nsHas && nsv == v && r.inherit:
				// Most likely inherited by mutation already; either way
				// the value is the namespace's to fix.
				fromNamespace = true
			}
		}
		if !own {
			if r.required {
				out = append(out, e.labelViolation(r, object, "missing label "+r.shownKey, r.addFix, ns))
			}
			continue
		}
		if problem := r.checkValue(v); problem != "" {
			fix := r.setFix
			if fromNamespace {
				nsName := showValue(ns.Name)
				problem += " (inherited from namespace " + nsName + ")"
				fix = "fix namespace " + nsName + ": " + r.setFix
			}
			out = append(out, e.labelViolation(r, object, problem, fix, ns))
		}
	}
	return out
}

// Inherit returns the labels a pod with these labels should gain from ns
// (key -> value); nil when there is nothing to add.
func (e *Evaluator) Inherit(labels map[string]string, ns *corev1.Namespace) map[string]string {
	if ns == nil {
		return nil
	}
	var out map[string]string
	for i := range e.podRules {
		r := &e.podRules[i]
		if !r.inherit {
			continue
		}
		if _, ok := labels[r.key]; ok {
			continue
		}
		if v, ok := ns.Labels[r.key]; ok {
			if out == nil {
				out = make(map[string]string, 1)
			}
			out[r.key] = v
		}
	}
	return out
}

// checkValue returns what is wrong with value v, or "".
func (r *labelCheck) checkValue(v string) string {
	if len(r.values) > 0 && !contains(r.values, v) {
		return "label " + r.shownKey + "=" + quoteValue(v) + " is not allowed"
	}
	if r.re != nil && !r.re.MatchString(v) {
		return "label " + r.shownKey + "=" + quoteValue(v) + " does not match " + r.pattern
	}
	return ""
}

func (e *Evaluator) labelViolation(r *labelCheck, object, problem, fix string, ns *corev1.Namespace) Violation {
	return newViolation(r.id, object, r.key, problem, fix, e.ActionFor(r.id, ns))
}
