package bpf

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestEventContents(t *testing.T) {
	cases := []struct {
		name  string
		toPod bool
		frame []byte
		want  PalisadeEvent
	}{
		{
			name:  "ipv4 drop towards the pod",
			toPod: true,
			frame: frame(peerIP, podIP, protoUDP, udp(5353, 9999)),
			want: PalisadeEvent{Ifindex: podIfindex, SrcIdentity: peerID, DstIdentity: podID,
				Saddr: addr16(peerIP), Daddr: addr16(podIP), Sport: 5353, Dport: 9999, Protocol: protoUDP, Family: 4,
				Direction: uint8(ingress), Verdict: uint8(PalisadeEventVerdictEVENT_DROP), Reason: uint32(PalisadeReasonREASON_POLICY_MISS)},
		},
		{
			name:  "ipv6 allowed from the pod",
			frame: frame(podIP6, peerIP6, protoTCP, tcp(40000, 80)),
			want: PalisadeEvent{Ifindex: podIfindex, SrcIdentity: podID, DstIdentity: peerID, RuleId: 7,
				Saddr: addr16(podIP6), Daddr: addr16(peerIP6), Sport: 40000, Dport: 80, Protocol: protoTCP, Family: 6,
				Direction: uint8(egress), Verdict: uint8(PalisadeEventVerdictEVENT_ALLOWED_NEW), Reason: uint32(PalisadeReasonREASON_POLICY_ALLOW)},
		},
		{
			name:  "drop to an unknown address",
			frame: frame(podIP, worldIP, protoTCP, tcp(40000, 443)),
			want: PalisadeEvent{Ifindex: podIfindex, SrcIdentity: podID, DstIdentity: uint32(PalisadeIdentityIDENTITY_WORLD),
				Saddr: addr16(podIP), Daddr: addr16(worldIP), Sport: 40000, Dport: 443, Protocol: protoTCP, Family: 4,
				Direction: uint8(egress), Verdict: uint8(PalisadeEventVerdictEVENT_DROP), Reason: uint32(PalisadeReasonREASON_POLICY_MISS)},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newCluster(t, isolatedAll, Config{})
			allowEgressTCP80(d)
			if c.toPod {
				d.toPod(c.frame)
			} else {
				d.fromPod(c.frame)
			}
			evs := d.events()
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			got := evs[0]
			if got.TimestampNs == 0 {
				t.Error("timestamp not set")
			}
			got.TimestampNs = 0
			if got != c.want {
				t.Errorf("event\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestFullRingBufferIsCounted(t *testing.T) {
	d := newCluster(t, isolatedAll, Config{Events: uint32(os.Getpagesize())})
	const drops = 500
	for i := 0; i < drops; i++ {
		if got := d.fromPod(frame(podIP, peerIP, protoTCP, tcp(uint16(10000+i), 81))); got != tcActShot {
			t.Fatalf("packet %d: verdict %#x, want drop even with the ring full", i, got)
		}
	}
	lost := d.counter(PalisadeCounterCOUNTER_EVENT_LOST)
	read := len(d.events())
	if lost == 0 || uint64(read)+lost != drops {
		t.Errorf("read %d events and lost %d, want some lost and %d in all", read, lost, drops)
	}
}

func TestNewFlowEventsAreRateLimited(t *testing.T) {
	d := newCluster(t, isolatedIn, Config{NewFlowEventInterval: time.Hour, NewFlowEventBurst: 4})
	const flows = 100
	for i := 0; i < flows; i++ {
		d.fromPod(frame(podIP, peerIP, protoTCP, tcp(uint16(10000+i), 80)))
	}
	evs := len(d.events())
	limited := d.counter(PalisadeCounterCOUNTER_EVENT_RATE_LIMITED)
	// One bucket per CPU: the test goroutine may have run on any of them.
	if max := 4 * runtime.NumCPU(); evs < 4 || evs > max || uint64(evs)+limited != flows {
		t.Errorf("%d events, %d rate-limited; want 4..%d events and %d in all", evs, limited, max, flows)
	}

	off := newCluster(t, isolatedIn, Config{NoNewFlowEvents: true})
	off.fromPod(frame(podIP, peerIP, protoTCP, tcp(10000, 80)))
	if evs := off.events(); len(evs) != 0 {
		t.Errorf("new-flow events disabled, got %+v", evs)
	}
}

func TestFullConntrackFailsClosed(t *testing.T) {
	const size, flows = 16, 256
	d := newCluster(t, isolatedAll, Config{Conntrack: size})
	allowEgressTCP80(d)
	for i := 0; i < flows; i++ {
		if got := d.fromPod(frame(podIP, peerIP, protoTCP, tcp(uint16(10000+i), 80))); got != tcActUnspec {
			t.Fatalf("flow %d: verdict %#x, want allowed", i, got)
		}
	}
	passed := 0
	for i := 0; i < flows; i++ {
		if d.toPod(frame(peerIP, podIP, protoTCP, tcp(80, uint16(10000+i)))) == tcActUnspec {
			passed++
		}
	}
	// Evicted flows have no entry: their replies are new inbound
	// connections, which nothing allows.
	if passed == 0 || passed > size {
		t.Errorf("%d of %d replies passed, want between 1 and %d (the table size)", passed, flows, size)
	}
}
