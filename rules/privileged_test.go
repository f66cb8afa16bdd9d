package rules

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestClassificationLowered(t *testing.T) {
	e := defaultEvaluator(t)
	class := func(v string) map[string]string { return map[string]string{"owner": "a", "data-classification": v} }
	const fix = " (public < internal < pci < hipaa): keep data-classification="
	const who = " (only members of system:masters may lower it)"
	for _, tc := range []struct {
		name     string
		old, new map[string]string
		want     string
	}{
		{"create", nil, class("public"), ""},
		{"raised", class("internal"), class("pci"), ""},
		{"unchanged", class("pci"), class("pci"), ""},
		{"pci to public", class("pci"), class("public"),
			`deny [namespace-classification-lowered] namespace shop: lowering label data-classification from "pci" to "public" lowers the namespace's data classification` + fix + "pci" + who + "\n"},
		{"hipaa to pci", class("hipaa"), class("pci"),
			`deny [namespace-classification-lowered] namespace shop: lowering label data-classification from "hipaa" to "pci" lowers the namespace's data classification` + fix + "hipaa" + who + "\n"},
		{"internal to public", class("internal"), class("public"),
			`deny [namespace-classification-lowered] namespace shop: lowering label data-classification from "internal" to "public" lowers the namespace's data classification` + fix + "internal" + who + "\n"},
		{"removed", class("pci"), map[string]string{"owner": "a"},
			`deny [namespace-classification-lowered] namespace shop: removing label data-classification="pci" lowers the namespace's data classification` + fix + "pci" + who + "\n"},
		{"to an unlisted value", class("pci"), class("secret"),
			`deny [namespace-classification-lowered] namespace shop: lowering label data-classification from "pci" to "secret" lowers the namespace's data classification` + fix + "pci" + who + "\n"},
		{"from the lowest value", class("public"), map[string]string{}, ""},
		{"from an unlisted value", class("secret"), class("public"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// An override naming the guard changes nothing.
			ns := namespace("shop", tc.new, map[string]string{AnnotationRuleActions: RuleClassificationLowered + "=warn,*=dryrun"})
			vs := e.ClassificationLowered("namespace shop", tc.old, tc.new, ns)
			checkShape(t, e, vs)
			if got := render(vs); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	// A standard whose classification label has no closed set has no order.
	if vs := evaluatorFor(t, podRulesStandard).ClassificationLowered("namespace n", map[string]string{"class": "b"}, map[string]string{"class": "a"}, nil); vs != nil {
		t.Errorf("no order: %v", vs)
	}
}

func TestSelectedByPolicies(t *testing.T) {
	e := defaultEvaluator(t)
	ingressFrom := func(ns, name string, sel *metav1.LabelSelector) networkingv1.NetworkPolicy {
		return networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}, {NamespaceSelector: sel}}}},
		}}
	}
	egressTo := func(ns, name string, sel *metav1.LabelSelector) networkingv1.NetworkPolicy {
		return networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: networkingv1.NetworkPolicySpec{
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel}}}},
		}}
	}
	partners := &metav1.LabelSelector{MatchLabels: map[string]string{"partner": "shop"}}
	byName := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "web"}}
	notDev := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"dev"}}}}
	policies := []networkingv1.NetworkPolicy{
		ingressFrom("shop", "allow-partners", partners),
		egressTo("db", "to-partners", partners),
		ingressFrom("web", "own-namespace", partners),
		ingressFrom("ops", "from-web", byName),
		ingressFrom("ops", "not-dev", notDev),
		ingressFrom("ops", "everyone", &metav1.LabelSelector{}),
		ingressFrom("ops", "invalid", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Bogus"}}}),
	}
	const fixTail = " (only members of system:masters may change them; the owners of namespace "
	for _, tc := range []struct {
		name     string
		old, new map[string]string
		want     string
	}{
		{"unrelated label", map[string]string{"env": "prod"}, map[string]string{"env": "prod", "team": "x"}, ""},
		{"relabelled into a selector", map[string]string{"env": "prod"}, map[string]string{"env": "prod", "partner": "shop"}, "" +
			"deny [namespace-selected-by-policy] namespace web: the label change makes it match spec.egress[0].to[0].namespaceSelector of networkpolicy db/to-partners, which decides access by namespace labels: keep the labels that policy selects on" + fixTail + "db decide whom their policy admits)\n" +
			"deny [namespace-selected-by-policy] namespace web: the label change makes it match spec.ingress[0].from[1].namespaceSelector of networkpolicy shop/allow-partners, which decides access by namespace labels: keep the labels that policy selects on" + fixTail + "shop decide whom their policy admits)\n"},
		{"relabelled out of a selector", map[string]string{"env": "prod"}, map[string]string{"env": "dev"},
			"deny [namespace-selected-by-policy] namespace web: the label change makes it stop matching spec.ingress[0].from[1].namespaceSelector of networkpolicy ops/not-dev, which decides access by namespace labels: keep the labels that policy selects on" + fixTail + "ops decide whom their policy admits)\n"},
		{"created with another policy's labels", nil, map[string]string{"partner": "shop", "env": "dev"}, "" +
			"deny [namespace-selected-by-policy] namespace web: the label change makes it match spec.egress[0].to[0].namespaceSelector of networkpolicy db/to-partners, which decides access by namespace labels: keep the labels that policy selects on" + fixTail + "db decide whom their policy admits)\n" +
			"deny [namespace-selected-by-policy] namespace web: the label change makes it match spec.ingress[0].from[1].namespaceSelector of networkpolicy ops/from-web, which decides access by namespace labels: keep the labels that policy selects on" + fixTail + "ops decide whom their policy admits)\n" +
			"deny [namespace-selected-by-policy] namespace web: the label change makes it match spec.ingress[0].from[1].namespaceSelector of networkpolicy shop/allow-partners, which decides access by namespace labels: keep the labels that policy selects on" + fixTail + "shop decide whom their policy admits)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := e.SelectedByPolicies("namespace web", "web", tc.old, tc.new, policies, nil)
			checkShape(t, e, vs)
			if got := render(vs); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	// A create compared with an unlabelled namespace: a selector matching
	// every namespace without env does not count.
	if vs := e.SelectedByPolicies("namespace x", "x", nil, map[string]string{"env": "prod"}, policies, nil); len(vs) != 0 {
		t.Errorf("create of an unselected namespace: %s", render(vs))
	}
	if vs := e.SelectedByPolicies("namespace web", "web", map[string]string{"a": "b"}, map[string]string{"partner": "shop"}, nil, nil); len(vs) != 0 {
		t.Errorf("no policies: %v", vs)
	}
}
