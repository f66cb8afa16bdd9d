package enforcer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/datapath"
)

// Options configure an Agent.
type Options struct {
	// NodeName is the node this agent enforces for (the downward API's
	// spec.nodeName). Required.
	NodeName string
	// IdentityLabels are the labeling standard's identity label keys;
	// nil means policy.DefaultIdentityLabels.
	IdentityLabels []string
	// HostIPs are the node's own addresses (traffic from them is the
	// node's: kubelet probes). Nil reads them from the Node object's
	// status.addresses and follows their changes.
	HostIPs []netip.Addr

	// PinDir, NetNS, Config and Conntrack configure the datapath (see
	// datapath.Options). NetNS is the network namespace holding the pods'
	// host-side interfaces; empty means the agent's own.
	PinDir    string
	NetNS     string
	Config    bpf.Config
	Conntrack datapath.ConntrackTimeouts
	// ServiceCIDRs and Uplinks configure the judgement of service traffic
	// after kube-proxy's DNAT (see datapath.Options): the cluster's
	// service ranges, and the interfaces to remote backends (nil:
	// detected from the routes). Empty ServiceCIDRs judges egress to a
	// service address against the address itself.
	ServiceCIDRs []netip.Prefix
	Uplinks      []string
	// PodInterfaces are the name patterns of the pods' host-side
	// interfaces (datapath.Options.PodInterfaces): each new one is
	// enforced from its first packet, in quarantine until its pod is
	// known. Nil quarantines nothing.
	PodInterfaces []string

	// DaemonSetName and DaemonSetNamespace name the DaemonSet that runs
	// this agent. A stopping agent asks the API server for it: gone or
	// being deleted means Palisade is being uninstalled, and the agent
	// takes its datapath off the node (links detached, maps unpinned, pin
	// directory removed); present means an upgrade or a restart, and the
	// pins stay for the next agent to adopt. Empty DaemonSetName keeps the
	// pins, as does any doubt (see UninstallCheckTimeout).
	DaemonSetName      string
	DaemonSetNamespace string
	// UninstallCheckTimeout bounds that question (default 5s). An API
	// server that does not answer in time keeps the pins: a lapse in
	// enforcement is worse than stale programs an operator can remove.
	UninstallCheckTimeout time.Duration

	// Debounce is how long the agent gathers watch events after the
	// first one before compiling (default 50ms): a burst of changes costs
	// one compilation and one Sync.
	Debounce time.Duration
	// ConntrackGCInterval is how often idle tracked flows are collected
	// (default 30s).
	ConntrackGCInterval time.Duration

	// Flows receives one JSON line per datapath event; nil discards
	// them. Writes are serialised.
	Flows io.Writer
	// Registerer receives the agent's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// MetricsAddr serves Gatherer's metrics at /metrics, HealthAddr
	// /healthz and /readyz; "" or "0" serves nothing.
	MetricsAddr string
	HealthAddr  string
	// Gatherer is what MetricsAddr serves; nil serves Registerer when it
	// is also a Gatherer.
	Gatherer prometheus.Gatherer
	// Logger receives the agent's log lines; nil discards them.
	Logger *slog.Logger
}

const (
	defaultDebounce            = 50 * time.Millisecond
	defaultConntrackGCInterval = 30 * time.Second
	// retryMin and retryMax bound the backoff of a failed or incomplete
	// Sync (a pod whose interface does not exist yet).
	retryMin = 100 * time.Millisecond
	// defaultUninstallCheckTimeout leaves most of a pod's 30s grace
	// period for removing the datapath.
	defaultUninstallCheckTimeout = 5 * time.Second
	retryMax                     = 5 * time.Second
)

func (o *Options) setDefaults() error {
	if o.NodeName == "" {
		return errors.New("configure enforcer: node name is empty")
	}
	for _, p := range o.ServiceCIDRs {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return fmt.Errorf("configure enforcer: service range %q is not a prefix", p)
		}
	}
	if err := datapath.ValidPodInterfacePatterns(o.PodInterfaces); err != nil {
		return fmt.Errorf("configure enforcer: %w", err)
	}
	if o.DaemonSetName != "" && o.DaemonSetNamespace == "" {
		return fmt.Errorf("configure enforcer: DaemonSet %q has no namespace", o.DaemonSetName)
	}
	if o.UninstallCheckTimeout <= 0 {
		o.UninstallCheckTimeout = defaultUninstallCheckTimeout
	}
	if o.Debounce <= 0 {
		o.Debounce = defaultDebounce
	}
	if o.ConntrackGCInterval <= 0 {
		o.ConntrackGCInterval = defaultConntrackGCInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Gatherer == nil {
		if g, ok := o.Registerer.(prometheus.Gatherer); ok {
			o.Gatherer = g
		}
	}
	return nil
}
