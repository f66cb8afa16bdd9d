package check

import (
	"testing"

	"github.com/palisade-dev/palisade/enforcer/policy"
	"github.com/palisade-dev/palisade/internal/testkit/netpolcases"
)

// The upstream Kubernetes network-policy e2e cases (internal/testkit/netpolcases)
// run through both engines of the checker.

// expectations turns one probe's matrix into the checker's expectations.
func expectations(m *netpolcases.Model, p *netpolcases.Probe) ([]Expectation, error) {
	proto, err := ParseProtocol(string(p.Protocol))
	if err != nil {
		return nil, err
	}
	var out []Expectation
	for _, probe := range Matrix(m.Pods, m.Pods, []Port{{Number: uint16(p.Port), Protocol: proto}}) {
		out = append(out, Expectation{Probe: probe, Allowed: p.Allows(probe.From, probe.To)})
	}
	return out, nil
}

// runE2E runs every case (IPv4 and IPv6), step and probe through each
// engine and checks the results against the expected matrix; with more
// than one engine, every result's reason and matched entries must also
// agree with the first engine's.
func runE2E(t *testing.T, engs []stateEngine) {
	cases, err := netpolcases.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Fatalf("want the 48 upstream cases, found %d", len(cases))
	}
	for _, c := range cases {
		for _, fam := range netpolcases.Families() {
			t.Run(c.File+"/"+fam.Name, func(t *testing.T) {
				m, err := netpolcases.NewModel(&c, fam)
				if err != nil {
					t.Fatal(err)
				}
				for si := range c.Steps {
					st := &c.Steps[si]
					if err := m.Apply(st); err != nil {
						t.Fatalf("step %d: %v", si, err)
					}
					cl, err := FromObjects(m.Cluster)
					if err != nil {
						t.Fatalf("step %d: %v", si, err)
					}
					for _, p := range st.Probes {
						want, err := expectations(m, &p)
						if err != nil {
							t.Fatalf("step %d: %v", si, err)
						}
						probes := WithExpectations(nil, want)
						var first []Result
						for _, e := range engs {
							got, err := e.judge(cl.State, probes)
							if err != nil {
								t.Fatalf("step %d: %s: %v", si, e.name, err)
							}
							mismatches, err := Compare(want, got)
							if err != nil {
								t.Fatal(err)
							}
							for _, mm := range mismatches {
								t.Errorf("step %d (%s): engine %s: %s", si, st.Note, e.name, mm)
							}
							if first == nil {
								first = got
								continue
							}
							for i := range got {
								if a, b := first[i].Reason(), got[i].Reason(); a != b {
									t.Errorf("step %d: %s: engines disagree:\n  %s: %s\n  %s: %s", si, got[i].Probe, engs[0].name, a, e.name, b)
								}
								if a, b := first[i].Verdict.Egress.Rule, got[i].Verdict.Egress.Rule; a != b {
									t.Errorf("step %d: %s: egress entry: %s says %s, %s says %s", si, got[i].Probe, engs[0].name, a, e.name, b)
								}
								if a, b := first[i].Verdict.Ingress.Rule, got[i].Verdict.Ingress.Rule; a != b {
									t.Errorf("step %d: %s: ingress entry: %s says %s, %s says %s", si, got[i].Probe, engs[0].name, a, e.name, b)
								}
							}
						}
					}
				}
			})
		}
	}
}

// stateEngine judges probes against a given State.
type stateEngine struct {
	name  string
	judge func(*policy.State, []Probe) ([]Result, error)
}

func modelStateEngine() stateEngine {
	return stateEngine{name: "model", judge: func(st *policy.State, p []Probe) ([]Result, error) {
		return NewModelEngine(st).Judge(p)
	}}
}

func TestNetpolE2EModel(t *testing.T) {
	runE2E(t, []stateEngine{modelStateEngine()})
}

func TestNetpolE2EBPFAgreesWithModel(t *testing.T) {
	eng := newTestBPFEngine(t)
	bpfEngine := stateEngine{name: "bpf", judge: func(st *policy.State, p []Probe) ([]Result, error) {
		if err := eng.SetState(st); err != nil {
			return nil, err
		}
		return eng.Judge(p)
	}}
	runE2E(t, []stateEngine{modelStateEngine(), bpfEngine})
}
