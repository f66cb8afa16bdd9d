package enforcer

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// The transforms run on every object before it enters a cache. Each keeps
// exactly what the compiler (or the node's host addresses) reads, so a
// cluster-wide pod cache costs a few hundred bytes per pod instead of the
// whole object. Each is idempotent, as informers require, and passes
// anything it does not recognise (such as a deleted-object tombstone)
// through unchanged.

// minimalMeta keeps identity and labels; annotations only where named.
func minimalMeta(m *metav1.ObjectMeta, annotations ...string) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name:            m.Name,
		Namespace:       m.Namespace,
		UID:             m.UID,
		ResourceVersion: m.ResourceVersion,
		Labels:          m.Labels,
	}
	for _, k := range annotations {
		if v, ok := m.Annotations[k]; ok {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	return out
}

// transformPod keeps name, namespace, labels, the source-ranges
// annotation, node, host networking, container ports (of containers and
// of sidecar init containers, which keep serving), phase and addresses.
func transformPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		TypeMeta:   p.TypeMeta,
		ObjectMeta: minimalMeta(&p.ObjectMeta, policy.AnnotationSourceCIDRs),
		Spec: corev1.PodSpec{
			NodeName:    p.Spec.NodeName,
			HostNetwork: p.Spec.HostNetwork,
		},
		Status: corev1.PodStatus{
			Phase:  p.Status.Phase,
			PodIP:  p.Status.PodIP,
			PodIPs: p.Status.PodIPs,
		},
	}
	for _, c := range p.Spec.Containers {
		if len(c.Ports) > 0 {
			out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
		}
	}
	for _, c := range p.Spec.InitContainers {
		if len(c.Ports) > 0 && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out.Spec.InitContainers = append(out.Spec.InitContainers, corev1.Container{Name: c.Name, Ports: c.Ports, RestartPolicy: c.RestartPolicy})
		}
	}
	return out, nil
}

// transformNamespace keeps name, labels and the enforcement-mode
// annotation.
func transformNamespace(obj any) (any, error) {
	n, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{TypeMeta: n.TypeMeta, ObjectMeta: minimalMeta(&n.ObjectMeta, policy.AnnotationEnforcement)}, nil
}

// transformPolicy keeps name, namespace and the spec.
func transformPolicy(obj any) (any, error) {
	np, ok := obj.(*networkingv1.NetworkPolicy)
	if !ok {
		return obj, nil
	}
	return &networkingv1.NetworkPolicy{TypeMeta: np.TypeMeta, ObjectMeta: minimalMeta(&np.ObjectMeta), Spec: np.Spec}, nil
}

// transformNode keeps the name and the addresses (the node's own IPs).
func transformNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{TypeMeta: n.TypeMeta, ObjectMeta: minimalMeta(&n.ObjectMeta), Status: corev1.NodeStatus{Addresses: n.Status.Addresses}}, nil
}

// relevantChange reports whether an update changed anything a transform
// keeps, apart from the resource version: status churn (conditions,
// container states) reaches the cache as updates that change nothing the
// compiler sees, and must not cost a compilation.
func relevantChange(oldObj, newObj any) bool {
	strip := func(obj any) any {
		switch o := obj.(type) {
		case *corev1.Pod:
			c := *o
			c.ResourceVersion = ""
			return &c
		case *corev1.Namespace:
			c := *o
			c.ResourceVersion = ""
			return &c
		case *networkingv1.NetworkPolicy:
			c := *o
			c.ResourceVersion = ""
			return &c
		case *corev1.Node:
			c := *o
			c.ResourceVersion = ""
			return &c
		}
		return obj
	}
	return !reflect.DeepEqual(strip(oldObj), strip(newObj))
}
