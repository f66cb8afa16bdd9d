package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Evaluator judges objects against one standard. Safe for concurrent use.
// It compiles the standard once (patterns, value sets, fix texts) so the
// per-object work is map lookups and, for pattern rules, one regexp match.
type Evaluator struct {
	std *Standard

	nsRules  []labelCheck
	podRules []labelCheck

	identity     map[string]struct{}
	identityKeys []string
	// nsIdentity are the namespace label keys a namespaceSelector may use:
	// the name label the API server sets plus the standard's namespace keys.
	nsIdentity     map[string]struct{}
	nsIdentityKeys []string

	privileged map[string]struct{}
	// actions holds the declared action of every rule an override may
	// name; rules without one act deny.
	actions map[string]Action
	// netpol lists the NetworkPolicy checks in report order: as the
	// standard lists them, then the unlisted ones.
	netpol []netpolCheck

	classificationLabel string
	reservedPrefixes    []string
}

// labelCheck is a LabelRule compiled for evaluation.
type labelCheck struct {
	id, key  string
	shownKey string
	required bool
	inherit  bool
	match    bool
	values   []string
	re       *regexp.Regexp
	pattern  string
	// addFix and setFix are the remedies for a missing and a bad value.
	addFix, setFix string
	valueList      string
}

type netpolCheck struct {
	id string
	// classifications limits the check to namespaces so classified; nil
	// means every namespace.
	classifications []string
}

// NewEvaluator compiles the standard's patterns. It validates the standard
// as Parse does, so a Standard built in code cannot smuggle in a broken rule.
func NewEvaluator(std *Standard) (*Evaluator, error) {
	if std == nil {
		return nil, errors.New("new evaluator: no standard")
	}
	errs := &errorList{source: std.Source}
	validate(std, errs, func(string) int { return 0 })
	if err := errs.err(); err != nil {
		return nil, fmt.Errorf("new evaluator: %w", err)
	}
	e := &Evaluator{
		std:                 std,
		identity:            map[string]struct{}{},
		nsIdentity:          map[string]struct{}{"kubernetes.io/metadata.name": {}},
		nsIdentityKeys:      []string{"kubernetes.io/metadata.name"},
		privileged:          map[string]struct{}{},
		actions:             map[string]Action{},
		classificationLabel: std.Spec.Profiles.ClassificationLabel,
		reservedPrefixes:    append([]string(nil), std.Spec.ReservedPrefixes...),
	}
	for _, k := range std.Spec.IdentityLabels {
		e.identity[k] = struct{}{}
		e.identityKeys = append(e.identityKeys, k)
	}
	for _, g := range std.Spec.PrivilegedGroups {
		e.privileged[g] = struct{}{}
	}
	for _, id := range guardRuleIDs {
		e.actions[id] = ActionDeny
	}
	for _, r := range std.Spec.Labels {
		c, err := compileLabelRule(r)
		if err != nil {
			return nil, fmt.Errorf("new evaluator: %w", err)
		}
		e.actions[r.ID] = orDeny(r.Action)
		if r.Target == TargetNamespace {
			e.nsRules = append(e.nsRules, c)
			e.addNamespaceIdentity(r.Key)
		} else {
			e.podRules = append(e.podRules, c)
		}
	}
	e.addNamespaceIdentity(std.Spec.Profiles.ClassificationLabel)
	listed := map[string]bool{}
	for _, r := range std.Spec.NetworkPolicies {
		listed[r.ID] = true
		e.actions[r.ID] = orDeny(r.Action)
		e.netpol = append(e.netpol, netpolCheck{id: r.ID, classifications: r.Classifications})
	}
	for _, id := range NetworkPolicyRuleIDs {
		if !listed[id] {
			e.actions[id] = ActionDeny
			e.netpol = append(e.netpol, netpolCheck{id: id})
		}
	}
	return e, nil
}

func (e *Evaluator) addNamespaceIdentity(k string) {
	if _, ok := e.nsIdentity[k]; !ok && k != "" {
		e.nsIdentity[k] = struct{}{}
		e.nsIdentityKeys = append(e.nsIdentityKeys, k)
	}
}

func orDeny(a Action) Action {
	if a == "" {
		return ActionDeny
	}
	return a
}

func compileLabelRule(r LabelRule) (labelCheck, error) {
	c := labelCheck{
		id:       r.ID,
		key:      r.Key,
		shownKey: showKey(r.Key),
		required: r.Required,
		inherit:  r.Target == TargetPod && r.InheritFromNamespace,
		match:    r.Target == TargetPod && r.MatchNamespace,
		values:   r.Values,
		pattern:  r.Pattern,
	}
	if r.Pattern != "" {
		re, err := compileWhole(r.Pattern)
		if err != nil {
			return c, fmt.Errorf("compile rule %s: %w", r.ID, err)
		}
		c.re = re
	}
	c.valueList = strings.Join(r.Values, ", ")
	var want string
	switch {
	case len(r.Values) > 0:
		want = "one of: " + c.valueList
		c.setFix = "set " + c.shownKey + " to one of: " + c.valueList
	case r.Hint != "":
		want = r.Hint
		c.setFix = "set " + c.shownKey + " to " + r.Hint
	case r.Pattern != "":
		want = "matching " + r.Pattern
		c.setFix = "set " + c.shownKey + " to a value matching " + r.Pattern
	}
	c.addFix = "add label " + c.shownKey
	if want != "" {
		c.addFix += " (" + want + ")"
	}
	return c, nil
}

// Standard returns the standard this evaluator judges by.
func (e *Evaluator) Standard() *Standard { return e.std }

// IsPrivileged reports whether any of groups is one of the standard's
// privileged groups.
func (e *Evaluator) IsPrivileged(groups []string) bool {
	for _, g := range groups {
		if _, ok := e.privileged[g]; ok {
			return true
		}
	}
	return false
}

// IsIdentityLabel reports whether key is one of the identity labels.
func (e *Evaluator) IsIdentityLabel(key string) bool {
	_, ok := e.identity[key]
	return ok
}

// IdentityLabels returns the identity label keys in the standard's order.
func (e *Evaluator) IdentityLabels() []string {
	return append([]string(nil), e.identityKeys...)
}

// IsReservedKey reports whether key lies under one of the standard's
// reserved prefixes.
func (e *Evaluator) IsReservedKey(key string) bool {
	return e.reservedPrefix(key) != ""
}

func (e *Evaluator) reservedPrefix(key string) string {
	for _, p := range e.reservedPrefixes {
		if strings.HasPrefix(key, p) {
			return p
		}
	}
	return ""
}
