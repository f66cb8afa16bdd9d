package policy

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// wildcardCluster has pods identities one each (their own app label) in
// namespaces, one in localEvery on node0, and in every namespace a policy
// letting peer into all its pods on TCP 80 and 443.
func wildcardCluster(pods, namespaces, localEvery int, peer networkingv1.NetworkPolicyPeer) *Cluster {
	c := &Cluster{}
	for n := range namespaces {
		c.Namespaces = append(c.Namespaces, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns%d", n),
			Labels: map[string]string{"kubernetes.io/metadata.name": fmt.Sprintf("ns%d", n)}}})
	}
	for i := range pods {
		node := "node1"
		if i%localEvery == 0 {
			node = "node0"
		}
		c.Pods = append(c.Pods, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", i%namespaces), Name: fmt.Sprintf("p%d", i),
				Labels: map[string]string{"app": fmt.Sprintf("app%d", i)}},
			Spec:   corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()},
		})
	}
	tcp := corev1.ProtocolTCP
	p80, p443 := intstr.FromInt32(80), intstr.FromInt32(443)
	for n := range namespaces {
		c.Policies = append(c.Policies, networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", n), Name: "from-everywhere"},
			Spec: networkingv1.NetworkPolicySpec{
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{peer},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}, {Protocol: &tcp, Port: &p443}},
				}},
			},
		})
	}
	return c
}

var (
	everyNamespace       = networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}
	everyNamespaceAndPod = networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{}}
	// The same pods, by a selector that is not syntactically "every":
	// compiled one rule per identity.
	everyNamespaceExpanded = networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpExists}}}}
)

// A peer that selects every pod of every namespace is one rule per local
// identity and port, with the every-pod wildcard, however many identities
// the cluster has; it admits every pod and nothing else.
func TestEveryPodPeerIsOneWildcardRule(t *testing.T) {
	for _, peer := range []networkingv1.NetworkPolicyPeer{everyNamespace, everyNamespaceAndPod} {
		c := wildcardCluster(200, 4, 10, peer)
		s, err := Compile(c, Options{NodeName: "node0", HostIPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}})
		if err != nil {
			t.Fatal(err)
		}
		if want := 20 * 2; len(s.Rules) != want {
			t.Errorf("%d rules, want %d (20 local identities × 2 ports)", len(s.Rules), want)
		}
		for _, r := range s.Rules {
			if r.Peer != PeerAnyPod {
				t.Fatalf("rule %v names a peer identity, want the every-pod wildcard", r.RuleKey)
			}
		}
		dst := Endpoint{IP: netip.MustParseAddr("10.0.0.10")} // p10, on node0
		for _, tc := range []struct {
			src  Endpoint
			port uint16
			want bool
		}{
			{Endpoint{IP: netip.MustParseAddr("10.0.0.7")}, 80, true},   // a pod of another namespace, another node
			{Endpoint{IP: netip.MustParseAddr("10.0.0.20")}, 443, true}, // a local pod
			{Endpoint{IP: netip.MustParseAddr("10.0.0.7")}, 81, false},
			{Endpoint{IP: netip.MustParseAddr("8.8.8.8")}, 80, false}, // the world is no pod
			{Endpoint{IP: netip.MustParseAddr("192.168.0.1")}, 80, true},
		} {
			v := Decide(s, tc.src, dst, ProtocolTCP, tc.port)
			if v.Allowed != tc.want {
				t.Errorf("%v → p10 port %d: allowed %v, want %v (%s)", tc.src.IP, tc.port, v.Allowed, tc.want, v.Reason())
			}
		}
	}

	// Egress to every pod on a named port resolves the port per pod: no
	// wildcard then.
	c := wildcardCluster(20, 2, 10, everyNamespace)
	http := intstr.FromString("http")
	for i := range c.Policies {
		c.Policies[i].Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		c.Policies[i].Spec.Ingress = nil
		c.Policies[i].Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{everyNamespace},
			Ports: []networkingv1.NetworkPolicyPort{{Port: &http}}}}
	}
	s, err := Compile(c, Options{NodeName: "node0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Rules {
		if r.Peer == PeerAnyPod || r.Port != 8080 {
			t.Fatalf("egress rule %v: want the named port resolved against each peer pod", r.RuleKey)
		}
	}
	if len(s.Rules) != 2*20 {
		t.Errorf("%d egress rules, want 40 (2 local identities × 20 peers)", len(s.Rules))
	}
}

// BenchmarkAllowFromAllNamespaces: 10k pod identities, a policy in each of
// 100 namespaces admitting every pod on two ports, compiled for a node
// with 10 of the pods: the wildcard against the same pods selected one by
// one (the floor, in the same run).
func BenchmarkAllowFromAllNamespaces(b *testing.B) {
	for _, tc := range []struct {
		name string
		peer networkingv1.NetworkPolicyPeer
	}{
		{"wildcard", everyNamespace}, {"per-identity", everyNamespaceExpanded},
		// 0.0.0.0/0, and the floor: the same block with an except no
		// address of the cluster is in, so not a wildcard.
		{"ipv4-wildcard", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}},
		{"ipv4-per-identity", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"255.255.255.255/32"}}}},
	} {
		c := wildcardCluster(10000, 100, 1000, tc.peer)
		b.Run(tc.name, func(b *testing.B) {
			var s *State
			for b.Loop() {
				var err error
				if s, err = Compile(c, Options{NodeName: "node0"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(s.Rules)), "entries")
			b.ReportMetric(float64(len(s.Identities)), "identities")
		})
	}
}

// ipBlock 0.0.0.0/0 and ::/0 without except are one rule per local
// identity and port with their family's wildcard (plus the host's, when
// every host address is in the block); with an except they are not.
func TestEveryAddressBlockIsOneWildcardRule(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cidr      string
		except    []string
		hostIPs   []string
		wildcard  NumericIdentity
		host      bool
		allowed   []string
		denied    []string
		wantRules int
	}{
		{"IPv4", "0.0.0.0/0", nil, []string{"192.168.0.1"}, PeerAnyIPv4, true, []string{"10.0.0.7", "8.8.8.8"}, []string{"fd00::7"}, 20 * 2 * 2},
		{"IPv4, dual-stack host", "0.0.0.0/0", nil, []string{"192.168.0.1", "fd00:ff::1"}, PeerAnyIPv4, false, []string{"10.0.0.7", "8.8.8.8"}, []string{"fd00::7"}, 20 * 2},
		{"IPv6", "::/0", nil, []string{"192.168.0.1"}, PeerAnyIPv6, false, []string{"fd00::7", "2001:db8::1"}, []string{"10.0.0.7", "8.8.8.8"}, 20 * 2},
		{"with except", "0.0.0.0/0", []string{"8.8.0.0/16"}, []string{"192.168.0.1"}, 0, true, []string{"10.0.0.7"}, []string{"8.8.8.8", "fd00::7"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wildcardCluster(200, 4, 10, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: tc.cidr, Except: tc.except}})
			var hosts []netip.Addr
			for _, h := range tc.hostIPs {
				hosts = append(hosts, netip.MustParseAddr(h))
			}
			s, err := Compile(c, Options{NodeName: "node0", HostIPs: hosts})
			if err != nil {
				t.Fatal(err)
			}
			peers := map[NumericIdentity]int{}
			for _, r := range s.Rules {
				peers[r.Peer]++
			}
			if tc.wildcard != 0 {
				if len(s.Rules) != tc.wantRules || peers[tc.wildcard] != 40 || (peers[IdentityHost] == 40) != tc.host {
					t.Errorf("%d rules by peer %v, want %d: 40 with the wildcard %d, host entries %v", len(s.Rules), peers, tc.wantRules, tc.wildcard, tc.host)
				}
			} else if peers[PeerAnyIPv4]+peers[PeerAnyIPv6] != 0 {
				t.Errorf("a block with except compiled to wildcards: %v", peers)
			}
			for _, a := range tc.allowed {
				if v := Decide(s, Endpoint{IP: netip.MustParseAddr(a)}, Endpoint{IP: netip.MustParseAddr("10.0.0.10")}, ProtocolTCP, 80); !v.Allowed {
					t.Errorf("%s → p10: denied, want allowed (%s)", a, v.Reason())
				}
			}
			for _, a := range tc.denied {
				if v := Decide(s, Endpoint{IP: netip.MustParseAddr(a)}, Endpoint{IP: netip.MustParseAddr("10.0.0.10")}, ProtocolTCP, 80); v.Allowed {
					t.Errorf("%s → p10: allowed, want denied (%s)", a, v.Reason())
				}
			}
		})
	}
}
