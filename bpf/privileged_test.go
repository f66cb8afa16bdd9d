package bpf

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
)

// requirePrivileged skips a test that needs to load BPF programs where that
// is impossible, and fails it instead when PALISADE_REQUIRE_PRIVILEGED=1
// (CI), so that a missing privilege can never pass as a green run.
func requirePrivileged(tb testing.TB) {
	tb.Helper()
	reason := ""
	switch err := features.HaveProgramType(ebpf.SchedCLS); {
	case os.Geteuid() != 0:
		reason = "loading BPF programs needs root"
	case errors.Is(err, ebpf.ErrNotSupported):
		reason = "kernel lacks BPF sched_cls programs: " + err.Error()
	case err != nil:
		reason = "cannot probe BPF: " + err.Error()
	}
	if reason == "" {
		return
	}
	if os.Getenv("PALISADE_REQUIRE_PRIVILEGED") == "1" {
		tb.Fatalf("%s (PALISADE_REQUIRE_PRIVILEGED=1 forbids skipping)", reason)
	}
	tb.Skip(reason)
}
