package rules

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func defaultEvaluator(t testing.TB) *Evaluator {
	t.Helper()
	e, err := NewEvaluator(Default())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func namespace(name string, labels map[string]string, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

var prodPCI = map[string]string{"owner": "team-a", "env": "prod", "data-classification": "pci"}

// render is "action message" per violation, one per line.
func render(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(string(v.Action) + " " + v.Message + "\n")
	}
	return b.String()
}

func TestNamespaceRules(t *testing.T) {
	e := defaultEvaluator(t)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		ann    map[string]string
		want   string
	}{
		{"compliant", prodPCI, nil, ""},
		{"all missing", nil, nil, "" +
			"deny [ns-owner] namespace n: missing label owner: add label owner (lowercase letters, digits, '-' and '.')\n" +
			"deny [ns-env] namespace n: missing label env: add label env (one of: dev, staging, prod)\n" +
			"deny [ns-data-classification] namespace n: missing label data-classification: add label data-classification (one of: public, internal, pci, hipaa)\n"},
		{"bad values", map[string]string{"owner": "Team A", "env": "qa", "data-classification": "secret"}, nil, "" +
			"deny [ns-owner] namespace n: label owner=\"Team A\" does not match ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$: set owner to lowercase letters, digits, '-' and '.'\n" +
			"deny [ns-env] namespace n: label env=\"qa\" is not allowed: set env to one of: dev, staging, prod\n" +
			"deny [ns-data-classification] namespace n: label data-classification=\"secret\" is not allowed: set data-classification to one of: public, internal, pci, hipaa\n"},
		{"warn override", map[string]string{"env": "prod", "data-classification": "pci"}, map[string]string{AnnotationRuleActions: "ns-owner=warn"},
			"warn [ns-owner] namespace n: missing label owner: add label owner (lowercase letters, digits, '-' and '.')\n"},
		{"malformed override", prodPCI, map[string]string{AnnotationRuleActions: "ns-owner=maybe"},
			"deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions is malformed: entry 1 \"ns-owner=maybe\": unknown action \"maybe\" (one of: deny, warn, dryrun): write comma-separated ruleID=action pairs (actions: deny, warn, dryrun; * for every rule)\n"},
		{"unknown rule in override", prodPCI, map[string]string{AnnotationRuleActions: "pod-teir=warn"},
			"deny [namespace-rule-actions] namespace n: annotation palisade.dev/rule-actions is malformed: unknown rule \"pod-teir\" (rules: ns-owner, ns-env, ns-data-classification, pod-app, pod-tier, pod-env, netpol-managed-readonly, netpol-non-identity-selector, netpol-egress-without-dns, netpol-open-cidr, netpol-regulated-all-namespaces, reserved-key, namespace-rule-actions): write comma-separated ruleID=action pairs (actions: deny, warn, dryrun; * for every rule)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(e.Namespace(namespace("n", tc.labels, tc.ann))); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestPodRules(t *testing.T) {
	e := defaultEvaluator(t)
	prod := namespace("shop", prodPCI, nil)
	noEnv := namespace("shop", map[string]string{"owner": "a", "data-classification": "pci"}, nil)
	badEnv := namespace("shop", map[string]string{"env": "qa"}, nil)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		ns     *corev1.Namespace
		want   string
	}{
		{"compliant, env inherited", map[string]string{"app": "api", "tier": "backend"}, prod, ""},
		{"compliant, env equal", map[string]string{"app": "api", "tier": "backend", "env": "prod"}, prod, ""},
		{"missing app and tier", nil, prod, "" +
			"deny [pod-app] pod shop/p: missing label app: add label app (a lowercase DNS label)\n" +
			"deny [pod-tier] pod shop/p: missing label tier: add label tier (one of: frontend, backend, data)\n"},
		{"bad app, bad tier", map[string]string{"app": "API_1", "tier": "db"}, prod, "" +
			"deny [pod-app] pod shop/p: label app=\"API_1\" does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$: set app to a lowercase DNS label\n" +
			"deny [pod-tier] pod shop/p: label tier=\"db\" is not allowed: set tier to one of: frontend, backend, data\n"},
		{"env differs from namespace", map[string]string{"app": "a", "tier": "data", "env": "dev"}, prod,
			"deny [pod-env] pod shop/p: label env=\"dev\" differs from namespace shop env=\"prod\": remove label env (it is inherited) or set it to prod\n"},
		{"env set, namespace has none", map[string]string{"app": "a", "tier": "data", "env": "dev"}, noEnv,
			"deny [pod-env] pod shop/p: label env=\"dev\" but namespace shop has no label env: remove label env or label namespace shop env=dev\n"},
		{"inherited value invalid", map[string]string{"app": "a", "tier": "data"}, badEnv,
			"deny [pod-env] pod shop/p: label env=\"qa\" is not allowed (inherited from namespace shop): fix namespace shop: set env to one of: dev, staging, prod\n"},
		{"namespace unknown: relative checks skipped", map[string]string{"app": "a", "tier": "data", "env": "dev"}, nil, ""},
		{"hostile key and value stay one line", map[string]string{"app": "a\nb", "tier": strings.Repeat("x", 200)}, prod, "" +
			"deny [pod-app] pod shop/p: label app=\"a\\nb\" does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$: set app to a lowercase DNS label\n" +
			"deny [pod-tier] pod shop/p: label tier=\"" + strings.Repeat("x", 80) + "\"... is not allowed: set tier to one of: frontend, backend, data\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(e.Pod("pod shop/p", tc.labels, tc.ns)); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestActionsPerNamespace(t *testing.T) {
	e := defaultEvaluator(t)
	for _, tc := range []struct {
		ann  string
		rule string
		want Action
	}{
		{"", "pod-tier", ActionDeny},
		{"", RuleNonIdentitySelector, ActionWarn},
		{"pod-tier=warn", "pod-tier", ActionWarn},
		{"pod-tier=dryrun", "pod-tier", ActionDryRun},
		{"*=warn", "pod-tier", ActionWarn},
		{"*=warn,pod-tier=deny", "pod-tier", ActionDeny},
		{"*=dryrun", RuleNonIdentitySelector, ActionDryRun},
		{"*=warn", RuleReservedKey, ActionDeny},
		{"*=warn", RuleManagedReadonly, ActionDeny},
		{RuleManagedReadonly + "=warn", RuleManagedReadonly, ActionWarn},
		{"pod-tier=nonsense", "pod-tier", ActionDeny},
		{"pod-tier=warn,pod-tier=dryrun", "pod-tier", ActionWarn},
		{"*=bogus,pod-app=warn", "pod-tier", ActionDeny},
		{" pod-tier = warn ", "pod-tier", ActionWarn},
	} {
		ns := namespace("n", nil, map[string]string{AnnotationRuleActions: tc.ann})
		if tc.ann == "" {
			ns.Annotations = nil
		}
		if got := e.ActionFor(tc.rule, ns); got != tc.want {
			t.Errorf("ActionFor(%s) with %q = %s, want %s", tc.rule, tc.ann, got, tc.want)
		}
	}
	if got := e.ActionFor("pod-tier", nil); got != ActionDeny {
		t.Errorf("ActionFor without namespace = %s", got)
	}
}

func TestParseRuleActions(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]Action
		wantErr string
	}{
		{"", map[string]Action{}, ""},
		{"a=warn, *=dryrun", map[string]Action{"a": ActionWarn, "*": ActionDryRun}, ""},
		{"a", nil, `parse rule actions: entry 1 "a": want ruleID=action`},
		{"a=warn,,b=deny", nil, `parse rule actions: entry 2 "": empty entry`},
		{"a=warn,a=deny", nil, `parse rule actions: entry 2 "a=deny": rule a named twice`},
		{"a=block", nil, `parse rule actions: entry 1 "a=block": unknown action "block" (one of: deny, warn, dryrun)`},
		{"A B=warn", nil, `parse rule actions: entry 1 "A B=warn": invalid rule ID "A B"`},
	} {
		got, err := ParseRuleActions(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseRuleActions(%q) err = %v, want %s", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("ParseRuleActions(%q) = %v, %v", tc.in, got, err)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("ParseRuleActions(%q)[%s] = %s, want %s", tc.in, k, got[k], v)
			}
		}
	}
}

func TestReservedKeys(t *testing.T) {
	e := defaultEvaluator(t)
	ns := namespace("shop", prodPCI, nil)
	meta := func(labels, ann map[string]string) *metav1.ObjectMeta {
		return &metav1.ObjectMeta{Labels: labels, Annotations: ann}
	}
	allowed := map[string]string{AnnotationProfile: "restricted"}
	for _, tc := range []struct {
		name     string
		old, new *metav1.ObjectMeta
		want     string
	}{
		{"no reserved keys", nil, meta(map[string]string{"app": "a"}, nil), ""},
		{"user sets exemption", nil, meta(nil, map[string]string{AnnotationExempt: "true"}),
			"deny [reserved-key] namespace shop: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt (only Palisade and members of system:masters may set palisade.dev/ keys)\n"},
		{"reserved label", nil, meta(map[string]string{"palisade.dev/identity": "x"}, nil),
			"deny [reserved-key] namespace shop: label palisade.dev/identity is reserved: remove label palisade.dev/identity (only Palisade and members of system:masters may set palisade.dev/ keys)\n"},
		{"value palisade sets is accepted", nil, meta(nil, map[string]string{AnnotationProfile: "restricted"}), ""},
		{"other value of a palisade key", nil, meta(nil, map[string]string{AnnotationProfile: "open-namespace"}),
			"deny [reserved-key] namespace shop: annotation palisade.dev/profile=\"open-namespace\" is reserved; Palisade sets it to \"restricted\": remove annotation palisade.dev/profile or set it to \"restricted\"\n"},
		{"unchanged on update", meta(nil, map[string]string{AnnotationExempt: "true"}), meta(nil, map[string]string{AnnotationExempt: "true"}), ""},
		{"removal passes", meta(nil, map[string]string{AnnotationExempt: "true"}), meta(nil, nil), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(e.ReservedKeys("namespace shop", tc.old, tc.new, allowed, ns)); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	// A request changing the override itself is judged deny, whatever the
	// override says about reserved-key.
	relaxed := namespace("shop", prodPCI, map[string]string{AnnotationRuleActions: "reserved-key=dryrun"})
	vs := e.ReservedKeys("namespace shop", meta(nil, nil), meta(nil, map[string]string{AnnotationRuleActions: "reserved-key=dryrun"}), nil, relaxed)
	if len(vs) != 1 || vs[0].Action != ActionDeny {
		t.Errorf("self-relaxing override: %v", vs)
	}
}

func policyFromYAML(t *testing.T, s string) *networkingv1.NetworkPolicy {
	t.Helper()
	np := &networkingv1.NetworkPolicy{}
	if err := yaml.UnmarshalStrict([]byte(s), np); err != nil {
		t.Fatal(err)
	}
	return np
}

func TestNetworkPolicyChecks(t *testing.T) {
	e := defaultEvaluator(t)
	pci := namespace("shop", prodPCI, nil)
	public := namespace("web", map[string]string{"owner": "a", "env": "dev", "data-classification": "public"}, nil)
	for _, tc := range []struct {
		name, policy string
		ns           *corev1.Namespace
		want         string
	}{
		{"identity selectors only", `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {matchLabels: {tier: frontend}}, namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: web}}}]}]
`, pci, ""},
		{"non-identity pod and namespace keys", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {matchExpressions: [{key: version, operator: In, values: [v1]}]}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: x}}}]}]
`, public, "" +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.ingress[0].from[0].namespaceSelector selects on namespace label team, which is not part of a namespace's identity, so it cannot select by identity: select namespaces by kubernetes.io/metadata.name, owner, env or data-classification\n" +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.podSelector selects on pod label version, which is not an identity label, so it cannot select by identity: select pods by app, tier or env\n"},
		{"egress isolation without DNS, open CIDR", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: "::/0"}}], ports: [{port: 443}]}]
`, public, "" +
			"warn [netpol-egress-without-dns] networkpolicy web/p: isolates egress but allows no DNS (UDP/TCP port 53), so its pods cannot resolve names unless another policy allows it: add an egress rule to namespace kube-system pods k8s-app=kube-dns on UDP and TCP port 53\n" +
			"warn [netpol-open-cidr] networkpolicy web/p: spec.egress[0].to[0].ipBlock.cidr \"0.0.0.0/0\" matches every address: name the address ranges the pods need\n" +
			"warn [netpol-open-cidr] networkpolicy web/p: spec.egress[0].to[1].ipBlock.cidr \"::/0\" matches every address: name the address ranges the pods need\n"},
		{"egress with DNS allowed is not warned", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}], ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]
`, public, ""},
		{"ingress from all namespaces in pci", `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}]}]
`, pci, "deny [netpol-regulated-all-namespaces] networkpolicy shop/p: spec.ingress[0].from[0].namespaceSelector {} admits pods from every namespace, and namespace shop holds pci data: select the namespaces allowed in, e.g. by kubernetes.io/metadata.name\n"},
		{"ingress from all namespaces is fine in public", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}]}]
`, public, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := render(e.NetworkPolicy(policyFromYAML(t, tc.policy), tc.ns))
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}
