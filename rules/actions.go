package rules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ParseRuleActions parses an AnnotationRuleActions value strictly:
// comma-separated "ruleID=action" entries ("*" for every rule), actions one
// of deny, warn, dryrun, no rule twice, blanks around names allowed. The
// webhook uses it to reject a malformed annotation when a namespace is
// admitted; ActionFor never fails and instead ignores malformed entries.
func ParseRuleActions(s string) (map[string]Action, error) {
	m, err := parseRuleActions(s)
	if err != nil {
		return nil, fmt.Errorf("parse rule actions: %w", err)
	}
	return m, nil
}

func parseRuleActions(s string) (map[string]Action, error) {
	out := map[string]Action{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for i, entry := range strings.Split(s, ",") {
		id, act, err := parseActionEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("entry %d %s: %w", i+1, quoteValue(entry), err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("entry %d %s: rule %s named twice", i+1, quoteValue(entry), id)
		}
		out[id] = act
	}
	return out, nil
}

type actionSyntaxError string

func (e actionSyntaxError) Error() string { return string(e) }

func parseActionEntry(entry string) (string, Action, error) {
	idPart, actPart, ok := strings.Cut(entry, "=")
	id, act := strings.TrimSpace(idPart), Action(strings.TrimSpace(actPart))
	switch {
	case strings.TrimSpace(entry) == "":
		return "", "", actionSyntaxError("empty entry")
	case !ok:
		return "", "", actionSyntaxError("want ruleID=action")
	case id != "*" && !validRuleID(id):
		return "", "", actionSyntaxError("invalid rule ID " + quoteValue(id))
	case !validAction(act):
		return "", "", actionSyntaxError("unknown action " + quoteValue(string(act)) + " (one of: " + strings.Join(actionNames, ", ") + ")")
	}
	return id, act, nil
}

// ValidateRuleActions is ParseRuleActions plus a check that every rule
// named exists in this standard: a misspelt ID overrides nothing, and the
// namespace's owner should hear so rather than believe a rule relaxed.
func (e *Evaluator) ValidateRuleActions(s string) error {
	if err := e.ruleActionsProblem(s); err != nil {
		return fmt.Errorf("check rule actions: %w", err)
	}
	if relaxed := relaxedGuards(s); len(relaxed) > 0 {
		return fmt.Errorf("check rule actions: %s", guardProblem(relaxed))
	}
	return nil
}

// relaxedGuards returns the entries of a well-formed annotation that give
// a guard rule an action other than deny, as "id=action", in their order.
func relaxedGuards(s string) []string {
	var out []string
	for _, entry := range strings.Split(s, ",") {
		id, act, err := parseActionEntry(entry)
		if err == nil && IsGuardRule(id) && act != ActionDeny {
			out = append(out, id+"="+string(act))
		}
	}
	return out
}

func guardProblem(relaxed []string) string {
	noun := "rule "
	if len(relaxed) > 1 {
		noun = "rules "
	}
	parts := make([]string, len(relaxed))
	for i, r := range relaxed {
		id, act, _ := strings.Cut(r, "=")
		parts[i] = id + " to " + act
	}
	return "sets guard " + noun + strings.Join(parts, ", ") + "; guard rules always deny"
}

// ruleActionsProblem is ValidateRuleActions without the error prefix, for
// violation messages that already say what was checked.
func (e *Evaluator) ruleActionsProblem(s string) error {
	m, err := parseRuleActions(s)
	if err != nil {
		return err
	}
	var unknown []string
	for id := range m {
		if _, ok := e.actions[id]; !ok && id != "*" {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	for i, id := range unknown {
		unknown[i] = strconv.Quote(id)
	}
	return fmt.Errorf("unknown rule %s (rules: %s)", strings.Join(unknown, ", "), strings.Join(e.RuleIDs(), ", "))
}

// RuleIDs returns every rule ID an override may name: the label rules in
// the standard's order, then the NetworkPolicy checks, then the guards.
func (e *Evaluator) RuleIDs() []string {
	ids := make([]string, 0, len(e.actions))
	for _, r := range e.std.Spec.Labels {
		ids = append(ids, r.ID)
	}
	for _, c := range e.netpol {
		ids = append(ids, c.id)
	}
	for _, id := range guardRuleIDs {
		if !contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// ActionFor returns ruleID's effective action in ns: the namespace's
// AnnotationRuleActions override for ruleID, else its "*" override, else
// the rule's own action, else deny. Malformed entries are ignored, and one
// that names ruleID (or "*") voids that channel, so a typo can only leave
// the stricter action in place. No override reaches the guard rules
// (IsGuardRule): they deny even in a namespace whose annotation got in
// before the webhook refused such entries.
func (e *Evaluator) ActionFor(ruleID string, ns *corev1.Namespace) Action {
	base, ok := e.actions[ruleID]
	if !ok {
		base = ActionDeny
	}
	if ns == nil || IsGuardRule(ruleID) {
		return base
	}
	ann, ok := ns.Annotations[AnnotationRuleActions]
	if !ok {
		return base
	}
	return resolveOverride(ann, ruleID, base)
}

// resolveOverride scans the annotation without allocating: it runs for
// every violation of every admission request.
func resolveOverride(ann, ruleID string, base Action) Action {
	var specific, wildcard Action
	var specificBad, wildcardBad bool
	for rest, more := ann, true; more; {
		var entry string
		entry, rest, more = strings.Cut(rest, ",")
		idPart, actPart, hasEq := strings.Cut(entry, "=")
		id := strings.TrimSpace(idPart)
		if id != ruleID && id != "*" {
			continue
		}
		act := Action(strings.TrimSpace(actPart))
		good := hasEq && validAction(act)
		switch {
		case id == ruleID && good:
			specific = stricter(specific, act)
		case id == ruleID:
			specificBad = true
		case good:
			wildcard = stricter(wildcard, act)
		default:
			wildcardBad = true
		}
	}
	switch {
	case specificBad:
		return base
	case specific != "":
		return specific
	case wildcardBad || wildcard == "":
		return base
	}
	return wildcard
}

func strictness(a Action) int {
	switch a {
	case ActionDeny:
		return 3
	case ActionWarn:
		return 2
	case ActionDryRun:
		return 1
	}
	return 0
}

// stricter returns the stricter of a and b; "" counts as unset.
func stricter(a, b Action) Action {
	if strictness(b) > strictness(a) {
		return b
	}
	return a
}
