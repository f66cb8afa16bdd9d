package policy

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
)

// e2eCase is one upstream Kubernetes network-policy e2e test
// (test/e2e/network/netpol/network_policy.go, v1.36) as data.
type e2eCase struct {
	Name string `json:"name"`
	// Context is the upstream Describe/Context the test runs in.
	Context   string            `json:"context"`
	Pods      []string          `json:"pods"`
	Ports     []int32           `json:"ports"`
	Protocols []corev1.Protocol `json:"protocols"`
	Steps     []e2eStep         `json:"steps"`
}

// e2eStep changes the cluster, then probes it. Changes apply in field
// order: deletions, label changes, then policies.
type e2eStep struct {
	Note string `json:"note,omitempty"`
	// DeletePolicies lists "ns/name", or "*" for all.
	DeletePolicies []string `json:"deletePolicies,omitempty"`
	// PodLabels and NamespaceLabels are merged into the objects' labels.
	PodLabels       map[string]map[string]string `json:"podLabels,omitempty"`
	NamespaceLabels map[string]map[string]string `json:"namespaceLabels,omitempty"`
	// Apply holds NetworkPolicy documents, created or replaced. ${ip:x/a},
	// ${host:x/a} (its /32 or /128) and ${large:x/a} (the /4 around it, as
	// upstream's makeLargeCIDRForIP) stand for pod addresses.
	Apply  string     `json:"apply,omitempty"`
	Probes []e2eProbe `json:"probes"`
}

// e2eProbe is one reachability matrix: all pairs allowed, then each
// expectation applied in order, as upstream's Reachability does.
type e2eProbe struct {
	Port     int             `json:"port"`
	Protocol corev1.Protocol `json:"protocol"`
	Expect   []e2eExpect     `json:"expect,omitempty"`
}

// e2eExpect sets every pair From→To: "*" is every pod, "x" or "x/*" every
// pod of namespace x, "x/a" one pod.
type e2eExpect struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Allow bool   `json:"allow"`
}

func loadE2ECases(t testing.TB) map[string]e2eCase {
	t.Helper()
	files, err := filepath.Glob("testdata/netpol-e2e/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no e2e cases: %v", err)
	}
	out := map[string]e2eCase{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c e2eCase
		if err := yaml.UnmarshalStrict(data, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = c
	}
	return out
}

// e2eFamily places the model's pods in one address family.
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

// e2eModel is the cluster an upstream case runs against.
type e2eModel struct {
	cluster *Cluster
	pods    []string // "x/a", in model order
	addr    map[string]netip.Addr
}

func newE2EModel(c *e2eCase, fam e2eFamily) (*e2eModel, error) {
	m := &e2eModel{cluster: &Cluster{}, addr: map[string]netip.Addr{}}
	for _, ns := range []string{"x", "y", "z"} {
		m.cluster.Namespaces = append(m.cluster.Namespaces, corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{corev1.LabelMetadataName: ns}},
		})
	}
	for _, p := range c.Pods {
		ns, name, ok := strings.Cut(p, "/")
		if !ok || len(ns) != 1 || len(name) != 1 || ns[0] < 'x' || ns[0] > 'z' || name[0] < 'a' || name[0] > 'z' {
			return nil, fmt.Errorf("pod %q: want <x|y|z>/<letter>", p)
		}
		a := fam.addr(int(ns[0]-'x')+1, int(name[0]-'a')+1)
		pod := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"pod": name}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: a.String(), PodIPs: []corev1.PodIP{{IP: a.String()}}},
		}
		var ports []corev1.ContainerPort
		for _, proto := range c.Protocols {
			for _, port := range c.Ports {
				ports = append(ports, corev1.ContainerPort{
					Name: fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(proto))), Protocol: proto, ContainerPort: port,
				})
			}
		}
		pod.Spec.Containers = []corev1.Container{{Name: "agnhost", Ports: ports}}
		m.cluster.Pods = append(m.cluster.Pods, pod)
		m.pods = append(m.pods, p)
		m.addr[p] = a
	}
	return m, nil
}

func (m *e2eModel) expand(text string) (string, error) {
	var err error
	placeholder := regexp.MustCompile(`\$\{[a-z]+:[a-z]/[a-z]\}`)
	out := placeholder.ReplaceAllStringFunc(text, func(s string) string {
		kind, pod, _ := strings.Cut(s[2:len(s)-1], ":")
		a, ok := m.addr[pod]
		if !ok {
			err = fmt.Errorf("placeholder %s: no pod %s", s, pod)
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
		err = fmt.Errorf("placeholder %s: unknown kind", s)
		return s
	})
	return out, err
}

func (m *e2eModel) apply(st *e2eStep) error {
	for _, d := range st.DeletePolicies {
		m.cluster.Policies = slices.DeleteFunc(m.cluster.Policies, func(np networkingv1.NetworkPolicy) bool {
			return d == "*" || d == np.Namespace+"/"+np.Name
		})
	}
	for ref, add := range st.PodLabels {
		i := slices.IndexFunc(m.cluster.Pods, func(p corev1.Pod) bool { return p.Namespace+"/"+p.Name == ref })
		if i < 0 {
			return fmt.Errorf("podLabels: no pod %s", ref)
		}
		for k, v := range add {
			m.cluster.Pods[i].Labels[k] = v
		}
	}
	for ns, add := range st.NamespaceLabels {
		i := slices.IndexFunc(m.cluster.Namespaces, func(n corev1.Namespace) bool { return n.Name == ns })
		if i < 0 {
			return fmt.Errorf("namespaceLabels: no namespace %s", ns)
		}
		for k, v := range add {
			m.cluster.Namespaces[i].Labels[k] = v
		}
	}
	if st.Apply == "" {
		return nil
	}
	text, err := m.expand(st.Apply)
	if err != nil {
		return err
	}
	c, err := ReadManifests("apply", strings.NewReader(text))
	if err != nil {
		return err
	}
	if len(c.Ignored) > 0 || len(c.Pods) > 0 || len(c.Namespaces) > 0 {
		return fmt.Errorf("apply: only NetworkPolicies, got %v", c)
	}
	for _, np := range c.Policies {
		m.cluster.Policies = slices.DeleteFunc(m.cluster.Policies, func(o networkingv1.NetworkPolicy) bool {
			return o.Namespace == np.Namespace && o.Name == np.Name
		})
		m.cluster.Policies = append(m.cluster.Policies, np)
	}
	return nil
}

func peerMatches(sel, pod string) bool {
	if sel == "*" {
		return true
	}
	ns, name, _ := strings.Cut(pod, "/")
	sns, sname, ok := strings.Cut(sel, "/")
	if !ok || sname == "*" {
		return sns == ns
	}
	return sns == ns && sname == name
}

// expected returns the matrix a probe describes.
func (m *e2eModel) expected(p *e2eProbe) map[[2]string]bool {
	want := map[[2]string]bool{}
	for _, from := range m.pods {
		for _, to := range m.pods {
			want[[2]string{from, to}] = true
		}
	}
	for _, e := range p.Expect {
		for _, from := range m.pods {
			for _, to := range m.pods {
				if peerMatches(e.From, from) && peerMatches(e.To, to) {
					want[[2]string{from, to}] = e.Allow
				}
			}
		}
	}
	return want
}

func TestUpstreamNetpolE2E(t *testing.T) {
	cases := loadE2ECases(t)
	if len(cases) < 40 {
		t.Errorf("only %d upstream cases ported", len(cases))
	}
	for _, file := range sortedKeys(cases) {
		c := cases[file]
		for _, fam := range e2eFamilies {
			t.Run(file+"/"+fam.name, func(t *testing.T) {
				runE2ECase(t, &c, fam)
			})
		}
	}
}

func runE2ECase(t *testing.T, c *e2eCase, fam e2eFamily) {
	m, err := newE2EModel(c, fam)
	if err != nil {
		t.Fatal(err)
	}
	alloc := NewIdentityAllocator(nil)
	for si := range c.Steps {
		st := &c.Steps[si]
		if err := m.apply(st); err != nil {
			t.Fatalf("step %d: %v", si, err)
		}
		state, err := Compile(m.cluster, Options{Allocator: alloc})
		if err != nil {
			t.Fatalf("step %d: compile: %v", si, err)
		}
		fresh, err := Compile(m.cluster, Options{})
		if err != nil {
			t.Fatalf("step %d: compile: %v", si, err)
		}
		for _, p := range st.Probes {
			want := m.expected(&p)
			var wrong []string
			for _, from := range m.pods {
				for _, to := range m.pods {
					if from == to {
						continue // upstream ignores loopback
					}
					for _, s := range []*State{state, fresh} {
						v := Decide(s, Endpoint{IP: m.addr[from]}, Endpoint{IP: m.addr[to]}, protocolOf(p.Protocol), uint16(p.Port))
						if v.Allowed != want[[2]string{from, to}] {
							wrong = append(wrong, fmt.Sprintf("%s -> %s: want allowed=%v, got %s", from, to, want[[2]string{from, to}], v.Reason()))
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
