package datapath

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// The pods of the routed tests: a client and a server the policies name,
// and an intruder they do not.
const (
	clientIP   = "10.244.0.2"
	serverIP   = "10.244.0.3"
	intruderIP = "10.244.0.4"
	port       = 8080
)

// clientToServer allows client → server on 8080, TCP and UDP, under a
// namespace-wide default deny.
const clientToServer = denyAll + `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: server-from-client}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: 8080}, {protocol: UDP, port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: client-to-server}
spec:
  podSelector: {matchLabels: {app: client}}
  egress:
  - to: [{podSelector: {matchLabels: {app: server}}}]
    ports: [{protocol: TCP, port: 8080}, {protocol: UDP, port: 8080}]
---
`

type routedWorld struct {
	node                     *testNode
	client, server, intruder *testPod
	pinDir                   string
	logs                     *logBuffer
}

func newRoutedWorld(t *testing.T) *routedWorld {
	requireKernel(t)
	w := &routedWorld{node: newTestNode(t), pinDir: testPinDir(t), logs: &logBuffer{}}
	w.client = w.node.routedPod("client", clientIP)
	w.server = w.node.routedPod("server", serverIP)
	w.intruder = w.node.routedPod("intruder", intruderIP)
	for _, p := range []*testPod{w.client, w.server, w.intruder} {
		p.serve(t, port)
		p.serve(t, 9090)
	}
	return w
}

// pods renders the three pods; labels maps a pod name to its app label.
func (w *routedWorld) manifests(policies string, apps map[string]string) string {
	app := func(name string) string {
		if a, ok := apps[name]; ok {
			return a
		}
		return name
	}
	return namespace("x") + pod("x", "client", app("client"), clientIP) + pod("x", "server", app("server"), serverIP) +
		pod("x", "intruder", app("intruder"), intruderIP) + policies
}

func (w *routedWorld) open(t *testing.T) *Datapath {
	t.Helper()
	d, err := Open(Options{PinDir: w.pinDir, NetNS: w.node.path(), Logger: w.logs.logger()})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { d.Remove() })
	return d
}

func syncState(t *testing.T, d *Datapath, s *policy.State) SyncStats {
	t.Helper()
	stats, err := d.Sync(context.Background(), s, d.Endpoint)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if len(stats.Unresolved) > 0 {
		t.Fatalf("unresolved endpoints: %v", stats.Unresolved)
	}
	return stats
}

func TestEnforcementRouted(t *testing.T) {
	w := newRoutedWorld(t)
	c, s, x := w.client, w.server, w.intruder
	expectPass(t, "before any policy: intruder → server", x.tcp(s, port))

	d := w.open(t)
	stats := syncState(t, d, compile(t, w.manifests(clientToServer, nil)))
	if stats.EndpointsAdded != 3 || stats.LinksAttached != 3 {
		t.Errorf("first sync added %d endpoints and %d links, want 3 and 3", stats.EndpointsAdded, stats.LinksAttached)
	}
	events := d.Events(t.Context())

	// Unchanged endpoints on live interfaces need no lookup.
	lookups := 0
	counting := func(ep policy.LocalEndpoint) (int, error) { lookups++; return d.Endpoint(ep) }
	if _, err := d.Sync(context.Background(), compile(t, w.manifests(clientToServer, nil)), counting); err != nil {
		t.Fatal(err)
	}
	if lookups != 0 {
		t.Errorf("re-sync of unchanged endpoints looked %d interfaces up, want 0", lookups)
	}

	expectPass(t, "client → server TCP 8080 (replies pass though server egress is isolated)", c.tcp(s, port))
	expectPass(t, "client → server UDP 8080", c.udp(s, port))
	expectDrop(t, "client → server TCP 9090", c.tcp(s, 9090))
	expectDrop(t, "intruder → server TCP 8080", x.tcp(s, port))
	expectDrop(t, "intruder → server UDP 8080", x.udp(s, port))
	expectDrop(t, "server → client TCP 8080 (reverse isolated)", s.tcp(c, port))

	// The intruder's SYN is reported: dropped at its own egress (it
	// is isolated too), naming the pod and why.
	ev := waitEvent(t, events, func(e Event) bool {
		return e.Verdict == VerdictDrop && e.Src.Addr() == x.ip && e.Dst.Port() == port && e.Protocol == policy.ProtocolTCP
	})
	if ev.Pod != (policy.PodRef{Namespace: "x", Name: "intruder"}) || ev.Direction != policy.Egress || ev.Reason != ReasonPolicyMiss {
		t.Errorf("drop event %+v: want intruder's egress, no rule allows", ev)
	}
	if time.Since(ev.Time).Abs() > time.Minute {
		t.Errorf("event time %v is not now", ev.Time)
	}

	counters, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if counters["drop_policy"] == 0 || counters["allowed_policy"] == 0 || counters["ct_reply"] == 0 {
		t.Errorf("counters %v: want drops, policy allows and conntrack replies", counters)
	}
}

func waitEvent(t *testing.T, events <-chan Event, match func(Event) bool) Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("event stream closed")
			}
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatal("no matching event within 5s")
		}
	}
}

// A withdrawn allow stops an established connection, not only new ones.
func TestRevocationStopsEstablishedConnection(t *testing.T) {
	w := newRoutedWorld(t)
	c, s := w.client, w.server
	d := w.open(t)
	syncState(t, d, compile(t, w.manifests(clientToServer, nil)))

	conn, err := c.dial(s, port, time.Second)
	if err != nil {
		t.Fatalf("dial while allowed: %v", err)
	}
	defer conn.Close()
	expectPass(t, "established connection while allowed", echo(conn, time.Second))

	stats := syncState(t, d, compile(t, w.manifests(denyAll, nil)))
	if stats.RevisionsBumped != 2 {
		t.Errorf("%d revisions bumped, want 2 (client and server)", stats.RevisionsBumped)
	}
	expectDrop(t, "established connection after the allow is withdrawn", echo(conn, time.Second))
	expectDrop(t, "new connection after the allow is withdrawn", c.tcp(s, port))

	syncState(t, d, compile(t, w.manifests(clientToServer, nil)))
	expectPass(t, "new connection after the allow is back", c.tcp(s, port))
}

// A pod whose labels change takes its new identity's verdicts at once,
// established flows included: the client relabelled as an intruder loses
// its allow.
func TestIdentityChangeRevokes(t *testing.T) {
	w := newRoutedWorld(t)
	c, s := w.client, w.server
	d := w.open(t)
	syncState(t, d, compile(t, w.manifests(clientToServer, nil)))
	conn, err := c.dial(s, port, time.Second)
	if err != nil {
		t.Fatalf("dial while allowed: %v", err)
	}
	defer conn.Close()

	stats := syncState(t, d, compile(t, w.manifests(clientToServer, map[string]string{"client": "intruder"})))
	if stats.Quarantined == 0 {
		t.Error("the client's address changed identity without passing through quarantine")
	}
	expectDrop(t, "established connection of the relabelled client", echo(conn, time.Second))
	expectDrop(t, "new connection of the relabelled client", c.tcp(s, port))
}

// A restarted enforcer adopts the pinned maps and links: enforcement holds
// while no enforcer runs, an established connection survives, and the
// first sync of the unchanged state writes nothing.
func TestRestartAdoptsPins(t *testing.T) {
	w := newRoutedWorld(t)
	c, s, x := w.client, w.server, w.intruder
	st := compile(t, w.manifests(clientToServer, nil))
	d := w.open(t)
	syncState(t, d, st)
	conn, err := c.dial(s, port, time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	expectDrop(t, "intruder → server with no enforcer running", x.tcp(s, port))
	expectPass(t, "established connection with no enforcer running", echo(conn, time.Second))

	d2 := w.open(t)
	expectDrop(t, "intruder → server after reopening, before sync", x.tcp(s, port))
	stats := syncState(t, d2, st)
	writes := 0
	for _, n := range stats.Writes {
		writes += n
	}
	if writes != 0 || stats.LinksAttached != 0 || stats.LinksSwitched != 0 {
		t.Errorf("sync after restart wrote %v, attached %d, switched %d links; want nothing", stats.Writes, stats.LinksAttached, stats.LinksSwitched)
	}
	expectPass(t, "established connection after restart", echo(conn, time.Second))
	expectPass(t, "client → server after restart", c.tcp(s, port))
	expectDrop(t, "intruder → server after restart", x.tcp(s, port))

	if err := d2.Remove(); err != nil {
		t.Fatal(err)
	}
	expectPass(t, "intruder → server once Palisade is removed", x.tcp(s, port))
	if _, err := os.Stat(w.pinDir); !os.IsNotExist(err) {
		t.Errorf("pin directory left behind: %v", err)
	}
}

// A pinned state map of the wrong shape is replaced with a log line; the
// links adopted from the previous run keep its programs and maps (and so
// keep enforcing) until the first sync has filled the new maps.
func TestCorruptPinIsReplacedWithoutLapse(t *testing.T) {
	w := newRoutedWorld(t)
	s, x := w.server, w.intruder
	st := compile(t, w.manifests(clientToServer, nil))
	d := w.open(t)
	syncState(t, d, st)
	d.Close()

	// Another program's map under the endpoints pin: wrong key size.
	pin := filepath.Join(w.pinDir, "maps", bpf.PalisadeMapEndpoints)
	if err := os.Remove(pin); err != nil {
		t.Fatal(err)
	}
	foreign, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 8, ValueSize: 16, MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := foreign.Pin(pin); err != nil {
		t.Fatal(err)
	}
	foreign.Close()

	d2 := w.open(t)
	if logs := w.logs.String(); !strings.Contains(logs, "replacing pinned map: incompatible") || !strings.Contains(logs, "map=endpoints") {
		t.Errorf("no log line about the replaced pin:\n%s", logs)
	}
	expectDrop(t, "intruder → server between open and first sync", x.tcp(s, port))
	stats := syncState(t, d2, st)
	if stats.LinksSwitched != 3 {
		t.Errorf("%d interfaces switched to the new programs, want 3", stats.LinksSwitched)
	}
	expectDrop(t, "intruder → server after the switch", x.tcp(s, port))
	expectPass(t, "client → server after the switch", w.client.tcp(s, port))

	m, err := ebpf.LoadPinnedMap(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.KeySize() != 4 {
		t.Errorf("endpoints pin has key size %d after replacement, want 4", m.KeySize())
	}
}

// A pod that leaves the State is detached and its flows forgotten.
func TestRemovedEndpointIsDetached(t *testing.T) {
	w := newRoutedWorld(t)
	s, x := w.server, w.intruder
	d := w.open(t)
	syncState(t, d, compile(t, w.manifests(clientToServer, nil)))
	expectPass(t, "client → server", w.client.tcp(s, port))

	// The client's pod is gone from the cluster (its interface stays,
	// as between CNI DEL and the enforcer noticing).
	st := compile(t, namespace("x")+pod("x", "server", "server", serverIP)+pod("x", "intruder", "intruder", intruderIP)+clientToServer)
	stats := syncState(t, d, st)
	if stats.EndpointsRemoved != 1 || stats.LinksDetached != 1 || stats.ConntrackPurged == 0 {
		t.Errorf("removed %d endpoints, detached %d, purged %d flows; want 1, 1, some", stats.EndpointsRemoved, stats.LinksDetached, stats.ConntrackPurged)
	}
	if _, err := os.Stat(d.linkPin(uint32(w.node.ifindex(w.client)), pinFromPod)); !os.IsNotExist(err) {
		t.Errorf("link pin of the removed endpoint left behind: %v", err)
	}
	expectDrop(t, "intruder → server", x.tcp(s, port))
}

func TestBridgedEnforcementAndInterfaceLookup(t *testing.T) {
	requireKernel(t)
	n := newTestNode(t)
	c := n.bridgedPod("client", "10.245.0.2")
	s := n.bridgedPod("server", "10.245.0.3")
	x := n.bridgedPod("intruder", "10.245.0.4")
	for _, p := range []*testPod{c, s, x} {
		p.serve(t, port)
	}
	d, err := Open(Options{PinDir: testPinDir(t), NetNS: n.path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Remove() })

	// The host has not talked to the pods: the lookup must resolve the
	// neighbour itself, then find the bridge port.
	for _, p := range []*testPod{c, s, x} {
		got, err := d.HostInterface(p.ip)
		if err != nil {
			t.Fatalf("host interface of %s: %v", p.name, err)
		}
		if want := n.ifindex(p); got != want {
			t.Errorf("host interface of %s: %d, want %d (%s)", p.name, got, want, p.hostIf)
		}
	}
	st := compile(t, namespace("x")+pod("x", "client", "client", c.ip.String())+pod("x", "server", "server", s.ip.String())+
		pod("x", "intruder", "intruder", x.ip.String())+clientToServer)
	syncState(t, d, st)
	expectPass(t, "bridged client → server", c.tcp(s, port))
	expectDrop(t, "bridged intruder → server", x.tcp(s, port))
}

func TestHostInterfaceRejectsForeignAddresses(t *testing.T) {
	requireKernel(t)
	n := newTestNode(t)
	n.routedPod("a", "10.244.0.2")
	n.ip("link", "add", "uplink", "type", "vxlan", "id", "42", "dstport", "4789")
	n.ip("addr", "add", "192.0.2.1/24", "dev", "uplink")
	n.ip("link", "set", "uplink", "up")
	n.ip("route", "add", "default", "via", "192.0.2.254")
	f, err := NewInterfaceFinder(n.path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for addr, want := range map[string]string{
		"10.99.0.7": "routed via 192.0.2.254 on uplink, so not on this node",
		"192.0.2.9": "routed to uplink, a vxlan device",
	} {
		_, err := f.HostInterface(netipMust(addr))
		if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want ErrNoInterface mentioning %q", addr, err, want)
		}
	}
}

// Open refuses a pin directory outside any bpf filesystem, by name.
func TestOpenRefusesNonBPFFS(t *testing.T) {
	_, err := Open(Options{PinDir: filepath.Join(t.TempDir(), "node1")})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("error %v does not wrap ErrUnsupported", err)
	}
	var mf *MissingFeatureError
	if !errors.As(err, &mf) {
		t.Fatalf("error %v names no feature", err)
	}
	if os.Geteuid() == 0 && mf.Feature != "bpffs" {
		t.Errorf("feature %q, want bpffs", mf.Feature)
	}
}

// An address that a deleted pod held, reused by a pod of another
// identity, inherits none of the old pod's allows, not even through a
// tracked flow with the very same tuple.
func TestAddressReuseGetsNoStaleAllow(t *testing.T) {
	w := newRoutedWorld(t)
	s := w.server
	d := w.open(t)
	syncState(t, d, compile(t, w.manifests(clientToServer, nil)))

	const sport = 40001
	conn, err := dialFrom(w.client, s, sport)
	if err != nil {
		t.Fatalf("dial while allowed: %v", err)
	}
	expectPass(t, "client → server", echo(conn, time.Second))
	conn.Close()

	// The client's pod is deleted; a pod of namespace y (no policies, so
	// its own egress is open) gets its address on a new interface.
	// Another client pod keeps the client identity and the server's
	// rules as they were: only the address's identity changes.
	w.node.ip("link", "del", w.client.hostIf)
	run(t, "ip", "netns", "del", w.client.netns)
	reuser := w.node.routedPod("reuser", clientIP)
	w.node.routedPod("client2", "10.244.0.5")
	st := compile(t, namespace("x")+namespace("y")+pod("x", "server", "server", serverIP)+pod("x", "intruder", "intruder", intruderIP)+
		pod("x", "client2", "client", "10.244.0.5")+pod("y", "reuser", "client", clientIP)+clientToServer)
	syncState(t, d, st)

	if _, err := dialFrom(reuser, s, sport); err == nil {
		t.Error("the new pod reused the old pod's tracked flow to reach the server")
	} else {
		expectDrop(t, "reuser → server with the old flow's tuple", err)
	}
	expectDrop(t, "reuser → server", reuser.tcp(s, port))
}

func dialFrom(p, to *testPod, sport int) (net.Conn, error) {
	var c net.Conn
	err := runInNetNS(p.path(), func() error {
		dialer := net.Dialer{Timeout: 400 * time.Millisecond, LocalAddr: &net.TCPAddr{Port: sport}}
		var err error
		c, err = dialer.Dial("tcp", netip.AddrPortFrom(to.ip, port).String())
		return err
	})
	return c, err
}

// In audit mode would-drops pass and are reported.
func TestAuditModePassesAndReports(t *testing.T) {
	w := newRoutedWorld(t)
	d := w.open(t)
	st := compile(t, namespace("x", policy.AnnotationEnforcement+"=audit")+pod("x", "client", "client", clientIP)+
		pod("x", "server", "server", serverIP)+pod("x", "intruder", "intruder", intruderIP)+clientToServer)
	syncState(t, d, st)
	events := d.Events(t.Context())
	expectPass(t, "intruder → server in audit mode", w.intruder.tcp(w.server, port))
	ev := waitEvent(t, events, func(e Event) bool { return e.Verdict == VerdictAuditWouldDrop && e.Src.Addr() == w.intruder.ip })
	if ev.Reason != ReasonPolicyMiss {
		t.Errorf("audit event reason %v, want no rule allows", ev.Reason)
	}
}

// A map at capacity fails the Sync with ErrMapFull and opens nothing:
// what was denied stays denied.
func TestFullMapFailsClosed(t *testing.T) {
	w := newRoutedWorld(t)
	d, err := Open(Options{PinDir: w.pinDir, NetNS: w.node.path(), Config: bpf.Config{Policy: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Remove() })
	syncState(t, d, compile(t, w.manifests(denyAll, nil)))

	// Four entries (TCP and UDP, each side) into a map of two.
	_, err = d.Sync(context.Background(), compile(t, w.manifests(clientToServer, nil)), d.Endpoint)
	if !errors.Is(err, ErrMapFull) {
		t.Fatalf("sync into a full map: %v, want ErrMapFull", err)
	}
	if !strings.Contains(err.Error(), "policy holds 2 entries at most") {
		t.Errorf("error %q does not name the map and its size", err)
	}
	expectDrop(t, "client → server after the failed sync", w.client.tcp(w.server, port))
	expectDrop(t, "intruder → server after the failed sync", w.intruder.tcp(w.server, port))

	// Back to a state that fits: the next sync starts from the maps.
	syncState(t, d, compile(t, w.manifests(denyAll, nil)))
	expectDrop(t, "client → server", w.client.tcp(w.server, port))
}

// After a restart the Datapath cannot tell which pod an interface served:
// while a pod's interface lookup fails, no enforced interface that still
// exists loses its entry, so the unresolved pod stays enforced.
func TestUnresolvedEndpointStaysEnforcedAcrossRestart(t *testing.T) {
	w := newRoutedWorld(t)
	d := w.open(t)
	st := compile(t, w.manifests(clientToServer, nil))
	syncState(t, d, st)
	d.Close()

	d2 := w.open(t)
	failing := func(ep policy.LocalEndpoint) (int, error) {
		if ep.Pod.Name == "server" {
			return 0, errors.New("netlink hiccup")
		}
		return d2.Endpoint(ep)
	}
	stats, err := d2.Sync(context.Background(), st, failing)
	if err != nil {
		t.Fatal(err)
	}
	if got := stats.Unresolved[policy.PodRef{Namespace: "x", Name: "server"}]; got == nil || !strings.Contains(got.Error(), "netlink hiccup") {
		t.Errorf("unresolved %v, want the server reported", stats.Unresolved)
	}
	if stats.EndpointsRemoved != 0 || stats.LinksDetached != 0 {
		t.Errorf("removed %d endpoints, detached %d links on a failed lookup", stats.EndpointsRemoved, stats.LinksDetached)
	}
	expectDrop(t, "intruder → server", w.intruder.tcp(w.server, port))

	// Once a lookup succeeds the server is known again: later syncs
	// need no lookup for it, so the failing resolver no longer matters.
	syncState(t, d2, st)
	stats, err = d2.Sync(context.Background(), compile(t, w.manifests(denyAll, nil)), failing)
	if err != nil || stats.EndpointsRemoved != 0 || len(stats.Unresolved) != 0 {
		t.Fatalf("sync: %v, %d endpoints removed, unresolved %v", err, stats.EndpointsRemoved, stats.Unresolved)
	}
	expectDrop(t, "client → server after the allow is withdrawn", w.client.tcp(w.server, port))
}

// The collector forgets idle and orphaned flows, and keeps live ones.
func TestConntrackCollector(t *testing.T) {
	w := newRoutedWorld(t)
	d := w.open(t)
	syncState(t, d, compile(t, w.manifests(clientToServer, nil)))
	server := uint32(w.node.ifindex(w.server))

	now := monotonicNow()
	replied := uint32(bpf.PalisadeCtFlagsCT_F_SEEN_REPLY)
	entry := func(ifindex uint32, proto uint8, sport uint16, idle time.Duration, flags uint32) bpf.PalisadeCtKey {
		k := bpf.PalisadeCtKey{Ifindex: ifindex, Sport: sport, Dport: 80, Protocol: proto, Family: 4, Direction: 1}
		v := bpf.PalisadeCtValue{CreatedNs: uint64(now - idle - time.Second), LastSeenNs: uint64(now - idle), Revision: 1, Flags: flags}
		if err := d.objs.Conntrack.Put(&k, &v); err != nil {
			t.Fatal(err)
		}
		return k
	}
	keep := []bpf.PalisadeCtKey{
		entry(server, 6, 1, time.Hour, replied),    // established TCP, 1h idle
		entry(server, 17, 2, time.Minute, replied), // UDP with reply, 1m idle
		entry(server, 6, 3, 30*time.Second, 0),     // unreplied, 30s
	}
	drop := []bpf.PalisadeCtKey{
		entry(server, 6, 4, 7*time.Hour, replied),    // established TCP, 7h idle
		entry(server, 17, 5, 3*time.Minute, replied), // UDP with reply, 3m idle
		entry(server, 6, 6, 2*time.Minute, 0),        // unreplied, 2m
		entry(999999, 6, 7, time.Second, replied),    // no such endpoint
	}
	n, err := d.CollectConntrack(monotonicNow())
	if err != nil {
		t.Fatal(err)
	}
	if n < len(drop) {
		t.Errorf("collected %d entries, want at least %d", n, len(drop))
	}
	var v bpf.PalisadeCtValue
	for _, k := range keep {
		if err := d.objs.Conntrack.Lookup(&k, &v); err != nil {
			t.Errorf("live entry sport %d collected: %v", k.Sport, err)
		}
	}
	for _, k := range drop {
		if err := d.objs.Conntrack.Lookup(&k, &v); !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("idle entry sport %d kept: %v", k.Sport, err)
		}
	}
}

func TestEnforcementIPv6(t *testing.T) {
	requireKernel(t)
	n := newTestNode(t)
	c := n.routedPod("client", "fd00::2")
	s := n.routedPod("server", "fd00::3")
	x := n.routedPod("intruder", "fd00::4")
	for _, p := range []*testPod{c, s, x} {
		p.serve(t, port)
	}
	expectPass(t, "before any policy: intruder → server", x.tcp(s, port))
	d, err := Open(Options{PinDir: testPinDir(t), NetNS: n.path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Remove() })
	syncState(t, d, compile(t, namespace("x")+pod("x", "client", "client", "fd00::2")+pod("x", "server", "server", "fd00::3")+
		pod("x", "intruder", "intruder", "fd00::4")+clientToServer))
	expectPass(t, "client → server TCP", c.tcp(s, port))
	expectPass(t, "client → server UDP", c.udp(s, port))
	expectDrop(t, "intruder → server TCP", x.tcp(s, port))
	expectDrop(t, "server → client TCP", s.tcp(c, port))
}
