package datapath

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

const (
	fIn    = uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_INGRESS_ISOLATED)
	fOut   = uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_EGRESS_ISOLATED)
	fAudit = uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_AUDIT)
	allow  = uint8(bpf.PalisadePolicyVerdictPOLICY_ALLOW)
)

const allowFromClient = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: allow-client}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: http}]
---
`

const denyAll = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
`

func TestTranslateAllowList(t *testing.T) {
	s := compile(t, namespace("x")+pod("x", "server", "server", "10.0.0.2")+pod("x", "client", "client", "10.0.0.3")+allowFromClient)
	e, err := Translate(s, byIP(map[string]int{"10.0.0.2": 7, "10.0.0.3": 8}))
	if err != nil {
		t.Fatal(err)
	}
	server, client := identityOf(t, s, "10.0.0.2"), identityOf(t, s, "10.0.0.3")
	if got := e.IPs[ipKey(t, "10.0.0.2/32")]; got.Identity != server {
		t.Errorf("server address → %d, want %d", got.Identity, server)
	}
	if got := e.IPs[ipKey(t, "10.0.0.3/32")]; got.Identity != client {
		t.Errorf("client address → %d, want %d", got.Identity, client)
	}
	if got, want := e.Endpoints[7], (bpf.PalisadeEndpointValue{Identity: server, Flags: fIn}); got != want {
		t.Errorf("server endpoint %+v, want %+v", got, want)
	}
	if got, want := e.Endpoints[8], (bpf.PalisadeEndpointValue{Identity: client}); got != want {
		t.Errorf("client endpoint %+v, want %+v (not isolated)", got, want)
	}
	if e.Pods[7] != (policy.PodRef{Namespace: "x", Name: "server"}) {
		t.Errorf("ifindex 7 names %v", e.Pods[7])
	}
	// The named port resolves to 8080; one exact entry, ingress.
	k := bpf.PalisadePolicyKey{LocalIdentity: server, PeerIdentity: client, Direction: uint8(bpf.PalisadeDirectionDIR_INGRESS), Protocol: 6, Dport: 8080}
	v, ok := e.Policy[k]
	if !ok || len(e.Policy) != 1 {
		t.Fatalf("policy entries %v, want only %+v", e.Policy, k)
	}
	if v.Verdict != allow || v.RuleId == 0 {
		t.Errorf("policy value %+v, want allow with a rule id", v)
	}
	src, ok := s.RuleSource(v.RuleId)
	if !ok || src.Policy.Name != "allow-client" {
		t.Errorf("rule id %d names %+v, want allow-client", v.RuleId, src)
	}
	if len(e.PolicyRanges) != 0 || len(e.ServiceCIDRs) != 0 || len(e.Unresolved) != 0 {
		t.Errorf("unexpected ranges %v, services %v, unresolved %v", e.PolicyRanges, e.ServiceCIDRs, e.Unresolved)
	}
}

func TestTranslateFlags(t *testing.T) {
	cases := []struct {
		name     string
		ns       string
		policies string
		want     uint32
	}{
		{"no policy", namespace("x"), "", 0},
		{"deny all", namespace("x"), denyAll, fIn | fOut},
		{"deny all in audit mode", namespace("x", policy.AnnotationEnforcement+"=audit"), denyAll, fIn | fOut | fAudit},
		{"ingress only", namespace("x"), allowFromClient, fIn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := compile(t, c.ns+pod("x", "server", "server", "10.0.0.2")+c.policies)
			e, err := Translate(s, byIP(map[string]int{"10.0.0.2": 3}))
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Endpoints[3].Flags; got != c.want {
				t.Errorf("flags %#x, want %#x", got, c.want)
			}
		})
	}
}

func TestTranslatePortRangeAndWildcards(t *testing.T) {
	policies := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: p}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress, Egress]
  ingress:
  - ports: [{protocol: TCP, port: 1000, endPort: 1100}]
  egress:
  - to: [{ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}}]
---
`
	s := compile(t, namespace("x")+pod("x", "server", "server", "10.0.0.2")+policies)
	e, err := Translate(s, byIP(map[string]int{"10.0.0.2": 3}))
	if err != nil {
		t.Fatal(err)
	}
	server := identityOf(t, s, "10.0.0.2")

	// Ingress from any peer, ports 1000-1100: range entries only.
	want, err := bpf.NewPolicyRangeKeys(server, 0, bpf.PalisadeDirectionDIR_INGRESS, 6, 1000, 1100)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.PolicyRanges) != len(want) {
		t.Fatalf("%d range entries, want %d", len(e.PolicyRanges), len(want))
	}
	for _, k := range want {
		if v, ok := e.PolicyRanges[k]; !ok || v.Verdict != allow {
			t.Errorf("range key %+v missing", k)
		}
	}

	// Egress to the ipBlock: its CIDR identity, any protocol, any port;
	// the except prefix keeps another identity.
	block := s.Lookup(netip.MustParseAddr("192.168.7.7"))
	if block < policy.FirstCIDRIdentity {
		t.Fatalf("ipBlock address has identity %d, want a CIDR identity", block)
	}
	if got := e.IPs[ipKey(t, "192.168.0.0/16")].Identity; got != uint32(block) {
		t.Errorf("192.168.0.0/16 → %d, want %d", got, block)
	}
	if got := e.IPs[ipKey(t, "192.168.1.0/24")].Identity; got == uint32(block) {
		t.Errorf("except prefix shares the block's identity %d", got)
	}
	k := bpf.PalisadePolicyKey{LocalIdentity: server, PeerIdentity: uint32(block), Direction: uint8(bpf.PalisadeDirectionDIR_EGRESS)}
	if _, ok := e.Policy[k]; !ok {
		t.Errorf("no any-protocol egress entry %+v in %v", k, e.Policy)
	}
}

func TestTranslateIPv6AndMasking(t *testing.T) {
	s := &policy.State{IPs: []policy.IPEntry{
		{Prefix: netip.MustParsePrefix("10.1.2.3/8"), Identity: 300},
		{Prefix: netip.MustParsePrefix("fd00::5/128"), Identity: 301},
		{Prefix: netip.MustParsePrefix("::ffff:10.9.9.9/128"), Identity: 302},
	}}
	e, err := Translate(s, byIP(nil))
	if err != nil {
		t.Fatal(err)
	}
	for prefix, id := range map[string]uint32{"10.0.0.0/8": 300, "fd00::5/128": 301, "10.9.9.9/32": 302} {
		if got := e.IPs[ipKey(t, prefix)].Identity; got != id {
			t.Errorf("%s → %d, want %d", prefix, got, id)
		}
	}
	if len(e.IPs) != 3 {
		t.Errorf("%d ip entries, want 3", len(e.IPs))
	}
}

func TestTranslateUnresolvedEndpoints(t *testing.T) {
	s := compile(t, namespace("x")+pod("x", "a", "a", "10.0.0.2")+pod("x", "b", "b", "10.0.0.3")+pod("x", "c", "c", "10.0.0.4")+denyAll)
	// a and b claim one interface; c has none.
	e, err := Translate(s, byIP(map[string]int{"10.0.0.2": 5, "10.0.0.3": 5}))
	if err != nil {
		t.Fatal(err)
	}
	if e.Pods[5] != (policy.PodRef{Namespace: "x", Name: "a"}) || len(e.Endpoints) != 1 {
		t.Errorf("endpoints %v, want only x/a on 5", e.Pods)
	}
	for _, name := range []string{"b", "c"} {
		err := e.Unresolved[policy.PodRef{Namespace: "x", Name: name}]
		if err == nil || !strings.Contains(err.Error(), "x/"+name) {
			t.Errorf("unresolved x/%s: %v", name, err)
		}
	}
	if !strings.Contains(e.Unresolved[policy.PodRef{Namespace: "x", Name: "b"}].Error(), "already belongs to x/a") {
		t.Errorf("clash not named: %v", e.Unresolved)
	}
}

func TestTranslateRejects(t *testing.T) {
	rule := func(k policy.RuleKey) *policy.State {
		return &policy.State{Rules: []policy.Rule{{RuleKey: k, Sources: []uint32{1}}}}
	}
	cases := []struct {
		name  string
		state *policy.State
		want  string
	}{
		{"nil state", nil, "nil state"},
		{"port without protocol", rule(policy.RuleKey{Local: 300, Direction: policy.Ingress, Port: 80}), "a port needs a protocol"},
		{"bad direction", rule(policy.RuleKey{Local: 300, Direction: 9, Protocol: 6}), "invalid direction 9"},
		{"no local identity", rule(policy.RuleKey{Direction: policy.Egress, Protocol: 6}), "local identity 0"},
		{"inverted range", rule(policy.RuleKey{Local: 300, Direction: policy.Egress, Protocol: 6, Port: 90, EndPort: 80}), "start 90 after end 80"},
		{"range without start", rule(policy.RuleKey{Local: 300, Direction: policy.Egress, Protocol: 6, EndPort: 80}), "needs a start port"},
		{"identity 0 address", &policy.State{IPs: []policy.IPEntry{{Prefix: netip.MustParsePrefix("10.0.0.1/32")}}}, "10.0.0.1/32: identity 0"},
		{"invalid prefix", &policy.State{IPs: []policy.IPEntry{{Identity: 300}}}, "invalid prefix"},
		{"colliding prefixes", &policy.State{IPs: []policy.IPEntry{
			{Prefix: netip.MustParsePrefix("10.0.0.1/32"), Identity: 300},
			{Prefix: netip.MustParsePrefix("::ffff:10.0.0.1/128"), Identity: 301},
		}}, "same key as another prefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Translate(c.state, byIP(nil))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := Translate(&policy.State{}, nil); err == nil {
		t.Error("nil resolver accepted")
	}
}

func TestTranslateOverlappingRangesKeepLowerRuleID(t *testing.T) {
	s := &policy.State{Rules: []policy.Rule{
		{RuleKey: policy.RuleKey{Local: 300, Direction: policy.Ingress, Protocol: 6, Port: 1000, EndPort: 1023}, Sources: []uint32{9}},
		{RuleKey: policy.RuleKey{Local: 300, Direction: policy.Ingress, Protocol: 6, Port: 1000, EndPort: 1031}, Sources: []uint32{4}},
		{RuleKey: policy.RuleKey{Local: 300, Direction: policy.Ingress, Protocol: 6, Port: 443, EndPort: 443}, Sources: []uint32{5}},
	}}
	e, err := Translate(s, byIP(nil))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range e.PolicyRanges {
		if v.RuleId != 4 {
			t.Errorf("range key %+v has rule %d, want 4 (the lower)", k, v.RuleId)
		}
	}
	// A one-port range is an exact entry.
	k := bpf.PalisadePolicyKey{LocalIdentity: 300, Direction: uint8(policy.Ingress), Protocol: 6, Dport: 443}
	if e.Policy[k].RuleId != 5 {
		t.Errorf("443-443 not an exact entry: %v", e.Policy)
	}
}

func TestTranslateResolverErrorIsWrapped(t *testing.T) {
	sentinel := errors.New("gone")
	s := compile(t, namespace("x")+pod("x", "a", "a", "10.0.0.2"))
	e, err := Translate(s, func(policy.LocalEndpoint) (int, error) { return 0, sentinel })
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Unresolved[policy.PodRef{Namespace: "x", Name: "a"}]; !errors.Is(got, sentinel) {
		t.Errorf("unresolved error %v does not wrap the resolver's", got)
	}
}

func TestTranslateServicesAndPodAddresses(t *testing.T) {
	s := compile(t, namespace("x")+pod("x", "a", "a", "10.0.0.2,fd00::2")+pod("x", "b", "b", "10.0.0.3")+pod("x", "c", "c", "10.0.0.9"))
	services := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd00:96::/112"), netip.MustParsePrefix("10.97.0.1/16")}
	e, err := Translate(s, byIP(map[string]int{"10.0.0.2": 7, "10.0.0.3": 8}), services...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"10.96.0.0/16", "fd00:96::/112", "10.97.0.0/16"} {
		if _, ok := e.ServiceCIDRs[ipKey(t, p)]; !ok {
			t.Errorf("service range %s missing from %v", p, e.ServiceCIDRs)
		}
	}
	if len(e.ServiceCIDRs) != 3 {
		t.Errorf("%d service ranges, want 3", len(e.ServiceCIDRs))
	}
	want := map[string]uint32{"10.0.0.2": 7, "fd00::2": 7, "10.0.0.3": 8}
	if len(e.EndpointIPs) != len(want) {
		t.Errorf("pod addresses %v, want %v (the unresolved pod has none)", e.EndpointIPs, want)
	}
	for a, idx := range want {
		k, _ := NewAddrKey(netip.MustParseAddr(a))
		if got := e.EndpointIPs[k]; got.Ifindex != idx {
			t.Errorf("%s → interface %d, want %d", a, got.Ifindex, idx)
		}
	}
	if _, err := Translate(s, byIP(nil), netip.Prefix{}); err == nil || !strings.Contains(err.Error(), "translate service range") {
		t.Errorf("invalid service range: error %v", err)
	}
}
