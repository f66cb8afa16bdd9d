package policy

import (
	"slices"

	"k8s.io/apimachinery/pkg/labels"
)

// peerMatcher finds the identities a peer clause matches, caching by
// selector text since policies often share peers.
type peerMatcher struct {
	cp    *compiler
	all   []*workload
	byNS  map[string][]*workload
	cache map[string][]peerRef
}

// match lists the identities p matches, or a wildcard standing for them.
// perPod asks for the identities themselves where a family wildcard would
// do (an egress rule's named port resolves against each peer pod).
func (m *peerMatcher) match(policyNS string, p *parsedPeer, perPod bool) []peerRef {
	var key string
	if p.block != nil {
		key = "block\x00" + p.block.key
		if perPod {
			key += "\x00per-pod"
		}
	} else {
		ns := "self\x00" + policyNS
		if p.nsSel != nil {
			ns = "sel\x00" + p.nsSel.String()
		}
		pod := "nil"
		if p.podSel != nil {
			pod = "sel\x00" + p.podSel.String()
		}
		key = ns + "\x00" + pod
	}
	if out, ok := m.cache[key]; ok {
		return out
	}
	var out []peerRef
	if p.selectsEveryPod() {
		// One wildcard entry instead of one per identity: O(rules), not
		// O(identities × ports).
		out = []peerRef{{id: PeerAnyPod}}
		m.cache[key] = out
		return out
	}
	if p.block != nil && !perPod && p.block.everyAddress() {
		// Every address of the family: one wildcard, and the host's own
		// entry (the wildcard leaves the host out; the block admits it
		// only if it holds all the host's addresses).
		out = append(out, peerRef{id: FamilyWildcard(p.block.cidr.Addr())})
		if m.cp.hostInBlock(p.block) {
			out = append(out, peerRef{id: IdentityHost})
		}
		m.cache[key] = out
		return out
	}
	if p.block != nil {
		if m.cp.hostInBlock(p.block) {
			out = append(out, peerRef{id: IdentityHost})
		}
		for _, w := range m.all {
			if w.hasBlock(p.block) {
				out = append(out, peerRef{id: w.id, w: w})
			}
		}
		for _, k := range sortedKeys(m.cp.cidrs) {
			c := m.cp.cidrs[k]
			if slices.Contains(c.blocks, p.block) {
				out = append(out, peerRef{id: c.id})
			}
		}
	} else {
		candidates := m.all
		if p.nsSel == nil {
			candidates = m.byNS[policyNS]
		}
		nsOK := map[string]bool{}
		for _, w := range candidates {
			if p.nsSel != nil {
				ok, seen := nsOK[w.ns]
				if !seen {
					ok = p.nsSel.Matches(labels.Set(w.nsLabels))
					nsOK[w.ns] = ok
				}
				if !ok {
					continue
				}
			}
			if p.podSel == nil || p.podSel.Matches(w.labels) {
				out = append(out, peerRef{id: w.id, w: w})
			}
		}
	}
	m.cache[key] = out
	return out
}

// selectsEveryPod reports whether the clause matches every pod of every
// namespace and nothing else: namespaceSelector {} with no or an empty
// podSelector (an ipBlock is never that: it names addresses, not pods).
func (p *parsedPeer) selectsEveryPod() bool {
	return p.block == nil && p.nsSel != nil && p.nsSel.Empty() && (p.podSel == nil || p.podSel.Empty())
}

// everyAddress reports whether the block is all of its family: 0.0.0.0/0
// or ::/0 with no except.
func (b *ipBlock) everyAddress() bool {
	return b.cidr.Bits() == 0 && len(b.except) == 0
}

// hostInBlock reports whether an ipBlock allows the host identity. The
// host is one identity for all the node's addresses, so a block counts
// only if it contains every one of them: never more than the block allows.
func (cp *compiler) hostInBlock(b *ipBlock) bool {
	if len(cp.hostIPs) == 0 {
		return false
	}
	for _, h := range cp.hostIPs {
		if !b.contains(h) {
			return false
		}
	}
	return true
}
