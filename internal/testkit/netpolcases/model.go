package netpolcases

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Model is the cluster a case runs against, changed step by step: the
// namespaces x, y and z and the case's pods, as upstream's
// initializeResources creates them.
type Model struct {
	Cluster *policy.Cluster
	// Pods are the case's pods, in the case's order.
	Pods []policy.PodRef
	Addr map[policy.PodRef]netip.Addr
}

// NewModel builds the cluster of c with addresses of fam.
func NewModel(c *Case, fam Family) (*Model, error) {
	m := &Model{Cluster: &policy.Cluster{}, Addr: map[policy.PodRef]netip.Addr{}}
	for _, ns := range []string{"x", "y", "z"} {
		m.Cluster.Namespaces = append(m.Cluster.Namespaces, corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{corev1.LabelMetadataName: ns}},
		})
	}
	for _, p := range c.Pods {
		ns, name, ok := strings.Cut(p, "/")
		if !ok || len(ns) != 1 || len(name) != 1 || ns[0] < 'x' || ns[0] > 'z' || name[0] < 'a' || name[0] > 'z' {
			return nil, fmt.Errorf("case %s: pod %q: want <x|y|z>/<letter>", c.File, p)
		}
		a := fam.Addr(int(ns[0]-'x')+1, int(name[0]-'a')+1)
		var ports []corev1.ContainerPort
		for _, proto := range c.Protocols {
			for _, port := range c.Ports {
				ports = append(ports, corev1.ContainerPort{
					Name: fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(proto))), Protocol: proto, ContainerPort: port,
				})
			}
		}
		m.Cluster.Pods = append(m.Cluster.Pods, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"pod": name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agnhost", Ports: ports}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: a.String(), PodIPs: []corev1.PodIP{{IP: a.String()}}},
		})
		ref := policy.PodRef{Namespace: ns, Name: name}
		m.Pods = append(m.Pods, ref)
		m.Addr[ref] = a
	}
	return m, nil
}

// Apply makes a step's changes to the cluster.
func (m *Model) Apply(st *Step) error {
	for _, d := range st.DeletePolicies {
		m.Cluster.Policies = slices.DeleteFunc(m.Cluster.Policies, func(np networkingv1.NetworkPolicy) bool {
			return d == "*" || d == np.Namespace+"/"+np.Name
		})
	}
	for ref, add := range st.PodLabels {
		i := slices.IndexFunc(m.Cluster.Pods, func(p corev1.Pod) bool { return p.Namespace+"/"+p.Name == ref })
		if i < 0 {
			return fmt.Errorf("podLabels: no pod %s", ref)
		}
		for k, v := range add {
			m.Cluster.Pods[i].Labels[k] = v
		}
	}
	for ns, add := range st.NamespaceLabels {
		i := slices.IndexFunc(m.Cluster.Namespaces, func(n corev1.Namespace) bool { return n.Name == ns })
		if i < 0 {
			return fmt.Errorf("namespaceLabels: no namespace %s", ns)
		}
		for k, v := range add {
			m.Cluster.Namespaces[i].Labels[k] = v
		}
	}
	if st.Apply == "" {
		return nil
	}
	text, err := m.expand(st.Apply)
	if err != nil {
		return err
	}
	c, err := policy.ReadManifests("apply", strings.NewReader(text))
	if err != nil {
		return err
	}
	if len(c.Ignored) > 0 || len(c.Pods) > 0 || len(c.Namespaces) > 0 {
		return fmt.Errorf("apply: want only NetworkPolicies, got %d namespaces, %d pods, %d others", len(c.Namespaces), len(c.Pods), len(c.Ignored))
	}
	for _, np := range c.Policies {
		m.Cluster.Policies = slices.DeleteFunc(m.Cluster.Policies, func(o networkingv1.NetworkPolicy) bool {
			return o.Namespace == np.Namespace && o.Name == np.Name
		})
		m.Cluster.Policies = append(m.Cluster.Policies, np)
	}
	return nil
}

var placeholder = regexp.MustCompile(`\$\{[a-z]+:[a-z]/[a-z]\}`)

// expand replaces the address placeholders of an apply text.
func (m *Model) expand(text string) (string, error) {
	var bad error
	out := placeholder.ReplaceAllStringFunc(text, func(s string) string {
		kind, pod, _ := strings.Cut(s[2:len(s)-1], ":")
		ns, name, _ := strings.Cut(pod, "/")
		a, ok := m.Addr[policy.PodRef{Namespace: ns, Name: name}]
		if !ok {
			bad = fmt.Errorf("placeholder %s: no pod %s", s, pod)
			return s
		}
		switch kind {
		case "ip":
			return a.String()
		case "host":
			return netip.PrefixFrom(a, a.BitLen()).String()
		case "large":
			return netip.PrefixFrom(a, 4).Masked().String()
		}
		bad = fmt.Errorf("placeholder %s: unknown kind", s)
		return s
	})
	return out, bad
}
