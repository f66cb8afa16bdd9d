// Package enforcer is the node agent behind `palisade enforcer`: it
// watches the cluster's Pods, Namespaces and NetworkPolicies, compiles
// them for its node (enforcer/policy) and keeps the kernel datapath in step
// (enforcer/datapath); it turns what the programs report into flow records
// and Prometheus metrics.
//
// It exists as the one place where the pure compiler, the kernel edge and
// the API server meet, so that each of those stays testable alone. Its
// own decisions are few and deliberate:
//   - Cache little. Every node watches every pod (any pod can be a peer),
//     so the caches keep only the fields the compiler reads.
//   - Batch changes. A burst of watch events (a rollout, a namespace
//     relabelled) becomes one compilation and one Sync after a short
//     debounce; the time from the first event to the Sync that enforces
//     it is measured.
//   - Apply what compiles. Invalid policies are logged and counted, but
//     the State is applied anyway: the compiler keeps their pods isolated
//     without allowing anything from them (fail closed).
//   - Retry, never guess. A failed Sync, or a pod whose interface is not
//     there yet, is retried with backoff; until then the datapath enforces
//     no more than the old or the new State allows.
//   - Leave only when uninstalled. A stopping agent keeps its pins for the
//     next one unless its own DaemonSet is gone or being deleted; if the
//     API server cannot say, the pins stay (uninstall.go).
package enforcer
