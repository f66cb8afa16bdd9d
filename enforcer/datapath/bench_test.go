package datapath

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// The policies a benchmark adds: one that selects only on identity
// labels, and one whose namespaceSelector reads a namespace label no
// policy read before.
const (
	addedSameNamespace = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: ns0, name: added}
spec:
  podSelector: {matchLabels: {app: app3}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: app5}}}]
    ports: [{protocol: TCP, port: 9000}]
---
`
	addedCrossNamespace = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: ns0, name: added}
spec:
  podSelector: {matchLabels: {app: app3}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns1}}, podSelector: {matchLabels: {app: app5}}}]
    ports: [{protocol: TCP, port: 9000}]
---
`
)

// benchCluster renders pods pods over 20 namespaces, 10 apps per
// namespace, each namespace default-denied with its frontends allowed to
// its backends, plus the policies in extra.
func benchCluster(pods int, extra string) string {
	var b strings.Builder
	const namespaces = 20
	for n := range namespaces {
		ns := fmt.Sprintf("ns%d", n)
		b.WriteString(namespace(ns))
		b.WriteString(strings.ReplaceAll(denyAll, "namespace: x", "namespace: "+ns))
		fmt.Fprintf(&b, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: %s, name: frontend-to-backend}
spec:
  podSelector: {matchLabels: {app: app1}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: app0}}}]
    ports: [{protocol: TCP, port: 8080}]
---
`, ns)
	}
	for i := range pods {
		b.WriteString(pod(fmt.Sprintf("ns%d", i%namespaces), fmt.Sprintf("p%d", i), fmt.Sprintf("app%d", i/namespaces%10), podAddr(i)))
	}
	b.WriteString(extra)
	return b.String()
}

func podAddr(i int) string { return fmt.Sprintf("10.200.%d.%d", i/250, i%250+1) }

// BenchmarkSyncOnePolicyChange measures a Sync that adds or removes one
// NetworkPolicy on a node with 1k enforced endpoints (ifb interfaces in
// a node namespace, both programs attached to each).
func BenchmarkSyncOnePolicyChange(b *testing.B) {
	for _, bc := range []struct{ name, added string }{
		{"same-namespace", addedSameNamespace},
		{"new-namespace-selector", addedCrossNamespace},
	} {
		b.Run(bc.name, func(b *testing.B) { benchmarkSync(b, bc.added) })
	}
}

func benchmarkSync(b *testing.B, added string) {
	requireKernel(b)
	const pods = 1000
	node := newTestNode(b)
	var batch strings.Builder
	for i := range pods {
		fmt.Fprintf(&batch, "link add e%d type ifb\nlink set e%d up\n", i, i)
	}
	cmd := exec.Command("ip", "-n", node.name, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("create interfaces: %v\n%s", err, out)
	}
	f, err := NewInterfaceFinder(node.path())
	if err != nil {
		b.Fatal(err)
	}
	index := map[string]int{}
	links, err := f.h.LinkList()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range links {
		index[l.Attrs().Name] = l.Attrs().Index
	}
	f.Close()
	resolve := func(ep policy.LocalEndpoint) (int, error) {
		var i int
		if _, err := fmt.Sscanf(ep.Pod.Name, "p%d", &i); err != nil {
			return 0, err
		}
		return index[fmt.Sprintf("e%d", i)], nil
	}

	alloc := policy.NewIdentityAllocator(nil)
	states := [2]*policy.State{}
	for i, extra := range []string{"", added} {
		c, err := policy.ReadManifests("bench", strings.NewReader(benchCluster(pods, extra)))
		if err != nil {
			b.Fatal(err)
		}
		if states[i], err = policy.Compile(c, policy.Options{NodeName: "node1", Allocator: alloc}); err != nil {
			b.Fatal(err)
		}
	}

	d, err := Open(Options{PinDir: testPinDir(b), NetNS: node.path()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Remove() })
	ctx := context.Background()
	first, err := d.Sync(ctx, states[0], resolve)
	if err != nil || first.LinksAttached != pods {
		b.Fatalf("initial sync: %v (%d links attached)", err, first.LinksAttached)
	}
	b.Logf("initial sync of %d endpoints: %v, fill %v", pods, first.Duration, first.Fill)

	var last SyncStats
	i := 0
	for b.Loop() {
		i++
		last, err = d.Sync(ctx, states[i%2], resolve)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(last.RevisionsBumped), "bumped/op")
	b.Logf("last sync: writes %v, quarantined %d", last.Writes, last.Quarantined)
}
