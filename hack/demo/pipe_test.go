package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// TestDemoCleansUpWhenItsReaderGoesAway runs the demo binary as `make demo
// | head -n 1` would, then presses Ctrl-C: with nobody reading its output,
// it still stops the control plane and removes its network namespaces and
// its folder (before, its first write after the reader left killed it by
// SIGPIPE and left kube-apiserver and etcd running).
func TestDemoCleansUpWhenItsReaderGoesAway(t *testing.T) {
	assets, reason := testenv.Assets()
	if reason != "" {
		testenv.SkipOrFail(t, "%s", reason)
	}
	dir := t.TempDir()
	bin := buildPackage(t, dir, "github.com/palisade-dev/palisade/cmd/palisade")
	demo := buildPackage(t, dir, "github.com/palisade-dev/palisade/hack/demo")
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	netnsBefore := netnsNames(t)
	// Whatever a failed demo left behind goes with the test (registered
	// first, so it runs after the demo has been stopped).
	t.Cleanup(func() { removeLeftovers(t, tmp, netnsBefore) })

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(demo)
	cmd.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+assets, "PALISADE_BIN="+bin, "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var exitErr error
	done := false
	wait := func(within time.Duration) bool {
		if done {
			return true
		}
		select {
		case exitErr = <-exited:
			done = true
		case <-time.After(within):
		}
		return done
	}
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			wait(time.Minute)
		}
	})
	// The reader takes one line and goes away.
	if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
		t.Fatalf("read the demo's first line: %v", err)
	}
	r.Close()

	// It may end on its own (a child it runs for the tour dies writing to
	// the closed pipe, and the demo stops with that error) or stay up
	// until Ctrl-C; either way it must clean up, never be killed.
	deadline := time.Now().Add(2 * time.Minute)
	for !wait(200 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(tmp, "palisade-demo-*", "*.kubeconfig")); len(m) > 0 {
			if !wait(2 * time.Second) {
				if err := cmd.Process.Signal(os.Interrupt); err != nil {
					t.Fatal(err)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the demo neither came up nor ended within 2 minutes")
		}
	}
	if !wait(time.Minute) {
		t.Fatal("the demo did not stop within a minute")
	}
	var ee *exec.ExitError
	if errors.As(exitErr, &ee) {
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			t.Fatalf("the demo was killed by %v instead of cleaning up", ws.Signal())
		}
	}
	t.Logf("the demo ended with %v", exitErr)

	if left, _ := filepath.Glob(filepath.Join(tmp, "palisade-demo-*")); len(left) > 0 {
		t.Errorf("the demo left its folder behind: %v", left)
	}
	// The demo's namespaces are podnet's "pd…" (other packages' tests
	// make their own meanwhile).
	for _, name := range netnsNames(t) {
		if !slices.Contains(netnsBefore, name) && strings.HasPrefix(name, "pd") {
			t.Errorf("the demo left network namespace %s behind", name)
		}
	}
	out, _ := exec.Command("pgrep", "-af", tmp).Output()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "pgrep") {
			t.Errorf("the demo left a process behind: %s", line)
		}
	}
}

func netnsNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// removeLeftovers undoes what a demo that failed to clean up left: its
// processes (they name a path under tmp), its network namespaces (new
// since before) and mounts under tmp.
func removeLeftovers(t *testing.T, tmp string, netnsBefore []string) {
	exec.Command("pkill", "-f", tmp).Run()
	for _, name := range netnsNames(t) {
		if !slices.Contains(netnsBefore, name) && strings.HasPrefix(name, "pd") {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], tmp) {
			syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
}

// buildPackage builds the command pkg into dir and returns the binary.
func buildPackage(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
