package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer"
	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/rules"
)

// enforcerConfig is everything `palisade enforcer` takes from its flags.
type enforcerConfig struct {
	kubeconfig  string
	nodeName    string
	pinDir      string
	standard    string
	flowFile    string
	flowStdout  bool
	metricsAddr string
	healthAddr  string
	// hostIPs is nil unless --host-ips is given: then the Node object's
	// addresses are not read.
	hostIPs []netip.Addr
	netns   string
	// serviceCIDRs are the cluster's service ranges; uplinks is nil
	// unless --uplink-interfaces is given (then not detected).
	serviceCIDRs []netip.Prefix
	uplinks      []string
	// podInterfaces are the name patterns of pods' host-side interfaces,
	// quarantined from their first packet until their pod is known.
	podInterfaces []string
	// daemonSet and daemonSetNamespace name the enforcer's own DaemonSet:
	// gone or being deleted when the enforcer stops means an uninstall.
	daemonSet          string
	daemonSetNamespace string
	// maps holds the --map-* sizes; zero keeps the compiled size.
	maps bpf.Config
}

func newEnforcerCommand(run func(context.Context, enforcerConfig) error) *cobra.Command {
	cfg := enforcerConfig{}
	var hostIPs, serviceCIDRs, uplinks []string
	cmd := &cobra.Command{
		Use:   "enforcer",
		Short: "Enforce NetworkPolicies on this node with eBPF",
		Long: `Runs on every node (a DaemonSet with host networking, root or CAP_BPF +
CAP_NET_ADMIN): watches Pods, Namespaces and NetworkPolicies, compiles them into
identity-keyed eBPF maps and keeps tcx programs on each local pod's host-side
interface. What no policy allows is dropped in the kernel; each drop (and each
would-drop in a namespace annotated palisade.dev/enforcement=audit) is one JSON
flow record on stdout and/or --flow-file.

With --service-cidr, traffic from pods to service addresses is judged after
kube-proxy's DNAT (iptables or nftables mode) as the pod's egress to the chosen
backend: at the backend's interface on this node, else at the node's uplinks.
Run kube-proxy with --cluster-cidr so that pod traffic is not masqueraded.

Maps and links are pinned under --pin-dir: a restarted enforcer adopts them, so
enforcement never lapses. With --daemonset, a stopping enforcer asks for its
DaemonSet: gone or being deleted (helm uninstall) takes the datapath off the
node; present (an upgrade, a restart) or unreachable keeps the pins.
` + "`palisade enforcer cleanup`" + ` removes them by hand. Missing kernel features or privileges stop start-up
with one error naming the feature.`,
		Example: `  palisade enforcer --node-name "$NODE_NAME"
  palisade enforcer --node-name node1 --netns /var/run/netns/node1 --host-ips 10.0.0.5 --flow-file /var/log/palisade/flows.jsonl
  palisade enforcer --node-name "$NODE_NAME" --service-cidr 10.96.0.0/16,fd00:96::/112`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateMapSizes(cmd.Flags(), &cfg.maps); err != nil {
				return usageError{err}
			}
			if err := validateFloodFlags(cmd.Flags(), &cfg.maps); err != nil {
				return usageError{err}
			}
			if cfg.nodeName == "" {
				return usageError{fmt.Errorf("--node-name: empty; set it or NODE_NAME (the downward API's spec.nodeName)")}
			}
			if hostIPs != nil {
				cfg.hostIPs = []netip.Addr{}
				for _, s := range hostIPs {
					a, err := netip.ParseAddr(strings.TrimSpace(s))
					if err != nil || a.Zone() != "" {
						return usageError{fmt.Errorf("--host-ips: %q is not an IP address", s)}
					}
					cfg.hostIPs = append(cfg.hostIPs, a.Unmap())
				}
			}
			for _, s := range serviceCIDRs {
				p, err := netip.ParsePrefix(strings.TrimSpace(s))
				if err != nil || p.Addr().Zone() != "" {
					return usageError{fmt.Errorf("--service-cidr: %q is not a CIDR range (e.g. 10.96.0.0/16 or fd00:96::/112)", s)}
				}
				if p.Masked() != p {
					return usageError{fmt.Errorf("--service-cidr: %q has host bits set; the range is %s", s, p.Masked())}
				}
				cfg.serviceCIDRs = append(cfg.serviceCIDRs, p)
			}
			if uplinks != nil {
				if len(serviceCIDRs) == 0 {
					return usageError{fmt.Errorf("--uplink-interfaces: needs --service-cidr (uplinks only judge service traffic)")}
				}
				cfg.uplinks = []string{}
				for _, name := range uplinks {
					name = strings.TrimSpace(name)
					if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \x00") {
						return usageError{fmt.Errorf("--uplink-interfaces: %q is not an interface name", name)}
					}
					cfg.uplinks = append(cfg.uplinks, name)
				}
			}
			if err := datapath.ValidPodInterfacePatterns(cfg.podInterfaces); err != nil {
				return usageError{fmt.Errorf("--pod-interfaces: %w", err)}
			}
			if cfg.netns != "" && !strings.Contains(cfg.netns, "/") {
				cfg.netns = filepath.Join("/var/run/netns", cfg.netns)
			}
			if cfg.daemonSet == "" {
				cfg.daemonSetNamespace = ""
			} else if cfg.daemonSetNamespace == "" {
				return usageError{fmt.Errorf("--daemonset-namespace: empty; set it or POD_NAMESPACE (the downward API's metadata.namespace)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), cfg) },
	}
	cmd.AddCommand(newEnforcerCleanupCommand(runEnforcerCleanup))
	f := cmd.Flags()
	f.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else in-cluster)")
	f.StringVar(&cfg.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default: $NODE_NAME, from the downward API)")
	f.StringVar(&cfg.pinDir, "pin-dir", "", "where maps and links are pinned, on a bpf filesystem (default: "+datapath.DefaultPinRoot+"/<node-name>)")
	f.StringVar(&cfg.standard, "standard", "", "labeling standard YAML file whose identity labels key identities (default: the embedded default standard)")
	f.StringVar(&cfg.flowFile, "flow-file", "", "append flow records (JSON lines) to this file")
	f.BoolVar(&cfg.flowStdout, "flow-stdout", true, "write flow records to stdout")
	f.StringVar(&cfg.metricsAddr, "metrics-bind-address", ":9962", `Prometheus metrics address ("0" disables): plain HTTP on a loopback address; on any other, TLS with each scrape's bearer token checked by the API server (TokenReview, then SubjectAccessReview for get on /metrics)`)
	f.StringVar(&cfg.healthAddr, "health-probe-bind-address", ":9963", `/healthz and /readyz address ("0" disables)`)
	f.StringSliceVar(&hostIPs, "host-ips", nil, "the node's own addresses, comma-separated (default: the Node object's InternalIP and ExternalIP addresses)")
	f.StringSliceVar(&serviceCIDRs, "service-cidr", nil, "the cluster's service address range, as kube-apiserver's --service-cluster-ip-range (repeatable or comma-separated, IPv4 and IPv6): pods' egress to it is judged after kube-proxy's DNAT, against the backend pod (default: none; egress to a service address is then judged against the address itself)")
	f.StringSliceVar(&uplinks, "uplink-interfaces", nil, "interfaces towards other nodes where service traffic to remote backends is judged, comma-separated (default: detected: interfaces of routes with a gateway and of default routes)")
	f.StringSliceVar(&cfg.podInterfaces, "pod-interfaces", datapath.DefaultPodInterfaces, `name patterns of the pods' host-side interfaces as the node's CNI plugin names them, comma-separated: each new veth or netkit device matching one, with its peer in another network namespace, is enforced from its first packet, in quarantine (nothing in or out) until its pod is known ("" quarantines nothing)`)
	f.StringVar(&cfg.netns, "netns", "", "network namespace (path, or name under /var/run/netns) holding the pods' host-side interfaces (default: the enforcer's own)")
	f.StringVar(&cfg.daemonSet, "daemonset", "", "the DaemonSet running this enforcer: if it is gone or being deleted when the enforcer stops (an uninstall), the datapath is taken off the node (default: none; the pins always stay)")
	f.StringVar(&cfg.daemonSetNamespace, "daemonset-namespace", os.Getenv("POD_NAMESPACE"), "the namespace of --daemonset (default: $POD_NAMESPACE, from the downward API)")
	addMapSizeFlags(f, &cfg.maps)
	addFloodFlags(f, &cfg.maps)
	return cmd
}

// enforcerCleanupConfig is everything `palisade enforcer cleanup` takes.
type enforcerCleanupConfig struct {
	// pinDir is one node's pin directory; empty means every node's
	// directory under datapath.DefaultPinRoot.
	pinDir string
	netns  string
}

func newEnforcerCleanupCommand(run func(context.Context, enforcerCleanupConfig, io.Writer) error) *cobra.Command {
	cfg := enforcerCleanupConfig{}
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Take Palisade's datapath off this node (after an uninstall)",
		Long: `Detaches every tc program a stopped enforcer left pinned on this node, unpins
its maps and removes its pin directory: traffic on the pods' interfaces is no
longer judged. An enforcer does this itself when it stops because its DaemonSet
was deleted; run this when it could not (the API server was unreachable, the
DaemonSet was deleted with --cascade=orphan). Run it as root on the node, never
while an enforcer runs there.`,
		Example: `  palisade enforcer cleanup
  palisade enforcer cleanup --pin-dir /sys/fs/bpf/palisade/node1`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if cfg.pinDir != "" {
				cfg.pinDir = filepath.Clean(cfg.pinDir)
			}
			if cfg.netns != "" && !strings.Contains(cfg.netns, "/") {
				cfg.netns = filepath.Join("/var/run/netns", cfg.netns)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), cfg, cmd.OutOrStdout()) },
	}
	f := cmd.Flags()
	f.StringVar(&cfg.pinDir, "pin-dir", "", "the enforcer's pin directory (default: every node's directory under "+datapath.DefaultPinRoot+")")
	f.StringVar(&cfg.netns, "netns", "", "network namespace (path, or name under /var/run/netns) holding the pods' host-side interfaces (default: this process's)")
	return cmd
}

// runEnforcerCleanup prints each pin directory it removed.
func runEnforcerCleanup(_ context.Context, cfg enforcerCleanupConfig, out io.Writer) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var removed []string
	var err error
	if cfg.pinDir == "" {
		removed, err = enforcer.RemoveAllDatapaths(datapath.DefaultPinRoot, cfg.netns, log)
	} else {
		var ok bool
		ok, err = enforcer.RemoveDatapath(cfg.pinDir, cfg.netns, log)
		if ok {
			removed = []string{cfg.pinDir}
		}
	}
	for _, dir := range removed {
		fmt.Fprintf(out, "removed %s\n", dir)
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		fmt.Fprintln(out, "nothing pinned: no Palisade datapath on this node")
	}
	return nil
}

// runEnforcer checks everything it can before touching the node: a bad
// standard or flow file stops the process with exit 2.
func runEnforcer(ctx context.Context, cfg enforcerConfig) error {
	std := rules.Default()
	if cfg.standard != "" {
		var err error
		if std, err = rules.Load(cfg.standard); err != nil {
			return usageError{err}
		}
	}
	restCfg, err := restConfig(cfg.kubeconfig)
	if err != nil {
		return err
	}
	var flows []io.Writer
	if cfg.flowStdout {
		flows = append(flows, os.Stdout)
	}
	if cfg.flowFile != "" {
		f, err := os.OpenFile(cfg.flowFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return usageError{fmt.Errorf("open flow file: %w", err)}
		}
		defer f.Close()
		flows = append(flows, f)
	}
	var flowOut io.Writer
	if len(flows) > 0 {
		flowOut = io.MultiWriter(flows...)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	agent, err := enforcer.New(restCfg, enforcer.Options{
		NodeName:           cfg.nodeName,
		IdentityLabels:     std.Spec.IdentityLabels,
		HostIPs:            cfg.hostIPs,
		PinDir:             cfg.pinDir,
		NetNS:              cfg.netns,
		Config:             cfg.maps,
		ServiceCIDRs:       cfg.serviceCIDRs,
		Uplinks:            cfg.uplinks,
		PodInterfaces:      cfg.podInterfaces,
		DaemonSetName:      cfg.daemonSet,
		DaemonSetNamespace: cfg.daemonSetNamespace,
		Flows:              flowOut,
		Registerer:         reg,
		MetricsAddr:        cfg.metricsAddr,
		HealthAddr:         cfg.healthAddr,
		Logger:             log,
	})
	if err != nil {
		return usageError{err}
	}
	return agent.Run(ctx)
}
