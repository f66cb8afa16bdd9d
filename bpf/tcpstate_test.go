package bpf

import "testing"

// Only a SYN without ACK opens a TCP flow: any other TCP packet that
// misses conntrack is refused where its direction is isolated and passes
// untracked where it is not, so that it never re-opens a revoked flow.
func TestTCPOnlySYNOpensFlows(t *testing.T) {
	cases := []struct {
		name   string
		flags  uint32
		toPod  bool
		frame  []byte
		want   uint32
		reason PalisadeReason // of the drop event; 0: none expected
	}{
		{"ack into isolated ingress", isolatedAll, true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpACK)), tcActShot, PalisadeReasonREASON_TCP_NOT_NEW},
		{"syn-ack into isolated ingress (a reply, never an opening)", isolatedAll, true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActShot, PalisadeReasonREASON_TCP_NOT_NEW},
		{"rst into isolated ingress", isolatedAll, true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpRST)), tcActShot, PalisadeReasonREASON_TCP_NOT_NEW},
		{"fin-ack out of isolated egress", isolatedAll, false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpFIN|tcpACK)), tcActShot, PalisadeReasonREASON_TCP_NOT_NEW},
		{"syn-rst out of isolated egress", isolatedAll, false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpSYN|tcpRST)), tcActShot, PalisadeReasonREASON_TCP_NOT_NEW},
		{"ipv6 ack into isolated ingress", isolatedAll, true, frame(peerIP6, podIP6, protoTCP, tcpFlags(80, 40000, tcpACK)), tcActShot, PalisadeReasonREASON_TCP_NOT_NEW},
		{"ack into open ingress", isolatedOut, true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpACK|tcpPSH)), tcActUnspec, 0},
		{"rst out of open egress", isolatedIn, false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpRST)), tcActUnspec, 0},
		{"audit: reported and passed", isolatedAll | auditMode, true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpACK)), tcActUnspec, PalisadeReasonREASON_TCP_NOT_NEW},
	}
	d := newCluster(t, isolatedAll, Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d.clear()
			d.endpoint(podID, c.flags, 1)
			allowEgressTCP80(d) // the policy allows the flow, were it opened
			d.allow(podID, peerID, ingress, protoTCP, 40000, 2)
			d.play(t, []step{{c.name, c.toPod, c.frame, c.want}})
			if n := d.conntrackLen(); n != 0 {
				t.Errorf("%d conntrack entries, want none: a non-SYN must not open a flow", n)
			}
			evs := d.events()
			switch {
			case c.reason == 0 && len(evs) != 0:
				t.Errorf("events %+v, want none", evs)
			case c.reason != 0 && (len(evs) != 1 || PalisadeReason(evs[0].Reason) != c.reason):
				t.Errorf("events %+v, want one with reason %d", evs, c.reason)
			}
		})
	}
}

// The case end-to-end tests found: only the client is isolated (egress),
// the allow is withdrawn mid-connection, and the server keeps sending.
// Its packets pass the client's open ingress but must not open a flow
// through which the client's own packets would pass again.
func TestWithdrawnAllowIsNotReopenedByThePeer(t *testing.T) {
	d := newCluster(t, isolatedOut, Config{})
	allowEgressTCP80(d)
	d.play(t, []step{
		{"syn", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec},
		{"syn-ack", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActUnspec},
		{"ack", false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpACK)), tcActUnspec},
	})
	d.revoke(podID, peerID, egress, protoTCP, 80)
	d.endpoint(podID, isolatedOut, 2)
	serverData := frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpACK|tcpPSH))
	clientAck := frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpACK))
	d.play(t, []step{
		{"server data after the withdrawal (revokes)", true, serverData, tcActShot},
		{"server data again: open ingress, untracked", true, serverData, tcActUnspec},
		{"client ack", false, clientAck, tcActShot},
		{"server retransmits", true, serverData, tcActUnspec},
		{"client ack again", false, clientAck, tcActShot},
		{"client fin", false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpFIN|tcpACK)), tcActShot},
	})
	if n := d.conntrackLen(); n != 0 {
		t.Errorf("%d conntrack entries after the withdrawal, want none", n)
	}
	if got := d.counter(PalisadeCounterCOUNTER_DROP_TCP_NOT_NEW); got != 3 {
		t.Errorf("drop_tcp_not_new = %d, want 3", got)
	}
	if got := d.counter(PalisadeCounterCOUNTER_TCP_NOT_NEW_PASSED); got != 2 {
		t.Errorf("tcp_not_new_passed = %d, want 2", got)
	}
}

// Flows tracked before (in a pinned conntrack map an enforcer restart
// adopts) keep passing mid-connection packets both ways.
func TestTrackedTCPFlowsKeepPassing(t *testing.T) {
	d := newCluster(t, isolatedAll, Config{})
	allowEgressTCP80(d)
	d.play(t, []step{{"syn", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec}})
	d.endpoint(podID, isolatedAll, 2) // a restart's sync with a fresh revision
	d.play(t, []step{
		{"syn-ack", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActUnspec},
		{"ack", false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpACK)), tcActUnspec},
		{"data", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpACK|tcpPSH)), tcActUnspec},
		{"fin", false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpFIN|tcpACK)), tcActUnspec},
		{"rst", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpRST)), tcActUnspec},
	})
}
