package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A node that cannot run the datapath stops the real binary at start-up
// with one error naming what is missing, and exit code 1; nothing is left
// enforcing half-way.
func TestEnforcerStartupNamesMissingFeature(t *testing.T) {
	w := needWorld(t)
	notBPFFS := filepath.Join(t.TempDir(), "pins")
	cases := []struct {
		name    string
		wrap    []string // command prefix
		args    []string
		feature string
		detail  string
	}{
		{name: "pin directory outside a bpf filesystem", args: []string{"--pin-dir", notBPFFS},
			feature: "missing bpffs", detail: "is not on a bpf filesystem"},
	}
	if setpriv, err := exec.LookPath("setpriv"); err == nil {
		cases = append(cases, struct {
			name    string
			wrap    []string
			args    []string
			feature string
			detail  string
		}{name: "root without CAP_BPF and CAP_SYS_ADMIN", wrap: []string{setpriv, "--bounding-set", "-bpf,-sys_admin", "--"},
			args: []string{"--pin-dir", filepath.Join(w.pinRoot, "nocaps")}, feature: "missing privileges", detail: "CAP_BPF (or CAP_SYS_ADMIN) is not effective"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			argv := append(append(append([]string{}, tc.wrap...), w.bin, "enforcer", "--node-name", "node9", "--kubeconfig", w.kubeconfig,
				"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--flow-stdout=false"), tc.args...)
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want code 1; stderr:\n%s", err, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			if !strings.Contains(msg, "node cannot run the datapath: "+tc.feature) || !strings.Contains(msg, tc.detail) {
				t.Errorf("stderr %q: want the missing feature %q named with %q", msg, tc.feature, tc.detail)
			}
			if _, err := os.Stat(notBPFFS); err == nil {
				t.Errorf("the enforcer created %s outside a bpf filesystem", notBPFFS)
			}
		})
	}
}
