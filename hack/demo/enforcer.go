package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/palisade-dev/palisade/enforcer"
	"github.com/palisade-dev/palisade/internal/testkit/childproc"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

// enforcerUnavailable returns why this machine cannot run the enforcer
// part of the tour, or "".
func enforcerUnavailable() string {
	if os.Geteuid() != 0 {
		return "it needs root (BPF, tcx links, network namespaces); run `sudo make demo` to see it"
	}
	if err := podnet.Available(); err != nil {
		return err.Error()
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		release := unix.ByteSliceToString(u.Release[:])
		major, rest, _ := strings.Cut(release, ".")
		minorText := strings.TrimRightFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if i := strings.IndexFunc(minorText, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
			minorText = minorText[:i]
		}
		maj, err1 := strconv.Atoi(major)
		minor, err2 := strconv.Atoi(minorText)
		if err1 == nil && err2 == nil && (maj < 6 || maj == 6 && minor < 6) {
			return fmt.Sprintf("kernel %s has no tcx links (Linux 6.6 or newer is needed)", release)
		}
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
	}
	return ""
}

// enforcerUser is the enforcer's API user: it may read exactly what the
// agent watches, as the chart's ClusterRole grants.
const enforcerUser = "palisade-enforcer"

func addEnforcerUser(ctx context.Context, c client.Client, env *envtest.Environment, cfg *rest.Config, dir string) (string, error) {
	read := []string{"get", "list", "watch"}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: enforcerUser}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: read},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: read},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: enforcerUser},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: enforcerUser},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: enforcerUser}}}
	for _, obj := range []client.Object{role, binding} {
		if err := c.Create(ctx, obj); err != nil {
			return "", fmt.Errorf("create RBAC for the enforcer: %w", err)
		}
	}
	au, err := env.AddUser(envtest.User{Name: enforcerUser}, cfg)
	if err != nil {
		return "", err
	}
	kc, err := au.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "enforcer.kubeconfig")
	return path, os.WriteFile(path, kc, 0o600)
}

// mountBPFFS mounts a private bpf filesystem for the enforcer's pins, so
// the host's /sys/fs/bpf is never touched; unmounting it releases every
// pin.
func mountBPFFS(dir string) (string, func(), error) {
	root := filepath.Join(dir, "bpffs")
	if err := os.Mkdir(root, 0o700); err != nil {
		return "", nil, err
	}
	if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
		return "", nil, fmt.Errorf("mount a bpf filesystem: %w", err)
	}
	return root, func() {
		os.RemoveAll(root)
		unix.Unmount(root, unix.MNT_DETACH)
	}, nil
}

// enforcerProc is the node's `palisade enforcer` process.
type enforcerProc struct {
	args       []string
	logPath    string
	flowPath   string
	healthAddr string
	metrics    string
	proc       *childproc.Process
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startEnforcer runs the enforcer for node. It has its own process group
// (the terminal's Ctrl-C reaches the demo only, which stops it in order)
// and a parent-death signal tied to a thread that lives as long as it, so
// a killed demo leaves no enforcer behind.
func startEnforcer(bin, kubeconfig, pinRoot, dir string, node *podnet.Node) (*enforcerProc, error) {
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	health, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var hostIPs []string
	for _, a := range node.HostIPs() {
		hostIPs = append(hostIPs, a.String())
	}
	e := &enforcerProc{
		logPath:    filepath.Join(dir, "enforcer.log"),
		flowPath:   filepath.Join(dir, "flows.jsonl"),
		healthAddr: health,
		metrics:    metrics,
	}
	e.args = []string{"enforcer",
		"--kubeconfig", kubeconfig,
		"--node-name", node.Name(),
		"--netns", node.Netns().Path(),
		"--host-ips", strings.Join(hostIPs, ","),
		"--pin-dir", filepath.Join(pinRoot, node.Name()),
		"--flow-file", e.flowPath,
		"--flow-stdout=false",
		"--metrics-bind-address", metrics,
		"--health-probe-bind-address", health,
		// podnet's host veths: each new one is quarantined until its
		// pod is known.
		"--pod-interfaces", "v*",
	}
	log, err := os.Create(e.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, e.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if e.proc, err = childproc.Start(cmd, log); err != nil {
		return nil, fmt.Errorf("start palisade enforcer: %w", err)
	}
	return e, nil
}

// stop asks the enforcer to stop (SIGTERM) and kills it after 5s.
func (e *enforcerProc) stop() { e.proc.Stop(5 * time.Second) }

// waitReady polls /readyz until the enforcer has enforced its first
// compilation.
func (e *enforcerProc) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case <-e.proc.Exited():
			return fmt.Errorf("palisade enforcer exited:\n%s", e.logTail(20))
		default:
		}
		if resp, err := http.Get("http://" + e.healthAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("palisade enforcer not ready after %v:\n%s", within, e.logTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// flowLine is one line of the flow file and its decoding.
type flowLine struct {
	raw    string
	record enforcer.FlowRecord
}

// waitFlow waits for a flow record matching match, newer than since.
func (e *enforcerProc) waitFlow(ctx context.Context, within time.Duration, since time.Time, match func(enforcer.FlowRecord) bool) (flowLine, error) {
	deadline := time.Now().Add(within)
	for {
		lines, err := e.flows()
		if err != nil {
			return flowLine{}, err
		}
		for _, l := range lines {
			if !l.record.Time.Before(since.Add(-time.Second)) && match(l.record) {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			return flowLine{}, fmt.Errorf("no such flow record in %s within %v (%d records)", e.flowPath, within, len(lines))
		}
		select {
		case <-ctx.Done():
			return flowLine{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (e *enforcerProc) flows() ([]flowLine, error) {
	f, err := os.Open(e.flowPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []flowLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r enforcer.FlowRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// The last line may be half written.
			continue
		}
		out = append(out, flowLine{raw: sc.Text(), record: r})
	}
	return out, sc.Err()
}

func (e *enforcerProc) logTail(n int) string {
	data, err := os.ReadFile(e.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// flowTo reports whether a record is about a packet to addr:port.
func flowTo(r enforcer.FlowRecord, verdict string, to netip.AddrPort) bool {
	return r.Verdict == verdict && r.Destination.IP == to.Addr().String() && r.Destination.Port == to.Port()
}

func asNetError(err error, target *net.Error) bool { return errors.As(err, target) }
