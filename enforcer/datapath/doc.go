// Package datapath is the enforcer's kernel edge: it turns a compiled
// policy.State into the contents of the bpf package's maps, keeps those
// maps and the pods' tcx attachments in step with it, and reads back what
// the programs report (flow events, counters).
//
// It exists apart from the compiler so that everything that can be
// decided without a kernel (which map entries a State needs, and in which
// order to write them) stays pure and testable, while everything that
// needs root (loading, pinning, attaching, netlink) lives in one place
// that degrades to one clear error when the node cannot run it.
//
// Three properties drive its shape:
//   - Enforcement never lapses. Maps and links are pinned under
//     Options.PinDir; a restarted enforcer adopts them, and replaced maps
//     only go live, with an atomic link update, once they are filled.
//   - No moment allows what neither the old nor the new State allows.
//     Sync writes in two phases, tighten then loosen; see plan.go.
//   - Failure closes. A full map or a failed write ends a Sync with an
//     error where the plan stopped: the maps then allow no more than the
//     old State (while tightening) or the new one (while loosening).
package datapath
