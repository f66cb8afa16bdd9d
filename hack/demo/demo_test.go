package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/testenv"
)

// TestDemoTour runs `make demo`'s tour non-interactively against the real
// control plane and the real binary: the README's first command stays true.
func TestDemoTour(t *testing.T) {
	assets, reason := testenv.Assets()
	if reason != "" {
		testenv.SkipOrFail(t, "%s", reason)
	}
	bin := filepath.Join(t.TempDir(), "palisade")
	build := exec.Command("go", "build", "-o", bin, "github.com/palisade-dev/palisade/cmd/palisade")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build palisade: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, demoOptions{assets: assets, palisade: bin, out: &out})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"[ns-owner] namespace payments: missing label owner",
		"[pod-tier] pod payments/checkout: missing label tier",
		"[pod-tier] deployment payments/ledger (pod template)",
		"palisade-default-deny",
		"[netpol-managed-readonly]",
		"[netpol-regulated-all-namespaces]",
		"Warning: [netpol-non-identity-selector]",
		"chain intact",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if testing.Verbose() {
		os.Stdout.Write(out.Bytes())
	}
}
