package policy

import (
	"errors"
	"fmt"
	"slices"
)

// IdentityAllocator hands out the numbers a State uses: workload and CIDR
// identities and rule-source ids. Seeded with the previous State, it keeps
// every number whose key survives, so that pod churn changes only
// IP→identity entries and a new policy does not renumber the others. New
// keys get numbers above any handed out before (freed numbers are reused
// only after the range wraps), so a number is not soon reused for another
// identity while flows judged under it may still be tracked.
//
// Compile updates it in place; it is not safe for concurrent use.
type IdentityAllocator struct {
	workload numberer
	cidr     numberer
	sources  numberer
}

// NewIdentityAllocator returns an allocator that keeps the numbers of prev
// (nil for none).
func NewIdentityAllocator(prev *State) *IdentityAllocator {
	a := &IdentityAllocator{
		workload: newNumberer(uint32(FirstWorkloadIdentity), uint32(FirstCIDRIdentity)-1),
		cidr:     newNumberer(uint32(FirstCIDRIdentity), uint32(LastCIDRIdentity)),
		sources:  newNumberer(1, 1<<32-1),
	}
	if prev == nil {
		return a
	}
	for _, id := range prev.Identities {
		switch id.Kind {
		case KindWorkload:
			a.workload.seed(id.Key, uint32(id.ID))
		case KindCIDR:
			a.cidr.seed(id.Key, uint32(id.ID))
		}
	}
	for _, s := range prev.RuleSources {
		a.sources.seed(s.key(), s.ID)
	}
	return a
}

// numberer maps keys to numbers in [first, last].
type numberer struct {
	ids         map[string]uint32
	first, last uint32
	next        uint32
}

func newNumberer(first, last uint32) numberer {
	return numberer{ids: map[string]uint32{}, first: first, last: last, next: first}
}

func (n *numberer) seed(key string, id uint32) {
	if id < n.first || id > n.last {
		return
	}
	if _, dup := n.ids[key]; dup {
		return
	}
	n.ids[key] = id
	n.reserve(id)
}

// claim seeds key with id unless id is outside the range, key already has
// a number, or taken says another key holds id; it records id in taken.
// Unlike a previous State, observations may disagree: the first wins.
func (n *numberer) claim(key string, id uint32, taken map[uint32]bool) bool {
	if id < n.first || id > n.last || taken[id] {
		return false
	}
	if _, dup := n.ids[key]; dup {
		return false
	}
	taken[id] = true
	n.ids[key] = id
	n.reserve(id)
	return true
}

// reserve moves the next fresh number past id, if id is in the range.
func (n *numberer) reserve(id uint32) {
	if id < n.first || id > n.last || id < n.next {
		return
	}
	n.next = id + 1
	if id == n.last {
		n.next = n.first
	}
}

var errExhausted = errors.New("range exhausted")

// assign numbers keys (sorted, unique): kept keys keep theirs, the others
// are forgotten, new keys get fresh numbers in key order.
func (n *numberer) assign(keys []string) (map[string]uint32, error) {
	out := make(map[string]uint32, len(keys))
	used := make(map[uint32]bool, len(keys))
	var fresh []string
	for _, k := range keys {
		if id, ok := n.ids[k]; ok {
			out[k] = id
			used[id] = true
		} else {
			fresh = append(fresh, k)
		}
	}
	size := uint64(n.last) - uint64(n.first) + 1
	if uint64(len(keys)) > size {
		return nil, fmt.Errorf("allocate %d numbers in [%d, %d]: %w", len(keys), n.first, n.last, errExhausted)
	}
	for _, k := range fresh {
		for used[n.next] {
			n.advance()
		}
		out[k] = n.next
		used[n.next] = true
		n.advance()
	}
	n.ids = out
	return out, nil
}

func (n *numberer) advance() {
	if n.next == n.last {
		n.next = n.first
	} else {
		n.next++
	}
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
