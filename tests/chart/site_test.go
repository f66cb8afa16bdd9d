package chart_test

import (
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// The chart refuses to install without two facts about the cluster (see
// TestBareDefaultsRefuseToInstall): the CA of the API server's webhook
// client certificate and the control plane's addresses. siteValues are
// this test cluster's; every render, lint and install adds them under its
// own values, as a platform team's values file would.
var (
	siteOnce sync.Once
	siteDir  string
	siteAuth *testenv.WebhookClientAuth
	siteErr  error
)

// controlPlaneCIDR is where the test API server's connections come from.
const controlPlaneCIDR = "127.0.0.1/32"

// site returns the test cluster's webhook client authentication: its CA
// goes into the values, its AdmissionConfiguration into every API server
// that calls a chart-installed webhook.
func site(t testing.TB) *testenv.WebhookClientAuth {
	t.Helper()
	siteOnce.Do(func() {
		if siteDir, siteErr = os.MkdirTemp("", "palisade-chart-site-"); siteErr == nil {
			siteAuth, siteErr = testenv.NewWebhookClientAuth(siteDir)
		}
	})
	if siteErr != nil {
		t.Fatalf("create the site's webhook client CA: %v", siteErr)
	}
	return siteAuth
}

// removeSite deletes the site's files (TestMain, at exit).
func removeSite() {
	if siteDir != "" {
		os.RemoveAll(siteDir)
	}
}

func siteValues(t testing.TB) map[string]any {
	t.Helper()
	ca, err := os.ReadFile(site(t).CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"webhook": map[string]any{
		"clientAuth":    map[string]any{"caBundle": string(ca), "allowedNames": []any{site(t).ClientName}},
		"networkPolicy": map[string]any{"controlPlaneCIDRs": []any{controlPlaneCIDR}},
	}}
}

// withSite returns vals over the site's values. A test that sets the
// client authentication mode or its own CA gets no site CA.
func withSite(t testing.TB, vals map[string]any) map[string]any {
	t.Helper()
	base := siteValues(t)
	if auth, ok := nested(vals, "webhook", "clientAuth"); ok {
		if _, own := auth["mode"]; own || auth["caBundle"] != nil || auth["caConfigMap"] != nil {
			delete(base["webhook"].(map[string]any), "clientAuth")
		}
	}
	return mergeValues(base, vals)
}

// siteValuesFile writes the site's values for the helm CLI (-f).
func siteValuesFile(t testing.TB) string {
	t.Helper()
	data, err := yaml.Marshal(siteValues(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "site-values.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mergeValues returns over merged onto base, maps merged key by key.
func mergeValues(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = mergeValues(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func nested(m map[string]any, path ...string) (map[string]any, bool) {
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}
