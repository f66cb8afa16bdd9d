package policy

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testNS returns a namespace with labels given as "k=v" pairs.
func testNS(name string, kv ...string) corev1.Namespace {
	return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: pairs(kv)}}
}

// testPod returns a running pod with addresses ips (comma-separated) and
// labels as "k=v" pairs.
func testPod(ns, name, ips string, kv ...string) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: pairs(kv)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, ip := range strings.Split(ips, ",") {
		if ip != "" {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
	}
	if len(p.Status.PodIPs) > 0 {
		p.Status.PodIP = p.Status.PodIPs[0].IP
	}
	return p
}

func withPorts(p corev1.Pod, ports ...corev1.ContainerPort) corev1.Pod {
	p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, ports...)
	return p
}

func pairs(kv []string) map[string]string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return m
}

// testCluster builds a cluster from objects and NetworkPolicy YAML.
func testCluster(t testing.TB, namespaces []corev1.Namespace, pods []corev1.Pod, policyYAML string) *Cluster {
	t.Helper()
	c := &Cluster{Namespaces: namespaces, Pods: pods}
	if policyYAML != "" {
		pc, err := ReadManifests("policies", strings.NewReader(policyYAML))
		if err != nil {
			t.Fatal(err)
		}
		c.Policies = pc.Policies
	}
	return c
}

func mustCompile(t testing.TB, c *Cluster, opts Options) *State {
	t.Helper()
	s, err := Compile(c, opts)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

func ep(ip string) Endpoint { return Endpoint{IP: netip.MustParseAddr(ip)} }
