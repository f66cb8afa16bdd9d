package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"golang.org/x/sys/unix"

	"github.com/palisade-dev/palisade/internal/testkit/podnet"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// world is the suite's cluster: one real API server, two nodes with an
// enforcer process each, pods x, y, z × a, b, c, and an external host.
type world struct {
	prefix     string
	dir        string
	bin        string
	env        *envtest.Environment
	client     client.Client
	kubeconfig string // the enforcers' user, bound to their least-privilege ClusterRole
	pinRoot    string // a private bpf filesystem

	net *podnet.Network // the routed nodes, their pods and the external host

	mu       sync.Mutex
	nodes    map[string]*node
	ext      *pod
	pods     map[string]*pod     // by "ns/name"
	nextHost map[string]int      // per node, the next free host number
	services map[string]*service // by "ns/name"

	// enforcerServiceCIDR: the binary takes --service-cidr (the
	// Service tests that need it skip until it does).
	enforcerServiceCIDR bool

	teardowns []func()
}

type node struct {
	net       nodeNet
	netns     string
	pn        *podnet.Node // nil for the bridged node3
	enforcer  *enforcerProc
	kubeProxy *kubeProxyProc // while a Service test runs
}

// pod is a pod's network namespace and its API object's identity.
type pod struct {
	ns, name string
	node     *node
	netns    string
	hostIf   string
	v4, v6   netip.Addr
	pn       *podnet.Pod // nil for the external host and bridged pods
	closers  []io.Closer
}

func (p *pod) ref() string { return p.ns + "/" + p.name }

func (w *world) onTeardown(f func()) {
	w.mu.Lock()
	w.teardowns = append(w.teardowns, f)
	w.mu.Unlock()
}

// teardown undoes everything, last first, whatever state setup reached.
func (w *world) teardown() {
	w.mu.Lock()
	fs := w.teardowns
	w.teardowns = nil
	w.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// prerequisites returns why the suite cannot run here, or "".
func prerequisites() string {
	if os.Geteuid() != 0 {
		return "the end-to-end suite needs root (BPF, tcx, network namespaces)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "iproute2's ip is not installed"
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		release := unix.ByteSliceToString(u.Release[:])
		parts := strings.SplitN(release, ".", 3)
		if len(parts) >= 2 {
			major, _ := strconv.Atoi(parts[0])
			minor, _ := strconv.Atoi(strings.TrimLeftFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
			if major < 6 || major == 6 && minor < 6 {
				return fmt.Sprintf("kernel %s has no tcx links (Linux 6.6 or newer needed)", release)
			}
		}
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return "the kernel has no BTF at /sys/kernel/btf/vmlinux"
	}
	if _, reason := testenv.Assets(); reason != "" {
		return reason
	}
	return ""
}

// The standard pods: a and b of each namespace on node1, c on node2.
// Every pod serves servedPorts; a and b name port 80 "http", c names 8080
// "http" (named ports resolve per destination pod).
var standardPods = []struct{ ns, name, node string }{
	{"x", "a", "node1"}, {"x", "b", "node1"}, {"x", "c", "node2"},
	{"y", "a", "node1"}, {"y", "b", "node1"}, {"y", "c", "node2"},
	{"z", "a", "node1"}, {"z", "b", "node1"}, {"z", "c", "node2"},
}

func startWorld(ctx context.Context) (w *world, err error) {
	suffix := make([]byte, 2)
	rand.Read(suffix)
	w = &world{prefix: "pe" + hex.EncodeToString(suffix), nodes: map[string]*node{}, pods: map[string]*pod{}, nextHost: map[string]int{}, services: map[string]*service{}}
	if w.dir, err = os.MkdirTemp("", "palisade-e2e-"); err != nil {
		return w, err
	}
	w.onTeardown(func() { os.RemoveAll(w.dir) })

	built := make(chan error, 1)
	go func() { built <- w.buildBinary() }()
	assets, _ := testenv.Assets()
	w.env = &envtest.Environment{BinaryAssetsDirectory: assets}
	w.env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", strings.Join(serviceCIDRs, ","))
	cfg, err := w.env.Start()
	if err != nil {
		<-built
		return w, fmt.Errorf("start control plane: %w", err)
	}
	w.onTeardown(func() { w.env.Stop() })
	if w.client, err = client.New(cfg, client.Options{}); err != nil {
		<-built
		return w, err
	}
	if err := w.enforcerUser(ctx, cfg); err != nil {
		<-built
		return w, err
	}
	if err := w.mountBPFFS(); err != nil {
		<-built
		return w, err
	}
	if err := w.buildNodes(); err != nil {
		<-built
		return w, err
	}
	if err := w.serve(w.ext); err != nil {
		<-built
		return w, err
	}
	for _, ns := range []string{"x", "y", "z"} {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"ns": ns, "env": "dev"}}}
		if err := w.client.Create(ctx, obj); err != nil {
			<-built
			return w, fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	for _, sp := range standardPods {
		if _, err := w.addPod(ctx, sp.ns, sp.name, sp.node, sp.name); err != nil {
			<-built
			return w, err
		}
	}
	if err := <-built; err != nil {
		return w, err
	}
	for _, n := range []*node{w.nodes["node1"], w.nodes["node2"]} {
		n.enforcer = w.newEnforcer(n)
		if err := n.enforcer.start(); err != nil {
			return w, err
		}
	}
	for _, n := range w.nodes {
		if err := n.enforcer.waitReady(30 * time.Second); err != nil {
			return w, err
		}
	}
	return w, nil
}

// buildBinary builds the real palisade binary (or takes
// PALISADE_E2E_BINARY) and checks it has the enforcer command.
func (w *world) buildBinary() error {
	w.bin = os.Getenv("PALISADE_E2E_BINARY")
	if w.bin == "" {
		w.bin = filepath.Join(w.dir, "palisade")
		out, err := exec.Command("go", "build", "-o", w.bin, "github.com/palisade-dev/palisade/cmd/palisade").CombinedOutput()
		if err != nil {
			return fmt.Errorf("build palisade: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(w.bin, "enforcer", "--help").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s has no enforcer command (cmd/palisade/subcommands.go must list newEnforcerCommand(runEnforcer)): %v\n%s", w.bin, err, out)
	}
	w.enforcerServiceCIDR = strings.Contains(string(out), "--service-cidr")
	return nil
}

// enforcerUser binds the enforcers' user to exactly what the agent needs:
// read pods, namespaces, nodes and NetworkPolicies, write Events. A missing permission
// shows as an enforcer that never becomes ready.
func (w *world) enforcerUser(ctx context.Context, cfg *rest.Config) error {
	const user = "palisade-enforcer"
	read := []string{"get", "list", "watch"}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: read},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: read},
		// As the chart: failed syncs and filling maps as Node Events.
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}}
	for _, obj := range []client.Object{role, binding} {
		if err := w.client.Create(ctx, obj); err != nil {
			return fmt.Errorf("create RBAC for the enforcer: %w", err)
		}
	}
	au, err := w.env.AddUser(envtest.User{Name: user}, cfg)
	if err != nil {
		return err
	}
	kc, err := au.KubeConfig()
	if err != nil {
		return err
	}
	w.kubeconfig = filepath.Join(w.dir, "enforcer.kubeconfig")
	return os.WriteFile(w.kubeconfig, kc, 0o600)
}

// mountBPFFS mounts a private bpf filesystem for the enforcers' pins, so
// the host's /sys/fs/bpf is never touched; unmounting it releases every
// pin left behind.
func (w *world) mountBPFFS() error {
	w.pinRoot = filepath.Join(w.dir, "bpffs")
	if err := os.Mkdir(w.pinRoot, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("bpf", w.pinRoot, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount a bpf filesystem: %w", err)
	}
	w.onTeardown(func() {
		os.RemoveAll(w.pinRoot)
		unix.Unmount(w.pinRoot, unix.MNT_DETACH)
	})
	return nil
}

// addPod gives a pod the next free addresses of its node, its network
// namespace, servers and API object.
func (w *world) addPod(ctx context.Context, ns, name, nodeName, app string) (*pod, error) {
	w.mu.Lock()
	n := w.nodes[nodeName]
	w.mu.Unlock()
	v4, v6 := w.nextAddrs(n)
	return w.addPodAt(ctx, ns, name, n, app, v4, v6)
}

// nextAddrs hands out a node's next free pod addresses (hosts from 10 up).
func (w *world) nextAddrs(n *node) (netip.Addr, netip.Addr) {
	w.mu.Lock()
	host := w.nextHost[n.net.name] + 10
	w.nextHost[n.net.name]++
	w.mu.Unlock()
	return n.net.podAddrs(host)
}

func (w *world) addPodAt(ctx context.Context, ns, name string, n *node, app string, v4, v6 netip.Addr) (*pod, error) {
	p, err := w.podNetwork(ns, name, n, v4, v6)
	if err != nil {
		return nil, err
	}
	return p, w.podObject(ctx, p, app)
}

// podNetwork creates what the CNI creates for a pod: its namespace, veth
// and routes; and starts its servers.
func (w *world) podNetwork(ns, name string, n *node, v4, v6 netip.Addr) (*pod, error) {
	p := &pod{ns: ns, name: name, node: n, netns: fmt.Sprintf("%s-%s-%s", w.prefix, ns, name), hostIf: "v" + ns + name, v4: v4, v6: v6}
	if len(p.hostIf) > 15 {
		return nil, fmt.Errorf("pod %s: interface name %q too long", p.ref(), p.hostIf)
	}
	if err := w.addPodNetwork(p); err != nil {
		return nil, err
	}
	if err := w.serve(p); err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.pods[p.ref()] = p
	w.mu.Unlock()
	return p, nil
}

// podObject creates the pod's API object (spec.nodeName, then
// status.podIPs through the status subresource, as the kubelet reports
// them). app is its app label; pods labelled app=c name port 8080 "http",
// the others port 80.
func (w *world) podObject(ctx context.Context, p *pod, app string) error {
	httpPort := int32(80)
	if app == "c" {
		httpPort = 8080
	}
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name, Labels: map[string]string{"app": app, "tier": "backend", "env": "dev"}},
		Spec: corev1.PodSpec{NodeName: p.node.net.name, Containers: []corev1.Container{{
			Name: "server", Image: "registry.example/echo:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: httpPort, Protocol: corev1.ProtocolTCP}},
		}}},
	}
	if err := w.client.Create(ctx, obj); err != nil {
		return fmt.Errorf("create pod %s: %w", p.ref(), err)
	}
	obj.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: p.v4.String(), PodIPs: []corev1.PodIP{{IP: p.v4.String()}, {IP: p.v6.String()}}}
	if err := w.client.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("report pod %s's addresses: %w", p.ref(), err)
	}
	return nil
}

// deletePod deletes the API object at once (no kubelet will confirm a
// graceful deletion) and then the pod's network, as a CNI DEL would.
func (w *world) deletePod(ctx context.Context, p *pod) error {
	obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}}
	if err := w.client.Delete(ctx, obj, client.GracePeriodSeconds(0)); err != nil {
		return fmt.Errorf("delete pod %s: %w", p.ref(), err)
	}
	w.mu.Lock()
	delete(w.pods, p.ref())
	w.mu.Unlock()
	for _, c := range p.closers {
		c.Close()
	}
	return w.removePodNetwork(p)
}

// apply creates the NetworkPolicies of a YAML stream and returns a
// function deleting them.
func (w *world) apply(ctx context.Context, manifests string) ([]client.Object, error) {
	objs, err := decodePolicies(manifests)
	if err != nil {
		return nil, err
	}
	for i, obj := range objs {
		if err := w.client.Create(ctx, obj); err != nil {
			w.remove(ctx, objs[:i])
			return nil, fmt.Errorf("create %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return objs, nil
}

// remove deletes objects, ignoring those already gone.
func (w *world) remove(ctx context.Context, objs []client.Object) error {
	var errs []error
	for _, obj := range objs {
		if err := w.client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setEnforcement sets or clears a namespace's enforcement annotation.
func (w *world) setEnforcement(ctx context.Context, ns, mode string) error {
	obj := &corev1.Namespace{}
	if err := w.client.Get(ctx, client.ObjectKey{Name: ns}, obj); err != nil {
		return err
	}
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	if mode == "" {
		delete(obj.Annotations, "palisade.dev/enforcement")
	} else {
		obj.Annotations["palisade.dev/enforcement"] = mode
	}
	return w.client.Update(ctx, obj)
}

// policyCount is how many NetworkPolicies the API server holds.
func (w *world) policyCount(ctx context.Context) (int, error) {
	var list networkingv1.NetworkPolicyList
	if err := w.client.List(ctx, &list); err != nil {
		return 0, err
	}
	return len(list.Items), nil
}

// settled waits until every enforcer has enforced a compilation of what
// the API server holds now (its object counts match).
func (w *world) settled(ctx context.Context, within time.Duration) error {
	var pods corev1.PodList
	if err := w.client.List(ctx, &pods); err != nil {
		return err
	}
	policies, err := w.policyCount(ctx)
	if err != nil {
		return err
	}
	want := map[string]float64{
		`palisade_enforcer_objects{kind="pods"}`:            float64(len(pods.Items)),
		`palisade_enforcer_objects{kind="networkpolicies"}`: float64(policies),
	}
	for _, name := range []string{"node1", "node2"} {
		if err := w.nodes[name].enforcer.waitMetrics(within, want); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
