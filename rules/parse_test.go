package rules

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testStandard is a small valid standard; the error table edits it, so
// its line numbers matter (noted on the right of the lines cases touch).
const testStandard = `apiVersion: palisade.dev/v1alpha1
kind: LabelingStandard
metadata:
  name: test
  version: "1"
spec:
  identityLabels: [app, tier]
  reservedPrefixes: [palisade.dev/]
  privilegedGroups: ["system:masters"]
  labels:
  - id: pod-app
    target: Pod
    key: app
    required: true
    pattern: '[a-z]+'
  - id: ns-class
    target: Namespace
    key: class
    values: [public, pci]
  profiles:
    classificationLabel: class
    defaultProfile: closed
    byClassification: {public: open, pci: closed}
    definitions:
      open: {allowSameNamespaceIngress: true}
      closed: {}
  networkPolicies:
  - id: netpol-open-cidr
    action: warn
    classifications: [pci]
`

func TestParseValid(t *testing.T) {
	std, err := Parse([]byte(testStandard), "std.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Standard{
		APIVersion: APIVersion, Kind: Kind,
		Metadata: Metadata{Name: "test", Version: "1"},
		Spec: Spec{
			IdentityLabels:   []string{"app", "tier"},
			ReservedPrefixes: []string{"palisade.dev/"},
			PrivilegedGroups: []string{"system:masters"},
			Labels: []LabelRule{
				{ID: "pod-app", Target: TargetPod, Key: "app", Required: true, Pattern: "[a-z]+", Line: 11},
				{ID: "ns-class", Target: TargetNamespace, Key: "class", Values: []string{"public", "pci"}, Line: 16},
			},
			Profiles: Profiles{
				ClassificationLabel: "class",
				DefaultProfile:      "closed",
				ByClassification:    map[string]string{"public": "open", "pci": "closed"},
				Definitions: map[string]Profile{
					"open":   {Name: "open", AllowSameNamespaceIngress: true},
					"closed": {Name: "closed"},
				},
			},
			NetworkPolicies: []NetworkPolicyRule{{ID: RuleOpenCIDR, Action: ActionWarn, Classifications: []string{"pci"}, Line: 28}},
		},
		Source: "std.yaml",
	}
	if !reflect.DeepEqual(std, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", std, want)
	}
}

func TestParseErrors(t *testing.T) {
	edit := func(old, new string) string {
		if strings.Count(testStandard, old) != 1 {
			t.Fatalf("edit: %q is not in testStandard exactly once", old)
		}
		return strings.Replace(testStandard, old, new, 1)
	}
	deep := strings.Repeat("(", 1000) + "a" + strings.Repeat(")", 1000)
	for _, tc := range []struct {
		name, doc string
		want      string // the whole error, one problem per line
	}{
		// The document's shape.
		{"malformed YAML", "a: [\n", "std.yaml:1: invalid YAML: did not find expected node content"},
		{"YAML error mid-file", edit("    key: app\n", "    key: app: x\n"), "std.yaml:13: invalid YAML: mapping values are not allowed in this context"},
		{"empty", "", "std.yaml: empty document; expected a LabelingStandard"},
		{"only a comment", "# nothing\n", "std.yaml: empty document; expected a LabelingStandard"},
		{"null document", "~\n", "std.yaml:1: empty document; expected a LabelingStandard"},
		{"two documents", "a: 1\n---\nb: 2\n", "std.yaml:2: a second YAML document; a standard is exactly one document"},
		{"broken second document", "a: 1\n---\n- [\n", "std.yaml:3: invalid YAML: did not find expected node content"},
		{"top-level list", "- a\n", "std.yaml:1: expected a mapping at the top of the document, got a list"},
		{"top-level scalar", "x\n", `std.yaml:1: expected a mapping at the top of the document, got "x"`},
		{"unknown anchor", edit("  - id: ns-class\n    target: Namespace\n    key: class\n    values: [public, pci]\n", "  - *nope\n"), "std.yaml: invalid YAML: unknown anchor 'nope' referenced"},
		{"unknown top-level field", edit("kind: LabelingStandard\n", "kind: LabelingStandard\nspecs: {}\n"),
			`std.yaml:3: unknown field "specs" (one of: apiVersion, kind, metadata, spec)`},
		{"unknown rule field", edit("    required: true\n", "    requird: true\n"),
			`std.yaml:14: labels[0]: unknown field "requird" (one of: id, target, key, required, pattern, values, inheritFromNamespace, matchNamespace, action, description, hint)`},
		{"unknown profile field", edit("      closed: {}\n", "      closed: {allowSameNamespaceIngres: true}\n"),
			`std.yaml:26: profiles.definitions.closed: unknown field "allowSameNamespaceIngres" (one of: allowSameNamespaceIngress)`},
		{"duplicate key", edit("    key: app\n", "    key: app\n    key: app2\n"), `std.yaml:14: labels[0]: duplicate key "key" (first at line 13)`},
		{"merge key", edit("    key: app\n", "    key: app\n    <<: {x: 1}\n"), "std.yaml:14: labels[0]: merge keys (<<) are not supported; write the fields out"},
		{"scalar for a list", edit("[app, tier]", "app"), `std.yaml:7: identityLabels: expected a list, got "app"`},
		{"list for a string", edit("[app, tier]", "[app, [tier]]"), "std.yaml:7: identityLabels[1]: expected a string, got a list"},
		{"mapping for a string", edit("  name: test\n", "  name: {x: 1}\n"), "std.yaml:4: metadata.name: expected a string, got a mapping"},
		{"string for a bool", edit("required: true", "required: yes"), `std.yaml:14: labels[0].required: expected true or false, got "yes"`},
		{"list for a mapping", edit("    byClassification: {public: open, pci: closed}\n", "    byClassification: [open]\n"), "std.yaml:23: profiles.byClassification: expected a mapping, got a list"},

		// The header.
		{"wrong apiVersion, no kind", edit("apiVersion: palisade.dev/v1alpha1\nkind: LabelingStandard\n", "apiVersion: v1\n"), "" +
			`std.yaml:1: apiVersion: got "v1", want "palisade.dev/v1alpha1"` + "\n" +
			`std.yaml:1: kind: got nothing, want "LabelingStandard"`},
		{"wrong kind", edit("kind: LabelingStandard", "kind: Standard"), `std.yaml:2: kind: got "Standard", want "LabelingStandard"`},
		{"no version", edit("  version: \"1\"\n", ""), "std.yaml:3: metadata.version: missing; every decision record names the standard's version"},
		{"no metadata", edit("metadata:\n  name: test\n  version: \"1\"\n", ""), "" +
			"std.yaml:1: metadata.name: missing; name the standard\n" +
			"std.yaml:1: metadata.version: missing; every decision record names the standard's version"},

		// Identity labels, reserved prefixes, groups.
		{"no identity labels", edit("  identityLabels: [app, tier]\n", ""), "std.yaml:6: identityLabels: missing; list the pod label keys that make a workload's identity, e.g. [app, tier, env]"},
		{"duplicate identity label", edit("[app, tier]", "[app, tier, app]"), `std.yaml:7: identityLabels[2]: duplicate "app" (also identityLabels[0])`},
		{"identity label under reserved prefix", edit("[app, tier]", "[app, palisade.dev/tier]"), `std.yaml:7: identityLabels[1]: key palisade.dev/tier is under reserved prefix "palisade.dev/", which users cannot set`},
		{"empty prefix", edit("[palisade.dev/]", `[" "]`), "std.yaml:8: reservedPrefixes[0]: empty prefix would reserve every key"},
		{"prefix with a line break", edit("[palisade.dev/]", `["a\nb/"]`), "std.yaml:8: reservedPrefixes[0]: prefix must be one line; it is part of one-line messages"},
		{"palisade.dev/ not reserved", edit("  reservedPrefixes: [palisade.dev/]\n", "  reservedPrefixes: [corp.example/]\n"),
			`std.yaml:8: reservedPrefixes: must include "palisade.dev/": Palisade's own keys (exemptions, rule actions, enforcement mode) are reserved whatever the standard says`},
		{"no reserved prefixes", edit("  reservedPrefixes: [palisade.dev/]\n", "  reservedPrefixes: []\n"),
			`std.yaml:8: reservedPrefixes: must include "palisade.dev/": Palisade's own keys (exemptions, rule actions, enforcement mode) are reserved whatever the standard says`},
		{"reserved prefixes left out", edit("  reservedPrefixes: [palisade.dev/]\n", ""),
			`std.yaml:6: reservedPrefixes: must include "palisade.dev/": Palisade's own keys (exemptions, rule actions, enforcement mode) are reserved whatever the standard says`},
		{"bad groups", edit(`["system:masters"]`, `["", "a\nb"]`), "" +
			"std.yaml:9: privilegedGroups[0]: empty group name\n" +
			"std.yaml:9: privilegedGroups[1]: group name must be one line; it is part of one-line messages"},

		// Label rules.
		{"bad target", edit("target: Pod\n", "target: Pods\n"), `std.yaml:12: labels[0] (pod-app): unknown target "Pods" (one of: Namespace, Pod)`},
		{"no target", edit("    target: Pod\n", ""), "std.yaml:11: labels[0] (pod-app): missing target (one of: Namespace, Pod)"},
		{"bad action", edit("    pattern: '[a-z]+'\n", "    pattern: '[a-z]+'\n    action: block\n"), `std.yaml:16: labels[0] (pod-app): unknown action "block" (one of: deny, warn, dryrun)`},
		{"bad regex", edit("'[a-z]+'", "'[a-z'"), "std.yaml:15: labels[0] (pod-app): invalid pattern \"[a-z\": error parsing regexp: missing closing ]: `[a-z`"},
		{"pattern with a line break", edit("'[a-z]+'", `"a\nb"`), `std.yaml:15: labels[0] (pod-app): pattern must be one line (write a line break as \n); it is part of one-line messages`},
		{"pattern too deep once anchored", edit("'[a-z]+'", "'"+deep+"'"), `std.yaml:15: labels[0] (pod-app): invalid pattern "` + deep[:80] + `"...: error parsing regexp: expression nests too deeply: ` + "`" + deep + "`"},
		{"duplicate id", edit("id: ns-class", "id: pod-app"), `std.yaml:16: labels[1] (pod-app): duplicate id "pod-app" (first at labels[0] line 11)`},
		{"id of a guard rule", edit("id: ns-class", "id: reserved-key"), `std.yaml:16: labels[1] (reserved-key): duplicate id "reserved-key" (first at a built-in rule)`},
		{"id of a NetworkPolicy rule", edit("id: ns-class", "id: netpol-open-cidr"), `std.yaml:16: labels[1] (netpol-open-cidr): duplicate id "netpol-open-cidr" (first at a built-in NetworkPolicy rule)`},
		{"no id", edit("  - id: ns-class\n    target", "  - target"), "std.yaml:16: labels[1]: missing id"},
		{"invalid id", edit("id: ns-class", "id: 'ns class'"), `std.yaml:16: labels[1] (ns class): invalid id "ns class": letters, digits, '-', '.' and '_', starting and ending with a letter or digit, at most 63`},
		{"id with a line break stays on one line", edit("id: ns-class", `id: "a\nb"`), `std.yaml:16: labels[1] (a\nb): invalid id "a\nb": letters, digits, '-', '.' and '_', starting and ending with a letter or digit, at most 63`},
		{"second rule for a key", edit("    target: Namespace\n    key: class\n", "    target: Pod\n    key: app\n"),
			"std.yaml:18: labels[1] (ns-class): a second rule for Pod label app (first: labels[0] (pod-app) line 11)"},
		{"bad values", edit("values: [public, pci]", "values: [public, pci, public, 'no way', PCI]\n    pattern: '[a-z]+'"), "" +
			`std.yaml:19: labels[1] (ns-class): duplicate value "public" (also values[0])` + "\n" +
			`std.yaml:19: labels[1] (ns-class): invalid label value "no way": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')` + "\n" +
			`std.yaml:19: labels[1] (ns-class): value "no way" does not match the rule's pattern [a-z]+` + "\n" +
			`std.yaml:19: labels[1] (ns-class): value "PCI" does not match the rule's pattern [a-z]+`},
		{"inheritance on a namespace rule", edit("    values: [public, pci]\n", "    values: [public, pci]\n    inheritFromNamespace: true\n"),
			"std.yaml:16: labels[1] (ns-class): inheritFromNamespace and matchNamespace apply to Pod rules only"},
		{"rule checks nothing", edit("    required: true\n    pattern: '[a-z]+'\n", ""),
			"std.yaml:11: labels[0] (pod-app): rule checks nothing; set required, pattern, values, inheritFromNamespace or matchNamespace"},
		{"required without constraint", edit("    pattern: '[a-z]+'\n", ""),
			"std.yaml:11: labels[0] (pod-app): required label has neither pattern nor values, so any value (even empty) passes; constrain it"},
		{"hint of two lines", edit("    pattern: '[a-z]+'\n", "    pattern: '[a-z]+'\n    hint: \"two\\nlines\"\n"),
			"std.yaml:16: labels[0] (pod-app): hint must be one line; it is part of one-line messages"},
		{"invalid key", edit("    key: app\n", "    key: 'Bad Key!'\n"),
			`std.yaml:13: labels[0] (pod-app): invalid label key "Bad Key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{"reserved key", edit("    key: app\n", "    key: palisade.dev/app\n"),
			`std.yaml:13: labels[0] (pod-app): key palisade.dev/app is under reserved prefix "palisade.dev/", which users cannot set`},
		{"empty key", edit("    key: app\n", "    key: ''\n"), "std.yaml:13: labels[0] (pod-app): missing key"},

		// Profiles.
		{"no classification label", edit("    classificationLabel: class\n", ""), "std.yaml:20: profiles.classificationLabel: missing; name the namespace label that holds the data classification"},
		{"invalid classification label", edit("classificationLabel: class", "classificationLabel: 'a b'"),
			`std.yaml:21: profiles.classificationLabel: invalid label key "a b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{"no default profile", edit("    defaultProfile: closed\n", ""), "std.yaml:20: profiles.defaultProfile: missing; name the profile of namespaces without a known classification"},
		{"undefined default profile", edit("defaultProfile: closed", "defaultProfile: shut"), `std.yaml:22: profiles.defaultProfile: profile "shut" is not defined (defined: closed, open)`},
		{"bad classification mapping", edit("{public: open, pci: closed}", "{public: open, pci: shut, secret: closed}"), "" +
			`std.yaml:23: profiles.byClassification.pci: profile "shut" is not defined (defined: closed, open)` + "\n" +
			`std.yaml:23: profiles.byClassification.secret: classification "secret" is not a value of rule ns-class (one of: public, pci)`},
		{"invalid profile name", edit("      closed: {}\n", "      Closed!: {}\n      closed: {}\n"),
			`std.yaml:26: profiles.definitions.Closed!: invalid profile name "Closed!": it is written into the palisade.dev/profile annotation and must be a valid label value`},
		{"no definitions", edit("    definitions:\n      open: {allowSameNamespaceIngress: true}\n      closed: {}\n", ""),
			"std.yaml:20: profiles.definitions: missing; define at least one profile"},

		// NetworkPolicy rules.
		{"unknown netpol id", edit("  - id: netpol-open-cidr\n", "  - id: netpol-open-cidrs\n"),
			`std.yaml:28: networkPolicies[0] (netpol-open-cidrs): unknown id "netpol-open-cidrs" (one of: netpol-managed-readonly, netpol-non-identity-selector, netpol-egress-without-dns, netpol-open-cidr, netpol-regulated-all-namespaces)`},
		{"relaxed guard", edit("  - id: netpol-open-cidr\n    action: warn\n    classifications: [pci]\n", "  - id: netpol-managed-readonly\n    action: warn\n"),
			"std.yaml:29: networkPolicies[0] (netpol-managed-readonly): netpol-managed-readonly guards Palisade's baseline policies and always denies; remove the action or set deny"},
		{"no netpol id", edit("  - id: netpol-open-cidr\n    action: warn\n", "  - action: warn\n"),
			"std.yaml:28: networkPolicies[0]: missing id (one of: netpol-managed-readonly, netpol-non-identity-selector, netpol-egress-without-dns, netpol-open-cidr, netpol-regulated-all-namespaces)"},
		{"bad netpol rules", edit("    classifications: [pci]\n", "    classifications: [pci, '', secret]\n  - id: netpol-open-cidr\n    action: allow\n"), "" +
			"std.yaml:30: networkPolicies[0] (netpol-open-cidr): empty classification\n" +
			`std.yaml:30: networkPolicies[0] (netpol-open-cidr): classification "secret" is not a value of rule ns-class (one of: public, pci)` + "\n" +
			`std.yaml:31: networkPolicies[1] (netpol-open-cidr): duplicate id "netpol-open-cidr" (first at networkPolicies[0] line 28)` + "\n" +
			`std.yaml:32: networkPolicies[1] (netpol-open-cidr): unknown action "allow" (one of: deny, warn, dryrun)`},

		// Several problems: all of them, in line order; structural ones
		// alone, as checks of a half-decoded document would only echo them.
		{"structural problems stop the semantic checks", edit("kind: LabelingStandard", "kind: Standard") + "  extra: 1\n",
			`std.yaml:31: spec: unknown field "extra" (one of: identityLabels, reservedPrefixes, privilegedGroups, labels, profiles, networkPolicies)`},
		{"semantic problems in line order", strings.Replace(edit("defaultProfile: closed", "defaultProfile: shut"), "target: Pod\n", "target: Pods\n", 1), "" +
			`std.yaml:12: labels[0] (pod-app): unknown target "Pods" (one of: Namespace, Pod)` + "\n" +
			`std.yaml:22: profiles.defaultProfile: profile "shut" is not defined (defined: closed, open)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			std, err := Parse([]byte(tc.doc), "std.yaml")
			if err == nil {
				t.Fatalf("parsed: %+v", std)
			}
			if std != nil {
				t.Errorf("a failed parse returned a standard")
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// A prefix wider than palisade.dev/ reserves it too.
func TestWiderReservedPrefix(t *testing.T) {
	std, err := Parse([]byte(strings.Replace(testStandard, "[palisade.dev/]", "[palisade.]", 1)), "std.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEvaluator(std)
	if err != nil {
		t.Fatal(err)
	}
	if !e.IsReservedKey(AnnotationExempt) {
		t.Error("palisade.dev/exempt is not reserved under palisade.")
	}
	// A standard built in code is held to the same rule.
	std.Spec.ReservedPrefixes = nil
	if _, err := NewEvaluator(std); err == nil || !strings.Contains(err.Error(), `reservedPrefixes: must include "palisade.dev/"`) {
		t.Errorf("NewEvaluator without palisade.dev/: %v", err)
	}
}

func TestParseWithoutSource(t *testing.T) {
	_, err := Parse([]byte("x"), "")
	if want := `standard:1: expected a mapping at the top of the document, got "x"`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	for name, data := range map[string]string{good: testStandard, bad: strings.Replace(testStandard, "kind: LabelingStandard", "kind: Standard", 1)} {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	std, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if std.Source != good || std.Metadata.Name != "test" {
		t.Errorf("Load: source %q, name %q", std.Source, std.Metadata.Name)
	}
	if _, err := Load(bad); err == nil || err.Error() != bad+`:2: kind: got "Standard", want "LabelingStandard"` {
		t.Errorf("Load of an invalid file: %v", err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	_, err = Load(missing)
	if err == nil || err.Error() != "load standard: open "+missing+": no such file or directory" {
		t.Errorf("Load of a missing file: %v", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v does not wrap fs.ErrNotExist", err)
	}
}

func TestDefault(t *testing.T) {
	a, b := Default(), Default()
	if a == b || &a.Spec.Labels[0] == &b.Spec.Labels[0] {
		t.Error("Default returns shared state")
	}
	if a.Source != DefaultSource || a.Metadata.Name != "default" || a.Metadata.Version != "1.0.0" {
		t.Errorf("Default: source %q metadata %+v", a.Source, a.Metadata)
	}
	var ids []string
	for _, r := range a.Spec.Labels {
		ids = append(ids, string(r.Target)+"/"+r.ID+"/"+r.Key)
	}
	if got, want := strings.Join(ids, " "), "Namespace/ns-owner/owner Namespace/ns-env/env Namespace/ns-data-classification/data-classification Pod/pod-app/app Pod/pod-tier/tier Pod/pod-env/env"; got != want {
		t.Errorf("default rules %s, want %s", got, want)
	}
	// DefaultYAML is a copy: editing it changes neither later calls nor Default.
	y := DefaultYAML()
	y[0] = 'X'
	if DefaultYAML()[0] == 'X' {
		t.Error("DefaultYAML returns the embedded bytes")
	}
	path := filepath.Join(t.TempDir(), "default.yaml")
	if err := os.WriteFile(path, DefaultYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	loaded.Source = DefaultSource
	if !reflect.DeepEqual(loaded, Default()) {
		t.Error("the default standard does not round-trip through a file")
	}
}

func TestNewEvaluatorValidates(t *testing.T) {
	if _, err := NewEvaluator(nil); err == nil || err.Error() != "new evaluator: no standard" {
		t.Errorf("NewEvaluator(nil): %v", err)
	}
	// A standard built in code gets Parse's checks, without lines.
	std := Default()
	std.Source = "code"
	std.Spec.Labels[3].Pattern = "(["
	std.Spec.Labels = append(std.Spec.Labels, LabelRule{ID: "pod-tier", Target: TargetPod, Key: "team", Required: true, Values: []string{"a"}})
	_, err := NewEvaluator(std)
	want := "new evaluator: code: labels[3] (pod-app): invalid pattern \"([\": error parsing regexp: missing closing ]: `[`\n" +
		`code: labels[6] (pod-tier): duplicate id "pod-tier" (first at labels[4])`
	if err == nil || err.Error() != want {
		t.Errorf("NewEvaluator: %v\nwant:\n%s", err, want)
	}
	if _, err := NewEvaluator(&Standard{}); err == nil || !strings.HasPrefix(err.Error(), `new evaluator: standard: apiVersion: got nothing, want "palisade.dev/v1alpha1"`) {
		t.Errorf("NewEvaluator(zero standard): %v", err)
	}
}
