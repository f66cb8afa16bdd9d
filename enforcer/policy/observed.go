package policy

import (
	"cmp"
	"net/netip"
	"slices"
)

// Observed is what a running datapath holds, in numbers only: its maps
// keep identities and rule ids, never the keys they were allocated for.
// A restarted enforcer reads it from the pinned maps it adopts.
type Observed struct {
	// IPs maps each prefix of the IP→identity map to its identity.
	IPs map[netip.Prefix]NumericIdentity
	// Rules maps each allow entry to the rule id it reports. A single
	// port or a whole protocol is a RuleKey with EndPort 0; a port range
	// is held as aligned power-of-two blocks, each a RuleKey spanning
	// [Port, EndPort] (EndPort equal to Port for a one-port block).
	Rules map[RuleKey]uint32
}

// NewIdentityAllocatorFromObserved returns an allocator that, compiling c
// under opts, gives every identity and rule source the number obs shows
// the datapath already uses for it, so that a restarted enforcer's first
// Sync rewrites nothing it does not have to. The first compilation's
// numbers otherwise depend only on the sorted keys, while the running
// datapath's depend on its whole history.
//
// The maps hold numbers, so the keys come from c: a prefix of c's State
// whose observed number falls in the range of its identity's kind seeds
// that identity's key, in prefix order. Where observations disagree the
// first one (by prefix) wins and the rest are dropped: a key seen with
// two numbers keeps the first, a number seen for two keys stays with the
// first key, and the others get fresh numbers. Rule ids seed the rule
// sources they must belong to (see seedSources). Every observed number,
// kept or not, is passed before fresh numbers are handed out, so none is
// soon reused for another key while flows judged under it may be tracked.
//
// opts.Allocator is ignored. A cluster that cannot be compiled seeds
// nothing; Compile reports why when the allocator is used.
func NewIdentityAllocatorFromObserved(c *Cluster, opts Options, obs Observed) *IdentityAllocator {
	a := NewIdentityAllocator(nil)
	if len(obs.IPs) == 0 && len(obs.Rules) == 0 {
		return a // a first start: nothing to keep
	}
	opts.Allocator = nil
	st, _ := Compile(c, opts)
	if st == nil {
		return a
	}
	ips := make(map[netip.Prefix]NumericIdentity, len(obs.IPs))
	for p, n := range obs.IPs {
		p = p.Masked()
		if prev, dup := ips[p]; !dup || n < prev {
			ips[p] = n // unmasked twins: keep the lower, whatever map order
		}
	}
	taken := map[uint32]bool{}
	for _, e := range st.IPs {
		n, ok := ips[e.Prefix.Masked()]
		if !ok {
			continue
		}
		if id, ok := st.Identity(e.Identity); ok {
			if num := a.numbererOf(id.Kind); num != nil {
				num.claim(id.Key, uint32(n), taken)
			}
		}
	}
	a.seedSources(st, obs.Rules)
	for _, n := range ips {
		a.workload.reserve(uint32(n))
		a.cidr.reserve(uint32(n))
	}
	for _, id := range obs.Rules {
		a.sources.reserve(id)
	}
	return a
}

func (a *IdentityAllocator) numbererOf(k IdentityKind) *numberer {
	switch k {
	case KindWorkload:
		return &a.workload
	case KindCIDR:
		return &a.cidr
	}
	return nil
}

// seedSources recovers rule-source numbers from rule ids. A rule reports
// the lowest number among its sources, so an observed rule id belongs to
// one of the sources of the rule compiled for that key: to the only one
// when the rule has one source, or when all but one of its sources are
// known to hold other numbers. Fresh numbers come above every observed
// one, so a rule whose reported source is seeded reports it again.
// Single-source rules go first: their evidence is exact.
func (a *IdentityAllocator) seedSources(st *State, observed map[RuleKey]uint32) {
	if len(observed) == 0 {
		return
	}
	type clue struct {
		id   uint32
		keys []string
	}
	var clues []clue
	for _, r := range st.Rules {
		k, ok := a.renumber(st, r.RuleKey)
		if !ok {
			continue
		}
		id, ok := observedRuleID(observed, k)
		if !ok {
			continue
		}
		c := clue{id: id}
		for _, s := range r.Sources {
			if src, ok := st.RuleSource(s); ok {
				c.keys = append(c.keys, src.key())
			}
		}
		clues = append(clues, c)
	}
	slices.SortStableFunc(clues, func(x, y clue) int { return cmp.Compare(len(x.keys), len(y.keys)) })
	taken := map[uint32]bool{}
	for progress := true; progress; {
		progress = false
		rest := clues[:0]
		for _, c := range clues {
			var unknown []string
			explained := false
			for _, k := range c.keys {
				id, ok := a.sources.ids[k]
				explained = explained || ok && id == c.id
				if !ok {
					unknown = append(unknown, k)
				}
			}
			switch {
			case explained || len(unknown) == 0 || taken[c.id]:
				// Satisfied, or contradicted: nothing to learn.
			case len(unknown) == 1:
				a.sources.claim(unknown[0], c.id, taken)
				progress = true
			default:
				rest = append(rest, c)
			}
		}
		clues = rest
	}
}

// renumber translates a rule key of st (numbered afresh) into the seeded
// numbers; ok is false when an identity it names was not seeded.
func (a *IdentityAllocator) renumber(st *State, k RuleKey) (RuleKey, bool) {
	var ok bool
	if k.Local, ok = a.seeded(st, k.Local); !ok {
		return k, false
	}
	if k.Peer, ok = a.seeded(st, k.Peer); !ok {
		return k, false
	}
	return k, true
}

func (a *IdentityAllocator) seeded(st *State, n NumericIdentity) (NumericIdentity, bool) {
	id, ok := st.Identity(n)
	if !ok {
		return n, n == PeerAny || n == PeerAnyPod || n == PeerAnyIPv4 || n == PeerAnyIPv6
	}
	num := a.numbererOf(id.Kind)
	if num == nil {
		return n, true // reserved numbers never change
	}
	s, ok := num.ids[id.Key]
	return NumericIdentity(s), ok
}

// observedRuleID returns the rule id the datapath holds for k: the entry
// of a single port or protocol, or for a range the first block of its
// split, which starts at Port and is the largest aligned block there.
func observedRuleID(observed map[RuleKey]uint32, k RuleKey) (uint32, bool) {
	if k.EndPort == 0 || k.EndPort == k.Port {
		k.EndPort = 0
		id, ok := observed[k]
		return id, ok
	}
	if k.Port == 0 || k.EndPort < k.Port {
		return 0, false
	}
	for size := uint32(1) << 16; size > 0; size >>= 1 {
		start := uint32(k.Port)
		if start%size == 0 && start+size-1 <= uint32(k.EndPort) {
			k.EndPort = uint16(start + size - 1)
			id, ok := observed[k]
			return id, ok
		}
	}
	return 0, false
}
