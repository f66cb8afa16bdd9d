package chart_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/enforcer/check"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// TestNetworkPolicyReach compiles the chart's NetworkPolicy as the
// enforcer does, with a webhook pod labelled as the Deployment labels it,
// and judges first packets to it: a pod in an application namespace and a
// pod in the monitoring namespace reach neither the admission port nor,
// for the former, the metrics port; the monitoring pod reaches the
// metrics port only; a peer inside the control-plane range reaches the
// admission port only.
func TestNetworkPolicyReach(t *testing.T) {
	r := mustRender(t, defaultRelease, values("webhook.networkPolicy.controlPlaneCIDRs", []any{"10.0.0.10/32"}, "metrics.monitoringNamespace", "monitoring"))
	np := typed[networkingv1.NetworkPolicy](t, r.find("NetworkPolicy", "")[0])
	dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))

	ns := func(name string) corev1.Namespace {
		return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/metadata.name": name}}}
	}
	pod := func(namespace, name, ip string, labels map[string]string) corev1.Pod {
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
			Spec:       corev1.PodSpec{Containers: dep.Spec.Template.Spec.Containers[:1]},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
		}
	}
	cluster := &policy.Cluster{
		Namespaces: []corev1.Namespace{ns(releaseNS), ns("shop"), ns("monitoring"), ns("control")},
		Pods: []corev1.Pod{
			pod(releaseNS, "webhook", "10.244.1.10", dep.Spec.Template.Labels),
			pod("shop", "attacker", "10.244.1.20", map[string]string{"app": "web"}),
			pod("monitoring", "prometheus", "10.244.1.30", map[string]string{"app": "prometheus"}),
			// Stands for the API server: an address inside controlPlaneCIDRs.
			pod("control", "apiserver", "10.0.0.10", map[string]string{"app": "apiserver"}),
		},
		Policies: []networkingv1.NetworkPolicy{*np},
	}
	c, err := check.FromObjects(cluster)
	if err != nil {
		t.Fatal(err)
	}
	webhookPod := policy.PodRef{Namespace: releaseNS, Name: "webhook"}
	admission := check.Port{Number: 9443, Protocol: policy.ProtocolTCP}
	metrics := check.Port{Number: 8080, Protocol: policy.ProtocolTCP}
	other := check.Port{Number: 8081, Protocol: policy.ProtocolTCP}
	cases := []struct {
		from  policy.PodRef
		port  check.Port
		allow bool
	}{
		{policy.PodRef{Namespace: "shop", Name: "attacker"}, admission, false},
		{policy.PodRef{Namespace: "shop", Name: "attacker"}, metrics, false},
		{policy.PodRef{Namespace: "shop", Name: "attacker"}, other, false},
		{policy.PodRef{Namespace: "monitoring", Name: "prometheus"}, admission, false},
		{policy.PodRef{Namespace: "monitoring", Name: "prometheus"}, metrics, true},
		{policy.PodRef{Namespace: "control", Name: "apiserver"}, admission, true},
		{policy.PodRef{Namespace: "control", Name: "apiserver"}, metrics, false},
	}
	var probes []check.Probe
	for _, tc := range cases {
		probes = append(probes, check.Probe{From: tc.from, To: webhookPod, Port: tc.port})
	}
	results, err := check.NewModelEngine(c.State).Judge(probes)
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range results {
		if res.Allowed() != cases[i].allow {
			t.Errorf("%s: allowed=%t, want %t (%s)", res.Probe, res.Allowed(), cases[i].allow, res.Reason())
		}
	}
}
