package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/enforcer"
)

const denyIngressY = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "y", name: deny-ingress}
spec: {podSelector: {}, policyTypes: [Ingress]}
`

const ybIngressFromXA = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "y", name: b-from-x-a}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: "x"}}, podSelector: {matchLabels: {app: a}}}]
    ports: [{protocol: TCP, port: 80}, {protocol: UDP, port: 80}]
`

// A withdrawn allow (allow, on top of base) stops the Service flows it
// allowed x/a to y/svc-b: new connections through the ClusterIP, TCP and
// UDP, and the next packet of an established one, within a second.
func testServiceRevocation(t *testing.T, w *world, base, allow string) {
	ctx := context.Background()
	withPolicies(t, w, base)
	objs, err := w.apply(ctx, allow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.remove(ctx, objs) })
	w.expect(t, 10*time.Second, mustProbes(t, "x/a -> svc/y/svc-b 80/tcp pass", "x/a -> svc/y/svc-b 80/udp pass"))

	conn := w.dialTCP(t, "x/a", "svc/y/svc-b", 80)
	if err := echo(conn, time.Second); err != nil {
		t.Fatalf("established connection through the ClusterIP while allowed: %v", err)
	}
	if err := w.remove(ctx, objs); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	var established time.Duration
	for {
		began := time.Now()
		if err := echo(conn, 100*time.Millisecond); err != nil {
			if !isTimeout(err) {
				t.Fatalf("established connection failed without a drop: %v", err)
			}
			established = began.Sub(removed)
			break
		}
		if time.Since(removed) > 5*time.Second {
			t.Fatal("the established connection through the ClusterIP still works 5s after its allow was withdrawn")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, text := range []string{"x/a -> svc/y/svc-b 80/tcp drop", "x/a -> svc/y/svc-b 80/udp drop"} {
		d, err := w.until(mustProbes(t, text)[0], removed, 5*time.Second)
		if err != nil {
			t.Fatalf("allow withdrawn: %v", err)
		}
		t.Logf("allow withdrawn → %s after %v", text, d.Round(time.Millisecond))
		if d > time.Second {
			t.Errorf("%s took %v after the allow was withdrawn, want < 1s", text, d)
		}
	}
	t.Logf("allow withdrawn → established connection through the ClusterIP dropped after %v", established.Round(time.Millisecond))
	if established > time.Second {
		t.Errorf("revoking the established Service flow took %v, want < 1s", established)
	}
}

// A connection to a ClusterIP that egress refuses is recorded against the
// backend kube-proxy chose (its pod, address and port) and names the
// Service address the pod sent to; an allowed one names the backend and
// the allowing rule.
func testServiceFlowRecords(t *testing.T, w *world) {
	needServiceCIDR(t, w)
	withPolicies(t, w, denyEgressX+"---\n"+xaEgressToYB)
	w.expect(t, 10*time.Second, mustProbes(t, "x/a -> svc/y/svc-c 80/tcp drop", "x/a -> svc/y/svc-b 80/tcp pass"))
	// Records of connections the first rounds let through before the
	// policies were enforced say "tracked flow revoked": judge a fresh one.
	since := time.Now()
	w.expect(t, time.Second, mustProbes(t, "x/a -> svc/y/svc-c 80/tcp drop", "x/a -> svc/y/svc-b 80/tcp pass"))
	node1 := w.nodes["node1"].enforcer
	yb, yc := w.pods["y/b"], w.pods["y/c"]
	svcB, err := w.clusterIP("y/svc-b", false)
	if err != nil {
		t.Fatal(err)
	}
	svcC, err := w.clusterIP("y/svc-c", false)
	if err != nil {
		t.Fatal(err)
	}

	drop, err := node1.waitFlow(15*time.Second, func(r enforcer.FlowRecord) bool {
		return !r.Time.Before(since) && r.Verdict == "dropped" && r.Pod == "x/a" && r.Direction == "egress" &&
			(r.Destination.IP == yc.v4.String() || r.Destination.IP == svcC.String())
	})
	if err != nil {
		t.Fatal(err)
	}
	line, err := json.Marshal(drop)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the drop's flow record: %s", line)
	if drop.Node != "node1" || drop.Protocol != "TCP" || !reflect.DeepEqual(drop.IsolatedBy, []string{"x/a-to-y-b", "x/deny-egress"}) {
		t.Errorf("drop record node %q protocol %q isolatedBy %v, want node1, TCP, [x/a-to-y-b x/deny-egress]", drop.Node, drop.Protocol, drop.IsolatedBy)
	}
	if d := drop.Destination; d.IP != yc.v4.String() || d.Namespace != "y" || d.Pod != "c" || d.Port != 80 || d.Entity != "pod" || d.Labels["app"] != "c" {
		t.Errorf("drop destination %+v: want the backend pod y/c at %s:80, not the ClusterIP %s", d, yc.v4, svcC)
	}
	if s := drop.Source; s.Namespace != "x" || s.Pod != "a" {
		t.Errorf("drop source %+v: want pod x/a", s)
	}
	service := fmt.Sprintf("%s:80", svcC)
	if got := recordService(line); got != service {
		t.Errorf("drop record's service %q, want the address x/a sent to, %s", got, service)
	}
	if want := "egress of x/a to backend y/c of service " + service + " isolated by x/a-to-y-b, x/deny-egress; no rule allows"; drop.Reason != want {
		t.Errorf("drop reason %q, want %q", drop.Reason, want)
	}

	fwd, err := node1.waitFlow(15*time.Second, func(r enforcer.FlowRecord) bool {
		return !r.Time.Before(since) && r.Verdict == "forwarded" && r.Pod == "x/a" && r.Direction == "egress" && r.Policy != "" &&
			r.Destination.Port == 80
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := fwd.Destination; d.IP != yb.v4.String() || d.Namespace != "y" || d.Pod != "b" {
		t.Errorf("forwarded destination %+v: want the backend pod y/b at %s", d, yb.v4)
	}
	if fwd.Policy != "x/a-to-y-b" || fwd.Rule != "egress rule 0 (peer 0)" {
		t.Errorf("forwarded record names policy %q rule %q, want x/a-to-y-b egress rule 0 (peer 0)", fwd.Policy, fwd.Rule)
	}
	if line, err := json.Marshal(fwd); err == nil {
		if got, want := recordService(line), fmt.Sprintf("%s:80", svcB); got != want {
			t.Errorf("forwarded record's service %q, want %s", got, want)
		}
	}
}

// recordService reads a flow record's "service" field from its JSON, as
// a consumer of the flow log does.
func recordService(line []byte) string {
	var r struct {
		Service string `json:"service"`
	}
	json.Unmarshal(line, &r)
	return r.Service
}
