package gatekeeper

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/rules"
)

// benchPods are the pods both benchmarks judge, in namespace shop.
var benchPods = []struct {
	name   string
	labels map[string]string
}{
	{"compliant", map[string]string{"app": "web", "tier": "frontend"}},
	{"violating", map[string]string{"app": "Web_App", "env": "dev"}},
}

func benchNamespace() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{
		"owner": "team-shop", "env": "prod", "data-classification": "public",
	}}}
}

// BenchmarkGatekeeperReviewPod is the default standard as exported, run by
// Gatekeeper's framework in process: what judging the standard through
// Gatekeeper would cost the webhook per pod.
func BenchmarkGatekeeperReviewPod(b *testing.B) {
	cr, _ := exportedRules(b, rules.Default())
	ns := benchNamespace()
	ctx := context.Background()
	for _, p := range benchPods {
		labels := map[string]any{}
		for k, v := range p.labels {
			labels[k] = v
		}
		req := admissionRequest(b, podObject("web", labels, "registry.example/web:1.0"))
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cr.Review(ctx, req, ns); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNativePod is the same judgement by the native evaluator, as the
// webhook makes it: inheritance, then the pod rules.
func BenchmarkNativePod(b *testing.B) {
	e, err := rules.NewEvaluator(rules.Default())
	if err != nil {
		b.Fatal(err)
	}
	ns := benchNamespace()
	for _, p := range benchPods {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				labels := p.labels
				if add := e.Inherit(labels, ns); add != nil {
					merged := make(map[string]string, len(labels)+len(add))
					for k, v := range labels {
						merged[k] = v
					}
					for k, v := range add {
						merged[k] = v
					}
					labels = merged
				}
				_ = e.Pod("pod shop/web", labels, ns)
			}
		})
	}
}
