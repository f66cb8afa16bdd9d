package rules

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func defaultEvaluator(t testing.TB) *Evaluator {
	t.Helper()
	e, err := NewEvaluator(Default())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// evaluatorFor parses a standard written for one test.
func evaluatorFor(t testing.TB, doc string) *Evaluator {
	t.Helper()
	std, err := Parse([]byte(doc), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEvaluator(std)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func namespace(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

// overrides is a namespace carrying only a rule-actions annotation.
func overrides(ann string) *corev1.Namespace {
	return namespace("n", nil, map[string]string{AnnotationRuleActions: ann})
}

var prodPCI = map[string]string{"owner": "team-a", "env": "prod", "data-classification": "pci"}

// render is "action message" per violation, one per line, so a table
// states the exact text a user sees.
func render(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(string(v.Action) + " " + v.Message + "\n")
	}
	return b.String()
}

// checkShape asserts what every violation promises whatever the input:
// the Message is one line built from its parts, the rule and action known.
func checkShape(t testing.TB, e *Evaluator, vs []Violation) {
	t.Helper()
	for _, v := range vs {
		if strings.ContainsAny(v.Message, "\r\n\u0085\u2028\u2029") {
			t.Fatalf("message spans lines: %q", v.Message)
		}
		want := "[" + v.RuleID + "] " + v.Object + ": "
		if !strings.HasPrefix(v.Message, want) {
			t.Fatalf("message %q does not start with %q", v.Message, want)
		}
		if v.Fix != "" && !strings.HasSuffix(v.Message, ": "+v.Fix) {
			t.Fatalf("message %q does not end with its fix %q", v.Message, v.Fix)
		}
		if !contains(e.RuleIDs(), v.RuleID) {
			t.Fatalf("unknown rule %q in %q", v.RuleID, v.Message)
		}
		if !validAction(v.Action) {
			t.Fatalf("action %q in %q", v.Action, v.Message)
		}
	}
}

func policyFromYAML(t testing.TB, s string) *networkingv1.NetworkPolicy {
	t.Helper()
	np := &networkingv1.NetworkPolicy{}
	if err := yaml.UnmarshalStrict([]byte(s), np); err != nil {
		t.Fatal(err)
	}
	return np
}
