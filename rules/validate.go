package rules

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// NetworkPolicyRuleIDs lists the built-in NetworkPolicy checks, in the order
// their violations are reported when the standard does not list them.
var NetworkPolicyRuleIDs = []string{
	RuleManagedReadonly, RuleNonIdentitySelector, RuleEgressWithoutDNS, RuleOpenCIDR, RuleRegulatedAllNS,
}

// guardRuleIDs protect Palisade's own keys and objects and the privileged
// changes of a namespace. They always act deny: no rule-actions override
// reaches them (neither "*=warn", a rollout knob for the labeling rules,
// nor one naming them, which the webhook refuses to admit), and a standard
// cannot give netpol-managed-readonly another action.
var guardRuleIDs = []string{RuleReservedKey, RuleInvalidActionsSyntax, RuleManagedReadonly, RuleClassificationLowered, RuleSelectedByPolicy}

// IsGuardRule reports whether ruleID is one of the guard rules, which
// always deny.
func IsGuardRule(ruleID string) bool { return contains(guardRuleIDs, ruleID) }

var actionNames = []string{string(ActionDeny), string(ActionWarn), string(ActionDryRun)}

func validAction(a Action) bool {
	return a == ActionDeny || a == ActionWarn || a == ActionDryRun
}

// validRuleID keeps IDs writable in the rule-actions annotation, whose
// syntax is "id=action,id=action".
func validRuleID(id string) bool {
	if id == "" || len(id) > 63 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || i == len(id)-1 || (c != '-' && c != '.' && c != '_')) {
			return false
		}
	}
	return true
}

type validator struct {
	std  *Standard
	errs *errorList
	line func(path string) int
	// ids maps each rule ID to where it was declared, for duplicate errors.
	ids map[string]string
}

// validate checks everything Parse promises beyond the document's shape.
// line maps a field path to its line (0 when unknown, e.g. for a Standard
// built in code).
func validate(std *Standard, errs *errorList, line func(string) int) {
	v := &validator{std: std, errs: errs, line: line, ids: map[string]string{}}
	v.header()
	v.identity()
	v.labels()
	v.profiles()
	v.networkPolicies()
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs.add(v.line(path), path, format, args...)
}

func (v *validator) header() {
	s := v.std
	if s.APIVersion != APIVersion {
		v.fail("apiVersion", "got %s, want %q", quoteOrMissing(s.APIVersion), APIVersion)
	}
	if s.Kind != Kind {
		v.fail("kind", "got %s, want %q", quoteOrMissing(s.Kind), Kind)
	}
	if s.Metadata.Name == "" {
		v.fail("metadata.name", "missing; name the standard")
	}
	if s.Metadata.Version == "" {
		v.fail("metadata.version", "missing; every decision record names the standard's version")
	}
}

func quoteOrMissing(s string) string {
	if s == "" {
		return "nothing"
	}
	return quoteValue(s)
}

func (v *validator) identity() {
	sp := &v.std.Spec
	if len(sp.IdentityLabels) == 0 {
		v.fail("spec.identityLabels", "missing; list the pod label keys that make a workload's identity, e.g. [app, tier, env]")
	}
	seen := map[string]int{}
	for i, k := range sp.IdentityLabels {
		p := "spec.identityLabels[" + strconv.Itoa(i) + "]"
		v.labelKey(p, "", k)
		if j, dup := seen[k]; dup {
			v.fail(p, "duplicate %s (also identityLabels[%d])", quoteValue(k), j)
		}
		seen[k] = i
	}
	covered, badPrefix := false, false
	for i, pfx := range sp.ReservedPrefixes {
		p := "spec.reservedPrefixes[" + strconv.Itoa(i) + "]"
		switch {
		case strings.TrimSpace(pfx) == "":
			v.fail(p, "empty prefix would reserve every key")
			badPrefix = true
		case hasLineBreak(pfx):
			v.fail(p, "prefix must be one line; it is part of one-line messages")
			badPrefix = true
		case strings.HasPrefix(ReservedPrefix, pfx):
			covered = true
		}
	}
	// A broken entry is reported alone: it may be the author's attempt at
	// the prefix.
	if !covered && !badPrefix {
		v.fail("spec.reservedPrefixes", "must include %q: Palisade's own keys (exemptions, rule actions, enforcement mode) are reserved whatever the standard says", ReservedPrefix)
	}
	for i, g := range sp.PrivilegedGroups {
		p := "spec.privilegedGroups[" + strconv.Itoa(i) + "]"
		switch {
		case strings.TrimSpace(g) == "":
			v.fail(p, "empty group name")
		case hasLineBreak(g):
			v.fail(p, "group name must be one line; it is part of one-line messages")
		}
	}
}

// labelKey checks a label key is one Kubernetes accepts and users may set.
func (v *validator) labelKey(path, shown, k string) {
	if k == "" {
		v.failShown(path, shown, "missing key")
		return
	}
	if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
		v.failShown(path, shown, "invalid label key %s: %s", quoteValue(k), strings.Join(msgs, "; "))
		return
	}
	for _, pfx := range v.std.Spec.ReservedPrefixes {
		if pfx != "" && strings.HasPrefix(k, pfx) {
			v.failShown(path, shown, "key %s is under reserved prefix %q, which users cannot set", k, pfx)
		}
	}
}

// failShown reports at path's line under a display name that may carry
// the rule ID ("labels[3] (pod-app)"); an empty shown uses the path.
func (v *validator) failShown(path, shown, format string, args ...any) {
	if shown == "" {
		v.fail(path, format, args...)
		return
	}
	v.errs.addShown(v.line(path), shown, format, args...)
}

func (v *validator) ruleID(path, shown, id string) {
	switch {
	case id == "":
		v.failShown(path, shown, "missing id")
		return
	case !validRuleID(id):
		v.failShown(path, shown, "invalid id %s: letters, digits, '-', '.' and '_', starting and ending with a letter or digit, at most 63", quoteValue(id))
		return
	}
	if first, dup := v.ids[id]; dup {
		v.failShown(path, shown, "duplicate id %q (first at %s)", id, first)
		return
	}
	v.ids[id] = displayPath(parentPath(path)) + lineSuffix(v.line(path))
}

func lineSuffix(line int) string {
	if line == 0 {
		return ""
	}
	return " line " + strconv.Itoa(line)
}

func (v *validator) labels() {
	for _, g := range guardRuleIDs {
		v.ids[g] = "a built-in rule"
	}
	for _, id := range NetworkPolicyRuleIDs {
		v.ids[id] = "a built-in NetworkPolicy rule"
	}
	type targetKey struct {
		target Target
		key    string
	}
	byKey := map[targetKey]string{}
	for i := range v.std.Spec.Labels {
		r := &v.std.Spec.Labels[i]
		base := "spec.labels[" + strconv.Itoa(i) + "]"
		shown := displayPath(base)
		if r.ID != "" {
			shown += " (" + r.ID + ")"
		}
		v.ruleID(base+".id", shown, r.ID)
		switch r.Target {
		case TargetNamespace, TargetPod:
		case "":
			v.failShown(base, shown, "missing target (one of: %s, %s)", TargetNamespace, TargetPod)
		default:
			v.failShown(base+".target", shown, "unknown target %s (one of: %s, %s)", quoteValue(string(r.Target)), TargetNamespace, TargetPod)
		}
		v.labelKey(base+".key", shown, r.Key)
		if r.Key != "" && r.Target != "" {
			tk := targetKey{r.Target, r.Key}
			if first, dup := byKey[tk]; dup {
				v.failShown(base+".key", shown, "a second rule for %s label %s (first: %s)", r.Target, r.Key, first)
			} else {
				byKey[tk] = shown + lineSuffix(v.line(base))
			}
		}
		v.labelValues(base, shown, r)
		if r.Target == TargetNamespace && (r.InheritFromNamespace || r.MatchNamespace) {
			v.failShown(base, shown, "inheritFromNamespace and matchNamespace apply to Pod rules only")
		}
		if !r.Required && r.Pattern == "" && len(r.Values) == 0 && !r.InheritFromNamespace && !r.MatchNamespace {
			v.failShown(base, shown, "rule checks nothing; set required, pattern, values, inheritFromNamespace or matchNamespace")
		} else if r.Required && r.Pattern == "" && len(r.Values) == 0 {
			v.failShown(base, shown, "required label has neither pattern nor values, so any value (even empty) passes; constrain it")
		}
		if r.Action != "" && !validAction(r.Action) {
			v.failShown(base+".action", shown, "unknown action %s (one of: %s)", quoteValue(string(r.Action)), strings.Join(actionNames, ", "))
		}
		if hasLineBreak(r.Hint) {
			v.failShown(base+".hint", shown, "hint must be one line; it is part of one-line messages")
		}
	}
}

func (v *validator) labelValues(base, shown string, r *LabelRule) {
	var re *regexp.Regexp
	if r.Pattern != "" {
		var err error
		if hasLineBreak(r.Pattern) {
			v.failShown(base+".pattern", shown, `pattern must be one line (write a line break as \n); it is part of one-line messages`)
		} else if _, err = regexp.Compile(r.Pattern); err == nil {
			// The evaluator matches the anchored form, which nests one
			// level deeper and can exceed the limits the bare one meets.
			re, err = compileWhole(r.Pattern)
		}
		if err != nil {
			v.failShown(base+".pattern", shown, "invalid pattern %s: %v", quoteValue(r.Pattern), err)
		}
	}
	seen := map[string]int{}
	for j, val := range r.Values {
		p := base + ".values[" + strconv.Itoa(j) + "]"
		if k, dup := seen[val]; dup {
			v.failShown(p, shown, "duplicate value %s (also values[%d])", quoteValue(val), k)
			continue
		}
		seen[val] = j
		if msgs := validation.IsValidLabelValue(val); len(msgs) > 0 {
			v.failShown(p, shown, "invalid label value %s: %s", quoteValue(val), strings.Join(msgs, "; "))
		}
		if re != nil && !re.MatchString(val) {
			v.failShown(p, shown, "value %s does not match the rule's pattern %s", quoteValue(val), r.Pattern)
		}
	}
}

// compileWhole compiles pattern so it must match the whole value: authors
// write "[a-z]+" meaning the value, not a substring of it.
func compileWhole(pattern string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + pattern + `)$`)
}

// classificationValues returns the closed set of classifications, if a
// Namespace rule on the classification label declares one.
func classificationValues(std *Standard) (string, []string) {
	for _, r := range std.Spec.Labels {
		if r.Target == TargetNamespace && r.Key == std.Spec.Profiles.ClassificationLabel && len(r.Values) > 0 {
			return r.ID, r.Values
		}
	}
	return "", nil
}

func (v *validator) profiles() {
	p := &v.std.Spec.Profiles
	const base = "spec.profiles"
	if p.ClassificationLabel == "" {
		v.fail(base+".classificationLabel", "missing; name the namespace label that holds the data classification")
	} else if msgs := validation.IsQualifiedName(p.ClassificationLabel); len(msgs) > 0 {
		v.fail(base+".classificationLabel", "invalid label key %s: %s", quoteValue(p.ClassificationLabel), strings.Join(msgs, "; "))
	}
	defined := make([]string, 0, len(p.Definitions))
	for name := range p.Definitions {
		defined = append(defined, name)
	}
	sort.Strings(defined)
	if len(defined) == 0 {
		v.fail(base+".definitions", "missing; define at least one profile")
	}
	for _, name := range defined {
		if msgs := validation.IsValidLabelValue(name); len(msgs) > 0 || name == "" {
			v.fail(base+".definitions."+name, "invalid profile name %s: it is written into the %s annotation and must be a valid label value", quoteValue(name), AnnotationProfile)
		}
	}
	undefined := func(path, name string) {
		if len(defined) == 0 {
			return // "definitions: missing" already says it
		}
		v.fail(path, "profile %s is not defined (defined: %s)", quoteValue(name), strings.Join(defined, ", "))
	}
	switch _, ok := p.Definitions[p.DefaultProfile]; {
	case p.DefaultProfile == "":
		v.fail(base+".defaultProfile", "missing; name the profile of namespaces without a known classification")
	case !ok:
		undefined(base+".defaultProfile", p.DefaultProfile)
	}
	ruleID, allowed := classificationValues(v.std)
	classes := make([]string, 0, len(p.ByClassification))
	for c := range p.ByClassification {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		path := base + ".byClassification." + c
		if _, ok := p.Definitions[p.ByClassification[c]]; !ok {
			undefined(path, p.ByClassification[c])
		}
		if allowed != nil && !contains(allowed, c) {
			v.fail(path, "classification %s is not a value of rule %s (one of: %s)", quoteValue(c), ruleID, strings.Join(allowed, ", "))
		}
	}
}

func (v *validator) networkPolicies() {
	ruleID, allowed := classificationValues(v.std)
	seen := map[string]string{}
	for i := range v.std.Spec.NetworkPolicies {
		r := &v.std.Spec.NetworkPolicies[i]
		base := "spec.networkPolicies[" + strconv.Itoa(i) + "]"
		shown := displayPath(base)
		if r.ID != "" {
			shown += " (" + r.ID + ")"
		}
		switch {
		case r.ID == "":
			v.failShown(base, shown, "missing id (one of: %s)", strings.Join(NetworkPolicyRuleIDs, ", "))
		case !contains(NetworkPolicyRuleIDs, r.ID):
			v.failShown(base+".id", shown, "unknown id %s (one of: %s)", quoteValue(r.ID), strings.Join(NetworkPolicyRuleIDs, ", "))
		default:
			if first, dup := seen[r.ID]; dup {
				v.failShown(base+".id", shown, "duplicate id %q (first at %s)", r.ID, first)
			}
			seen[r.ID] = displayPath(base) + lineSuffix(v.line(base))
		}
		if r.Action != "" && !validAction(r.Action) {
			v.failShown(base+".action", shown, "unknown action %s (one of: %s)", quoteValue(string(r.Action)), strings.Join(actionNames, ", "))
		} else if r.Action != "" && r.Action != ActionDeny && IsGuardRule(r.ID) {
			v.failShown(base+".action", shown, "%s guards Palisade's baseline policies and always denies; remove the action or set deny", r.ID)
		}
		for j, c := range r.Classifications {
			p := base + ".classifications[" + strconv.Itoa(j) + "]"
			if c == "" {
				v.failShown(p, shown, "empty classification")
			} else if allowed != nil && !contains(allowed, c) {
				v.failShown(p, shown, "classification %s is not a value of rule %s (one of: %s)", quoteValue(c), ruleID, strings.Join(allowed, ", "))
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
