package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/palisade-dev/palisade/enforcer"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

// netResult is what the enforcer part of the tour saw, for its test.
type netResult struct {
	// Skipped says why the enforcer part did not run ("" when it did).
	Skipped string
	// DeniedDropped: the default-denied connection got no answer.
	DeniedDropped bool
	// AllowedAnswer is what the allow-listed connection answered.
	AllowedAnswer string
	// StillDropped: a port the allow-list does not name stayed dropped.
	StillDropped bool
	// AuditAnswer is what that port answered in audit mode.
	AuditAnswer string
	// DropRecord and AuditRecord are the enforcer's flow records.
	DropRecord, AuditRecord enforcer.FlowRecord
	// QuarantineDropped: a new pod's connection was dropped before its
	// Pod object existed; QuarantineRecord is that drop's record.
	QuarantineDropped bool
	QuarantineRecord  enforcer.FlowRecord
	// ReleasedAnswer is what the same connection answered once the pod
	// was known and a policy allowed it.
	ReleasedAnswer string
}

// netWorld is the node, its pods and its enforcer.
type netWorld struct {
	nw          *podnet.Network
	node        *podnet.Node
	web, ledger *podnet.Pod
	enforcer    *enforcerProc
}

// The demo's pods: web (frontend) calls ledger (data) on 8080; ledger
// also serves 9090, which no policy allows.
const (
	podNamespace = "payments"
	allowedPort  = 8080
	otherPort    = 9090
)

// startNetwork builds the node and its pods, creates their API objects
// through the webhook with kubectl, and starts the enforcer. Everything it
// makes is undone by cleanup, whatever happens.
func startNetwork(ctx context.Context, o demoOptions, k kubectl, admin client.Client, env *envtest.Environment, cfg *rest.Config, dir string, cleanup *cleanups) (*netWorld, error) {
	kubeconfig, err := addEnforcerUser(ctx, admin, env, cfg, dir)
	if err != nil {
		return nil, err
	}
	pinRoot, unmount, err := mountBPFFS(dir)
	if err != nil {
		return nil, err
	}
	cleanup.push(unmount)
	nw, err := podnet.New(podnet.NewPrefix("pd"))
	if err != nil {
		return nil, err
	}
	cleanup.push(func() {
		if err := nw.Close(); err != nil {
			fmt.Fprintln(o.out, "demo: clean up network namespaces:", err)
		}
	})
	w := &netWorld{nw: nw}
	if w.node, err = nw.AddNode(podnet.NodeConfig{Name: "node1", Index: 1}); err != nil {
		return nil, err
	}
	if w.web, err = w.node.AddPod(podnet.PodConfig{Namespace: podNamespace, Name: "web"}); err != nil {
		return nil, err
	}
	if w.ledger, err = w.node.AddPod(podnet.PodConfig{Namespace: podNamespace, Name: "ledger"}); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		pod   *podnet.Pod
		ports []int
	}{{w.web, []int{allowedPort}}, {w.ledger, []int{allowedPort, otherPort}}} {
		for _, port := range s.ports {
			if err := serveHello(s.pod, port); err != nil {
				return nil, err
			}
		}
	}

	fmt.Fprintf(o.out, "\n\033[1m== Pods as network namespaces on node %s (namespace %s), routed like Calico or kindnet\033[0m\n", w.node.Name(), w.node.Netns())
	for _, p := range []*podnet.Pod{w.web, w.ledger} {
		fmt.Fprintf(o.out, "    %-16s %-12s %-12s netns %-24s host veth %s\n", p.Ref(), p.IPv4(), p.IPv6(), p.Netns(), p.HostInterface())
	}
	steps := []step{
		{say: "Their Pod objects pass the webhook like any other (scheduled to " + w.node.Name() + ")", user: "alice",
			args: []string{"apply", "-f", "-"}, manifest: podManifest("web", "frontend", w.node.Name(), allowedPort) + "---" + podManifest("ledger", "data", w.node.Name(), allowedPort, otherPort)},
	}
	for _, p := range []*podnet.Pod{w.web, w.ledger} {
		steps = append(steps, step{say: "No kubelet here: report " + p.Name() + "'s addresses as the kubelet would (status subresource)", user: "admin",
			args: []string{"patch", "pod", p.Name(), "-n", podNamespace, "--subresource=status", "--type=merge", "-p",
				fmt.Sprintf(`{"status":{"phase":"Running","podIP":"%s","podIPs":[{"ip":"%s"},{"ip":"%s"}]}}`, p.IPv4(), p.IPv4(), p.IPv6())}})
	}
	for _, s := range steps {
		if err := k.run(ctx, s); err != nil {
			return nil, err
		}
	}

	say(o.out, "Starting `palisade enforcer` for "+w.node.Name()+" (tcx programs on the pods' host veths)")
	if w.enforcer, err = startEnforcer(o.palisade, kubeconfig, pinRoot, dir, w.node); err != nil {
		return nil, err
	}
	cleanup.push(w.enforcer.stop)
	fmt.Fprintf(o.out, "$ palisade %s\n", strings.Join(w.enforcer.args, " "))
	if err := w.enforcer.waitReady(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	fmt.Fprintln(o.out, "ready: the first compilation of pods, namespaces and NetworkPolicies is enforced")
	return w, nil
}

func podManifest(name, tier, node string, ports ...int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels: {app: %s, tier: %s}
spec:
  nodeName: %s
  containers:
  - name: %s
    image: registry.example/%s:1
    ports:
`, name, podNamespace, name, tier, node, name, name)
	for _, p := range ports {
		fmt.Fprintf(&b, "    - containerPort: %d\n", p)
	}
	return b.String()
}

// serveHello answers HTTP on port inside the pod, naming the pod.
func serveHello(p *podnet.Pod, port int) error {
	ln, err := p.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return fmt.Errorf("serve in %s: %w", p.Ref(), err)
	}
	msg := fmt.Sprintf("hello from %s on port %d\n", p.Ref(), port)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, msg) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(ln)
	return nil
}

// curlLine is the command a user runs for the same connection.
func curlLine(from *podnet.Pod, to netip.AddrPort) string {
	return from.Netns().CommandLine("curl", "-sS", "-m", "2", shellJoin([]string{"http://" + to.String() + "/"}))
}

// connect makes one HTTP request from a pod: the answer, or "" and
// whether it timed out (a drop) rather than failed otherwise.
func connect(ctx context.Context, from *podnet.Pod, to netip.AddrPort) (string, bool, error) {
	c := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return from.Dial(ctx, nil, network, addr)
			},
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+to.String()+"/", nil)
	if err != nil {
		return "", false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		var ne net.Error
		if ctx.Err() == nil && asNetError(err, &ne) && ne.Timeout() {
			return "", true, nil
		}
		return "", false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), false, err
}

// probe shows a connection and waits (up to 10s, while the enforcer
// catches up with the API server) for the outcome the tour expects; a
// different outcome stops the demo, so it never shows what did not
// happen.
func probe(ctx context.Context, out io.Writer, title string, from *podnet.Pod, to netip.AddrPort, wantPass bool) (string, error) {
	fmt.Fprintf(out, "\n\033[1m== %s\033[0m\n$ %s\n", title, curlLine(from, to))
	deadline := time.Now().Add(10 * time.Second)
	for {
		answer, dropped, err := connect(ctx, from, to)
		if err != nil {
			return "", fmt.Errorf("connect %s -> %s: %w", from.Ref(), to, err)
		}
		if wantPass && !dropped {
			fmt.Fprint(out, answer)
			return answer, nil
		}
		if !wantPass && dropped {
			fmt.Fprintln(out, "(no answer within 1s: the packets were dropped)")
			return "", nil
		}
		if time.Now().After(deadline) {
			if wantPass {
				return "", fmt.Errorf("%s -> %s: dropped, the tour expected it to pass", from.Ref(), to)
			}
			return "", fmt.Errorf("%s -> %s: answered %q, the tour expected a drop", from.Ref(), to, answer)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// showFlow waits for the enforcer's record of a connection and prints it
// with the command that finds it.
func showFlow(ctx context.Context, out io.Writer, title string, e *enforcerProc, since time.Time, verdict string, to netip.AddrPort) (enforcer.FlowRecord, error) {
	fmt.Fprintf(out, "\n\033[1m== %s\033[0m\n$ grep '\"verdict\":\"%s\"' %s | tail -n 1\n", title, verdict, e.flowPath)
	l, err := e.waitFlow(ctx, 10*time.Second, since, func(r enforcer.FlowRecord) bool { return flowTo(r, verdict, to) })
	if err != nil {
		return enforcer.FlowRecord{}, err
	}
	fmt.Fprintln(out, l.raw)
	return l.record, nil
}

const allowWebToLedger = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-to-ledger, namespace: payments}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: ledger}}}], ports: [{protocol: TCP, port: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ledger-from-web, namespace: payments}
spec:
  podSelector: {matchLabels: {app: ledger}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{protocol: TCP, port: 8080}]}]
`

// netTour shows the datapath: default deny, an allow-list, the flow
// record of a drop, and audit mode.
func netTour(ctx context.Context, out io.Writer, k kubectl, w *netWorld, res *netResult) error {
	allowed := netip.AddrPortFrom(w.ledger.IPv4(), allowedPort)
	other := netip.AddrPortFrom(w.ledger.IPv4(), otherPort)

	start := time.Now()
	if _, err := probe(ctx, out, "Default deny: web cannot reach ledger (the baseline palisade-default-deny isolates both pods)", w.web, allowed, false); err != nil {
		return err
	}
	res.DeniedDropped = true
	rec, err := showFlow(ctx, out, "The enforcer's flow record of that drop: which pod, which direction, which policies isolate it", w.enforcer, start, "dropped", allowed)
	if err != nil {
		return err
	}
	res.DropRecord = rec

	if err := k.run(ctx, step{say: "Allow exactly web -> ledger:8080 (egress of web, ingress of ledger)", user: "alice",
		args: []string{"apply", "-f", "-"}, manifest: allowWebToLedger}); err != nil {
		return err
	}
	if res.AllowedAnswer, err = probe(ctx, out, "The allow-listed connection passes", w.web, allowed, true); err != nil {
		return err
	}
	if _, err := probe(ctx, out, "Nothing else does: ledger:9090 is still dropped", w.web, other, false); err != nil {
		return err
	}
	res.StillDropped = true

	if err := k.run(ctx, step{say: "Audit mode: a platform admin lets the namespace's would-drops pass, reported", user: "admin",
		args: []string{"annotate", "namespace", podNamespace, "palisade.dev/enforcement=audit"}}); err != nil {
		return err
	}
	start = time.Now()
	if res.AuditAnswer, err = probe(ctx, out, "In audit mode ledger:9090 answers", w.web, other, true); err != nil {
		return err
	}
	if res.AuditRecord, err = showFlow(ctx, out, "and the enforcer records what it would have dropped", w.enforcer, start, "audit", other); err != nil {
		return err
	}
	if err := k.run(ctx, step{say: "Back to enforcing", user: "admin",
		args: []string{"annotate", "--overwrite", "namespace", podNamespace, "palisade.dev/enforcement=enforce"}}); err != nil {
		return err
	}
	return quarantineTour(ctx, out, k, w, res)
}

// allowBatchToLedger lets the demo's late pod reach ledger:8080.
const allowBatchToLedger = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: batch-to-ledger, namespace: payments}
spec:
  podSelector: {matchLabels: {app: batch}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: ledger}}}], ports: [{protocol: TCP, port: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ledger-from-batch, namespace: payments}
spec:
  podSelector: {matchLabels: {app: ledger}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: batch}}}], ports: [{protocol: TCP, port: 8080}]}]
`

// quarantineTour shows a pod enforced from its first packet: its network
// exists before its Pod object reaches the enforcer, even with a policy
// that will allow it in place, and nothing passes until it is known.
func quarantineTour(ctx context.Context, out io.Writer, k kubectl, w *netWorld, res *netResult) error {
	allowed := netip.AddrPortFrom(w.ledger.IPv4(), allowedPort)
	if err := k.run(ctx, step{say: "A policy for a pod that does not exist yet: batch -> ledger:8080", user: "alice",
		args: []string{"apply", "-f", "-"}, manifest: allowBatchToLedger}); err != nil {
		return err
	}
	batch, err := w.node.AddPod(podnet.PodConfig{Namespace: podNamespace, Name: "batch"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n\033[1m== A new pod's network appears (what a CNI ADD makes): %s %s, host veth %s; its Pod object is not created yet\033[0m\n",
		batch.Ref(), batch.IPv4(), batch.HostInterface())
	start := time.Now()
	if _, err := probe(ctx, out, "Quarantined from its first packet: batch cannot reach ledger before the enforcer knows which pod it is", batch, allowed, false); err != nil {
		return err
	}
	res.QuarantineDropped = true
	if res.QuarantineRecord, err = showFlow(ctx, out, "The record of that drop: quarantined, not a policy verdict", w.enforcer, start, "dropped", allowed); err != nil {
		return err
	}
	steps := []step{
		{say: "Its Pod object passes the webhook", user: "alice", args: []string{"apply", "-f", "-"},
			manifest: podManifest("batch", "backend", w.node.Name(), allowedPort)},
		{say: "and the kubelet would report its addresses", user: "admin",
			args: []string{"patch", "pod", "batch", "-n", podNamespace, "--subresource=status", "--type=merge", "-p",
				fmt.Sprintf(`{"status":{"phase":"Running","podIP":"%s","podIPs":[{"ip":"%s"},{"ip":"%s"}]}}`, batch.IPv4(), batch.IPv4(), batch.IPv6())}},
	}
	for _, s := range steps {
		if err := k.run(ctx, s); err != nil {
			return err
		}
	}
	res.ReleasedAnswer, err = probe(ctx, out, "Known now, and released into its policies: batch -> ledger:8080 passes", batch, allowed, true)
	return err
}

// printProbeHelp says how to probe the running demo.
func printProbeHelp(out io.Writer, w *netWorld, dir string) {
	fmt.Fprintf(out, "  pods (network namespaces on node %s, whose namespace is %s):\n", w.node.Name(), w.node.Netns())
	for _, p := range []*podnet.Pod{w.web, w.ledger} {
		fmt.Fprintf(out, "    %-16s %s  %s  netns %s\n", p.Ref(), p.IPv4(), p.IPv6(), p.Netns())
	}
	v6 := netip.AddrPortFrom(w.ledger.IPv6(), allowedPort)
	fmt.Fprintf(out, "  %s   # allowed by payments/web-to-ledger\n", curlLine(w.web, netip.AddrPortFrom(w.ledger.IPv4(), allowedPort)))
	fmt.Fprintf(out, "  %s   # IPv6, the same policy\n", curlLine(w.web, v6))
	fmt.Fprintf(out, "  %s   # dropped\n", curlLine(w.web, netip.AddrPortFrom(w.ledger.IPv4(), otherPort)))
	fmt.Fprintf(out, "  %s   # dropped: nothing allows ledger -> web\n", curlLine(w.ledger, netip.AddrPortFrom(w.web.IPv4(), allowedPort)))
	fmt.Fprintf(out, "  flow records: tail -f %s\n", w.enforcer.flowPath)
	fmt.Fprintf(out, "  enforcer: log %s, metrics curl -s http://%s/metrics | grep ^palisade_\n", filepath.Join(dir, "enforcer.log"), w.enforcer.metrics)
	fmt.Fprintf(out, "  the pods' host veths: ip -n %s link show   (their tcx programs: ip netns exec %s bpftool net show, with bpftool installed)\n", w.node.Netns(), w.node.Netns())
}
