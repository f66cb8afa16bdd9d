package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// benchCluster is a plausible cluster: 20 namespaces of 50 pods in 10
// apps, policies that each select one app and allow a few others by
// label, namespace, named or numbered port, or CIDR.
func benchCluster(pods, policies int) *Cluster {
	r := rand.New(rand.NewPCG(1, 2))
	c := &Cluster{}
	const namespaces, apps = 20, 10
	for n := range namespaces {
		c.Namespaces = append(c.Namespaces, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("ns%d", n), Labels: map[string]string{"team": fmt.Sprintf("t%d", n%4), "env": "prod"},
		}})
	}
	for i := range pods {
		ns, app := i%namespaces, (i/namespaces)%apps
		c.Pods = append(c.Pods, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", ns), Name: fmt.Sprintf("p%d", i), Labels: map[string]string{
				"app": fmt.Sprintf("app%d", app), "tier": []string{"frontend", "backend", "data"}[app%3], "env": "prod",
				"pod-template-hash": fmt.Sprintf("%x", r.Uint32()),
			}},
			Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node%d", i%10), Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: int32(8080 + app%2)}, {Name: "metrics", ContainerPort: 9090},
			}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: netip.AddrFrom4([4]byte{10, byte(ns), byte(i >> 8), byte(i)}).String()},
		})
	}
	tcp := corev1.ProtocolTCP
	for i := range policies {
		ns, app := i%namespaces, (i/namespaces)%apps
		np := networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", ns), Name: fmt.Sprintf("np%d", i)},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%d", app)}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			},
		}
		port := intstr.FromInt32(int32(8000 + i%50))
		if i%3 == 0 {
			port = intstr.FromString("http")
		}
		in := networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%d", r.IntN(apps))}}},
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("t%d", r.IntN(4))}},
					PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"frontend"}}}}},
			},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
		}
		out := networkingv1.NetworkPolicyEgressRule{
			To: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "ns0"}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("172.%d.0.0/16", i%16), Except: []string{fmt.Sprintf("172.%d.1.0/24", i%16)}}},
			},
		}
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{in}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{out}
		c.Policies = append(c.Policies, np)
	}
	return c
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10, 10000} {
		c := benchCluster(1000, n)
		for _, node := range []string{"", "node0"} {
			name := fmt.Sprintf("policies=%d/pods=1000/node=%q", n, node)
			b.Run(name, func(b *testing.B) {
				var s *State
				for b.Loop() {
					var err error
					if s, err = Compile(c, Options{NodeName: node}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(s.Rules)), "rules")
				b.ReportMetric(float64(len(s.Identities)), "identities")
			})
		}
	}
}

// BenchmarkRecompilePodChurn is the enforcer's steady state: one pod
// replaced, everything recompiled with the previous numbers, then diffed.
func BenchmarkRecompilePodChurn(b *testing.B) {
	c := benchCluster(1000, 1000)
	alloc := NewIdentityAllocator(nil)
	prev, err := Compile(c, Options{Allocator: alloc, NodeName: "node0"})
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		c.Pods[i%len(c.Pods)].Status.PodIP = netip.AddrFrom4([4]byte{10, 250, byte(i >> 8), byte(i)}).String()
		next, err := Compile(c, Options{Allocator: alloc, NodeName: "node0"})
		if err != nil {
			b.Fatal(err)
		}
		if d := prev.Diff(next); len(d.RuleUpserts)+len(d.RuleDeletes) != 0 {
			b.Fatalf("pod churn changed rules: %d upserts %d deletes", len(d.RuleUpserts), len(d.RuleDeletes))
		}
		prev = next
	}
}

func BenchmarkDecide(b *testing.B) {
	c := benchCluster(1000, 1000)
	s, err := Compile(c, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var eps []Endpoint
	for _, e := range s.Endpoints {
		eps = append(eps, Endpoint{IP: e.IPs[0]})
	}
	eps = append(eps, Endpoint{IP: netip.MustParseAddr("172.3.9.9")}, Endpoint{IP: netip.MustParseAddr("8.8.8.8")})
	r := rand.New(rand.NewPCG(3, 4))
	type probe struct {
		src, dst Endpoint
		port     uint16
	}
	probes := make([]probe, 4096)
	for i := range probes {
		probes[i] = probe{eps[r.IntN(len(eps))], eps[r.IntN(len(eps))], uint16(8000 + r.IntN(100))}
	}
	allowed, i := 0, 0
	for b.Loop() {
		p := probes[i%len(probes)]
		i++
		if Decide(s, p.src, p.dst, ProtocolTCP, p.port).Allowed {
			allowed++
		}
	}
	b.ReportMetric(float64(allowed)/float64(i), "allowed/op")
}
