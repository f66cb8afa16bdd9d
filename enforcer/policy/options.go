package policy

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// DefaultIdentityLabels are the labeling standard's default identity keys.
var defaultIdentityLabels = []string{"app", "tier", "env"}

// DefaultIdentityLabels returns the labeling standard's default identity
// label keys.
func DefaultIdentityLabels() []string { return append([]string(nil), defaultIdentityLabels...) }

// Options tune a compilation.
type Options struct {
	// IdentityLabels are the pod label keys that always form part of an
	// identity (the labeling standard's set). Nil means
	// DefaultIdentityLabels; label keys that policies select on are added
	// regardless.
	IdentityLabels []string
	// NodeName restricts endpoints (and so rules) to the pods scheduled on
	// that node. Empty means every pod is local, as the offline checker
	// needs.
	NodeName string
	// HostIPs are the node's own addresses; they resolve to IdentityHost.
	HostIPs []netip.Addr
	// Allocator keeps identity and rule-source numbers stable across
	// compilations. Nil numbers everything afresh in sorted order.
	Allocator *IdentityAllocator
}

// Cluster is the compiler's input: plain API objects. Order does not
// matter.
type Cluster struct {
	Namespaces []corev1.Namespace
	Pods       []corev1.Pod
	Policies   []networkingv1.NetworkPolicy
	// Ignored lists documents the manifest loader read but does not
	// compile ("file: document N: Kind ns/name"); Compile ignores it.
	Ignored []string
	// Sources says where the manifest loader read each object: "file:
	// document N", with " item I" for an item of a List. Nil for objects
	// that did not come from manifests; Compile ignores it, Annotate
	// uses it to name the file in compile errors.
	Sources map[ObjectRef]string
}
