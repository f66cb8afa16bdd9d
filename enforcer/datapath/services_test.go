package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Services as kube-proxy's nftables mode writes them on node1: a
// ClusterIP:80 DNATed in prerouting to one backend's 8080. Backends on
// node1 are judged at their interface, those on node2 at node1's uplink.
const (
	serviceRange    = "10.96.0.0/16"
	svcServer       = "10.96.0.10" // → server (allowed)
	svcIntruder     = "10.96.0.11" // → intruder (refused)
	svcRemote       = "10.96.0.12" // → remote server on node2 (allowed)
	svcRemoteIntr   = "10.96.0.13" // → remote intruder on node2 (refused)
	svcClient       = "10.96.0.14" // → the client itself (hairpin, masqueraded)
	svcNoEndpoints  = "10.96.0.15" // rejected: a service without endpoints
	remoteServerIP  = "10.244.1.2"
	remoteIntruderI = "10.244.1.3"
	servicePort     = 80
)

// serviceRules is a kube-proxy-like nftables table: a services map
// consulted in prerouting (dstnat) and output, one chain per service.
func serviceRules(table, masquerade string, all bool) string {
	backends := map[string]string{svcServer: serverIP, svcIntruder: intruderIP, svcRemote: remoteServerIP, svcRemoteIntr: remoteIntruderI, svcClient: clientIP}
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", table)
	b.WriteString("  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict\n    elements = {\n")
	var chains strings.Builder
	i := 0
	for _, svc := range []string{svcServer, svcIntruder, svcRemote, svcRemoteIntr, svcClient} {
		for _, proto := range []string{"tcp", "udp"} {
			chain := fmt.Sprintf("service-%d-%s", i, proto)
			fmt.Fprintf(&b, "      %s . %s . %d : goto %s,\n", svc, proto, servicePort, chain)
			// As kube-proxy's endpoint chains: an endpoint reaching
			// itself is masqueraded (hairpin).
			masq := "ip saddr " + backends[svc] + " "
			if all {
				masq = ""
			}
			fmt.Fprintf(&chains, "  chain %s {\n    %sjump mark-for-masquerade\n    meta l4proto %s dnat to %s:%d\n  }\n",
				chain, masq, proto, backends[svc], port)
		}
		i++
	}
	b.WriteString("    }\n  }\n")
	b.WriteString("  chain services {\n    ip daddr . meta l4proto . th dport vmap @service-ips\n  }\n")
	b.WriteString("  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }\n")
	b.WriteString("  chain nat-output {\n    type nat hook output priority -100; policy accept;\n    jump services\n  }\n")
	fmt.Fprintf(&b, "  chain filter-forward {\n    type filter hook forward priority -110; policy accept;\n    ip daddr %s reject\n  }\n", svcNoEndpoints)
	b.WriteString("  chain mark-for-masquerade {\n    meta mark set meta mark or 0x4000\n  }\n")
	fmt.Fprintf(&b, "  chain nat-postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    meta mark & 0x4000 == 0 return\n    meta mark set meta mark xor 0x4000\n    masquerade %s\n  }\n", masquerade)
	b.WriteString(chains.String())
	b.WriteString("}\n")
	return b.String()
}

// servicePolicies: the client may reach app=server on 8080 and the whole
// service range on 80 (so that the service address itself is allowed);
// every server admits the client; the intruders admit anyone, so only the
// client's egress can stop traffic to them.
const servicePolicies = clientToServer + serviceExtras

const serviceExtras = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: client-to-services}
spec:
  podSelector: {matchLabels: {app: client}}
  egress:
  - to: [{ipBlock: {cidr: 10.96.0.0/16}}]
    ports: [{protocol: TCP, port: 80}, {protocol: UDP, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: intruder-open}
spec:
  podSelector: {matchLabels: {app: intruder}}
  ingress: [{}]
---
`

// withoutClientEgress withdraws the client's allow to app=server (the
// service range stays allowed, the servers still admit the client).
var withoutClientEgress = clientToServer[:strings.Index(clientToServer, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: x, name: client-to-server}")] + serviceExtras

type serviceWorld struct {
	*routedWorld
	node2                        *testNode
	remoteServer, remoteIntruder *testPod
	uplink                       string
	masquerade                   string // options of the hairpin masquerade
}

func newServiceWorld(t *testing.T) *serviceWorld {
	t.Helper()
	return newServiceWorldMasq(t, "", false)
}

// newServiceWorldMasq: masquerade are the options of kube-proxy's
// masquerade rule; all masquerades every service flow (masqueradeAll),
// not only an endpoint reaching itself.
func newServiceWorldMasq(t *testing.T, masquerade string, all bool) *serviceWorld {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		requireKernel(t)
		t.Skipf("nft is not installed: %v", err)
	}
	w := &serviceWorld{routedWorld: newRoutedWorld(t), node2: newTestNode(t), uplink: "up0", masquerade: masquerade}
	n1, n2 := w.node, w.node2
	n1.ip("link", "add", "up0", "type", "veth", "peer", "name", "up0", "netns", n2.name)
	n1.ip("addr", "add", "192.168.77.1/30", "dev", "up0")
	n2.ip("addr", "add", "192.168.77.2/30", "dev", "up0")
	n1.ip("link", "set", "up0", "up")
	n2.ip("link", "set", "up0", "up")
	w.remoteServer = n2.routedPod("rsrv", remoteServerIP)
	w.remoteIntruder = n2.routedPod("rintr", remoteIntruderI)
	n1.ip("route", "add", "10.244.1.0/24", "via", "192.168.77.2", "dev", "up0")
	// As a default route would: what no DNAT rewrites is forwarded.
	n1.ip("route", "add", serviceRange, "via", "192.168.77.2", "dev", "up0")
	n2.ip("route", "add", "10.244.0.0/24", "via", "192.168.77.1", "dev", "up0")
	for _, p := range []*testPod{w.remoteServer, w.remoteIntruder} {
		p.serve(t, port)
	}
	cmd := exec.Command("ip", "netns", "exec", n1.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(serviceRules("palisade-test", w.masquerade, all))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	return w
}

// manifests adds the remote pods (on node2) to the routed world's.
func (w *serviceWorld) manifests(policies string) string {
	remote := strings.ReplaceAll(pod("x", "remote-server", "server", remoteServerIP)+pod("x", "remote-intruder", "intruder", remoteIntruderI), "nodeName: node1", "nodeName: node2")
	return w.routedWorld.manifests(remote+policies, nil)
}

func (w *serviceWorld) open(t *testing.T, uplinks []string) *Datapath {
	t.Helper()
	d, err := Open(Options{PinDir: w.pinDir, NetNS: w.node.path(), Logger: w.logs.logger(),
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix(serviceRange)}, Uplinks: uplinks})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { d.Remove() })
	return d
}

func svc(addr string) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(addr), servicePort)
}

// dialService opens a TCP connection from p to a service address.
func (p *testPod) dialService(to netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := runInNetNS(p.path(), func() error {
		var err error
		c, err = net.DialTimeout("tcp", to.String(), timeout)
		return err
	})
	return c, err
}

func (p *testPod) tcpService(to netip.AddrPort) error {
	c, err := p.dialService(to, 400*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c, time.Second)
}

func (p *testPod) udpService(to netip.AddrPort) error {
	var c net.Conn
	err := runInNetNS(p.path(), func() error {
		var err error
		c, err = net.Dial("udp", to.String())
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c, 400*time.Millisecond)
}

func TestServiceTrafficJudgedAgainstBackend(t *testing.T) {
	w := newServiceWorld(t)
	c := w.client

	// Without Palisade, kube-proxy's rules work end to end.
	expectPass(t, "no datapath: client → service of a local backend", c.tcpService(svc(svcServer)))
	expectPass(t, "no datapath: client → service of a remote backend", c.tcpService(svc(svcRemote)))

	d := w.open(t, nil)
	upIdx := w.node.ifindexByName(w.uplink)
	if got := d.UplinkIndexes(); !slices.Equal(got, []int{upIdx}) {
		t.Fatalf("uplinks %v, want only %s (%d)", got, w.uplink, upIdx)
	}
	syncState(t, d, compile(t, w.manifests(servicePolicies)))
	events := d.Events(t.Context())

	expectPass(t, "client → service → local allowed backend, TCP", c.tcpService(svc(svcServer)))
	expectPass(t, "client → service → local allowed backend, UDP", c.udpService(svc(svcServer)))
	expectPass(t, "client → service → remote allowed backend, TCP", c.tcpService(svc(svcRemote)))
	expectPass(t, "client → service → remote allowed backend, UDP", c.udpService(svc(svcRemote)))
	expectDrop(t, "client → service → local refused backend, TCP (the service address is allowed)", c.tcpService(svc(svcIntruder)))
	expectDrop(t, "client → service → local refused backend, UDP", c.udpService(svc(svcIntruder)))
	expectDrop(t, "client → service → remote refused backend, TCP", c.tcpService(svc(svcRemoteIntr)))
	expectDrop(t, "client → service → remote refused backend, UDP", c.udpService(svc(svcRemoteIntr)))
	expectDrop(t, "intruder → service of the server (intruder egress isolated)", w.intruder.tcpService(svc(svcServer)))
	if err := c.tcpService(svc(svcNoEndpoints)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("client → service without endpoints: %v, want the node's refusal (connection refused)", err)
	}

	// The flow record names the client's egress and the backend.
	for _, want := range []struct {
		backend netip.Addr
		service netip.AddrPort
	}{{netipMust(intruderIP), svc(svcIntruder)}, {netipMust(remoteIntruderI), svc(svcRemoteIntr)}} {
		ev := waitEvent(t, events, func(e Event) bool {
			return e.Verdict == VerdictDrop && e.AfterDNAT && e.Dst.Addr() == want.backend && e.Protocol == policy.ProtocolTCP
		})
		if ev.Pod != (policy.PodRef{Namespace: "x", Name: "client"}) || ev.Direction != policy.Egress || ev.Reason != ReasonPolicyMiss ||
			ev.Dst.Port() != port || ev.Service != want.service {
			t.Errorf("drop event %+v: want the client's egress to %s:%d via %s", ev, want.backend, port, want.service)
		}
	}

	// Revocation: established connections through both kinds of backend
	// stop once the client's allow to app=server is withdrawn.
	local, err := c.dialService(svc(svcServer), time.Second)
	if err != nil {
		t.Fatalf("dial local backend: %v", err)
	}
	defer local.Close()
	remote, err := c.dialService(svc(svcRemote), time.Second)
	if err != nil {
		t.Fatalf("dial remote backend: %v", err)
	}
	defer remote.Close()
	expectPass(t, "established, local backend", echo(local, time.Second))
	expectPass(t, "established, remote backend", echo(remote, time.Second))
	syncState(t, d, compile(t, w.manifests(withoutClientEgress)))
	expectDrop(t, "established to the local backend after the withdrawal", echo(local, time.Second))
	expectDrop(t, "established to the remote backend after the withdrawal", echo(remote, time.Second))
	expectDrop(t, "new to the local backend after the withdrawal", c.tcpService(svc(svcServer)))
	expectDrop(t, "new to the remote backend after the withdrawal", c.tcpService(svc(svcRemote)))

	syncState(t, d, compile(t, w.manifests(servicePolicies)))
	expectPass(t, "local backend after the allow is back", c.tcpService(svc(svcServer)))
	expectPass(t, "remote backend after the allow is back", c.tcpService(svc(svcRemote)))

	counters, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if counters["service_judged"] == 0 || counters["drop_service_source"] != 0 {
		t.Errorf("counters %v: want service_judged > 0 and no unknown sources", counters)
	}
}

// Without service ranges nothing is deferred and no uplink is attached:
// the service address is judged as itself (here: allowed by ipBlock), so
// a refused backend is reached. This is the gap ServiceCIDRs closes.
func TestNoServiceRangesJudgesTheServiceAddress(t *testing.T) {
	w := newServiceWorld(t)
	d, err := Open(Options{PinDir: w.pinDir, NetNS: w.node.path(), Logger: w.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Remove() })
	if got := d.UplinkIndexes(); len(got) != 0 {
		t.Errorf("uplinks %v attached without service ranges", got)
	}
	syncState(t, d, compile(t, w.manifests(servicePolicies)))
	expectPass(t, "refused backend reached through its service address", w.client.tcpService(svc(svcIntruder)))
}

// Uplinks can be named, a missing one fails Open naming it, and a restart
// adopts the pinned uplink attachment.
func TestUplinkOptionsAndRestart(t *testing.T) {
	w := newServiceWorld(t)
	_, err := Open(Options{PinDir: w.pinDir, NetNS: w.node.path(), ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix(serviceRange)}, Uplinks: []string{"nosuch0"}})
	if err == nil || !strings.Contains(err.Error(), `"nosuch0"`) {
		t.Fatalf("open with a missing uplink: %v, want an error naming it", err)
	}
	d := w.open(t, []string{w.uplink})
	syncState(t, d, compile(t, w.manifests(servicePolicies)))
	conn, err := w.client.dialService(svc(svcRemote), time.Second)
	if err != nil {
		t.Fatalf("dial remote backend: %v", err)
	}
	defer conn.Close()
	d.Close()
	d2 := w.open(t, []string{w.uplink})
	expectDrop(t, "remote refused backend while the restarted datapath is unsynced", w.client.tcpService(svc(svcRemoteIntr)))
	expectPass(t, "established flow across the restart", echo(conn, time.Second))
	syncState(t, d2, compile(t, w.manifests(servicePolicies)))
	expectPass(t, "established flow after the first sync", echo(conn, time.Second))
	if got := d2.UplinkIndexes(); len(got) != 1 {
		t.Errorf("uplinks after restart %v, want one", got)
	}
}

func (n *testNode) ifindexByName(name string) int {
	n.t.Helper()
	return n.ifindex(&testPod{hostIf: name})
}

// hairpinPolicies let the client reach itself on 8080, and admit the
// node's masquerading address (in a cluster the node's own address, whose
// ingress is always allowed).
const hairpinPolicies = servicePolicies + `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: client-self}
spec:
  podSelector: {matchLabels: {app: client}}
  egress:
  - to: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: 8080}]
  ingress:
  - from: [{ipBlock: {cidr: 10.244.0.1/32}}]
---
`

// A pod reaching itself through its service is masqueraded by kube-proxy
// (with "fully-random", as kube-proxy does): the kernel's conntrack gives
// the post-DNAT judgement its real source, and it is judged as the pod's
// own egress.
func TestServiceHairpin(t *testing.T) {
	for _, masquerade := range []string{"", "fully-random"} {
		t.Run("masquerade "+masquerade, func(t *testing.T) {
			w := newServiceWorldMasq(t, masquerade, false)
			d := w.open(t, nil)
			syncState(t, d, compile(t, w.manifests(hairpinPolicies)))
			expectPass(t, "client → its own service", w.client.tcpService(svc(svcClient)))
			syncState(t, d, compile(t, w.manifests(servicePolicies)))
			expectDrop(t, "client → its own service once its egress to itself is withdrawn", w.client.tcpService(svc(svcClient)))
			counters, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if counters["service_masqueraded"] == 0 || counters["drop_service_source"] != 0 {
				t.Errorf("counters %v: want masqueraded sources recovered, none unknown", counters)
			}
		})
	}
}

// kube-proxy with masqueradeAll hides every source: the judgement still
// finds it in the kernel's conntrack. (The backends' ingress sees the
// node's address, here the veths' 10.244.0.1, which the server admits.)
func TestServiceMasqueradeAll(t *testing.T) {
	w := newServiceWorldMasq(t, "fully-random", true)
	d := w.open(t, nil)
	syncState(t, d, compile(t, w.manifests(servicePolicies+`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: server-from-node}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{ipBlock: {cidr: 10.244.0.1/32}}]
---
`)))
	c := w.client
	expectPass(t, "local allowed backend, masqueraded", c.tcpService(svc(svcServer)))
	expectDrop(t, "local refused backend, masqueraded", c.tcpService(svc(svcIntruder)))
	expectPass(t, "remote allowed backend, masqueraded", c.tcpService(svc(svcRemote)))
	expectDrop(t, "remote refused backend, masqueraded", c.tcpService(svc(svcRemoteIntr)))
}

// Uplinks are detected again on every Sync: a tunnel device a CNI adds
// later is attached, a deleted one forgotten without an error.
func TestUplinksFollowRoutes(t *testing.T) {
	w := newServiceWorld(t)
	d := w.open(t, nil)
	st := compile(t, w.manifests(servicePolicies))
	syncState(t, d, st)
	n := w.node
	n.ip("link", "add", "up1", "type", "veth", "peer", "name", "up1p")
	n.ip("addr", "add", "192.168.78.1/30", "dev", "up1")
	n.ip("link", "set", "up1", "up")
	n.ip("link", "set", "up1p", "up")
	n.ip("route", "add", "10.244.2.0/24", "via", "192.168.78.2", "dev", "up1")
	syncState(t, d, st)
	want := []int{n.ifindexByName("up0"), n.ifindexByName("up1")}
	slices.Sort(want)
	if got := d.UplinkIndexes(); !slices.Equal(got, want) {
		t.Errorf("uplinks %v after a new route, want %v", got, want)
	}
	n.ip("link", "del", "up1")
	syncState(t, d, st)
	if got := d.UplinkIndexes(); !slices.Equal(got, []int{n.ifindexByName("up0")}) {
		t.Errorf("uplinks %v after the interface went, want only up0", got)
	}
}
