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
//     until after the node's DNAT: to_pod judges a marked packet as its
//     source pod's egress towards the backend before the pod's own
//     ingress, and PalisadeUplink, attached at tcx egress of every
//     interface towards other nodes, does the same for remote backends.
//     The source is found by address in endpoint_ips, which must hold
//     every enforced pod's addresses; a masqueraded source (a pod reaching
//     itself through its service, masqueradeAll) is recovered from the
//     kernel's conntrack (nf_conntrack kfuncs, optional). A marked packet
//     whose source is still unknown is dropped. Replies pass through a deferred entry only once
//     the post-DNAT judgement confirmed it (or where the pod's egress is
//     not isolated). Leave service_cidrs empty unless the uplinks are
//     attached: traffic to a remote backend would otherwise go unjudged
//     and its replies be dropped.
//   - TCP: only a SYN without ACK opens a flow. Any other TCP packet that
//     misses conntrack is dropped where its direction is isolated and
//     passes untracked where it is not, so conntrack must survive
//     restarts (it is pinned) for established connections to survive.
package bpf
