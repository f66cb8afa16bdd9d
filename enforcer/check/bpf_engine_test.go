package check

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// The bpf engine must return exactly the model's verdicts: allowed or not,
// identities, isolating policies, the allowing rule and its entry.
func TestBPFEngineMatchesModelVerdicts(t *testing.T) {
	eng := newTestBPFEngine(t)
	for _, tc := range []struct {
		name    string
		cluster func(testing.TB) *Cluster
		ports   []Port
	}{
		{"shop", loadShop, append(loadShop(t).Ports, Port{53, policy.ProtocolUDP}, Port{9, policy.ProtocolSCTP})},
		{"audit", auditCluster, []Port{{80, policy.ProtocolTCP}}},
		{"every pod", everyPodCluster, []Port{{80, policy.ProtocolTCP}, {81, policy.ProtocolTCP}, {53, policy.ProtocolUDP}}},
		{"every pod, IPv6", everyPodCluster6, []Port{{80, policy.ProtocolTCP}, {81, policy.ProtocolTCP}, {53, policy.ProtocolUDP}}},
		{"ranges", rangesCluster, []Port{{7999, policy.ProtocolTCP}, {8000, policy.ProtocolTCP}, {8050, policy.ProtocolTCP}, {8100, policy.ProtocolTCP}, {8101, policy.ProtocolTCP}, {8050, policy.ProtocolUDP}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cluster(t)
			if err := eng.SetState(c.State); err != nil {
				t.Fatal(err)
			}
			probes := Matrix(c.Pods, c.Pods, tc.ports)
			want := judgeShop(t, c, probes)
			got, err := eng.Judge(probes)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("%s:\n  bpf   %+v\n  model %+v", want[i].Probe, got[i].Verdict, want[i].Verdict)
					continue
				}
				var a, b bytes.Buffer
				WriteExplanation(&a, c.State, got[i])
				WriteExplanation(&b, c.State, want[i])
				if a.String() != b.String() {
					t.Errorf("explanations differ:\n%s\n%s", a.String(), b.String())
				}
			}
		})
	}
}

func TestBPFEngineAuditModeReportsDenials(t *testing.T) {
	eng := newTestBPFEngine(t)
	c := auditCluster(t)
	if err := eng.SetState(c.State); err != nil {
		t.Fatal(err)
	}
	res, err := eng.Judge([]Probe{{From: pod("y/b"), To: pod("x/a"), Port: Port{80, policy.ProtocolTCP}}})
	if err != nil {
		t.Fatal(err)
	}
	v := res[0].Verdict
	if v.Allowed || !v.Passes || !v.Ingress.Audit {
		t.Errorf("audit-mode denial: allowed=%v passes=%v audit=%v; want denied, passing, audit", v.Allowed, v.Passes, v.Ingress.Audit)
	}
}

// SetState must remove the previous State's entries: what a policy
// allowed stops being allowed once the policy is gone.
func TestBPFEngineSetStateReplacesEntries(t *testing.T) {
	eng := newTestBPFEngine(t)
	shop := loadShop(t)
	probe := []Probe{{From: pod("shop/web"), To: pod("db/postgres"), Port: Port{5432, policy.ProtocolTCP}}}
	judge := func(st *policy.State) bool {
		t.Helper()
		if err := eng.SetState(st); err != nil {
			t.Fatal(err)
		}
		res, err := eng.Judge(probe)
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Allowed()
	}
	if !judge(shop.State) {
		t.Fatal("shop: web -> postgres denied, want allowed")
	}
	// The same pods with only a default-deny: a stale allow entry would
	// still let web in.
	objs, err := policy.LoadManifests("testdata/shop/namespaces.yaml", "testdata/shop/pods.yaml")
	if err != nil {
		t.Fatal(err)
	}
	deny, err := policy.ReadManifests("deny", bytesReader("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: db}\nspec: {podSelector: {}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	objs.Policies = deny.Policies
	denied, err := FromObjects(objs)
	if err != nil {
		t.Fatal(err)
	}
	if judge(denied.State) {
		t.Error("after SetState without the allowing policy: allowed, want denied")
	}
	if !judge(shop.State) {
		t.Error("back to shop: denied, want allowed")
	}
}
