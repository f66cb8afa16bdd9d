package rules

import (
	"reflect"
	"strings"
	"testing"
)

func TestActionFor(t *testing.T) {
	e := defaultEvaluator(t)
	for _, tc := range []struct {
		ann  string
		rule string
		want Action
	}{
		// The standard's own actions.
		{"", "pod-tier", ActionDeny},
		{"", RuleNonIdentitySelector, ActionWarn},
		{"", RuleEgressWithoutDNS, ActionWarn},
		{"", RuleOpenCIDR, ActionWarn},
		{"", RuleRegulatedAllNS, ActionDeny},
		{"", RuleManagedReadonly, ActionDeny},
		{"", RuleReservedKey, ActionDeny},
		{"", RuleInvalidActionsSyntax, ActionDeny},
		{"", "no-such-rule", ActionDeny},
		// Specific overrides.
		{"pod-tier=warn", "pod-tier", ActionWarn},
		{"pod-tier=dryrun", "pod-tier", ActionDryRun},
		{"pod-tier=deny", RuleNonIdentitySelector, ActionWarn},
		{RuleNonIdentitySelector + "=deny", RuleNonIdentitySelector, ActionDeny},
		{" pod-tier = warn ", "pod-tier", ActionWarn},
		{"pod-app=dryrun,pod-tier=warn", "pod-tier", ActionWarn},
		{"pod-app=bogus,pod-tier=warn", "pod-tier", ActionWarn},
		{"no-such-rule=warn", "no-such-rule", ActionWarn},
		// The wildcard, and a specific entry beating it either way.
		{"*=warn", "pod-tier", ActionWarn},
		{"*=dryrun", RuleNonIdentitySelector, ActionDryRun},
		{"*=deny", RuleOpenCIDR, ActionDeny},
		{"*=warn,pod-tier=deny", "pod-tier", ActionDeny},
		{"*=deny,pod-tier=dryrun", "pod-tier", ActionDryRun},
		{"pod-tier=dryrun,*=deny", "pod-tier", ActionDryRun},
		// No override reaches the guard rules, naming them or not.
		{"*=dryrun", RuleReservedKey, ActionDeny},
		{"*=dryrun", RuleInvalidActionsSyntax, ActionDeny},
		{"*=warn", RuleManagedReadonly, ActionDeny},
		{RuleReservedKey + "=warn", RuleReservedKey, ActionDeny},
		{RuleManagedReadonly + "=dryrun", RuleManagedReadonly, ActionDeny},
		{RuleClassificationLowered + "=warn,*=dryrun", RuleClassificationLowered, ActionDeny},
		{RuleSelectedByPolicy + "=dryrun", RuleSelectedByPolicy, ActionDeny},
		{RuleInvalidActionsSyntax + "=warn", RuleInvalidActionsSyntax, ActionDeny},
		// Malformed entries void their channel, leaving the stricter action.
		{"pod-tier=nonsense", "pod-tier", ActionDeny},
		{"pod-tier", "pod-tier", ActionDeny},
		{"pod-tier=WARN", "pod-tier", ActionDeny},
		{"pod-tier=warn,pod-tier=bogus", "pod-tier", ActionDeny},
		{"*=warn,pod-tier", "pod-tier", ActionDeny},
		{"*=warn,*=bogus", "pod-tier", ActionDeny},
		{"*=bogus,pod-app=warn", "pod-tier", ActionDeny},
		{"*=bogus,pod-app=warn", "pod-app", ActionWarn},
		{"*=bogus", RuleOpenCIDR, ActionWarn},
		{"*", "pod-tier", ActionDeny},
		// Names are exact.
		{"Pod-Tier=warn", "pod-tier", ActionDeny},
		{"pod-tie=warn", "pod-tier", ActionDeny},
		// Repeats: the stricter wins.
		{"pod-tier=warn,pod-tier=dryrun", "pod-tier", ActionWarn},
		{"pod-tier=dryrun,pod-tier=deny", "pod-tier", ActionDeny},
		{"*=dryrun,*=warn", "pod-tier", ActionWarn},
		// Separators only.
		{",,,", "pod-tier", ActionDeny},
		{"=", "pod-tier", ActionDeny},
	} {
		if got := e.ActionFor(tc.rule, overrides(tc.ann)); got != tc.want {
			t.Errorf("ActionFor(%s) with %q = %s, want %s", tc.rule, tc.ann, got, tc.want)
		}
	}
	if got := e.ActionFor("pod-tier", nil); got != ActionDeny {
		t.Errorf("ActionFor without namespace = %s", got)
	}
	if got := e.ActionFor(RuleOpenCIDR, namespace("n", nil, nil)); got != ActionWarn {
		t.Errorf("ActionFor without annotation = %s", got)
	}
}

func TestParseRuleActions(t *testing.T) {
	long := strings.Repeat("a", 100)
	for _, tc := range []struct {
		in      string
		want    map[string]Action
		wantErr string
	}{
		{"", map[string]Action{}, ""},
		{"  ", map[string]Action{}, ""},
		{"pod-tier=warn", map[string]Action{"pod-tier": ActionWarn}, ""},
		{"a=warn, *=dryrun ,b.c_d=deny", map[string]Action{"a": ActionWarn, "*": ActionDryRun, "b.c_d": ActionDeny}, ""},
		{strings.Repeat("a", 63) + "=warn", map[string]Action{strings.Repeat("a", 63): ActionWarn}, ""},
		{"a", nil, `parse rule actions: entry 1 "a": want ruleID=action`},
		{"a=warn,,b=deny", nil, `parse rule actions: entry 2 "": empty entry`},
		{"a=warn,", nil, `parse rule actions: entry 2 "": empty entry`},
		{"a=warn, ", nil, `parse rule actions: entry 2 " ": empty entry`},
		{"a=warn,a=deny", nil, `parse rule actions: entry 2 "a=deny": rule a named twice`},
		{"*=warn, * =deny", nil, `parse rule actions: entry 2 " * =deny": rule * named twice`},
		{"a=block", nil, `parse rule actions: entry 1 "a=block": unknown action "block" (one of: deny, warn, dryrun)`},
		{"a=", nil, `parse rule actions: entry 1 "a=": unknown action "" (one of: deny, warn, dryrun)`},
		{"a==warn", nil, `parse rule actions: entry 1 "a==warn": unknown action "=warn" (one of: deny, warn, dryrun)`},
		{"a=Warn", nil, `parse rule actions: entry 1 "a=Warn": unknown action "Warn" (one of: deny, warn, dryrun)`},
		{"=warn", nil, `parse rule actions: entry 1 "=warn": invalid rule ID ""`},
		{"A B=warn", nil, `parse rule actions: entry 1 "A B=warn": invalid rule ID "A B"`},
		{"-a=warn", nil, `parse rule actions: entry 1 "-a=warn": invalid rule ID "-a"`},
		{"**=warn", nil, `parse rule actions: entry 1 "**=warn": invalid rule ID "**"`},
		{strings.Repeat("a", 64) + "=warn", nil, `parse rule actions: entry 1 "` + strings.Repeat("a", 64) + `=warn": invalid rule ID "` + strings.Repeat("a", 64) + `"`},
		{long + "=warn", nil, `parse rule actions: entry 1 "` + long[:80] + `"...: invalid rule ID "` + long[:80] + `"...`},
		{"a=warn;b=deny", nil, `parse rule actions: entry 1 "a=warn;b=deny": unknown action "warn;b=deny" (one of: deny, warn, dryrun)`},
		{"a\n=warn,\tb = deny\n", map[string]Action{"a": ActionWarn, "b": ActionDeny}, ""},
		{"a b=warn", nil, `parse rule actions: entry 1 "a b=warn": invalid rule ID "a b"`},
	} {
		got, err := ParseRuleActions(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseRuleActions(%q) err = %v, want %s", tc.in, err, tc.wantErr)
			}
			if got != nil {
				t.Errorf("ParseRuleActions(%q) = %v with an error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseRuleActions(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestValidateRuleActions(t *testing.T) {
	e := defaultEvaluator(t)
	const known = " (rules: ns-owner, ns-env, ns-data-classification, pod-app, pod-tier, pod-env, netpol-managed-readonly, netpol-non-identity-selector, netpol-egress-without-dns, netpol-open-cidr, netpol-regulated-all-namespaces, reserved-key, namespace-rule-actions, namespace-classification-lowered, namespace-selected-by-policy)"
	for _, tc := range []struct{ in, wantErr string }{
		{"", ""},
		{"pod-tier=warn,*=dryrun", ""},
		{"reserved-key=deny,netpol-managed-readonly=deny", ""},
		{"reserved-key=warn", "check rule actions: sets guard rule reserved-key to warn; guard rules always deny"},
		{"*=warn,reserved-key=warn,namespace-rule-actions=dryrun,netpol-managed-readonly=warn", "check rule actions: sets guard rules reserved-key to warn, namespace-rule-actions to dryrun, netpol-managed-readonly to warn; guard rules always deny"},
		{"netpol-open-cidr=deny", ""},
		{"nope=warn", `check rule actions: unknown rule "nope"` + known},
		{"zz=warn,pod-tier=warn,aa=deny", `check rule actions: unknown rule "aa", "zz"` + known},
		{"pod-tier=maybe", `check rule actions: entry 1 "pod-tier=maybe": unknown action "maybe" (one of: deny, warn, dryrun)`},
	} {
		err := e.ValidateRuleActions(tc.in)
		if (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
			t.Errorf("ValidateRuleActions(%q) = %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestRuleIDs(t *testing.T) {
	e := defaultEvaluator(t)
	want := []string{"ns-owner", "ns-env", "ns-data-classification", "pod-app", "pod-tier", "pod-env",
		RuleManagedReadonly, RuleNonIdentitySelector, RuleEgressWithoutDNS, RuleOpenCIDR, RuleRegulatedAllNS,
		RuleReservedKey, RuleInvalidActionsSyntax, RuleClassificationLowered, RuleSelectedByPolicy}
	if got := e.RuleIDs(); !reflect.DeepEqual(got, want) {
		t.Errorf("RuleIDs = %v\nwant %v", got, want)
	}
	// NetworkPolicy checks come as the standard lists them, then the rest,
	// which act deny.
	custom := evaluatorFor(t, strings.Replace(podRulesStandard, "  profiles:", "  networkPolicies:\n  - {id: netpol-open-cidr, action: dryrun}\n  profiles:", 1))
	want = []string{"pod-app", "pod-team", "pod-zone", "pod-role", "ns-team",
		RuleOpenCIDR, RuleManagedReadonly, RuleNonIdentitySelector, RuleEgressWithoutDNS, RuleRegulatedAllNS,
		RuleReservedKey, RuleInvalidActionsSyntax, RuleClassificationLowered, RuleSelectedByPolicy}
	if got := custom.RuleIDs(); !reflect.DeepEqual(got, want) {
		t.Errorf("custom RuleIDs = %v\nwant %v", got, want)
	}
	for id, act := range map[string]Action{RuleOpenCIDR: ActionDryRun, RuleNonIdentitySelector: ActionDeny, "pod-role": ActionDryRun, "ns-team": ActionWarn, "pod-app": ActionDeny} {
		if got := custom.ActionFor(id, nil); got != act {
			t.Errorf("custom ActionFor(%s) = %s, want %s", id, got, act)
		}
	}
}
