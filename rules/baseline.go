package rules

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Names of the baseline NetworkPolicies.
const (
	PolicyDefaultDeny        = "palisade-default-deny"
	PolicyAllowDNS           = "palisade-allow-dns"
	PolicyAllowSameNamespace = "palisade-allow-same-namespace"
)

// ProfileFor returns the baseline profile of a namespace with these labels:
// the one mapped from its classification label, else the default profile.
// Name is always filled.
func (s *Standard) ProfileFor(nsLabels map[string]string) Profile {
	p := &s.Spec.Profiles
	name := p.DefaultProfile
	if class, ok := nsLabels[p.ClassificationLabel]; ok {
		if mapped, ok := p.ByClassification[class]; ok {
			name = mapped
		}
	}
	prof := p.Definitions[name]
	prof.Name = name
	return prof
}

// BaselinePolicies returns the managed NetworkPolicies of profile p in
// namespace: default-deny (Ingress+Egress, podSelector {}), DNS egress to
// kube-system k8s-app=kube-dns on UDP and TCP 53, and, if the profile says
// so, ingress from the same namespace. Each is labelled
// LabelManagedBy=ManagedByValue and annotated with AnnotationProfile.
func BaselinePolicies(namespace string, p Profile) []networkingv1.NetworkPolicy {
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name:        name,
			Namespace:   namespace,
			Labels:      map[string]string{LabelManagedBy: ManagedByValue},
			Annotations: map[string]string{AnnotationProfile: p.Name},
		}
	}
	typeMeta := metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	// Separate values: the two ports must not alias one another for a
	// caller that edits one.
	dnsUDP, dnsTCP := intstr.FromInt32(53), intstr.FromInt32(53)
	out := []networkingv1.NetworkPolicy{
		{
			TypeMeta:   typeMeta,
			ObjectMeta: meta(PolicyDefaultDeny),
			Spec: networkingv1.NetworkPolicySpec{
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			},
		},
		{
			TypeMeta:   typeMeta,
			ObjectMeta: meta(PolicyAllowDNS),
			Spec: networkingv1.NetworkPolicySpec{
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress: []networkingv1.NetworkPolicyEgressRule{{
					To: []networkingv1.NetworkPolicyPeer{{
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
						PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
					}},
					Ports: []networkingv1.NetworkPolicyPort{
						{Protocol: &udp, Port: &dnsUDP},
						{Protocol: &tcp, Port: &dnsTCP},
					},
				}},
			},
		},
	}
	if p.AllowSameNamespaceIngress {
		out = append(out, networkingv1.NetworkPolicy{
			TypeMeta:   typeMeta,
			ObjectMeta: meta(PolicyAllowSameNamespace),
			Spec: networkingv1.NetworkPolicySpec{
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
				}},
			},
		})
	}
	return out
}

// IsManaged reports whether obj is one of Palisade's baseline policies.
func IsManaged(obj metav1.Object) bool {
	if obj == nil {
		return false
	}
	if v := reflect.ValueOf(obj); v.Kind() == reflect.Pointer && v.IsNil() {
		return false
	}
	return obj.GetLabels()[LabelManagedBy] == ManagedByValue
}
