package policy

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestValidateEndPortLikeUpstream ports "should support creating
// NetworkPolicy API with endport field" (network_policy_api.go): what the
// API server rejects and accepts.
func TestValidateEndPortLikeUpstream(t *testing.T) {
	num := func(v int32) *intstr.IntOrString { p := intstr.FromInt32(v); return &p }
	name := func(v string) *intstr.IntOrString { p := intstr.FromString(v); return &p }
	end := func(v int32) *int32 { return &v }
	tests := []struct {
		name  string
		port  networkingv1.NetworkPolicyPort
		valid bool
	}{
		{"endPort without port", networkingv1.NetworkPolicyPort{EndPort: end(20000)}, false},
		{"endPort with a named port", networkingv1.NetworkPolicyPort{Port: name("serve-80"), EndPort: end(20000)}, false},
		{"endPort below port", networkingv1.NetworkPolicyPort{Port: num(30000), EndPort: end(20000)}, false},
		{"endPort equal to port", networkingv1.NetworkPolicyPort{Port: num(20000), EndPort: end(20000)}, true},
		{"endPort above port", networkingv1.NetworkPolicyPort{Port: num(10000), EndPort: end(20000)}, true},
		{"endPort past 65535", networkingv1.NetworkPolicyPort{Port: num(10000), EndPort: end(70000)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "e2e-example-netpol-endport-validate", Namespace: "x"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod-name": "test-pod"}},
					PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
					Egress:      []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{tt.port}}},
				},
			}
			errs := ValidatePolicy(np)
			if (len(errs) == 0) != tt.valid {
				t.Errorf("valid=%v, want %v: %v", len(errs) == 0, tt.valid, errs)
			}
		})
	}
}
