package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/palisade-dev/palisade/bpf"
)

// The two attachments of one pod's host interface: from_pod at tcx
// ingress judges the pod's egress, to_pod at tcx egress its ingress.
type endpointLinks struct {
	fromPod, toPod link.Link
}

const (
	pinFromPod = "from_pod"
	pinToPod   = "to_pod"
	pinUplink  = "uplink"
)

func (l *endpointLinks) all() []link.Link {
	var out []link.Link
	for _, x := range []link.Link{l.fromPod, l.toPod} {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

func (l *endpointLinks) close() {
	for _, x := range l.all() {
		x.Close()
	}
}

// detach takes both programs off the interface and removes their pins.
// An interface that is already gone took its links with it.
func (l *endpointLinks) detach() error {
	var errs []error
	for _, x := range l.all() {
		errs = append(errs, detachLink(x))
	}
	return errors.Join(errs...)
}

// detachLink takes one program off its interface, removes its pin and
// closes it.
func detachLink(x link.Link) error {
	var errs []error
	if err := x.Detach(); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := x.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	x.Close()
	return errors.Join(errs...)
}

func (d *Datapath) linkPin(ifindex uint32, which string) string {
	return filepath.Join(d.linksDir(), fmt.Sprintf("%d_%s", ifindex, which))
}

// adoptLinks takes over the links a previous run pinned. A link whose
// interface is gone, or that is not a tcx link of the kind its name says,
// is unpinned with a log line. A link whose program already works on this
// run's state maps moves to this run's programs at once (an atomic
// update); one still bound to a replaced map set waits for the first
// Sync (see pending).
func (d *Datapath) adoptLinks() error {
	entries, err := os.ReadDir(d.linksDir())
	if err != nil {
		return fmt.Errorf("read pinned links: %w", err)
	}
	stateIDs, err := d.stateMapIDs()
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(d.linksDir(), e.Name())
		ifindex, which, ok := parseLinkPin(e.Name())
		if !ok {
			d.log.Warn("removing foreign pin from the link directory", "pin", path)
			os.RemoveAll(path)
			continue
		}
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			d.log.Warn("removing unusable link pin", "pin", path, "error", err)
			os.RemoveAll(path)
			continue
		}
		info, err := l.Info()
		want := ebpf.AttachTCXIngress
		if which == pinToPod || which == pinUplink {
			want = ebpf.AttachTCXEgress
		}
		switch {
		case err != nil:
			d.log.Warn("removing link pin without info", "pin", path, "error", err)
		case info.Type != link.TCXType || info.TCX() == nil || ebpf.AttachType(info.TCX().AttachType) != want:
			d.log.Warn("removing link pin of another kind", "pin", path, "type", info.Type)
		case info.TCX().Ifindex == 0:
			d.log.Info("removing link of a deleted interface", "pin", path)
		case info.TCX().Ifindex != ifindex:
			d.log.Warn("removing link pinned under another interface's name", "pin", path, "ifindex", info.TCX().Ifindex)
		case which == pinUplink:
			d.adoptUplink(l, ifindex, info.Program, stateIDs)
			continue
		default:
			d.adoptLink(l, ifindex, which, info.Program, stateIDs)
			continue
		}
		l.Unpin()
		l.Close()
	}
	return nil
}

func (d *Datapath) adoptLink(l link.Link, ifindex uint32, which string, prog ebpf.ProgramID, stateIDs []ebpf.MapID) {
	el := d.links[ifindex]
	if el == nil {
		el = &endpointLinks{}
		d.links[ifindex] = el
	}
	target := d.objs.PalisadeFromPod
	if which == pinFromPod {
		el.fromPod = l
	} else {
		el.toPod = l
		target = d.objs.PalisadeToPod
	}
	if !programUsesMaps(prog, stateIDs) {
		d.pending[ifindex] = true
		d.log.Info("adopted link keeps the previous programs until the first sync", "ifindex", ifindex, "link", which)
		return
	}
	if err := l.Update(target); err != nil {
		d.pending[ifindex] = true
		d.log.Warn("adopted link keeps the previous programs", "ifindex", ifindex, "link", which, "error", err)
	}
}

func parseLinkPin(name string) (uint32, string, bool) {
	idx, which, ok := strings.Cut(name, "_")
	if !ok || (which != pinFromPod && which != pinToPod && which != pinUplink) {
		return 0, "", false
	}
	n, err := strconv.ParseUint(idx, 10, 32)
	if err != nil || n == 0 {
		return 0, "", false
	}
	return uint32(n), which, true
}

// stateMapIDs identifies this run's state maps to programUsesMaps by the
// endpoints map alone: every program reads it (not every program reads
// every state map), and the state maps are adopted or replaced together,
// so a program reading this run's endpoints reads this run's state.
func (d *Datapath) stateMapIDs() ([]ebpf.MapID, error) {
	var ids []ebpf.MapID
	for _, name := range []string{bpf.PalisadeMapEndpoints} {
		info, err := d.mapsByName()[name].Info()
		if err != nil {
			return nil, fmt.Errorf("read map %s info: %w", name, err)
		}
		id, ok := info.ID()
		if !ok {
			return nil, fmt.Errorf("read map %s info: kernel reports no id", name)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// programUsesMaps reports whether program id references every map in ids.
// Any doubt answers no, which only delays a link's switch to the first
// Sync.
func programUsesMaps(id ebpf.ProgramID, ids []ebpf.MapID) bool {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return false
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return false
	}
	used, ok := info.MapIDs()
	if !ok {
		return false
	}
	for _, want := range ids {
		if !slices.Contains(used, want) {
			return false
		}
	}
	return true
}

// attach puts both programs on one interface, first in line (a program
// before Palisade's could pass what Palisade would drop), and pins the
// links. It runs in the node's network namespace.
func (d *Datapath) attach(ifindex uint32) (*endpointLinks, error) {
	el := &endpointLinks{}
	for _, a := range []struct {
		which  string
		prog   *ebpf.Program
		attach ebpf.AttachType
		dst    *link.Link
	}{
		{pinFromPod, d.objs.PalisadeFromPod, ebpf.AttachTCXIngress, &el.fromPod},
		{pinToPod, d.objs.PalisadeToPod, ebpf.AttachTCXEgress, &el.toPod},
	} {
		l, err := link.AttachTCX(link.TCXOptions{Interface: int(ifindex), Program: a.prog, Attach: a.attach, Anchor: link.Head()})
		if err != nil {
			el.detach()
			return nil, fmt.Errorf("attach %s to interface %d: %w", a.which, ifindex, err)
		}
		*a.dst = l
		path := d.linkPin(ifindex, a.which)
		os.RemoveAll(path) // a stale pin of a deleted interface
		if err := l.Pin(path); err != nil {
			el.detach()
			return nil, fmt.Errorf("pin %s link of interface %d: %w", a.which, ifindex, err)
		}
	}
	return el, nil
}

// attachWhole puts both programs on interface idx, replacing half an
// adopted pair whole. It runs in the node's network namespace.
func (d *Datapath) attachWhole(idx uint32) error {
	if el := d.links[idx]; el != nil {
		el.detach()
		delete(d.links, idx)
		delete(d.pending, idx)
	}
	el, err := d.attach(idx)
	if err != nil {
		return err
	}
	d.links[idx] = el
	return nil
}

// switchPending moves adopted links to this run's programs, now that its
// maps hold the synced state.
func (d *Datapath) switchPending() (int, error) {
	var errs []error
	n := 0
	for idx := range d.pending {
		el := d.links[idx]
		if el == nil {
			delete(d.pending, idx)
			continue
		}
		var failed bool
		if el.fromPod != nil {
			if err := el.fromPod.Update(d.objs.PalisadeFromPod); err != nil {
				errs = append(errs, fmt.Errorf("switch from_pod of interface %d: %w", idx, err))
				failed = true
			}
		}
		if el.toPod != nil {
			if err := el.toPod.Update(d.objs.PalisadeToPod); err != nil {
				errs = append(errs, fmt.Errorf("switch to_pod of interface %d: %w", idx, err))
				failed = true
			}
		}
		if !failed {
			delete(d.pending, idx)
			n++
		}
	}
	return n, errors.Join(errs...)
}
