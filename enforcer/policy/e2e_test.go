package policy_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/palisade-dev/palisade/enforcer/policy"
	"github.com/palisade-dev/palisade/internal/testkit/netpolcases"
)

// TestUpstreamNetpolE2E runs every upstream case (internal/testkit/netpolcases)
// through Compile and Decide, with IPv4 and IPv6 addresses, and with both
// a fresh numbering and one allocator carried across the steps.
func TestUpstreamNetpolE2E(t *testing.T) {
	cases, err := netpolcases.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Errorf("only %d upstream cases ported", len(cases))
	}
	for i := range cases {
		for _, fam := range netpolcases.Families() {
			t.Run(cases[i].File+"/"+fam.Name, func(t *testing.T) {
				runE2ECase(t, &cases[i], fam)
			})
		}
	}
}

func runE2ECase(t *testing.T, c *netpolcases.Case, fam netpolcases.Family) {
	m, err := netpolcases.NewModel(c, fam)
	if err != nil {
		t.Fatal(err)
	}
	alloc := policy.NewIdentityAllocator(nil)
	for si := range c.Steps {
		st := &c.Steps[si]
		if err := m.Apply(st); err != nil {
			t.Fatalf("step %d: %v", si, err)
		}
		state, err := policy.Compile(m.Cluster, policy.Options{Allocator: alloc})
		if err != nil {
			t.Fatalf("step %d: compile: %v", si, err)
		}
		fresh, err := policy.Compile(m.Cluster, policy.Options{})
		if err != nil {
			t.Fatalf("step %d: compile: %v", si, err)
		}
		for _, p := range st.Probes {
			var wrong []string
			for _, from := range m.Pods {
				for _, to := range m.Pods {
					if from == to {
						continue // upstream ignores loopback
					}
					want := p.Allows(from, to)
					for _, s := range []*policy.State{state, fresh} {
						v := policy.Decide(s, policy.Endpoint{IP: m.Addr[from]}, policy.Endpoint{IP: m.Addr[to]}, protocolOf(p.Protocol), uint16(p.Port))
						if v.Allowed != want {
							wrong = append(wrong, fmt.Sprintf("%s -> %s: want allowed=%v, got %s", from, to, want, v.Reason()))
							break
						}
					}
				}
			}
			if len(wrong) > 0 {
				t.Errorf("step %d (%s) probe %s/%d:\n  %s", si, st.Note, p.Protocol, p.Port, strings.Join(wrong, "\n  "))
			}
		}
	}
}

func protocolOf(p corev1.Protocol) policy.Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return policy.ProtocolUDP
	case corev1.ProtocolSCTP:
		return policy.ProtocolSCTP
	}
	return policy.ProtocolTCP
}
