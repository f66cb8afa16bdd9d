package enforcer

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

func TestLossTrackerReportsWhatWasLostSinceTheLastRead(t *testing.T) {
	web := policy.PodRef{Namespace: "x", Name: "web"}
	var l lossTracker
	rounds := []struct {
		name string
		read []datapath.EventLoss
		want []datapath.EventLoss
	}{
		{"first read: a previous agent's counts, not reported", []datapath.EventLoss{{Ifindex: 5, Pod: web, Lost: 900}}, nil},
		{"nothing new", []datapath.EventLoss{{Ifindex: 5, Pod: web, Lost: 900}}, nil},
		{"grown", []datapath.EventLoss{{Ifindex: 5, Pod: web, Lost: 1000}, {Ifindex: 7, Lost: 3}},
			[]datapath.EventLoss{{Ifindex: 5, Pod: web, Lost: 100}, {Ifindex: 7, Lost: 3}}},
		{"bucket recreated: all of it is new", []datapath.EventLoss{{Ifindex: 5, Pod: web, Lost: 40}, {Ifindex: 7, Lost: 3}},
			[]datapath.EventLoss{{Ifindex: 5, Pod: web, Lost: 40}}},
	}
	for _, r := range rounds {
		if got := l.since(r.read); !reflect.DeepEqual(got, r.want) {
			t.Errorf("%s: got %+v, want %+v", r.name, got, r.want)
		}
	}
}

func TestLossRecordNamesThePod(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r := lossRecord("node1", at, datapath.EventLoss{Ifindex: 5, Pod: policy.PodRef{Namespace: "x", Name: "web"}, Lost: 999000})
	if r.Verdict != "lost" || r.Pod != "x/web" || r.Lost != 999000 || r.Node != "node1" || !r.Time.Equal(at) {
		t.Errorf("record %+v", r)
	}
	if want := "999000 events of x/web lost"; len(r.Reason) < len(want) || r.Reason[:len(want)] != want {
		t.Errorf("reason %q, want it to start with %q", r.Reason, want)
	}
	if r := lossRecord("node1", at, datapath.EventLoss{Ifindex: 9, Lost: 2}); r.Pod != "" || r.Reason[:len("2 events of interface 9 lost")] != "2 events of interface 9 lost" {
		t.Errorf("record of an unknown interface %+v", r)
	}
}

// A flow refused because its pod's conntrack share (or the node's table)
// is used up says so, naming the pod.
func TestExplainConntrackRefusals(t *testing.T) {
	v := flowView(t)
	web := policy.PodRef{Namespace: "x", Name: "web"}
	ev := datapath.Event{Ifindex: 7, Pod: web, Direction: policy.Egress, Protocol: policy.ProtocolUDP, Verdict: datapath.VerdictDrop,
		Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:53")}
	for reason, want := range map[datapath.Reason]string{
		datapath.ReasonConntrackEndpointLimit: "egress of x/web: new flow refused: the conntrack share it counts in is used up (the pod's own, or for a flow from another pod of the node, the sender's); established flows are kept",
		datapath.ReasonConntrackTableFull:     "egress of x/web: new flow refused: the node's conntrack table is full (established flows are kept)",
	} {
		ev.Reason = reason
		if r := explain("node1", v, ev); r.Reason != want || r.Verdict != "dropped" || r.Pod != "x/web" {
			t.Errorf("%s: got %+v, want reason %q", reason, r, want)
		}
	}
}
