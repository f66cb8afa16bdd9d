package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

// servedPorts are the ports every pod and the external host answer on,
// TCP and UDP, IPv4 and IPv6: an echo of each line or datagram.
var servedPorts = []int{80, 81, 8080, 9000, 9005, 9011}

// serve starts the echo servers in an endpoint's namespace.
func (w *world) serve(p *pod) error {
	for _, port := range servedPorts {
		srv, err := podnet.Netns(p.netns).ServeEcho(port)
		if err != nil {
			return fmt.Errorf("serve in %s: %w", p.name, err)
		}
		w.onTeardown(func() { srv.Close() })
		p.closers = append(p.closers, srv)
	}
	return nil
}

// probe is one connection attempt and its expected outcome.
type probe struct {
	text     string
	from, to string // "ns/pod", "ext", "ext-hi", or a node name
	port     int
	udp      bool
	v6       bool
	pass     bool
	srcPort  int // 0: any
}

// parseProbe reads "FROM -> TO PORT/PROTO pass|drop", PROTO one of tcp,
// udp, tcp6, udp6.
func parseProbe(s string) (probe, error) {
	f := strings.Fields(s)
	if len(f) != 5 || f[1] != "->" {
		return probe{}, fmt.Errorf("probe %q: want \"FROM -> TO PORT/PROTO pass|drop\"", s)
	}
	p := probe{text: s, from: f[0], to: f[2]}
	portText, proto, ok := strings.Cut(f[3], "/")
	port, err := strconv.Atoi(portText)
	if !ok || err != nil || port < 1 || port > 65535 {
		return probe{}, fmt.Errorf("probe %q: bad port %q", s, f[3])
	}
	p.port = port
	switch proto {
	case "tcp":
	case "udp":
		p.udp = true
	case "tcp6":
		p.v6 = true
	case "udp6":
		p.udp, p.v6 = true, true
	default:
		return probe{}, fmt.Errorf("probe %q: protocol %q: want tcp, udp, tcp6 or udp6", s, proto)
	}
	switch f[4] {
	case "pass":
		p.pass = true
	case "drop":
	default:
		return probe{}, fmt.Errorf("probe %q: outcome %q: want pass or drop", s, f[4])
	}
	return p, nil
}

func mustProbes(t testing.TB, texts ...string) []probe {
	t.Helper()
	out := make([]probe, len(texts))
	for i, s := range texts {
		p, err := parseProbe(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}

// endpoint resolves a probe's end: its namespace, and its address in the
// family asked for.
func (w *world) endpoint(name string, v6 bool) (netnsName string, addr netip.Addr, err error) {
	switch name {
	case "ext", "ext-hi":
		if v6 {
			return "", netip.Addr{}, fmt.Errorf("%s has no IPv6 address", name)
		}
		a := extIP
		if name == "ext-hi" {
			a = extHiIP
		}
		return w.ext.netns, netip.MustParseAddr(a), nil
	}
	if ref, ok := strings.CutPrefix(name, "svc/"); ok {
		addr, err := w.clusterIP(ref, v6)
		return "", addr, err // a Service is only ever a destination
	}
	if n, ok := w.nodes[name]; ok {
		if v6 {
			return "", netip.Addr{}, fmt.Errorf("node %s has no IPv6 source in these tests", name)
		}
		return n.netns, netip.MustParseAddr(n.net.gateway4()), nil
	}
	w.mu.Lock()
	p, ok := w.pods[name]
	w.mu.Unlock()
	if !ok {
		return "", netip.Addr{}, fmt.Errorf("no endpoint %q", name)
	}
	if v6 {
		return p.netns, p.v6, nil
	}
	return p.netns, p.v4, nil
}

// run makes the probe's connection once: nil if it passed (the echo came
// back), a timeout error if it was dropped, another error otherwise.
func (w *world) run(p probe, timeout time.Duration) error {
	srcNS, srcAddr, err := w.endpoint(p.from, p.v6)
	if err != nil {
		return err
	}
	_, dstAddr, err := w.endpoint(p.to, p.v6)
	if err != nil {
		return err
	}
	// Bind the source address only where a namespace has several.
	var local net.Addr
	if p.from == "ext-hi" || p.srcPort != 0 {
		if p.udp {
			local = &net.UDPAddr{IP: srcAddr.AsSlice(), Port: p.srcPort}
		} else {
			local = &net.TCPAddr{IP: srcAddr.AsSlice(), Port: p.srcPort}
		}
	}
	network := "tcp"
	if p.udp {
		network = "udp"
	}
	var c net.Conn
	err = podnet.Netns(srcNS).Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: local}
		var err error
		c, err = d.Dial(network, netip.AddrPortFrom(dstAddr, uint16(p.port)).String())
		return err
	})
	if err != nil {
		return err
	}
	if tc, ok := c.(*net.TCPConn); ok && p.srcPort != 0 {
		// Close with a reset: no TIME_WAIT, so the next probe can use
		// the same tuple.
		tc.SetLinger(0)
	}
	defer c.Close()
	return echo(c, timeout)
}

// echo sends a line on c and waits for it to come back.
func echo(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	msg := fmt.Sprintf("ping %d\n", time.Now().UnixNano())
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("echo %q, sent %q", got, msg)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// outcome describes a probe's result against its expectation; "" when
// it matched.
func outcome(p probe, err error) string {
	switch {
	case p.pass && err == nil, !p.pass && isTimeout(err):
		return ""
	case p.pass:
		return fmt.Sprintf("%s: dropped or failed: %v", p.text, err)
	case err == nil:
		return fmt.Sprintf("%s: passed", p.text)
	}
	return fmt.Sprintf("%s: failed without a timeout (not a drop): %v", p.text, err)
}

// probeTimeout is how long a connection may take before it counts as
// dropped. On a veth an answer takes well under a millisecond; the margin
// is for a loaded machine.
const probeTimeout = 300 * time.Millisecond

// round runs every probe once, concurrently, and returns the mismatches.
func (w *world) round(probes []probe) []string {
	res := make([]string, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = outcome(p, w.run(p, probeTimeout))
		}()
	}
	wg.Wait()
	var bad []string
	for _, r := range res {
		if r != "" {
			bad = append(bad, r)
		}
	}
	return bad
}

// expect waits until one round of probes matches every expectation (the
// enforcers have caught up with the API server), failing t with the last
// round's mismatches after within.
func (w *world) expect(t testing.TB, within time.Duration, probes []probe) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	var first []string
	for rounds := 1; ; rounds++ {
		bad := w.round(probes)
		if rounds == 1 {
			first = bad
		}
		if len(bad) == 0 {
			if rounds > 1 {
				t.Logf("all %d probes matched after %d rounds (%v); the first round disagreed on:\n  %s",
					len(probes), rounds, time.Since(start).Round(time.Millisecond), strings.Join(first, "\n  "))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v, %d of %d probes disagree:\n  %s", within, len(bad), len(probes), strings.Join(bad, "\n  "))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// prober runs rounds of probes without pause until stopped, collecting
// every outcome that was not the one expected.
type prober struct {
	stop, done chan struct{}
	mu         sync.Mutex
	misses     []string
	attempts   int
}

// probeContinuously starts a prober over probes.
func (w *world) probeContinuously(probes []probe) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			misses := w.round(probes)
			p.mu.Lock()
			p.misses = append(p.misses, misses...)
			p.attempts += len(probes)
			p.mu.Unlock()
		}
	}()
	return p
}

// finish stops the prober, waits for its round, and returns the misses
// and how many attempts were made. It may be called more than once.
func (p *prober) finish() (misses []string, attempts int) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.misses, p.attempts
}
