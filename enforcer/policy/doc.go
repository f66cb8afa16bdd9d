// Package policy compiles Kubernetes Namespaces, Pods and
// networking.k8s.io/v1 NetworkPolicies into the state a node's datapath
// enforces: numeric security identities, IP→identity prefixes, per-pod
// endpoint flags and identity-keyed allow rules.
//
// It exists apart from the datapath so that the exact NetworkPolicy
// semantics can be tested without a kernel or an API server, and so that the
// offline checker (palisade check) and the enforcer judge traffic from the
// same compiled State: Decide evaluates a packet against a State the way the
// BPF program does, and nothing else.
//
// Everything a policy can observe about a pod is part of its identity: its
// namespace and the namespace labels any namespaceSelector reads, its
// identity labels plus every label key any podSelector reads, the numbers of
// the named ports policies refer to, and which ipBlocks contain its address.
// Two pods with one identity are therefore indistinguishable to every
// policy, which is what makes identity-keyed rules exact.
package policy
