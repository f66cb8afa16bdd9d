package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// compile builds a State from manifests the way the agent does: through
// the compiler's public API, for the pods on node "node1".
func compile(t testing.TB, manifests string) *policy.State {
	t.Helper()
	c, err := policy.ReadManifests("test", strings.NewReader(manifests))
	if err != nil {
		t.Fatalf("read manifests: %v", err)
	}
	s, err := policy.Compile(c, policy.Options{NodeName: "node1"})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

// namespace renders a Namespace document.
func namespace(name string, annotations ...string) string {
	doc := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %q\n  labels: {env: dev}\n", name)
	if len(annotations) > 0 {
		doc += "  annotations:\n"
		for _, a := range annotations {
			k, v, _ := strings.Cut(a, "=")
			doc += fmt.Sprintf("    %s: %q\n", k, v)
		}
	}
	return doc + "---\n"
}

// pod renders a running Pod on node1 with the app label and one IP per
// entry of ips (comma-separated). Containers declare TCP port 8080 as
// "http".
func pod(ns, name, app, ips string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  namespace: %q\n  name: %q\n  labels: {app: %s, tier: backend, env: dev}\n", ns, name, app)
	b.WriteString("spec:\n  nodeName: node1\n  containers:\n  - name: c\n    image: x\n    ports:\n    - {name: http, containerPort: 8080, protocol: TCP}\n")
	list := strings.Split(ips, ",")
	fmt.Fprintf(&b, "status:\n  phase: Running\n  podIP: %s\n  podIPs:\n", list[0])
	for _, ip := range list {
		fmt.Fprintf(&b, "  - ip: %s\n", ip)
	}
	b.WriteString("---\n")
	return b.String()
}

// byIP resolves endpoints from a table of pod addresses.
func byIP(table map[string]int) IfindexFunc {
	return func(ep policy.LocalEndpoint) (int, error) {
		for _, a := range ep.IPs {
			if idx, ok := table[a.String()]; ok {
				return idx, nil
			}
		}
		return 0, errors.New("no interface")
	}
}

func ipKey(t testing.TB, prefix string) bpf.PalisadeIpKey {
	t.Helper()
	k, err := bpf.NewIPKey(netip.MustParsePrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func identityOf(t testing.TB, s *policy.State, ip string) uint32 {
	t.Helper()
	id := s.Lookup(netip.MustParseAddr(ip))
	if id < policy.FirstWorkloadIdentity {
		t.Fatalf("%s has no workload identity (%d)", ip, id)
	}
	return uint32(id)
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
