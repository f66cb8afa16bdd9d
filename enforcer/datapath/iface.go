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

// bridgePort finds the bridge port leading to podIP.
func (f *InterfaceFinder) bridgePort(bridge netlink.Link, podIP netip.Addr) (int, error) {
	br := bridge.Attrs()
	mac, err := f.neighbourMAC(br.Index, podIP)
	if err != nil {
		return 0, fmt.Errorf("find interface of %s on bridge %s: %w", podIP, br.Name, err)
	}
	fdb, err := f.h.NeighList(0, unix.AF_BRIDGE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return 0, fmt.Errorf("find interface of %s on bridge %s: list fdb: %w", podIP, br.Name, err)
	}
	for _, n := range fdb {
		if n.MasterIndex == br.Index && n.LinkIndex != br.Index && bytes.Equal(n.HardwareAddr, mac) {
			return n.LinkIndex, nil
		}
	}
	return 0, fmt.Errorf("find interface of %s on bridge %s: %w: no fdb entry for %s", podIP, br.Name, ErrNoInterface, mac)
}

// neighbourMAC returns the MAC address of podIP on the bridge, asking the
// kernel to resolve it (NTF_USE) when the host has not talked to the pod.
func (f *InterfaceFinder) neighbourMAC(bridge int, podIP netip.Addr) (net.HardwareAddr, error) {
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
		for _, n := range list {
			ip, ok := netip.AddrFromSlice(n.IP)
			if ok && ip.Unmap() == podIP && len(n.HardwareAddr) > 0 && n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 {
				return n.HardwareAddr, nil
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
