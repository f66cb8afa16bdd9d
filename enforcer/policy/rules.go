package policy

import "slices"

// peerRef is one peer identity a rule's peer clause matches; w is set for
// workload identities, whose named ports egress rules resolve.
type peerRef struct {
	id NumericIdentity
	w  *workload
}

// build emits rules, endpoints and the rest of the State.
func (cp *compiler) build() *State {
	st := &State{}
	byNS := map[string][]*workload{}
	var all, locals []*workload
	for _, k := range sortedKeys(cp.workloads) {
		w := cp.workloads[k]
		all = append(all, w)
		byNS[w.ns] = append(byNS[w.ns], w)
		if w.local {
			locals = append(locals, w)
		}
	}
	sourceID := make(map[string]uint32, len(cp.sources))
	for _, s := range cp.sources {
		sourceID[s.key()] = s.ID
	}
	peers := &peerMatcher{cp: cp, all: all, byNS: byNS, cache: map[string][]peerRef{}}
	rules := map[RuleKey][]uint32{}
	add := func(k RuleKey, src uint32) {
		if s := rules[k]; len(s) == 0 || s[len(s)-1] != src {
			rules[k] = append(s, src)
		}
	}
	for _, p := range cp.policies {
		if !p.valid {
			continue
		}
		var selected []*workload
		for _, w := range byNS[p.ref.Namespace] {
			if w.local && p.selects(w) {
				selected = append(selected, w)
			}
		}
		if len(selected) == 0 {
			continue
		}
		for _, dir := range []Direction{Ingress, Egress} {
			for ri := range p.rules[dir] {
				r := &p.rules[dir][ri]
				type clause struct {
					src   uint32
					peers []peerRef
				}
				var clauses []clause
				if r.allPeers {
					src := RuleSource{Policy: p.ref, Direction: dir, Rule: r.index, Peer: -1}
					clauses = append(clauses, clause{sourceID[src.key()], []peerRef{{id: PeerAny}}})
				}
				perPod := false
				for _, port := range r.ports {
					perPod = perPod || dir == Egress && port.name != ""
				}
				for pi := range r.peers {
					src := RuleSource{Policy: p.ref, Direction: dir, Rule: r.index, Peer: r.peers[pi].index}
					clauses = append(clauses, clause{sourceID[src.key()], peers.match(p.ref.Namespace, &r.peers[pi], perPod)})
				}
				for _, local := range selected {
					for _, c := range clauses {
						for _, peer := range c.peers {
							if r.allPorts {
								add(RuleKey{Local: local.id, Peer: peer.id, Direction: dir}, c.src)
								continue
							}
							for _, port := range r.ports {
								cp.emitPort(add, all, local, peer, dir, port, c.src)
							}
						}
					}
				}
			}
		}
	}

	st.Rules = make([]Rule, 0, len(rules))
	for k, src := range rules {
		slices.Sort(src)
		st.Rules = append(st.Rules, Rule{RuleKey: k, Sources: slices.Compact(src)})
	}
	slices.SortFunc(st.Rules, func(a, b Rule) int { return compareRuleKey(a.RuleKey, b.RuleKey) })

	st.RuleSources = slices.Clone(cp.sources)
	slices.SortFunc(st.RuleSources, func(a, b RuleSource) int { return cmpNum(a.ID, b.ID) })

	st.Identities = cp.identities(all)
	st.IPs = cp.ipEntries()
	st.Endpoints = cp.endpoints(locals, st.Rules)
	st.idx = newStateIndex(st)
	return st
}

// emitPort adds the rule key(s) one port clause yields. A named port is
// resolved against the destination pod: the local one for ingress, the
// peer for egress, where "any peer" and "any pod" mean every pod that has
// the port (nothing outside the cluster has named ports), one rule each.
func (cp *compiler) emitPort(add func(RuleKey, uint32), all []*workload, local *workload, peer peerRef, dir Direction, port parsedPort, src uint32) {
	k := RuleKey{Local: local.id, Peer: peer.id, Direction: dir, Protocol: port.proto, Port: port.port, EndPort: port.endPort}
	if port.name == "" {
		add(k, src)
		return
	}
	if dir == Ingress {
		if n, ok := local.namedPort(port.name, port.proto); ok {
			k.Port = n
			add(k, src)
		}
		return
	}
	switch {
	case peer.w != nil:
		if n, ok := peer.w.namedPort(port.name, port.proto); ok {
			k.Port = n
			add(k, src)
		}
	case peer.id == PeerAny || peer.id == PeerAnyPod:
		for _, w := range all {
			if n, ok := w.namedPort(port.name, port.proto); ok {
				k.Peer, k.Port = w.id, n
				add(k, src)
			}
		}
	}
}
