package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/enforcer"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

const allowYBToXA = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-from-y-b}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: "y"}}, podSelector: {matchLabels: {app: b}}}]
    ports: [{protocol: TCP, port: 80}]
`

// until repeats p with short attempts until its outcome is want and
// returns when the first such attempt started, measured from start.
func (w *world) until(p probe, start time.Time, within time.Duration) (time.Duration, error) {
	const attempt = 50 * time.Millisecond
	for {
		began := time.Now()
		err := w.run(p, attempt)
		if p.pass && err == nil || !p.pass && isTimeout(err) {
			return began.Sub(start), nil
		}
		if time.Since(start) > within {
			return 0, fmt.Errorf("%s: not so within %v (last: %v)", p.text, within, err)
		}
		if p.pass {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// Adding an allow opens the path, removing it closes it: the time from the
// API server's answer to the first packet that sees the new verdict.
func TestPolicyChangeToEnforced(t *testing.T) {
	w := needWorld(t)
	ctx := context.Background()
	withPolicies(t, w, denyIngressX)
	pass := mustProbes(t, "y/b -> x/a 80/tcp pass")[0]
	drop := mustProbes(t, "y/b -> x/a 80/tcp drop")[0]
	w.expect(t, 10*time.Second, []probe{drop})
	before, _ := w.nodes["node1"].enforcer.metrics()

	var adds, removes []time.Duration
	for range 5 {
		objs, err := w.apply(ctx, allowYBToXA)
		if err != nil {
			t.Fatal(err)
		}
		applied := time.Now()
		d, err := w.until(pass, applied, 5*time.Second)
		if err != nil {
			w.remove(ctx, objs)
			t.Fatalf("allow added: %v", err)
		}
		adds = append(adds, d)
		if err := w.remove(ctx, objs); err != nil {
			t.Fatal(err)
		}
		removed := time.Now()
		d, err = w.until(drop, removed, 5*time.Second)
		if err != nil {
			t.Fatalf("allow removed: %v", err)
		}
		removes = append(removes, d)
	}
	slices.Sort(adds)
	slices.Sort(removes)
	t.Logf("policy added → first allowed packet: min %v, median %v, max %v (5 runs)", adds[0].Round(time.Millisecond), adds[2].Round(time.Millisecond), adds[4].Round(time.Millisecond))
	t.Logf("policy removed → first dropped connection: min %v, median %v, max %v (5 runs)", removes[0].Round(time.Millisecond), removes[2].Round(time.Millisecond), removes[4].Round(time.Millisecond))
	if after, err := w.nodes["node1"].enforcer.metrics(); err == nil {
		const sum, count = "palisade_enforcer_change_to_enforced_seconds_sum", "palisade_enforcer_change_to_enforced_seconds_count"
		if n := after[count] - before[count]; n > 0 {
			t.Logf("node1's own change → enforced histogram over these changes: %d syncs, mean %v", int(n),
				time.Duration((after[sum]-before[sum])/n*float64(time.Second)).Round(time.Millisecond))
		}
	}
	if removes[4] > time.Second {
		t.Errorf("a withdrawn allow took %v to stop new connections, want < 1s", removes[4])
	}
	if adds[4] > 2*time.Second {
		t.Errorf("an added allow took %v to let connections through, want < 2s", adds[4])
	}
}

// A withdrawn allow stops the connections it allowed, established ones
// included, within a second. Both directions of x are isolated: where the
// server's egress is open, its retransmissions are new egress flows that
// policy allows, and the client's packets pass as their replies (see
// TestRevokedConnectionRevivedThroughOpenReverse).
func TestRevocationWithinOneSecond(t *testing.T) {
	w := needWorld(t)
	ctx := context.Background()
	withPolicies(t, w, denyIngressX+"---\n"+denyEgressX)
	objs, err := w.apply(ctx, allowYBToXA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.remove(ctx, objs) })
	w.expect(t, 10*time.Second, mustProbes(t, "y/b -> x/a 80/tcp pass", "y/a -> x/a 80/tcp drop"))

	conn := w.dialTCP(t, "y/b", "x/a", 80)
	if err := echo(conn, time.Second); err != nil {
		t.Fatalf("established connection while allowed: %v", err)
	}
	if err := w.remove(ctx, objs); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	var stopped time.Duration
	for {
		began := time.Now()
		if err := echo(conn, 100*time.Millisecond); err != nil {
			if !isTimeout(err) {
				t.Fatalf("established connection failed without a drop: %v", err)
			}
			stopped = began.Sub(removed)
			break
		}
		if time.Since(removed) > 5*time.Second {
			t.Fatal("the established connection still works 5s after its allow was withdrawn")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("allow withdrawn → established connection's next packet dropped after %v", stopped.Round(time.Millisecond))
	if stopped > time.Second {
		t.Errorf("revocation took %v, want < 1s", stopped)
	}
	w.expect(t, time.Second, mustProbes(t, "y/b -> x/a 80/tcp drop"))
	// Retransmissions go on for seconds: none may revive the connection.
	time.Sleep(1500 * time.Millisecond)
	if err := echo(conn, 300*time.Millisecond); !isTimeout(err) {
		t.Errorf("the revoked connection came back: %v", err)
	}
}

// dialTCP opens a TCP connection from one pod to another, closed at the
// end of the test.
func (w *world) dialTCP(t testing.TB, from, to string, port int) net.Conn {
	t.Helper()
	srcNS, _, err := w.endpoint(from, false)
	if err != nil {
		t.Fatal(err)
	}
	_, dst, err := w.endpoint(to, false)
	if err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	err = podnet.Netns(srcNS).Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(dst, uint16(port)).String(), time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s → %s:%d: %v", from, to, port, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A deleted pod's address, reused by a pod of another identity, carries
// none of the old pod's allows: not while the new pod's network exists
// before its API object, not after, and not through a tracked flow with
// the old connection's very tuple.
func TestAddressReuseGetsNoStaleAllow(t *testing.T) {
	w := needWorld(t)
	ctx := context.Background()
	withPolicies(t, w, denyIngressX+`---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: b-from-trusted}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: trusted}}}]
    ports: [{protocol: TCP, port: 80}]
`)
	old, err := w.addPod(ctx, "y", "old", "node1", "trusted")
	if err != nil {
		t.Fatal(err)
	}
	const sport = 40123
	oldTuple := mustProbes(t, "y/old -> x/b 80/tcp pass")[0]
	oldTuple.srcPort = sport
	w.expect(t, 10*time.Second, []probe{oldTuple, mustProbes(t, "y/a -> x/b 80/tcp drop")[0]})

	if err := w.deletePod(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := w.settled(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// The CNI hands the address to a pod of namespace z labelled
	// untrusted: first its network, then (a moment later) its object.
	reuser, err := w.podNetwork("z", "reuser", old.node, old.v4, old.v6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.deletePod(ctx, reuser); err != nil {
			t.Error(err)
		}
	})
	probes := mustProbes(t, "z/reuser -> x/b 80/tcp drop", "z/reuser -> x/b 80/tcp6 drop", "z/reuser -> x/b 80/tcp drop")
	probes[2].srcPort = sport
	pr := w.probeContinuously(probes)
	defer pr.finish()
	time.Sleep(300 * time.Millisecond)
	if err := w.podObject(ctx, reuser, "untrusted"); err != nil {
		t.Fatal(err)
	}
	if err := w.settled(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	leaks, attempts := pr.finish()
	t.Logf("%d connection attempts from the reusing pod, before and after its object existed", attempts)
	if len(leaks) > 0 {
		t.Errorf("the reused address got through:\n  %s", strings.Join(leaks, "\n  "))
	}
	w.expect(t, time.Second, mustProbes(t, "z/reuser -> x/a 80/tcp drop", "z/reuser -> y/a 80/tcp pass"))
}

// SIGKILL the enforcer under continuous probing, wait, restart it: not one
// denied connection gets through while it is gone or starting, and an
// established allowed connection keeps working throughout.
func TestEnforcerKilledAndRestarted(t *testing.T) {
	w := needWorld(t)
	withPolicies(t, w, denyIngressX+"---\n"+allowYBToXA)
	w.expect(t, 10*time.Second, mustProbes(t, "y/b -> x/a 80/tcp pass", "y/a -> x/a 80/tcp drop"))
	conn := w.dialTCP(t, "y/b", "x/a", 80)
	if err := echo(conn, time.Second); err != nil {
		t.Fatal(err)
	}

	denied := mustProbes(t, "y/a -> x/a 80/tcp drop", "z/c -> x/a 80/udp drop", "x/b -> x/a 80/tcp6 drop")
	allowed := mustProbes(t, "y/b -> x/a 80/tcp pass")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var leaks, newFailures, estFailures []string
	var deniedN, allowedN, echoes atomic.Int64
	loop := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				f()
			}
		}()
	}
	// Denied attempts give up after 100ms (a drop needs no more to
	// show): any that connects is a leak.
	for _, p := range denied {
		for range 2 {
			loop(func() {
				err := w.run(p, 100*time.Millisecond)
				deniedN.Add(1)
				if !isTimeout(err) {
					mu.Lock()
					leaks = append(leaks, outcome(p, err))
					mu.Unlock()
				}
			})
		}
	}
	loop(func() {
		bad := w.round(allowed)
		allowedN.Add(1)
		mu.Lock()
		newFailures = append(newFailures, bad...)
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	})
	loop(func() {
		if err := echo(conn, time.Second); err != nil {
			mu.Lock()
			estFailures = append(estFailures, err.Error())
			mu.Unlock()
		}
		echoes.Add(1)
		time.Sleep(10 * time.Millisecond)
	})

	e := w.nodes["node1"].enforcer
	time.Sleep(300 * time.Millisecond)
	e.kill()
	killed := time.Now()
	time.Sleep(700 * time.Millisecond)
	if err := e.start(); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	restarted := time.Now()
	if err := e.waitReady(30 * time.Second); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	ready := time.Since(restarted)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	t.Logf("enforcer down for %v, ready %v after its restart; %d denied attempts, %d new allowed connections, %d echoes on the established one",
		restarted.Sub(killed).Round(time.Millisecond), ready.Round(time.Millisecond), deniedN.Load(), allowedN.Load(), echoes.Load())
	if len(leaks) > 0 {
		t.Errorf("%d denied connections got through around the restart:\n  %s", len(leaks), strings.Join(leaks, "\n  "))
	}
	if len(estFailures) > 0 {
		t.Errorf("the established allowed connection failed %d times around the restart: %s", len(estFailures), estFailures[0])
	}
	if len(newFailures) > 0 {
		t.Errorf("%d new allowed connections failed around the restart:\n  %s", len(newFailures), strings.Join(newFailures, "\n  "))
	}
	// The restarted enforcer follows changes again.
	w.expect(t, 10*time.Second, mustProbes(t, "y/b -> x/a 80/tcp pass", "y/a -> x/a 80/tcp drop"))
}

// In audit mode would-drops pass and are reported.
func TestAuditMode(t *testing.T) {
	w := needWorld(t)
	ctx := context.Background()
	withPolicies(t, w, denyIngressX)
	w.expect(t, 10*time.Second, mustProbes(t, "y/a -> x/a 80/tcp drop"))
	if err := w.setEnforcement(ctx, "x", "audit"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.setEnforcement(ctx, "x", ""); err != nil {
			t.Error(err)
		}
		w.expect(t, 10*time.Second, mustProbes(t, "y/a -> x/a 80/tcp drop"))
	})
	since := time.Now()
	w.expect(t, 10*time.Second, mustProbes(t, "y/a -> x/a 80/tcp pass", "y/c -> x/b 80/udp pass", "z/a -> x/c 8080/tcp pass"))
	// A new connection's record; a straggler of a connection the switch
	// caught mid-way (a FIN or RST of no tracked flow) is reported too,
	// with its own reason.
	want := "ingress of x/a isolated by x/deny-ingress; no rule allows (audit mode: passed, reported)"
	if _, err := w.nodes["node1"].enforcer.waitFlow(15*time.Second, func(r enforcer.FlowRecord) bool {
		if r.Time.Before(since.Add(-time.Second)) || r.Verdict != "audit" || r.Pod != "x/a" || r.Source.Pod != "a" || r.Source.Namespace != "y" || r.Destination.Port != 80 {
			return false
		}
		return r.Reason == want
	}); err != nil {
		t.Fatalf("audit record %q: %v", want, err)
	}
	if _, err := w.nodes["node2"].enforcer.waitFlow(15*time.Second, func(r enforcer.FlowRecord) bool {
		return !r.Time.Before(since.Add(-time.Second)) && r.Verdict == "audit" && r.Pod == "x/c" && r.Source.Pod == "a" && r.Source.Namespace == "z"
	}); err != nil {
		t.Errorf("node2: %v", err)
	}
}

// A drop is one flow record naming both pods, their identity labels, the
// port and every policy that isolates the destination; an allowed
// connection's record names the allowing policy and rule.
func TestFlowRecords(t *testing.T) {
	w := needWorld(t)
	withPolicies(t, w, denyIngressX+"---\n"+allowYBToXA)
	w.expect(t, 10*time.Second, mustProbes(t, "y/a -> x/a 80/tcp drop", "y/b -> x/a 80/tcp pass"))
	// A fresh round: the one that first matched may have only ended
	// connections opened before the policies.
	since := time.Now()
	w.expect(t, 10*time.Second, mustProbes(t, "y/a -> x/a 80/tcp drop", "y/b -> x/a 80/tcp pass"))
	node1 := w.nodes["node1"].enforcer
	xa, ya := w.pods["x/a"], w.pods["y/a"]

	// A new connection's drop: stragglers of connections the policies
	// revoked mid-way are reported too, with their own reasons.
	drop, err := node1.waitFlow(15*time.Second, func(r enforcer.FlowRecord) bool {
		return !r.Time.Before(since) && r.Verdict == "dropped" && r.Pod == "x/a" && r.Source.IP == ya.v4.String() && r.Destination.Port == 80 &&
			strings.HasSuffix(r.Reason, "; no rule allows")
	})
	if err != nil {
		t.Fatal(err)
	}
	if line, err := json.Marshal(drop); err == nil {
		t.Logf("the drop's flow record: %s", line)
	}
	want := enforcer.FlowRecord{
		Node: "node1", Verdict: "dropped", Pod: "x/a", Direction: "ingress", Protocol: "TCP",
		Reason:     "ingress of x/a isolated by x/a-from-y-b, x/deny-ingress; no rule allows",
		IsolatedBy: []string{"x/a-from-y-b", "x/deny-ingress"},
	}
	got := drop
	got.Time, got.Source, got.Destination = time.Time{}, enforcer.FlowEndpoint{}, enforcer.FlowEndpoint{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("drop record\n %+v\nwant\n %+v", got, want)
	}
	if s := drop.Source; s.Namespace != "y" || s.Pod != "a" || s.Entity != "pod" || s.Labels["app"] != "a" || s.Labels["env"] != "dev" || s.Port == 0 {
		t.Errorf("drop source %+v: want pod y/a with its identity labels and a port", s)
	}
	if d := drop.Destination; d.Namespace != "x" || d.Pod != "a" || d.IP != xa.v4.String() || d.Port != 80 || d.Labels["app"] != "a" {
		t.Errorf("drop destination %+v: want pod x/a at %s:80", d, xa.v4)
	}

	fwd, err := node1.waitFlow(15*time.Second, func(r enforcer.FlowRecord) bool {
		// Records from before the policies were enforced say "not
		// isolated".
		return !r.Time.Before(since) && r.Verdict == "forwarded" && r.Pod == "x/a" && r.Direction == "ingress" && r.Source.Pod == "b" && r.Source.Namespace == "y" &&
			r.Policy != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if fwd.Policy != "x/a-from-y-b" || fwd.Rule != "ingress rule 0 (peer 0)" || fwd.Reason != "ingress of x/a allowed by x/a-from-y-b ingress rule 0 (peer 0)" {
		t.Errorf("forwarded record names policy %q rule %q reason %q", fwd.Policy, fwd.Rule, fwd.Reason)
	}
}

// A connection between nodes is judged at both ends: egress on the
// source's node, ingress on the destination's, each by its own enforcer.
func TestCrossNodeJudgedAtBothEnds(t *testing.T) {
	w := needWorld(t)
	ctx := context.Background()
	node1, node2 := w.nodes["node1"].enforcer, w.nodes["node2"].enforcer
	xa := w.pods["x/a"]
	after := func(since time.Time, f func(enforcer.FlowRecord) bool) func(enforcer.FlowRecord) bool {
		return func(r enforcer.FlowRecord) bool { return !r.Time.Before(since) && f(r) }
	}
	fromXAToXC := func(r enforcer.FlowRecord) bool {
		return r.Source.IP == xa.v4.String() && r.Destination.Pod == "c" && r.Destination.Namespace == "x" && r.Destination.Port == 8080
	}
	const cIngress = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: c-from-b}
spec:
  podSelector: {matchLabels: {app: c}}
  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]
`
	const aEgress = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-to-y}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {ns: "y"}}}]}]
`
	step := func(name, manifests string, probes []string, check func(since time.Time)) {
		t.Run(name, func(t *testing.T) {
			objs, err := w.apply(ctx, manifests)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				w.remove(ctx, objs)
				if err := w.settled(ctx, 10*time.Second); err != nil {
					t.Error(err)
				}
			}()
			w.expect(t, 10*time.Second, mustProbes(t, probes...))
			// The round that first matched may have ended a connection
			// opened before the policy (its later packets dropped, no SYN
			// judged): a fresh round opens new ones, whose records count.
			since := time.Now()
			w.expect(t, 10*time.Second, mustProbes(t, probes...))
			check(since)
		})
	}

	step("ingress denies on the destination's node", cIngress,
		[]string{"x/a -> x/c 8080/tcp drop", "x/b -> x/c 8080/tcp pass"},
		func(since time.Time) {
			if _, err := node2.waitFlow(15*time.Second, after(since, func(r enforcer.FlowRecord) bool {
				return fromXAToXC(r) && r.Verdict == "dropped" && r.Pod == "x/c" && r.Direction == "ingress" &&
					r.Reason == "ingress of x/c isolated by x/c-from-b; no rule allows"
			})); err != nil {
				t.Errorf("node2 did not record its ingress drop: %v", err)
			}
			if _, err := node1.waitFlow(15*time.Second, after(since, func(r enforcer.FlowRecord) bool {
				return fromXAToXC(r) && r.Verdict == "forwarded" && r.Pod == "x/a" && r.Reason == "egress of x/a not isolated"
			})); err != nil {
				t.Errorf("node1 did not record passing the egress: %v", err)
			}
		})
	step("egress denies on the source's node", aEgress,
		[]string{"x/a -> x/c 8080/tcp drop", "x/a -> y/c 80/tcp pass", "x/b -> x/c 8080/tcp pass"},
		func(since time.Time) {
			if _, err := node1.waitFlow(15*time.Second, after(since, func(r enforcer.FlowRecord) bool {
				return fromXAToXC(r) && r.Verdict == "dropped" && r.Pod == "x/a" && r.Direction == "egress" &&
					r.Reason == "egress of x/a isolated by x/a-to-y; no rule allows"
			})); err != nil {
				t.Errorf("node1 did not record its egress drop: %v", err)
			}
		})
	step("both ends allow", cIngress+"---\n"+aEgress+`---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: a-to-c}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: c}}}], ports: [{port: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: c-from-a}
spec:
  podSelector: {matchLabels: {app: c}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 8080}]}]
`,
		[]string{"x/a -> x/c 8080/tcp pass", "x/a -> x/c 80/tcp drop", "x/a -> x/c 8080/udp drop"},
		func(since time.Time) {
			for _, c := range []struct {
				e      *enforcerProc
				pod    string
				policy string
			}{{node1, "x/a", "x/a-to-c"}, {node2, "x/c", "x/c-from-a"}} {
				if _, err := c.e.waitFlow(15*time.Second, after(since, func(r enforcer.FlowRecord) bool {
					return fromXAToXC(r) && r.Verdict == "forwarded" && r.Pod == c.pod && r.Policy == c.policy
				})); err != nil {
					t.Errorf("no forwarded record of %s naming %s: %v", c.pod, c.policy, err)
				}
			}
		})
}
