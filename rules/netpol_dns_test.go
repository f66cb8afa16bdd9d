package rules

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// Policies add up: egress isolation without DNS is a warning only when no
// policy selecting the same pods allows DNS.
func TestEgressWithoutDNSWeighsOtherPolicies(t *testing.T) {
	e := defaultEvaluator(t)
	web := namespace("web", map[string]string{"owner": "a", "env": "dev", "data-classification": "public"}, nil)
	np := policyFromYAML(t, `
metadata: {name: egress-443, namespace: web}
spec:
  podSelector: {matchLabels: {app: web, tier: frontend}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 443}]}]
`)
	dnsFor := func(name, selector string) networkingv1.NetworkPolicy {
		return *policyFromYAML(t, `
metadata: {name: `+name+`, namespace: web}
spec:
  podSelector: `+selector+`
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {}}], ports: [{port: 53, protocol: UDP}]}]
`)
	}
	baseline := BaselinePolicies("web", Default().ProfileFor(web.Labels))
	const warning = "warn [netpol-egress-without-dns] networkpolicy web/egress-443: isolates egress and allows no DNS (UDP/TCP port 53), nor does any other policy in namespace web selecting the same pods, so they cannot resolve names: add an egress rule to namespace kube-system pods k8s-app=kube-dns on UDP and TCP port 53\n"
	for _, tc := range []struct {
		name   string
		others []networkingv1.NetworkPolicy
		want   string
	}{
		{"alone", nil, warning},
		{"the baseline allows DNS to every pod", baseline, ""},
		{"same selector", []networkingv1.NetworkPolicy{dnsFor("dns", "{matchLabels: {app: web, tier: frontend}}")}, ""},
		{"wider selector", []networkingv1.NetworkPolicy{dnsFor("dns", "{matchLabels: {app: web}}")}, ""},
		{"In covering the value", []networkingv1.NetworkPolicy{dnsFor("dns", "{matchExpressions: [{key: tier, operator: In, values: [frontend, backend]}]}")}, ""},
		{"NotIn excluding other values", []networkingv1.NetworkPolicy{dnsFor("dns", "{matchExpressions: [{key: tier, operator: NotIn, values: [data]}]}")}, ""},
		{"Exists", []networkingv1.NetworkPolicy{dnsFor("dns", "{matchExpressions: [{key: app, operator: Exists}]}")}, ""},
		{"narrower selector", []networkingv1.NetworkPolicy{dnsFor("dns", "{matchLabels: {app: web, tier: frontend, env: prod}}")}, warning},
		{"other pods", []networkingv1.NetworkPolicy{dnsFor("dns", "{matchLabels: {app: db}}")}, warning},
		{"NotIn the pods' value", []networkingv1.NetworkPolicy{dnsFor("dns", "{matchExpressions: [{key: tier, operator: NotIn, values: [frontend]}]}")}, warning},
		{"its own earlier version", []networkingv1.NetworkPolicy{dnsFor("egress-443", "{}")}, warning},
		{"a policy allowing other ports", []networkingv1.NetworkPolicy{*policyFromYAML(t, `
metadata: {name: https, namespace: web}
spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 8443}]}]}
`)}, warning},
		{"an ingress-only policy", []networkingv1.NetworkPolicy{*policyFromYAML(t, `
metadata: {name: in, namespace: web}
spec: {podSelector: {}, policyTypes: [Ingress], egress: [{}]}
`)}, warning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := e.NetworkPolicyAmong(np, web, tc.others)
			checkShape(t, e, vs)
			if got := render(vs); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}
