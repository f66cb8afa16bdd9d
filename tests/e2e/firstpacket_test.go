package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

// arrivals counts what reaches one pod on a port, by source address: TCP
// connections accepted and UDP datagrams read. It sees what the
// datapath delivered, whatever came back.
type arrivals struct {
	mu   sync.Mutex
	from map[netip.Addr]int
}

func (a *arrivals) add(addr net.Addr) {
	var ip netip.Addr
	switch v := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(v.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(v.IP)
	}
	a.mu.Lock()
	a.from[ip.Unmap()]++
	a.mu.Unlock()
}

func (a *arrivals) count(ips ...netip.Addr) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, ip := range ips {
		n += a.from[ip]
	}
	return n
}

// countArrivals serves TCP and UDP port in p's namespace (both families)
// and counts what arrives.
func countArrivals(t testing.TB, w *world, p *pod, port int) *arrivals {
	t.Helper()
	a := &arrivals{from: map[netip.Addr]int{}}
	ln, err := podnet.Netns(p.netns).Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := podnet.Netns(p.netns).ListenPacket("udp", fmt.Sprintf(":%d", port))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.add(c.RemoteAddr())
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			a.add(from)
		}
	}()
	return a
}

// sender sends, from one pod's namespace and as fast as the probes time
// out, a TCP SYN and a UDP datagram to each target in both families,
// recording when a TCP connection first completed.
type sender struct {
	stop, done chan struct{}
	mu         sync.Mutex
	attempts   int
	connected  time.Time
}

func startSender(p *pod, targets []netip.AddrPort) *sender {
	s := &sender{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			for _, to := range targets {
				var ok bool
				podnet.Netns(p.netns).Do(func() error {
					if c, err := net.DialTimeout("tcp", to.String(), 25*time.Millisecond); err == nil {
						ok = true
						c.Close()
					}
					if c, err := net.Dial("udp", to.String()); err == nil {
						c.Write([]byte("first packet\n"))
						c.Close()
					}
					return nil
				})
				s.mu.Lock()
				s.attempts++
				if ok && s.connected.IsZero() {
					s.connected = time.Now()
				}
				s.mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return s
}

// waitConnected waits until a TCP connection completed, at most within.
func (s *sender) waitConnected(within time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		connected := s.connected
		s.mu.Unlock()
		if !connected.IsZero() {
			return connected, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (s *sender) finish() (attempts int, connected time.Time) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts, s.connected
}

const denyAllZ = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "z", name: deny-all}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
`

// A pod of a default-deny namespace sends from the moment its interface
// exists, before its Pod object reaches the enforcer, and after: not one
// TCP connection nor UDP datagram reaches a pod whose ingress is open,
// and nothing reaches it either. (Without quarantine the interface had no
// program until its pod was known: every early packet passed.)
func TestFirstPacketOfADefaultDenyPodIsDropped(t *testing.T) {
	w := needWorld(t)
	ctx := context.Background()
	withPolicies(t, w, denyAllZ)
	target := w.pods["y/a"]
	got := countArrivals(t, w, target, 7070)
	w.mu.Lock()
	n := w.nodes["node1"]
	w.mu.Unlock()
	v4, v6 := w.nextAddrs(n)

	p, err := w.podNetwork("z", "early", n, v4, v6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.deletePod(ctx, p); err != nil {
			t.Error(err)
		}
	})
	s := startSender(p, []netip.AddrPort{netip.AddrPortFrom(target.v4, 7070), netip.AddrPortFrom(target.v6, 7070)})
	defer s.finish()
	back := countArrivals(t, w, p, 7070)
	reverse := startSender(target, []netip.AddrPort{netip.AddrPortFrom(v4, 7070), netip.AddrPortFrom(v6, 7070)})
	defer reverse.finish()

	time.Sleep(700 * time.Millisecond) // the pod's object does not exist yet
	early, _ := s.finish()
	if n := got.count(v4, v6); n != 0 {
		t.Fatalf("%d of %d early packets of a pod whose object did not exist reached %s", n, early, target.ref())
	}
	s = startSender(p, []netip.AddrPort{netip.AddrPortFrom(target.v4, 7070), netip.AddrPortFrom(target.v6, 7070)})
	if err := w.podObject(ctx, p, "early"); err != nil {
		t.Fatal(err)
	}
	if err := w.settled(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	later, _ := s.finish()
	toward, _ := reverse.finish()
	t.Logf("%d sends before the pod's object existed, %d after; %d towards it", early, later, toward)
	if n := got.count(v4, v6); n != 0 {
		t.Errorf("%d packets of default-deny pod %s reached %s", n, p.ref(), target.ref())
	}
	if n := back.count(target.v4, target.v6); n != 0 {
		t.Errorf("%d packets reached default-deny pod %s", n, p.ref())
	}
	w.expect(t, time.Second, mustProbes(t, "z/early -> y/a 80/tcp drop", "y/a -> z/early 80/tcp drop"))
}

// A pod of a namespace nothing isolates is held from its first packet
// until its pod is known, then connects: the release latency is what such
// a pod pays at start.
func TestPodOfAnOpenNamespaceConnectsOnceReleased(t *testing.T) {
	w := needWorld(t)
	ctx := context.Background()
	target := w.pods["y/a"]
	got := countArrivals(t, w, target, 7071)
	latency, err := w.releaseOnce(ctx, t, "late", target, got, 7071)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod object reported → first connection: %v", latency)
}

// releaseOnce creates a pod network in namespace y, checks that nothing
// of it arrives before its Pod object exists, creates the object and
// returns the time from then to its first connection.
func (w *world) releaseOnce(ctx context.Context, t testing.TB, name string, target *pod, got *arrivals, port int) (time.Duration, error) {
	w.mu.Lock()
	n := w.nodes["node1"]
	w.mu.Unlock()
	v4, v6 := w.nextAddrs(n)
	p, err := w.podNetwork("y", name, n, v4, v6)
	if err != nil {
		return 0, err
	}
	defer w.deletePod(ctx, p)
	s := startSender(p, []netip.AddrPort{netip.AddrPortFrom(target.v4, uint16(port))})
	time.Sleep(300 * time.Millisecond)
	if n := got.count(v4, v6); n != 0 {
		s.finish()
		return 0, fmt.Errorf("%d packets of %s arrived before its pod was known", n, p.ref())
	}
	start := time.Now()
	if err := w.podObject(ctx, p, name); err != nil {
		s.finish()
		return 0, err
	}
	connected, ok := s.waitConnected(10 * time.Second)
	s.finish()
	if !ok {
		return 0, fmt.Errorf("%s never connected after its pod object was created", p.ref())
	}
	return connected.Sub(start), nil
}

// BenchmarkQuarantineRelease measures, per op, a new pod of an open
// namespace from its Pod object's creation (with its addresses) to its
// first TCP connection, through the real API server and enforcer; p50 and
// p99 over the ops.
func BenchmarkQuarantineRelease(b *testing.B) {
	w := needWorld(b)
	ctx := context.Background()
	target := w.pods["y/a"]
	got := countArrivals(b, w, target, 7072)
	var all []time.Duration
	for i := range b.N {
		d, err := w.releaseOnce(ctx, b, fmt.Sprintf("rel%d", i), target, got, 7072)
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, d)
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[(len(all)*99)/100].Microseconds())/1000, "p99-ms")
}

// testBridgedFirstPacket: on a bridge (a port of cni0, no route of its
// own), a pod of a default-deny namespace sends from the moment its
// interface exists: nothing reaches a pod on the same bridge before or
// after its object; a pod of an open namespace then connects, which needs
// the enforcer to find its port through the neighbour table while it is
// in quarantine.
func testBridgedFirstPacket(t *testing.T, w *world, n *node) {
	ctx := context.Background()
	withBridgedPolicies(t, w, n, denyAllZ)
	target := w.pods["x/d"]
	got := countArrivals(t, w, target, 7073)
	v4, v6 := w.nextAddrs(n)
	p, err := w.bridgedPodNetwork("z", "early", n, v4, v6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.deletePod(ctx, p); err != nil {
			t.Error(err)
		}
	})
	targets := []netip.AddrPort{netip.AddrPortFrom(target.v4, 7073), netip.AddrPortFrom(target.v6, 7073)}
	s := startSender(p, targets)
	defer s.finish()
	time.Sleep(500 * time.Millisecond)
	if err := w.podObject(ctx, p, "early"); err != nil {
		t.Fatal(err)
	}
	if err := w.settledWith(ctx, n, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	sent, _ := s.finish()
	if k := got.count(v4, v6); k != 0 {
		t.Errorf("%d of %d sends of default-deny pod %s on the bridge reached %s", k, sent, p.ref(), target.ref())
	}

	v4, v6 = w.nextAddrs(n)
	open, err := w.bridgedPodNetwork("y", "late", n, v4, v6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.deletePod(ctx, open); err != nil {
			t.Error(err)
		}
	})
	s = startSender(open, targets[:1])
	defer s.finish()
	time.Sleep(300 * time.Millisecond)
	if k := got.count(v4, v6); k != 0 {
		t.Fatalf("%d sends of %s on the bridge arrived before its pod was known", k, open.ref())
	}
	start := time.Now()
	if err := w.podObject(ctx, open, "late"); err != nil {
		t.Fatal(err)
	}
	connected, ok := s.waitConnected(10 * time.Second)
	if !ok {
		t.Fatalf("bridged pod %s of an open namespace never connected once its object existed", open.ref())
	}
	t.Logf("bridged pod object reported → first connection: %v", connected.Sub(start))
}
