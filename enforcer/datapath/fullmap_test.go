package datapath

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/bpf"
)

// A policy change that overfills the policy map leaves every pod it
// touched isolated, established connections included, and opens nothing;
// an enforcer restarted with a bigger map (its state maps replaced, the
// links adopted) keeps them closed until its first Sync, which converges.
func TestFullPolicyMapIsolatesTouchedPods(t *testing.T) {
	w := newRoutedWorld(t)
	c, s, x := w.client, w.server, w.intruder
	d, err := Open(Options{PinDir: w.pinDir, NetNS: w.node.path(), Config: bpf.Config{Policy: 2}, Logger: w.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Remove() })
	syncState(t, d, compile(t, w.manifests("", nil)))
	expectPass(t, "unisolated: intruder → server", x.tcp(s, port))
	conn, err := c.dial(s, port, time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	expectPass(t, "established connection before the change", echo(conn, time.Second))

	// Default deny plus four allows (TCP and UDP, each side) into a map
	// of two.
	st := compile(t, w.manifests(clientToServer, nil))
	stats, err := d.Sync(context.Background(), st, d.Endpoint)
	if !errors.Is(err, ErrMapFull) {
		t.Fatalf("sync into a full map: %v, want ErrMapFull", err)
	}
	var isolated []string
	for _, p := range stats.Isolated {
		isolated = append(isolated, p.Name)
	}
	slices.Sort(isolated)
	if want := []string{"client", "intruder", "server"}; !slices.Equal(isolated, want) {
		t.Errorf("isolated %v, want %v", isolated, want)
	}
	if f := stats.Fill[bpf.PalisadeMapPolicy]; f.Max != 2 || f.Wanted <= 2 {
		t.Errorf("policy fill %+v: want capacity 2 and the entries the State needs", f)
	}
	e := kernelEntries(t, d)
	for idx, v := range e.Endpoints {
		if v.Identity != transitIdentity || v.Flags != isolationFlags {
			t.Errorf("endpoint %d holds %+v after the failed sync, want isolated with identity %d", idx, v, transitIdentity)
		}
	}
	// The allows that fit before the map filled are keyed by the new
	// State's identities, which no endpoint holds.
	for k := range e.Policy {
		if k.LocalIdentity == transitIdentity {
			t.Errorf("policy entry %+v applies to the isolated endpoints", k)
		}
	}
	expectDrop(t, "established connection after the failed sync", echo(conn, time.Second))
	expectDrop(t, "client → server (the allow that did not fit)", c.tcp(s, port))
	expectDrop(t, "client → server UDP", c.udp(s, port))
	expectDrop(t, "intruder → server", x.tcp(s, port))
	expectDrop(t, "server → client", s.tcp(c, port))

	// A retry into the same map fails the same way and stays closed.
	if _, err := d.Sync(context.Background(), st, d.Endpoint); !errors.Is(err, ErrMapFull) {
		t.Fatalf("retry: %v, want ErrMapFull", err)
	}
	expectDrop(t, "intruder → server after the retry", x.tcp(s, port))

	// Restart with room: the state maps no longer match the pins and are
	// replaced; the adopted links keep the old maps until the first Sync.
	d.Close()
	d2, err := Open(Options{PinDir: w.pinDir, NetNS: w.node.path(), Config: bpf.Config{Policy: 64}, Logger: w.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Remove() })
	expectDrop(t, "client → server after the restart, before sync", c.tcp(s, port))
	expectDrop(t, "intruder → server after the restart, before sync", x.tcp(s, port))
	stats = syncState(t, d2, st)
	if stats.LinksSwitched != 3 {
		t.Errorf("switched %d adopted links onto the new maps, want 3", stats.LinksSwitched)
	}
	if f := stats.Fill[bpf.PalisadeMapPolicy]; f.Max != 64 || f.Entries != f.Wanted {
		t.Errorf("policy fill %+v after growing", f)
	}
	expectPass(t, "client → server once the map fits", c.tcp(s, port))
	expectPass(t, "client → server UDP once the map fits", c.udp(s, port))
	expectDrop(t, "intruder → server once the map fits", x.tcp(s, port))
	expectDrop(t, "server → client once the map fits", s.tcp(c, port))
}

// A full endpoints map: the endpoints that fit are written isolated, the
// ones that do not are never attached, and nothing of the new State's
// allows is written.
func TestFullEndpointsMapAttachesNothingOpen(t *testing.T) {
	w := newRoutedWorld(t)
	d, err := Open(Options{PinDir: w.pinDir, NetNS: w.node.path(), Config: bpf.Config{Endpoints: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Remove() })
	stats, err := d.Sync(context.Background(), compile(t, w.manifests(clientToServer, nil)), d.Endpoint)
	if !errors.Is(err, ErrMapFull) {
		t.Fatalf("sync of three endpoints into a map of two: %v, want ErrMapFull", err)
	}
	if len(stats.Isolated) != 2 || stats.LinksAttached != 0 {
		t.Errorf("isolated %v, attached %d links; want the two that fit, no link", stats.Isolated, stats.LinksAttached)
	}
	e := kernelEntries(t, d)
	if len(e.Policy) != 0 {
		t.Errorf("%d policy entries written by a sync that failed at its first step", len(e.Policy))
	}
	for idx, v := range e.Endpoints {
		if v.Identity != transitIdentity || v.Flags != isolationFlags {
			t.Errorf("endpoint %d holds %+v, want isolated", idx, v)
		}
	}
}

// kernelEntries reads what the state maps hold.
func kernelEntries(t *testing.T, d *Datapath) Entries {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.readState(); err != nil {
		t.Fatal(err)
	}
	return d.applied.clone()
}
