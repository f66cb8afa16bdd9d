package rules

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestNetworkPolicyChecks(t *testing.T) {
	e := defaultEvaluator(t)
	pci := namespace("shop", prodPCI, nil)
	hipaa := namespace("clinic", map[string]string{"owner": "a", "env": "prod", "data-classification": "hipaa"}, nil)
	public := namespace("web", map[string]string{"owner": "a", "env": "dev", "data-classification": "public"}, nil)
	internal := namespace("web", map[string]string{"owner": "a", "env": "dev", "data-classification": "internal"}, nil)
	relaxed := namespace("shop", prodPCI, map[string]string{AnnotationRuleActions: "netpol-regulated-all-namespaces=warn,*=dryrun"})
	const (
		podFix  = ", which is not an identity label, so it cannot select by identity: select pods by app, tier or env\n"
		nsFix   = ", which is not part of a namespace's identity, so it cannot select by identity: select namespaces by kubernetes.io/metadata.name, owner, env or data-classification\n"
		openFix = " matches every address: name the address ranges the pods need\n"
		allNS   = " {} admits pods from every namespace, and namespace shop holds pci data: select the namespaces allowed in, e.g. by kubernetes.io/metadata.name\n"
	)
	noDNS := func(ns string) string {
		return "isolates egress and allows no DNS (UDP/TCP port 53), nor does any other policy in namespace " + ns + " selecting the same pods, so they cannot resolve names: add an egress rule to namespace kube-system pods k8s-app=kube-dns on UDP and TCP port 53\n"
	}
	for _, tc := range []struct {
		name, policy string
		ns           *corev1.Namespace
		want         string
	}{
		// netpol-non-identity-selector
		{"identity selectors only", `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {matchLabels: {tier: frontend, env: prod}}, namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: web, owner: a, env: dev, data-classification: public}}}]}]
`, pci, ""},
		{"empty selectors", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}, namespaceSelector: {}}]}]
`, public, ""},
		{"non-identity pod and namespace keys, sorted by key", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {matchExpressions: [{key: version, operator: In, values: [v1]}]}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: x}}}]}]
`, public, "" +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.ingress[0].from[0].namespaceSelector selects on namespace label team" + nsFix +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.podSelector selects on pod label version" + podFix},
		{"one finding per key and kind, pod before namespace", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {matchLabels: {team: x, b: "1", a: "1"}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: x}}, podSelector: {matchLabels: {team: y}}}]}]
  egress: [{to: [{podSelector: {matchLabels: {k8s-app: kube-dns}}, namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}}]}]
`, public, "" +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.podSelector selects on pod label a" + podFix +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.podSelector selects on pod label b" + podFix +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.egress[0].to[0].podSelector selects on pod label k8s-app" + podFix +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.podSelector selects on pod label team" + podFix +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.ingress[0].from[0].namespaceSelector selects on namespace label team" + nsFix},
		{"namespace keys are not pod identity", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {matchLabels: {owner: a, kubernetes.io/metadata.name: web}}
`, public, "" +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.podSelector selects on pod label kubernetes.io/metadata.name" + podFix +
			"warn [netpol-non-identity-selector] networkpolicy web/p: spec.podSelector selects on pod label owner" + podFix},
		{"hostile key stays on one line", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {matchExpressions: [{key: "a\nb", operator: Exists}]}
`, public, `warn [netpol-non-identity-selector] networkpolicy web/p: spec.podSelector selects on pod label "a\nb"` + podFix},

		// netpol-egress-without-dns
		{"egress isolation without rules", `
metadata: {name: p, namespace: web}
spec: {podSelector: {}, policyTypes: [Egress]}
`, public, "warn [netpol-egress-without-dns] networkpolicy web/p: " + noDNS("web")},
		{"egress rules imply Egress when policyTypes is unset", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  egress: [{ports: [{port: 443}]}]
`, public, "warn [netpol-egress-without-dns] networkpolicy web/p: " + noDNS("web")},
		{"ingress-only policy", `
metadata: {name: p, namespace: web}
spec: {podSelector: {}, ingress: [{}]}
`, public, ""},
		{"egress rules ignored by an Ingress-only policy", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  egress: [{ports: [{port: 443}]}]
`, public, ""},
		{"egress to everything", `
metadata: {name: p, namespace: web}
spec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}
`, public, ""},
		{"DNS to kube-system", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - ports: [{port: 443}]
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
`, public, ""},
		{"DNS port but only own-namespace peers", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: dns}}}], ports: [{port: 53, protocol: UDP}]}]
`, public, "warn [netpol-egress-without-dns] networkpolicy web/p: " + noDNS("web")},
		{"own-namespace peers in kube-system", `
metadata: {name: p, namespace: kube-system}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: dns}}}], ports: [{port: 53, protocol: UDP}]}]
`, nil, ""},
		{"DNS by port range", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.96.0.0/12}}], ports: [{port: 50, endPort: 60, protocol: UDP}]}]
`, public, ""},
		{"port range without 53", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.96.0.0/12}}], ports: [{port: 54, endPort: 60, protocol: UDP}]}]
`, public, "warn [netpol-egress-without-dns] networkpolicy web/p: " + noDNS("web")},
		{"DNS by port name", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {}}], ports: [{port: dns-tcp}]}]
`, public, ""},
		{"other port name", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {}}], ports: [{port: domain}]}]
`, public, "warn [netpol-egress-without-dns] networkpolicy web/p: " + noDNS("web")},
		{"protocol without port", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {}}], ports: [{protocol: UDP}]}]
`, public, ""},
		{"SCTP port 53 is not DNS", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {}}], ports: [{port: 53, protocol: SCTP}]}]
`, public, "warn [netpol-egress-without-dns] networkpolicy web/p: " + noDNS("web")},

		// netpol-open-cidr
		{"open CIDRs, IPv4 and IPv6, ingress and egress", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}, {ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]}]
  egress: [{to: [{ipBlock: {cidr: "::/0"}}, {ipBlock: {cidr: " 0.0.0.0/0 "}}, {ipBlock: {cidr: 0.0.0.0/1}}, {ipBlock: {cidr: nonsense}}]}]
`, public, "" +
			`warn [netpol-open-cidr] networkpolicy web/p: spec.ingress[0].from[1].ipBlock.cidr "0.0.0.0/0"` + openFix +
			`warn [netpol-open-cidr] networkpolicy web/p: spec.egress[0].to[0].ipBlock.cidr "::/0"` + openFix +
			`warn [netpol-open-cidr] networkpolicy web/p: spec.egress[0].to[1].ipBlock.cidr " 0.0.0.0/0 "` + openFix},
		{"a /0 of another address is every address too", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 192.168.0.0/0}}]}]
`, public, `warn [netpol-open-cidr] networkpolicy web/p: spec.ingress[0].from[0].ipBlock.cidr "192.168.0.0/0"` + openFix},

		// netpol-regulated-all-namespaces
		{"ingress from all namespaces in pci", `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}, {namespaceSelector: {}, podSelector: {matchLabels: {app: a}}}, {namespaceSelector: {matchLabels: {env: prod}}}]}]
`, pci, "" +
			"deny [netpol-regulated-all-namespaces] networkpolicy shop/p: spec.ingress[0].from[0].namespaceSelector" + allNS +
			"deny [netpol-regulated-all-namespaces] networkpolicy shop/p: spec.ingress[0].from[1].namespaceSelector" + allNS},
		{"ingress from all namespaces in hipaa", `
metadata: {name: p, namespace: clinic}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}]}]
`, hipaa, "deny [netpol-regulated-all-namespaces] networkpolicy clinic/p: spec.ingress[0].from[0].namespaceSelector {} admits pods from every namespace, and namespace clinic holds hipaa data: select the namespaces allowed in, e.g. by kubernetes.io/metadata.name\n"},
		{"ingress rule without from in pci", `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}]}, {ports: [{port: 80}]}]
`, pci, "deny [netpol-regulated-all-namespaces] networkpolicy shop/p: spec.ingress[1] has no from, so it admits every source, and namespace shop holds pci data: list the allowed sources in from\n"},
		{"deny-all ingress in pci", `
metadata: {name: p, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
`, pci, ""},
		{"egress-only policy in pci", `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  ingress: [{from: [{namespaceSelector: {}}]}]
  egress: [{}]
`, pci, ""},
		{"ingress from all namespaces in public", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}]}, {}]
`, public, ""},
		{"ingress from all namespaces in internal", `
metadata: {name: p, namespace: web}
spec:
  podSelector: {}
  ingress: [{}]
`, internal, ""},
		{"classification unknown without the namespace", `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}]}]
`, nil, ""},
		{"per-namespace overrides", `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {version: v1}}
  ingress: [{from: [{namespaceSelector: {}}]}]
`, relaxed, "" +
			"dryrun [netpol-non-identity-selector] networkpolicy shop/p: spec.podSelector selects on pod label version" + podFix +
			"warn [netpol-regulated-all-namespaces] networkpolicy shop/p: spec.ingress[0].from[0].namespaceSelector" + allNS},

		// All checks, in the standard's order; the namespace name from ns
		// when the policy has none.
		{"every check", `
metadata: {name: p}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}, {}]
  egress: [{to: [{ipBlock: {cidr: "::/0"}}], ports: [{port: 443}]}]
`, pci, "" +
			"warn [netpol-non-identity-selector] networkpolicy shop/p: spec.podSelector selects on pod label role" + podFix +
			"warn [netpol-egress-without-dns] networkpolicy shop/p: " + noDNS("shop") +
			`warn [netpol-open-cidr] networkpolicy shop/p: spec.ingress[0].from[0].ipBlock.cidr "0.0.0.0/0"` + openFix +
			`warn [netpol-open-cidr] networkpolicy shop/p: spec.egress[0].to[0].ipBlock.cidr "::/0"` + openFix +
			"deny [netpol-regulated-all-namespaces] networkpolicy shop/p: spec.ingress[1] has no from, so it admits every source, and namespace shop holds pci data: list the allowed sources in from\n"},
		{"hostile name stays on one line", `
metadata: {name: "p\nq", namespace: web}
spec: {podSelector: {}, policyTypes: [Egress]}
`, public, `warn [netpol-egress-without-dns] networkpolicy web/"p\nq": ` + noDNS("web")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := e.NetworkPolicy(policyFromYAML(t, tc.policy), tc.ns)
			checkShape(t, e, vs)
			if got := render(vs); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	if vs := e.NetworkPolicy(nil, pci); vs != nil {
		t.Errorf("NetworkPolicy(nil) = %v", vs)
	}
}

func TestNetworkPolicyViolationKeys(t *testing.T) {
	e := defaultEvaluator(t)
	np := policyFromYAML(t, `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}, {namespaceSelector: {}}]}]
`)
	var keys []string
	for _, v := range e.NetworkPolicy(np, namespace("shop", prodPCI, nil)) {
		keys = append(keys, v.RuleID+" "+v.Key)
	}
	want := "netpol-non-identity-selector role|netpol-egress-without-dns spec.egress|netpol-open-cidr spec.ingress[0].from[0].ipBlock.cidr|netpol-regulated-all-namespaces spec.ingress[0].from[1].namespaceSelector"
	if got := strings.Join(keys, "|"); got != want {
		t.Errorf("keys %s\nwant %s", got, want)
	}
}

// A standard's own list orders the checks, sets their actions and limits
// them to classifications; unlisted checks run last and deny.
func TestNetworkPolicyCheckOrder(t *testing.T) {
	e := evaluatorFor(t, strings.Replace(podRulesStandard, "  profiles:", `  networkPolicies:
  - {id: netpol-regulated-all-namespaces, action: warn}
  - {id: netpol-open-cidr, action: dryrun, classifications: [secret]}
  profiles:`, 1))
	np := policyFromYAML(t, `
metadata: {name: p, namespace: ns1}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}, {namespaceSelector: {}}]}]
`)
	want := "" +
		"warn [netpol-regulated-all-namespaces] networkpolicy ns1/p: spec.ingress[0].from[1].namespaceSelector {} admits pods from every namespace, and namespace ns1 holds secret data: select the namespaces allowed in, e.g. by kubernetes.io/metadata.name\n" +
		`dryrun [netpol-open-cidr] networkpolicy ns1/p: spec.ingress[0].from[0].ipBlock.cidr "0.0.0.0/0" matches every address: name the address ranges the pods need` + "\n" +
		"deny [netpol-non-identity-selector] networkpolicy ns1/p: spec.podSelector selects on pod label role, which is not an identity label, so it cannot select by identity: select pods by app, team or zone\n"
	if got := render(e.NetworkPolicy(np, namespace("ns1", map[string]string{"class": "secret"}, nil))); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// Without the namespace, the classification-limited check is skipped;
	// the unlimited one still runs.
	want = "" +
		"warn [netpol-regulated-all-namespaces] networkpolicy ns1/p: spec.ingress[0].from[1].namespaceSelector {} admits pods from every namespace, and namespace ns1 is regulated: select the namespaces allowed in, e.g. by kubernetes.io/metadata.name\n" +
		"deny [netpol-non-identity-selector] networkpolicy ns1/p: spec.podSelector selects on pod label role, which is not an identity label, so it cannot select by identity: select pods by app, team or zone\n"
	if got := render(e.NetworkPolicy(np, nil)); got != want {
		t.Errorf("without namespace got:\n%s\nwant:\n%s", got, want)
	}
}
