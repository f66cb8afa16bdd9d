package webhook

import (
	"slices"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// TestConfigurationsNeverLockTheClusterOut pins the safety properties of
// every webhook the chart installs.
func TestConfigurationsNeverLockTheClusterOut(t *testing.T) {
	m, v := WebhookConfigurations(ConfigurationOptions{Namespace: "sec", CABundle: []byte("ca")})
	type hook struct {
		name        string
		cc          admissionregistrationv1.WebhookClientConfig
		fail        *admissionregistrationv1.FailurePolicyType
		sel         []string
		timeout     *int32
		sideEffects *admissionregistrationv1.SideEffectClass
	}
	var hooks []hook
	for _, w := range m.Webhooks {
		hooks = append(hooks, hook{w.Name, w.ClientConfig, w.FailurePolicy, w.NamespaceSelector.MatchExpressions[0].Values, w.TimeoutSeconds, w.SideEffects})
	}
	for _, w := range v.Webhooks {
		hooks = append(hooks, hook{w.Name, w.ClientConfig, w.FailurePolicy, w.NamespaceSelector.MatchExpressions[0].Values, w.TimeoutSeconds, w.SideEffects})
	}
	if len(hooks) != 6 {
		t.Fatalf("%d webhooks, want 6", len(hooks))
	}
	paths := map[string]bool{}
	for _, h := range hooks {
		for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", "sec"} {
			if !slices.Contains(h.sel, ns) {
				t.Errorf("%s does not exclude namespace %s", h.name, ns)
			}
		}
		if *h.fail != admissionregistrationv1.Fail || *h.timeout != 3 || *h.sideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun {
			t.Errorf("%s: failurePolicy %s timeout %d sideEffects %s", h.name, *h.fail, *h.timeout, *h.sideEffects)
		}
		if h.cc.Service.Namespace != "sec" || string(h.cc.CABundle) != "ca" {
			t.Errorf("%s: client config %+v", h.name, h.cc)
		}
		paths[*h.cc.Service.Path] = true
	}
	for _, p := range []string{PathMutatePods, PathMutateNamespaces, PathValidatePods, PathValidateNamespaces, PathValidateWorkloads, PathValidateNetworkPolicy} {
		if !paths[p] {
			t.Errorf("no webhook routes to %s", p)
		}
	}
}

func TestSetEntries(t *testing.T) {
	for _, tc := range []struct {
		name             string
		current, entries map[string]string
		want             []jsonpatch.JsonPatchOperation
	}{
		{"nothing to add", map[string]string{"a": "1"}, nil, nil},
		{"no map yet", nil, map[string]string{"env": "prod"}, []jsonpatch.JsonPatchOperation{{Operation: "add", Path: "/metadata/labels", Value: map[string]any{"env": "prod"}}}},
		{"add and replace, escaped, sorted", map[string]string{"x": "1", "a/b": "0"}, map[string]string{"a/b": "2", "c~d": "3"}, []jsonpatch.JsonPatchOperation{
			{Operation: "replace", Path: "/metadata/labels/a~1b", Value: "2"},
			{Operation: "add", Path: "/metadata/labels/c~0d", Value: "3"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := setEntries("/metadata/labels", tc.current, tc.entries)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].Operation != tc.want[i].Operation || got[i].Path != tc.want[i].Path || summarizePatch(got[i]) != summarizePatch(tc.want[i]) {
					t.Errorf("op %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
	if got := summarizePatch(jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/labels", Value: map[string]any{"b": "2", "a": "1"}}); got != "add /metadata/labels={a=1,b=2}" {
		t.Errorf("summary = %q", got)
	}
}
