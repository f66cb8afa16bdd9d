package check

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/palisade-dev/palisade/enforcer/policy"
	"github.com/palisade-dev/palisade/internal/testenv"
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
