package gatekeeper

import (
	"context"
	"slices"
	"testing"

	"github.com/palisade-dev/palisade/rules"
)

// relaxed is the default standard with some rules demoted, so that the
// differential test also covers the enforcementAction mapping.
func relaxed() *rules.Standard {
	std := rules.Default()
	for i := range std.Spec.Labels {
		switch std.Spec.Labels[i].ID {
		case "pod-tier", "ns-data-classification":
			std.Spec.Labels[i].Action = rules.ActionWarn
		case "ns-owner", "pod-env":
			std.Spec.Labels[i].Action = rules.ActionDryRun
		}
	}
	return std
}

// exportedRules runs Export's objects in process and returns them with
// the map from constraint (kind/name) to the standard's rule ID.
func exportedRules(t testing.TB, std *rules.Standard) (*CustomRules, map[string]string) {
	t.Helper()
	objs, err := Export(std)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, o := range objs {
		if id, ok := o.GetAnnotations()[AnnotationRuleID]; ok {
			ids[o.GetKind()+"/"+o.GetName()] = id
		}
	}
	cr, err := FromObjects(context.Background(), "export", objs)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Len() != len(std.Spec.Labels) {
		t.Fatalf("loaded %d constraints, want one per label rule (%d)", cr.Len(), len(std.Spec.Labels))
	}
	return cr, ids
}

// TestDifferential judges every corpus object natively and by Gatekeeper
// running the exported standard, and requires the same decision, the
// same broken rules with the same actions, and the same messages.
func TestDifferential(t *testing.T) {
	objs, namespaces := loadCorpus(t)
	if len(objs) < 50 {
		t.Fatalf("corpus has %d objects, want at least 50", len(objs))
	}
	for _, tc := range []struct {
		name string
		std  *rules.Standard
		// checkExpect: the corpus annotations state decisions under the
		// default standard only.
		checkExpect bool
	}{
		{name: "default", std: rules.Default(), checkExpect: true},
		{name: "relaxed", std: relaxed()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := rules.NewEvaluator(tc.std)
			if err != nil {
				t.Fatal(err)
			}
			cr, ids := exportedRules(t, tc.std)
			ctx := context.Background()
			var denied, allowed, withFindings int
			for _, o := range objs {
				native := judgeNative(t, e, o, namespaces)
				var ns = namespaces[o.obj.GetNamespace()]
				gk, err := cr.Review(ctx, admissionRequest(t, o.obj), ns)
				if err != nil {
					t.Fatalf("%s: review: %v", o, err)
				}
				nd, gd := denies(native), denies(gk)
				if nd != gd {
					t.Errorf("%s: native deny=%v, gatekeeper deny=%v\nnative: %v\ngatekeeper: %v", o, nd, gd, native, gk)
					continue
				}
				nf, gf := findings(t, native, nil), findings(t, gk, ids)
				if !slices.Equal(nf, gf) {
					t.Errorf("%s: findings differ\nnative:     %v\ngatekeeper: %v", o, nf, gf)
				}
				if tc.checkExpect {
					want := o.obj.GetAnnotations()[expectAnnotion]
					if got := map[bool]string{true: "deny", false: "allow"}[nd]; got != want {
						t.Errorf("%s: decided %s, corpus expects %q: %v", o, got, want, native)
					}
				}
				if nd {
					denied++
				} else {
					allowed++
				}
				if len(nf) > 0 {
					withFindings++
				}
			}
			t.Logf("%d objects agree: %d denied, %d allowed, %d with violations", len(objs), denied, allowed, withFindings)
		})
	}
}
