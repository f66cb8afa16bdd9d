// Package check answers "which pod can reach which" offline, from
// manifests, for CI: it compiles Namespaces, Pods and NetworkPolicies with
// enforcer/policy and judges one probe packet per ordered pod pair and
// port.
//
// It exists so that a policy change can be proven before it reaches a
// cluster, and so that the Go model and the kernel program are held to the
// same answers: a probe is judged either by the model (policy.Decide) or
// by the real BPF programs run on a crafted packet (BPF_PROG_TEST_RUN) with
// the compiled state in real kernel maps. Both engines return the same
// policy.Verdict, so reasons, explanations and reachability files are
// engine-neutral and any disagreement between them is a bug.
package check
