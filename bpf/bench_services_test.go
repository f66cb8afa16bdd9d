package bpf

import (
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// testRunAttr is union bpf_attr's test member (BPF_PROG_TEST_RUN).
// Program.Benchmark takes no context, and a repeated run reuses one skb,
// whose mark the first repetition clears: a marked packet is measured one
// run at a time, through the system call itself.
type testRunAttr struct {
	progFD      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      uint64
	dataOut     uint64
	repeat      uint32
	duration    uint32
	ctxSizeIn   uint32
	ctxSizeOut  uint32
	ctxIn       uint64
	ctxOut      uint64
	flags       uint32
	cpu         uint32
	batchSize   uint32
	_           uint32
}

// runMarked runs prog once on frame with skb->mark set and returns the
// verdict and the kernel's own duration of the run.
func runMarked(b *testing.B, prog *ebpf.Program, frame []byte, mark uint32) (uint32, time.Duration) {
	b.Helper()
	ctx := skbContext{Mark: mark}
	attr := testRunAttr{
		progFD:     uint32(prog.FD()),
		dataSizeIn: uint32(len(frame)),
		dataIn:     uint64(uintptr(unsafe.Pointer(&frame[0]))),
		repeat:     1,
		ctxSizeIn:  uint32(unsafe.Sizeof(ctx)),
		ctxIn:      uint64(uintptr(unsafe.Pointer(&ctx))),
	}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		b.Fatalf("test run: %v", errno)
	}
	return attr.retval, time.Duration(attr.duration)
}

// newBenchServices is newBenchDatapath with the pod's service flow to
// 10.96.0.10:80 deferred, its address in endpoint_ips, and the pod as its
// own backend (tests run on one interface) admitting itself on 80.
func newBenchServices(b *testing.B, ips, policies int) (*datapath, []byte) {
	b.Helper()
	d := newBenchDatapath(b, ips, policies)
	d.service("10.96.0.0/12")
	d.endpointIP(podIP, podIfindex)
	d.allow(podID, podID, ingress, protoTCP, 80, 8)
	if _, mark := d.run(d.objs.PalisadeFromPod, frame(podIP, "10.96.0.10", protoTCP, tcp(40000, 80))); mark&serviceMark == 0 {
		b.Fatal("service flow not deferred")
	}
	return d, frame(podIP, peerIP, protoTCP, tcp(40000, 80))
}

// BenchmarkProgramServiceToPod is a marked packet at to_pod, after DNAT:
// the source's egress (endpoint_ips, endpoints, service_origin, deferred
// and post-DNAT conntrack), then the pod's own ingress. "established" hits
// both conntrack entries; "new" judges both, with the entries removed
// between runs; "unmarked" is the same packet without the mark, a plain
// conntrack hit measured the same way (one run per system call, so each
// figure includes the floor of BenchmarkProgramEmpty/single).
func BenchmarkProgramServiceToPod(b *testing.B) {
	for _, s := range benchSizes {
		d, pkt := newBenchServices(b, s.ips, s.policies)
		keys := []PalisadeCtKey{
			{Ifindex: podIfindex, Sport: NetworkOrder16(40000), Dport: NetworkOrder16(80), Saddr: addr16(podIP), Daddr: addr16(peerIP), Protocol: protoTCP, Family: 4, Direction: uint8(egress)},
			{Ifindex: podIfindex, Sport: NetworkOrder16(40000), Dport: NetworkOrder16(80), Saddr: addr16(podIP), Daddr: addr16(peerIP), Protocol: protoTCP, Family: 4, Direction: uint8(ingress)},
		}
		for _, mode := range []string{"unmarked", "established", "new"} {
			b.Run(fmt.Sprintf("%s/ips=%d/policies=%d", mode, s.ips, s.policies), func(b *testing.B) {
				var total time.Duration
				for i := 0; i < b.N; i++ {
					mark := uint32(serviceMark)
					if mode == "unmarked" {
						mark = 0 // the same packet as a plain conntrack hit
					}
					ret, per := runMarked(b, d.objs.PalisadeToPod, pkt, mark)
					if ret != tcActUnspec {
						b.Fatalf("verdict %#x, want passed", ret)
					}
					total += per
					if mode == "new" {
						for _, k := range keys {
							d.objs.Conntrack.Delete(&k)
						}
					}
				}
				reportPerPacket(b, total, b.N)
			})
		}
	}
}

// BenchmarkProgramUplink is palisade_uplink: an unmarked packet (all
// traffic but deferred service flows; batched) and a marked packet of an
// established service flow (one run at a time).
func BenchmarkProgramUplink(b *testing.B) {
	d, pkt := newBenchServices(b, 1_000_000, 10_000)
	b.Run("unmarked", func(b *testing.B) { benchBatched(b, d.objs.PalisadeUplink, pkt, tcActUnspec) })
	b.Run("marked-established", func(b *testing.B) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			ret, per := runMarked(b, d.objs.PalisadeUplink, pkt, serviceMark)
			if ret != tcActUnspec {
				b.Fatalf("verdict %#x, want passed", ret)
			}
			total += per
		}
		reportPerPacket(b, total, b.N)
	})
}
