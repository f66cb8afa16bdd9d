package check

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/palisade-dev/palisade/enforcer/policy"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// requireBPF skips where BPF programs cannot be loaded, and fails instead
// when PALISADE_REQUIRE_PRIVILEGED=1.
func requireBPF(tb testing.TB) {
	tb.Helper()
	switch err := features.HaveProgramType(ebpf.SchedCLS); {
	case os.Geteuid() != 0:
		testenv.SkipOrFail(tb, "the bpf engine loads BPF programs, which needs root")
	case errors.Is(err, ebpf.ErrNotSupported):
		testenv.SkipOrFail(tb, "kernel lacks BPF sched_cls programs: %v", err)
	case err != nil:
		testenv.SkipOrFail(tb, "cannot probe BPF: %v", err)
	}
}

// newTestBPFEngine loads the programs once, with an empty State.
func newTestBPFEngine(tb testing.TB) *BPFEngine {
	tb.Helper()
	requireBPF(tb)
	st, err := policy.Compile(&policy.Cluster{}, policy.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := NewBPFEngine(st)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

func loadShop(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := Load("testdata/shop")
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func bytesReader(s string) *strings.Reader { return strings.NewReader(s) }

// rangesCluster has an endPort rule and an any-protocol rule.
func rangesCluster(tb testing.TB) *Cluster {
	tb.Helper()
	objs, err := policy.ReadManifests("ranges", strings.NewReader(`apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
status: {podIP: "fd00::1"}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
status: {podIP: "fd00::2"}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: range, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress, Egress]
  ingress:
  - ports: [{port: 8000, endPort: 8100}]
  egress:
  - to: [{podSelector: {matchLabels: {app: b}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: udp, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - ports: [{protocol: UDP}]
`))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := FromObjects(objs)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// everyPodCluster admits every pod of every namespace (the every-pod
// wildcard) into x/a on TCP 80, and into y/b on any port only the pods
// labelled app=a of every namespace (no wildcard); y/a's egress goes to
// every pod on UDP 53; x/b admits every IPv4 address on port 80 and
// every IPv6 one on 81 (the family wildcards). Every pod is dual-stack,
// IPv4 first (probed by IPv4) or, in everyPodCluster6, IPv6 first.
func everyPodCluster(tb testing.TB) *Cluster { return everyPodClusterOf(tb, false) }

func everyPodCluster6(tb testing.TB) *Cluster { return everyPodClusterOf(tb, true) }

func everyPodClusterOf(tb testing.TB, v6First bool) *Cluster {
	tb.Helper()
	var docs strings.Builder
	for i, p := range []string{"x/a", "x/b", "y/a", "y/b", "z/c"} {
		ns, name, _ := strings.Cut(p, "/")
		v4, v6 := fmt.Sprintf("10.0.0.%d", i+1), fmt.Sprintf("fd00::%d", i+1)
		if v6First {
			v4, v6 = v6, v4
		}
		fmt.Fprintf(&docs, "apiVersion: v1\nkind: Pod\nmetadata: {name: \"%s\", namespace: \"%s\", labels: {app: \"%s\"}}\nstatus: {podIP: \"%s\", podIPs: [{ip: \"%s\"}, {ip: \"%s\"}]}\n---\n", name, ns, name, v4, v4, v6)
	}
	docs.WriteString(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-every-pod, namespace: "x"}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{namespaceSelector: {}}]
    ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-every-a, namespace: "y"}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: a}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns-to-every-pod, namespace: "y"}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}, podSelector: {}}]
    ports: [{protocol: UDP, port: 53}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-every-address, namespace: "x"}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{ipBlock: {cidr: 0.0.0.0/0}}]
    ports: [{port: 80}]
  - from: [{ipBlock: {cidr: "::/0"}}]
    ports: [{port: 81}]
`)
	objs, err := policy.ReadManifests("every-pod", strings.NewReader(docs.String()))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := FromObjects(objs)
	if err != nil {
		tb.Fatal(err)
	}
	wildcards := map[policy.NumericIdentity]int{}
	for _, r := range c.State.Rules {
		wildcards[r.Peer]++
	}
	// Every pod: x/a ingress, y/a egress (y/b's names its peers); one
	// rule per family for x/b.
	if wildcards[policy.PeerAnyPod] != 2 || wildcards[policy.PeerAnyIPv4] != 1 || wildcards[policy.PeerAnyIPv6] != 1 {
		tb.Fatalf("fixture: wildcard rules %v, want 2 every-pod, 1 per family: %v", wildcards, c.State.Rules)
	}
	return c
}
