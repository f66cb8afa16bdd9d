package enforcer

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

func fullPod() *corev1.Pod {
	always := corev1.ContainerRestartPolicyAlways
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "shop", UID: "u1", ResourceVersion: "7",
			Labels:          map[string]string{"app": "web", "pod-template-hash": "abc"},
			Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}", policy.AnnotationSourceCIDRs: "10.9.0.0/16"},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			OwnerReferences: []metav1.OwnerReference{{Name: "web-abc"}},
		},
		Spec: corev1.PodSpec{
			NodeName: "node1",
			InitContainers: []corev1.Container{
				{Name: "migrate", Image: "m", Ports: []corev1.ContainerPort{{Name: "ignored", ContainerPort: 1}}},
				{Name: "proxy", Image: "p", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 15001}}},
			},
			Containers: []corev1.Container{
				{Name: "app", Image: "web:1", Env: []corev1.EnvVar{{Name: "SECRET", Value: "x"}}, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
				{Name: "logger", Image: "l"},
			},
			Volumes: []corev1.Volume{{Name: "v"}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      "10.0.0.1",
			PodIPs:     []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			HostIP:     "192.168.0.1",
		},
	}
}

func TestTransformsKeepOnlyWhatTheCompilerReads(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	port := intstr.FromInt32(80)
	for _, tc := range []struct {
		name string
		in   any
		want any
	}{
		{
			name: "pod",
			in:   fullPod(),
			want: &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1", ResourceVersion: "7", Labels: map[string]string{"app": "web", "pod-template-hash": "abc"},
					Annotations: map[string]string{policy.AnnotationSourceCIDRs: "10.9.0.0/16"}},
				Spec: corev1.PodSpec{
					NodeName:       "node1",
					InitContainers: []corev1.Container{{Name: "proxy", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 15001}}}},
					Containers:     []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
				},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}},
			},
		},
		{
			name: "host-network pod",
			in:   &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kp"}, Spec: corev1.PodSpec{HostNetwork: true, NodeName: "n"}},
			want: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kp"}, Spec: corev1.PodSpec{HostNetwork: true, NodeName: "n"}},
		},
		{
			name: "namespace keeps only the enforcement annotation",
			in: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"env": "prod"},
				Annotations:   map[string]string{policy.AnnotationEnforcement: "audit", "other": "x"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}},
			want: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"env": "prod"},
				Annotations: map[string]string{policy.AnnotationEnforcement: "audit"}}},
		},
		{
			name: "namespace without annotations",
			in:   &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Annotations: map[string]string{"x": "y"}}},
			want: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}},
		},
		{
			name: "network policy keeps its spec",
			in: &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop", Annotations: map[string]string{"a": "b"}, ManagedFields: []metav1.ManagedFieldsEntry{{}}},
				Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}}}}},
			want: &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"},
				Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}}}}},
		},
		{
			name: "node keeps its addresses",
			in: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"k": "v"}}, Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24"},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}}, Capacity: corev1.ResourceList{}}},
			want: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"k": "v"}},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var transform toolscache.TransformFunc
			switch tc.in.(type) {
			case *corev1.Pod:
				transform = transformPod
			case *corev1.Namespace:
				transform = transformNamespace
			case *networkingv1.NetworkPolicy:
				transform = transformPolicy
			case *corev1.Node:
				transform = transformNode
			}
			got, err := transform(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("transformed:\n%#v\nwant:\n%#v", got, tc.want)
			}
			again, err := transform(got)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("transform is not idempotent: %#v, %v", again, err)
			}
		})
	}
}

// A deleted-object tombstone passes every transform untouched.
func TestTransformsPassTombstones(t *testing.T) {
	tomb := toolscache.DeletedFinalStateUnknown{Key: "shop/web", Obj: fullPod()}
	for _, tr := range []toolscache.TransformFunc{transformPod, transformNamespace, transformPolicy, transformNode} {
		got, err := tr(tomb)
		if err != nil || !reflect.DeepEqual(got, tomb) {
			t.Errorf("tombstone became %#v, %v", got, err)
		}
	}
}

// The transformed pod compiles exactly as the full one does.
func TestTransformedPodCompilesTheSame(t *testing.T) {
	np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
			{Port: new(intstr.FromString("http"))}, {Port: new(intstr.FromString("proxy"))}}}}}}
	ns := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	small, _ := transformPod(fullPod())
	compile := func(p *corev1.Pod) *policy.State {
		st, err := policy.Compile(&policy.Cluster{Namespaces: []corev1.Namespace{ns}, Pods: []corev1.Pod{*p}, Policies: []networkingv1.NetworkPolicy{np}},
			policy.Options{NodeName: "node1"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	full, reduced := compile(fullPod()), compile(small.(*corev1.Pod))
	if !full.Equal(reduced) {
		t.Errorf("states differ:\nfull    %+v\nreduced %+v", full, reduced)
	}
	if len(reduced.Rules) == 0 {
		t.Error("the named ports compiled to no rule")
	}
}

func TestRelevantChange(t *testing.T) {
	base, _ := transformPod(fullPod())
	p := base.(*corev1.Pod)
	bumped := p.DeepCopy()
	bumped.ResourceVersion = "8"
	relabelled := bumped.DeepCopy()
	relabelled.Labels = map[string]string{"app": "db"}
	moved := bumped.DeepCopy()
	moved.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.2"}}
	finished := bumped.DeepCopy()
	finished.Status.Phase = corev1.PodSucceeded
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "1"}}
	nsAudit := ns.DeepCopy()
	nsAudit.ResourceVersion = "2"
	nsAudit.Annotations = map[string]string{policy.AnnotationEnforcement: "audit"}
	nsBumped := ns.DeepCopy()
	nsBumped.ResourceVersion = "3"
	for _, tc := range []struct {
		name     string
		old, new any
		want     bool
	}{
		{"status churn only", p, bumped, false},
		{"labels", p, relabelled, true},
		{"addresses", p, moved, true},
		{"phase", p, finished, true},
		{"namespace resync", ns, nsBumped, false},
		{"namespace to audit", ns, nsAudit, true},
	} {
		if got := relevantChange(tc.old, tc.new); got != tc.want {
			t.Errorf("%s: relevantChange = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNodeAddresses(t *testing.T) {
	n := &corev1.Node{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "node1"},
		{Type: corev1.NodeInternalIP, Address: "192.168.0.9"},
		{Type: corev1.NodeExternalIP, Address: "203.0.113.4"},
		{Type: corev1.NodeInternalIP, Address: "fd00::9"},
		{Type: corev1.NodeInternalIP, Address: "192.168.0.9"},
		{Type: corev1.NodeInternalDNS, Address: "node1.internal"},
		{Type: corev1.NodeInternalIP, Address: "not-an-ip"},
	}}}
	want := []netip.Addr{netip.MustParseAddr("192.168.0.9"), netip.MustParseAddr("203.0.113.4"), netip.MustParseAddr("fd00::9")}
	if got := nodeAddresses(n); !reflect.DeepEqual(got, want) {
		t.Errorf("nodeAddresses = %v, want %v", got, want)
	}
}
