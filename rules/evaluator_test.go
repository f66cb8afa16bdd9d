package rules

import (
	"reflect"
	"strings"
	"testing"
)

// The webhook decides "may this user set reserved keys" with IsPrivileged
// before calling ReservedKeys; the enforcer keys identities on
// IdentityLabels. Both read the standard only through these.
func TestPrivilegedGroups(t *testing.T) {
	e := defaultEvaluator(t)
	for _, tc := range []struct {
		groups []string
		want   bool
	}{
		{[]string{"system:masters"}, true},
		{[]string{"system:authenticated", "system:masters"}, true},
		{[]string{"developers", "system:authenticated"}, false},
		{[]string{"System:Masters"}, false},
		{[]string{"system:masters "}, false},
		{nil, false},
	} {
		if got := e.IsPrivileged(tc.groups); got != tc.want {
			t.Errorf("IsPrivileged(%q) = %v", tc.groups, got)
		}
	}
	none := evaluatorFor(t, podRulesStandard)
	if none.IsPrivileged([]string{"system:masters"}) {
		t.Error("a standard without privileged groups grants privilege")
	}
}

func TestIdentityLabels(t *testing.T) {
	e := defaultEvaluator(t)
	for k, want := range map[string]bool{"app": true, "tier": true, "env": true, "version": false, "pod-template-hash": false,
		"controller-revision-hash": false, "owner": false, "App": false, "": false} {
		if got := e.IsIdentityLabel(k); got != want {
			t.Errorf("IsIdentityLabel(%q) = %v", k, got)
		}
	}
	ids := e.IdentityLabels()
	if !reflect.DeepEqual(ids, []string{"app", "tier", "env"}) {
		t.Errorf("IdentityLabels = %v", ids)
	}
	ids[0] = "changed"
	if e.IdentityLabels()[0] != "app" || !e.IsIdentityLabel("app") {
		t.Error("IdentityLabels returns the evaluator's own slice")
	}
}

func TestEvaluatorKeepsItsStandard(t *testing.T) {
	std := Default()
	e, err := NewEvaluator(std)
	if err != nil {
		t.Fatal(err)
	}
	if e.Standard() != std {
		t.Error("Standard() is not the standard given")
	}
	for k, want := range map[string]bool{AnnotationExempt: true, "palisade.dev/": true, "palisade.dev": false, "app": false} {
		if got := e.IsReservedKey(k); got != want {
			t.Errorf("IsReservedKey(%q) = %v", k, got)
		}
	}
}

func TestViolationText(t *testing.T) {
	v := NewViolation("custom", "pod shop/web", "image", "image x:latest uses the latest tag", "pin a digest", ActionWarn)
	want := Violation{RuleID: "custom", Object: "pod shop/web", Key: "image", Action: ActionWarn,
		Message: "[custom] pod shop/web: image x:latest uses the latest tag: pin a digest", Fix: "pin a digest"}
	if v != want || v.String() != want.Message {
		t.Errorf("NewViolation = %#v", v)
	}
	if v := NewViolation("r", "o", "", "p", "", ActionDeny); v.Message != "[r] o: p" {
		t.Errorf("without fix: %q", v.Message)
	}
	for _, tc := range []struct{ fn, in, want string }{
		{"quoteValue", "prod", `"prod"`},
		{"quoteValue", "", `""`},
		{"quoteValue", "a\nb\x00", `"a\nb\x00"`},
		{"quoteValue", strings.Repeat("é", 50), `"` + strings.Repeat("é", 40) + `"...`},
		{"quoteValue", strings.Repeat("a", 79) + "é", `"` + strings.Repeat("a", 79) + `"...`},
		{"quoteValue", strings.Repeat("a", 80), `"` + strings.Repeat("a", 80) + `"`},
		{"showKey", "app.kubernetes.io/name", "app.kubernetes.io/name"},
		{"showKey", "", `""`},
		{"showKey", "a b", `"a b"`},
		{"showKey", "a\nb", `"a\nb"`},
		{"showKey", strings.Repeat("k", 318), `"` + strings.Repeat("k", 80) + `"...`},
		{"showValue", "prod", "prod"},
		{"showValue", "v1.2_3-x", "v1.2_3-x"},
		{"showValue", "", `""`},
		{"showValue", "a/b", `"a/b"`},
		{"showValue", "x y", `"x y"`},
		{"showValue", "a\u2028b", `"a\u2028b"`},
		{"showValue", strings.Repeat("v", 254), `"` + strings.Repeat("v", 80) + `"...`},
	} {
		var got string
		switch tc.fn {
		case "quoteValue":
			got = quoteValue(tc.in)
		case "showKey":
			got = showKey(tc.in)
		case "showValue":
			got = showValue(tc.in)
		}
		if got != tc.want {
			t.Errorf("%s(%q) = %s, want %s", tc.fn, tc.in, got, tc.want)
		}
	}
	for in, want := range map[string]string{"": "", "a": "a", "a b": "a or b", "a b c": "a, b or c"} {
		if got := joinOr(strings.Fields(in)); got != want {
			t.Errorf("joinOr(%q) = %q, want %q", in, got, want)
		}
	}
}
