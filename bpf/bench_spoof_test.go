package bpf

import "testing"

// BenchmarkSourceCheck prices the anti-spoofing check, which every packet
// from a pod pays before anything else: an established packet from the
// pod's own address (one endpoint_ips hash hit), from one of its
// annotated source ranges (a hash miss, then a source_cidrs LPM hit), and
// the reply of the same flow towards the pod, which is not checked (the
// same conntrack path without the check: the floor the check adds to). A
// forged packet's drop (both lookups miss, an event) is the last case.
func BenchmarkSourceCheck(b *testing.B) {
	d := newBenchDatapath(b, 1_000, 10)
	sourceCIDR(d, "10.9.0.0/16", podIfindex)
	own := frame(podIP, peerIP, protoTCP, tcp(40000, 80))
	ranged := frame("10.9.1.2", peerIP, protoTCP, tcp(40001, 80))
	for _, f := range [][]byte{own, ranged} {
		if ret := d.fromPod(f); ret != tcActUnspec {
			b.Fatalf("first packet: verdict %#x, want allowed", ret)
		}
	}
	b.Run("from-pod-own-address", func(b *testing.B) { benchBatched(b, d.objs.PalisadeFromPod, own, tcActUnspec) })
	b.Run("from-pod-source-range", func(b *testing.B) { benchBatched(b, d.objs.PalisadeFromPod, ranged, tcActUnspec) })
	b.Run("to-pod-reply-unchecked", func(b *testing.B) {
		benchBatched(b, d.objs.PalisadeToPod, frame(peerIP, podIP, protoTCP, tcpFlags(80, 40000, tcpACK)), tcActUnspec)
	})
	b.Run("forged-dropped", func(b *testing.B) {
		benchBatched(b, d.objs.PalisadeFromPod, frame(otherIP, peerIP, protoTCP, tcp(40002, 80)), tcActShot)
	})
}
