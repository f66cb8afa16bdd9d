package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

const shopManifests = "../../enforcer/check/testdata/shop"

func runCheckCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newCheckCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	code = execute(context.Background(), cmd, args, &errOut)
	return code, out.String(), errOut.String()
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"no manifests", nil, "-f: required"},
		{"unknown flag", []string{"-f", shopManifests, "--nope"}, "unknown flag: --nope"},
		{"positional argument", []string{shopManifests}, "pass manifests with -f"},
		{"bad engine", []string{"-f", shopManifests, "--engine", "ebpf"}, `--engine "ebpf": want model or bpf`},
		{"bad output", []string{"-f", shopManifests, "-o", "yaml"}, `-o "yaml": want table or json`},
		{"explain without pods", []string{"-f", shopManifests, "--explain", "--from", "shop/web"}, "--explain: needs --from and --to"},
		{"explain as json", []string{"-f", shopManifests, "--explain", "--from", "shop/web", "--to", "db/postgres", "-o", "json"}, "--explain: prints text"},
		{"unknown from pod", []string{"-f", shopManifests, "--from", "shop/nope"}, "--from: pod shop/nope: not in the manifests"},
		{"malformed to pod", []string{"-f", shopManifests, "--to", "postgres"}, `--to: pod "postgres": want namespace/name`},
		{"same pod both ends", []string{"-f", shopManifests, "--from", "shop/web", "--to", "shop/web"}, "--from and --to are both shop/web"},
		{"bad ports", []string{"-f", shopManifests, "--ports", "80/ICMP"}, `--ports: port "80/ICMP": protocol "ICMP"`},
		{"missing file", []string{"-f", "does-not-exist.yaml"}, "does-not-exist.yaml: no such file or directory"},
		{"unparsable manifest", []string{"-f", "../../enforcer/check/testdata/bad/not-yaml.yaml"}, "not-yaml.yaml: document 1: yaml: line 3"},
		{"pod without ip", []string{"-f", "../../enforcer/check/testdata/bad/no-ip.yaml"}, "no-ip.yaml: document 1: Pod shop/web: status.podIP: Required value"},
		{"invalid policy", []string{"-f", "../../enforcer/check/testdata/bad/invalid-policy.yaml"}, "invalid-policy.yaml: document 1: invalid networkpolicy shop/broken: spec.ingress[0].ports[0].port: Invalid value: 70000"},
		{"bad expect file", []string{"-f", shopManifests, "--expect", writeTemp(t, "e.yaml", "results: [{from: shop/web, to: db/nope, port: 1, allowed: true}]")}, "--expect: read expectations: "},
		{"missing expect file", []string{"-f", shopManifests, "--expect", "nope.yaml"}, "--expect: read expectations: stat nope.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCheckCommand(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.err) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2, no output, stderr ~%q", code, stdout, stderr, tc.err)
			}
		})
	}
}

func TestCheckNoPortsToProbe(t *testing.T) {
	pods := writeTemp(t, "pods.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nstatus: {podIP: 10.0.0.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x}\nstatus: {podIP: 10.0.0.2}\n")
	code, _, stderr := runCheckCommand(t, "-f", pods)
	if code != 2 || !strings.Contains(stderr, "no ports to probe") || !strings.Contains(stderr, "pass --ports") {
		t.Errorf("exit %d, stderr %q; want 2 naming --ports", code, stderr)
	}
	if code, out, stderr := runCheckCommand(t, "-f", pods, "--ports", "80"); code != 0 || !strings.Contains(out, "2 of 2 connections allowed") {
		t.Errorf("with --ports: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

func TestCheckOutputs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"json", []string{"--from", "shop/worker", "--ports", "8080/TCP", "-o", "json"}, `{"results":[` +
			`{"from":"shop/worker","to":"db/postgres","port":8080,"protocol":"TCP","allowed":false,"reason":"denied: ingress of db/postgres isolated by db/allow-web, db/default-deny; no rule allows"},` +
			`{"from":"shop/worker","to":"shop/web","port":8080,"protocol":"TCP","allowed":true,"reason":"allowed: egress of shop/worker not isolated; ingress of shop/web allowed by shop/web-ingress ingress rule 0 (all peers)"}` +
			"]}\n"},
		{"table", nil, `5432/TCP     db/postgres  shop/web  shop/worker
db/postgres  -            X         X
shop/web     .            -         .
shop/worker  X            X         -

8080/TCP     db/postgres  shop/web  shop/worker
db/postgres  -            X         X
shop/web     X            -         .
shop/worker  X            .         -

4 of 12 connections allowed (rows: from, columns: to; '.' allowed, 'X' denied)
`},
		{"table to one pod", []string{"--to", "db/postgres", "--ports", "5432,53/udp"}, `5432/TCP     db/postgres
shop/web     .
shop/worker  X

53/UDP       db/postgres
shop/web     X
shop/worker  X

1 of 4 connections allowed (rows: from, columns: to; '.' allowed, 'X' denied)
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCheckCommand(t, append([]string{"-f", shopManifests}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if stdout != tc.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tc.want)
			}
			if !strings.Contains(stderr, "ignored ../../enforcer/check/testdata/shop/pods.yaml: document 4: Service shop/web") {
				t.Errorf("stderr does not note the ignored Service: %q", stderr)
			}
		})
	}
}

func TestCheckExpect(t *testing.T) {
	holds := writeTemp(t, "holds.yaml", `results:
- {from: shop/web, to: db/postgres, port: 5432, protocol: TCP, allowed: true, reason: "db/allow-web"}
- {from: shop/worker, to: db/postgres, port: 5432, protocol: TCP, allowed: false}
- {from: db/postgres, to: shop/web, port: 443, protocol: TCP, allowed: false}
`)
	broken := writeTemp(t, "broken.json", `{"results":[
{"from":"shop/web","to":"db/postgres","port":5432,"protocol":"TCP","allowed":true},
{"from":"shop/worker","to":"db/postgres","port":5432,"protocol":"TCP","allowed":true},
{"from":"shop/worker","to":"shop/web","port":8080,"protocol":"TCP","allowed":false}]}`)
	t.Run("holds", func(t *testing.T) {
		code, stdout, stderr := runCheckCommand(t, "-f", shopManifests, "--expect", holds, "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(stderr, "all 3 expectations in "+holds+" hold (engine model)") {
			t.Errorf("stderr %q", stderr)
		}
		// The expectation outside the default ports is probed and printed.
		if !strings.Contains(stdout, `{"from":"db/postgres","to":"shop/web","port":443,"protocol":"TCP","allowed":false,`) {
			t.Errorf("stdout lacks the 443 probe: %s", stdout)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		code, _, stderr := runCheckCommand(t, "-f", shopManifests, "--expect", broken)
		want := "palisade: reachability differs from " + broken + " in 2 of 3 expectations (engine model):\n" +
			"  shop/worker -> db/postgres 5432/TCP: expected allowed, got denied (denied: ingress of db/postgres isolated by db/allow-web, db/default-deny; no rule allows)\n" +
			"  shop/worker -> shop/web 8080/TCP: expected denied, got allowed (allowed: egress of shop/worker not isolated; ingress of shop/web allowed by shop/web-ingress ingress rule 0 (all peers))\n"
		if code != 1 || !strings.HasSuffix(stderr, want) {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and stderr ending:\n%s", code, stderr, want)
		}
	})
}

func TestCheckExplain(t *testing.T) {
	code, stdout, stderr := runCheckCommand(t, "-f", shopManifests, "--explain", "--from", "shop/worker", "--to", "db/postgres", "--ports", "5432/TCP")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `shop/worker -> db/postgres 5432/TCP: denied
  packet:   10.0.0.2 -> 10.0.1.1 TCP port 5432
  from:     shop/worker, identity 258 (namespace shop; labels app=worker,tier=backend)
  to:       db/postgres, identity 256 (namespace db; labels app=postgres,tier=data)
  egress:   at shop/worker: allowed: not isolated (no policy selects shop/worker for egress)
  ingress:  at db/postgres: denied: isolated by db/allow-web, db/default-deny; no rule allows identity 258 on 5432/TCP
  verdict:  denied: ingress of db/postgres isolated by db/allow-web, db/default-deny; no rule allows
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
}

func requireBPF(t *testing.T) {
	t.Helper()
	switch err := features.HaveProgramType(ebpf.SchedCLS); {
	case os.Geteuid() != 0:
		testenv.SkipOrFail(t, "--engine bpf loads BPF programs, which needs root")
	case errors.Is(err, ebpf.ErrNotSupported):
		testenv.SkipOrFail(t, "kernel lacks BPF sched_cls programs: %v", err)
	case err != nil:
		testenv.SkipOrFail(t, "cannot probe BPF: %v", err)
	}
}

// The kernel engine prints exactly what the model prints, in every mode.
func TestCheckEngineBPFMatchesModel(t *testing.T) {
	requireBPF(t)
	for _, args := range [][]string{
		{"-o", "json", "--ports", "8080/TCP,5432/TCP,53/UDP,9/SCTP"},
		nil,
		{"--explain", "--from", "shop/web", "--to", "db/postgres"},
	} {
		base := append([]string{"-f", shopManifests}, args...)
		mCode, mOut, mErr := runCheckCommand(t, append(base, "--engine", "model")...)
		bCode, bOut, bErr := runCheckCommand(t, append(base, "--engine", "bpf")...)
		if mCode != 0 || bCode != 0 {
			t.Fatalf("%v: exit model %d (%s), bpf %d (%s)", args, mCode, mErr, bCode, bErr)
		}
		if mOut != bOut {
			t.Errorf("%v: engines differ:\nmodel:\n%s\nbpf:\n%s", args, mOut, bOut)
		}
	}
}

// Without the privilege to load BPF, --engine bpf is a usage error (exit
// 2) that says what is missing. As root, the test re-runs itself as
// nobody.
func TestCheckEngineBPFWithoutRoot(t *testing.T) {
	if os.Getenv("PALISADE_CHECK_TEST_UNPRIVILEGED") == "1" {
		os.Exit(execute(context.Background(), newCheckCommand(), []string{"-f", os.Getenv("PALISADE_CHECK_TEST_MANIFESTS"), "--engine", "bpf"}, os.Stderr))
	}
	if os.Geteuid() != 0 {
		code, _, stderr := runCheckCommand(t, "-f", shopManifests, "--engine", "bpf")
		assertNoPrivilege(t, code, stderr)
		return
	}
	dir, err := os.MkdirTemp("", "palisade-check-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "palisade.test")
	manifests := filepath.Join(dir, "shop.yaml")
	copyFile(t, exe, bin, 0o755)
	var all []byte
	for _, f := range []string{"namespaces.yaml", "pods.yaml", "policies.yaml"} {
		data, err := os.ReadFile(filepath.Join(shopManifests, f))
		if err != nil {
			t.Fatal(err)
		}
		all = append(append(all, data...), "\n---\n"...)
	}
	if err := os.WriteFile(manifests, all, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestCheckEngineBPFWithoutRoot$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PALISADE_CHECK_TEST_UNPRIVILEGED=1", "PALISADE_CHECK_TEST_MANIFESTS="+manifests)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("run as nobody: %v (stderr %q)", err, stderr.String())
	}
	assertNoPrivilege(t, exit.ExitCode(), stderr.String())
}

func assertNoPrivilege(t *testing.T, code int, stderr string) {
	t.Helper()
	t.Logf("exit %d: %s", code, stderr)
	if code != 2 || !strings.Contains(stderr, "--engine bpf: load bpf engine: loading BPF programs needs root") || !strings.Contains(stderr, "or use --engine model") {
		t.Errorf("exit %d, stderr %q; want exit 2 explaining the missing privilege", code, stderr)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
