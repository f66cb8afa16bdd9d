package audit

import "time"

// Summary condenses a set of records into the figures an evidence report
// leads with.
type Summary struct {
	Records int `json:"records"`
	// First and Last are the earliest and latest record times (zero when
	// there are no records). Records are chained in write order, which can
	// differ slightly from time order under concurrency, hence min/max.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// ByDecision counts records per decision.
	ByDecision map[Decision]int `json:"byDecision"`
	// ByRule counts, per rule ID, the records in which that rule was
	// reported (a rule listed twice in one record counts once).
	ByRule map[string]int `json:"byRule"`
	// ByNamespace counts records per namespace; cluster-scoped objects count
	// under "".
	ByNamespace map[string]int `json:"byNamespace"`
}

// Summarize counts records by decision, rule and namespace. The maps are
// never nil.
func Summarize(records []DecisionRecord) Summary {
	s := Summary{
		Records:     len(records),
		ByDecision:  map[Decision]int{},
		ByRule:      map[string]int{},
		ByNamespace: map[string]int{},
	}
	for i := range records {
		rec := &records[i]
		if s.First.IsZero() || rec.Time.Before(s.First) {
			s.First = rec.Time
		}
		if s.Last.IsZero() || rec.Time.After(s.Last) {
			s.Last = rec.Time
		}
		s.ByDecision[rec.Decision]++
		s.ByNamespace[rec.Namespace]++
		for j, rule := range rec.Rules {
			if !listedBefore(rec.Rules[:j], rule.RuleID) {
				s.ByRule[rule.RuleID]++
			}
		}
	}
	return s
}

func listedBefore(rules []RuleResult, id string) bool {
	for _, r := range rules {
		if r.RuleID == id {
			return true
		}
	}
	return false
}
