// Package netpolcases holds the upstream Kubernetes network-policy e2e
// tests (test/e2e/network/netpol/network_policy.go, v1.36) as data, and the
// model cluster they run against, so that the compiler's tests and both
// engines of the offline checker judge exactly the same cases, loaded and
// set up one way. cases/README.md describes the record format.
package netpolcases

import (
	"embed"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

//go:embed cases/*.yaml
var caseFiles embed.FS

// Case is one upstream test.
type Case struct {
	// File is the record's file name without ".yaml"; it names the case
	// in test output.
	File string `json:"-"`
	Name string `json:"name"`
	// Context is the upstream Describe/Context the test runs in.
	Context   string            `json:"context"`
	Pods      []string          `json:"pods"`
	Ports     []int32           `json:"ports"`
	Protocols []corev1.Protocol `json:"protocols"`
	Steps     []Step            `json:"steps"`
}

// Step changes the cluster, then probes it. Changes apply in field
// order: deletions, label changes, then policies.
type Step struct {
	Note string `json:"note,omitempty"`
	// DeletePolicies lists "ns/name", or "*" for all.
	DeletePolicies []string `json:"deletePolicies,omitempty"`
	// PodLabels and NamespaceLabels are merged into the objects' labels.
	PodLabels       map[string]map[string]string `json:"podLabels,omitempty"`
	NamespaceLabels map[string]map[string]string `json:"namespaceLabels,omitempty"`
	// Apply holds NetworkPolicy documents, created or replaced. ${ip:x/a},
	// ${host:x/a} (its /32 or /128) and ${large:x/a} (the /4 around it, as
	// upstream's makeLargeCIDRForIP) stand for pod addresses.
	Apply  string  `json:"apply,omitempty"`
	Probes []Probe `json:"probes"`
}

// Probe is one reachability matrix: all pairs allowed, then each
// expectation applied in order, as upstream's Reachability does.
type Probe struct {
	Port     int             `json:"port"`
	Protocol corev1.Protocol `json:"protocol"`
	Expect   []Expect        `json:"expect,omitempty"`
}

// Expect sets every pair From→To: "*" is every pod, "x" or "x/*" every
// pod of namespace x, "x/a" one pod.
type Expect struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Allow bool   `json:"allow"`
}

// Load returns every case, by file name. A record with a field this
// package does not know is an error, so that a typo cannot silently
// drop an expectation.
func Load() ([]Case, error) {
	names, err := fs.Glob(caseFiles, "cases/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list netpol e2e cases: %w", err)
	}
	slices.Sort(names)
	out := make([]Case, 0, len(names))
	for _, name := range names {
		data, err := caseFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read netpol e2e case: %w", err)
		}
		var c Case
		if err := yaml.UnmarshalStrict(data, &c); err != nil {
			return nil, fmt.Errorf("read netpol e2e case %s: %w", name, err)
		}
		c.File = strings.TrimSuffix(path.Base(name), ".yaml")
		out = append(out, c)
	}
	return out, nil
}

// Allows reports whether the probe expects traffic from → to to pass.
func (p *Probe) Allows(from, to policy.PodRef) bool {
	allowed := true
	for _, e := range p.Expect {
		if selects(e.From, from) && selects(e.To, to) {
			allowed = e.Allow
		}
	}
	return allowed
}

func selects(sel string, pod policy.PodRef) bool {
	if sel == "*" {
		return true
	}
	ns, name, ok := strings.Cut(sel, "/")
	if !ok || name == "*" {
		return ns == pod.Namespace
	}
	return ns == pod.Namespace && name == pod.Name
}

// Family places a model's pods in one address family.
type Family struct {
	Name string
	// Addr returns the address of pod number pod (a=1) of namespace
	// number ns (x=1).
	Addr func(ns, pod int) netip.Addr
}

// Families returns IPv4 (10.0.<ns>.<pod>) and IPv6 (fd00:10::<ns><pod>).
func Families() []Family {
	return []Family{
		{"ipv4", func(ns, pod int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(ns), byte(pod)}) }},
		{"ipv6", func(ns, pod int) netip.Addr {
			return netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x10, 14: byte(ns), 15: byte(pod)})
		}},
	}
}
