package check

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/palisade-dev/palisade/enforcer/policy"
	"github.com/palisade-dev/palisade/internal/testkit/netpolcases"
)

// benchPolicies isolate and open parts of the upstream x/y/z × a/b/c
// cluster so that probes take every path: not isolated, allowed by a
// peer entry, by an any-peer entry, by a named port, and denied.
const benchPolicies = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "y"}}}]
    ports: [{port: 80}, {port: serve-81-udp, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-to-x, namespace: z}
spec:
  podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}, podSelector: {matchLabels: {pod: b}}}]
  - ports: [{port: 81, protocol: UDP}]
`

func benchCluster(b *testing.B) *Cluster {
	b.Helper()
	c := netpolcases.Case{Ports: []int32{80, 81}, Protocols: []corev1.Protocol{"TCP", "UDP"}}
	for _, ns := range []string{"x", "y", "z"} {
		for _, p := range []string{"a", "b", "c"} {
			c.Pods = append(c.Pods, ns+"/"+p)
		}
	}
	m, err := netpolcases.NewModel(&c, netpolcases.Families()[0])
	if err != nil {
		b.Fatal(err)
	}
	np, err := policy.ReadManifests("bench", strings.NewReader(benchPolicies))
	if err != nil {
		b.Fatal(err)
	}
	m.Cluster.Policies = np.Policies
	cl, err := FromObjects(m.Cluster)
	if err != nil {
		b.Fatal(err)
	}
	return cl
}

// BenchmarkJudge reports probes per second for the whole matrix (9 pods,
// 72 ordered pairs, 4 ports: 288 probes) per engine. The bpf figure
// includes two BPF_PROG_TEST_RUN syscalls per probe, the conntrack
// cleanup and one endpoint write per pod and direction.
func BenchmarkJudge(b *testing.B) {
	c := benchCluster(b)
	probes := Matrix(c.Pods, c.Pods, c.Ports)
	engines := []struct {
		name string
		new  func(b *testing.B) Engine
	}{
		{"model", func(*testing.B) Engine { return NewModelEngine(c.State) }},
		{"bpf", func(b *testing.B) Engine {
			e := newTestBPFEngine(b)
			if err := e.SetState(c.State); err != nil {
				b.Fatal(err)
			}
			return e
		}},
	}
	for _, eng := range engines {
		b.Run(fmt.Sprintf("%s/probes=%d", eng.name, len(probes)), func(b *testing.B) {
			e := eng.new(b)
			allowed := 0
			start := time.Now()
			for b.Loop() {
				res, err := e.Judge(probes)
				if err != nil {
					b.Fatal(err)
				}
				allowed = 0
				for _, r := range res {
					if r.Allowed() {
						allowed++
					}
				}
			}
			elapsed := time.Since(start)
			if allowed == 0 || allowed == len(probes) {
				b.Fatalf("%d of %d allowed: the policies do not discriminate", allowed, len(probes))
			}
			b.ReportMetric(float64(b.N*len(probes))/elapsed.Seconds(), "probes/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*len(probes)), "ns/probe")
		})
	}
}
