package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/palisade-dev/palisade/rules"
	"github.com/palisade-dev/palisade/rules/gatekeeper"
)

const customRule = `apiVersion: templates.gatekeeper.sh/v1
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
          message: "images must not use the latest tag"
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sDisallowLatest
metadata:
  name: no-latest
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
`

// rulesFixtures writes the files the table refers to and returns their
// paths by name.
func rulesFixtures(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	def := string(rules.DefaultYAML())
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	custom := strings.Replace(strings.Replace(def, "name: default", "name: acme", 1), "values: [frontend, backend, data]", "values: [web, api]\n      action: warn", 1)
	return map[string]string{
		"good":      write("standard.yaml", custom),
		"bad":       write("bad.yaml", strings.Replace(def, `pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'`, `pattern: '['`, 1)),
		"rules":     filepath.Dir(write("rules/latest.yaml", customRule)),
		"badrules":  filepath.Dir(write("badrules/latest.yaml", strings.Replace(customRule, ".all(c,", ".al(c,", 1))),
		"out":       filepath.Join(dir, "export.yaml"),
		"badLine":   fmt.Sprint(lineOf(def, `pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'`)),
		"emptyRule": filepath.Dir(write("empty/.keep", "")),
		// A standard that leaves Palisade's own keys open, and one that
		// reserves only its own prefix.
		"unreserved":      write("unreserved.yaml", strings.Replace(def, `reservedPrefixes: ["palisade.dev/"]`, `reservedPrefixes: []`, 1)),
		"otherPrefix":     write("other-prefix.yaml", strings.Replace(def, `reservedPrefixes: ["palisade.dev/"]`, `reservedPrefixes: ["corp.example/"]`, 1)),
		"reservedLine":    fmt.Sprint(lineOf(def, `reservedPrefixes: ["palisade.dev/"]`)),
		"reservedMessage": `reservedPrefixes: must include "palisade.dev/": Palisade's own keys (exemptions, rule actions, enforcement mode) are reserved whatever the standard says`,
	}
}

func lineOf(text, needle string) int {
	return strings.Count(text[:strings.Index(text, needle)], "\n") + 1
}

func defaultExport(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	if err := gatekeeper.ExportYAML(rules.Default(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func runRules(args []string) (code int, stdout, stderr string) {
	root := &cobra.Command{Use: "palisade", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newRulesCommand())
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	code = execute(context.Background(), root, args, &errOut)
	return code, out.String(), errOut.String()
}

func TestRulesCommand(t *testing.T) {
	f := rulesFixtures(t)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		// wantOut and wantErr must be contained in stdout and stderr.
		wantOut, wantErr []string
		// check runs extra assertions on stdout.
		check func(t *testing.T, stdout string)
	}{
		{
			name: "export default to stdout",
			args: []string{"rules", "export"},
			check: func(t *testing.T, stdout string) {
				if stdout != defaultExport(t) {
					t.Error("stdout is not the default standard's export")
				}
			},
		},
		{
			name:    "export a standard file",
			args:    []string{"rules", "export", "--standard", f["good"]},
			wantOut: []string{"palisade.dev/standard: acme@1.0.0", "enforcementAction: warn", "- web\n"},
		},
		{
			name: "export to a file",
			args: []string{"rules", "export", "-o", f["out"]},
			check: func(t *testing.T, stdout string) {
				if stdout != "" {
					t.Errorf("stdout = %q, want nothing", stdout)
				}
				data, err := os.ReadFile(f["out"])
				if err != nil || string(data) != defaultExport(t) {
					t.Errorf("export file is not the default export (%v)", err)
				}
			},
		},
		{
			name:     "export a bad standard",
			args:     []string{"rules", "export", "--standard", f["bad"]},
			wantCode: 2,
			wantErr:  []string{f["bad"] + ":" + f["badLine"] + ": labels[0] (ns-owner): invalid pattern"},
		},
		{
			name:     "export a missing standard",
			args:     []string{"rules", "export", "--standard", f["bad"] + ".nope"},
			wantCode: 2,
			wantErr:  []string{"bad.yaml.nope"},
		},
		{
			name:     "export takes no arguments",
			args:     []string{"rules", "export", "extra"},
			wantCode: 1,
			wantErr:  []string{"unknown command"},
		},
		{
			name:     "unknown flag",
			args:     []string{"rules", "export", "--nope"},
			wantCode: 1,
			wantErr:  []string{"unknown flag: --nope"},
		},
		{
			name:    "show the default",
			args:    []string{"rules", "show"},
			wantOut: []string{"# Labeling standard default@1.0.0 from embedded default.", "action: deny", "id: netpol-managed-readonly"},
			check:   showParsesBack(rules.Default()),
		},
		{
			name:    "show a standard file",
			args:    []string{"rules", "show", "--standard", f["good"]},
			wantOut: []string{"name: acme", "action: warn"},
			check: func(t *testing.T, stdout string) {
				std, err := rules.Load(f["good"])
				if err != nil {
					t.Fatal(err)
				}
				showParsesBack(std)(t, stdout)
			},
		},
		{
			name:     "show a bad standard",
			args:     []string{"rules", "show", "--standard", f["bad"]},
			wantCode: 2,
			wantErr:  []string{f["bad"] + ":" + f["badLine"] + ":"},
		},
		{
			name:    "check a good standard and rules",
			args:    []string{"rules", "check", "--standard", f["good"], "--rules", f["rules"]},
			wantOut: []string{f["good"] + ": standard acme@1.0.0, 6 label rules: ok", f["rules"] + ": 1 constraints: ok"},
		},
		{
			name:    "check an empty rules directory",
			args:    []string{"rules", "check", "--rules", f["emptyRule"]},
			wantOut: []string{": 0 constraints: ok"},
		},
		{
			name:     "check a bad standard",
			args:     []string{"rules", "check", "--standard", f["bad"]},
			wantCode: 2,
			wantErr:  []string{f["bad"] + ":" + f["badLine"] + ": labels[0] (ns-owner): invalid pattern"},
		},
		{
			name:     "check a standard with reservedPrefixes: []",
			args:     []string{"rules", "check", "--standard", f["unreserved"]},
			wantCode: 2,
			wantErr:  []string{f["unreserved"] + ":" + f["reservedLine"] + ": " + f["reservedMessage"]},
		},
		{
			name:     "check a standard reserving only its own prefix",
			args:     []string{"rules", "check", "--standard", f["otherPrefix"]},
			wantCode: 2,
			wantErr:  []string{f["otherPrefix"] + ":" + f["reservedLine"] + ": " + f["reservedMessage"]},
		},
		{
			name:     "check bad rules",
			args:     []string{"rules", "check", "--standard", f["good"], "--rules", f["badrules"]},
			wantCode: 2,
			wantOut:  []string{"standard acme@1.0.0"},
			wantErr:  []string{filepath.Join(f["badrules"], "latest.yaml") + ": document 1 (line 1): ConstraintTemplate k8sdisallowlatest: CEL does not compile"},
		},
		{
			name:     "check a missing rules directory",
			args:     []string{"rules", "check", "--rules", f["rules"] + "-nope"},
			wantCode: 2,
			wantErr:  []string{"rules-nope"},
		},
		{
			name:     "check needs something to check",
			args:     []string{"rules", "check"},
			wantCode: 2,
			wantErr:  []string{"name a --standard FILE, a --rules DIR or both"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runRules(tc.args)
			if code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
			if tc.check != nil {
				tc.check(t, stdout)
			}
		})
	}
}

// showParsesBack checks that `rules show` prints a standard that parses
// back to want, with every label rule's action spelled out.
func showParsesBack(want *rules.Standard) func(t *testing.T, stdout string) {
	return func(t *testing.T, stdout string) {
		t.Helper()
		got, err := rules.Parse([]byte(stdout), "show output")
		if err != nil {
			t.Fatalf("show output does not parse: %v\n%s", err, stdout)
		}
		if got.Metadata != want.Metadata || len(got.Spec.Labels) != len(want.Spec.Labels) {
			t.Fatalf("show output is %v with %d rules, want %v with %d", got.Metadata, len(got.Spec.Labels), want.Metadata, len(want.Spec.Labels))
		}
		for i, r := range got.Spec.Labels {
			w := want.Spec.Labels[i]
			wantAction := w.Action
			if wantAction == "" {
				wantAction = rules.ActionDeny
			}
			if r.ID != w.ID || r.Key != w.Key || r.Pattern != w.Pattern || r.Action != wantAction ||
				strings.Join(r.Values, ",") != strings.Join(w.Values, ",") || r.MatchNamespace != w.MatchNamespace {
				t.Errorf("rule %d = %+v, want %+v with action %s", i, r, w, wantAction)
			}
		}
		if len(got.Spec.NetworkPolicies) != len(rules.NetworkPolicyRuleIDs) {
			t.Errorf("show lists %d NetworkPolicy rules, want all %d", len(got.Spec.NetworkPolicies), len(rules.NetworkPolicyRuleIDs))
		}
		if fmt.Sprint(got.Spec.Profiles.ByClassification) != fmt.Sprint(want.Spec.Profiles.ByClassification) {
			t.Errorf("profiles = %v, want %v", got.Spec.Profiles.ByClassification, want.Spec.Profiles.ByClassification)
		}
	}
}
