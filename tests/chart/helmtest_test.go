package chart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// runHelmTestPod does what the kubelet would do with the chart's `helm
// test` pod (envtest has none): it runs the pod's own command with the
// real kubectl, as the pod's ServiceAccount under the chart's hook RBAC,
// against the API server whose admissions the chart's webhook serves. In
// the configured governed namespace the script must pass (Palisade denied
// its dry-run pod); pointed at the release's own namespace, which the
// webhook never sees and the hook RBAC does not cover, it must fail,
// because the refusal does not come from Palisade.
func runHelmTestPod(t *testing.T, env *envtest.Environment, cfg *rest.Config, ns string, r *rendered) {
	t.Helper()
	pod := typed[corev1.Pod](t, r.oneComponent(t, "Pod", "test"))
	c := pod.Spec.Containers[0]
	if len(c.Command) != 3 || c.Command[0] != "/bin/sh" || c.Command[1] != "-c" {
		t.Fatalf("helm test pod command %q: want /bin/sh -c SCRIPT", c.Command)
	}
	dir := t.TempDir()
	kubeconfig := kubeconfigFor(t, env, cfg, serviceAccountUser(ns, pod.Spec.ServiceAccountName), dir)
	assets, reason := testenv.Assets()
	if reason != "" {
		t.Fatal(reason)
	}
	run := func(testNamespace string) (string, error) {
		cmd := exec.Command(c.Command[0], c.Command[1], c.Command[2])
		cmd.Env = []string{"PATH=" + assets + ":/usr/bin:/bin", "KUBECONFIG=" + kubeconfig}
		for _, e := range c.Env {
			v := e.Value
			if e.Name == "TEST_NAMESPACE" {
				v = testNamespace
			}
			if e.Name == "HOME" {
				v = dir
			}
			cmd.Env = append(cmd.Env, e.Name+"="+v)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var governed string
	for _, e := range c.Env {
		if e.Name == "TEST_NAMESPACE" {
			governed = e.Value
		}
	}
	if out, err := run(governed); err != nil || !strings.Contains(out, "PASS: Palisade denied the non-compliant pod") {
		t.Errorf("helm test pod in %s: %v, want PASS; output:\n%s", governed, err, out)
	}
	if out, err := run(ns); err == nil || !strings.Contains(out, "FAIL: the pod was refused, but not by Palisade") {
		t.Errorf("helm test pod pointed at the release namespace %s: %v, want FAIL; output:\n%s", ns, err, out)
	}
}

// serviceAccountUser is a ServiceAccount's identity as the API server
// sees it: RBAC matches a ServiceAccount subject by this user name.
func serviceAccountUser(ns, name string) envtest.User {
	return envtest.User{
		Name:   "system:serviceaccount:" + ns + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns},
	}
}

// kubeconfigFor writes a kubeconfig for user into dir and returns its path.
func kubeconfigFor(t *testing.T, env *envtest.Environment, cfg *rest.Config, user envtest.User, dir string) string {
	t.Helper()
	u, err := env.AddUser(user, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
