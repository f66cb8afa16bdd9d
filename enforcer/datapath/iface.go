package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/palisade-dev/palisade/enforcer/policy"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrNoInterface is wrapped when a pod address leads to no pod interface
// on this node (yet): not routed here, or not through a pod's device.
var ErrNoInterface = errors.New("no pod interface")

// InterfaceFinder finds pods' host-side interfaces with netlink, in one
// network namespace (the node's).
//
// Routed CNIs (Calico, kindnet, Cilium, the ptp plugin) route each pod
// address to the pod's own veth: the route names the interface. Bridged
// CNIs (flannel, the bridge plugin) route the pod subnet to a bridge: the
// pod's MAC comes from the neighbour table (resolved on demand) and the
// bridge port whose FDB entry holds that MAC is the pod's interface.
type InterfaceFinder struct {
	mu sync.Mutex // one netlink request at a time on h
	h  *netlink.Handle
	// NeighbourWait bounds how long HostInterface waits for an address
	// to resolve on a bridge.
	NeighbourWait time.Duration
}

// NewInterfaceFinder opens netlink in the namespace at netnsPath ("" for
// the caller's).
func NewInterfaceFinder(netnsPath string) (*InterfaceFinder, error) {
	var h *netlink.Handle
	var err error
	if netnsPath == "" {
		h, err = netlink.NewHandle()
	} else {
		var ns netns.NsHandle
		ns, err = netns.GetFromPath(netnsPath)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", netnsPath, err)
		}
		defer ns.Close()
		h, err = netlink.NewHandleAt(ns)
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	return &InterfaceFinder{h: h, NeighbourWait: time.Second}, nil
}

// Close releases the netlink sockets.
func (f *InterfaceFinder) Close() { f.h.Close() }

// Endpoint resolves a local endpoint by its addresses, first found wins;
// it is an IfindexFunc.
func (f *InterfaceFinder) Endpoint(ep policy.LocalEndpoint) (int, error) {
	if len(ep.IPs) == 0 {
		return 0, fmt.Errorf("%w: pod %s has no address", ErrNoInterface, ep.Pod)
	}
	var errs []error
	for _, a := range ep.IPs {
		idx, err := f.HostInterface(a)
		if err == nil {
			return idx, nil
		}
		errs = append(errs, err)
	}
	return 0, errors.Join(errs...)
}

// HostInterface returns the index of the host-side interface behind
// podIP.
func (f *InterfaceFinder) HostInterface(podIP netip.Addr) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	podIP = podIP.Unmap()
	if !podIP.IsValid() {
		return 0, fmt.Errorf("find interface: invalid address")
	}
	routes, err := f.h.RouteGet(net.IP(podIP.AsSlice()))
	if err != nil {
		return 0, fmt.Errorf("find interface of %s: route lookup: %w", podIP, err)
	}
	if len(routes) == 0 || routes[0].LinkIndex == 0 {
		return 0, fmt.Errorf("find interface of %s: %w: no route", podIP, ErrNoInterface)
	}
	r := routes[0]
	l, err := f.h.LinkByIndex(r.LinkIndex)
	if err != nil {
		return 0, fmt.Errorf("find interface of %s: link %d: %w", podIP, r.LinkIndex, err)
	}
	name := l.Attrs().Name
	if r.Gw != nil {
		return 0, fmt.Errorf("find interface of %s: %w: routed via %s on %s, so not on this node", podIP, ErrNoInterface, r.Gw, name)
	}
	switch l.Type() {
	case "veth", "netkit":
		return r.LinkIndex, nil
	case "bridge":
		return f.bridgePort(l, podIP)
	}
	return 0, fmt.Errorf("find interface of %s: %w: routed to %s, a %s device", podIP, ErrNoInterface, name, l.Type())
}

// bridgePort finds the bridge port leading to podIP: the port whose FDB
// entry holds the MAC of podIP's neighbour entry.
//
// A neighbour entry may outlive its pod: when a pod is deleted and a new
// one gets its address, the node keeps the old pod's MAC (even as
// REACHABLE) until it talks to the address again, and no port holds that
// MAC any more. So a MAC that no port holds is never an answer: the entry
// is deleted and the kernel asked to resolve the address afresh, whose
// reply teaches both the neighbour table and the bridge's FDB the MAC of
// whoever holds the address now. Only addresses that failed pay for it.
func (f *InterfaceFinder) bridgePort(bridge netlink.Link, podIP netip.Addr) (int, error) {
	br := bridge.Attrs()
	n, err := f.neighbour(br.Index, podIP)
	if err != nil {
		return 0, fmt.Errorf("find interface of %s on bridge %s: %w", podIP, br.Name, err)
	}
	port, err := f.fdbPort(br.Index, n.HardwareAddr)
	if err != nil {
		return 0, fmt.Errorf("find interface of %s on bridge %s: %w", podIP, br.Name, err)
	}
	if port != 0 {
		return port, nil
	}
	if n.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0 {
		// Configured, not learnt: not ours to replace.
		return 0, fmt.Errorf("find interface of %s on bridge %s: %w: no fdb entry for %s of its static neighbour entry", podIP, br.Name, ErrNoInterface, n.HardwareAddr)
	}
	stale := n.HardwareAddr
	if err := f.h.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
		return 0, fmt.Errorf("find interface of %s on bridge %s: forget neighbour entry with %s: %w", podIP, br.Name, stale, err)
	}
	n, err = f.neighbour(br.Index, podIP)
	if err != nil {
		return 0, fmt.Errorf("find interface of %s on bridge %s: %s held no port, re-resolving: %w", podIP, br.Name, stale, err)
	}
	port, err = f.fdbPort(br.Index, n.HardwareAddr)
	if err != nil {
		return 0, fmt.Errorf("find interface of %s on bridge %s: %w", podIP, br.Name, err)
	}
	if port == 0 {
		return 0, fmt.Errorf("find interface of %s on bridge %s: %w: no fdb entry for %s", podIP, br.Name, ErrNoInterface, n.HardwareAddr)
	}
	return port, nil
}

// fdbPort returns the port of the bridge whose FDB entry holds mac, 0 if
// none does.
func (f *InterfaceFinder) fdbPort(bridge int, mac net.HardwareAddr) (int, error) {
	fdb, err := f.h.NeighList(0, unix.AF_BRIDGE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return 0, fmt.Errorf("list fdb: %w", err)
	}
	for _, n := range fdb {
		if n.MasterIndex == bridge && n.LinkIndex != bridge && bytes.Equal(n.HardwareAddr, mac) {
			return n.LinkIndex, nil
		}
	}
	return 0, nil
}

// neighbour returns podIP's neighbour entry on the bridge, one with a
// MAC, asking the kernel to resolve the address (NTF_USE: an ARP request
// or neighbour solicitation) when the entry is missing or unresolved.
func (f *InterfaceFinder) neighbour(bridge int, podIP netip.Addr) (*netlink.Neigh, error) {
	family := unix.AF_INET
	if podIP.Is6() {
		family = unix.AF_INET6
	}
	deadline := time.Now().Add(f.NeighbourWait)
	asked := false
	for {
		list, err := f.h.NeighList(bridge, family)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("list neighbours: %w", err)
		}
		for i := range list {
			n := &list[i]
			ip, ok := netip.AddrFromSlice(n.IP)
			if ok && ip.Unmap() == podIP && len(n.HardwareAddr) > 0 && n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 {
				return n, nil
			}
		}
		if !asked {
			asked = true
			err := f.h.NeighSet(&netlink.Neigh{LinkIndex: bridge, Family: family, IP: net.IP(podIP.AsSlice()), Flags: netlink.NTF_USE})
			if err != nil {
				return nil, fmt.Errorf("resolve neighbour: %w", err)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %s does not answer neighbour resolution", ErrNoInterface, podIP)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// HostInterface finds the host-side interface behind podIP in the node's
// namespace (see InterfaceFinder).
func (d *Datapath) HostInterface(podIP netip.Addr) (int, error) {
	return d.finder.HostInterface(podIP)
}

// Endpoint is an IfindexFunc resolving endpoints in the node's namespace.
func (d *Datapath) Endpoint(ep policy.LocalEndpoint) (int, error) {
	return d.finder.Endpoint(ep)
}

// links lists the namespace's interfaces.
func (f *InterfaceFinder) links() ([]netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	links, err := f.h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	return links, nil
}

// linkExists reports whether interface idx exists; any doubt answers yes.
func (f *InterfaceFinder) linkExists(idx uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.h.LinkByIndex(int(idx))
	var notFound netlink.LinkNotFoundError
	return !errors.As(err, &notFound) && !errors.Is(err, unix.ENODEV)
}

// solicit asks the kernel to resolve a on interface idx (NTF_USE: an ARP
// request or neighbour solicitation from the node). The pod answering it
// also learns the node's address: a pod whose own first request was
// dropped (its addresses not yet known) need not wait for its kernel's
// retry, a second later. Best effort: a failure only costs that wait.
func (f *InterfaceFinder) solicit(idx uint32, a netip.Addr) {
	family := unix.AF_INET
	if a.Is6() {
		family = unix.AF_INET6
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.h.NeighSet(&netlink.Neigh{LinkIndex: int(idx), Family: family, IP: net.IP(a.AsSlice()), Flags: netlink.NTF_USE})
}
