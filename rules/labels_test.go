package rules

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestNamespaceRules(t *testing.T) {
	e := defaultEvaluator(t)
	const fixActions = ": write comma-separated ruleID=action pairs (actions: deny, warn, dryrun; * for every rule)\n"
	for _, tc := range []struct {
		name   string
		nsName string
		labels map[string]string
		ann    map[string]string
		want   string
	}{
		{"compliant", "n", prodPCI, nil, ""},
		{"every label missing", "n", nil, nil, "" +
			"deny [ns-owner] namespace n: missing label owner: add label owner (lowercase letters, digits, '-' and '.')\n" +
			"deny [ns-env] namespace n: missing label env: add label env (one of: dev, staging, prod)\n" +
			"deny [ns-data-classification] namespace n: missing label data-classification: add label data-classification (one of: public, internal, pci, hipaa)\n"},
		{"bad value and pattern mismatch", "n", map[string]string{"owner": "Team A", "env": "qa", "data-classification": "secret"}, nil, "" +
			`deny [ns-owner] namespace n: label owner="Team A" does not match ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$: set owner to lowercase letters, digits, '-' and '.'` + "\n" +
			`deny [ns-env] namespace n: label env="qa" is not allowed: set env to one of: dev, staging, prod` + "\n" +
			`deny [ns-data-classification] namespace n: label data-classification="secret" is not allowed: set data-classification to one of: public, internal, pci, hipaa` + "\n"},
		{"empty values are values", "n", map[string]string{"owner": "", "env": "", "data-classification": "pci"}, nil, "" +
			`deny [ns-owner] namespace n: label owner="" does not match ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$: set owner to lowercase letters, digits, '-' and '.'` + "\n" +
			`deny [ns-env] namespace n: label env="" is not allowed: set env to one of: dev, staging, prod` + "\n"},
		{"pattern is anchored", "n", map[string]string{"owner": "team-a-", "env": "prod", "data-classification": "pci"}, nil,
			`deny [ns-owner] namespace n: label owner="team-a-" does not match ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$: set owner to lowercase letters, digits, '-' and '.'` + "\n"},
		{"values are case-sensitive", "n", map[string]string{"owner": "a", "env": "Prod", "data-classification": "pci"}, nil,
			`deny [ns-env] namespace n: label env="Prod" is not allowed: set env to one of: dev, staging, prod` + "\n"},
		{"other labels are ignored", "n", map[string]string{"owner": "a.b", "env": "dev", "data-classification": "public", "team": "Anything Goes"}, nil, ""},
		{"hostile name and value stay on one line", "a\nb", map[string]string{"owner": "x\r\ny", "env": "prod", "data-classification": "pci"}, nil,
			`deny [ns-owner] namespace "a\nb": label owner="x\r\ny" does not match ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$: set owner to lowercase letters, digits, '-' and '.'` + "\n"},
		{"override to warn", "n", map[string]string{"env": "prod", "data-classification": "pci"}, map[string]string{AnnotationRuleActions: "ns-owner=warn"},
			"warn [ns-owner] namespace n: missing label owner: add label owner (lowercase letters, digits, '-' and '.')\n"},
		{"wildcard override", "n", map[string]string{"owner": "a"}, map[string]string{AnnotationRuleActions: "*=dryrun,ns-env=warn"}, "" +
			"warn [ns-env] namespace n: missing label env: add label env (one of: dev, staging, prod)\n" +
			"dryrun [ns-data-classification] namespace n: missing label data-classification: add label data-classification (one of: public, internal, pci, hipaa)\n"},
		{"empty override", "n", prodPCI, map[string]string{AnnotationRuleActions: ""}, ""},
		{"malformed override", "n", prodPCI, map[string]string{AnnotationRuleActions: "ns-owner=maybe"},
			`deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions is malformed: entry 1 "ns-owner=maybe": unknown action "maybe" (one of: deny, warn, dryrun)` + fixActions},
		{"malformed override still applies its good entries", "n", map[string]string{"env": "prod", "data-classification": "pci"}, map[string]string{AnnotationRuleActions: "ns-owner=warn,,"}, "" +
			"warn [ns-owner] namespace n: missing label owner: add label owner (lowercase letters, digits, '-' and '.')\n" +
			`deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions is malformed: entry 2 "": empty entry` + fixActions},
		{"a wildcard does not relax the syntax check", "n", prodPCI, map[string]string{AnnotationRuleActions: "*=warn,x"},
			`deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions is malformed: entry 2 "x": want ruleID=action` + fixActions},
		{"naming the syntax check does not relax it", "n", prodPCI, map[string]string{AnnotationRuleActions: "namespace-rule-actions=warn,x"},
			`deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions is malformed: entry 2 "x": want ruleID=action` + fixActions},
		{"override relaxing a guard rule", "n", prodPCI, map[string]string{AnnotationRuleActions: "pod-tier=warn,reserved-key=warn"},
			"deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions sets guard rule reserved-key to warn; guard rules always deny: remove reserved-key=warn (only the labeling and NetworkPolicy rules can be relaxed)\n"},
		{"override relaxing guard rules while the wildcard relaxes the rest", "n", prodPCI, map[string]string{AnnotationRuleActions: "*=warn,netpol-managed-readonly=dryrun,namespace-classification-lowered=warn"},
			"deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions sets guard rules netpol-managed-readonly to dryrun, namespace-classification-lowered to warn; guard rules always deny: remove netpol-managed-readonly=dryrun, namespace-classification-lowered=warn (only the labeling and NetworkPolicy rules can be relaxed)\n"},
		{"unknown rule in override", "n", prodPCI, map[string]string{AnnotationRuleActions: "pod-teir=warn,pod-ap=dryrun"},
			`deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions is malformed: unknown rule "pod-ap", "pod-teir" (rules: ns-owner, ns-env, ns-data-classification, pod-app, pod-tier, pod-env, netpol-managed-readonly, netpol-non-identity-selector, netpol-egress-without-dns, netpol-open-cidr, netpol-regulated-all-namespaces, reserved-key, namespace-rule-actions, namespace-classification-lowered, namespace-selected-by-policy)` + fixActions},
		{"hostile override stays on one line", "n", prodPCI, map[string]string{AnnotationRuleActions: "a=warn\nb=deny"},
			`deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions is malformed: entry 1 "a=warn\nb=deny": unknown action "warn\nb=deny" (one of: deny, warn, dryrun)` + fixActions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := e.Namespace(namespace(tc.nsName, tc.labels, tc.ann))
			checkShape(t, e, vs)
			if got := render(vs); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	if vs := e.Namespace(nil); vs != nil {
		t.Errorf("Namespace(nil) = %v", vs)
	}
}

func TestNamespaceViolationFields(t *testing.T) {
	e := defaultEvaluator(t)
	vs := e.Namespace(namespace("shop", map[string]string{"owner": "a", "data-classification": "pci", "env": "qa"}, map[string]string{AnnotationRuleActions: "x"}))
	want := []Violation{
		{RuleID: "ns-env", Object: "namespace shop", Key: "env", Action: ActionDeny,
			Message: `[ns-env] namespace shop: label env="qa" is not allowed: set env to one of: dev, staging, prod`,
			Fix:     "set env to one of: dev, staging, prod"},
		{RuleID: RuleInvalidActionsSyntax, Object: "namespace shop", Key: AnnotationRuleActions, Action: ActionDeny,
			Message: `[namespace-rule-actions] namespace shop: annotation palisade.dev/rule-actions is malformed: entry 1 "x": want ruleID=action: write comma-separated ruleID=action pairs (actions: deny, warn, dryrun; * for every rule)`,
			Fix:     "write comma-separated ruleID=action pairs (actions: deny, warn, dryrun; * for every rule)"},
	}
	if !reflect.DeepEqual(vs, want) {
		t.Errorf("got\n%#v\nwant\n%#v", vs, want)
	}
}

func TestPodRules(t *testing.T) {
	e := defaultEvaluator(t)
	prod := namespace("shop", prodPCI, nil)
	noEnv := namespace("shop", map[string]string{"owner": "a", "data-classification": "pci"}, nil)
	badEnv := namespace("shop", map[string]string{"env": "qa"}, nil)
	tierWarn := namespace("shop", prodPCI, map[string]string{AnnotationRuleActions: "pod-tier=warn"})
	for _, tc := range []struct {
		name   string
		labels map[string]string
		ns     *corev1.Namespace
		want   string
	}{
		{"compliant, env inherited", map[string]string{"app": "api", "tier": "backend"}, prod, ""},
		{"compliant, env equal to the namespace's", map[string]string{"app": "api", "tier": "backend", "env": "prod"}, prod, ""},
		{"compliant, other labels ignored", map[string]string{"app": "api", "tier": "data", "pod-template-hash": "x", "version": "V 1"}, prod, ""},
		{"missing app and tier", nil, prod, "" +
			"deny [pod-app] pod shop/p: missing label app: add label app (a lowercase DNS label)\n" +
			"deny [pod-tier] pod shop/p: missing label tier: add label tier (one of: frontend, backend, data)\n"},
		{"bad app, bad tier", map[string]string{"app": "API_1", "tier": "db"}, prod, "" +
			`deny [pod-app] pod shop/p: label app="API_1" does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$: set app to a lowercase DNS label` + "\n" +
			`deny [pod-tier] pod shop/p: label tier="db" is not allowed: set tier to one of: frontend, backend, data` + "\n"},
		{"override applies per rule", map[string]string{"app": "API"}, tierWarn, "" +
			`deny [pod-app] pod shop/p: label app="API" does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$: set app to a lowercase DNS label` + "\n" +
			"warn [pod-tier] pod shop/p: missing label tier: add label tier (one of: frontend, backend, data)\n"},
		{"env differs from the namespace's", map[string]string{"app": "a", "tier": "data", "env": "dev"}, prod,
			`deny [pod-env] pod shop/p: label env="dev" differs from namespace shop env="prod": remove label env (it is inherited) or set it to prod` + "\n"},
		{"env set, namespace without env", map[string]string{"app": "a", "tier": "data", "env": "dev"}, noEnv,
			`deny [pod-env] pod shop/p: label env="dev" but namespace shop has no label env: remove label env or label namespace shop env=dev` + "\n"},
		{"env missing, namespace without env: not required", map[string]string{"app": "a", "tier": "data"}, noEnv, ""},
		{"inherited value invalid", map[string]string{"app": "a", "tier": "data"}, badEnv,
			`deny [pod-env] pod shop/p: label env="qa" is not allowed (inherited from namespace shop): fix namespace shop: set env to one of: dev, staging, prod` + "\n"},
		{"own value equal to the namespace's invalid one", map[string]string{"app": "a", "tier": "data", "env": "qa"}, badEnv,
			`deny [pod-env] pod shop/p: label env="qa" is not allowed (inherited from namespace shop): fix namespace shop: set env to one of: dev, staging, prod` + "\n"},
		{"namespace unknown: relative checks skipped", map[string]string{"app": "a", "tier": "data", "env": "dev"}, nil, ""},
		{"namespace unknown: values still checked", map[string]string{"app": "a", "tier": "data", "env": "qa"}, nil,
			`deny [pod-env] pod shop/p: label env="qa" is not allowed: set env to one of: dev, staging, prod` + "\n"},
		{"hostile values stay on one line", map[string]string{"app": "a\nb", "tier": strings.Repeat("x", 200)}, prod, "" +
			`deny [pod-app] pod shop/p: label app="a\nb" does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$: set app to a lowercase DNS label` + "\n" +
			`deny [pod-tier] pod shop/p: label tier="` + strings.Repeat("x", 80) + `"... is not allowed: set tier to one of: frontend, backend, data` + "\n"},
		{"hostile value in a fix stays on one line", map[string]string{"app": "a", "tier": "data", "env": "dev\n[pod-app] forged"}, noEnv,
			`deny [pod-env] pod shop/p: label env="dev\n[pod-app] forged" but namespace shop has no label env: remove label env or label namespace shop env="dev\n[pod-app] forged"` + "\n"},
		{"long value truncated on a rune boundary", map[string]string{"app": "a", "tier": strings.Repeat("x", 79) + "é"}, prod,
			`deny [pod-tier] pod shop/p: label tier="` + strings.Repeat("x", 79) + `"... is not allowed: set tier to one of: frontend, backend, data` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := e.Pod("pod shop/p", tc.labels, tc.ns)
			checkShape(t, e, vs)
			if got := render(vs); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// podRulesStandard has the Pod rule shapes the default lacks: a pattern
// without hint, matchNamespace without inheritance, a required inherited
// label without matchNamespace.
const podRulesStandard = `apiVersion: palisade.dev/v1alpha1
kind: LabelingStandard
metadata: {name: pods, version: "2"}
spec:
  identityLabels: [app, team, zone]
  reservedPrefixes: [palisade.dev/]
  labels:
  - {id: pod-app, target: Pod, key: app, required: true, pattern: '[a-z]+'}
  - {id: pod-team, target: Pod, key: team, matchNamespace: true}
  - {id: pod-zone, target: Pod, key: zone, required: true, values: [a, b], inheritFromNamespace: true}
  - {id: pod-role, target: Pod, key: role, values: [x1], pattern: 'x[0-9]', action: dryrun}
  - {id: ns-team, target: Namespace, key: team, required: true, pattern: '[a-z]+', hint: lowercase, action: warn}
  profiles:
    classificationLabel: class
    defaultProfile: p
    definitions: {p: {}}
`

func TestPodRuleShapes(t *testing.T) {
	e := evaluatorFor(t, podRulesStandard)
	ns := func(labels map[string]string) *corev1.Namespace { return namespace("n", labels, nil) }
	for _, tc := range []struct {
		name   string
		labels map[string]string
		ns     *corev1.Namespace
		want   string
	}{
		{"pattern without hint", map[string]string{"zone": "a"}, nil,
			"deny [pod-app] pod n/p: missing label app: add label app (matching [a-z]+)\n"},
		{"pattern is matched whole", map[string]string{"app": "ab1", "zone": "a"}, nil,
			`deny [pod-app] pod n/p: label app="ab1" does not match [a-z]+: set app to a value matching [a-z]+` + "\n"},
		{"matchNamespace without inheritance", map[string]string{"app": "a", "team": "y"}, ns(map[string]string{"team": "x", "zone": "a"}),
			`deny [pod-team] pod n/p: label team="y" differs from namespace n team="x": set team to x` + "\n"},
		{"matchNamespace, namespace without the label", map[string]string{"app": "a", "team": "y", "zone": "a"}, ns(nil),
			`deny [pod-team] pod n/p: label team="y" but namespace n has no label team: remove label team or label namespace n team=y` + "\n"},
		{"matchNamespace, hostile namespace value", map[string]string{"app": "a", "team": "y"}, ns(map[string]string{"team": "x y", "zone": "a"}),
			`deny [pod-team] pod n/p: label team="y" differs from namespace n team="x y": set team to "x y"` + "\n"},
		{"matchNamespace, pod without the label", map[string]string{"app": "a"}, ns(map[string]string{"team": "x", "zone": "a"}), ""},
		{"required inherited label from the namespace", map[string]string{"app": "a"}, ns(map[string]string{"zone": "b"}), ""},
		{"required inherited label nowhere", map[string]string{"app": "a"}, ns(nil),
			"deny [pod-zone] pod n/p: missing label zone: add label zone (one of: a, b)\n"},
		{"own value wins over the namespace's without matchNamespace", map[string]string{"app": "a", "zone": "b"}, ns(map[string]string{"zone": "a"}), ""},
		{"own invalid value, namespace differs", map[string]string{"app": "a", "zone": "c"}, ns(map[string]string{"zone": "a"}),
			`deny [pod-zone] pod n/p: label zone="c" is not allowed: set zone to one of: a, b` + "\n"},
		{"values checked before pattern; rule action", map[string]string{"app": "a", "zone": "a", "role": "z"}, nil,
			`dryrun [pod-role] pod n/p: label role="z" is not allowed: set role to one of: x1` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := e.Pod("pod n/p", tc.labels, tc.ns)
			checkShape(t, e, vs)
			if got := render(vs); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	if got, want := render(e.Namespace(namespace("n", map[string]string{"team": "X"}, nil))),
		`warn [ns-team] namespace n: label team="X" does not match [a-z]+: set team to lowercase`+"\n"; got != want {
		t.Errorf("namespace rule with hint: got %s, want %s", got, want)
	}
}

func TestInherit(t *testing.T) {
	def := defaultEvaluator(t)
	custom := evaluatorFor(t, podRulesStandard)
	for _, tc := range []struct {
		name   string
		e      *Evaluator
		labels map[string]string
		ns     *corev1.Namespace
		want   map[string]string
	}{
		{"env from the namespace", def, map[string]string{"app": "a"}, namespace("n", prodPCI, nil), map[string]string{"env": "prod"}},
		{"env already set, even to another value", def, map[string]string{"env": "dev"}, namespace("n", prodPCI, nil), nil},
		{"env set empty", def, map[string]string{"env": ""}, namespace("n", prodPCI, nil), nil},
		{"namespace without env", def, nil, namespace("n", map[string]string{"owner": "a"}, nil), nil},
		{"invalid namespace value is inherited as is", def, nil, namespace("n", map[string]string{"env": "qa"}, nil), map[string]string{"env": "qa"}},
		{"namespace unknown", def, nil, nil, nil},
		{"only inherited rules", custom, nil, namespace("n", map[string]string{"team": "x", "zone": "a", "app": "b"}, nil), map[string]string{"zone": "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.e.Inherit(tc.labels, tc.ns); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Inherit = %v, want %v", got, tc.want)
			}
		})
	}
	// Inheriting then judging is what the webhook does: the result passes.
	labels := map[string]string{"app": "api", "tier": "data"}
	ns := namespace("n", prodPCI, nil)
	for k, v := range def.Inherit(labels, ns) {
		labels[k] = v
	}
	if vs := def.Pod("pod n/p", labels, ns); len(vs) != 0 {
		t.Errorf("inherited pod judged: %v", vs)
	}
}
