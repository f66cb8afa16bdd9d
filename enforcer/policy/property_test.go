package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// genCluster builds a random but valid cluster: few label keys and values
// so that selectors often match, addresses clustered so that ipBlocks and
// their excepts cut through pods.
type genCluster struct {
	r *rand.Rand
}

var (
	genNamespaces = []string{"ns0", "ns1", "ns2"}
	genKeys       = []string{"app", "tier", "role"}
	genValues     = []string{"v1", "v2"}
	genHost       = netip.MustParseAddr("192.168.0.1")
)

func (g genCluster) pick(list []string) string { return list[g.r.IntN(len(list))] }

func (g genCluster) labels(keys []string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		if g.r.IntN(3) > 0 {
			out[k] = g.pick(genValues)
		}
	}
	return out
}

func (g genCluster) selector(keys []string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{}
	switch g.r.IntN(4) {
	case 0: // everything
	case 1:
		s.MatchLabels = map[string]string{g.pick(keys): g.pick(genValues)}
	default:
		for n := 1 + g.r.IntN(2); n > 0; n-- {
			req := metav1.LabelSelectorRequirement{Key: g.pick(keys)}
			switch g.r.IntN(4) {
			case 0:
				req.Operator, req.Values = metav1.LabelSelectorOpIn, []string{g.pick(genValues)}
			case 1:
				req.Operator, req.Values = metav1.LabelSelectorOpNotIn, []string{g.pick(genValues)}
			case 2:
				req.Operator = metav1.LabelSelectorOpExists
			default:
				req.Operator = metav1.LabelSelectorOpDoesNotExist
			}
			s.MatchExpressions = append(s.MatchExpressions, req)
		}
	}
	return s
}

func (g genCluster) addr4() netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(g.r.IntN(2)), 0, byte(g.r.IntN(32))})
}

func (g genCluster) addr6() netip.Addr {
	return netip.AddrFrom16([16]byte{0xfd, 15: byte(g.r.IntN(32))})
}

func (g genCluster) ipBlock() *networkingv1.IPBlock {
	switch g.r.IntN(7) {
	case 5: // every IPv4 address: the family wildcard
		return &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}
	case 6:
		return &networkingv1.IPBlock{CIDR: "::/0"}
	case 0:
		return &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.1.0.0/16"}}
	case 1:
		return &networkingv1.IPBlock{CIDR: "10.0.0.0/27", Except: []string{fmt.Sprintf("10.0.0.%d/29", 8*g.r.IntN(4))}}
	case 2:
		a := g.addr4()
		return &networkingv1.IPBlock{CIDR: netip.PrefixFrom(a, 32).String()}
	case 3:
		return &networkingv1.IPBlock{CIDR: "fd00::/120", Except: []string{fmt.Sprintf("fd00::%x/124", 16*g.r.IntN(2))}}
	}
	return &networkingv1.IPBlock{CIDR: "192.168.0.0/24"}
}

var genNamedPorts = []corev1.ContainerPort{
	{Name: "http", ContainerPort: 80},
	{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
	{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
	{Name: "web", ContainerPort: 81, Protocol: corev1.ProtocolSCTP},
	{Name: "alt", ContainerPort: 85, Protocol: corev1.ProtocolTCP},
}

func (g genCluster) ports() []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for n := g.r.IntN(3); n > 0; n-- {
		p := networkingv1.NetworkPolicyPort{}
		if g.r.IntN(3) > 0 {
			proto := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}[g.r.IntN(3)]
			p.Protocol = &proto
		}
		switch g.r.IntN(5) {
		case 0: // every port
		case 1, 2:
			v := intstr.FromInt32([]int32{80, 81, 53, 8080}[g.r.IntN(4)])
			p.Port = &v
		case 3:
			v, end := intstr.FromInt32(80), int32(80+g.r.IntN(10))
			p.Port, p.EndPort = &v, &end
		default:
			v := intstr.FromString(g.pick([]string{"http", "dns", "web", "alt", "none"}))
			p.Port = &v
		}
		out = append(out, p)
	}
	return out
}

func (g genCluster) peers() []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for n := g.r.IntN(3); n > 0; n-- {
		var p networkingv1.NetworkPolicyPeer
		switch g.r.IntN(4) {
		case 0:
			p.PodSelector = g.selector(genKeys)
		case 1:
			p.NamespaceSelector = g.selector([]string{"team", corev1.LabelMetadataName})
		case 2:
			p.PodSelector = g.selector(genKeys)
			p.NamespaceSelector = g.selector([]string{"team"})
		default:
			p.IPBlock = g.ipBlock()
		}
		out = append(out, p)
	}
	return out
}

func (g genCluster) cluster() *Cluster {
	c := &Cluster{}
	for _, ns := range genNamespaces {
		n := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{}}}
		if g.r.IntN(2) == 0 {
			n.Labels["team"] = g.pick(genValues)
		}
		c.Namespaces = append(c.Namespaces, n)
	}
	used := map[netip.Addr]bool{genHost: true}
	for i := 4 + g.r.IntN(10); i > 0; i-- {
		pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Namespace: g.pick(genNamespaces), Name: fmt.Sprintf("p%d", i), Labels: g.labels(genKeys),
		}}
		// Often a look-alike of an earlier pod: same namespace and labels,
		// other ports and addresses, which identities must still tell
		// apart where policies can.
		if len(c.Pods) > 0 && g.r.IntN(2) == 0 {
			twin := c.Pods[g.r.IntN(len(c.Pods))]
			pod.Namespace, pod.Labels = twin.Namespace, map[string]string{}
			for k, v := range twin.Labels {
				pod.Labels[k] = v
			}
		}
		pod.Spec.NodeName = g.pick([]string{"node-a", "node-b"})
		var ports []corev1.ContainerPort
		seen := map[string]bool{}
		for _, p := range genNamedPorts {
			if g.r.IntN(2) == 0 && !seen[p.Name] {
				seen[p.Name] = true
				ports = append(ports, p)
			}
		}
		pod.Spec.Containers = []corev1.Container{{Name: "c", Ports: ports}}
		addrs := []netip.Addr{g.addr4()}
		if g.r.IntN(3) == 0 {
			addrs = append(addrs, g.addr6())
		}
		for _, a := range addrs {
			if !used[a] {
				used[a] = true
				pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: a.String()})
			}
		}
		if len(pod.Status.PodIPs) > 0 {
			pod.Status.PodIP = pod.Status.PodIPs[0].IP
		}
		c.Pods = append(c.Pods, pod)
	}
	for i := g.r.IntN(6); i > 0; i-- {
		np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: g.pick(genNamespaces), Name: fmt.Sprintf("np%d", i)}}
		np.Spec.PodSelector = *g.selector(genKeys)
		switch g.r.IntN(4) {
		case 1:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		case 2:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		case 3:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		}
		for n := g.r.IntN(3); n > 0; n-- {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: g.peers(), Ports: g.ports()})
		}
		for n := g.r.IntN(3); n > 0; n-- {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: g.peers(), Ports: g.ports()})
		}
		c.Policies = append(c.Policies, np)
	}
	return c
}

// endpoints returns every address worth probing, the host last.
func (g genCluster) endpoints(c *Cluster) []refPeer {
	var out []refPeer
	for _, p := range c.Pods {
		for _, ip := range p.Status.PodIPs {
			out = append(out, refPeer{addr: netip.MustParseAddr(ip.IP)})
		}
	}
	for i := 0; i < 4; i++ {
		out = append(out, refPeer{addr: g.addr4()}, refPeer{addr: g.addr6()})
	}
	out = append(out, refPeer{addr: netip.MustParseAddr("8.8.8.8")}, refPeer{addr: netip.MustParseAddr("192.168.0.7")})
	return append(out, refPeer{addr: genHost, host: true})
}

func (p refPeer) String() string {
	if p.host {
		return "host(" + p.addr.String() + ")"
	}
	return p.addr.String()
}

func toEndpoint(p refPeer) Endpoint { return Endpoint{IP: p.addr, Host: p.host} }

// TestDecideMatchesReference compares Decide on compiled states with the
// reference evaluator on random clusters and packets: a whole-cluster
// state, per-node states (egress judged on the source's node, ingress on
// the destination's), and a state numbered by an allocator seeded with an
// unrelated previous state.
func TestDecideMatchesReference(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 60
	}
	protos := []Protocol{ProtocolTCP, ProtocolUDP, ProtocolSCTP, 1}
	probePorts := []uint16{80, 81, 53, 85, 89, 90, 8080, 9999}
	var prev *State
	checked := 0
	for seed := range seeds {
		g := genCluster{r: rand.New(rand.NewPCG(uint64(seed), 7))}
		c := g.cluster()
		ref := &reference{c: c, hostIPs: []netip.Addr{genHost}}
		whole, err := Compile(c, Options{HostIPs: []netip.Addr{genHost}})
		if err != nil {
			t.Fatalf("seed %d: compile: %v", seed, err)
		}
		seeded, err := Compile(c, Options{HostIPs: []netip.Addr{genHost}, Allocator: NewIdentityAllocator(prev)})
		if err != nil {
			t.Fatalf("seed %d: compile: %v", seed, err)
		}
		prev = whole
		nodes := map[string]*State{}
		for _, n := range []string{"node-a", "node-b"} {
			if nodes[n], err = Compile(c, Options{HostIPs: []netip.Addr{genHost}, NodeName: n}); err != nil {
				t.Fatalf("seed %d: compile %s: %v", seed, n, err)
			}
		}
		eps := g.endpoints(c)
		for range 300 {
			src, dst := eps[g.r.IntN(len(eps))], eps[g.r.IntN(len(eps))]
			if src == dst {
				continue
			}
			proto, port := protos[g.r.IntN(len(protos))], probePorts[g.r.IntN(len(probePorts))]
			want := ref.allowed(src, dst, proto, port)
			if !proto.hasPorts() {
				want = ref.allowed(src, dst, proto, 0)
			}
			for name, s := range map[string]*State{"whole": whole, "seeded": seeded} {
				if v := Decide(s, toEndpoint(src), toEndpoint(dst), proto, port); v.Allowed != want {
					t.Fatalf("seed %d %s state: %v -> %v %s/%d: reference allowed=%v, Decide: %s\ncluster: %+v",
						seed, name, src, dst, proto, port, want, v.Reason(), c.Policies)
				}
			}
			srcNode, dstNode := nodeOf(c, src), nodeOf(c, dst)
			eg := Decide(nodes[srcNode], toEndpoint(src), toEndpoint(dst), proto, port).Egress
			in := Decide(nodes[dstNode], toEndpoint(src), toEndpoint(dst), proto, port).Ingress
			if got := eg.Allowed && in.Allowed; got != want {
				t.Fatalf("seed %d per-node: %v -> %v %s/%d: reference allowed=%v, egress %+v, ingress %+v",
					seed, src, dst, proto, port, want, eg, in)
			}
			checked++
		}
	}
	t.Logf("%d packets checked", checked)
}

// nodeOf returns the node of the pod at p, or node-a for anything else
// (a non-pod side is judged nowhere).
func nodeOf(c *Cluster, p refPeer) string {
	ref := reference{c: c}
	if pod := ref.podAt(p); pod != nil {
		return pod.Spec.NodeName
	}
	return "node-a"
}
