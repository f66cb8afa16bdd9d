package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

func TestParseReportsFileLineAndReason(t *testing.T) {
	head := "apiVersion: palisade.dev/v1alpha1\nkind: LabelingStandard\nmetadata: {name: s, version: '1'}\n"
	body := "spec:\n  identityLabels: [app]\n  profiles:\n    classificationLabel: c\n    defaultProfile: p\n    definitions: {p: {allowSameNamespaceIngress: false}}\n"
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"not yaml", "a: [\n", []string{"std.yaml:"}},
		{"unknown field", head + body + "  labelz: []\n", []string{`std.yaml:10: spec: unknown field "labelz" (one of: identityLabels, reservedPrefixes, privilegedGroups, labels, profiles, networkPolicies)`}},
		{"bad target", head + body + "  labels:\n  - {id: r, target: Pods, key: k, required: true}\n", []string{`std.yaml:11: labels[0] (r): unknown target "Pods" (one of: Namespace, Pod)`}},
		{"bad regex", head + body + "  labels:\n  - id: r\n    target: Pod\n    key: k\n    pattern: '['\n", []string{`std.yaml:14: labels[0] (r): invalid pattern "["`}},
		{"bad action", head + body + "  labels:\n  - {id: r, target: Pod, key: k, required: true, action: block}\n", []string{"std.yaml:11:", `"block"`}},
		{"wrong kind", strings.Replace(head, "LabelingStandard", "Standard", 1) + body, []string{`std.yaml:2: kind: got "Standard"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "std.yaml")
			if err == nil {
				t.Fatal("parsed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := Parse([]byte(head+body), "std.yaml"); err != nil {
		t.Errorf("minimal standard: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestDefaultRoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "default.yaml")
	if err := os.WriteFile(path, DefaultYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	std, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if std.Metadata.Name != "default" || len(std.Spec.Labels) != 6 || std.Source != path {
		t.Errorf("loaded %+v", std.Metadata)
	}
}

func TestBaselinePolicies(t *testing.T) {
	std := Default()
	for _, tc := range []struct {
		labels  map[string]string
		profile string
		names   []string
	}{
		{map[string]string{"data-classification": "pci"}, "restricted", []string{PolicyDefaultDeny, PolicyAllowDNS}},
		{map[string]string{"data-classification": "hipaa"}, "restricted", []string{PolicyDefaultDeny, PolicyAllowDNS}},
		{map[string]string{"data-classification": "public"}, "open-namespace", []string{PolicyDefaultDeny, PolicyAllowDNS, PolicyAllowSameNamespace}},
		{map[string]string{"data-classification": "internal"}, "open-namespace", []string{PolicyDefaultDeny, PolicyAllowDNS, PolicyAllowSameNamespace}},
		{nil, "restricted", []string{PolicyDefaultDeny, PolicyAllowDNS}},
		{map[string]string{"data-classification": "unknown"}, "restricted", []string{PolicyDefaultDeny, PolicyAllowDNS}},
	} {
		p := std.ProfileFor(tc.labels)
		if p.Name != tc.profile {
			t.Errorf("ProfileFor(%v) = %s, want %s", tc.labels, p.Name, tc.profile)
		}
		pols := BaselinePolicies("shop", p)
		var names []string
		for _, np := range pols {
			names = append(names, np.Name)
			if !IsManaged(&np) || np.Annotations[AnnotationProfile] != tc.profile || np.Namespace != "shop" {
				t.Errorf("%s: labels %v annotations %v", np.Name, np.Labels, np.Annotations)
			}
		}
		if strings.Join(names, ",") != strings.Join(tc.names, ",") {
			t.Errorf("%s: policies %v, want %v", tc.profile, names, tc.names)
		}
	}
	want := map[string]string{
		PolicyDefaultDeny:        "podSelector: {}\npolicyTypes:\n- Ingress\n- Egress\n",
		PolicyAllowDNS:           "egress:\n- ports:\n  - port: 53\n    protocol: UDP\n  - port: 53\n    protocol: TCP\n  to:\n  - namespaceSelector:\n      matchLabels:\n        kubernetes.io/metadata.name: kube-system\n    podSelector:\n      matchLabels:\n        k8s-app: kube-dns\npodSelector: {}\npolicyTypes:\n- Egress\n",
		PolicyAllowSameNamespace: "ingress:\n- from:\n  - podSelector: {}\npodSelector: {}\npolicyTypes:\n- Ingress\n",
	}
	for _, np := range BaselinePolicies("web", std.ProfileFor(map[string]string{"data-classification": "public"})) {
		got, err := yaml.Marshal(np.Spec)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want[np.Name] {
			t.Errorf("%s spec:\n%s\nwant:\n%s", np.Name, got, want[np.Name])
		}
	}
	if IsManaged(nil) || IsManaged((*networkingv1.NetworkPolicy)(nil)) {
		t.Error("IsManaged(nil) = true")
	}
}

func TestGroupsAndIdentity(t *testing.T) {
	e := defaultEvaluator(t)
	if !e.IsPrivileged([]string{"system:authenticated", "system:masters"}) || e.IsPrivileged([]string{"developers"}) || e.IsPrivileged(nil) {
		t.Error("IsPrivileged")
	}
	for k, want := range map[string]bool{"app": true, "tier": true, "env": true, "version": false, "pod-template-hash": false} {
		if e.IsIdentityLabel(k) != want {
			t.Errorf("IsIdentityLabel(%s) = %v", k, !want)
		}
	}
}
