package rules

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The standard runs on every admission request; the target is ≤ 10 µs per
// object with the default standard.

func benchNamespace() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        "shop",
		Labels:      map[string]string{"owner": "team-a", "env": "prod", "data-classification": "pci", "kubernetes.io/metadata.name": "shop"},
		Annotations: map[string]string{AnnotationRuleActions: "pod-tier=warn,*=dryrun", AnnotationProfile: "restricted"},
	}}
}

// BenchmarkEvaluatePod: a compliant pod. "judge" is Pod alone; "admission"
// is what the webhook does per pod or template: inheritance, reserved keys,
// the pod rules.
func BenchmarkEvaluatePod(b *testing.B) {
	e := defaultEvaluator(b)
	ns := benchNamespace()
	pod := &metav1.ObjectMeta{
		Labels:      map[string]string{"app": "api", "tier": "backend", "pod-template-hash": "7d9f8c", "version": "1.2.3"},
		Annotations: map[string]string{"kubectl.kubernetes.io/default-container": "api"},
	}
	b.Run("judge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if vs := e.Pod("pod shop/api-7d9f8c", pod.Labels, ns); len(vs) != 0 {
				b.Fatal(vs)
			}
		}
	})
	b.Run("admission", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if len(e.Inherit(pod.Labels, ns)) != 1 {
				b.Fatal("env not inherited")
			}
			if vs := e.ReservedKeys("pod shop/api-7d9f8c", nil, pod, nil, ns); len(vs) != 0 {
				b.Fatal(vs)
			}
			if vs := e.Pod("pod shop/api-7d9f8c", pod.Labels, ns); len(vs) != 0 {
				b.Fatal(vs)
			}
		}
	})
}

// BenchmarkEvaluatePodViolations: every pod rule broken, each message built
// and its action resolved through the namespace's override.
func BenchmarkEvaluatePodViolations(b *testing.B) {
	e := defaultEvaluator(b)
	ns := benchNamespace()
	labels := map[string]string{"app": "API", "env": "dev"}
	b.ReportAllocs()
	for b.Loop() {
		if vs := e.Pod("pod shop/api", labels, ns); len(vs) != 3 {
			b.Fatal(vs)
		}
	}
}

// BenchmarkEvaluateNamespace: a compliant namespace whose rule-actions
// override is checked too.
func BenchmarkEvaluateNamespace(b *testing.B) {
	e := defaultEvaluator(b)
	ns := benchNamespace()
	b.ReportAllocs()
	for b.Loop() {
		if vs := e.Namespace(ns); len(vs) != 0 {
			b.Fatal(vs)
		}
	}
}

// BenchmarkEvaluateNetworkPolicy: a typical application policy (ingress
// from the frontend, egress to DNS) in a pci namespace, so every check
// runs; it draws one warning, for selecting on k8s-app.
func BenchmarkEvaluateNetworkPolicy(b *testing.B) {
	e := defaultEvaluator(b)
	ns := benchNamespace()
	np := policyFromYAML(b, `
metadata: {name: api, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress, Egress]
  ingress: [{from: [{podSelector: {matchLabels: {tier: frontend}}}], ports: [{port: 8080}]}]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
  - to: [{podSelector: {matchLabels: {tier: data}}}]
    ports: [{port: 5432}]
`)
	b.ReportAllocs()
	for b.Loop() {
		if vs := e.NetworkPolicy(np, ns); len(vs) != 1 {
			b.Fatal(vs)
		}
	}
}
