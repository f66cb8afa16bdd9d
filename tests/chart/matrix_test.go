package chart_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// option is one point of the values matrix.
type option struct {
	mode           string
	serviceMonitor bool
	replicas       int
	enforcer       bool
	dashboard      bool
}

func (o option) String() string {
	return fmt.Sprintf("certs=%s,serviceMonitor=%t,replicas=%d,enforcer=%t,dashboard=%t", o.mode, o.serviceMonitor, o.replicas, o.enforcer, o.dashboard)
}

func (o option) values() map[string]any {
	v := values(
		"certs.mode", o.mode,
		"metrics.serviceMonitor.enabled", o.serviceMonitor,
		"webhook.replicas", o.replicas,
		"enforcer.enabled", o.enforcer,
		"grafanaDashboard.enabled", o.dashboard,
	)
	if o.mode == "secret" {
		v["certs"].(map[string]any)["secretName"] = "byo-tls"
		v["certs"].(map[string]any)["caBundle"] = testCA
	}
	return v
}

// matrix is every certificate mode × ServiceMonitor on/off × 1-3 replicas,
// with the enforcer and the dashboard toggled along.
func matrix() []option {
	var out []option
	i := 0
	for _, mode := range []string{"self-managed", "cert-manager", "secret"} {
		for _, sm := range []bool{false, true} {
			for _, replicas := range []int{1, 2, 3} {
				out = append(out, option{mode, sm, replicas, i%3 != 2, i%2 == 0})
				i++
			}
		}
	}
	return out
}

// TestMatrix renders every option and checks what each value is meant to
// switch: objects present or absent, replica counts, certificate wiring,
// namespaces and labels. Every built-in kind is decoded strictly into its
// Go type, so a misspelt field fails here.
func TestMatrix(t *testing.T) {
	for _, o := range matrix() {
		t.Run(o.String(), func(t *testing.T) {
			r := mustRender(t, defaultRelease, o.values())
			for _, obj := range append(slices.Clone(r.objects), r.hooks...) {
				decodeStrict(t, obj)
				if obj.GetLabels()["app.kubernetes.io/instance"] != releaseName || obj.GetLabels()["app.kubernetes.io/part-of"] != "palisade" {
					t.Errorf("%s %s: missing the chart's labels: %v", obj.GetKind(), obj.GetName(), obj.GetLabels())
				}
				if ns := obj.GetNamespace(); ns != "" && ns != releaseNS && !(isTestHook(obj) && ns == "default") {
					t.Errorf("%s %s in namespace %q, want %q", obj.GetKind(), obj.GetName(), ns, releaseNS)
				}
			}

			dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
			if got := *dep.Spec.Replicas; int(got) != o.replicas {
				t.Errorf("webhook replicas %d, want %d", got, o.replicas)
			}
			present(t, r, "PodDisruptionBudget", o.replicas > 1)
			present(t, r, "ServiceMonitor", o.serviceMonitor)
			present(t, r, "DaemonSet", o.enforcer)
			present(t, r, "Certificate", o.mode == "cert-manager")
			present(t, r, "Issuer", o.mode == "cert-manager")
			// One per component, and the metrics check's two (reviews; /metrics for scrapers).
			if got := len(r.find("ClusterRole", "")); got != map[bool]int{true: 4, false: 3}[o.enforcer] {
				t.Errorf("%d ClusterRoles, want one per component and two for metrics", got)
			}
			dashboard := r.find("ConfigMap", "palisade-dashboard")
			if (len(dashboard) == 1) != o.dashboard {
				t.Errorf("dashboard ConfigMap present=%t, want %t", len(dashboard) == 1, o.dashboard)
			}

			secret := "palisade-webhook-tls"
			if o.mode == "secret" {
				secret = "byo-tls"
			}
			args := dep.Spec.Template.Spec.Containers[0].Args
			for _, want := range []string{"--cert-mode=" + o.mode, "--cert-secret=" + secret, "--service-name=palisade-webhook", "--cert-dir=/var/run/palisade/certs"} {
				if !slices.Contains(args, want) {
					t.Errorf("webhook args %v lack %s", args, want)
				}
			}
			selfManagedOnly := "--mutating-configuration=palisade-mutate"
			if slices.Contains(args, selfManagedOnly) != (o.mode == "self-managed") {
				t.Errorf("webhook args %v: %s only in self-managed mode", args, selfManagedOnly)
			}
			if !strings.Contains(r.notes, "Certificates: "+o.mode) {
				t.Errorf("NOTES.txt does not name the certificate mode:\n%s", r.notes)
			}
		})
	}
}

func isTestHook(o *unstructured.Unstructured) bool {
	return o.GetAnnotations()["helm.sh/hook"] == "test"
}

func present(t *testing.T, r *rendered, kind string, want bool) {
	t.Helper()
	if got := len(r.find(kind, "")) > 0; got != want {
		t.Errorf("%s present=%t, want %t", kind, got, want)
	}
}

// crdKinds are rendered only when their CRDs exist in the cluster; they are
// not in client-go's scheme.
var crdKinds = map[schema.GroupKind]bool{
	{Group: "monitoring.coreos.com", Kind: "ServiceMonitor"}: true,
	{Group: "cert-manager.io", Kind: "Certificate"}:          true,
	{Group: "cert-manager.io", Kind: "Issuer"}:               true,
}

// decodeStrict converts a built-in object into its Go type, failing on
// unknown fields.
func decodeStrict(t *testing.T, obj *unstructured.Unstructured) {
	t.Helper()
	gvk := obj.GroupVersionKind()
	if crdKinds[gvk.GroupKind()] {
		return
	}
	typedObj, err := scheme.Scheme.New(gvk)
	if err != nil {
		t.Errorf("%s %s: not a kind this cluster version knows: %v", gvk, obj.GetName(), err)
		return
	}
	if err := runtimeFromUnstructured(obj, typedObj); err != nil {
		t.Errorf("%s %s: %v", gvk.Kind, obj.GetName(), err)
	}
}

// TestReplicaOneWarns: one replica gets no PodDisruptionBudget (it would
// block every drain) and NOTES.txt says so.
func TestReplicaOneWarns(t *testing.T) {
	r := mustRender(t, defaultRelease, values("webhook.replicas", 1))
	if !strings.Contains(r.notes, "no PodDisruptionBudget was") {
		t.Errorf("NOTES.txt lacks the one-replica warning:\n%s", r.notes)
	}
	r = mustRender(t, defaultRelease, nil)
	if strings.Contains(r.notes, "WARNING") {
		t.Errorf("NOTES.txt warns with the default values:\n%s", r.notes)
	}
	pdb := typed[policyv1.PodDisruptionBudget](t, r.one(t, "PodDisruptionBudget", "palisade-webhook"))
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
	if !cmp.Equal(pdb.Spec.Selector.MatchLabels, dep.Spec.Selector.MatchLabels) {
		t.Errorf("PDB selects %v, the webhook pods are %v", pdb.Spec.Selector.MatchLabels, dep.Spec.Selector.MatchLabels)
	}
}

// TestCustomRules: custom Gatekeeper rules become a ConfigMap mounted at
// the directory --rules names, one file per value key.
func TestCustomRules(t *testing.T) {
	rules := map[string]any{"a.yaml": "kind: ConstraintTemplate\n", "b.yml": "kind: K8sRequiredLabels\n"}
	r := mustRender(t, defaultRelease, map[string]any{"customRules": rules})
	cm := typed[corev1.ConfigMap](t, r.one(t, "ConfigMap", "palisade-rules"))
	for k, v := range rules {
		if cm.Data[k] != v {
			t.Errorf("rules ConfigMap %s = %q, want %q", k, cm.Data[k], v)
		}
	}
	dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
	c := dep.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--rules=/etc/palisade/rules") {
		t.Errorf("webhook args %v lack --rules", c.Args)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/etc/palisade/rules" {
			for _, v := range dep.Spec.Template.Spec.Volumes {
				mounted = mounted || (v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == "palisade-rules")
			}
		}
	}
	if !mounted {
		t.Error("the rules ConfigMap is not mounted at /etc/palisade/rules")
	}

	r = mustRender(t, defaultRelease, nil)
	if len(r.find("ConfigMap", "palisade-rules")) != 0 {
		t.Error("a rules ConfigMap is rendered without customRules")
	}
	dep = typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--rules") {
			t.Errorf("webhook gets %s without customRules", a)
		}
	}
}

// TestImageDefaultsToAppVersion: the image is the chart's appVersion
// unless a tag or a digest is given.
func TestImageDefaultsToAppVersion(t *testing.T) {
	appVersion := loadChart(t).Metadata.AppVersion
	for _, tc := range []struct {
		vals map[string]any
		want string
	}{
		{nil, "ghcr.io/palisade-dev/palisade:" + appVersion},
		{values("image.tag", "v9.9.9"), "ghcr.io/palisade-dev/palisade:v9.9.9"},
		{values("image.repository", "registry.local:5000/palisade", "image.digest", "sha256:"+strings.Repeat("a", 64)), "registry.local:5000/palisade@sha256:" + strings.Repeat("a", 64)},
	} {
		r := mustRender(t, defaultRelease, tc.vals)
		for _, kind := range []string{"Deployment", "DaemonSet"} {
			obj := r.find(kind, "")[0]
			cs, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
			if got := cs[0].(map[string]any)["image"]; got != tc.want {
				t.Errorf("%s image %v, want %s (values %s)", kind, got, tc.want, describe(tc.vals))
			}
		}
	}
}
