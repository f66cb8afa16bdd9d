package rules

import (
	"fmt"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func TestProfileFor(t *testing.T) {
	std := Default()
	custom := evaluatorFor(t, testStandard).Standard()
	for _, tc := range []struct {
		std    *Standard
		labels map[string]string
		want   Profile
	}{
		{std, map[string]string{"data-classification": "pci"}, Profile{Name: "restricted"}},
		{std, map[string]string{"data-classification": "hipaa"}, Profile{Name: "restricted"}},
		{std, map[string]string{"data-classification": "public"}, Profile{Name: "open-namespace", AllowSameNamespaceIngress: true}},
		{std, map[string]string{"data-classification": "internal"}, Profile{Name: "open-namespace", AllowSameNamespaceIngress: true}},
		{std, map[string]string{"data-classification": "unknown"}, Profile{Name: "restricted"}},
		{std, map[string]string{"data-classification": ""}, Profile{Name: "restricted"}},
		{std, map[string]string{"class": "public"}, Profile{Name: "restricted"}},
		{std, nil, Profile{Name: "restricted"}},
		{custom, map[string]string{"class": "public"}, Profile{Name: "open", AllowSameNamespaceIngress: true}},
		{custom, map[string]string{"data-classification": "public"}, Profile{Name: "closed"}},
	} {
		if got := tc.std.ProfileFor(tc.labels); got != tc.want {
			t.Errorf("%s ProfileFor(%v) = %+v, want %+v", tc.std.Metadata.Name, tc.labels, got, tc.want)
		}
	}
}

// The exact objects: any other enforcer must read them the same way.
func TestBaselinePolicies(t *testing.T) {
	const header = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  annotations:\n    palisade.dev/profile: %s\n  labels:\n    app.kubernetes.io/managed-by: palisade\n  name: %s\n  namespace: shop\n"
	head := func(profile, name string) string { return fmt.Sprintf(header, profile, name) }
	defaultDeny := "spec:\n  podSelector: {}\n  policyTypes:\n  - Ingress\n  - Egress\n"
	allowDNS := "" +
		"spec:\n" +
		"  egress:\n" +
		"  - ports:\n" +
		"    - port: 53\n" +
		"      protocol: UDP\n" +
		"    - port: 53\n" +
		"      protocol: TCP\n" +
		"    to:\n" +
		"    - namespaceSelector:\n" +
		"        matchLabels:\n" +
		"          kubernetes.io/metadata.name: kube-system\n" +
		"      podSelector:\n" +
		"        matchLabels:\n" +
		"          k8s-app: kube-dns\n" +
		"  podSelector: {}\n" +
		"  policyTypes:\n" +
		"  - Egress\n"
	sameNamespace := "spec:\n  ingress:\n  - from:\n    - podSelector: {}\n  podSelector: {}\n  policyTypes:\n  - Ingress\n"
	for _, tc := range []struct {
		profile Profile
		want    []string
	}{
		{Profile{Name: "restricted"}, []string{
			head("restricted", PolicyDefaultDeny) + defaultDeny,
			head("restricted", PolicyAllowDNS) + allowDNS,
		}},
		{Profile{Name: "open-namespace", AllowSameNamespaceIngress: true}, []string{
			head("open-namespace", PolicyDefaultDeny) + defaultDeny,
			head("open-namespace", PolicyAllowDNS) + allowDNS,
			head("open-namespace", PolicyAllowSameNamespace) + sameNamespace,
		}},
	} {
		pols := BaselinePolicies("shop", tc.profile)
		if len(pols) != len(tc.want) {
			t.Fatalf("%s: %d policies, want %d", tc.profile.Name, len(pols), len(tc.want))
		}
		for i := range pols {
			got, err := yaml.Marshal(&pols[i])
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want[i] {
				t.Errorf("%s policy %d:\n%s\nwant:\n%s", tc.profile.Name, i, got, tc.want[i])
			}
			if !IsManaged(&pols[i]) {
				t.Errorf("%s: not IsManaged", pols[i].Name)
			}
		}
	}
}

// Callers (the reconciler) patch the returned objects: nothing may be
// shared between policies or between calls.
func TestBaselinePoliciesShareNothing(t *testing.T) {
	a := BaselinePolicies("shop", Profile{Name: "open-namespace", AllowSameNamespaceIngress: true})
	b := BaselinePolicies("shop", Profile{Name: "open-namespace", AllowSameNamespaceIngress: true})
	a[0].Labels["x"] = "y"
	a[0].Annotations["x"] = "y"
	if _, ok := a[1].Labels["x"]; ok {
		t.Error("policies share their labels")
	}
	if _, ok := b[0].Annotations["x"]; ok {
		t.Error("calls share annotations")
	}
	ports := a[1].Spec.Egress[0].Ports
	ports[0].Port.IntVal = 5353
	*ports[0].Protocol = "SCTP"
	if ports[1].Port.IntVal != 53 || *ports[1].Protocol != "TCP" {
		t.Errorf("the DNS ports alias one another: %v %v", ports[1].Port, *ports[1].Protocol)
	}
	if b[1].Spec.Egress[0].Ports[0].Port.IntVal != 53 || *b[1].Spec.Egress[0].Ports[0].Protocol != "UDP" {
		t.Error("calls share the DNS ports")
	}
}

func TestIsManaged(t *testing.T) {
	np := func(labels map[string]string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Labels: labels}}
	}
	for _, tc := range []struct {
		name string
		obj  metav1.Object
		want bool
	}{
		{"managed", np(map[string]string{LabelManagedBy: ManagedByValue}), true},
		{"managed by another", np(map[string]string{LabelManagedBy: "helm"}), false},
		{"value case matters", np(map[string]string{LabelManagedBy: "Palisade"}), false},
		{"no labels", np(nil), false},
		{"nil interface", nil, false},
		{"typed nil", (*networkingv1.NetworkPolicy)(nil), false},
		{"any object kind", &metav1.ObjectMeta{Labels: map[string]string{LabelManagedBy: ManagedByValue}}, true},
	} {
		if got := IsManaged(tc.obj); got != tc.want {
			t.Errorf("%s: IsManaged = %v", tc.name, got)
		}
	}
}
