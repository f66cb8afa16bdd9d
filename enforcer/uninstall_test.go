package enforcer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// startAPIServer runs a control plane for one test.
func startAPIServer(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	assets, reason := testenv.Assets()
	if reason != "" {
		testenv.SkipOrFail(t, "%s", reason)
	}
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() { env.Stop() }) //nolint:errcheck // best effort
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c
}

func createDaemonSet(t *testing.T, c client.Client, ns, name string, finalizers ...string) *appsv1.DaemonSet {
	t.Helper()
	ctx := t.Context()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	labels := map[string]string{"app": name}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Finalizers: finalizers},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "enforcer", Image: "palisade"}}},
			},
		},
	}
	if err := c.Create(ctx, ds); err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestUninstallDecision: only a DaemonSet that is gone or being deleted
// means an uninstall; everything uncertain keeps the pins.
func TestUninstallDecision(t *testing.T) {
	cfg, c := startAPIServer(t)
	createDaemonSet(t, c, "palisade-system", "present")
	deleting := createDaemonSet(t, c, "palisade-system", "deleting", "test.palisade.dev/hold")
	if err := c.Delete(t.Context(), deleting); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleting.Finalizers = nil
		c.Update(context.Background(), deleting) //nolint:errcheck // the control plane goes anyway
	})
	unreachable := &rest.Config{Host: "https://127.0.0.1:1"}
	for _, tc := range []struct {
		name       string
		cfg        *rest.Config
		ds, ns     string
		wantRemove bool
		wantReason string
	}{
		{"no DaemonSet configured", cfg, "", "", false, "no DaemonSet configured"},
		{"DaemonSet in place", cfg, "present", "palisade-system", false, "is in place"},
		{"DaemonSet being deleted", cfg, "deleting", "palisade-system", true, "is being deleted"},
		{"DaemonSet gone", cfg, "gone", "palisade-system", true, "is gone"},
		{"DaemonSet in another namespace only", cfg, "present", "elsewhere", true, "is gone"},
		{"API server unreachable", unreachable, "present", "palisade-system", false, "cannot tell an uninstall from a restart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(tc.cfg, Options{NodeName: "node1", DaemonSetName: tc.ds, DaemonSetNamespace: tc.ns, UninstallCheckTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			remove, reason := a.uninstalling()
			if remove != tc.wantRemove || !strings.Contains(reason, tc.wantReason) {
				t.Errorf("uninstalling = %t, %q; want %t, %q", remove, reason, tc.wantRemove, tc.wantReason)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("the question took %s, beyond its 2s timeout", d)
			}
		})
	}
}

func TestNewRejectsDaemonSetWithoutNamespace(t *testing.T) {
	_, err := New(&rest.Config{}, Options{NodeName: "n", DaemonSetName: "e"})
	if err == nil || !strings.Contains(err.Error(), `DaemonSet "e" has no namespace`) {
		t.Errorf("error %v, want one naming the DaemonSet without a namespace", err)
	}
}

// TestStopKeepsOrRemovesDatapath runs the agent on a real kernel against
// a real API server, for a node with one routed pod, and stops it in each
// situation: with its DaemonSet in place and with the API server
// unreachable the pins stay and keep their links attached; with the
// DaemonSet being deleted or gone the links are detached and the pin
// directory removed. RemoveDatapath (`palisade enforcer cleanup`) takes
// off what an unreachable API server left.
func TestStopKeepsOrRemovesDatapath(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "the datapath needs root (BPF, tcx, network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.SkipOrFail(t, "iproute2's ip is not installed: %v", err)
	}
	cfg, c := startAPIServer(t)
	node := newRoutedNode(t, "10.244.0.2")
	pinDir := bpffsDir(t)
	ctx := t.Context()
	const ns, dsName = "palisade-system", "palisade-enforcer"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "web", Image: "web"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.2", PodIPs: []corev1.PodIP{{IP: "10.244.0.2"}}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	ds := createDaemonSet(t, c, ns, dsName, "test.palisade.dev/hold")

	// run starts an agent through proxy, waits until it enforces, then
	// stops it, calling before first; it returns the links it pinned.
	run := func(t *testing.T, before func(p *testenv.Forwarder)) []link.ID {
		t.Helper()
		p := newTCPProxy(t, cfg.Host)
		acfg := rest.CopyConfig(cfg)
		acfg.Host = "https://" + p.Addr()
		a, err := New(acfg, Options{
			NodeName: "node1", HostIPs: []netip.Addr{}, PinDir: pinDir, NetNS: node.path(),
			DaemonSetName: dsName, DaemonSetNamespace: ns, UninstallCheckTimeout: 2 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(runCtx) }()
		deadline := time.Now().Add(30 * time.Second)
		var ids []link.ID
		for {
			select {
			case err := <-done:
				stop()
				if errors.Is(err, datapath.ErrUnsupported) {
					testenv.SkipOrFail(t, "the node cannot run the datapath: %v", err)
				}
				t.Fatalf("agent stopped before enforcing: %v", err)
			default:
			}
			if a.Ready() == nil {
				if ids = pinnedLinks(t, pinDir); len(ids) >= 2 {
					break
				}
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("agent not enforcing within 30s (ready: %v, links: %v)", a.Ready(), pinnedLinks(t, pinDir))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if before != nil {
			before(p)
		}
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("agent stopped with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("agent did not stop within 20s")
		}
		return ids
	}
	kept := func(t *testing.T, ids []link.ID) {
		t.Helper()
		if got := pinnedLinks(t, pinDir); len(got) != len(ids) {
			t.Errorf("pinned links after the stop %v, want %v kept", got, ids)
		}
		if entries, _ := os.ReadDir(filepath.Join(pinDir, "maps")); len(entries) == 0 {
			t.Error("no pinned maps after the stop")
		}
		for _, id := range ids {
			if !attached(id) {
				t.Errorf("link %d is detached; the stopped agent must leave it enforcing", id)
			}
		}
	}
	removed := func(t *testing.T, ids []link.ID) {
		t.Helper()
		if _, err := os.Stat(pinDir); !errors.Is(err, os.ErrNotExist) {
			entries, _ := os.ReadDir(pinDir)
			t.Errorf("pin directory still there (%v): %v", err, entries)
		}
		for _, id := range ids {
			if attached(id) {
				t.Errorf("link %d is still attached", id)
			}
		}
	}

	t.Run("DaemonSet in place keeps the pins", func(t *testing.T) {
		kept(t, run(t, nil))
	})
	var left []link.ID
	t.Run("unreachable API server keeps the pins", func(t *testing.T) {
		left = run(t, func(p *testenv.Forwarder) {
			if err := c.Delete(ctx, ds); err != nil { // an uninstall it cannot see
				t.Fatal(err)
			}
			p.Close()
		})
		kept(t, left)
	})
	t.Run("cleanup removes what was kept", func(t *testing.T) {
		ok, err := RemoveDatapath(pinDir, node.path(), nil)
		if err != nil || !ok {
			t.Fatalf("RemoveDatapath = %t, %v", ok, err)
		}
		removed(t, left)
		if ok, err := RemoveDatapath(pinDir, node.path(), nil); ok || err != nil {
			t.Errorf("second RemoveDatapath = %t, %v; want nothing to remove", ok, err)
		}
	})
	t.Run("DaemonSet being deleted removes the pins", func(t *testing.T) {
		var got appsv1.DaemonSet
		if err := c.Get(ctx, client.ObjectKeyFromObject(ds), &got); err != nil || got.DeletionTimestamp == nil {
			t.Fatalf("fixture: DaemonSet %v (err %v), want it held by its finalizer", got.DeletionTimestamp, err)
		}
		removed(t, run(t, nil))
	})
	t.Run("DaemonSet gone removes the pins", func(t *testing.T) {
		ids := run(t, func(*testenv.Forwarder) {
			var got appsv1.DaemonSet
			if err := c.Get(ctx, client.ObjectKeyFromObject(ds), &got); err != nil {
				t.Fatal(err)
			}
			got.Finalizers = nil
			if err := c.Update(ctx, &got); err != nil {
				t.Fatal(err)
			}
		})
		removed(t, ids)
	})
}

// pinnedLinks lists the IDs of the links pinned under pinDir/links.
func pinnedLinks(t *testing.T, pinDir string) []link.ID {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(pinDir, "links"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []link.ID
	for _, e := range entries {
		l, err := link.LoadPinnedLink(filepath.Join(pinDir, "links", e.Name()), nil)
		if err != nil {
			t.Fatalf("load pinned link %s: %v", e.Name(), err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	return ids
}

// attached reports whether link id still exists and is on an interface.
func attached(id link.ID) bool {
	l, err := link.NewFromID(id)
	if err != nil {
		return false
	}
	defer l.Close()
	info, err := l.Info()
	return err == nil && info.TCX() != nil && info.TCX().Ifindex != 0
}

// bpffsDir returns a pin directory on a private bpf filesystem that
// vanishes with the test (the host's /sys/fs/bpf is never touched).
func bpffsDir(t *testing.T) string {
	t.Helper()
	mnt, err := os.MkdirTemp("", "palisade-agent-bpffs-")
	if err != nil {
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

// routedNode is a network namespace holding one routed pod's host-side
// veth, as routed CNIs (ptp, kindnet) set it up.
type routedNode struct{ name string }

func (n routedNode) path() string { return filepath.Join("/var/run/netns", n.name) }

func newRoutedNode(t *testing.T, podIP string) routedNode {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	prefix := "pu" + hex.EncodeToString(b)
	n := routedNode{name: prefix + "-node"}
	pod := prefix + "-web"
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, name := range []string{n.name, pod} {
		sh("netns", "add", name)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	}
	sh("-n", n.name, "link", "set", "lo", "up")
	sh("-n", n.name, "link", "add", "rweb", "type", "veth", "peer", "name", "eth0", "netns", pod)
	sh("-n", n.name, "addr", "add", "10.244.0.1/32", "dev", "rweb")
	sh("-n", n.name, "link", "set", "rweb", "up")
	sh("-n", n.name, "route", "add", podIP+"/32", "dev", "rweb", "scope", "link")
	sh("-n", pod, "addr", "add", podIP+"/32", "dev", "eth0")
	sh("-n", pod, "link", "set", "eth0", "up")
	return n
}

// newTCPProxy forwards connections to the API server at target (a URL)
// until the test closes it: closing cuts the agent off mid-run.
func newTCPProxy(t *testing.T, target string) *testenv.Forwarder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		t.Fatalf("API server address %q: %v", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.Forward(ln, u.Host)
	t.Cleanup(p.Close)
	return p
}
