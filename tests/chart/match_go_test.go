package chart_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/palisade-dev/palisade/certs"
	"github.com/palisade-dev/palisade/rules"
	"github.com/palisade-dev/palisade/webhook"
)

// testCA is a real self-signed CA certificate (its key was discarded): the
// caBundle of mode "secret".
const testCA = `-----BEGIN CERTIFICATE-----
MIIBejCCASCgAwIBAgIBATAKBggqhkjOPQQDAjAbMRkwFwYDVQQDDBBwYWxpc2Fk
ZS10ZXN0LWNhMCAXDTI2MTEyMzA4MzExMFoYDzIxMjYxMDMwMDgzMTEwWjAbMRkw
FwYDVQQDDBBwYWxpc2FkZS10ZXN0LWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD
QgAEmx7psvXZW9P1Z7AxH1EJnFKOd4jww28j1oKiDJ9OAsp35uj+Rws+0PqUBJxG
yP3j2lnzDLavI89NIGgT7EgfE6NTMFEwHQYDVR0OBBYEFJTw1dfXy4sM/HjxUsOQ
3DvDprTzMB8GA1UdIwQYMBaAFJTw1dfXy4sM/HjxUsOQ3DvDprTzMA8GA1UdEwEB
/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAIUBRDctCzp+0cZxEPRzUp9y9kM8
BWIbIKAOfMOgWuh2AiB4ZHjhfqK9qp9Upjh95SSk6c5x2bEJx4SJk+6XhcjFmg==
-----END CERTIFICATE-----
`

// TestWebhookConfigurationsMatchGo renders the chart and compares both
// webhook configurations, webhook by webhook and field by field, with
// webhook.WebhookConfigurations for the same namespace, Service, timeout and
// CA bundle: the Go function is the single source of truth.
func TestWebhookConfigurationsMatchGo(t *testing.T) {
	cases := []struct {
		name string
		rel  rel
		vals map[string]any
		opts webhook.ConfigurationOptions
	}{
		{"defaults", defaultRelease, nil,
			webhook.ConfigurationOptions{Namespace: releaseNS, ServiceName: "palisade-webhook"}},
		{"other namespace and release", rel{"prod", "security"}, nil,
			webhook.ConfigurationOptions{Namespace: "security", ServiceName: "prod-palisade-webhook"}},
		{"timeout 10", defaultRelease, values("webhook.timeoutSeconds", 10),
			webhook.ConfigurationOptions{Namespace: releaseNS, ServiceName: "palisade-webhook", TimeoutSeconds: 10}},
		{"cert-manager", defaultRelease, values("certs.mode", "cert-manager"),
			webhook.ConfigurationOptions{Namespace: releaseNS, ServiceName: "palisade-webhook"}},
		{"custom rules", defaultRelease, map[string]any{"customRules": map[string]any{"cost-center.yaml": costCenterRule}},
			webhook.ConfigurationOptions{Namespace: releaseNS, ServiceName: "palisade-webhook", CustomRules: true}},
		{"own secret with CA bundle", defaultRelease, values("certs.mode", "secret", "certs.secretName", "my-tls", "certs.caBundle", testCA),
			webhook.ConfigurationOptions{Namespace: releaseNS, ServiceName: "palisade-webhook", CABundle: []byte(testCA)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.rel, tc.vals)
			wantM, wantV := webhook.WebhookConfigurations(tc.opts)
			gotM := typed[admissionregistrationv1.MutatingWebhookConfiguration](t, r.one(t, "MutatingWebhookConfiguration", ""))
			gotV := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.one(t, "ValidatingWebhookConfiguration", ""))
			if gotM.Name != wantM.Name || gotV.Name != wantV.Name {
				t.Errorf("names: chart %s, %s; Go %s, %s", gotM.Name, gotV.Name, wantM.Name, wantV.Name)
			}
			compareWebhooks(t, "mutating", mutatingFields(wantM.Webhooks), mutatingFields(gotM.Webhooks))
			compareWebhooks(t, "validating", validatingFields(wantV.Webhooks), validatingFields(gotV.Webhooks))

			for _, meta := range []map[string]string{gotM.Annotations, gotV.Annotations} {
				got := meta[certs.InjectCAFromAnnotation]
				want := ""
				if tc.name == "cert-manager" {
					want = certs.CAInjectionAnnotations(certs.CertManagerOptions{Namespace: releaseNS, ServiceName: "palisade-webhook", SecretName: "x"})[certs.InjectCAFromAnnotation]
				}
				if got != want {
					t.Errorf("annotation %s = %q, want %q", certs.InjectCAFromAnnotation, got, want)
				}
			}
		})
	}
}

// webhookFields are the fields of one webhook that decide what the API
// server sends to it and how it treats failures.
type webhookFields struct {
	Name                    string
	ClientConfig            admissionregistrationv1.WebhookClientConfig
	Rules                   []admissionregistrationv1.RuleWithOperations
	FailurePolicy           *admissionregistrationv1.FailurePolicyType
	MatchPolicy             *admissionregistrationv1.MatchPolicyType
	NamespaceSelector       any
	ObjectSelector          any
	SideEffects             *admissionregistrationv1.SideEffectClass
	TimeoutSeconds          *int32
	AdmissionReviewVersions []string
	MatchConditions         []admissionregistrationv1.MatchCondition
	ReinvocationPolicy      *admissionregistrationv1.ReinvocationPolicyType
}

func mutatingFields(ws []admissionregistrationv1.MutatingWebhook) []webhookFields {
	out := make([]webhookFields, len(ws))
	for i, w := range ws {
		out[i] = webhookFields{w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.MatchPolicy, w.NamespaceSelector, w.ObjectSelector,
			w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchConditions, w.ReinvocationPolicy}
	}
	return out
}

func validatingFields(ws []admissionregistrationv1.ValidatingWebhook) []webhookFields {
	out := make([]webhookFields, len(ws))
	for i, w := range ws {
		out[i] = webhookFields{w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.MatchPolicy, w.NamespaceSelector, w.ObjectSelector,
			w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchConditions, nil}
	}
	return out
}

func compareWebhooks(t *testing.T, kind string, want, got []webhookFields) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: chart has %d webhooks, Go %d", kind, len(got), len(want))
	}
	for i := range want {
		if diff := cmp.Diff(want[i], got[i]); diff != "" {
			t.Errorf("%s webhook %d (%s): chart differs from webhook.WebhookConfigurations (-Go +chart):\n%s", kind, i, want[i].Name, diff)
		}
	}
}

// TestRBACMatchesGo: the webhook's ClusterRole is exactly
// webhook.ClusterRoleRules plus, in self-managed mode, what certs needs on
// the two named configurations; its Role in the release namespace is exactly
// what the certificate mode needs on its Secret; nothing is wider.
func TestRBACMatchesGo(t *testing.T) {
	for _, tc := range []struct {
		mode, secret string
		vals         map[string]any
		cluster      []rbacv1.PolicyRule
		role         []rbacv1.PolicyRule
	}{
		{"self-managed", "palisade-webhook-tls", nil,
			append(webhook.ClusterRoleRules(), certs.ClusterRoleRules(webhook.MutatingConfigurationName, webhook.ValidatingConfigurationName)...),
			certs.RoleRules("palisade-webhook-tls", "palisade-webhook")},
		{"cert-manager", "palisade-webhook-tls", values("certs.mode", "cert-manager"),
			webhook.ClusterRoleRules(), certs.ProvidedRoleRules("palisade-webhook-tls")},
		{"secret", "mine", values("certs.mode", "secret", "certs.secretName", "mine", "certs.caBundle", testCA),
			webhook.ClusterRoleRules(), certs.ProvidedRoleRules("mine")},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r := mustRender(t, defaultRelease, tc.vals)
			cr := typed[rbacv1.ClusterRole](t, r.oneComponent(t, "ClusterRole", "webhook"))
			if diff := cmp.Diff(tc.cluster, cr.Rules); diff != "" {
				t.Errorf("webhook ClusterRole differs from the Go rules (-Go +chart):\n%s", diff)
			}
			role := typed[rbacv1.Role](t, r.oneComponent(t, "Role", "webhook"))
			if role.Namespace != releaseNS {
				t.Errorf("webhook Role in namespace %q, want %q", role.Namespace, releaseNS)
			}
			if diff := cmp.Diff(tc.role, role.Rules); diff != "" {
				t.Errorf("webhook Role differs from the certs rules (-Go +chart):\n%s", diff)
			}
			// Bindings bind exactly the webhook's ServiceAccount to these roles.
			sa := r.oneComponent(t, "ServiceAccount", "webhook")
			subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.GetName(), Namespace: releaseNS}}
			crb := typed[rbacv1.ClusterRoleBinding](t, r.oneComponent(t, "ClusterRoleBinding", "webhook"))
			rb := typed[rbacv1.RoleBinding](t, r.oneComponent(t, "RoleBinding", "webhook"))
			for _, b := range []struct {
				name     string
				ref      rbacv1.RoleRef
				subjects []rbacv1.Subject
				want     rbacv1.RoleRef
			}{
				{"ClusterRoleBinding", crb.RoleRef, crb.Subjects, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name}},
				{"RoleBinding", rb.RoleRef, rb.Subjects, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}},
			} {
				if b.ref != b.want || !cmp.Equal(b.subjects, subject) {
					t.Errorf("%s: roleRef %+v subjects %+v, want %+v %+v", b.name, b.ref, b.subjects, b.want, subject)
				}
			}
		})
	}
}

// TestCertManagerObjectsMatchGo compares the chart's cert-manager objects
// with certs.CertManagerObjects: same kinds, names, namespaces and specs.
func TestCertManagerObjectsMatchGo(t *testing.T) {
	r := mustRender(t, defaultRelease, values("certs.mode", "cert-manager"))
	want, err := certs.CertManagerObjects(certs.CertManagerOptions{
		Namespace: releaseNS, ServiceName: "palisade-webhook", SecretName: "palisade-webhook-tls", Name: "palisade-webhook",
		CADuration: 43800 * time.Hour, Duration: 8760 * time.Hour, RenewBefore: 2920 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, o := range r.objects {
		if o.GroupVersionKind().Group == "cert-manager.io" {
			got++
		}
	}
	if got != len(want) {
		t.Fatalf("chart renders %d cert-manager objects, Go %d", got, len(want))
	}
	for _, w := range want {
		found := r.find(w.GetKind(), w.GetName())
		if len(found) != 1 || found[0].GetAPIVersion() != w.GetAPIVersion() || found[0].GetNamespace() != w.GetNamespace() {
			t.Errorf("chart has no %s %s %s/%s", w.GetAPIVersion(), w.GetKind(), w.GetNamespace(), w.GetName())
			continue
		}
		g := found[0].Object
		// Compare through JSON so int64 and float64 sizes compare equal.
		gs, ws := normalize(t, g["spec"]), normalize(t, w.Object["spec"])
		if wt, ok := ws["secretTemplate"].(map[string]any); ok {
			// The chart's labels are a superset (Helm's own); the ones
			// certs sets must be there with the same values.
			gt, _ := gs["secretTemplate"].(map[string]any)
			gotLabels, _ := gt["labels"].(map[string]any)
			for k, v := range wt["labels"].(map[string]any) {
				if gotLabels[k] != v {
					t.Errorf("%s secretTemplate label %s = %v, want %v", w.GetName(), k, gotLabels[k], v)
				}
			}
			delete(gs, "secretTemplate")
			delete(ws, "secretTemplate")
		}
		if diff := cmp.Diff(ws, gs); diff != "" {
			t.Errorf("%s %s: spec differs from certs.CertManagerObjects (-Go +chart):\n%s", w.GetKind(), w.GetName(), diff)
		}
	}
}

// TestStandardIsTheDefault: the chart's copy of the standard is byte for
// byte the binary's embedded default, and the ConfigMap carries it (or the
// value, when one is given), loadable by rules.Load.
func TestStandardIsTheDefault(t *testing.T) {
	chartCopy, err := os.ReadFile(filepath.Join(chartDir, "files", "standard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	source, err := os.ReadFile("../../rules/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chartCopy, source) || !bytes.Equal(chartCopy, rules.DefaultYAML()) {
		t.Fatal("charts/palisade/files/standard.yaml differs from rules/default.yaml: cp rules/default.yaml charts/palisade/files/standard.yaml")
	}

	custom := string(source) + "# a platform team's edit\n"
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"default", nil, string(source)},
		{"custom", values("standard", custom), custom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, defaultRelease, tc.vals)
			cm := typed[corev1.ConfigMap](t, r.one(t, "ConfigMap", "palisade-standard"))
			got := cm.Data["standard.yaml"]
			if got != tc.want {
				t.Fatalf("standard ConfigMap differs from the expected standard:\n%s", cmp.Diff(tc.want, got))
			}
			path := filepath.Join(t.TempDir(), "standard.yaml")
			if err := os.WriteFile(path, []byte(got), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := rules.Load(path); err != nil {
				t.Fatalf("the mounted standard does not load: %v", err)
			}
		})
	}
}
