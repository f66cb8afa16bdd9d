package rules

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var benchNS = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"owner": "team-a", "env": "prod", "data-classification": "pci", "kubernetes.io/metadata.name": "shop"}}}

// BenchmarkStandardPod is what the webhook does per pod (or template):
// inheritance, the pod rules, the reserved keys. Target ≤ 10 µs.
func BenchmarkStandardPod(b *testing.B) {
	e := defaultEvaluator(b)
	meta := &metav1.ObjectMeta{Labels: map[string]string{"app": "api", "tier": "backend", "pod-template-hash": "7d9f8c", "version": "1.2.3"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Inherit(meta.Labels, benchNS)
		if vs := e.Pod("pod shop/api-7d9f8c", meta.Labels, benchNS); len(vs) != 0 {
			b.Fatal(vs)
		}
		_ = e.ReservedKeys("pod shop/api-7d9f8c", nil, meta, nil, benchNS)
	}
}

func BenchmarkStandardPodViolations(b *testing.B) {
	e := defaultEvaluator(b)
	labels := map[string]string{"app": "API", "env": "dev"}
	b.ReportAllocs()
	for b.Loop() {
		if vs := e.Pod("pod shop/api", labels, benchNS); len(vs) != 3 {
			b.Fatal(vs)
		}
	}
}

func BenchmarkStandardNamespace(b *testing.B) {
	e := defaultEvaluator(b)
	b.ReportAllocs()
	for b.Loop() {
		if vs := e.Namespace(benchNS); len(vs) != 0 {
			b.Fatal(vs)
		}
	}
}

func BenchmarkStandardNetworkPolicy(b *testing.B) {
	e := defaultEvaluator(b)
	np := policyFromYAML(&testing.T{}, `
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress, Egress]
  ingress: [{from: [{podSelector: {matchLabels: {tier: frontend}}}], ports: [{port: 8080}]}]
  egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]
`)
	b.ReportAllocs()
	for b.Loop() {
		// One warning: k8s-app is not an identity label.
		if vs := e.NetworkPolicy(np, benchNS); len(vs) != 1 {
			b.Fatal(vs)
		}
	}
}
