package chart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// pendingFlags are flags the chart passes to `palisade webhook` that the
// binary may not have yet: the certificate wiring of the certs work
// (--cert-mode self-managed|cert-manager|secret, the Secret, the Service
// the certificate is for, the configurations the self-managed mode
// injects). Once a flag exists it is checked like any other.
var pendingFlags = map[string]bool{
	"--cert-mode":                true,
	"--cert-secret":              true,
	"--service-name":             true,
	"--mutating-configuration":   true,
	"--validating-configuration": true,
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binOut  []byte
)

// palisadeBinary builds cmd/palisade the way `make build` does (same flags,
// so the build cache is shared).
func palisadeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "palisade-chart-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "palisade")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./cmd/palisade")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		binOut, binErr = cmd.CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("build palisade: %v\n%s", binErr, binOut)
	}
	return binPath
}

var flagInHelp = regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z0-9-]+)`)

// TestArgsAreFlagsOfTheBinary: every flag the chart passes to `palisade
// webhook` and `palisade enforcer` is one the binary defines (read from its
// --help), so an install never crash-loops on an unknown flag.
func TestArgsAreFlagsOfTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := palisadeBinary(t)
	r := mustRender(t, defaultRelease, map[string]any{
		"customRules": map[string]any{"a.yaml": "x: y\n"},
		"enforcer":    map[string]any{"pinDir": "/sys/fs/bpf/palisade/test"},
	})
	dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
	ds := typed[appsv1.DaemonSet](t, r.oneComponent(t, "DaemonSet", "enforcer"))
	for _, c := range []struct {
		args []string
	}{{dep.Spec.Template.Spec.Containers[0].Args}, {ds.Spec.Template.Spec.Containers[0].Args}} {
		sub := c.args[0]
		out, err := exec.Command(bin, sub, "--help").CombinedOutput()
		if err != nil && sub == "enforcer" && strings.Contains(string(out), `unknown command "enforcer"`) {
			// The enforcer work registers the subcommand; until then
			// there is nothing to check its args against.
			t.Logf("palisade has no enforcer subcommand yet; its args are unchecked: %v", c.args)
			continue
		}
		if err != nil {
			t.Fatalf("palisade %s --help: %v\n%s", sub, err, out)
		}
		var known []string
		for _, m := range flagInHelp.FindAllStringSubmatch(string(out), -1) {
			known = append(known, m[1])
		}
		for _, a := range c.args[1:] {
			name, _, _ := strings.Cut(a, "=")
			switch {
			case slices.Contains(known, name):
			case sub == "webhook" && pendingFlags[name]:
				t.Logf("palisade %s has no %s yet (pending: the certificate wiring)", sub, name)
			default:
				t.Errorf("the chart passes %s to `palisade %s`, which has no such flag (flags: %v)", a, sub, known)
			}
		}
	}
}
