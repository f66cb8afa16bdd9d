// Package bpf holds Palisade's kernel datapath: the tcx programs that drop,
// on each pod's host-side veth, whatever no NetworkPolicy allows, and the
// maps through which the enforcer tells them what is allowed. The C sources
// (palisade.c, include/) are compiled by bpf2go; the object and its Go
// bindings (palisade_bpfel.go) are committed, so building Palisade needs no
// C toolchain. include/abi.h is the contract with Go; abi_test.go pins it.
//
// Attach PalisadeObjects.PalisadeFromPod at tcx ingress and PalisadeToPod
// at tcx egress of the host-side interface: from_pod judges the pod's
// egress, to_pod its ingress. Both find the pod by skb->ifindex in the
// endpoints map; an interface without an entry is not Palisade's and its
// packets pass untouched. A program returns TC_ACT_SHOT to drop and
// TC_ACT_UNSPEC (tcx "next") for everything else.
//
// What Go must keep true when writing the maps:
//   - Keys are compared as bytes: padding must be zero; NewIPKey and
//     NewPolicyRangeKeys build the two encoded keys.
//   - An endpoint's revision must change whenever anything that can change
//     one of its verdicts changes (its flags, its policy entries, the
//     identity of any address). Tracked flows carry the revision they were
//     judged at and are judged again on their next packet after a change.
//     Take revisions from one node-wide counter so that an interface index
//     reused by a new pod never matches an old flow's revision.
//   - Identity 2 (host) is the node's addresses: ingress from it is always
//     allowed; egress to it needs a policy entry like any peer. Addresses
//     in no ip_identity prefix are identity 1 (world).
//   - service_cidrs defers egress to those ranges (skb->mark |= DeferMark)
//     to a hook after DNAT. Leave it empty unless such a hook is attached:
//     deferred flows are not judged here.
package bpf
