package datapath

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/testkit/podnet"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
	"golang.org/x/sys/unix"
)

// requireKernel skips (or, with PALISADE_REQUIRE_PRIVILEGED=1, fails) a
// test that needs root, tcx and iproute2.
func requireKernel(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "the datapath needs root (BPF, tcx, network namespaces)")
	}
	if err := probeTCX(); err != nil {
		testenv.SkipOrFail(t, "kernel cannot attach tcx programs: %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.SkipOrFail(t, "iproute2's ip is not installed: %v", err)
	}
}

func randomSuffix(t testing.TB) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testPinDir returns a pin directory on a bpf filesystem that vanishes
// with the test: under /sys/fs/bpf/palisade-test-<random> where a bpffs
// is mounted there, else on a private bpffs instance mounted for the test
// (so the host's /sys/fs/bpf is never touched).
func testPinDir(t testing.TB) string {
	t.Helper()
	name := "palisade-test-" + randomSuffix(t)
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		dir := filepath.Join("/sys/fs/bpf", name)
		t.Cleanup(func() { os.RemoveAll(dir) })
		return filepath.Join(dir, "node1")
	}
	mnt := filepath.Join(os.TempDir(), name)
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		os.Remove(mnt)
		testenv.SkipOrFail(t, "mount a bpf filesystem: %v", err)
	}
	t.Cleanup(func() {
		unix.Unmount(mnt, unix.MNT_DETACH)
		os.Remove(mnt)
	})
	return filepath.Join(mnt, "node1")
}

// run runs a command and fails the test with its output if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testNode is a node: a network namespace holding the pods' host-side
// interfaces, where the datapath attaches. Pods are namespaces of their
// own. Everything is deleted when the test ends, failed or not.
type testNode struct {
	t      testing.TB
	prefix string
	name   string
	mu     sync.Mutex
	bridge bool
}

func newTestNode(t testing.TB) *testNode {
	t.Helper()
	prefix := "pl" + randomSuffix(t)
	n := &testNode{t: t, prefix: prefix, name: prefix + "-node"}
	n.addNetns(n.name)
	n.ip("link", "set", "lo", "up")
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.forwarding=1"} {
		run(t, "ip", "netns", "exec", n.name, "sysctl", "-qw", kv)
	}
	return n
}

func (n *testNode) addNetns(name string) {
	n.t.Helper()
	run(n.t, "ip", "netns", "add", name)
	n.t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
}

func (n *testNode) path() string { return netnsPath(n.name) }

func netnsPath(name string) string { return filepath.Join("/var/run/netns", name) }

// ip runs ip in the node's namespace.
func (n *testNode) ip(args ...string) string {
	n.t.Helper()
	return run(n.t, "ip", append([]string{"-n", n.name}, args...)...)
}

type testPod struct {
	name   string
	netns  string
	ip     netip.Addr
	hostIf string
}

func (p *testPod) path() string { return netnsPath(p.netns) }

// routedPod adds a pod the way routed CNIs (ptp, Calico, kindnet) do: the
// pod's /32 (or /128) is routed to its own veth, whose host side carries
// the gateway address 10.244.0.1 (IPv6: fe80::1).
func (n *testNode) routedPod(name, addr string) *testPod {
	n.t.Helper()
	p := &testPod{name: name, netns: n.prefix + "-" + name, ip: netip.MustParseAddr(addr), hostIf: "r" + name}
	n.addNetns(p.netns)
	n.ip("link", "add", p.hostIf, "type", "veth", "peer", "name", "eth0", "netns", p.netns)
	pip := func(args ...string) { run(n.t, "ip", append([]string{"-n", p.netns}, args...)...) }
	pip("link", "set", "lo", "up")
	if p.ip.Is4() {
		n.ip("addr", "add", "10.244.0.1/32", "dev", p.hostIf)
		n.ip("link", "set", p.hostIf, "up")
		n.ip("route", "add", addr+"/32", "dev", p.hostIf, "scope", "link")
		pip("addr", "add", addr+"/32", "dev", "eth0")
		pip("link", "set", "eth0", "up")
		pip("route", "add", "10.244.0.1", "dev", "eth0", "scope", "link")
		pip("route", "add", "default", "via", "10.244.0.1", "dev", "eth0")
		return p
	}
	n.ip("-6", "addr", "add", "fe80::1/64", "dev", p.hostIf, "nodad")
	n.ip("link", "set", p.hostIf, "up")
	n.ip("-6", "route", "add", addr+"/128", "dev", p.hostIf)
	pip("-6", "addr", "add", addr+"/128", "dev", "eth0", "nodad")
	pip("link", "set", "eth0", "up")
	pip("-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
	return p
}

// bridgedPod adds a pod the way bridged CNIs (bridge plugin, flannel) do:
// its veth is a port of br0, which holds the subnet's gateway 10.245.0.1.
func (n *testNode) bridgedPod(name, addr string) *testPod {
	n.t.Helper()
	n.mu.Lock()
	if !n.bridge {
		n.ip("link", "add", "br0", "type", "bridge")
		n.ip("addr", "add", "10.245.0.1/24", "dev", "br0")
		n.ip("link", "set", "br0", "up")
		n.bridge = true
	}
	n.mu.Unlock()
	p := &testPod{name: name, netns: n.prefix + "-" + name, ip: netip.MustParseAddr(addr), hostIf: "b" + name}
	n.addNetns(p.netns)
	n.ip("link", "add", p.hostIf, "type", "veth", "peer", "name", "eth0", "netns", p.netns)
	n.ip("link", "set", p.hostIf, "master", "br0")
	n.ip("link", "set", p.hostIf, "up")
	pip := func(args ...string) { run(n.t, "ip", append([]string{"-n", p.netns}, args...)...) }
	pip("link", "set", "lo", "up")
	pip("addr", "add", addr+"/24", "dev", "eth0")
	pip("link", "set", "eth0", "up")
	pip("route", "add", "default", "via", "10.245.0.1", "dev", "eth0")
	return p
}

// ifindex returns the index of the pod's host-side interface.
func (n *testNode) ifindex(p *testPod) int {
	n.t.Helper()
	f, err := NewInterfaceFinder(n.path())
	if err != nil {
		n.t.Fatal(err)
	}
	defer f.Close()
	l, err := f.h.LinkByName(p.hostIf)
	if err != nil {
		n.t.Fatalf("find %s: %v", p.hostIf, err)
	}
	return l.Attrs().Index
}

// serve starts TCP and UDP echo servers in the pod on port.
func (p *testPod) serve(t testing.TB, port int) {
	t.Helper()
	srv, err := podnet.Netns(p.netns).ServeEcho(port)
	if err != nil {
		t.Fatalf("listen in %s: %v", p.name, err)
	}
	t.Cleanup(func() { srv.Close() })
}

// dial opens a TCP connection from the pod; a dropped SYN shows as a
// timeout.
func (p *testPod) dial(to *testPod, port int, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := runInNetNS(p.path(), func() error {
		var err error
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(to.ip, uint16(port)).String(), timeout)
		return err
	})
	return c, err
}

// tcp reports whether a new TCP connection from p to `to` gets an echo.
func (p *testPod) tcp(to *testPod, port int) error {
	c, err := p.dial(to, port, 400*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c, time.Second)
}

// udp reports whether a datagram from p to `to` gets its echo.
func (p *testPod) udp(to *testPod, port int) error {
	var c net.Conn
	err := runInNetNS(p.path(), func() error {
		var err error
		c, err = net.Dial("udp", netip.AddrPortFrom(to.ip, uint16(port)).String())
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c, 400*time.Millisecond)
}

// echo sends a line on c and waits for it to come back.
func echo(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	msg := fmt.Sprintf("ping %d\n", time.Now().UnixNano())
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("echo %q, sent %q", got, msg)
	}
	return nil
}

func expectPass(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: want pass, got %v", what, err)
	}
}

func expectDrop(t testing.TB, what string, err error) {
	t.Helper()
	var ne net.Error
	switch {
	case err == nil:
		t.Errorf("%s: want drop, but it passed", what)
	case errors.As(err, &ne) && ne.Timeout():
	default:
		t.Errorf("%s: want drop (a timeout), got %v", what, err)
	}
}

// logBuffer collects a Datapath's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }
