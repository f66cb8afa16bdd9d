package datapath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// Uplink is one of the node's interfaces towards other nodes and the
// world.
type Uplink struct {
	Index int
	Name  string
}

// Uplinks detects the node's uplinks from its main routing table: the
// interfaces that routes with a gateway (the default route, routes to
// other nodes' pod ranges through the node network or a tunnel) or
// device-only default routes leave through. Pods' own routes never have a
// gateway (HostInterface relies on the same), so no pod interface is
// among them. Loopback never is.
func (f *InterfaceFinder) Uplinks() ([]Uplink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	routes, err := f.h.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("detect uplinks: list routes: %w", err)
	}
	seen := map[int]bool{}
	var out []Uplink
	add := func(idx int) error {
		if idx == 0 || seen[idx] {
			return nil
		}
		seen[idx] = true
		l, err := f.h.LinkByIndex(idx)
		if err != nil {
			return fmt.Errorf("detect uplinks: link %d: %w", idx, err)
		}
		if l.Attrs().Flags&net.FlagLoopback != 0 {
			return nil
		}
		out = append(out, Uplink{Index: idx, Name: l.Attrs().Name})
		return nil
	}
	for _, r := range routes {
		isDefault := r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)
		if r.Gw != nil || r.Via != nil || isDefault {
			if err := add(r.LinkIndex); err != nil {
				return nil, err
			}
		}
		for _, nh := range r.MultiPath {
			if err := add(nh.LinkIndex); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(out, func(a, b Uplink) int { return a.Index - b.Index })
	return out, nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// namedUplinks resolves Options.Uplinks.
func (f *InterfaceFinder) namedUplinks(names []string) ([]Uplink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Uplink, 0, len(names))
	for _, name := range names {
		l, err := f.h.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("find uplink %q: %w", name, err)
		}
		out = append(out, Uplink{Index: l.Attrs().Index, Name: name})
	}
	return out, nil
}

// wantedUplinks is the set of interfaces palisade_uplink belongs on: none
// without service ranges, else Options.Uplinks or the detected ones.
func (d *Datapath) wantedUplinks() ([]Uplink, error) {
	switch {
	case len(d.opts.ServiceCIDRs) == 0:
		return nil, nil
	case d.opts.Uplinks != nil:
		return d.finder.namedUplinks(d.opts.Uplinks)
	}
	return d.finder.Uplinks()
}

// reconcileUplinks attaches palisade_uplink to every wanted uplink that
// lacks it and detaches it from the others. An uplink that cannot be
// attached is an error naming it: deferred service traffic leaving
// through it would otherwise go unjudged.
func (d *Datapath) reconcileUplinks() error {
	want, err := d.wantedUplinks()
	if err != nil {
		return err
	}
	wanted := map[uint32]bool{}
	for _, u := range want {
		wanted[uint32(u.Index)] = true
	}
	var errs []error
	for idx, l := range d.uplinks {
		alive := uplinkAlive(l, idx)
		if wanted[idx] && alive {
			continue
		}
		// A deleted interface took its attachment along: only the pin
		// is left to remove.
		if err := detachLink(l); err != nil && alive {
			errs = append(errs, fmt.Errorf("detach uplink %d: %w", idx, err))
		}
		delete(d.uplinks, idx)
		delete(d.pendingUplinks, idx)
	}
	var missing []Uplink
	for _, u := range want {
		if _, ok := d.uplinks[uint32(u.Index)]; !ok {
			missing = append(missing, u)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, runInNetNS(d.opts.NetNS, func() error {
			var errs []error
			for _, u := range missing {
				l, err := d.attachUplink(u)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				d.uplinks[uint32(u.Index)] = l
			}
			return errors.Join(errs...)
		}))
	}
	return errors.Join(errs...)
}

func uplinkAlive(l link.Link, idx uint32) bool {
	info, err := l.Info()
	return err == nil && info.TCX() != nil && info.TCX().Ifindex == idx
}

// attachUplink puts palisade_uplink first at the interface's tcx egress
// and pins the link.
func (d *Datapath) attachUplink(u Uplink) (link.Link, error) {
	l, err := link.AttachTCX(link.TCXOptions{Interface: u.Index, Program: d.objs.PalisadeUplink, Attach: ebpf.AttachTCXEgress, Anchor: link.Head()})
	if err != nil {
		return nil, fmt.Errorf("attach uplink to %s (interface %d): %w", u.Name, u.Index, err)
	}
	path := d.linkPin(uint32(u.Index), pinUplink)
	os.RemoveAll(path)
	if err := l.Pin(path); err != nil {
		detachLink(l)
		return nil, fmt.Errorf("pin uplink link of %s (interface %d): %w", u.Name, u.Index, err)
	}
	return l, nil
}

// adoptUplink takes over a previous run's uplink attachment, moving it to
// this run's program at once where that program works on the same state
// maps, else after the first Sync (as adoptLink does).
func (d *Datapath) adoptUplink(l link.Link, ifindex uint32, prog ebpf.ProgramID, stateIDs []ebpf.MapID) {
	d.uplinks[ifindex] = l
	if !programUsesMaps(prog, stateIDs) {
		d.pendingUplinks[ifindex] = true
		return
	}
	if err := l.Update(d.objs.PalisadeUplink); err != nil {
		d.pendingUplinks[ifindex] = true
		d.log.Warn("adopted uplink keeps the previous program", "ifindex", ifindex, "error", err)
	}
}

// switchPendingUplinks moves adopted uplinks to this run's program.
func (d *Datapath) switchPendingUplinks() error {
	var errs []error
	for idx := range d.pendingUplinks {
		l := d.uplinks[idx]
		if l != nil {
			if err := l.Update(d.objs.PalisadeUplink); err != nil {
				errs = append(errs, fmt.Errorf("switch uplink of interface %d: %w", idx, err))
				continue
			}
		}
		delete(d.pendingUplinks, idx)
	}
	return errors.Join(errs...)
}

// UplinkIndexes lists the interfaces palisade_uplink is attached to.
func (d *Datapath) UplinkIndexes() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]int, 0, len(d.uplinks))
	for idx := range d.uplinks {
		out = append(out, int(idx))
	}
	slices.Sort(out)
	return out
}
