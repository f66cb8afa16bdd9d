package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// versionVar is the linker variable `palisade version` prints.
const versionVar = "github.com/palisade-dev/palisade/internal/version.Version"

// buildBinary builds ./cmd/palisade as a static linux binary into dir, the
// way `make build` does: CGO_ENABLED=0, -trimpath, stripped, no VCS stamp
// (which would make the binary depend on the time and the tree's state).
func buildBinary(ctx context.Context, dir, version, arch string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "palisade")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X "+versionVar+"="+version, "-o", out, "./cmd/palisade")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build palisade: %w\n%s", err, stderr.String())
	}
	return out, nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("find module root: not inside the palisade module")
	}
	return filepath.Dir(gomod), nil
}
