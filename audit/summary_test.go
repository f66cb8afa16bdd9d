package audit

import (
	"reflect"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	at := func(min int) time.Time { return testEpoch.Add(time.Duration(min) * time.Minute) }
	records := []DecisionRecord{
		{Time: at(5), Decision: DecisionDenied, Namespace: "pay", Rules: []RuleResult{{RuleID: "require-env"}, {RuleID: "require-team"}, {RuleID: "require-env"}}},
		{Time: at(1), Decision: DecisionAllowed, Namespace: "pay"},
		{Time: at(9), Decision: DecisionWarned, Rules: []RuleResult{{RuleID: "require-team"}}}, // cluster-scoped
		{Time: at(3), Decision: DecisionDenied, Namespace: "web", Rules: []RuleResult{{RuleID: "require-env"}}},
	}
	got := Summarize(records)
	want := Summary{
		Records:     4,
		First:       at(1),
		Last:        at(9),
		ByDecision:  map[Decision]int{DecisionDenied: 2, DecisionAllowed: 1, DecisionWarned: 1},
		ByRule:      map[string]int{"require-env": 2, "require-team": 2},
		ByNamespace: map[string]int{"pay": 2, "web": 1, "": 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Summarize =\n%+v\nwant\n%+v", got, want)
	}
	empty := Summarize(nil)
	if empty.Records != 0 || !empty.First.IsZero() || empty.ByDecision == nil || empty.ByRule == nil || empty.ByNamespace == nil {
		t.Fatalf("Summarize(nil) = %+v; want zero counts and non-nil maps", empty)
	}
}
