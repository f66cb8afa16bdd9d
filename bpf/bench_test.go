package bpf

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Benchmarks report the kernel's own per-packet time (BPF_PROG_TEST_RUN's
// duration) as ns/packet, so syscall cost stays out of the figure. Each is
// run at 1k and 1M ip_identity entries and 10 and 10k policy entries;
// BenchmarkProgramEmpty is the floor: a program that only returns.

var benchSizes = []struct {
	ips, policies int
}{
	{1_000, 10},
	{1_000, 10_000},
	{1_000_000, 10},
	{1_000_000, 10_000},
}

// newBenchDatapath is newCluster at production map sizes plus ips filler
// /32 entries and policies filler policy entries for other identities.
func newBenchDatapath(b *testing.B, ips, policies int) *datapath {
	b.Helper()
	// Benchmarks delete their entries from Go, behind the share counts'
	// back: no share limit, so that every run takes the same path.
	d := newCluster(b, isolatedAll, Config{Conntrack: 1 << 18, ConntrackPerEndpoint: math.MaxUint32})
	keys := make([]PalisadeIpKey, 0, ips)
	values := make([]PalisadeIdentityValue, 0, ips)
	for i := 0; i < ips; i++ {
		k := PalisadeIpKey{Prefixlen: 64, Family: uint8(PalisadeFamilyFAMILY_IPV4)}
		binary.BigEndian.PutUint32(k.Addr[:4], 0x0b000000+uint32(i)) // 11.0.0.0 onwards
		keys = append(keys, k)
		values = append(values, PalisadeIdentityValue{Identity: 1000 + uint32(i%5000)})
	}
	if _, err := d.objs.IpIdentity.BatchUpdate(keys, values, nil); err != nil {
		for i := range keys {
			if err := d.objs.IpIdentity.Put(&keys[i], &values[i]); err != nil {
				b.Fatalf("fill ip_identity: %v", err)
			}
		}
	}
	for i := 0; i < policies-1; i++ {
		d.allow(1000+uint32(i%5000), peerID, egress, protoTCP, uint16(1+i/5000), uint32(i))
	}
	allowEgressTCP80(d)
	return d
}

func reportPerPacket(b *testing.B, total time.Duration, packets int) {
	b.ReportMetric(float64(total.Nanoseconds())/float64(packets), "ns/packet")
}

// benchBatched runs one frame b.N times inside a single BPF_PROG_TEST_RUN.
func benchBatched(b *testing.B, prog *ebpf.Program, frame []byte, want uint32) {
	b.Helper()
	ret, per, err := prog.Benchmark(frame, b.N, b.ResetTimer)
	if err != nil {
		b.Fatal(err)
	}
	if ret != want {
		b.Fatalf("verdict %#x, want %#x", ret, want)
	}
	reportPerPacket(b, per*time.Duration(b.N), b.N)
}

func BenchmarkProgramEmpty(b *testing.B) {
	requirePrivileged(b)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SchedCLS,
		License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0), // TC_ACT_OK
			asm.Return(),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	pkt := frame(podIP, peerIP, protoTCP, tcp(40000, 80))
	b.Run("batched", func(b *testing.B) { benchBatched(b, prog, pkt, 0) })
	// The same measurement as BenchmarkProgramAllowed: one packet per run.
	b.Run("single", func(b *testing.B) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			_, per, err := prog.Benchmark(pkt, 1, nil)
			if err != nil {
				b.Fatal(err)
			}
			total += per
		}
		reportPerPacket(b, total, b.N)
	})
}

// BenchmarkProgramAllowed is a new flow allowed by an exact policy entry:
// every packet misses conntrack, is judged and inserted. The entry is
// removed between runs, so each run is one packet (compare with
// BenchmarkProgramEmpty/single).
func BenchmarkProgramAllowed(b *testing.B) {
	for _, s := range benchSizes {
		d := newBenchDatapath(b, s.ips, s.policies)
		pkt := frame(podIP, peerIP, protoTCP, tcp(40000, 80))
		ctKey := PalisadeCtKey{Ifindex: podIfindex, Sport: NetworkOrder16(40000), Dport: NetworkOrder16(80),
			Saddr: addr16(podIP), Daddr: addr16(peerIP), Protocol: protoTCP, Family: 4, Direction: uint8(egress)}
		b.Run(fmt.Sprintf("ips=%d/policies=%d", s.ips, s.policies), func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				ret, per, err := d.objs.PalisadeFromPod.Benchmark(pkt, 1, nil)
				if err != nil {
					b.Fatal(err)
				}
				if ret != tcActUnspec {
					b.Fatalf("verdict %#x, want allowed", ret)
				}
				total += per
				if err := d.objs.Conntrack.Delete(&ctKey); err != nil {
					b.Fatalf("delete conntrack entry: %v", err)
				}
			}
			reportPerPacket(b, total, b.N)
		})
	}
}

// BenchmarkProgramDenied is a packet no entry allows: the longest path
// (every policy lookup misses) and a DROP event. The ring buffer is not
// drained, so after the first ~29k packets it measures a drop flood, whose
// events are counted as lost.
func BenchmarkProgramDenied(b *testing.B) {
	for _, s := range benchSizes {
		d := newBenchDatapath(b, s.ips, s.policies)
		pkt := frame(podIP, peerIP, protoTCP, tcp(40000, 81))
		b.Run(fmt.Sprintf("ips=%d/policies=%d", s.ips, s.policies), func(b *testing.B) {
			benchBatched(b, d.objs.PalisadeFromPod, pkt, tcActShot)
		})
	}
}

// BenchmarkProgramConntrackHit is a packet of an established flow.
func BenchmarkProgramConntrackHit(b *testing.B) {
	for _, s := range benchSizes {
		d := newBenchDatapath(b, s.ips, s.policies)
		pkt := frame(podIP, peerIP, protoTCP, tcp(40000, 80))
		if ret := d.fromPod(pkt); ret != tcActUnspec {
			b.Fatalf("first packet: verdict %#x, want allowed", ret)
		}
		b.Run(fmt.Sprintf("ips=%d/policies=%d", s.ips, s.policies), func(b *testing.B) {
			benchBatched(b, d.objs.PalisadeFromPod, pkt, tcActUnspec)
		})
	}
}
