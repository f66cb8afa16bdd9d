package bpf

import (
	"errors"
	"net"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

// Floods: what one pod can make the datapath spend. Conntrack entries go
// only to flows a verdict needs them for, each endpoint holds at most its
// share of the table, TCP entries close with the connection, and drop and
// audit events come out of a budget per endpoint.

// twoPods is a datapath whose programs run in a network namespace of the
// test's own, holding a second device besides loopback: packets can then
// be judged on two interfaces, the test pod's (podIfindex) and another
// pod's (other). BPF_PROG_TEST_RUN resolves the context's ifindex in the
// calling thread's namespace.
type twoPods struct {
	*datapath
	ns    podnet.Netns
	other uint32
}

const otherPodIP = "10.0.0.9"

func newTwoPods(t *testing.T, flags uint32, cfg Config) *twoPods {
	t.Helper()
	d := newCluster(t, flags, cfg)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("iproute2's ip is not installed: %v", err)
	}
	ns := podnet.Netns("plbpf-" + podnet.NewPrefix("t"))
	if out, err := exec.Command("ip", "netns", "add", string(ns)).CombinedOutput(); err != nil {
		t.Fatalf("add network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", string(ns)).Run() })
	if out, err := exec.Command("ip", "-n", string(ns), "link", "add", "other0", "type", "veth", "peer", "name", "other1").CombinedOutput(); err != nil {
		t.Fatalf("add device: %v: %s", err, out)
	}
	var other uint32
	if err := ns.Do(func() error {
		ifc, err := net.InterfaceByName("other0")
		if err != nil {
			return err
		}
		other = uint32(ifc.Index)
		return nil
	}); err != nil {
		t.Fatalf("find device: %v", err)
	}
	p := &twoPods{datapath: d, ns: ns, other: other}
	p.endpointOn(other, otherID, flags, 1)
	p.identity(otherPodIP+"/32", otherID)
	p.endpointIP(otherPodIP, other)
	return p
}

func (d *datapath) endpointOn(ifindex, identity, flags, revision uint32) {
	d.tb.Helper()
	v := PalisadeEndpointValue{Identity: identity, Flags: flags, Revision: revision}
	if err := d.objs.Endpoints.Put(ifindex, &v); err != nil {
		d.tb.Fatalf("put endpoint %d: %v", ifindex, err)
	}
}

// on runs frame through prog on interface ifindex.
func (p *twoPods) on(ifindex uint32, prog *ebpf.Program, frame []byte) uint32 {
	p.tb.Helper()
	var ret uint32
	err := p.ns.Do(func() error {
		var out skbContext
		var err error
		ret, err = prog.Run(&ebpf.RunOptions{Data: frame, Context: skbContext{Ifindex: ifindex}, ContextOut: &out})
		return err
	})
	if err != nil {
		p.tb.Fatalf("run %v on %d: %v", prog, ifindex, err)
	}
	return ret
}

// clearBudgets empties the per-endpoint conntrack shares and event
// budgets (clear's other maps hold the entries those count).
func (d *datapath) clearBudgets() {
	d.tb.Helper()
	for _, m := range []*ebpf.Map{d.objs.CtEndpointUsed, d.objs.CtEndpointCollected, d.objs.EndpointEventBudget} {
		var keys []uint32
		var prev any // nil: the first key
		for {
			var k uint32
			err := m.NextKey(prev, &k)
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				break
			}
			if err != nil {
				d.tb.Fatalf("iterate %v: %v", m, err)
			}
			keys = append(keys, k)
			prev = k
		}
		for _, k := range keys {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				d.tb.Fatalf("clear %v: %v", m, err)
			}
		}
	}
}

// share is the endpoint's conntrack share in use, as the programs see it.
func (d *datapath) share(ifindex uint32) int64 {
	d.tb.Helper()
	var used, collected uint64
	if err := d.objs.CtEndpointUsed.Lookup(ifindex, &used); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		d.tb.Fatal(err)
	}
	if err := d.objs.CtEndpointCollected.Lookup(ifindex, &collected); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		d.tb.Fatal(err)
	}
	return int64(used - collected)
}

// lost sums the endpoint's lost events over CPUs.
func (d *datapath) lost(ifindex uint32) uint64 {
	d.tb.Helper()
	var perCPU []PalisadeEventBucket
	if err := d.objs.EndpointEventBudget.Lookup(ifindex, &perCPU); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0
		}
		d.tb.Fatal(err)
	}
	var n uint64
	for _, b := range perCPU {
		n += b.Lost
	}
	return n
}

func (d *datapath) ctFlags(t *testing.T, k PalisadeCtKey) uint32 {
	t.Helper()
	var v PalisadeCtValue
	if err := d.objs.Conntrack.Lookup(&k, &v); err != nil {
		t.Fatalf("look up %+v: %v", k, err)
	}
	return v.Flags
}

func countEvents(evs []PalisadeEvent, ifindex uint32, verdict PalisadeEventVerdict, reason PalisadeReason) int {
	n := 0
	for _, e := range evs {
		if e.Ifindex == ifindex && e.Verdict == uint8(verdict) && PalisadeReason(e.Reason) == reason {
			n++
		}
	}
	return n
}

// An endpoint isolated in neither direction passes everything and tracks
// nothing; one isolated in either direction tracks every flow, those in
// its open direction too (their replies come back into the isolated one).
func TestOnlyFlowsAVerdictNeedsAreTracked(t *testing.T) {
	cases := []struct {
		name    string
		flags   uint32
		steps   []step
		entries int
	}{
		{"open both ways: tcp out", 0, []step{
			{"syn", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec},
			{"syn-ack", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActUnspec},
			{"ack", false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpACK)), tcActUnspec},
		}, 0},
		{"open both ways: udp in and out, icmp", 0, []step{
			{"udp out", false, frame(podIP, peerIP, protoUDP, udp(5000, 53)), tcActUnspec},
			{"udp in", true, frame(peerIP, podIP, protoUDP, udp(53, 5000)), tcActUnspec},
			{"udp to the pod", true, frame(peerIP, podIP, protoUDP, udp(6000, 9999)), tcActUnspec},
			{"echo", false, frame(podIP, peerIP, protoICMP, icmpEcho(8, 7, 1)), tcActUnspec},
		}, 0},
		{"ingress isolated: the pod's own egress flow is tracked for its replies", isolatedIn, []step{
			{"syn", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec},
			{"syn-ack into isolated ingress", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActUnspec},
			{"udp out", false, frame(podIP, peerIP, protoUDP, udp(5000, 53)), tcActUnspec},
			{"udp answer", true, frame(peerIP, podIP, protoUDP, udp(53, 5000)), tcActUnspec},
		}, 2},
		{"egress isolated: a flow into open ingress is tracked for the pod's replies", isolatedOut, []step{
			{"syn to the pod", true, frame(peerIP, podIP, protoTCP, tcp(5555, 8080)), tcActUnspec},
			{"pod replies out of isolated egress", false, frame(podIP, peerIP, protoTCP, tcpFlags(8080, 5555, tcpSYN|tcpACK)), tcActUnspec},
		}, 1},
	}
	d := newCluster(t, 0, Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d.clear()
			d.endpoint(podID, c.flags, 1)
			before := d.counter(PalisadeCounterCOUNTER_UNTRACKED)
			d.play(t, c.steps)
			if n := d.conntrackLen(); n != c.entries {
				t.Errorf("%d conntrack entries, want %d", n, c.entries)
			}
			if int(d.share(podIfindex)) != c.entries {
				t.Errorf("share in use %d, want %d", d.share(podIfindex), c.entries)
			}
			untracked := d.counter(PalisadeCounterCOUNTER_UNTRACKED) - before
			if c.flags == 0 {
				// All but a TCP SYN, which is reported as a new flow.
				syns := uint64(countEvents(d.events(), podIfindex, PalisadeEventVerdictEVENT_ALLOWED_NEW, PalisadeReasonREASON_NOT_ISOLATED))
				if untracked+syns != uint64(len(c.steps)) {
					t.Errorf("%d untracked and %d forwarded events for %d packets", untracked, syns, len(c.steps))
				}
			} else if untracked != 0 {
				t.Errorf("%d packets untracked in an isolated endpoint", untracked)
			}
		})
	}

	t.Run("open egress to a service is not deferred", func(t *testing.T) {
		d.clear()
		d.endpoint(podID, 0, 1)
		d.service("10.96.0.0/12")
		ret, mark := d.run(d.objs.PalisadeFromPod, frame(podIP, "10.96.0.10", protoTCP, tcp(40000, 80)))
		if ret != tcActUnspec || mark != 0 || d.conntrackLen() != 0 {
			t.Errorf("verdict %#x, mark %#x, %d entries; want passed, unmarked, untracked", ret, mark, d.conntrackLen())
		}
	})

	// The known cost: a connection opened while nothing isolated its pod
	// has no entry once a policy isolates it. Its TCP packets, being no
	// SYN, are refused where isolated; a new connection is judged.
	t.Run("isolated later: an untracked connection is refused, a new one judged", func(t *testing.T) {
		d.clear()
		d.endpoint(podID, 0, 1)
		allowEgressTCP80(d)
		d.play(t, []step{{"syn while open", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec}})
		d.endpoint(podID, isolatedAll, 2)
		d.play(t, []step{
			{"its syn-ack", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActShot},
			{"a new connection the policy allows", false, frame(podIP, peerIP, protoTCP, tcp(40001, 80)), tcActUnspec},
			{"its syn-ack", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40001, tcpSYN|tcpACK)), tcActUnspec},
		})
	})
}

// A FIN or RST marks a tracked TCP flow closing (the collector's short
// timeout); its last packets still pass; a SYN reusing its ports clears
// the mark.
func TestTCPCloseMarksTheFlowClosing(t *testing.T) {
	closing := uint32(PalisadeCtFlagsCT_F_CLOSING)
	key := PalisadeCtKey{Ifindex: podIfindex, Sport: NetworkOrder16(40000), Dport: NetworkOrder16(80),
		Saddr: addr16(podIP), Daddr: addr16(peerIP), Protocol: protoTCP, Family: 4, Direction: uint8(egress)}
	open := []step{
		{"syn", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec},
		{"syn-ack", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpSYN|tcpACK)), tcActUnspec},
		{"ack", false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpACK)), tcActUnspec},
		{"data", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpACK|tcpPSH)), tcActUnspec},
	}
	cases := []struct {
		name  string
		close []step
	}{
		{"fin from the pod, then the peer's", []step{
			{"fin", false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpFIN|tcpACK)), tcActUnspec},
			{"peer fin", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpFIN|tcpACK)), tcActUnspec},
			{"last ack", false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpACK)), tcActUnspec},
		}},
		{"rst from the peer", []step{
			{"rst", true, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpRST)), tcActUnspec},
		}},
		{"rst from the pod", []step{
			{"rst", false, frame(podIP, peerIP, protoTCP, tcpFlags(40000, 80, tcpRST|tcpACK)), tcActUnspec},
		}},
	}
	d := newCluster(t, isolatedAll, Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d.clear()
			d.endpoint(podID, isolatedAll, 1)
			allowEgressTCP80(d)
			before := d.counter(PalisadeCounterCOUNTER_CT_CLOSING)
			d.play(t, open)
			if d.ctFlags(t, key)&closing != 0 {
				t.Fatal("closing before any FIN or RST")
			}
			d.play(t, c.close)
			if d.ctFlags(t, key)&closing == 0 {
				t.Error("not marked closing")
			}
			if got := d.counter(PalisadeCounterCOUNTER_CT_CLOSING) - before; got != 1 {
				t.Errorf("ct_closing counted %d times, want once per flow", got)
			}
			d.play(t, []step{{"syn reusing the ports", false, frame(podIP, peerIP, protoTCP, tcp(40000, 80)), tcActUnspec}})
			if d.ctFlags(t, key)&closing != 0 {
				t.Error("still closing after a new SYN on the same ports")
			}
		})
	}
}

// One pod's share of the table is bounded: over it, its new flows are
// refused and reported; another pod's flows, new and established, and
// its own established ones are not touched. A flow deleted (revoked in
// the kernel, collected by Go) gives its place back.
func TestConntrackShareIsPerEndpoint(t *testing.T) {
	const share = 8
	d := newTwoPods(t, isolatedAll, Config{ConntrackPerEndpoint: share, DropEventBurst: 1000})
	allowEgressTCP80(d.datapath)
	d.allow(otherID, peerID, egress, protoTCP, 80, 9)
	d.allow(otherID, peerID, egress, protoUDP, 53, 10)
	from := func(ifindex uint32, f []byte) uint32 { return d.on(ifindex, d.objs.PalisadeFromPod, f) }
	to := func(ifindex uint32, f []byte) uint32 { return d.on(ifindex, d.objs.PalisadeToPod, f) }

	// The other pod's established connection, before the flood.
	if from(d.other, frame(otherPodIP, peerIP, protoTCP, tcp(50000, 80))) != tcActUnspec {
		t.Fatal("other pod's SYN dropped")
	}
	// It holds one entry: share-1 new flows fit.
	for i := 0; i < 100; i++ {
		want := uint32(tcActUnspec)
		if i >= share-1 {
			want = tcActShot
		}
		if got := from(d.other, frame(otherPodIP, peerIP, protoUDP, udp(uint16(20000+i), 53))); got != want {
			t.Fatalf("flood flow %d: verdict %#x, want %#x", i, got, want)
		}
	}
	if got := d.share(d.other); got != share {
		t.Errorf("flooding pod holds %d entries, want its share %d", got, share)
	}
	if got := d.counter(PalisadeCounterCOUNTER_DROP_CT_ENDPOINT_LIMIT); got != 100-(share-1) {
		t.Errorf("drop_ct_endpoint_limit = %d, want %d", got, 100-(share-1))
	}
	evs := d.events()
	if n := countEvents(evs, d.other, PalisadeEventVerdictEVENT_DROP, PalisadeReasonREASON_CT_ENDPOINT_LIMIT); n == 0 {
		t.Error("no drop event with reason REASON_CT_ENDPOINT_LIMIT for the flooding pod")
	}
	if got := to(d.other, frame(peerIP, otherPodIP, protoTCP, tcpFlags(80, 50000, tcpSYN|tcpACK))); got != tcActUnspec {
		t.Errorf("flooding pod's own established connection: verdict %#x, want passed", got)
	}
	for i := 0; i < share; i++ {
		if got := from(podIfindex, frame(podIP, peerIP, protoTCP, tcp(uint16(40000+i), 80))); got != tcActUnspec {
			t.Errorf("other pod's new flow %d during the flood: verdict %#x, want allowed", i, got)
		}
	}

	// The collector's deletions count (ct_endpoint_collected): room for
	// as many new flows.
	if err := d.objs.CtEndpointCollected.Put(d.other, uint64(2)); err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint32{tcActUnspec, tcActUnspec, tcActShot} {
		if got := from(d.other, frame(otherPodIP, peerIP, protoUDP, udp(uint16(30000+i), 53))); got != want {
			t.Errorf("after 2 collected, flow %d: verdict %#x, want %#x", i, got, want)
		}
	}
	// A revocation in the kernel gives its place back.
	d.revoke(otherID, peerID, egress, protoTCP, 80)
	d.endpointOn(d.other, otherID, isolatedAll, 2)
	if got := from(d.other, frame(otherPodIP, peerIP, protoTCP, tcpFlags(50000, 80, tcpACK))); got != tcActShot {
		t.Errorf("revoked flow: verdict %#x, want dropped", got)
	}
	if got := d.share(d.other); got != share-1 {
		t.Errorf("after a revocation the share in use is %d, want %d", got, share-1)
	}

	// In audit mode a flow over the share is reported and passes.
	d.endpointOn(d.other, otherID, isolatedAll|auditMode, 3)
	for i := 0; i < 3; i++ {
		from(d.other, frame(otherPodIP, peerIP, protoUDP, udp(uint16(31000+i), 53)))
	}
	if got := from(d.other, frame(otherPodIP, peerIP, protoUDP, udp(31100, 53))); got != tcActUnspec {
		t.Errorf("audit mode over the share: verdict %#x, want passed", got)
	}
	if n := countEvents(d.events(), d.other, PalisadeEventVerdictEVENT_AUDIT_WOULD_DROP, PalisadeReasonREASON_CT_ENDPOINT_LIMIT); n == 0 {
		t.Error("audit mode over the share: no would-drop event")
	}
}

// Drop and audit events come out of a budget per endpoint (and CPU): a
// pod flooding refused packets loses its own events, counted, and
// another pod's denial is still reported.
func TestDropEventsHaveABudgetPerEndpoint(t *testing.T) {
	const burst, flood = 4, 200
	d := newTwoPods(t, isolatedAll, Config{DropEventInterval: time.Hour, DropEventBurst: burst})
	for i := 0; i < flood; i++ {
		if got := d.on(d.other, d.objs.PalisadeFromPod, frame(otherPodIP, peerIP, protoUDP, udp(uint16(20000+i), 9))); got != tcActShot {
			t.Fatalf("flood packet %d: verdict %#x, want dropped", i, got)
		}
	}
	if got := d.on(podIfindex, d.objs.PalisadeFromPod, frame(podIP, peerIP, protoTCP, tcp(40000, 443))); got != tcActShot {
		t.Fatalf("other pod's packet: verdict %#x, want dropped", got)
	}
	evs := d.events()
	flooded := countEvents(evs, d.other, PalisadeEventVerdictEVENT_DROP, PalisadeReasonREASON_POLICY_MISS)
	if max := burst * runtime.NumCPU(); flooded < burst || flooded > max {
		t.Errorf("%d events of the flooding pod, want %d..%d", flooded, burst, max)
	}
	if lost := d.lost(d.other); uint64(flooded)+lost != flood {
		t.Errorf("%d events sent and %d lost for %d drops", flooded, lost, flood)
	}
	if got := d.counter(PalisadeCounterCOUNTER_DROP_EVENT_RATE_LIMITED); got != uint64(flood-flooded) {
		t.Errorf("drop_event_rate_limited = %d, want %d", got, flood-flooded)
	}
	if n := countEvents(evs, podIfindex, PalisadeEventVerdictEVENT_DROP, PalisadeReasonREASON_POLICY_MISS); n != 1 {
		t.Errorf("other pod's denial: %d events, want 1", n)
	}
	if lost := d.lost(podIfindex); lost != 0 {
		t.Errorf("other pod lost %d events, want none", lost)
	}

	// Audit events come out of the same budget: each is sent or lost.
	d.endpointOn(d.other, otherID, isolatedAll|auditMode, 2)
	lostBefore := d.lost(d.other)
	const audits = 50
	for i := 0; i < audits; i++ {
		if got := d.on(d.other, d.objs.PalisadeFromPod, frame(otherPodIP, peerIP, protoUDP, udp(uint16(21000+i), 9))); got != tcActUnspec {
			t.Fatalf("audit: verdict %#x, want passed", got)
		}
	}
	sent := countEvents(d.events(), d.other, PalisadeEventVerdictEVENT_AUDIT_WOULD_DROP, PalisadeReasonREASON_POLICY_MISS)
	if lost := d.lost(d.other) - lostBefore; uint64(sent)+lost != audits || sent > burst*runtime.NumCPU() {
		t.Errorf("audit: %d events sent and %d lost for %d would-drops", sent, lost, audits)
	}
}
