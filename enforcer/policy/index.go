package policy

import (
	"net/netip"
	"slices"
)

// stateIndex holds the lookups Decide needs, derived from a State.
type stateIndex struct {
	prefixes map[netip.Prefix]NumericIdentity
	// bits4 and bits6: the prefix lengths present, longest first.
	bits4, bits6 []int
	endpoints    map[netip.Addr]int
	rules        map[RuleKey]int
	ranges       map[RuleKey][]rangeEntry // by key with Port and EndPort zeroed
}

type rangeEntry struct {
	port, end uint16
	rule      int
}

func newStateIndex(s *State) *stateIndex {
	x := &stateIndex{
		prefixes:  make(map[netip.Prefix]NumericIdentity, len(s.IPs)),
		endpoints: map[netip.Addr]int{},
		rules:     make(map[RuleKey]int, len(s.Rules)),
		ranges:    map[RuleKey][]rangeEntry{},
	}
	seen4, seen6 := map[int]bool{}, map[int]bool{}
	for _, e := range s.IPs {
		p := e.Prefix.Masked()
		if p.Addr().Is4In6() {
			continue
		}
		x.prefixes[p] = e.Identity
		if p.Addr().Is4() {
			if !seen4[p.Bits()] {
				seen4[p.Bits()] = true
				x.bits4 = append(x.bits4, p.Bits())
			}
		} else if !seen6[p.Bits()] {
			seen6[p.Bits()] = true
			x.bits6 = append(x.bits6, p.Bits())
		}
	}
	desc := func(a, b int) int { return b - a }
	slices.SortFunc(x.bits4, desc)
	slices.SortFunc(x.bits6, desc)
	for i, ep := range s.Endpoints {
		for _, a := range ep.IPs {
			if _, dup := x.endpoints[a]; !dup {
				x.endpoints[a] = i
			}
		}
	}
	for i, r := range s.Rules {
		if r.EndPort != 0 && r.Port != 0 {
			k := r.RuleKey
			k.Port, k.EndPort = 0, 0
			x.ranges[k] = append(x.ranges[k], rangeEntry{port: r.Port, end: r.EndPort, rule: i})
			continue
		}
		x.rules[r.RuleKey] = i
	}
	return x
}

// index returns the State's index, building a transient one for a State
// that did not come from Compile.
func (s *State) index() *stateIndex {
	if s.idx != nil {
		return s.idx
	}
	return newStateIndex(s)
}

func (x *stateIndex) lookup(a netip.Addr) NumericIdentity {
	bits := x.bits6
	if a.Is4() {
		bits = x.bits4
	}
	for _, b := range bits {
		p, err := a.Prefix(b)
		if err != nil {
			continue
		}
		if id, ok := x.prefixes[p]; ok {
			return id
		}
	}
	return IdentityWorld
}
