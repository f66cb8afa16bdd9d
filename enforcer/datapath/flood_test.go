package datapath

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

// Floods from one pod, with real packets through the real programs: what
// the flooder can spend is its own event budget and its own conntrack
// share; another pod's denials are still recorded and its connections
// keep working.

// eventTally counts a Datapath's events by interface, verdict and reason
// as they are read.
type eventTally struct {
	mu     sync.Mutex
	counts map[eventClass]int
	// first remembers when an event of each class first arrived.
	first map[eventClass]time.Time
}

type eventClass struct {
	ifindex uint32
	verdict Verdict
	reason  Reason
}

func tallyEvents(t *testing.T, d *Datapath) *eventTally {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tl := &eventTally{counts: map[eventClass]int{}, first: map[eventClass]time.Time{}}
	events := d.Events(ctx)
	go func() {
		for ev := range events {
			c := eventClass{ev.Ifindex, ev.Verdict, ev.Reason}
			tl.mu.Lock()
			if tl.counts[c] == 0 {
				tl.first[c] = time.Now()
			}
			tl.counts[c]++
			tl.mu.Unlock()
		}
	}()
	return tl
}

func (tl *eventTally) count(c eventClass) (int, time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.counts[c], tl.first[c]
}

func (tl *eventTally) total(ifindex uint32) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for c, k := range tl.counts {
		if c.ifindex == ifindex {
			n += k
		}
	}
	return n
}

// settle waits until the tally stops moving (the reader has drained the
// ring buffer).
func (tl *eventTally) settle() {
	last := -1
	for range 50 {
		tl.mu.Lock()
		n := 0
		for _, k := range tl.counts {
			n += k
		}
		tl.mu.Unlock()
		if n == last {
			return
		}
		last = n
		time.Sleep(200 * time.Millisecond)
	}
}

func counter(t *testing.T, d *Datapath, name string) uint64 {
	t.Helper()
	c, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c[name]
}

// floodUDP sends up to n datagrams from p to `to` as fast as one socket
// can, for at most limit; it returns how many the kernel took. running is
// true while it sends.
func floodUDP(t *testing.T, p *testPod, to netip.AddrPort, n int, limit time.Duration, running *atomic.Bool) int {
	t.Helper()
	c, err := podnet.Netns(p.netns).Dial(context.Background(), nil, "udp", to.String())
	if err != nil {
		t.Fatalf("flood socket in %s: %v", p.name, err)
	}
	defer c.Close()
	payload := make([]byte, 32)
	deadline := time.Now().Add(limit)
	running.Store(true)
	defer running.Store(false)
	sent := 0
	for i := 0; i < n; i++ {
		if i%4096 == 0 && time.Now().After(deadline) {
			break
		}
		if _, err := c.Write(payload); err == nil {
			sent++
		}
	}
	return sent
}

// A pod sends a million refused datagrams; while it does, another pod's
// single refused datagram is recorded. The flooder's events beyond its
// budget are not sent but counted, each one: sent + lost = dropped.
func TestDropFloodKeepsOtherPodsDenialsRecorded(t *testing.T) {
	const packets = 1_000_000
	w := newRoutedWorld(t)
	d := w.open(t)
	syncState(t, d, compile(t, w.manifests(clientToServer, nil)))
	flooder, victim := uint32(w.node.ifindex(w.intruder)), uint32(w.node.ifindex(w.client))
	tally := tallyEvents(t, d)
	dropsBefore := counter(t, d, "drop_policy")
	lostBefore := lostOf(t, d, flooder)

	var running atomic.Bool
	sentc := make(chan int, 1)
	start := time.Now()
	go func() {
		sentc <- floodUDP(t, w.intruder, netip.AddrPortFrom(w.server.ip, 9), packets, time.Minute, &running)
	}()
	// Well into the flood, the client's one refused datagram (only 8080
	// is allowed).
	for counter(t, d, "drop_policy")-dropsBefore < packets/10 {
		if time.Since(start) > time.Minute {
			t.Fatal("the flood never reached a tenth of its packets")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !running.Load() {
		t.Fatal("the flood ended before the other pod's denial was sent")
	}
	c, err := podnet.Netns(w.client.netns).Dial(context.Background(), nil, "udp", netip.AddrPortFrom(w.server.ip, 9090).String())
	if err != nil {
		t.Fatal(err)
	}
	sentAt := time.Now()
	if _, err := c.Write([]byte("denied\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	victimDrop := eventClass{victim, VerdictDrop, ReasonPolicyMiss}
	for {
		if n, _ := tally.count(victimDrop); n > 0 {
			break
		}
		if time.Since(sentAt) > 5*time.Second {
			t.Fatal("the other pod's denial was not recorded within 5s during the flood")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, recorded := tally.count(victimDrop)
	stillFlooding := running.Load()
	sent := <-sentc
	elapsed := time.Since(start)
	tally.settle()

	if !stillFlooding {
		t.Errorf("the flood ended before the other pod's denial was recorded (%v after sending it)", recorded.Sub(sentAt))
	}
	if n, _ := tally.count(victimDrop); n != 1 {
		t.Errorf("other pod: %d drop events, want 1", n)
	}
	drops := counter(t, d, "drop_policy") - dropsBefore - 1 // the client's
	if sent < packets*9/10 || drops != uint64(sent) {
		t.Errorf("sent %d datagrams, %d dropped; want nearly %d, all dropped", sent, drops, packets)
	}
	got := tally.total(flooder)
	lost := lostOf(t, d, flooder) - lostBefore
	if uint64(got)+lost != drops {
		t.Errorf("flooder: %d events read and %d lost, want %d (one per drop)", got, lost, drops)
	}
	// Its budget: a burst of 64 and 100 a second, per CPU.
	if max := runtime.NumCPU() * (64 + int(elapsed.Seconds()+1)*100); got > max {
		t.Errorf("flooder: %d events sent in %v, over its budget (%d)", got, elapsed.Round(time.Millisecond), max)
	}
	if limited := counter(t, d, "drop_event_rate_limited"); limited == 0 {
		t.Error("drop_event_rate_limited is 0")
	}
	t.Logf("%d datagrams dropped in %v; flooder: %d events sent, %d lost; other pod's denial recorded %v after it was sent",
		drops, elapsed.Round(time.Millisecond), got, lost, recorded.Sub(sentAt).Round(time.Microsecond))
}

func lostOf(t *testing.T, d *Datapath, ifindex uint32) uint64 {
	t.Helper()
	losses, err := d.EventsLost()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range losses {
		if l.Ifindex == ifindex {
			return l.Lost
		}
	}
	return 0
}

// intruderToServerUDP allows the intruder's UDP to the server's 8080, so
// that its flood is one of allowed, tracked flows.
const intruderToServerUDP = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: server-from-intruder}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: intruder}}}]
    ports: [{protocol: UDP, port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: intruder-to-server}
spec:
  podSelector: {matchLabels: {app: intruder}}
  egress:
  - to: [{podSelector: {matchLabels: {app: server}}}]
    ports: [{protocol: UDP, port: 8080}]
---
`

// A pod opens thousands of allowed UDP flows, more than the whole table
// holds: it fills its own share and no more (the server's entries for its
// flows count in the flooder's share too), its further flows are
// refused and reported, and another pod's established connection to the
// same server keeps working, as do its new ones. Once the collector has
// forgotten the flood's flows, the flooder may open flows again.
func TestConntrackFloodKeepsOtherPodsConnections(t *testing.T) {
	const table, share, flows = 2048, 256, 5000
	w := newRoutedWorld(t)
	d, err := Open(Options{PinDir: w.pinDir, NetNS: w.node.path(), Logger: w.logs.logger(),
		Config: bpf.Config{Conntrack: table, ConntrackPerEndpoint: share}})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { d.Remove() })
	syncState(t, d, compile(t, w.manifests(clientToServer+intruderToServerUDP, nil)))
	flooder, server := uint32(w.node.ifindex(w.intruder)), uint32(w.node.ifindex(w.server))
	tally := tallyEvents(t, d)

	conn, err := w.client.dial(w.server, port, time.Second)
	if err != nil {
		t.Fatalf("client → server: %v", err)
	}
	defer conn.Close()
	expectPass(t, "client's connection before the flood", echo(conn, time.Second))

	refusedBefore := counter(t, d, "drop_ct_endpoint_limit")
	to := netip.AddrPortFrom(w.server.ip, port)
	err = podnet.Netns(w.intruder.netns).Do(func() error {
		for i := 0; i < flows; i++ {
			pc, err := net.ListenPacket("udp", ":0") // a new source port: a new flow
			if err != nil {
				return err
			}
			_, err = pc.WriteTo([]byte("flood\n"), net.UDPAddrFromAddrPort(to))
			pc.Close()
			if err != nil {
				return fmt.Errorf("flow %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // the last echoes come back

	if got, err := d.ConntrackShare(flooder); err != nil || got > share+int64(runtime.NumCPU()) || got < share-1 {
		t.Errorf("flooder holds %d entries (%v), want its share %d", got, err, share)
	}
	if got, err := d.ConntrackShare(server); err != nil || got > 4 {
		t.Errorf("server holds %d entries in its own share (%v): the flood's must count in the flooder's", got, err)
	}
	refused := counter(t, d, "drop_ct_endpoint_limit") - refusedBefore
	if refused < flows/2 {
		t.Errorf("%d of %d flows refused over the share, want most", refused, flows)
	}
	expectPass(t, "client's established connection after the flood", echo(conn, time.Second))
	expectPass(t, "client's new connection after the flood", w.client.tcp(w.server, port))
	expectPass(t, "client's UDP after the flood", w.client.udp(w.server, port))
	tally.settle()
	if n, _ := tally.count(eventClass{flooder, VerdictDrop, ReasonConntrackEndpointLimit}); n == 0 {
		t.Error("no flow event of the flooder's refused flows (reason: conntrack share used up)")
	}

	// Three minutes later (as the collector's clock goes): the flood's
	// datagram flows are forgotten, the client's TCP connection is not.
	if _, err := d.CollectConntrack(monotonicNow() + 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := d.ConntrackShare(flooder); err != nil || got != 0 {
		t.Errorf("after the collector the flooder holds %d entries (%v), want 0", got, err)
	}
	expectPass(t, "client's established connection after the collector", echo(conn, time.Second))
	expectPass(t, "flooder's new flow once its share is free", w.intruder.udp(w.server, port))
}

// The collector gives a closed TCP connection's entry its short timeout,
// and what it deletes goes back to the endpoint's share.
func TestCollectorClosesFinishedConnections(t *testing.T) {
	w := newRoutedWorld(t)
	d := w.open(t)
	syncState(t, d, compile(t, w.manifests(clientToServer, nil)))
	client := uint32(w.node.ifindex(w.client))
	expectPass(t, "a connection, opened and closed", w.client.tcp(w.server, port))
	open, err := w.client.dial(w.server, port, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	expectPass(t, "a connection left open", echo(open, time.Second))
	time.Sleep(100 * time.Millisecond) // the FINs

	closing := uint32(bpf.PalisadeCtFlagsCT_F_CLOSING)
	flows := func() (closed, live int) {
		var k bpf.PalisadeCtKey
		var v bpf.PalisadeCtValue
		it := d.objs.Conntrack.Iterate()
		for it.Next(&k, &v) {
			if k.Ifindex != client {
				continue
			}
			if v.Flags&closing != 0 {
				closed++
			} else {
				live++
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return closed, live
	}
	if closed, live := flows(); closed != 1 || live != 1 {
		t.Fatalf("client's entries: %d closing, %d open; want 1 and 1", closed, live)
	}
	before, _ := d.ConntrackShare(client)
	// A minute on: past the closing timeout (30s), far from the
	// established one (6h).
	if _, err := d.CollectConntrack(monotonicNow() + time.Minute); err != nil {
		t.Fatal(err)
	}
	if closed, live := flows(); closed != 0 || live != 1 {
		t.Errorf("after the collector: %d closing, %d open; want 0 and 1", closed, live)
	}
	// Both ends of the closed connection counted in the client's share:
	// the server's entry for it too, the client being a pod of the node.
	if after, _ := d.ConntrackShare(client); after != before-2 {
		t.Errorf("client's share %d after collecting the closed connection's two entries, was %d", after, before)
	}
	expectPass(t, "the open connection after the collector", echo(open, time.Second))
}

// An enforcer upgraded from a version whose conntrack was an LRU (or
// restarted with another table size) replaces the table, and carries its
// flows over: an established connection into an isolated direction keeps
// working, and its entries count in their shares.
func TestUpgradeCarriesTrackedFlows(t *testing.T) {
	w := newRoutedWorld(t)
	d := w.open(t)
	syncState(t, d, compile(t, w.manifests(clientToServer, nil)))
	client := uint32(w.node.ifindex(w.client))
	conn, err := w.client.dial(w.server, port, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	expectPass(t, "connection before the upgrade", echo(conn, time.Second))
	share, _ := d.ConntrackShare(client)
	d.Close()

	// The previous version's table: an LRU with the same entries.
	pin := w.pinDir + "/maps/" + bpf.PalisadeMapConntrack
	cur, err := ebpf.LoadPinnedMap(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	lru, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: cur.KeySize(), ValueSize: cur.ValueSize(), MaxEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	var k bpf.PalisadeCtKey
	var v bpf.PalisadeCtValue
	entries := 0
	for it := cur.Iterate(); it.Next(&k, &v); entries++ {
		v.ShareIfindex = 0 // the previous layout's padding
		if err := lru.Put(&k, &v); err != nil {
			t.Fatal(err)
		}
	}
	cur.Close()
	if err := os.Remove(pin); err != nil {
		t.Fatal(err)
	}
	if err := lru.Pin(pin); err != nil {
		t.Fatal(err)
	}
	lru.Close()

	d2 := w.open(t)
	if logs := w.logs.String(); !strings.Contains(logs, "conntrack carried over") {
		t.Errorf("no log line about the carried flows:\n%s", logs)
	}
	expectPass(t, "established connection after the upgrade, before any sync", echo(conn, time.Second))
	syncState(t, d2, compile(t, w.manifests(clientToServer, nil)))
	expectPass(t, "established connection after the first sync", echo(conn, time.Second))
	// Without share_ifindex an entry counts in its own interface's share.
	total := int64(0)
	for _, p := range []*testPod{w.client, w.server} {
		n, err := d2.ConntrackShare(uint32(w.node.ifindex(p)))
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != int64(entries) || share == 0 {
		t.Errorf("shares after the upgrade hold %d entries, the carried table %d (client held %d before)", total, entries, share)
	}
}

// On a bridge as on routes, the entries of a connection between two pods
// of the node count in the share of the pod that opened it.
func TestConnectionBetweenPodsCountsInTheOpenersShare(t *testing.T) {
	requireKernel(t)
	n := newTestNode(t)
	c := n.bridgedPod("client", "10.245.0.2")
	s := n.bridgedPod("server", "10.245.0.3")
	s.serve(t, port)
	d, err := Open(Options{PinDir: testPinDir(t), NetNS: n.path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Remove() })
	syncState(t, d, compile(t, namespace("x")+pod("x", "client", "client", "10.245.0.2")+pod("x", "server", "server", "10.245.0.3")+clientToServer))
	conn, err := c.dial(s, port, time.Second)
	if err != nil {
		t.Fatalf("client → server: %v", err)
	}
	defer conn.Close()
	expectPass(t, "bridged client → server", echo(conn, time.Second))
	client, _ := d.ConntrackShare(uint32(n.ifindex(c)))
	server, _ := d.ConntrackShare(uint32(n.ifindex(s)))
	if client != 2 || server != 0 {
		t.Errorf("shares: client %d, server %d; want 2 (its egress entry and the server's ingress one) and 0", client, server)
	}
}
