package chart_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/webhook"
)

// installCase is one release applied to the real API server.
type installCase struct {
	name string
	rel  rel
	vals map[string]any
}

// installCases cover each certificate mode with the optional objects on,
// each in its own namespace under its own release name.
func installCases() []installCase {
	return []installCase{
		{"self-managed", defaultRelease, map[string]any{
			"metrics":          map[string]any{"serviceMonitor": map[string]any{"enabled": true}},
			"grafanaDashboard": map[string]any{"enabled": true},
			"customRules":      map[string]any{"require-cost-center.yaml": "kind: ConstraintTemplate\n"},
		}},
		{"cert-manager", rel{"edge", "palisade-cm"}, values("certs.mode", "cert-manager", "webhook.replicas", 3, "metrics.serviceMonitor.enabled", true)},
		{"secret", rel{"byo", "palisade-byo"}, values("certs.mode", "secret", "certs.secretName", "byo-serving", "certs.caBundle", testCA,
			"enforcer.bpffs.mount", true, "webhook.replicas", 1, "webhook.antiAffinity", "hard")},
	}
}

// TestApplyToAPIServer applies every rendered manifest, hooks included, to
// the real API server with server-side apply, as Helm 4 installs: each is
// accepted (unknown fields are errors in server-side apply) and reads back.
func TestApplyToAPIServer(t *testing.T) {
	ctx, c := needAPIServer(t)
	for _, tc := range installCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.rel, tc.vals)
			install(ctx, t, c, tc.rel.namespace, r)
			for _, obj := range append(slices.Clone(r.objects), r.hooks...) {
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(obj.GroupVersionKind())
				if err := c.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
					t.Errorf("read back %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
				}
			}
			// What the API server stored routes to the chart's Service.
			var v admissionregistrationv1.ValidatingWebhookConfiguration
			if err := c.Get(ctx, client.ObjectKey{Name: webhook.ValidatingConfigurationName}, &v); err != nil {
				t.Fatal(err)
			}
			var svc *unstructured.Unstructured
			for _, s := range r.find("Service", "") {
				if !strings.HasSuffix(s.GetName(), "-metrics") {
					svc = s
				}
			}
			for _, w := range v.Webhooks {
				if s := w.ClientConfig.Service; s == nil || s.Namespace != tc.rel.namespace || s.Name != svc.GetName() || *s.Port != 443 {
					t.Errorf("webhook %s routes to %+v, want %s/%s:443", w.Name, s, tc.rel.namespace, svc.GetName())
				}
			}
		})
	}
}

// install creates the release namespace and applies the manifests in
// Helm's install order, then the hooks; the webhook configurations (which
// fail closed, and no webhook serves here) are removed when t ends.
func install(ctx context.Context, t *testing.T, c client.Client, namespace string, r *rendered) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeWebhookConfigurations(t, c) })
	apiWarnings.take()
	for _, obj := range append(slices.Clone(r.objects), r.hooks...) {
		obj = obj.DeepCopy()
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("helm"), client.ForceOwnership); err != nil {
			t.Errorf("server-side apply %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
	for _, w := range apiWarnings.take() {
		t.Errorf("the API server warned: %s", w)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func removeWebhookConfigurations(t *testing.T, c client.Client) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhook.MutatingConfigurationName}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhook.ValidatingConfigurationName}},
	} {
		if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("remove %s: %v", obj.GetName(), err)
		}
	}
}

// TestPodSecurityLevels asks the API server's own Pod Security admission
// (dry-run creates) which level each pod the chart runs needs: the webhook
// and the helm test pod pass "restricted"; the enforcer needs "privileged"
// (host network, host path, capabilities) and is refused by "baseline".
func TestPodSecurityLevels(t *testing.T) {
	ctx, c := needAPIServer(t)
	removeWebhookConfigurations(t, c)
	for _, level := range []string{"restricted", "baseline", "privileged"} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "psa-" + level, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version": "latest",
		}}}
		if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	r := mustRender(t, defaultRelease, values("enforcer.bpffs.mount", true))
	dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
	ds := typed[appsv1.DaemonSet](t, r.oneComponent(t, "DaemonSet", "enforcer"))
	testPod := typed[corev1.Pod](t, r.oneComponent(t, "Pod", "test"))
	pods := []struct {
		name    string
		spec    corev1.PodSpec
		minimum string
	}{
		{"webhook", dep.Spec.Template.Spec, "restricted"},
		{"helm-test", testPod.Spec, "restricted"},
		{"enforcer", ds.Spec.Template.Spec, "privileged"},
	}
	order := []string{"restricted", "baseline", "privileged"}
	for _, p := range pods {
		for _, level := range order {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "psa-" + level}, Spec: *p.spec.DeepCopy()}
			err := c.Create(ctx, pod, client.DryRunAll)
			want := slices.Index(order, level) >= slices.Index(order, p.minimum)
			switch {
			case want && err != nil:
				t.Errorf("%s pod refused at Pod Security level %s: %v", p.name, level, err)
			case !want && err == nil:
				t.Errorf("%s pod admitted at Pod Security level %s; it should need %s (is the template missing its host access?)", p.name, level, p.minimum)
			case !want && !strings.Contains(err.Error(), "violates PodSecurity"):
				t.Errorf("%s pod at level %s refused for another reason: %v", p.name, level, err)
			}
		}
	}
}
