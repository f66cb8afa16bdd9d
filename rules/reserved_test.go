package rules

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func meta(labels, annotations map[string]string) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{Labels: labels, Annotations: annotations}
}

func TestReservedKeys(t *testing.T) {
	e := defaultEvaluator(t)
	shop := namespace("shop", prodPCI, nil)
	allowed := map[string]string{AnnotationProfile: "restricted"}
	const who = " (only Palisade and members of system:masters may set palisade.dev/ keys)"
	exempt := map[string]string{AnnotationExempt: "true"}
	for _, tc := range []struct {
		name     string
		old, new *metav1.ObjectMeta
		ns       *corev1.Namespace
		want     string
	}{
		{"no reserved keys", nil, meta(map[string]string{"app": "a"}, map[string]string{"note": "x"}), shop, ""},
		{"nothing", nil, meta(nil, nil), shop, ""},
		{"user sets a reserved annotation on create", nil, meta(nil, exempt), shop,
			"deny [reserved-key] namespace shop: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt" + who + "\n"},
		{"user sets a reserved label on create", nil, meta(map[string]string{"palisade.dev/identity": "x"}, nil), shop,
			"deny [reserved-key] namespace shop: label palisade.dev/identity is reserved: remove label palisade.dev/identity" + who + "\n"},
		{"sorted by key, label before annotation", nil, meta(map[string]string{"palisade.dev/b": "1", "palisade.dev/a": "1"}, map[string]string{"palisade.dev/a": "1", "palisade.dev/0": ""}), shop, "" +
			"deny [reserved-key] namespace shop: annotation palisade.dev/0 is reserved: remove annotation palisade.dev/0" + who + "\n" +
			"deny [reserved-key] namespace shop: label palisade.dev/a is reserved: remove label palisade.dev/a" + who + "\n" +
			"deny [reserved-key] namespace shop: annotation palisade.dev/a is reserved: remove annotation palisade.dev/a" + who + "\n" +
			"deny [reserved-key] namespace shop: label palisade.dev/b is reserved: remove label palisade.dev/b" + who + "\n"},
		{"the value Palisade sets is accepted", nil, meta(nil, map[string]string{AnnotationProfile: "restricted"}), shop, ""},
		{"another value of a key Palisade sets", nil, meta(nil, map[string]string{AnnotationProfile: "open-namespace"}), shop,
			`deny [reserved-key] namespace shop: annotation palisade.dev/profile="open-namespace" is reserved; Palisade sets it to "restricted": remove annotation palisade.dev/profile or set it to "restricted"` + "\n"},
		{"unchanged key on update", meta(nil, exempt), meta(nil, exempt), shop, ""},
		{"unchanged label on update", meta(map[string]string{"palisade.dev/x": "1"}, nil), meta(map[string]string{"palisade.dev/x": "1", "app": "b"}, nil), shop, ""},
		{"changed value on update", meta(nil, exempt), meta(nil, map[string]string{AnnotationExempt: "false"}), shop,
			"deny [reserved-key] namespace shop: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt" + who + "\n"},
		{"added on update", meta(nil, nil), meta(nil, exempt), shop,
			"deny [reserved-key] namespace shop: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt" + who + "\n"},
		{"moved from annotation to label on update", meta(nil, exempt), meta(exempt, nil), shop,
			"deny [reserved-key] namespace shop: label palisade.dev/exempt is reserved: remove label palisade.dev/exempt" + who + "\n"},
		{"removal passes", meta(nil, exempt), meta(nil, nil), shop, ""},
		{"prefix match is exact", nil, meta(map[string]string{"palisade.dev": "x", "x.palisade.dev/y": "x", "Palisade.dev/z": "x"}, nil), shop, ""},
		{"override naming the guard does not relax it", nil, meta(nil, exempt), namespace("shop", nil, map[string]string{AnnotationRuleActions: "reserved-key=warn"}),
			"deny [reserved-key] namespace shop: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt" + who + "\n"},
		{"wildcard does not relax the check", nil, meta(nil, exempt), namespace("shop", nil, map[string]string{AnnotationRuleActions: "*=dryrun"}),
			"deny [reserved-key] namespace shop: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt" + who + "\n"},
		{"namespace unknown", nil, meta(nil, exempt), nil,
			"deny [reserved-key] namespace shop: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt" + who + "\n"},
		{"hostile key and value stay on one line", nil, meta(map[string]string{"palisade.dev/a\nb": "x"}, map[string]string{AnnotationProfile: "a\nb"}), shop, "" +
			`deny [reserved-key] namespace shop: label "palisade.dev/a\nb" is reserved: remove label "palisade.dev/a\nb"` + who + "\n" +
			`deny [reserved-key] namespace shop: annotation palisade.dev/profile="a\nb" is reserved; Palisade sets it to "restricted": remove annotation palisade.dev/profile or set it to "restricted"` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := e.ReservedKeys("namespace shop", tc.old, tc.new, allowed, tc.ns)
			checkShape(t, e, vs)
			if got := render(vs); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	if vs := e.ReservedKeys("x", meta(nil, exempt), nil, nil, shop); vs != nil {
		t.Errorf("ReservedKeys(new=nil) = %v", vs)
	}
}

// A request that adds, changes or removes the rule-actions override is
// judged deny whatever the override in force says, so an update cannot
// relax the check that judges it.
func TestReservedKeysOverrideCannotRelaxItself(t *testing.T) {
	e := defaultEvaluator(t)
	relaxed := namespace("shop", prodPCI, map[string]string{AnnotationRuleActions: "reserved-key=dryrun"})
	ra := func(v string) map[string]string { return map[string]string{AnnotationRuleActions: v} }
	withExempt := func(m map[string]string) map[string]string {
		out := map[string]string{AnnotationExempt: "true"}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		old, new *metav1.ObjectMeta
		want     Action
		hits     int
	}{
		{"override added", meta(nil, nil), meta(nil, ra("reserved-key=dryrun")), ActionDeny, 1},
		{"override changed", meta(nil, ra("reserved-key=warn")), meta(nil, ra("reserved-key=dryrun")), ActionDeny, 1},
		{"override removed while adding another key", meta(nil, ra("reserved-key=dryrun")), meta(nil, map[string]string{AnnotationExempt: "true"}), ActionDeny, 1},
		// An override naming the guard that got in earlier (before the
		// webhook refused such entries) relaxes nothing either.
		{"override kept, another key added", meta(nil, ra("reserved-key=dryrun")), meta(nil, withExempt(ra("reserved-key=dryrun"))), ActionDeny, 1},
		{"override removed alone", meta(nil, ra("reserved-key=dryrun")), meta(nil, nil), "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := e.ReservedKeys("namespace shop", tc.old, tc.new, nil, relaxed)
			if len(vs) != tc.hits {
				t.Fatalf("got %d violations, want %d: %v", len(vs), tc.hits, vs)
			}
			for _, v := range vs {
				if v.Action != tc.want {
					t.Errorf("action %s, want %s: %s", v.Action, tc.want, v.Message)
				}
			}
		})
	}
}

func TestReservedKeysCustomStandard(t *testing.T) {
	withGroups := evaluatorFor(t, strings.Replace(podRulesStandard, "  reservedPrefixes: [palisade.dev/]\n", "  reservedPrefixes: [palisade.dev/, corp.example/]\n  privilegedGroups: [admins, sre, \"system:masters\"]\n", 1))
	got := render(withGroups.ReservedKeys("pod n/p", nil, meta(map[string]string{"corp.example/cost": "1"}, nil), nil, nil))
	want := "deny [reserved-key] pod n/p: label corp.example/cost is reserved: remove label corp.example/cost (only Palisade and members of admins, sre or system:masters may set corp.example/ keys)\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	noGroups := evaluatorFor(t, podRulesStandard)
	got = render(noGroups.ReservedKeys("pod n/p", nil, meta(nil, map[string]string{AnnotationExempt: "true"}), nil, nil))
	want = "deny [reserved-key] pod n/p: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt (only Palisade may set palisade.dev/ keys)\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if !noGroups.IsReservedKey(AnnotationExempt) || !withGroups.IsReservedKey("corp.example/x") || withGroups.IsReservedKey("corp.example") {
		t.Error("IsReservedKey")
	}
}
