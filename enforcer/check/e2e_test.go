package check

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// The upstream Kubernetes network-policy e2e cases, ported as data in
// enforcer/policy/testdata/netpol-e2e (its README describes the record
// format), run through both engines of the checker.

const e2eDir = "../policy/testdata/netpol-e2e"

type e2eCase struct {
	Name      string            `json:"name"`
	Context   string            `json:"context"`
	Pods      []string          `json:"pods"`
	Ports     []int32           `json:"ports"`
	Protocols []corev1.Protocol `json:"protocols"`
	Steps     []e2eStep         `json:"steps"`
}

type e2eStep struct {
	Note            string                       `json:"note,omitempty"`
	DeletePolicies  []string                     `json:"deletePolicies,omitempty"`
	PodLabels       map[string]map[string]string `json:"podLabels,omitempty"`
	NamespaceLabels map[string]map[string]string `json:"namespaceLabels,omitempty"`
	Apply           string                       `json:"apply,omitempty"`
	Probes          []e2eProbe                   `json:"probes"`
}

type e2eProbe struct {
	Port     int             `json:"port"`
	Protocol corev1.Protocol `json:"protocol"`
	Expect   []e2eExpect     `json:"expect,omitempty"`
}

type e2eExpect struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Allow bool   `json:"allow"`
}

func loadE2ECases(t testing.TB) ([]string, map[string]e2eCase) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(e2eDir, "*.yaml"))
	if err != nil || len(files) < 40 {
		t.Fatalf("want the 48 upstream cases in %s, found %d (%v)", e2eDir, len(files), err)
	}
	out := map[string]e2eCase{}
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c e2eCase
		if err := yaml.UnmarshalStrict(data, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		names = append(names, name)
		out[name] = c
	}
	slices.Sort(names)
	return names, out
}

type e2eFamily struct {
	name string
	addr func(ns, pod int) netip.Addr
}

var e2eFamilies = []e2eFamily{
	{"ipv4", func(ns, pod int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(ns), byte(pod)}) }},
	{"ipv6", func(ns, pod int) netip.Addr {
		return netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x10, 14: byte(ns), 15: byte(pod)})
	}},
}

// e2eModel is the cluster one case runs against, changed step by step.
type e2eModel struct {
	objects *policy.Cluster
	pods    []policy.PodRef
	addr    map[string]netip.Addr
}

func newE2EModel(c *e2eCase, fam e2eFamily) (*e2eModel, error) {
	m := &e2eModel{objects: &policy.Cluster{}, addr: map[string]netip.Addr{}}
	for _, ns := range []string{"x", "y", "z"} {
		m.objects.Namespaces = append(m.objects.Namespaces, corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{corev1.LabelMetadataName: ns}},
		})
	}
	for _, p := range c.Pods {
		ns, name, ok := strings.Cut(p, "/")
		if !ok || len(ns) != 1 || len(name) != 1 || ns[0] < 'x' || ns[0] > 'z' || name[0] < 'a' || name[0] > 'z' {
			return nil, fmt.Errorf("pod %q: want <x|y|z>/<letter>", p)
		}
		a := fam.addr(int(ns[0]-'x')+1, int(name[0]-'a')+1)
		var ports []corev1.ContainerPort
		for _, proto := range c.Protocols {
			for _, port := range c.Ports {
				ports = append(ports, corev1.ContainerPort{
					Name: fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(proto))), Protocol: proto, ContainerPort: port,
				})
			}
		}
		m.objects.Pods = append(m.objects.Pods, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"pod": name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agnhost", Ports: ports}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: a.String()},
		})
		m.pods = append(m.pods, policy.PodRef{Namespace: ns, Name: name})
		m.addr[p] = a
	}
	return m, nil
}

var e2ePlaceholder = regexp.MustCompile(`\$\{[a-z]+:[a-z]/[a-z]\}`)

func (m *e2eModel) apply(st *e2eStep) error {
	for _, d := range st.DeletePolicies {
		m.objects.Policies = slices.DeleteFunc(m.objects.Policies, func(np networkingv1.NetworkPolicy) bool {
			return d == "*" || d == np.Namespace+"/"+np.Name
		})
	}
	for ref, add := range st.PodLabels {
		i := slices.IndexFunc(m.objects.Pods, func(p corev1.Pod) bool { return p.Namespace+"/"+p.Name == ref })
		if i < 0 {
			return fmt.Errorf("podLabels: no pod %s", ref)
		}
		for k, v := range add {
			m.objects.Pods[i].Labels[k] = v
		}
	}
	for ns, add := range st.NamespaceLabels {
		i := slices.IndexFunc(m.objects.Namespaces, func(n corev1.Namespace) bool { return n.Name == ns })
		if i < 0 {
			return fmt.Errorf("namespaceLabels: no namespace %s", ns)
		}
		for k, v := range add {
			m.objects.Namespaces[i].Labels[k] = v
		}
	}
	if st.Apply == "" {
		return nil
	}
	var bad error
	text := e2ePlaceholder.ReplaceAllStringFunc(st.Apply, func(s string) string {
		kind, pod, _ := strings.Cut(s[2:len(s)-1], ":")
		a, ok := m.addr[pod]
		if !ok {
			bad = fmt.Errorf("placeholder %s: no pod %s", s, pod)
			return s
		}
		switch kind {
		case "ip":
			return a.String()
		case "host":
			return netip.PrefixFrom(a, a.BitLen()).String()
		case "large":
			return netip.PrefixFrom(a, 4).Masked().String()
		}
		bad = fmt.Errorf("placeholder %s: unknown kind", s)
		return s
	})
	if bad != nil {
		return bad
	}
	c, err := policy.ReadManifests("apply", strings.NewReader(text))
	if err != nil {
		return err
	}
	for _, np := range c.Policies {
		m.objects.Policies = slices.DeleteFunc(m.objects.Policies, func(o networkingv1.NetworkPolicy) bool {
			return o.Namespace == np.Namespace && o.Name == np.Name
		})
		m.objects.Policies = append(m.objects.Policies, np)
	}
	return nil
}

func e2eSelects(sel string, pod policy.PodRef) bool {
	if sel == "*" {
		return true
	}
	ns, name, ok := strings.Cut(sel, "/")
	if !ok || name == "*" {
		return ns == pod.Namespace
	}
	return ns == pod.Namespace && name == pod.Name
}

// expectations turns one probe's matrix into the checker's expectations:
// all allowed, then each expect entry applied in order, as upstream's
// Reachability does.
func (m *e2eModel) expectations(p *e2eProbe) ([]Expectation, error) {
	proto, err := ParseProtocol(string(p.Protocol))
	if err != nil {
		return nil, err
	}
	var out []Expectation
	for _, probe := range Matrix(m.pods, m.pods, []Port{{Number: uint16(p.Port), Protocol: proto}}) {
		allowed := true
		for _, e := range p.Expect {
			if e2eSelects(e.From, probe.From) && e2eSelects(e.To, probe.To) {
				allowed = e.Allow
			}
		}
		out = append(out, Expectation{Probe: probe, Allowed: allowed})
	}
	return out, nil
}

// runE2E runs every case (IPv4 and IPv6), step and probe through each
// engine and checks the results against the expected matrix; with more
// than one engine, every result's reason and matched entries must also
// agree with the first engine's.
func runE2E(t *testing.T, engs []stateEngine) {
	names, cases := loadE2ECases(t)
	for _, name := range names {
		c := cases[name]
		for _, fam := range e2eFamilies {
			t.Run(name+"/"+fam.name, func(t *testing.T) {
				m, err := newE2EModel(&c, fam)
				if err != nil {
					t.Fatal(err)
				}
				for si := range c.Steps {
					st := &c.Steps[si]
					if err := m.apply(st); err != nil {
						t.Fatalf("step %d: %v", si, err)
					}
					cl, err := FromObjects(m.objects)
					if err != nil {
						t.Fatalf("step %d: %v", si, err)
					}
					for _, p := range st.Probes {
						want, err := m.expectations(&p)
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
