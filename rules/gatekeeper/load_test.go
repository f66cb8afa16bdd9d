package gatekeeper

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/palisade-dev/palisade/rules"
)

const regoRules = `# An organisation's own rule, in Rego.
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredteam
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredTeam
      validation:
        openAPIV3Schema:
          type: object
          properties:
            label: {type: string}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8srequiredteam
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels[input.parameters.label]
        msg := sprintf("missing label %v\nfor cost reporting", [input.parameters.label])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredTeam
metadata:
  name: pods-need-team
spec:
  enforcementAction: warn
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
  parameters:
    label: team
`

const celRules = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sdisallowlatest
spec:
  crd:
    spec:
      names:
        kind: K8sDisallowLatest
  targets:
  - target: admission.k8s.gatekeeper.sh
    code:
    - engine: K8sNativeValidation
      source:
        validations:
        - expression: "variables.anyObject.spec.containers.all(c, !c.image.endsWith(':latest'))"
          messageExpression: "'image ' + variables.anyObject.spec.containers.filter(c, c.image.endsWith(':latest'))[0].image + ' uses the latest tag'"
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sDisallowLatest
metadata:
  name: no-latest
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
`

const expansionRules = `apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: expand-deployments
spec:
  applyTo:
  - groups: [apps]
    kinds: [Deployment]
    versions: [v1]
  templateSource: spec.template
  generatedGVK: {kind: Pod, group: "", version: v1}
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func shopNamespace() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"env": "prod"}}}
}

func podObject(name string, labels map[string]any, image string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]any{"name": name, "namespace": "shop", "labels": labels},
		"spec":       map[string]any{"containers": []any{map[string]any{"name": "main", "image": image}}},
	}}
}

func TestLoadCustomRulesReview(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"team.yaml":      regoRules,
		"latest.yml":     celRules,
		"expansion.yaml": expansionRules,
		"notes.txt":      "not a rules file, ignored",
	})
	cr, err := LoadCustomRules(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Len() != 2 {
		t.Fatalf("Len() = %d, want 2", cr.Len())
	}
	deployment := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": "api", "namespace": "shop"},
		"spec": map[string]any{"template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"app": "api"}},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "main", "image": "registry.example/api:latest"}}},
		}},
	}}
	for _, tc := range []struct {
		name string
		obj  *unstructured.Unstructured
		want []rules.Violation
	}{
		{
			name: "compliant pod",
			obj:  podObject("web", map[string]any{"team": "shop"}, "registry.example/web:1.2"),
		},
		{
			name: "violating pod",
			obj:  podObject("web", map[string]any{"app": "web"}, "registry.example/web:latest"),
			want: []rules.Violation{
				{RuleID: "K8sDisallowLatest/no-latest", Action: rules.ActionDeny,
					Message: "[K8sDisallowLatest/no-latest] pod shop/web: image registry.example/web:latest uses the latest tag"},
				{RuleID: "K8sRequiredTeam/pods-need-team", Action: rules.ActionWarn,
					Message: "[K8sRequiredTeam/pods-need-team] pod shop/web: missing label team for cost reporting"},
			},
		},
		{
			name: "deployment judged through its pod template",
			obj:  deployment,
			want: []rules.Violation{
				{RuleID: "K8sDisallowLatest/no-latest", Action: rules.ActionDeny,
					Message: "[K8sDisallowLatest/no-latest] deployment shop/api (pod template): image registry.example/api:latest uses the latest tag"},
				{RuleID: "K8sRequiredTeam/pods-need-team", Action: rules.ActionWarn,
					Message: "[K8sRequiredTeam/pods-need-team] deployment shop/api (pod template): missing label team for cost reporting"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cr.Review(context.Background(), admissionRequest(t, tc.obj), shopNamespace())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d violations, want %d: %v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.RuleID != w.RuleID || g.Action != w.Action || g.Message != w.Message {
					t.Errorf("violation %d:\n got %s %s %q\nwant %s %s %q", i, g.RuleID, g.Action, g.Message, w.RuleID, w.Action, w.Message)
				}
			}
		})
	}
}

// TestReviewConcurrent runs reviews from many goroutines at once, as the
// webhook does; with -race it checks the claim of concurrent safety.
func TestReviewConcurrent(t *testing.T) {
	cr, err := LoadCustomRules(context.Background(), writeFiles(t, map[string]string{"a.yaml": regoRules, "b.yaml": celRules}))
	if err != nil {
		t.Fatal(err)
	}
	bad := admissionRequest(t, podObject("web", map[string]any{}, "x:latest"))
	good := admissionRequest(t, podObject("web", map[string]any{"team": "a"}, "x:1"))
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				vb, err1 := cr.Review(context.Background(), bad, shopNamespace())
				vg, err2 := cr.Review(context.Background(), good, shopNamespace())
				if err1 != nil || err2 != nil || len(vb) != 2 || len(vg) != 0 {
					errs <- "inconsistent review"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestLoadCustomRulesErrors(t *testing.T) {
	badCEL := strings.Replace(celRules, ".all(c,", ".al(c,", 1)
	nonStringMessage := strings.Replace(celRules,
		`messageExpression: "'image ' + variables.anyObject.spec.containers.filter(c, c.image.endsWith(':latest'))[0].image + ' uses the latest tag'"`,
		`messageExpression: "size(variables.anyObject.spec.containers)"`, 1)
	badRego := strings.Replace(regoRules, "violation[{\"msg\": msg}] {", "violation[{\"msg\": msg}] {{", 1)
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
		// notWant: echoes of an error already reported.
		notWant []string
	}{
		{
			name:  "invalid YAML",
			files: map[string]string{"broken.yaml": "apiVersion: v1\nkind: [unclosed\n"},
			want:  []string{"broken.yaml: document 1 (line 1): invalid YAML"},
		},
		{
			name:  "CEL that does not compile",
			files: map[string]string{"latest.yaml": badCEL},
			want:  []string{"latest.yaml: document 1 (line 1): ConstraintTemplate k8sdisallowlatest: CEL does not compile: validations[0].expression", "undeclared reference to 'al'"},
		},
		{
			name:  "messageExpression not a string",
			files: map[string]string{"latest.yaml": nonStringMessage},
			want:  []string{"latest.yaml: document 1 (line 1)", "validations[0].messageExpression", "must evaluate to string"},
		},
		{
			name:  "Rego that does not parse",
			files: map[string]string{"team.yaml": badRego},
			want:  []string{"team.yaml: document 1 (line 2): ConstraintTemplate k8srequiredteam:", "rego_parse_error"},
		},
		{
			name:  "constraint without template, second document",
			files: map[string]string{"c.yaml": "# leading comment\n---\n" + celRules + "---\n\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sMissing\nmetadata:\n  name: x\n"},
			want:  []string{"c.yaml: document 3 (line 30): K8sMissing x: no ConstraintTemplate defines kind K8sMissing"},
		},
		{
			name:    "unknown field in a template",
			files:   map[string]string{"t.yaml": strings.Replace(regoRules, "  crd:\n", "  crds: {}\n  crd:\n", 1)},
			want:    []string{"t.yaml: document 1 (line 2): ConstraintTemplate k8srequiredteam:", `unknown field "spec.crds"`},
			notWant: []string{"no ConstraintTemplate defines"},
		},
		{
			name:  "parameters of the wrong type",
			files: map[string]string{"t.yaml": strings.Replace(regoRules, "label: team", "label: 5", 1)},
			want:  []string{"t.yaml: document 2 (line 25): K8sRequiredTeam pods-need-team:", "parameters.label"},
		},
		{
			name:  "unsupported kind",
			files: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"},
			want:  []string{"cm.yaml: document 1 (line 1): ConfigMap x: unsupported kind ConfigMap"},
		},
		{
			name:  "duplicate constraint across files",
			files: map[string]string{"a.yaml": regoRules, "b.yaml": regoRules[strings.Index(regoRules, "---\n")+4:]},
			want:  []string{"b.yaml: document 1 (line 1): K8sRequiredTeam pods-need-team: a second constraint K8sRequiredTeam/pods-need-team (first: ", "a.yaml: document 2"},
		},
		{
			name:  "bad expansion template",
			files: map[string]string{"e.yaml": strings.Replace(expansionRules, "  templateSource: spec.template\n", "", 1)},
			want:  []string{"e.yaml: document 1 (line 1): ExpansionTemplate expand-deployments:", "empty source field"},
		},
		{
			name:  "not an object",
			files: map[string]string{"l.yaml": "- a\n- b\n"},
			want:  []string{"l.yaml: document 1 (line 1): expected a Kubernetes object"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadCustomRules(context.Background(), writeFiles(t, tc.files))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error contains %q:\n%v", w, err)
				}
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		_, err := LoadCustomRules(context.Background(), filepath.Join(t.TempDir(), "nope"))
		if err == nil || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("error = %v, want one naming the directory", err)
		}
	})
}

func TestReviewNamespaceRequest(t *testing.T) {
	nsRule := strings.NewReplacer("K8sRequiredTeam", "K8sNSTeam", "k8srequiredteam", "k8snsteam", "kinds: [Pod]", "kinds: [Namespace]").Replace(regoRules)
	cr, err := LoadCustomRules(context.Background(), writeFiles(t, map[string]string{"ns.yaml": nsRule}))
	if err != nil {
		t.Fatal(err)
	}
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "shop"},
	}}
	req := admissionRequest(t, ns)
	req.Namespace = "shop" // server-side apply sets it; Gatekeeper ignores it
	got, err := cr.Review(context.Background(), req, shopNamespace())
	if err != nil {
		t.Fatal(err)
	}
	want := "[K8sNSTeam/pods-need-team] namespace shop: missing label team for cost reporting"
	if len(got) != 1 || got[0].Message != want {
		t.Fatalf("got %v, want one violation %q", got, want)
	}
	if req.Namespace != "shop" {
		t.Fatal("Review changed the caller's request")
	}
}

func TestNilCustomRules(t *testing.T) {
	var cr *CustomRules
	if cr.Len() != 0 {
		t.Fatal("nil rules have constraints")
	}
	got, err := cr.Review(context.Background(), nil, nil)
	if err != nil || got != nil {
		t.Fatalf("Review on nil rules = %v, %v", got, err)
	}
}
