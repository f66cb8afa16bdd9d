package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// The programs find their endpoint by skb->ifindex; BPF_PROG_TEST_RUN runs
// tc programs on the loopback device, so the pod under test is ifindex 1.
const podIfindex = 1

const (
	tcActUnspec = 0xffffffff // TC_ACT_UNSPEC (-1): tcx "next", i.e. not dropped
	tcActShot   = 2
)

const (
	ingress = PalisadeDirectionDIR_INGRESS
	egress  = PalisadeDirectionDIR_EGRESS

	isolatedIn  = uint32(PalisadeEndpointFlagsENDPOINT_F_INGRESS_ISOLATED)
	isolatedOut = uint32(PalisadeEndpointFlagsENDPOINT_F_EGRESS_ISOLATED)
	isolatedAll = isolatedIn | isolatedOut
	auditMode   = uint32(PalisadeEndpointFlagsENDPOINT_F_AUDIT)
)

// skbContext is struct __sk_buff (192 bytes): the kernel hands it back
// whole or not at all. Only mark and ifindex may be set going in; ifindex
// (0: loopback) must name a device of the calling thread's namespace.
type skbContext struct {
	Len     uint32
	PktType uint32
	Mark    uint32
	_       [40 - 12]byte
	Ifindex uint32
	_       [192 - 44]byte
}

type datapath struct {
	tb   testing.TB
	objs PalisadeObjects
}

func newDatapath(tb testing.TB, cfg Config) *datapath {
	tb.Helper()
	requirePrivileged(tb)
	spec, err := NewSpec(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	d := &datapath{tb: tb}
	if err := spec.LoadAndAssign(&d.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			tb.Fatalf("load datapath: %+v", ve)
		}
		tb.Fatalf("load datapath: %v", err)
	}
	tb.Cleanup(func() { d.objs.Close() })
	return d
}

// endpoint writes the test pod's endpoint entry and, as Go does for every
// enforced endpoint, its addresses (podIP, podIP6) in endpoint_ips: the
// only sources from_pod lets it send from.
func (d *datapath) endpoint(identity, flags, revision uint32) {
	d.tb.Helper()
	v := PalisadeEndpointValue{Identity: identity, Flags: flags, Revision: revision}
	if err := d.objs.Endpoints.Put(uint32(podIfindex), &v); err != nil {
		d.tb.Fatalf("put endpoint: %v", err)
	}
	d.endpointIP(podIP, podIfindex)
	d.endpointIP(podIP6, podIfindex)
}

func (d *datapath) identity(prefix string, identity uint32) {
	d.tb.Helper()
	k, err := NewIPKey(netip.MustParsePrefix(prefix))
	if err != nil {
		d.tb.Fatal(err)
	}
	if err := d.objs.IpIdentity.Put(&k, &PalisadeIdentityValue{Identity: identity}); err != nil {
		d.tb.Fatalf("put identity %s: %v", prefix, err)
	}
}

func (d *datapath) service(prefix string) {
	d.tb.Helper()
	k, err := NewIPKey(netip.MustParsePrefix(prefix))
	if err != nil {
		d.tb.Fatal(err)
	}
	if err := d.objs.ServiceCidrs.Put(&k, &PalisadeServiceValue{}); err != nil {
		d.tb.Fatalf("put service range %s: %v", prefix, err)
	}
}

func policyKey(local, peer uint32, dir PalisadeDirection, proto uint8, port uint16) PalisadePolicyKey {
	return PalisadePolicyKey{LocalIdentity: local, PeerIdentity: peer, Direction: uint8(dir), Protocol: proto, Dport: port}
}

func (d *datapath) allow(local, peer uint32, dir PalisadeDirection, proto uint8, port uint16, rule uint32) {
	d.tb.Helper()
	k := policyKey(local, peer, dir, proto, port)
	v := PalisadePolicyValue{Verdict: uint8(PalisadePolicyVerdictPOLICY_ALLOW), RuleId: rule}
	if err := d.objs.Policy.Put(&k, &v); err != nil {
		d.tb.Fatalf("put policy: %v", err)
	}
}

func (d *datapath) revoke(local, peer uint32, dir PalisadeDirection, proto uint8, port uint16) {
	d.tb.Helper()
	k := policyKey(local, peer, dir, proto, port)
	if err := d.objs.Policy.Delete(&k); err != nil {
		d.tb.Fatalf("delete policy: %v", err)
	}
}

func (d *datapath) allowRange(local, peer uint32, dir PalisadeDirection, proto uint8, start, end uint16, rule uint32) {
	d.tb.Helper()
	keys, err := NewPolicyRangeKeys(local, peer, dir, proto, start, end)
	if err != nil {
		d.tb.Fatal(err)
	}
	v := PalisadePolicyValue{Verdict: uint8(PalisadePolicyVerdictPOLICY_ALLOW), RuleId: rule}
	for _, k := range keys {
		if err := d.objs.PolicyRanges.Put(&k, &v); err != nil {
			d.tb.Fatalf("put policy range: %v", err)
		}
	}
}

// run passes one frame through prog and returns its verdict and the
// skb->mark it left.
func (d *datapath) run(prog *ebpf.Program, frame []byte) (uint32, uint32) {
	d.tb.Helper()
	return d.runWith(prog, frame, skbContext{})
}

// runWith is run with the context's mark and ifindex set.
func (d *datapath) runWith(prog *ebpf.Program, frame []byte, in skbContext) (uint32, uint32) {
	d.tb.Helper()
	var out skbContext
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, Context: in, ContextOut: &out})
	if err != nil {
		d.tb.Fatalf("run %v: %v", prog, err)
	}
	return ret, out.Mark
}

func (d *datapath) fromPod(frame []byte) uint32 {
	d.tb.Helper()
	ret, _ := d.run(d.objs.PalisadeFromPod, frame)
	return ret
}

func (d *datapath) toPod(frame []byte) uint32 {
	d.tb.Helper()
	ret, _ := d.run(d.objs.PalisadeToPod, frame)
	return ret
}

func (d *datapath) counter(c PalisadeCounter) uint64 {
	d.tb.Helper()
	var perCPU []uint64
	if err := d.objs.Counters.Lookup(uint32(c), &perCPU); err != nil {
		d.tb.Fatalf("read counter %d: %v", c, err)
	}
	var sum uint64
	for _, v := range perCPU {
		sum += v
	}
	return sum
}

// events drains the ring buffer.
func (d *datapath) events() []PalisadeEvent {
	d.tb.Helper()
	r, err := ringbuf.NewReader(d.objs.Events)
	if err != nil {
		d.tb.Fatalf("open ring buffer: %v", err)
	}
	defer r.Close()
	r.SetDeadline(time.Now())
	var evs []PalisadeEvent
	for {
		rec, err := r.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return evs
		}
		if err != nil {
			d.tb.Fatalf("read ring buffer: %v", err)
		}
		var e PalisadeEvent
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &e); err != nil {
			d.tb.Fatalf("decode event: %v", err)
		}
		evs = append(evs, e)
	}
}

func (d *datapath) conntrackLen() int {
	d.tb.Helper()
	var k PalisadeCtKey
	var v PalisadeCtValue
	n := 0
	it := d.objs.Conntrack.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		d.tb.Fatalf("iterate conntrack: %v", err)
	}
	return n
}

func addr16(s string) [16]byte {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		var b [16]byte
		v4 := a.As4()
		copy(b[:], v4[:])
		return b
	}
	return a.As16()
}

// clear empties the maps a test case writes, so that table tests can share
// one loaded datapath (loading and verifying costs ~0.2 s).
func (d *datapath) clear() {
	d.tb.Helper()
	for _, m := range []*ebpf.Map{d.objs.Policy, d.objs.PolicyRanges, d.objs.Conntrack, d.objs.Fragments, d.objs.ServiceCidrs, d.objs.EndpointIps, d.objs.ServiceOrigin, d.objs.SourceCidrs} {
		var keys [][]byte
		k := make([]byte, m.KeySize())
		it := m.Iterate()
		var v []byte
		for it.Next(&k, &v) {
			keys = append(keys, append([]byte(nil), k...))
		}
		if err := it.Err(); err != nil {
			d.tb.Fatalf("iterate %v: %v", m, err)
		}
		for _, k := range keys {
			if err := m.Delete(k); err != nil {
				d.tb.Fatalf("clear %v: %v", m, err)
			}
		}
	}
	d.clearBudgets()
	d.events()
}
