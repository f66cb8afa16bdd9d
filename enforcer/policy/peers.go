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

func (m *peerMatcher) match(policyNS string, p *parsedPeer) []peerRef {
	var key string
	if p.block != nil {
		key = "block\x00" + p.block.key
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
