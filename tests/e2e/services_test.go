package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// withServices runs the real kube-proxy on both nodes and creates the
// suite's Services, all undone when t ends:
//
//	y/svc-b → y/b (node1)   y/svc-c → y/c (node2)   z/svc-a → z/a (node1)
//
// each with ports 80/TCP, 80/UDP and 7000/TCP → 9000, IPv4 and IPv6.
func withServices(t *testing.T, w *world) {
	t.Helper()
	bin, reason := kubeProxyBinary()
	if reason != "" {
		testenv.SkipOrFail(t, "%s", reason)
	}
	ctx := context.Background()
	started := time.Now()
	stop, err := w.startKubeProxies(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"node1", "node2"} {
				kp := w.nodes[name].kubeProxy
				if kp == nil {
					continue
				}
				table, err := kp.table("ip")
				if err != nil {
					table = err.Error()
				}
				t.Logf("kube-proxy of %s, last log lines:\n%s\nits IPv4 table:\n%s", name, kp.logTail(20), table)
			}
		}
		stop()
		for _, n := range w.nodes {
			n.kubeProxy = nil
		}
	})
	// The first sync creates the tables (the API server's own
	// "kubernetes" Service is the only one yet).
	for _, name := range []string{"node1", "node2"} {
		if err := w.nodes[name].kubeProxy.waitRules(30*time.Second, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("kube-proxy started → first rules programmed on both nodes: %v", time.Since(started).Round(time.Millisecond))

	created := time.Now()
	var want4, want6 []string
	for _, def := range []struct{ ns, name, app, backend string }{
		{"y", "svc-b", "b", "y/b"},
		{"y", "svc-c", "c", "y/c"},
		{"z", "svc-a", "a", "z/a"},
	} {
		s, err := w.createService(ctx, def.ns, def.name, def.app, w.pods[def.backend])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := w.deleteService(context.Background(), s); err != nil {
				t.Errorf("delete service %s: %v", s.ref(), err)
			}
		})
		// The service-ips map reads "<ClusterIP> . tcp . 80 : goto
		// service-…", a service chain's DNAT map "0 : <backend> . 80".
		want4 = append(want4, s.v4.String()+" . tcp . 80 ", fmt.Sprintf(": %s . 80 ", s.backends[0].v4))
		want6 = append(want6, s.v6.String()+" . tcp . 80 ", fmt.Sprintf(": %s . 80 ", s.backends[0].v6))
	}
	for _, name := range []string{"node1", "node2"} {
		if err := w.nodes[name].kubeProxy.waitRules(10*time.Second, want4, want6); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("3 Services created → their rules programmed on both nodes: %v", time.Since(created).Round(time.Millisecond))
}

// TestServices proves Services the way a cluster runs them: the real
// kube-proxy rewrites pod → ClusterIP traffic in each node's namespace,
// and the enforcers judge it against the backend pod it reaches.
func TestServices(t *testing.T) {
	w := needWorld(t)
	withServices(t, w)

	// The harness itself: with no policy, a ClusterIP reaches its
	// backend on the same node and on the other, both families, and the
	// Service port 7000 reaches the backend's 9000.
	t.Run("reach backends without policies", func(t *testing.T) {
		w.expect(t, 10*time.Second, mustProbes(t,
			"x/a -> svc/y/svc-b 80/tcp pass",
			"x/a -> svc/y/svc-b 80/udp pass",
			"x/a -> svc/y/svc-c 80/tcp pass",
			"x/a -> svc/y/svc-c 80/udp pass",
			"x/c -> svc/y/svc-c 80/tcp pass",
			"x/c -> svc/y/svc-b 80/udp pass",
			"x/a -> svc/y/svc-b 80/tcp6 pass",
			"x/a -> svc/y/svc-c 80/udp6 pass",
			"x/c -> svc/z/svc-a 80/tcp6 pass",
			"x/a -> svc/y/svc-b 7000/tcp pass",
			"x/c -> svc/y/svc-b 7000/tcp pass",
		))
	})
	// A pod reaching itself through its own Service: kube-proxy
	// masquerades this hairpin, so it arrives from the node's address.
	t.Run("hairpin without policies", func(t *testing.T) {
		w.expect(t, 10*time.Second, mustProbes(t,
			"z/a -> svc/z/svc-a 80/tcp pass",
			"z/a -> svc/z/svc-a 80/udp pass",
			"y/c -> svc/y/svc-c 80/tcp6 pass",
		))
	})

	for _, tc := range serviceCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.egressByBackend {
				needServiceCIDR(t, w)
			}
			probes := mustProbes(t, tc.probes...)
			withPolicies(t, w, tc.manifests)
			w.expect(t, 10*time.Second, probes)
		})
	}
	t.Run("a withdrawn egress allow stops Service flows", func(t *testing.T) {
		needServiceCIDR(t, w)
		testServiceRevocation(t, w, denyEgressX, xaEgressToYB)
	})
	t.Run("a withdrawn backend ingress allow stops Service flows", func(t *testing.T) {
		testServiceRevocation(t, w, denyIngressY, ybIngressFromXA)
	})
	t.Run("flow records name the backend", func(t *testing.T) { testServiceFlowRecords(t, w) })
}

// needServiceCIDR fails a test whose verdicts need the enforcer to judge
// traffic to a ClusterIP against its backend.
func needServiceCIDR(t *testing.T, w *world) {
	t.Helper()
	if !w.enforcerServiceCIDR {
		t.Fatal("the enforcer binary lacks --service-cidr: Services cannot be judged after DNAT")
	}
}

// serviceCase is a NetworkPolicy scenario whose probes reach pods through
// the Services of withServices ("svc/y/svc-b"); the probe's port is the
// Service's, the policy's ports are the backend's.
type serviceCase struct {
	name string
	// egressByBackend: the client's egress is judged after kube-proxy's
	// rewrite, against the backend; the enforcer needs --service-cidr.
	// Without it only the backend's own ingress is judged right.
	egressByBackend bool
	manifests       string
	probes          []string
}

const xaEgressToYB = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-to-y-b}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: "y"}}, podSelector: {matchLabels: {app: b}}}]
    ports: [{protocol: TCP, port: 80}, {protocol: UDP, port: 80}, {protocol: TCP, port: 9000}]
`

var serviceCases = []serviceCase{
	{
		name:            "egress allowing the backend's identity reaches it through the ClusterIP",
		egressByBackend: true,
		manifests:       denyEgressX + "---\n" + xaEgressToYB,
		probes: []string{
			"x/a -> svc/y/svc-b 80/tcp pass",
			"x/a -> svc/y/svc-b 80/udp pass",
			"x/a -> svc/y/svc-b 80/tcp6 pass",
			"x/a -> svc/y/svc-b 7000/tcp pass", // the backend's port 9000 is allowed
			"x/a -> y/b 80/tcp pass",
			"x/a -> svc/y/svc-c 80/tcp drop", // backend app=c
			"x/a -> svc/y/svc-c 80/udp6 drop",
			"x/a -> svc/z/svc-a 80/tcp drop", // backend in another namespace
			"x/b -> svc/y/svc-b 80/tcp drop", // x/b has no allow
		},
	},
	{
		name:            "an ipBlock covering the ClusterIP range allows no backend",
		egressByBackend: true,
		manifests: denyEgressX + `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-to-cluster-ips}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.96.0.0/16}}, {ipBlock: {cidr: "fd00:96::/112"}}]
  - to: [{namespaceSelector: {matchLabels: {ns: "y"}}, podSelector: {matchLabels: {app: b}}}]
    ports: [{protocol: TCP, port: 80}, {protocol: TCP, port: 7000}]
`,
		probes: []string{
			"x/a -> svc/y/svc-c 80/tcp drop",
			"x/a -> svc/y/svc-c 80/udp drop",
			"x/a -> svc/y/svc-c 80/tcp6 drop",
			"x/a -> svc/z/svc-a 80/tcp drop",
			"x/a -> svc/y/svc-b 80/tcp pass",
			"x/a -> svc/y/svc-b 7000/tcp drop", // the Service's port 7000 is allowed, the backend's 9000 is not
		},
	},
	{
		name: "the backend's ingress judges the client behind the ClusterIP",
		manifests: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "y", name: from-x-a}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [b, c]}]}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: "x"}}, podSelector: {matchLabels: {app: a}}}]
    ports: [{protocol: TCP, port: 80}, {protocol: UDP, port: 80}]
`,
		probes: []string{
			"x/a -> svc/y/svc-b 80/tcp pass",
			"x/a -> svc/y/svc-b 80/udp pass",
			"x/a -> svc/y/svc-b 80/tcp6 pass",
			"x/a -> svc/y/svc-c 80/tcp pass", // remote backend
			"x/a -> svc/y/svc-b 7000/tcp drop",
			"x/b -> svc/y/svc-b 80/tcp drop",
			"x/b -> svc/y/svc-c 80/udp drop",
			"z/c -> svc/y/svc-b 80/tcp drop", // remote client
			"z/a -> svc/y/svc-b 80/tcp6 drop",
			"z/b -> svc/z/svc-a 80/tcp pass", // z/a is not isolated
		},
	},
	{
		name:            "local and remote backends",
		egressByBackend: true,
		manifests: denyEgressX + `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-c-to-y-c}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [a, c]}]}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: "y"}}, podSelector: {matchLabels: {app: c}}}]
    ports: [{protocol: TCP, port: 80}, {protocol: UDP, port: 80}]
`,
		probes: []string{
			"x/a -> svc/y/svc-c 80/tcp pass", // node1 → node2
			"x/a -> svc/y/svc-c 80/udp pass",
			"x/a -> svc/y/svc-c 80/tcp6 pass",
			"x/a -> svc/y/svc-b 80/tcp drop", // node1 → node1
			"x/c -> svc/y/svc-c 80/tcp pass", // node2 → node2
			"x/c -> svc/y/svc-c 80/udp6 pass",
			"x/c -> svc/y/svc-b 80/tcp drop", // node2 → node1
			"x/c -> svc/z/svc-a 80/udp drop",
		},
	},
}
