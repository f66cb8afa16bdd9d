package rules

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// FuzzSelectorCovers: selectorCovers is sound. When it says every pod sub
// selects is selected by sup, no label set (the fuzzed one, or one built
// to meet sub) is selected by sub and not by sup: a DNS warning may be
// too many, never missing. Selectors are written in the label selector
// syntax ("app=web,tier in (a,b),!x"); seeds in testdata/fuzz.
func FuzzSelectorCovers(f *testing.F) {
	f.Fuzz(func(t *testing.T, supText, subText, labelText string) {
		sup, err := metav1.ParseToLabelSelector(supText)
		if err != nil {
			return
		}
		sub, err := metav1.ParseToLabelSelector(subText)
		if err != nil {
			return
		}
		if !selectorCovers(sup, sub) {
			return
		}
		supSel, err1 := metav1.LabelSelectorAsSelector(sup)
		subSel, err2 := metav1.LabelSelectorAsSelector(sub)
		if err1 != nil || err2 != nil {
			t.Fatalf("covers with a selector that does not convert: %v %v", err1, err2)
		}
		for _, set := range []labels.Set{labels.Set(labelList(labelText)), witness(subSel)} {
			if subSel.Matches(set) && !supSel.Matches(set) {
				t.Fatalf("%q said to cover %q, but %v is selected only by the latter", supText, subText, set)
			}
		}
	})
}

// witness returns a label set meeting every requirement of sel it can
// (first value of In, some value for Exists, a fresh one for NotIn).
func witness(sel labels.Selector) labels.Set {
	out := labels.Set{}
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		switch r.Operator() {
		case selection.In, selection.Equals, selection.DoubleEquals:
			if vals := r.Values().List(); len(vals) > 0 {
				out[r.Key()] = vals[0]
			}
		case selection.Exists, selection.NotIn, selection.NotEquals:
			if _, set := out[r.Key()]; !set {
				out[r.Key()] = "witness-value"
			}
		}
	}
	return out
}
