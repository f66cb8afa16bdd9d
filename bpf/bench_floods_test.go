package bpf

import (
	"fmt"
	"testing"
)

// BenchmarkProgramUntracked is a packet of an endpoint isolated in
// neither direction: passed with no conntrack lookup (compare with
// BenchmarkProgramConntrackHit, what every such packet cost before).
func BenchmarkProgramUntracked(b *testing.B) {
	for _, s := range benchSizes {
		d := newBenchDatapath(b, s.ips, s.policies)
		d.endpoint(podID, 0, 2)
		pkt := frame(podIP, peerIP, protoUDP, udp(40000, 53))
		b.Run(fmt.Sprintf("ips=%d/policies=%d", s.ips, s.policies), func(b *testing.B) {
			benchBatched(b, d.objs.PalisadeFromPod, pkt, tcActUnspec)
		})
	}
}

// BenchmarkProgramOverShare is a new allowed flow of an endpoint holding
// its whole conntrack share: refused after the share check, its drop
// event over the endpoint's budget (the steady state of a conntrack
// flood).
func BenchmarkProgramOverShare(b *testing.B) {
	for _, s := range benchSizes[:1] {
		d := newCluster(b, isolatedAll, Config{Conntrack: 1 << 18, ConntrackPerEndpoint: 1})
		allowEgressTCP80(d)
		if ret := d.fromPod(frame(podIP, peerIP, protoTCP, tcp(39999, 80))); ret != tcActUnspec {
			b.Fatalf("first flow: verdict %#x, want allowed", ret)
		}
		pkt := frame(podIP, peerIP, protoTCP, tcp(40000, 80))
		b.Run(fmt.Sprintf("ips=%d/policies=%d", s.ips, s.policies), func(b *testing.B) {
			benchBatched(b, d.objs.PalisadeFromPod, pkt, tcActShot)
		})
	}
}
