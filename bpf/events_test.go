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
	// A budget per endpoint larger than the ring: the ring fills first.
	d := newCluster(t, isolatedAll, Config{Events: uint32(os.Getpagesize()), DropEventBurst: 1000})
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
	// A share over the table size: the table fills first.
	d := newCluster(t, isolatedAll, Config{Conntrack: size, ConntrackPerEndpoint: 1000})
	allowEgressTCP80(d)
	allowed := 0
	for i := 0; i < flows; i++ {
		if d.fromPod(frame(podIP, peerIP, protoTCP, tcp(uint16(10000+i), 80))) == tcActUnspec {
			allowed++
		}
	}
	// No LRU eviction: the first flows keep their entries, the table
	// refuses the rest (their replies would find no entry).
	if allowed != size {
		t.Errorf("%d of %d flows allowed, want %d (the table size)", allowed, flows, size)
	}
	if got := d.counter(PalisadeCounterCOUNTER_CT_INSERT_FAILED); got != flows-size {
		t.Errorf("ct_insert_failed = %d, want %d", got, flows-size)
	}
	for i := 0; i < size; i++ {
		if got := d.toPod(frame(peerIP, podIP, protoTCP, tcp(80, uint16(10000+i)))); got != tcActUnspec {
			t.Errorf("reply of tracked flow %d: verdict %#x, want passed", i, got)
		}
	}
	refused := 0
	for _, e := range d.events() {
		if PalisadeReason(e.Reason) == PalisadeReasonREASON_CT_TABLE_FULL && e.Verdict == uint8(PalisadeEventVerdictEVENT_DROP) {
			refused++
		}
	}
	if refused == 0 {
		t.Error("no drop event with reason REASON_CT_TABLE_FULL")
	}
}
