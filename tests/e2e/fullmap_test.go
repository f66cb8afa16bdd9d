package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// manyPortsFromXB allows x/b into every pod of x on four ports: on node1
// (x/a, x/b) eight policy entries. It selects by the app label only, so
// no other pod's identity changes (a selector on a new label key would
// renumber every identity, and so touch every pod).
const manyPortsFromXB = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "x", name: many-ports-from-x-b}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: b}}}]
    ports: [{protocol: TCP, port: 80}, {protocol: TCP, port: 81}, {protocol: TCP, port: 82}, {protocol: TCP, port: 83}]
`

// A real policy change that overfills node1's policy map (a real enforcer
// process started with --map-policy just above what it holds): no allow
// appears, the pods it touched are isolated (their established
// connections cut), the others keep working; /readyz is unready,
// palisade_enforcer_sync_failing is 1 and the Node has a MapFull Event.
// Restarted with the compiled size, the enforcer adopts its pins and
// converges.
func TestFullPolicyMapFailsClosed(t *testing.T) {
	w := needWorld(t)
	ctx := context.Background()
	e := w.nodes["node1"].enforcer
	orig := slices.Clone(e.args)
	restart := func(args []string) {
		t.Helper()
		e.stop()
		e.args = args
		if err := e.start(); err != nil {
			t.Fatal(err)
		}
		if err := e.waitReady(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		e.stop()
		e.args = orig
		if err := e.start(); err != nil {
			t.Errorf("restart node1's enforcer with its usual flags: %v", err)
			return
		}
		if err := e.waitReady(30 * time.Second); err != nil {
			t.Error(err)
		}
	})

	m, err := e.metrics()
	if err != nil {
		t.Fatal(err)
	}
	held := int(m[`palisade_enforcer_map_entries{map="policy"}`])
	size := held + 2
	restart(append(slices.Clone(orig), "--map-policy="+strconv.Itoa(size)))
	w.expect(t, 10*time.Second, mustProbes(t, "y/a -> x/a 80/tcp pass", "y/b -> x/b 80/tcp pass"))
	conn := w.dialTCP(t, "y/a", "x/a", 80)
	if err := echo(conn, time.Second); err != nil {
		t.Fatal(err)
	}
	since := time.Now()

	withPolicies(t, w, manyPortsFromXB)
	if err := e.waitMetrics(10*time.Second, map[string]float64{
		`palisade_enforcer_sync_failing`:       1,
		`palisade_enforcer_isolated_endpoints`: 2, // x/a and x/b; node1's other pods are untouched
	}); err != nil {
		t.Fatalf("%v\n%s", err, e.logTail(20))
	}
	m, _ = e.metrics()
	if m[`palisade_enforcer_sync_errors_total{cause="map_full"}`] == 0 || m[`palisade_enforcer_map_fill_ratio{map="policy"}`] <= 1 {
		t.Errorf("map_full errors %v, policy fill ratio %v: want counted, above 1", m[`palisade_enforcer_sync_errors_total{cause="map_full"}`], m[`palisade_enforcer_map_fill_ratio{map="policy"}`])
	}
	// Nothing the failed State allows appears, and its pods are closed.
	for range 3 {
		if bad := w.round(mustProbes(t,
			"x/b -> x/a 80/tcp drop", "x/a -> x/b 80/tcp drop", // the allows that did not fit
			"y/a -> x/a 80/tcp drop", "z/a -> x/b 80/tcp drop", "x/a -> y/a 80/tcp drop", // isolated both ways
			"y/a -> z/a 80/tcp pass", "z/b -> y/b 80/tcp pass", // pods the change does not touch
		)); len(bad) > 0 {
			t.Errorf("with the policy map full:\n  %v", bad)
		}
	}
	if err := echo(conn, time.Second); err == nil {
		t.Error("the established connection into an isolated pod still echoes")
	}
	resp, err := http.Get("http://" + e.healthAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the sync failing: %d, want 503", resp.StatusCode)
	}
	if err := waitNodeEvent(ctx, w, "node1", "MapFull", since, 10*time.Second); err != nil {
		t.Error(err)
	}

	// Grown (the compiled size): the pinned state maps no longer match and
	// are replaced; the adopted links keep the closed ones until the
	// first Sync, which fits.
	restart(slices.Clone(orig))
	w.expect(t, 10*time.Second, mustProbes(t, "x/b -> x/a 80/tcp pass", "x/a -> x/b 80/tcp drop", "y/a -> x/a 80/tcp drop", "x/a -> y/a 80/tcp pass", "y/a -> z/a 80/tcp pass"))
	if err := e.waitMetrics(5*time.Second, map[string]float64{`palisade_enforcer_sync_failing`: 0, `palisade_enforcer_isolated_endpoints`: 0}); err != nil {
		t.Error(err)
	}
}

// waitNodeEvent waits for an events.k8s.io Event about a Node with the
// given reason, emitted after since.
func waitNodeEvent(ctx context.Context, w *world, node, reason string, since time.Time, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var list eventsv1.EventList
		if err := w.client.List(ctx, &list, client.InNamespace("default")); err != nil {
			return err
		}
		var seen []string
		for _, ev := range list.Items {
			if ev.Regarding.Kind != "Node" || ev.Regarding.Name != node {
				continue
			}
			seen = append(seen, ev.Reason+": "+ev.Note)
			if ev.Reason == reason && !ev.EventTime.Time.Before(since.Add(-time.Second)) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s Event on Node %s within %v; its Events: %q", reason, node, within, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
