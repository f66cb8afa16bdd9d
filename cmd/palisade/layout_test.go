package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductImportsNoTestKit: the palisade binary links no test-support
// package (internal/testkit/...) and not the testing package, so that what
// builds worlds for tests can never run in a cluster.
func TestProductImportsNoTestKit(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/palisade-dev/palisade/cmd/palisade").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "testing" || strings.HasPrefix(pkg, "github.com/palisade-dev/palisade/internal/testkit") {
			t.Errorf("the palisade binary imports %s", pkg)
		}
	}
}
