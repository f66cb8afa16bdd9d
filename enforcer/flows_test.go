package enforcer

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

const flowCluster = `apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: "y", annotations: {palisade.dev/enforcement: audit}}
---
apiVersion: v1
kind: Pod
metadata: {namespace: x, name: web, labels: {app: web, tier: frontend, env: dev}}
spec: {nodeName: node1, containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {namespace: x, name: db, labels: {app: db, tier: data, env: dev}}
spec: {nodeName: node1, containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {namespace: "y", name: batch, labels: {app: batch, tier: backend, env: dev}}
spec: {nodeName: node2, containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.0.1.1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: deny-all}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: db-ingress}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{ipBlock: {cidr: 192.0.2.0/24}}]
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
`

func flowView(t *testing.T) *view {
	t.Helper()
	c, err := policy.ReadManifests("flows", strings.NewReader(flowCluster))
	if err != nil {
		t.Fatal(err)
	}
	st, err := policy.Compile(c, policy.Options{NodeName: "node1", HostIPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	return &view{state: st, pods: map[netip.Addr]policy.PodRef{
		netip.MustParseAddr("10.0.0.1"): {Namespace: "x", Name: "web"},
		netip.MustParseAddr("10.0.0.2"): {Namespace: "x", Name: "db"},
		netip.MustParseAddr("10.0.1.1"): {Namespace: "y", Name: "batch"},
	}}
}

func TestExplainFlowEvents(t *testing.T) {
	v := flowView(t)
	st := v.state
	web, db, batch := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.1.1")
	ap := func(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
	webDB := policy.Decide(st, policy.Endpoint{IP: web}, policy.Endpoint{IP: db}, policy.ProtocolTCP, 5432)
	if !webDB.Allowed {
		t.Fatalf("fixture: web → db:5432 denied: %s", webDB.Reason())
	}
	allowID := webDB.Ingress.Source.ID
	dbRef := policy.PodRef{Namespace: "x", Name: "db"}
	when := time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	base := datapath.Event{Time: when, Ifindex: 7, Pod: dbRef, Direction: policy.Ingress, Protocol: policy.ProtocolTCP,
		Src: ap(web, 40000), Dst: ap(db, 5432), SrcIdentity: st.Lookup(web), DstIdentity: st.Lookup(db)}
	with := func(f func(*datapath.Event)) datapath.Event { e := base; f(&e); return e }

	for _, tc := range []struct {
		name  string
		ev    datapath.Event
		check func(t *testing.T, r FlowRecord)
	}{
		{
			name: "forwarded by a rule names the policy and rule",
			ev: with(func(e *datapath.Event) {
				e.Verdict, e.Reason, e.RuleID = datapath.VerdictAllowedNew, datapath.ReasonPolicyAllow, allowID
			}),
			check: func(t *testing.T, r FlowRecord) {
				want := "ingress of x/db allowed by x/db-ingress ingress rule 1 (peer 0)"
				if r.Verdict != "forwarded" || r.Policy != "x/db-ingress" || r.Rule != "ingress rule 1 (peer 0)" || r.Reason != want {
					t.Errorf("got verdict %q policy %q rule %q reason %q; want forwarded, x/db-ingress, %q", r.Verdict, r.Policy, r.Rule, r.Reason, want)
				}
			},
		},
		{
			name: "drop names every isolating policy",
			ev: with(func(e *datapath.Event) {
				e.Verdict, e.Reason, e.Src, e.SrcIdentity = datapath.VerdictDrop, datapath.ReasonPolicyMiss, ap(batch, 40001), st.Lookup(batch)
			}),
			check: func(t *testing.T, r FlowRecord) {
				want := "ingress of x/db isolated by x/db-ingress, x/deny-all; no rule allows"
				if r.Verdict != "dropped" || r.Reason != want || !reflect.DeepEqual(r.IsolatedBy, []string{"x/db-ingress", "x/deny-all"}) || r.Policy != "" {
					t.Errorf("got %+v; want dropped, %q", r, want)
				}
				if r.Source.Namespace != "y" || r.Source.Pod != "batch" || r.Source.Entity != "pod" || r.Source.Labels["app"] != "batch" || r.Source.Port != 40001 {
					t.Errorf("source %+v: want y/batch, pod, app=batch, port 40001", r.Source)
				}
				if r.Destination.Namespace != "x" || r.Destination.Pod != "db" || r.Destination.IP != "10.0.0.2" || r.Destination.Port != 5432 {
					t.Errorf("destination %+v: want x/db 10.0.0.2:5432", r.Destination)
				}
			},
		},
		{
			name: "revoked flow",
			ev:   with(func(e *datapath.Event) { e.Verdict, e.Reason = datapath.VerdictDrop, datapath.ReasonRevoked }),
			check: func(t *testing.T, r FlowRecord) {
				if !strings.HasSuffix(r.Reason, "no rule allows (tracked flow revoked)") {
					t.Errorf("reason %q", r.Reason)
				}
			},
		},
		{
			name: "audit would-drop says it passed",
			ev: with(func(e *datapath.Event) {
				e.Verdict, e.Reason, e.Pod = datapath.VerdictAuditWouldDrop, datapath.ReasonPolicyMiss, policy.PodRef{Namespace: "y", Name: "batch"}
			}),
			check: func(t *testing.T, r FlowRecord) {
				if r.Verdict != "audit" || !strings.HasSuffix(r.Reason, "(audit mode: passed, reported)") {
					t.Errorf("got verdict %q reason %q", r.Verdict, r.Reason)
				}
			},
		},
		{
			name: "from an ipBlock address",
			ev: with(func(e *datapath.Event) {
				a := netip.MustParseAddr("192.0.2.7")
				e.Verdict, e.Reason, e.Src, e.SrcIdentity = datapath.VerdictDrop, datapath.ReasonPolicyMiss, ap(a, 1), st.Lookup(a)
			}),
			check: func(t *testing.T, r FlowRecord) {
				if r.Source.Entity != "cidr" || r.Source.Pod != "" || !reflect.DeepEqual(r.Source.Blocks, []string{"192.0.2.0/24"}) {
					t.Errorf("source %+v: want a cidr identity in block 192.0.2.0/24", r.Source)
				}
			},
		},
		{
			name: "from the node",
			ev: with(func(e *datapath.Event) {
				a := netip.MustParseAddr("192.168.0.1")
				e.Verdict, e.Reason, e.Src, e.SrcIdentity = datapath.VerdictAllowedNew, datapath.ReasonHost, ap(a, 1), st.Lookup(a)
			}),
			check: func(t *testing.T, r FlowRecord) {
				if r.Source.Entity != "host" || r.Reason != "ingress of x/db from the node" {
					t.Errorf("got source %+v reason %q", r.Source, r.Reason)
				}
			},
		},
		{
			name: "rule gone from the State",
			ev: with(func(e *datapath.Event) {
				e.Verdict, e.Reason, e.RuleID = datapath.VerdictAllowedNew, datapath.ReasonPolicyAllow, 999999
			}),
			check: func(t *testing.T, r FlowRecord) {
				if r.Policy != "" || !strings.Contains(r.Reason, "rule 999999 (no longer in the policy state)") {
					t.Errorf("got policy %q reason %q", r.Policy, r.Reason)
				}
			},
		},
		{
			name: "spoofed source names the sender and whose address it forged",
			ev: with(func(e *datapath.Event) {
				e.Verdict, e.Reason, e.Direction = datapath.VerdictDrop, datapath.ReasonSpoofedSource, policy.Egress
				e.Pod, e.SrcIdentity, e.DstIdentity = policy.PodRef{Namespace: "y", Name: "batch"}, st.Lookup(batch), st.Lookup(web)
				e.Src, e.Dst = ap(db, 40000), ap(web, 80)
			}),
			check: func(t *testing.T, r FlowRecord) {
				want := "egress of y/batch: spoofed source: 10.0.0.2 (x/db's) is not one of its addresses (dropped in every mode)"
				if r.Verdict != "dropped" || r.Pod != "y/batch" || r.Reason != want {
					t.Errorf("got verdict %q pod %q reason %q; want dropped, y/batch, %q", r.Verdict, r.Pod, r.Reason, want)
				}
				if r.Source.IP != "10.0.0.2" || r.Source.Namespace != "y" || r.Source.Pod != "batch" || r.Source.Labels["app"] != "batch" {
					t.Errorf("source %+v: want the forged address 10.0.0.2 sent by y/batch", r.Source)
				}
			},
		},
		{
			name: "router advertisement from a pod",
			ev: with(func(e *datapath.Event) {
				e.Verdict, e.Reason, e.Direction, e.Protocol = datapath.VerdictDrop, datapath.ReasonRouterMessage, policy.Egress, 58
				e.Src, e.Dst = ap(netip.MustParseAddr("fe80::1"), 0), ap(netip.MustParseAddr("ff02::1"), 0)
			}),
			check: func(t *testing.T, r FlowRecord) {
				if r.Reason != "egress of x/db: router message from a pod (a router advertisement or redirect; dropped in every mode)" || r.Protocol != "ICMPv6" {
					t.Errorf("got reason %q protocol %q", r.Reason, r.Protocol)
				}
			},
		},
		{
			name: "unknown interface, unparsed packet",
			ev: datapath.Event{Time: when, Ifindex: 99, Direction: policy.Egress, Verdict: datapath.VerdictDrop, Reason: datapath.ReasonMalformed,
				Protocol: 1},
			check: func(t *testing.T, r FlowRecord) {
				if r.Pod != "" || r.Reason != "egress of interface 99: malformed packet" || r.Protocol != "ICMP" || r.Source.IP != "" {
					t.Errorf("got %+v", r)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := explain("node1", v, tc.ev)
			if r.Node != "node1" || !r.Time.Equal(when) || r.Time.Location() != time.UTC {
				t.Errorf("node %q time %v: want node1, %v in UTC", r.Node, r.Time, when)
			}
			tc.check(t, r)
		})
	}
}

// Before the first State every event is still recorded.
func TestExplainWithoutState(t *testing.T) {
	r := explain("n", nil, datapath.Event{Verdict: datapath.VerdictDrop, Reason: datapath.ReasonPolicyMiss, Direction: policy.Ingress,
		Pod: policy.PodRef{Namespace: "x", Name: "a"}, Dst: netip.MustParseAddrPort("10.0.0.1:80")})
	if r.Reason != "ingress of x/a isolated; no rule allows" || r.Destination.IP != "10.0.0.1" {
		t.Errorf("got %+v", r)
	}
}

// Concurrent writers never interleave records: each line is one JSON
// object.
func TestFlowWriterWritesWholeLines(t *testing.T) {
	var buf bytes.Buffer
	w := &flowWriter{w: &buf}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.write(FlowRecord{Node: "n", Verdict: "dropped", Reason: strings.Repeat("x", i*10)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("%d lines, want 50", len(lines))
	}
	for _, l := range lines {
		var r FlowRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Node != "n" {
			t.Errorf("line %q: %v", l, err)
		}
	}
	var nilWriter *flowWriter
	if err := nilWriter.write(FlowRecord{}); err != nil {
		t.Errorf("nil writer: %v", err)
	}
}

func TestChangeSetKeepsTheEarliestChange(t *testing.T) {
	c := newChangeSet()
	t0 := time.Unix(100, 0)
	c.mark(t0.Add(time.Second))
	c.mark(t0)
	c.mark(t0.Add(2 * time.Second))
	select {
	case <-c.wake:
	default:
		t.Fatal("no wake-up after a change")
	}
	select {
	case <-c.wake:
		t.Fatal("three changes woke the loop more than once")
	default:
	}
	if got := c.take(); !got.Equal(t0) {
		t.Errorf("take = %v, want the earliest change %v", got, t0)
	}
	if got := c.take(); !got.IsZero() {
		t.Errorf("second take = %v, want zero", got)
	}
	c.mark(t0.Add(5 * time.Second))
	c.restore(t0.Add(3 * time.Second))
	if got := c.take(); !got.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("after restore take = %v, want the restored earlier change", got)
	}
	c.restore(time.Time{})
	if got := c.take(); !got.IsZero() {
		t.Errorf("restoring nothing left %v", got)
	}
}

// A drop judged after kube-proxy's DNAT names the source pod's egress,
// the backend pod and the service address it was sent to.
func TestExplainServiceDrop(t *testing.T) {
	v := flowView(t)
	web, db := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	ev := datapath.Event{
		Time: time.Unix(1, 0), Ifindex: 7, Pod: policy.PodRef{Namespace: "x", Name: "web"},
		Direction: policy.Egress, Verdict: datapath.VerdictDrop, Reason: datapath.ReasonPolicyMiss,
		SrcIdentity: v.state.Lookup(web), DstIdentity: v.state.Lookup(db), Protocol: policy.ProtocolTCP,
		Src: netip.AddrPortFrom(web, 40000), Dst: netip.AddrPortFrom(db, 5432),
		AfterDNAT: true, Service: netip.MustParseAddrPort("10.96.0.10:5432"),
	}
	r := explain("node1", v, ev)
	if r.Pod != "x/web" || r.Destination.Pod != "db" || r.Service != "10.96.0.10:5432" {
		t.Errorf("record %+v: want web's egress to pod db via 10.96.0.10:5432", r)
	}
	if want := "egress of x/web to backend x/db of service 10.96.0.10:5432 isolated; no rule allows"; r.Reason != want {
		t.Errorf("reason %q, want %q", r.Reason, want)
	}
	unknown := ev
	unknown.Reason, unknown.Src = datapath.ReasonServiceSourceUnknown, netip.MustParseAddrPort("192.168.0.1:3333")
	if r := explain("node1", v, unknown); r.Pod != "" || !strings.Contains(r.Reason, "from 192.168.0.1 to backend x/db") {
		t.Errorf("record %+v: want no judged pod and the source named", r)
	}
	ev.Service = netip.AddrPort{}
	ev.Reason = datapath.ReasonTCPNotNew
	if r := explain("node1", v, ev); r.Service != "unknown" || !strings.Contains(r.Reason, "of service unknown") || !strings.Contains(r.Reason, "only a SYN opens one") {
		t.Errorf("record %+v: want the service unknown and the TCP reason", r)
	}
}

// During a Sync the kernel may already judge with the numbers of the State
// being written: the event is explained by the view that knows them.
func TestViewForPicksTheViewThatKnowsTheIdentities(t *testing.T) {
	stateWith := func(ids ...policy.NumericIdentity) *view {
		s := &policy.State{}
		for _, id := range ids {
			s.Identities = append(s.Identities, policy.Identity{ID: id, Kind: policy.KindWorkload})
		}
		return &view{state: s}
	}
	enforced, syncing := stateWith(300, 301), stateWith(400, 401)
	ev := func(src, dst policy.NumericIdentity) datapath.Event {
		return datapath.Event{SrcIdentity: src, DstIdentity: dst}
	}
	for _, tc := range []struct {
		name  string
		ev    datapath.Event
		views []*view
		want  *view
	}{
		{"renumbered by the sync", ev(400, 401), []*view{syncing, enforced}, syncing},
		{"numbers of the enforced state", ev(300, 301), []*view{syncing, enforced}, enforced},
		{"known to both: the one being written", ev(policy.IdentityWorld, policy.IdentityHost), []*view{syncing, enforced}, syncing},
		{"known to neither: the first", ev(500, 301), []*view{syncing, enforced}, syncing},
		{"no sync running", ev(400, 401), []*view{nil, enforced}, enforced},
		{"nothing enforced yet", ev(300, 301), []*view{nil, nil}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := viewFor(tc.ev, tc.views...); got != tc.want {
				t.Errorf("viewFor picked %p, want %p", got, tc.want)
			}
		})
	}
}
