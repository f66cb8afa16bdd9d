package gatekeeper

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/palisade-dev/palisade/rules"
)

const goldenExport = "testdata/export-default.yaml"

// TestExportYAMLGolden pins the exported default standard byte for byte:
// the output is what users apply to their clusters and diff in review.
// Regenerate with PALISADE_UPDATE_GOLDEN=1 after an intended change.
func TestExportYAMLGolden(t *testing.T) {
	var a, b bytes.Buffer
	if err := ExportYAML(rules.Default(), &a); err != nil {
		t.Fatal(err)
	}
	if err := ExportYAML(rules.Default(), &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two exports of the same standard differ")
	}
	if os.Getenv("PALISADE_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(goldenExport, a.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenExport)
	if err != nil {
		t.Fatalf("%v (run with PALISADE_UPDATE_GOLDEN=1 to create it)", err)
	}
	if !bytes.Equal(a.Bytes(), want) {
		t.Fatalf("export differs from %s (PALISADE_UPDATE_GOLDEN=1 regenerates it):\n%s", goldenExport, a.String())
	}
}

// TestExportYAMLLoads applies the YAML form, as a user would, through the
// same loader custom rules use.
func TestExportYAMLLoads(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := ExportYAML(rules.Default(), &buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "standard.yaml"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cr, err := LoadCustomRules(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Len() != len(rules.Default().Spec.Labels) {
		t.Fatalf("Len() = %d, want %d", cr.Len(), len(rules.Default().Spec.Labels))
	}
	got, err := cr.Review(context.Background(), admissionRequest(t, podObject("web", map[string]any{"app": "web"}, "x:1")), shopNamespace())
	if err != nil {
		t.Fatal(err)
	}
	want := "[PalisadePodLabel/pod-tier] pod shop/web: missing label tier: add label tier (one of: frontend, backend, data)"
	if len(got) != 1 || got[0].Message != want || got[0].Key != "tier" {
		t.Fatalf("got %v, want %q", got, want)
	}
}

func TestExportConstraints(t *testing.T) {
	std := rules.Default()
	std.Spec.Labels = append(std.Spec.Labels, rules.LabelRule{
		ID: "Pod_Team", Target: rules.TargetPod, Key: "team", Pattern: "[a-z]+", Action: rules.ActionWarn,
	}, rules.LabelRule{
		ID: "pod-team", Target: rules.TargetPod, Key: "team2", Values: []string{"a"}, Action: rules.ActionDryRun,
	})
	objs, err := Export(std)
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ kind, action string }
	wantByRule := map[string]want{
		"ns-owner": {NamespaceLabelKind, "deny"},
		"pod-env":  {PodLabelKind, "deny"},
		"Pod_Team": {PodLabelKind, "warn"},
		"pod-team": {PodLabelKind, "dryrun"},
	}
	dns := regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	names := map[string]bool{}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
		id, ok := o.GetAnnotations()[AnnotationRuleID]
		if !ok {
			continue
		}
		if !dns.MatchString(o.GetName()) || names[o.GetName()] {
			t.Errorf("constraint name %q of rule %s is not a unique DNS subdomain", o.GetName(), id)
		}
		names[o.GetName()] = true
		excluded, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "match", "excludedNamespaces")
		if strings.Join(excluded, ",") != "kube-system,kube-public,kube-node-lease" {
			t.Errorf("%s: excludedNamespaces = %v", id, excluded)
		}
		w, ok := wantByRule[id]
		if !ok {
			continue
		}
		action, _, _ := unstructured.NestedString(o.Object, "spec", "enforcementAction")
		if o.GetKind() != w.kind || action != w.action {
			t.Errorf("%s: %s with enforcementAction %s, want %s with %s", id, o.GetKind(), action, w.kind, w.action)
		}
	}
	wantKinds := "ExpansionTemplate,ExpansionTemplate,ConstraintTemplate,ConstraintTemplate"
	if got := strings.Join(kinds[:4], ","); got != wantKinds {
		t.Errorf("leading kinds = %s, want %s", got, wantKinds)
	}
	if len(names) != len(std.Spec.Labels) {
		t.Errorf("%d constraints, want %d", len(names), len(std.Spec.Labels))
	}
	if _, err := Export(nil); err == nil {
		t.Error("Export(nil) gave no error")
	}
	broken := rules.Default()
	broken.Spec.Labels[0].Pattern = "("
	if _, err := Export(broken); err == nil || !strings.Contains(err.Error(), "ns-owner") {
		t.Errorf("Export of a broken standard: %v, want an error naming the rule", err)
	}
}

func TestConstraintName(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"pod-app", "pod-app"},
		{"pod.app", "pod.app"},
		{"Pod_App", "pod-app-"},
		{"pod_app", "pod-app-"},
	} {
		got := constraintName(tc.id)
		if got != tc.want && !(strings.HasSuffix(tc.want, "-") && strings.HasPrefix(got, tc.want) && len(got) == len(tc.want)+8) {
			t.Errorf("constraintName(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
	if constraintName("Pod_App") == constraintName("pod_app") {
		t.Error("distinct rule IDs share a constraint name")
	}
}

// TestExportedUpdates: like the webhook, the exported rules judge an
// UPDATE only when it changes the labels, so objects that predate the
// standard stay manageable.
func TestExportedUpdates(t *testing.T) {
	cr, _ := exportedRules(t, rules.Default())
	legacy := podObject("legacy", map[string]any{"app": "Legacy_App"}, "x:1")
	relabelled := podObject("legacy", map[string]any{"app": "Legacy_App", "tier": "backend"}, "x:1")
	for _, tc := range []struct {
		name     string
		old, new *unstructured.Unstructured
		want     int
	}{
		{name: "labels unchanged", old: legacy, new: legacy, want: 0},
		{name: "labels changed", old: legacy, new: relabelled, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := admissionRequest(t, tc.new)
			req.Operation = "UPDATE"
			req.OldObject = admissionRequest(t, tc.old).Object
			got, err := cr.Review(context.Background(), req, shopNamespace())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("got %d violations, want %d: %v", len(got), tc.want, got)
			}
		})
	}
}
