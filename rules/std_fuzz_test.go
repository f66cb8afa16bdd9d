package rules

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzParseStandard: any input either parses into a standard an Evaluator
// accepts, or fails with an error naming the source; never a panic.
func FuzzParseStandard(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("apiVersion: palisade.dev/v1alpha1\nkind: LabelingStandard\nmetadata: {name: s, version: '1'}\nspec:\n  identityLabels: [app]\n  labels:\n  - {id: r, target: Pod, key: k, pattern: '('}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("spec: {labels: [{id: 1}]}\n---\nkind: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		std, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") && !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		if _, err := NewEvaluator(std); err != nil {
			t.Fatalf("parsed standard rejected by NewEvaluator: %v", err)
		}
	})
}

// FuzzEvaluatePod: arbitrary labels and namespace annotations never panic,
// every violation is one line with a known rule ID and a valid action.
func FuzzEvaluatePod(f *testing.F) {
	e, err := NewEvaluator(Default())
	if err != nil {
		f.Fatal(err)
	}
	known := map[string]bool{}
	for _, id := range e.RuleIDs() {
		known[id] = true
	}
	f.Add("app", "api", "tier", "backend", "env", "prod", "pod-tier=warn")
	f.Add("app", "A\nB", "tier", "", "env", "dev", "*=dryrun,pod-app=deny")
	f.Add("", "", "palisade.dev/x", "y", "env", "", ",,=")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, nsKey, nsVal, actions string) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{nsKey: nsVal}, Annotations: map[string]string{AnnotationRuleActions: actions}}}
		labels := map[string]string{k1: v1, k2: v2}
		vs := e.Pod("pod n/p", labels, ns)
		vs = append(vs, e.Namespace(ns)...)
		vs = append(vs, e.ReservedKeys("pod n/p", nil, &metav1.ObjectMeta{Labels: labels, Annotations: labels}, nil, ns)...)
		for _, v := range vs {
			if strings.ContainsAny(v.Message, "\n\r") {
				t.Fatalf("message spans lines: %q", v.Message)
			}
			if !known[v.RuleID] {
				t.Fatalf("unknown rule %q", v.RuleID)
			}
			if v.Action != ActionDeny && v.Action != ActionWarn && v.Action != ActionDryRun {
				t.Fatalf("action %q", v.Action)
			}
		}
		e.Inherit(labels, ns)
	})
}
