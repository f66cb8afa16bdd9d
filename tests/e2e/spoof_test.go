package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/enforcer"
	"github.com/palisade-dev/palisade/internal/testkit/frames"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

const yAOnlyFromXB = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "y", name: a-only-from-x-b}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: b}}, namespaceSelector: {matchLabels: {ns: "x"}}}]
`

const dropSpoofed = `palisade_enforcer_datapath_packets_total{counter="drop_spoofed"}`

// Pods of namespace z (no policy: their egress is open), on y/a's node
// and on the other one, write raw frames onto their interfaces: TCP SYNs
// and UDP datagrams with the address of x/b, the one pod y/a's ingress
// allows, over IPv4 and IPv6, and from an address no pod holds. Nothing of
// it reaches y/a's namespace (a packet socket inside it sees x/b's own
// packets, so it is not blind); each node's enforcer counts the drops and
// writes a flow record naming the attacking pod; x/b still connects.
func TestForgedSourcesNeverReachTheTarget(t *testing.T) {
	w := needWorld(t)
	ctx := context.Background()
	withPolicies(t, w, yAOnlyFromXB)
	if err := w.settled(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	target, legit := w.pods["y/a"], w.pods["x/b"]
	attackers := []*pod{w.pods["z/a"], w.pods["z/c"]}
	w.mu.Unlock()
	w.expect(t, 2*time.Second, mustProbes(t, "x/b -> y/a 80/tcp pass", "z/a -> y/a 80/tcp drop", "z/c -> y/a 80/udp6 drop"))

	capture, err := frames.Listen(podnet.Netns(target.netns).Path(), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	before := map[*pod]float64{}
	for _, x := range attackers {
		m, err := x.node.enforcer.metrics()
		if err != nil {
			t.Fatal(err)
		}
		before[x] = m[dropSpoofed]
	}

	type forged struct {
		what string
		src  netip.Addr
	}
	var sent []forged
	for i, x := range attackers {
		mac, err := frames.HardwareAddr(podnet.Netns(x.netns).Path(), "eth0")
		if err != nil {
			t.Fatal(err)
		}
		gw, err := frames.HardwareAddr(podnet.Netns(x.node.netns).Path(), x.hostIf)
		if err != nil {
			t.Fatal(err)
		}
		unused4, unused6 := x.node.net.podAddrs(250)
		sport := uint16(41000 + 10*i)
		for _, f := range []struct {
			what  string
			src   netip.Addr
			frame []byte
		}{
			{"TCP SYN as x/b", legit.v4, frames.TCPSYN(gw, mac, legit.v4, target.v4, sport, 80)},
			{"UDP as x/b", legit.v4, frames.UDP(gw, mac, legit.v4, target.v4, sport+1, 80, []byte("forged\n"))},
			{"TCP SYN from an unused address", unused4, frames.TCPSYN(gw, mac, unused4, target.v4, sport+2, 80)},
			{"IPv6 TCP SYN as x/b", legit.v6, frames.TCPSYN(gw, mac, legit.v6, target.v6, sport+3, 80)},
			{"IPv6 UDP as x/b", legit.v6, frames.UDP(gw, mac, legit.v6, target.v6, sport+4, 80, []byte("forged\n"))},
			{"IPv6 UDP from an unused address", unused6, frames.UDP(gw, mac, unused6, target.v6, sport+5, 80, []byte("forged\n"))},
		} {
			if err := frames.Send(podnet.Netns(x.netns).Path(), "eth0", f.frame); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, forged{fmt.Sprintf("%s from %s", f.what, x.ref()), f.src})
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, f := range sent {
		if n := capture.Count(f.src, 80); n != 0 {
			t.Errorf("%s: %d packets reached %s's namespace, want none", f.what, n, target.ref())
		}
	}

	for _, x := range attackers {
		m, err := x.node.enforcer.metrics()
		if err != nil {
			t.Fatal(err)
		}
		if n := m[dropSpoofed] - before[x]; n < 6 {
			t.Errorf("%s's enforcer counted %v forged packets dropped, want at least 6", x.node.net.name, n)
		}
		r, err := x.node.enforcer.waitFlow(5*time.Second, func(r enforcer.FlowRecord) bool {
			return r.Pod == x.ref() && r.Verdict == "dropped" && r.Source.IP == legit.v4.String() && strings.Contains(r.Reason, "spoofed source")
		})
		if err != nil {
			t.Error(err)
			continue
		}
		if r.Direction != "egress" || r.Destination.IP != target.v4.String() || !strings.Contains(r.Reason, "x/b's") {
			t.Errorf("flow record %+v: want %s's egress to %s, the forged address named as x/b's", r, x.ref(), target.ref())
		}
	}

	w.expect(t, 2*time.Second, mustProbes(t, "x/b -> y/a 80/tcp pass", "x/b -> y/a 80/udp6 pass"))
	if capture.Count(legit.v4, 80) == 0 || capture.Count(legit.v6, 80) == 0 {
		t.Errorf("x/b's own packets were not seen in %s's namespace: the capture is blind", target.ref())
	}
}
