package policy

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestIdentitySplitsOnKeysPoliciesSelect(t *testing.T) {
	pods := []corev1.Pod{
		testPod("x", "canary", "10.0.0.1", "app=web", "track=canary", "pod-template-hash=1"),
		testPod("x", "stable", "10.0.0.2", "app=web", "track=stable", "pod-template-hash=2"),
	}
	c := testCluster(t, nil, pods, "")
	s := mustCompile(t, c, Options{})
	if a, b := s.Lookup(netip.MustParseAddr("10.0.0.1")), s.Lookup(netip.MustParseAddr("10.0.0.2")); a != b {
		t.Errorf("no policy reads track: want one identity, got %d and %d", a, b)
	}
	c = testCluster(t, nil, pods, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate-canary, namespace: x}
spec:
  podSelector: {matchLabels: {track: canary}}
  policyTypes: [Ingress]
`)
	s = mustCompile(t, c, Options{})
	a, b := s.Lookup(netip.MustParseAddr("10.0.0.1")), s.Lookup(netip.MustParseAddr("10.0.0.2"))
	if a == b {
		t.Fatalf("a policy selects on track: pods with different track share identity %d", a)
	}
	id, _ := s.Identity(a)
	if _, ok := id.Labels["pod-template-hash"]; ok {
		t.Errorf("identity %v carries a key no policy reads", id.Labels)
	}
	if v := Decide(s, ep("10.0.0.2"), ep("10.0.0.1"), ProtocolTCP, 80); v.Allowed {
		t.Errorf("stable -> canary: want denied, got %s", v.Reason())
	}
	if v := Decide(s, ep("10.0.0.1"), ep("10.0.0.2"), ProtocolTCP, 80); !v.Allowed {
		t.Errorf("canary -> stable: want allowed, got %s", v.Reason())
	}
}

func TestIdentityUsesConfiguredLabels(t *testing.T) {
	pods := []corev1.Pod{
		testPod("x", "a", "10.0.0.1", "app=web", "tier=frontend"),
		testPod("x", "b", "10.0.0.2", "app=web", "tier=backend"),
	}
	tests := []struct {
		name   string
		labels []string
		same   bool
	}{
		{"default set includes tier", nil, false},
		{"only app", []string{"app"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustCompile(t, testCluster(t, nil, pods, ""), Options{IdentityLabels: tt.labels})
			same := s.Lookup(netip.MustParseAddr("10.0.0.1")) == s.Lookup(netip.MustParseAddr("10.0.0.2"))
			if same != tt.same {
				t.Errorf("same identity = %v, want %v", same, tt.same)
			}
		})
	}
}

func TestIPBlockExceptIsLongestPrefix(t *testing.T) {
	c := testCluster(t, nil, []corev1.Pod{testPod("x", "a", "192.168.1.1", "app=a")}, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: out, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
`)
	s := mustCompile(t, c, Options{})
	inside, hole, outside := netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("11.0.0.1")
	if s.Lookup(inside) == s.Lookup(hole) {
		t.Errorf("10.1.0.0/16 resolves like 10.0.0.0/8 (%d)", s.Lookup(inside))
	}
	if id := s.Lookup(inside); id < FirstCIDRIdentity {
		t.Errorf("10.2.0.1: want a CIDR identity, got %d", id)
	}
	if id := s.Lookup(hole); id != IdentityWorld {
		t.Errorf("10.1.2.3: want world, got %d", id)
	}
	for addr, want := range map[netip.Addr]bool{inside: true, hole: false, outside: false} {
		if v := Decide(s, ep("192.168.1.1"), Endpoint{IP: addr}, ProtocolTCP, 443); v.Allowed != want {
			t.Errorf("to %s: allowed=%v, want %v (%s)", addr, v.Allowed, want, v.Reason())
		}
	}
}

func TestIPBlockMatchesPodAddresses(t *testing.T) {
	pods := []corev1.Pod{
		testPod("x", "client", "10.0.1.1", "app=client"),
		testPod("y", "in", "10.0.2.1", "app=server"),
		testPod("y", "out", "10.0.3.1", "app=server"),
	}
	c := testCluster(t, nil, pods, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-block, namespace: x}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.0.2.0/24}
`)
	s := mustCompile(t, c, Options{})
	if v := Decide(s, ep("10.0.1.1"), ep("10.0.2.1"), ProtocolTCP, 80); !v.Allowed {
		t.Errorf("to the pod inside the block: %s", v.Reason())
	}
	// Same labels, address outside the block: must not share the allow.
	if v := Decide(s, ep("10.0.1.1"), ep("10.0.3.1"), ProtocolTCP, 80); v.Allowed {
		t.Errorf("to the look-alike pod outside the block: %s", v.Reason())
	}
}

func TestNamedPortsResolvePerDestination(t *testing.T) {
	http80 := corev1.ContainerPort{Name: "http", ContainerPort: 80}
	http8080 := corev1.ContainerPort{Name: "http", ContainerPort: 8080}
	pods := []corev1.Pod{
		testPod("x", "client", "10.0.0.1", "app=client"),
		withPorts(testPod("x", "old", "10.0.0.2", "app=server"), http80),
		withPorts(testPod("x", "new", "10.0.0.3", "app=server"), http8080),
	}
	c := testCluster(t, nil, pods, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-http, namespace: x}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - ports: [{port: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ingress-http, namespace: x}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - ports: [{port: http}]
`)
	s := mustCompile(t, c, Options{})
	if s.Lookup(netip.MustParseAddr("10.0.0.2")) == s.Lookup(netip.MustParseAddr("10.0.0.3")) {
		t.Fatal("pods whose named port differs share an identity")
	}
	tests := []struct {
		dst  string
		port uint16
		want bool
	}{
		{"10.0.0.2", 80, true},
		{"10.0.0.2", 8080, false},
		{"10.0.0.3", 8080, true},
		{"10.0.0.3", 80, false},
	}
	for _, tt := range tests {
		if v := Decide(s, ep("10.0.0.1"), ep(tt.dst), ProtocolTCP, tt.port); v.Allowed != tt.want {
			t.Errorf("to %s:%d allowed=%v, want %v: %s", tt.dst, tt.port, v.Allowed, tt.want, v.Reason())
		}
	}
	if v := Decide(s, ep("10.0.0.1"), ep("10.0.0.2"), ProtocolUDP, 80); v.Allowed {
		t.Errorf("named TCP port allowed UDP: %s", v.Reason())
	}
}

func TestWildcardRulesStayWildcards(t *testing.T) {
	var pods []corev1.Pod
	for i := range 50 {
		pods = append(pods, testPod("x", "p"+string(rune('a'+i%26))+string(rune('a'+i/26)), netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}).String(), "app=a"+string(rune('a'+i%5))))
	}
	// "from" is not an egress field: strict loading must reject it.
	if _, err := ReadManifests("p", strings.NewReader("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  egress: [{from: []}]\n")); err == nil {
		t.Error("unknown field accepted")
	}
	c := testCluster(t, nil, pods, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: x}
spec:
  podSelector: {}
  ingress: [{}]
  egress: [{to: [], ports: []}]
`)
	s := mustCompile(t, c, Options{})
	// 5 identities x 2 directions, one any-peer any-port entry each.
	if len(s.Rules) != 10 {
		t.Fatalf("want 10 rules, got %d: %v", len(s.Rules), s.Rules)
	}
	for _, r := range s.Rules {
		if r.Peer != PeerAny || r.Protocol != ProtocolAny || r.Port != 0 {
			t.Errorf("not a wildcard: %v", r.RuleKey)
		}
	}
	if v := Decide(s, ep("8.8.8.8"), ep("10.0.0.1"), 1, 0); !v.Allowed {
		t.Errorf("ICMP from outside: %s", v.Reason())
	}
}

func TestPolicyTypesDefaulting(t *testing.T) {
	tests := []struct {
		name           string
		spec           string
		ingress, egres bool
	}{
		{"no types, no rules", "podSelector: {}", true, false},
		{"no types, ingress rules", "podSelector: {}\n  ingress: [{}]", true, false},
		{"no types, egress rules", "podSelector: {}\n  egress: [{}]", true, true},
		{"no types, empty egress list", "podSelector: {}\n  egress: []", true, false},
		{"egress only", "podSelector: {}\n  policyTypes: [Egress]\n  ingress: [{}]", false, true},
		{"both", "podSelector: {}\n  policyTypes: [Ingress, Egress]", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testCluster(t, nil, []corev1.Pod{testPod("x", "a", "10.0.0.1")},
				"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  "+tt.spec+"\n")
			s := mustCompile(t, c, Options{})
			e, _ := s.Endpoint(PodRef{"x", "a"})
			if e.IngressIsolated != tt.ingress || e.EgressIsolated != tt.egres {
				t.Errorf("isolated ingress=%v egress=%v, want %v %v", e.IngressIsolated, e.EgressIsolated, tt.ingress, tt.egres)
			}
		})
	}
}

func TestHostTraffic(t *testing.T) {
	host := netip.MustParseAddr("172.18.0.2")
	pods := []corev1.Pod{testPod("x", "a", "10.0.0.1")}
	deny := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"
	s := mustCompile(t, testCluster(t, nil, pods, deny), Options{HostIPs: []netip.Addr{host}})
	if v := Decide(s, Endpoint{IP: host}, ep("10.0.0.1"), ProtocolTCP, 8080); !v.Allowed || v.Ingress.Cause != CauseHost {
		t.Errorf("kubelet probe from the node: %s", v.Reason())
	}
	if v := Decide(s, Endpoint{Host: true}, ep("10.0.0.1"), ProtocolTCP, 8080); !v.Allowed {
		t.Errorf("host endpoint: %s", v.Reason())
	}
	if v := Decide(s, ep("10.0.0.1"), Endpoint{IP: host}, ProtocolTCP, 6443); v.Allowed {
		t.Errorf("egress to the node is judged like any peer: %s", v.Reason())
	}
	allow := deny + "  egress:\n  - to: [{ipBlock: {cidr: 172.18.0.0/16}}]\n"
	s = mustCompile(t, testCluster(t, nil, pods, allow), Options{HostIPs: []netip.Addr{host}})
	if v := Decide(s, ep("10.0.0.1"), Endpoint{IP: host}, ProtocolTCP, 6443); !v.Allowed {
		t.Errorf("egress to the node inside an allowed ipBlock: %s", v.Reason())
	}
	if v := Decide(s, ep("10.0.0.1"), ep("172.18.0.9"), ProtocolTCP, 6443); !v.Allowed {
		t.Errorf("egress inside the ipBlock: %s", v.Reason())
	}
	s = mustCompile(t, testCluster(t, nil, pods, allow), Options{HostIPs: []netip.Addr{host, netip.MustParseAddr("fd00::2")}})
	if v := Decide(s, ep("10.0.0.1"), Endpoint{IP: host}, ProtocolTCP, 6443); v.Allowed {
		t.Errorf("an IPv4 block allowed the whole dual-stack host: %s", v.Reason())
	}
}

func TestAuditModeAndReasons(t *testing.T) {
	nss := []corev1.Namespace{testNS("x"), testNS("y")}
	nss[1].Annotations = map[string]string{AnnotationEnforcement: "audit"}
	pods := []corev1.Pod{testPod("x", "a", "10.0.0.1", "app=a"), testPod("y", "b", "10.0.0.2", "app=b")}
	c := testCluster(t, nss, pods, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p1, namespace: "y"}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p2, namespace: "y"}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{podSelector: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-b, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {}
    ports: [{port: 80}]
`)
	s := mustCompile(t, c, Options{})
	v := Decide(s, ep("10.0.0.1"), ep("10.0.0.2"), ProtocolTCP, 80)
	if v.Allowed || !v.Passes {
		t.Errorf("audit namespace: allowed=%v passes=%v, want false true", v.Allowed, v.Passes)
	}
	if want := "ingress of y/b isolated by y/p1, y/p2; no rule allows"; !strings.Contains(v.Reason(), want) {
		t.Errorf("reason %q lacks %q", v.Reason(), want)
	}
	v = Decide(s, ep("10.0.0.2"), ep("10.0.0.1"), ProtocolTCP, 80)
	if !v.Allowed || v.Ingress.Source.Policy != (PolicyRef{"x", "allow-b"}) || v.Ingress.Source.Rule != 0 || v.Ingress.Source.Peer != 0 {
		t.Errorf("want allowed by x/allow-b rule 0 peer 0, got %+v: %s", v.Ingress.Source, v.Reason())
	}
	if !strings.Contains(v.Reason(), "x/allow-b ingress rule 0") {
		t.Errorf("reason %q does not name the rule", v.Reason())
	}
	v = Decide(s, ep("10.0.0.2"), ep("10.0.0.1"), ProtocolTCP, 81)
	if v.Allowed || v.Passes {
		t.Errorf("enforcing namespace: allowed=%v passes=%v", v.Allowed, v.Passes)
	}

	nss[1].Annotations[AnnotationEnforcement] = "sometimes"
	s, err := Compile(c, Options{})
	var oe *InvalidObjectError
	if !errors.As(err, &oe) || oe.Name != "y" || !strings.Contains(oe.Problem, AnnotationEnforcement) {
		t.Fatalf("bad mode: want an error naming namespace y and the annotation, got %v", err)
	}
	if e, _ := s.Endpoint(PodRef{"y", "b"}); e.Mode != ModeEnforce {
		t.Errorf("bad mode must enforce, got %s", e.Mode)
	}
}

func TestInvalidPoliciesFailClosed(t *testing.T) {
	tests := []struct {
		name  string
		spec  string
		field string
		// ingress and egress: the directions that must end up isolated.
		ingress, egress bool
	}{
		{"bad operator", "podSelector: {matchExpressions: [{key: app, operator: Like, values: [a]}]}\n  ingress: [{}]", "spec.podSelector.matchExpressions[0].operator", true, false},
		{"In without values", "podSelector: {}\n  ingress: [{from: [{podSelector: {matchExpressions: [{key: app, operator: In}]}}]}]", "spec.ingress[0].from[0].podSelector.matchExpressions[0].values", true, false},
		{"Exists with values", "podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: app, operator: Exists, values: [a]}]}}]}]", "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values", true, false},
		{"bad label value", "podSelector: {matchLabels: {app: \"a b\"}}", "spec.podSelector.matchLabels", true, false},
		{"bad cidr", "podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.300/8}}]}]", "spec.egress[0].to[0].ipBlock.cidr", true, true},
		{"host bits", "podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.1/8}}]}]", "spec.egress[0].to[0].ipBlock.cidr", true, true},
		{"leading zeros", "podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 010.0.0.0/8}}]}]", "spec.egress[0].to[0].ipBlock.cidr", true, true},
		{"except outside", "podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]", "spec.egress[0].to[0].ipBlock.except[0]", false, true},
		{"except equal", "podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]", "spec.egress[0].to[0].ipBlock.except[0]", false, true},
		{"ipBlock and selector", "podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]", "spec.ingress[0].from[0]", true, false},
		{"empty peer", "podSelector: {}\n  ingress: [{from: [{}]}]", "spec.ingress[0].from[0]", true, false},
		{"endPort without port", "podSelector: {}\n  ingress: [{ports: [{endPort: 90}]}]", "spec.ingress[0].ports[0].endPort", true, false},
		{"endPort with named port", "podSelector: {}\n  ingress: [{ports: [{port: http, endPort: 90}]}]", "spec.ingress[0].ports[0].endPort", true, false},
		{"endPort below port", "podSelector: {}\n  ingress: [{ports: [{port: 90, endPort: 80}]}]", "spec.ingress[0].ports[0].endPort", true, false},
		{"port zero", "podSelector: {}\n  ingress: [{ports: [{port: 0}]}]", "spec.ingress[0].ports[0].port", true, false},
		{"bad protocol", "podSelector: {}\n  ingress: [{ports: [{protocol: ICMP}]}]", "spec.ingress[0].ports[0].protocol", true, false},
		{"bad port name", "podSelector: {}\n  ingress: [{ports: [{port: Not_A_Name}]}]", "spec.ingress[0].ports[0].port", true, false},
		{"bad policy type", "podSelector: {}\n  policyTypes: [Sideways]\n  ingress: [{}]", "spec.policyTypes[0]", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods := []corev1.Pod{testPod("x", "a", "10.0.0.1", "app=a"), testPod("x", "b", "10.0.0.2", "app=b")}
			c := testCluster(t, nil, pods, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: x}\nspec:\n  "+tt.spec+"\n")
			s, err := Compile(c, Options{})
			var pe *InvalidPolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("want *InvalidPolicyError, got %v", err)
			}
			if pe.Policy != (PolicyRef{"x", "bad"}) || !strings.Contains(err.Error(), "x/bad") || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name x/bad and %s", err, tt.field)
			}
			if len(s.Rules) != 0 {
				t.Errorf("an invalid policy allowed %v", s.Rules)
			}
			// Whatever it selects (all of x if its selector is unreadable)
			// stays isolated as declared.
			for _, name := range []string{"a", "b"} {
				e, _ := s.Endpoint(PodRef{"x", name})
				if name == "b" && strings.Contains(tt.spec, "app: \"a b\"") {
					continue
				}
				if e.IngressIsolated != tt.ingress || e.EgressIsolated != tt.egress {
					t.Errorf("x/%s isolated ingress=%v egress=%v, want %v %v", name, e.IngressIsolated, e.EgressIsolated, tt.ingress, tt.egress)
				}
			}
		})
	}
}

func TestInvalidSelectorIsolatesWholeNamespace(t *testing.T) {
	pods := []corev1.Pod{testPod("x", "a", "10.0.0.1", "app=a"), testPod("x", "b", "10.0.0.2", "app=b"), testPod("y", "c", "10.0.0.3")}
	c := testCluster(t, nil, pods, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {matchExpressions: [{key: app, operator: Like, values: [a]}]}
  ingress: [{}]
`)
	s, _ := Compile(c, Options{})
	for _, p := range []PodRef{{"x", "a"}, {"x", "b"}} {
		if e, _ := s.Endpoint(p); !e.IngressIsolated || e.IngressIsolatedBy[0] != (PolicyRef{"x", "bad"}) {
			t.Errorf("%s not isolated by x/bad: %+v", p, e)
		}
	}
	if e, _ := s.Endpoint(PodRef{"y", "c"}); e.IngressIsolated {
		t.Errorf("another namespace isolated")
	}
}

func TestEndPortRange(t *testing.T) {
	c := testCluster(t, nil, []corev1.Pod{testPod("x", "a", "10.0.0.1"), testPod("x", "b", "10.0.0.2")}, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: range, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 32000, endPort: 32768, protocol: UDP}, {port: 53, endPort: 53}]
`)
	s := mustCompile(t, c, Options{})
	tests := []struct {
		proto Protocol
		port  uint16
		want  bool
	}{
		{ProtocolUDP, 31999, false}, {ProtocolUDP, 32000, true}, {ProtocolUDP, 32500, true}, {ProtocolUDP, 32768, true},
		{ProtocolUDP, 32769, false}, {ProtocolTCP, 32500, false}, {ProtocolTCP, 53, true}, {ProtocolTCP, 54, false},
	}
	for _, tt := range tests {
		if v := Decide(s, ep("10.0.0.2"), ep("10.0.0.1"), tt.proto, tt.port); v.Allowed != tt.want {
			t.Errorf("%s/%d: allowed=%v, want %v", tt.proto, tt.port, v.Allowed, tt.want)
		}
	}
	for _, r := range s.Rules {
		if r.Port == 53 && r.EndPort != 0 {
			t.Errorf("a one-port range must be a plain port: %v", r.RuleKey)
		}
	}
}

func TestNodeNameRestrictsEndpoints(t *testing.T) {
	a, b := testPod("x", "a", "10.0.0.1", "app=a"), testPod("x", "b", "10.0.0.2", "app=b")
	a.Spec.NodeName, b.Spec.NodeName = "n1", "n2"
	c := testCluster(t, nil, []corev1.Pod{a, b}, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {}}]}]\n")
	s := mustCompile(t, c, Options{NodeName: "n1"})
	if len(s.Endpoints) != 1 || s.Endpoints[0].Pod.Name != "a" {
		t.Fatalf("endpoints %v, want only x/a", s.Endpoints)
	}
	local := s.Endpoints[0].Identity
	for _, r := range s.Rules {
		if r.Local != local {
			t.Errorf("rule for a remote identity: %v", r.RuleKey)
		}
	}
	if s.Lookup(netip.MustParseAddr("10.0.0.2")) == IdentityWorld {
		t.Error("a remote pod's address must still resolve to its identity")
	}
}

func TestSkippedPods(t *testing.T) {
	hostNet := testPod("x", "hostnet", "172.18.0.2")
	hostNet.Spec.HostNetwork = true
	done := testPod("x", "done", "10.0.0.9")
	done.Status.Phase = corev1.PodSucceeded
	s := mustCompile(t, &Cluster{Pods: []corev1.Pod{hostNet, done, testPod("x", "a", "10.0.0.1")}}, Options{})
	if len(s.Endpoints) != 1 || s.Lookup(netip.MustParseAddr("10.0.0.9")) != IdentityWorld || s.Lookup(netip.MustParseAddr("172.18.0.2")) != IdentityWorld {
		t.Errorf("host-network or finished pods compiled: %+v %+v", s.Endpoints, s.IPs)
	}
}

func TestPodAddressConflict(t *testing.T) {
	s, err := Compile(&Cluster{Pods: []corev1.Pod{testPod("x", "b", "10.0.0.1", "app=b"), testPod("x", "a", "10.0.0.1", "app=a")}}, Options{})
	var oe *InvalidObjectError
	if !errors.As(err, &oe) || oe.Name != "x/b" || !strings.Contains(oe.Problem, "x/a") {
		t.Fatalf("want an error naming x/b and x/a, got %v", err)
	}
	a, _ := s.Endpoint(PodRef{"x", "a"})
	if s.Lookup(netip.MustParseAddr("10.0.0.1")) != a.Identity {
		t.Error("the first pod in name order must keep the address")
	}
}

func TestCompileIsDeterministic(t *testing.T) {
	g := genCluster{r: rand.New(rand.NewPCG(42, 1))}
	c := g.cluster()
	want := mustCompile(t, c, Options{})
	for i := range 5 {
		r := rand.New(rand.NewPCG(uint64(i), 2))
		shuffled := &Cluster{
			Namespaces: append([]corev1.Namespace(nil), c.Namespaces...),
			Pods:       append([]corev1.Pod(nil), c.Pods...),
			Policies:   append(c.Policies[:0:0], c.Policies...),
		}
		r.Shuffle(len(shuffled.Pods), func(i, j int) { shuffled.Pods[i], shuffled.Pods[j] = shuffled.Pods[j], shuffled.Pods[i] })
		r.Shuffle(len(shuffled.Policies), func(i, j int) {
			shuffled.Policies[i], shuffled.Policies[j] = shuffled.Policies[j], shuffled.Policies[i]
		})
		if got := mustCompile(t, shuffled, Options{}); !got.Equal(want) || !got.Diff(want).Empty() {
			t.Fatalf("input order changed the state: %+v", want.Diff(got))
		}
	}
}

func TestAllocatorKeepsNumbersAcrossPodChurn(t *testing.T) {
	nss := []corev1.Namespace{testNS("x"), testNS("y")}
	pods := []corev1.Pod{testPod("x", "web-1", "10.0.0.1", "app=web"), testPod("y", "db-1", "10.0.1.1", "app=db")}
	policies := `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: "y"}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
`
	alloc := NewIdentityAllocator(nil)
	before := mustCompile(t, testCluster(t, nss, pods, policies), Options{Allocator: alloc})

	// A new replica, and an old one replaced by a pod at a new address.
	churned := append([]corev1.Pod{testPod("x", "web-2", "10.0.0.2", "app=web")}, testPod("x", "web-1", "10.0.0.7", "app=web"), pods[1])
	after := mustCompile(t, testCluster(t, nss, churned, policies), Options{Allocator: alloc})
	d := before.Diff(after)
	if len(d.RuleUpserts)+len(d.RuleDeletes) != 0 {
		t.Errorf("pod churn changed rules: %+v", d)
	}
	if len(d.IPUpserts) != 2 || len(d.IPDeletes) != 1 {
		t.Errorf("want 2 IP upserts and 1 delete, got %+v %+v", d.IPUpserts, d.IPDeletes)
	}

	// A new policy on a new key: identities it does not split keep
	// their numbers; the restarted allocator (seeded from the State) too.
	more := policies + `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: canary, namespace: x}
spec:
  podSelector: {matchLabels: {track: canary}}
`
	restarted := NewIdentityAllocator(after)
	next := mustCompile(t, testCluster(t, nss, churned, more), Options{Allocator: restarted})
	db := netip.MustParseAddr("10.0.1.1")
	if next.Lookup(db) != after.Lookup(db) {
		t.Errorf("db identity renumbered: %d -> %d", after.Lookup(db), next.Lookup(db))
	}
	for _, s := range after.RuleSources {
		if got, ok := next.RuleSource(s.ID); !ok || got != s {
			t.Errorf("rule source %d renumbered", s.ID)
		}
	}
}

func TestRevisionFollowsRules(t *testing.T) {
	pods := []corev1.Pod{testPod("x", "a", "10.0.0.1", "app=a"), testPod("x", "b", "10.0.0.2", "app=b")}
	base := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]\n"
	s1 := mustCompile(t, testCluster(t, nil, pods, base), Options{})
	s2 := mustCompile(t, testCluster(t, nil, pods, base+"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: q, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: b}}\n  ingress: [{ports: [{port: 9}]}]\n"), Options{})
	a1, _ := s1.Endpoint(PodRef{"x", "a"})
	a2, _ := s2.Endpoint(PodRef{"x", "a"})
	b1, _ := s1.Endpoint(PodRef{"x", "b"})
	b2, _ := s2.Endpoint(PodRef{"x", "b"})
	if a1.Revision != a2.Revision {
		t.Errorf("x/a's rules did not change but its revision did")
	}
	if b1.Revision == b2.Revision || b1.Revision == 0 {
		t.Errorf("x/b gained a rule but kept revision %d", b1.Revision)
	}
}

func TestDiff(t *testing.T) {
	pods := []corev1.Pod{testPod("x", "a", "10.0.0.1", "app=a"), testPod("x", "b", "10.0.0.2", "app=b")}
	pol := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80}]}]\n"
	alloc := NewIdentityAllocator(nil)
	s1 := mustCompile(t, testCluster(t, nil, pods, pol), Options{Allocator: alloc})
	if d := s1.Diff(s1); !d.Empty() {
		t.Errorf("self diff: %+v", d)
	}
	if d := (*State)(nil).Diff(s1); len(d.IPUpserts) != len(s1.IPs) || len(d.RuleUpserts) != len(s1.Rules) || len(d.EndpointUpserts) != 2 {
		t.Errorf("diff from nothing: %+v", d)
	}
	s2 := mustCompile(t, testCluster(t, nil, pods[:1], strings.Replace(pol, "80", "8080", 1)), Options{Allocator: alloc})
	d := s1.Diff(s2)
	if len(d.EndpointDeletes) != 1 || d.EndpointDeletes[0] != (PodRef{"x", "b"}) {
		t.Errorf("endpoint deletes %v", d.EndpointDeletes)
	}
	if len(d.IPDeletes) != 1 || d.IPDeletes[0] != netip.MustParsePrefix("10.0.0.2/32") {
		t.Errorf("ip deletes %v", d.IPDeletes)
	}
	if len(d.RuleUpserts) != 1 || d.RuleUpserts[0].Port != 8080 || len(d.RuleDeletes) != 2 {
		t.Errorf("rule changes %+v / %+v", d.RuleUpserts, d.RuleDeletes)
	}
}

func TestMissingNamespaceIsSynthesized(t *testing.T) {
	c := testCluster(t, nil, []corev1.Pod{testPod("y", "a", "10.0.0.1"), testPod("x", "b", "10.0.0.2")}, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}}]}]
`)
	s := mustCompile(t, c, Options{})
	if v := Decide(s, ep("10.0.0.1"), ep("10.0.0.2"), ProtocolTCP, 1); !v.Allowed {
		t.Errorf("metadata.name label of an undeclared namespace: %s", v.Reason())
	}
	if _, err := Compile(&Cluster{Namespaces: []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{}}}}, Options{}); err == nil {
		t.Error("nameless namespace accepted")
	}
}

func TestDuplicatesFailClosed(t *testing.T) {
	pods := []corev1.Pod{testPod("x", "a", "10.0.0.1", "app=a"), testPod("x", "b", "10.0.0.2", "app=b")}
	allow := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: a}}\n  ingress: [{}]\n"
	deny := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: b}}\n  policyTypes: [Ingress]\n"
	c := &Cluster{Pods: pods}
	for _, y := range []string{allow, deny} {
		pc, err := ReadManifests("p", strings.NewReader(y))
		if err != nil {
			t.Fatal(err)
		}
		c.Policies = append(c.Policies, pc.Policies...)
	}
	s, err := Compile(c, Options{})
	var pe *InvalidPolicyError
	if !errors.As(err, &pe) || pe.Policy != (PolicyRef{"x", "p"}) {
		t.Fatalf("want an error naming x/p, got %v", err)
	}
	if e, _ := s.Endpoint(PodRef{"x", "b"}); !e.IngressIsolated {
		t.Error("the second definition must still isolate x/b")
	}
	nss := []corev1.Namespace{testNS("x"), testNS("x")}
	nss[0].Annotations = map[string]string{AnnotationEnforcement: "audit"}
	s, _ = Compile(&Cluster{Namespaces: nss, Pods: pods}, Options{})
	if e, _ := s.Endpoint(PodRef{"x", "a"}); e.Mode != ModeEnforce {
		t.Errorf("duplicate namespaces disagreeing on mode: %s", e.Mode)
	}
}
