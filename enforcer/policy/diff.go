package policy

import "net/netip"

// StateDiff is what turns one State's datapath maps into another's.
// Upserts carry the new value; deletes carry only the key.
//
// Applied in this order, no intermediate map state allows a flow that
// neither the old nor the new State allows: RuleDeletes, then IP deletes
// and upserts, then RuleUpserts, then endpoint upserts and deletes.
type StateDiff struct {
	IPUpserts       []IPEntry
	IPDeletes       []netip.Prefix
	EndpointUpserts []LocalEndpoint
	EndpointDeletes []PodRef
	// RuleUpserts holds new keys and keys whose RuleID changed; a change
	// of provenance that keeps the RuleID is not a datapath change.
	RuleUpserts []Rule
	RuleDeletes []RuleKey
}

// Empty reports whether the diff changes nothing.
func (d StateDiff) Empty() bool {
	return len(d.IPUpserts) == 0 && len(d.IPDeletes) == 0 && len(d.EndpointUpserts) == 0 &&
		len(d.EndpointDeletes) == 0 && len(d.RuleUpserts) == 0 && len(d.RuleDeletes) == 0
}

// Diff returns the changes from s (the current state; nil means empty) to
// next. Every list is sorted by key.
func (s *State) Diff(next *State) StateDiff {
	if s == nil {
		s = &State{}
	}
	if next == nil {
		next = &State{}
	}
	var d StateDiff
	mergeSorted(s.IPs, next.IPs, compareIPEntry,
		func(n IPEntry) { d.IPUpserts = append(d.IPUpserts, n) },
		func(o IPEntry) { d.IPDeletes = append(d.IPDeletes, o.Prefix) },
		func(o, n IPEntry) {
			if o != n {
				d.IPUpserts = append(d.IPUpserts, n)
			}
		})
	mergeSorted(s.Endpoints, next.Endpoints, func(a, b LocalEndpoint) int { return comparePodRef(a.Pod, b.Pod) },
		func(n LocalEndpoint) { d.EndpointUpserts = append(d.EndpointUpserts, n) },
		func(o LocalEndpoint) { d.EndpointDeletes = append(d.EndpointDeletes, o.Pod) },
		func(o, n LocalEndpoint) {
			if !endpointEqual(o, n) {
				d.EndpointUpserts = append(d.EndpointUpserts, n)
			}
		})
	mergeSorted(s.Rules, next.Rules, func(a, b Rule) int { return compareRuleKey(a.RuleKey, b.RuleKey) },
		func(n Rule) { d.RuleUpserts = append(d.RuleUpserts, n) },
		func(o Rule) { d.RuleDeletes = append(d.RuleDeletes, o.RuleKey) },
		func(o, n Rule) {
			if o.RuleID() != n.RuleID() {
				d.RuleUpserts = append(d.RuleUpserts, n)
			}
		})
	return d
}

// mergeSorted walks two sorted slices in step.
func mergeSorted[T any](old, next []T, cmp func(a, b T) int, added func(T), removed func(T), both func(o, n T)) {
	i, j := 0, 0
	for i < len(old) || j < len(next) {
		switch {
		case i == len(old):
			added(next[j])
			j++
		case j == len(next):
			removed(old[i])
			i++
		default:
			switch c := cmp(old[i], next[j]); {
			case c < 0:
				removed(old[i])
				i++
			case c > 0:
				added(next[j])
				j++
			default:
				both(old[i], next[j])
				i++
				j++
			}
		}
	}
}
