package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/palisade-dev/palisade/internal/testkit/childproc"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// The Service CIDRs the API server allocates ClusterIPs from; the
// enforcers are told them (--service-cidr) so they judge traffic to a
// ClusterIP against the backend kube-proxy picked.
var serviceCIDRs = []string{"10.96.0.0/16", "fd00:96::/112"}

// clusterCIDRs cover the pods of both nodes (10.244.N.0/24, fd00:N::/64)
// and not the wire between them: kube-proxy leaves traffic from them
// unmasqueraded, so a backend sees the client pod's own address.
const clusterCIDRs = "10.244.0.0/16,fd00::/30"

// kubeProxyProc is the real kube-proxy (built from source by
// hack/envtest-assets.sh with WITH_KUBE_PROXY=1) in nftables mode inside
// one node's network namespace, as a DaemonSet pod with hostNetwork runs
// it. The API server listens on the host's loopback, so a forwarder on
// the node namespace's loopback carries kube-proxy's connections to it.
type kubeProxyProc struct {
	node    *node
	args    []string
	logPath string
	fwd     *testenv.Forwarder

	mu   sync.Mutex
	proc *childproc.Process
}

// kubeProxyBinary returns the kube-proxy next to the control plane
// binaries, or "" with why there is none.
func kubeProxyBinary() (string, string) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	bin := filepath.Join(dir, "kube-proxy")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Sprintf("kube-proxy missing in KUBEBUILDER_ASSETS=%s; build it with WITH_KUBE_PROXY=1 hack/envtest-assets.sh (make test does)", dir)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return "", "nft (nftables) is not installed; kube-proxy's nftables mode runs it"
	}
	return bin, ""
}

// kubeProxyConfig is kube-proxy's configuration file. Conntrack limits and
// timeouts are left as they are (the host's sysctls are not the test's to
// change); a short minSyncPeriod lets a Service change reach the rules
// without kube-proxy's default one-second batching.
func kubeProxyConfig(nodeName, kubeconfig string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: %s
clientConnection:
  kubeconfig: %s
clusterCIDR: %q
detectLocalMode: ClusterCIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
nftables:
  minSyncPeriod: 50ms
  syncPeriod: 30s
logging:
  verbosity: 2
`, nodeName, kubeconfig, clusterCIDRs)
}

// startKubeProxies runs kube-proxy on both nodes and returns a function
// stopping them and removing their nftables tables. Node objects are
// created for kube-proxy to learn its node's addresses from.
func (w *world) startKubeProxies(ctx context.Context, bin string) (stop func(), err error) {
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	au, err := w.env.AddUser(envtest.User{Name: "system:kube-proxy"}, w.env.Config)
	if err != nil {
		return stop, fmt.Errorf("add kube-proxy's user: %w", err)
	}
	kc, err := au.KubeConfig()
	if err != nil {
		return stop, err
	}
	apiURL, err := url.Parse(w.env.Config.Host)
	if err != nil {
		return stop, fmt.Errorf("parse the API server address %q: %w", w.env.Config.Host, err)
	}
	for _, name := range []string{"node1", "node2"} {
		n := w.nodes[name]
		if err := w.nodeObject(ctx, n); err != nil {
			return stop, err
		}
		undo = append(undo, func() {
			w.client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
		})
		fwd, err := forwardFromNetNS(podnet.Netns(n.netns), apiURL.Host)
		if err != nil {
			return stop, err
		}
		undo = append(undo, fwd.Close)
		kubeconfig := filepath.Join(w.dir, name+"-kube-proxy.kubeconfig")
		if err := writeKubeconfig(kubeconfig, kc, "https://"+fwd.Addr()); err != nil {
			return stop, err
		}
		cfgPath := filepath.Join(w.dir, name+"-kube-proxy.yaml")
		if err := os.WriteFile(cfgPath, []byte(kubeProxyConfig(name, kubeconfig)), 0o600); err != nil {
			return stop, err
		}
		kp := &kubeProxyProc{
			node:    n,
			args:    []string{"netns", "exec", n.netns, bin, "--config", cfgPath},
			logPath: filepath.Join(w.dir, name+"-kube-proxy.log"),
			fwd:     fwd,
		}
		if err := kp.start(); err != nil {
			return stop, err
		}
		undo = append(undo, kp.stop)
		n.kubeProxy = kp
	}
	return stop, nil
}

// nodeObject creates the Node a kubelet would register, with the node's
// wire addresses as its InternalIPs (kube-proxy's node IPs).
func (w *world) nodeObject(ctx context.Context, n *node) error {
	obj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.net.name, Labels: map[string]string{"kubernetes.io/hostname": n.net.name}}}
	if err := w.client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node %s: %w", n.net.name, err)
	}
	if err := w.client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return err
	}
	obj.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: n.net.wire4},
		{Type: corev1.NodeInternalIP, Address: n.net.wire6},
		{Type: corev1.NodeHostName, Address: n.net.name},
	}
	obj.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := w.client.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("report node %s's addresses: %w", n.net.name, err)
	}
	return nil
}

// writeKubeconfig writes kubeconfig with every cluster's server replaced.
func writeKubeconfig(path string, kubeconfig []byte, server string) error {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return fmt.Errorf("read kube-proxy's kubeconfig: %w", err)
	}
	for _, c := range cfg.Clusters {
		c.Server = server
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// start runs the process; its parent-death signal is tied to a thread
// that lives as long as it, so a crashed test run leaves none behind.
// `ip netns exec` execs kube-proxy in place, so the signal carries over.
func (k *kubeProxyProc) start() error {
	log, err := os.OpenFile(k.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", k.args...)
	cmd.Stdout, cmd.Stderr = log, log
	proc, err := childproc.Start(cmd, log)
	if err != nil {
		return fmt.Errorf("start kube-proxy of %s: %w", k.node.net.name, err)
	}
	k.mu.Lock()
	k.proc = proc
	k.mu.Unlock()
	return nil
}

func (k *kubeProxyProc) process() *childproc.Process {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.proc
}

// stop ends kube-proxy (SIGTERM, SIGKILL after 5s) and deletes the tables
// it programmed: they outlive it, as on a real node.
func (k *kubeProxyProc) stop() {
	if p := k.process(); p != nil {
		p.Stop(5 * time.Second)
	}
	for _, family := range []string{"ip", "ip6"} {
		exec.Command("ip", "netns", "exec", k.node.netns, "nft", "delete", "table", family, "kube-proxy").Run()
	}
}

func (k *kubeProxyProc) running() bool {
	p := k.process()
	return p != nil && p.Running()
}

// table lists kube-proxy's nftables table of one family ("ip", "ip6").
func (k *kubeProxyProc) table(family string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", k.node.netns, "nft", "list", "table", family, "kube-proxy").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nft list table %s kube-proxy in %s: %v: %s", family, k.node.netns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// waitRules waits until kube-proxy's tables of both families hold every
// wanted string (ClusterIPs, backend addresses).
func (k *kubeProxyProc) waitRules(within time.Duration, want4, want6 []string) error {
	deadline := time.Now().Add(within)
	for {
		if !k.running() {
			return fmt.Errorf("kube-proxy of %s exited:\n%s", k.node.net.name, k.logTail(30))
		}
		missing, err := k.missingRules(want4, want6)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("kube-proxy of %s after %v: %v\n%s", k.node.net.name, within, err, k.logTail(30))
			}
			return fmt.Errorf("kube-proxy of %s after %v: its rules lack %s\n%s", k.node.net.name, within, strings.Join(missing, ", "), k.logTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (k *kubeProxyProc) missingRules(want4, want6 []string) ([]string, error) {
	var missing []string
	for _, fam := range []struct {
		name string
		want []string
	}{{"ip", want4}, {"ip6", want6}} {
		text, err := k.table(fam.name)
		if err != nil {
			return nil, err
		}
		for _, s := range fam.want {
			if !strings.Contains(text, s) {
				missing = append(missing, fam.name+" "+s)
			}
		}
	}
	return missing, nil
}

// logTail returns the last n lines of kube-proxy's log.
func (k *kubeProxyProc) logTail(n int) string {
	data, err := os.ReadFile(k.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// forwardFromNetNS listens on a namespace's loopback and carries each
// connection to target, dialled from the host's namespace.
func forwardFromNetNS(ns podnet.Netns, target string) (*testenv.Forwarder, error) {
	ln, err := ns.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the API server in %s: %w", ns, err)
	}
	return testenv.Forward(ln, target), nil
}
