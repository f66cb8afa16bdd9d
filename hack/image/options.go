package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// defaultRepository is where the chart's image values point by default.
const defaultRepository = "ghcr.io/palisade-dev/palisade"

// options are the inputs of one image; equal options give an equal digest.
type options struct {
	out        string
	repository string
	version    string
	chart      string
	arch       string
	binary     string // prebuilt binary; empty builds ./cmd/palisade
	caBundle   string
	revision   string
	epoch      int64
}

// resolveEpoch picks the image's timestamp: the flag, else
// SOURCE_DATE_EPOCH, else 0.
func resolveEpoch(flagValue int64, env string) (int64, error) {
	if flagValue >= 0 {
		return flagValue, nil
	}
	if env == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(env, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", env)
	}
	return n, nil
}

// appVersion reads a chart's appVersion: the image tag its values default to.
func appVersion(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read chart: %w", err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return "", fmt.Errorf("parse %s: %w", path, err)
	}
	if c.AppVersion == "" {
		return "", fmt.Errorf("%s has no appVersion", path)
	}
	return c.AppVersion, nil
}

// gitRevision is HEAD's commit, or "" outside a git checkout.
func gitRevision(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
