package chart_test

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestLint runs `helm lint`'s linters (Chart.yaml, values, templates with
// the schema, dependencies) for the defaults and the matrix: not even an
// INFO message.
func TestLint(t *testing.T) {
	kv := &chartutil.KubeVersion{Version: kubeVersion, Major: "1", Minor: "36"}
	cases := map[string]map[string]any{"defaults": nil}
	for _, o := range matrix() {
		cases[o.String()] = o.values()
	}
	for name, vals := range cases {
		t.Run(name, func(t *testing.T) {
			l := lint.AllWithKubeVersion(chartDir, withSite(t, vals), releaseNS, kv)
			for _, m := range l.Messages {
				if m.Severity >= support.InfoSev {
					t.Errorf("lint: %s", m)
				}
			}
		})
	}
}

// TestSchemaRejectsBadValues: every bad value fails the install with a
// message naming the value.
func TestSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string // in the error: the value's path
	}{
		{"unknown cert mode", values("certs.mode", "letsencrypt"), "/certs/mode"},
		{"replicas as text", values("webhook.replicas", "two"), "/webhook/replicas"},
		{"zero replicas", values("webhook.replicas", 0), "/webhook/replicas"},
		{"timeout above 30s", values("webhook.timeoutSeconds", 31), "/webhook/timeoutSeconds"},
		{"port out of range", values("webhook.port", 70000), "/webhook/port"},
		{"misspelt top-level value", map[string]any{"webhooks": map[string]any{"replicas": 2}}, "webhooks"},
		{"misspelt nested value", values("webhook.replica", 2), "replica"},
		{"anti-affinity", values("webhook.antiAffinity", "strict"), "/webhook/antiAffinity"},
		{"pull policy", values("image.pullPolicy", "Sometimes"), "/image/pullPolicy"},
		{"digest", values("image.digest", "md5:abc"), "/image/digest"},
		{"custom rule file name", map[string]any{"customRules": map[string]any{"rules.json": "{}"}}, "rules.json"},
		{"maxUnavailable zero", values("enforcer.updateStrategy.maxUnavailable", 0), "/enforcer/updateStrategy/maxUnavailable"},
		{"cert-manager duration unit", values("certs.certManager.duration", "1y"), "/certs/certManager/duration"},
		{"caBundle not PEM", values("certs.mode", "secret", "certs.secretName", "x", "certs.caBundle", "not a certificate"), "/certs/caBundle"},
		{"tests namespace", values("tests.namespace", "Not_A_Namespace"), "/tests/namespace"},
		{"seccomp", values("enforcer.seccompProfile.type", "Off"), "/enforcer/seccompProfile/type"},
		{"service range without length", values("enforcer.serviceCIDRs", []any{"10.96.0.0"}), "/enforcer/serviceCIDRs/0"},
		{"service range length above 32", values("enforcer.serviceCIDRs", []any{"10.96.0.0/12", "10.0.0.0/33"}), "/enforcer/serviceCIDRs/1"},
		{"service range a host name", values("enforcer.serviceCIDRs", []any{"services.local/12"}), "/enforcer/serviceCIDRs/0"},
		{"IPv6 service range length above 128", values("enforcer.serviceCIDRs", []any{"fd00:96::/129"}), "/enforcer/serviceCIDRs/0"},
		{"service ranges as one string", values("enforcer.serviceCIDRs", "10.96.0.0/12"), "/enforcer/serviceCIDRs"},
		{"uplink name with a slash", values("enforcer.uplinkInterfaces", []any{"eth0/1"}), "/enforcer/uplinkInterfaces/0"},
		{"pod interface pattern with a comma", values("enforcer.podInterfaces", []any{"veth*,cali*"}), "/enforcer/podInterfaces/0"},
		{"uplink name too long", values("enforcer.uplinkInterfaces", []any{"a-very-long-interface"}), "/enforcer/uplinkInterfaces/0"},
		{"map size zero", values("enforcer.maps.policy", 0), "/enforcer/maps/policy"},
		{"map size above 16M", values("enforcer.maps.conntrack", 16777217), "/enforcer/maps/conntrack"},
		{"map size as text", values("enforcer.maps.ipIdentity", "1M"), "/enforcer/maps/ipIdentity"},
		{"map size fractional", values("enforcer.maps.endpoints", 10.5), "/enforcer/maps/endpoints"},
		{"unknown map", values("enforcer.maps.events", 4096), "events"},
		// Relations the schema cannot express fail in the templates, naming the values.
		{"secret mode without secret", values("certs.mode", "secret", "certs.caBundle", testCA), "certs.secretName"},
		{"secret mode without CA", values("certs.mode", "secret", "certs.secretName", "mine"), "certs.caBundle"},
		{"CA outside secret mode", values("certs.caBundle", testCA), "certs.caBundle"},
		{"renewBefore above duration", values("certs.mode", "cert-manager", "certs.certManager.renewBefore", "9000h"), "renewBefore (9000h) < duration (8760h)"},
		{"tests in release namespace", values("tests.namespace", releaseNS), "tests.namespace"},
		{"uplinks without service ranges", values("enforcer.serviceCIDRs", []any{}, "enforcer.uplinkInterfaces", []any{"eth0"}), "enforcer.uplinkInterfaces: needs enforcer.serviceCIDRs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderValues(t, defaultRelease, tc.vals)
			if err == nil {
				t.Fatalf("values %s: rendered, want an error naming %s", describe(tc.vals), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("values %s: error does not name %s:\n%v", describe(tc.vals), tc.want, err)
			}
			t.Logf("%s -> %v", describe(tc.vals), strings.TrimSpace(err.Error()))
		})
	}

	t.Run("system namespace", func(t *testing.T) {
		_, err := renderValues(t, rel{"palisade", "kube-system"}, nil)
		if err == nil || !strings.Contains(err.Error(), `release namespace "kube-system"`) {
			t.Fatalf("install into kube-system: %v, want a refusal naming the namespace", err)
		}
	})
}
