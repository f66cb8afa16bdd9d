package bpf

import (
	"fmt"
	"testing"
)

func TestPortRanges(t *testing.T) {
	d := newCluster(t, isolatedAll, Config{})
	d.allowRange(podID, peerID, egress, protoTCP, 8000, 8100, 21)
	d.allowRange(podID, 0, egress, protoUDP, 30000, 32767, 22)
	d.allowRange(podID, peerID, egress, protoTCP, 1, 1, 23)
	d.allow(podID, peerID, egress, protoTCP, 8050, 24) // exact beats range
	cases := []struct {
		dst   string
		proto uint8
		port  uint16
		want  uint32
		rule  uint32
	}{
		{peerIP, protoTCP, 7999, tcActShot, 0},
		{peerIP, protoTCP, 8000, tcActUnspec, 21},
		{peerIP, protoTCP, 8001, tcActUnspec, 21},
		{peerIP, protoTCP, 8050, tcActUnspec, 24},
		{peerIP, protoTCP, 8064, tcActUnspec, 21},
		{peerIP, protoTCP, 8100, tcActUnspec, 21},
		{peerIP, protoTCP, 8101, tcActShot, 0},
		{peerIP, protoTCP, 1, tcActUnspec, 23},
		{peerIP, protoTCP, 2, tcActShot, 0},
		{peerIP, protoTCP, 0x8000 + 8050, tcActShot, 0},
		{otherIP, protoTCP, 8000, tcActShot, 0},
		{peerIP, protoUDP, 8000, tcActShot, 0},
		{otherIP, protoUDP, 29999, tcActShot, 0},
		{otherIP, protoUDP, 30000, tcActUnspec, 22},
		{worldIP, protoUDP, 32767, tcActUnspec, 22},
		{otherIP, protoUDP, 32768, tcActShot, 0},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d/%s:%d", c.proto, c.dst, c.port), func(t *testing.T) {
			var l4 []byte
			if c.proto == protoTCP {
				l4 = tcp(uint16(20000+i), c.port)
			} else {
				l4 = udp(uint16(20000+i), c.port)
			}
			if got := d.fromPod(frame(podIP, c.dst, c.proto, l4)); got != c.want {
				t.Fatalf("verdict = %#x, want %#x", got, c.want)
			}
			evs := d.events()
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			if evs[0].RuleId != c.rule {
				t.Errorf("rule = %d, want %d", evs[0].RuleId, c.rule)
			}
		})
	}
}

func TestPolicyEntriesOfOtherIdentitiesDoNotApply(t *testing.T) {
	d := newCluster(t, isolatedAll, Config{})
	d.allow(otherID, peerID, egress, protoTCP, 80, 1)
	d.allow(podID, peerID, egress, protoTCP, 80, 2)
	d.objs.Policy.Put(policyKey(podID, peerID, egress, protoTCP, 81), PalisadePolicyValue{Verdict: 9, RuleId: 3})
	d.allowRange(otherID, peerID, egress, protoTCP, 1000, 2000, 4)
	d.play(t, []step{
		{"own entry", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec},
		{"unknown verdict value is no entry", false, frame(podIP, peerIP, protoTCP, tcp(40000, 81)), tcActShot},
		{"another identity's range", false, frame(podIP, peerIP, protoTCP, tcp(40000, 1500)), tcActShot},
	})
}
