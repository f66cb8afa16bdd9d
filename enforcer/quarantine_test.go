package enforcer

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// A drop on an interface in quarantine says so, whatever reason the
// program gave, in both directions; a known pod's drop does not.
func TestExplainQuarantinedDrop(t *testing.T) {
	src := netip.MustParseAddrPort("10.244.1.50:40000")
	dst := netip.MustParseAddrPort("10.244.1.10:8080")
	for _, ev := range []datapath.Event{
		{Ifindex: 7, Verdict: datapath.VerdictDrop, Reason: datapath.ReasonTCPNotNew, Direction: policy.Egress,
			SrcIdentity: datapath.QuarantineIdentity, DstIdentity: 300, Protocol: policy.ProtocolTCP, Src: src, Dst: dst},
		{Ifindex: 7, Verdict: datapath.VerdictDrop, Reason: datapath.ReasonPolicyMiss, Direction: policy.Ingress,
			SrcIdentity: 300, DstIdentity: datapath.QuarantineIdentity, Protocol: policy.ProtocolTCP, Src: dst, Dst: src},
	} {
		r := explain("node1", nil, ev)
		if !r.Quarantined || !strings.Contains(r.Reason, "quarantined") || !strings.Contains(r.Reason, "interface 7") {
			t.Errorf("%s drop on a quarantined interface: quarantined=%v reason %q", ev.Direction, r.Quarantined, r.Reason)
		}
	}
	known := datapath.Event{Ifindex: 7, Pod: policy.PodRef{Namespace: "shop", Name: "web"}, Verdict: datapath.VerdictDrop,
		Reason: datapath.ReasonPolicyMiss, Direction: policy.Egress, SrcIdentity: 300, DstIdentity: 301, Protocol: policy.ProtocolTCP, Src: src, Dst: dst}
	if r := explain("node1", nil, known); r.Quarantined || strings.Contains(r.Reason, "quarantined") {
		t.Errorf("a known pod's drop reads as a quarantine: %q", r.Reason)
	}
}
