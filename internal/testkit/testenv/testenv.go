// Package testenv starts the real control plane (kube-apiserver, etcd and
// kubectl built from source by hack/envtest-assets.sh) for tests, and
// applies the project's rule on prerequisites: a test that cannot get what
// it needs skips with the reason, unless PALISADE_REQUIRE_PRIVILEGED=1
// (CI), where it fails instead.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Required reports whether missing prerequisites must fail tests.
func Required() bool { return os.Getenv("PALISADE_REQUIRE_PRIVILEGED") == "1" }

// SkipOrFail skips t with reason, or fails it when prerequisites are required.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("prerequisite missing (PALISADE_REQUIRE_PRIVILEGED=1): "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// Assets returns the directory holding kube-apiserver, etcd and kubectl,
// or "" with the reason it is unusable.
func Assets() (string, string) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		return "", "KUBEBUILDER_ASSETS is not set; run the tests with `make test`, which builds the control plane"
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Sprintf("%s missing in KUBEBUILDER_ASSETS=%s; run hack/envtest-assets.sh", bin, dir)
		}
	}
	return dir, ""
}

// Kubectl runs the real kubectl as one user.
type Kubectl struct {
	Path       string
	Kubeconfig string
}

// Result is what one kubectl run printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Exit           int
}

// Run runs kubectl with args, stdin as its input.
func (k Kubectl) Run(ctx context.Context, stdin string, args ...string) (Result, error) {
	cmd := exec.CommandContext(ctx, k.Path, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Exit = ee.ExitCode()
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("run kubectl %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}
