package podnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// Network is a set of nodes, pods and external hosts in network
// namespaces named <prefix>-<what>. It owns all of them: Close deletes
// every namespace it created and closes every socket opened through it.
type Network struct {
	prefix string

	mu        sync.Mutex
	nodes     []*Node
	externals []*External
	wires     []wire
	netns     []Netns // created, in order
	closed    bool
}

// New starts an empty network. prefix names its namespaces and must be
// unique among the networks alive on the machine (NewPrefix makes one).
func New(prefix string) (*Network, error) {
	if err := validName("network prefix", prefix); err != nil {
		return nil, err
	}
	if len(prefix) > 16 {
		return nil, fmt.Errorf("network prefix %q is longer than 16 bytes", prefix)
	}
	return &Network{prefix: prefix}, nil
}

// NewPrefix returns base followed by four random hex digits, so that
// concurrent runs (a demo and a test) never share a namespace name.
func NewPrefix(base string) string {
	b := make([]byte, 2)
	rand.Read(b)
	return base + hex.EncodeToString(b)
}

// Prefix is what every namespace name of the network starts with.
func (nw *Network) Prefix() string { return nw.prefix }

// Netns lists the namespaces the network has now, oldest first.
func (nw *Network) Netns() []Netns {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return slices.Clone(nw.netns)
}

// newNetns creates and records a namespace <prefix>-<suffix>.
func (nw *Network) newNetns(suffix string) (Netns, error) {
	name := Netns(nw.prefix + "-" + suffix)
	nw.mu.Lock()
	if nw.closed {
		nw.mu.Unlock()
		return "", errors.New("create network namespace: the network is closed")
	}
	if slices.Contains(nw.netns, name) {
		nw.mu.Unlock()
		return "", fmt.Errorf("create network namespace %s: the network already has it", name)
	}
	// Recorded before it exists, so a half-made namespace is deleted too.
	nw.netns = append(nw.netns, name)
	nw.mu.Unlock()
	return name, addNetns(name)
}

// dropNetns deletes one namespace now.
func (nw *Network) dropNetns(name Netns) error {
	nw.mu.Lock()
	nw.netns = slices.DeleteFunc(nw.netns, func(n Netns) bool { return n == name })
	nw.mu.Unlock()
	return delNetns(name)
}

// Close closes every socket opened through the network's endpoints and
// deletes its namespaces, newest first (pods before their nodes), whatever
// state setup reached. It is safe to call more than once.
func (nw *Network) Close() error {
	nw.mu.Lock()
	nw.closed = true
	names := nw.netns
	nw.netns = nil
	var closers []io.Closer
	for _, n := range nw.nodes {
		n.mu.Lock()
		for _, p := range n.pods {
			closers = append(closers, p.takeClosers()...)
		}
		n.mu.Unlock()
	}
	for _, e := range nw.externals {
		closers = append(closers, e.takeClosers()...)
	}
	nw.mu.Unlock()

	var errs []error
	for _, c := range closers {
		if err := c.Close(); err != nil && !errors.Is(err, errClosed) {
			errs = append(errs, err)
		}
	}
	for i := len(names) - 1; i >= 0; i-- {
		if err := delNetns(names[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Node returns the node named name, or nil.
func (nw *Network) Node(name string) *Node {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for _, n := range nw.nodes {
		if n.cfg.Name == name {
			return n
		}
	}
	return nil
}

// AddNode creates a node's namespace, set up to route for its pods.
func (nw *Network) AddNode(cfg NodeConfig) (*Node, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if nw.Node(cfg.Name) != nil {
		return nil, fmt.Errorf("node %s: the network already has it", cfg.Name)
	}
	nw.mu.Lock()
	for _, other := range nw.nodes {
		if other.cfg.PodCIDR4.Overlaps(cfg.PodCIDR4) || other.cfg.PodCIDR6.Overlaps(cfg.PodCIDR6) {
			nw.mu.Unlock()
			return nil, fmt.Errorf("node %s: pod ranges %s, %s overlap node %s's", cfg.Name, cfg.PodCIDR4, cfg.PodCIDR6, other.cfg.Name)
		}
	}
	nw.mu.Unlock()
	ns, err := nw.newNetns(cfg.Name)
	if err != nil {
		return nil, err
	}
	err = ns.sysctl(
		"net.ipv4.ip_forward=1",
		"net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0",
		"net.ipv6.conf.all.forwarding=1",
		// No duplicate address detection: addresses would stay tentative
		// for a second or more, and IPv6 with them.
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
	)
	if err != nil {
		return nil, err
	}
	n := &Node{nw: nw, cfg: cfg, netns: ns, plan: newAddrPlan(cfg.PodCIDR4, cfg.PodCIDR6), ifnames: map[string]bool{}}
	nw.mu.Lock()
	nw.nodes = append(nw.nodes, n)
	nw.mu.Unlock()
	return n, nil
}
