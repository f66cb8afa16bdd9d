package chart_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/palisade-dev/palisade/webhook"
)

// The Helm 4 CLI, built from the module proxy by hack/helm.sh (cached).
var (
	helm4Once sync.Once
	helm4Path string
	helm4Err  error
)

func helm4(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the Helm 4 CLI")
	}
	helm4Once.Do(func() {
		out, err := exec.Command("../../hack/helm.sh").Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			helm4Err = fmt.Errorf("hack/helm.sh: %v: %s", err, stderr)
			return
		}
		helm4Path = strings.TrimSpace(string(out))
	})
	if helm4Err != nil {
		t.Fatal(helm4Err)
	}
	return helm4Path
}

// helmCLI runs one helm command with a private home, so nothing from the
// machine's Helm configuration leaks in.
type helmCLI struct {
	bin, home, kubeconfig string
}

func (h helmCLI) run(args ...string) (string, error) {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"),
	)
	if h.kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+h.kubeconfig)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (h helmCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.run(args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestHelm4LintAndTemplate: the chart lints clean under Helm 4 and renders
// the same objects there as through the Helm 3 SDK the other tests use.
func TestHelm4LintAndTemplate(t *testing.T) {
	h := helmCLI{bin: helm4(t), home: t.TempDir()}
	site := siteValuesFile(t)
	h.must(t, "lint", "--strict", "-f", site, chartDir)
	out := h.must(t, "template", defaultRelease.name, chartDir, "-f", site, "--namespace", defaultRelease.namespace,
		"--kube-version", kubeVersion)
	got := objectNames(t, out)
	r := mustRender(t, defaultRelease, nil)
	var want []string
	for _, o := range append(slices.Clone(r.objects), r.hooks...) {
		want = append(want, objectName(o))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Helm 4 renders\n  %s\nthe Helm 3 SDK renders\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func objectName(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

func objectNames(t *testing.T, manifests string) []string {
	t.Helper()
	var out []string
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("decode helm template output: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, objectName(&unstructured.Unstructured{Object: m}))
	}
	slices.Sort(out)
	return out
}

// TestHelm4InstallUpgradeUninstall drives a release through its life with
// the real Helm 4 CLI against the real API server: bad values are refused
// by the schema naming the value, install and upgrade land, and uninstall
// leaves nothing behind that could block the cluster (no webhook
// configuration, no cluster-scoped RBAC).
func TestHelm4InstallUpgradeUninstall(t *testing.T) {
	ctx, c := needAPIServer(t)
	bin := helm4(t)
	removeWebhookConfigurations(t, c)
	t.Cleanup(func() { removeWebhookConfigurations(t, c) })

	home := t.TempDir()
	kubeconfig := kubeconfigFor(t, sharedEnv, nil, envtest.User{Name: "helm", Groups: []string{"system:masters"}}, home)
	h := helmCLI{bin: bin, home: home, kubeconfig: kubeconfig}
	const name, ns = "palisade-h4", "helm4-system"

	site := siteValuesFile(t)
	out, err := h.run("install", name, chartDir, "-f", site, "-n", ns, "--create-namespace", "--set", "webhook.timeoutSeconds=31")
	if err == nil || !strings.Contains(out, "timeoutSeconds") {
		t.Errorf("install with webhook.timeoutSeconds=31: err %v, want a schema error naming timeoutSeconds; output:\n%s", err, out)
	}
	if _, err := h.run("status", name, "-n", ns); err == nil {
		t.Errorf("a refused install left a release behind")
	}

	h.must(t, "install", name, chartDir, "-f", site, "-n", ns, "--create-namespace")
	t.Cleanup(func() { h.run("uninstall", name, "-n", ns) }) //nolint:errcheck // best effort after a failure

	var dep appsv1.Deployment
	depKey := client.ObjectKey{Namespace: ns, Name: name + "-webhook"}
	if err := c.Get(ctx, depKey, &dep); err != nil {
		t.Fatalf("after install: %v", err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: webhook.ValidatingConfigurationName}, &vwc); err != nil {
		t.Fatalf("after install: %v", err)
	}
	for _, w := range vwc.Webhooks {
		if s := w.ClientConfig.Service; s == nil || s.Namespace != ns {
			t.Errorf("webhook %s routes to %+v, want a Service in %s", w.Name, s, ns)
		}
	}

	h.must(t, "upgrade", name, chartDir, "-n", ns, "--reuse-values", "--set", "webhook.replicas=3")
	if err := c.Get(ctx, depKey, &dep); err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("after upgrade with webhook.replicas=3: replicas %v", dep.Spec.Replicas)
	}

	h.must(t, "uninstall", name, "-n", ns)
	assertGone(ctx, t, c, name)
}

// assertGone checks that nothing of release name remains cluster-wide:
// the webhook configurations would otherwise keep failing admissions
// closed with nothing serving them.
func assertGone(ctx context.Context, t *testing.T, c client.Client, name string) {
	t.Helper()
	for _, obj := range []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{},
		&admissionregistrationv1.ValidatingWebhookConfiguration{},
	} {
		obj.SetName(map[bool]string{true: webhook.MutatingConfigurationName, false: webhook.ValidatingConfigurationName}[isMutating(obj)])
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); !apierrors.IsNotFound(err) {
			t.Errorf("after uninstall, %T %s: %v (want not found)", obj, obj.GetName(), err)
		}
	}
	var roles rbacv1.ClusterRoleList
	if err := c.List(ctx, &roles, client.MatchingLabels{"app.kubernetes.io/instance": name}); err != nil {
		t.Fatal(err)
	}
	var bindings rbacv1.ClusterRoleBindingList
	if err := c.List(ctx, &bindings, client.MatchingLabels{"app.kubernetes.io/instance": name}); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles.Items {
		t.Errorf("after uninstall, ClusterRole %s remains", r.Name)
	}
	for _, b := range bindings.Items {
		t.Errorf("after uninstall, ClusterRoleBinding %s remains", b.Name)
	}
}

func isMutating(obj client.Object) bool {
	_, ok := obj.(*admissionregistrationv1.MutatingWebhookConfiguration)
	return ok
}

// TestHelm3InstallUpgradeUninstall is the same life through the Helm 3
// SDK's install, upgrade and uninstall actions (what the Helm 3 CLI runs).
func TestHelm3InstallUpgradeUninstall(t *testing.T) {
	ctx, c := needAPIServer(t)
	removeWebhookConfigurations(t, c)
	t.Cleanup(func() { removeWebhookConfigurations(t, c) })
	const name, ns = "palisade-h3", "helm3-system"

	kubeconfig := kubeconfigFor(t, sharedEnv, nil, envtest.User{Name: "helm3", Groups: []string{"system:masters"}}, t.TempDir())
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &kubeconfig, ptrTo(ns)
	cfg := &action.Configuration{}
	if err := cfg.Init(flags, ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	ch := loadChart(t)

	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.CreateNamespace = name, ns, true
	if _, err := in.Run(ch, withSite(t, values("webhook.timeoutSeconds", 31))); err == nil || !strings.Contains(err.Error(), "timeoutSeconds") {
		t.Errorf("install with webhook.timeoutSeconds=31: %v, want a schema error naming timeoutSeconds", err)
	}
	in = action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.CreateNamespace = name, ns, true
	if _, err := in.Run(ch, withSite(t, nil)); err != nil {
		t.Fatalf("install: %v", err)
	}
	t.Cleanup(func() { action.NewUninstall(cfg).Run(name) }) //nolint:errcheck // best effort after a failure

	up := action.NewUpgrade(cfg)
	up.Namespace, up.ReuseValues = ns, true
	if _, err := up.Run(name, ch, values("webhook.replicas", 3)); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	var dep appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-webhook"}, &dep); err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("after upgrade with webhook.replicas=3: replicas %v", dep.Spec.Replicas)
	}
	if _, err := action.NewUninstall(cfg).Run(name); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	assertGone(ctx, t, c, name)
}

func ptrTo[T any](v T) *T { return &v }
