package e2e

import (
	"testing"
	"time"
)

// netpolCase is one NetworkPolicy scenario in the style of the
// network-policy-api conformance suite: manifests applied to the standard
// world (namespaces x, y, z labelled ns=<name>; pods a, b on node1 and c
// on node2, labelled app=<pod>), and probes whose outcome real packets
// must show. Probes read "FROM -> TO PORT/PROTO pass|drop"; PROTO is tcp,
// udp, tcp6 or udp6; FROM and TO are pods ("x/a"), the external host
// ("ext" at 172.30.0.2, "ext-hi" at 172.30.0.200) or a node ("node1").
type netpolCase struct {
	name      string
	manifests string
	probes    []string
}

// Namespace names are quoted: YAML 1.1 reads a bare y as true.
const denyIngressX = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: deny-ingress}
spec: {podSelector: {}, policyTypes: [Ingress]}
`

const denyEgressX = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: deny-egress}
spec: {podSelector: {}, policyTypes: [Egress]}
`

var netpolCases = []netpolCase{
	{
		name:      "default deny ingress",
		manifests: denyIngressX,
		probes: []string{
			"y/a -> x/a 80/tcp drop",
			"x/b -> x/a 80/tcp drop",
			"y/c -> x/b 80/udp drop",   // from node2
			"x/a -> y/a 80/tcp pass",   // egress is not isolated
			"x/a -> y/c 80/udp pass",   // nor across nodes
			"y/a -> z/a 80/tcp pass",   // other namespaces are untouched
			"node1 -> x/a 80/tcp pass", // the pod's own node (kubelet probes)
			"y/a -> x/a 80/tcp6 drop",
		},
	},
	{
		name: "allow-list across namespaces",
		manifests: denyIngressX + `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-from-y-b}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: "y"}}
      podSelector: {matchLabels: {app: b}}
    - namespaceSelector: {matchLabels: {ns: "z"}}
    ports: [{protocol: TCP, port: 80}]
`,
		probes: []string{
			"y/b -> x/a 80/tcp pass",
			"z/a -> x/a 80/tcp pass",
			"z/c -> x/a 80/tcp pass", // from node2
			"y/b -> x/a 81/tcp drop",
			"y/b -> x/a 80/udp drop",
			"y/a -> x/a 80/tcp drop",
			"y/c -> x/a 80/tcp drop",
			"x/b -> x/a 80/tcp drop",
			"y/b -> x/b 80/tcp drop",
		},
	},
	{
		name: "named ports resolve per destination pod",
		manifests: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: http-only}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: http}]
`,
		probes: []string{
			"y/a -> x/a 80/tcp pass", // a names 80 "http"
			"y/a -> x/a 8080/tcp drop",
			"y/a -> x/c 8080/tcp pass", // c names 8080 "http"
			"y/a -> x/c 80/tcp drop",
			"y/a -> x/c 8080/udp drop", // the named port is TCP
		},
	},
	{
		name: "endPort range",
		manifests: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: range}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - ports: [{protocol: TCP, port: 9000, endPort: 9010}, {protocol: UDP, port: 81}]
`,
		probes: []string{
			"y/a -> x/a 9000/tcp pass",
			"y/a -> x/a 9005/tcp pass",
			"y/c -> x/a 9005/tcp pass",
			"y/a -> x/a 9011/tcp drop",
			"y/a -> x/a 8080/tcp drop",
			"y/a -> x/a 9005/udp drop",
			"y/a -> x/a 81/udp pass",
			"y/a -> x/a 81/tcp drop",
		},
	},
	{
		name: "ipBlock to and from an external host",
		manifests: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-to-ext}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 172.30.0.0/24, except: [172.30.0.128/25]}}]
    ports: [{protocol: TCP, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: b-from-ext}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{ipBlock: {cidr: 172.30.0.0/25}}]
`,
		probes: []string{
			"x/a -> ext 80/tcp pass",
			"x/a -> ext 81/tcp drop",
			"x/a -> ext-hi 80/tcp drop", // in the except range
			"x/a -> y/a 80/tcp drop",
			"ext -> x/b 80/tcp pass",
			"ext -> x/b 81/udp pass",
			"ext-hi -> x/b 80/tcp drop",
			"y/a -> x/b 80/tcp drop",
			"z/c -> ext 80/tcp pass", // other pods' egress is open, across nodes too
			"ext -> x/a 80/tcp pass", // a's ingress is not isolated
		},
	},
	{
		name: "IPv6",
		manifests: denyIngressX + `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-v6}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: b}}, namespaceSelector: {matchLabels: {ns: "y"}}}]
    ports: [{protocol: TCP, port: 80}]
  - from: [{ipBlock: {cidr: "fd00:2::/64"}}]
    ports: [{protocol: UDP, port: 81}]
`,
		probes: []string{
			"y/b -> x/a 80/tcp6 pass",
			"y/a -> x/a 80/tcp6 drop",
			"z/c -> x/a 81/udp6 pass", // node2's pods' IPv6 range
			"y/b -> x/a 81/udp6 drop", // node1's range is not in the block
			"z/c -> x/a 81/udp drop",  // nor is any IPv4 address
			"x/a -> y/b 80/tcp6 pass",
		},
	},
	{
		name: "default deny egress with an allow across nodes",
		manifests: denyEgressX + `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-to-z-c}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: "z"}}, podSelector: {matchLabels: {app: c}}}]
    ports: [{protocol: TCP, port: 8080}, {protocol: UDP, port: 8080}]
`,
		probes: []string{
			"x/a -> z/c 8080/tcp pass",
			"x/a -> z/c 8080/udp pass",
			"x/a -> z/c 8080/tcp6 pass",
			"x/a -> z/c 80/tcp drop",
			"x/a -> z/a 8080/tcp drop",
			"x/b -> z/c 8080/tcp drop",
			"x/c -> y/c 80/tcp drop", // node2's x pod is isolated too
			"y/a -> x/a 80/tcp pass", // replies leave though egress is isolated
		},
	},
	{
		name: "policies combine as a union",
		manifests: denyIngressX + `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: from-y}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: "y"}}}], ports: [{port: 80}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: from-z-8080}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [b, c]}]}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: "z"}}}], ports: [{port: 8080}]}]
`,
		probes: []string{
			"y/a -> x/b 80/tcp pass",
			"y/a -> x/b 8080/tcp drop",
			"z/a -> x/b 8080/tcp pass",
			"z/a -> x/b 80/tcp drop",
			"z/a -> x/c 8080/tcp pass",
			"y/a -> x/c 80/tcp drop",
			"y/a -> x/a 80/tcp drop",
		},
	},
}

// The world without policies: everything reaches everything.
func TestNoPolicyAllowsAll(t *testing.T) {
	w := needWorld(t)
	w.expect(t, 5*time.Second, mustProbes(t,
		"x/a -> x/b 80/tcp pass",
		"x/a -> x/c 8080/udp pass",
		"y/c -> z/a 9011/tcp pass",
		"z/b -> y/c 80/tcp6 pass",
		"ext -> x/c 80/tcp pass",
		"x/a -> ext 81/udp pass",
	))
}

func TestNetworkPolicyCases(t *testing.T) {
	w := needWorld(t)
	for _, tc := range netpolCases {
		t.Run(tc.name, func(t *testing.T) {
			probes := mustProbes(t, tc.probes...)
			withPolicies(t, w, tc.manifests)
			w.expect(t, 10*time.Second, probes)
		})
	}
}
