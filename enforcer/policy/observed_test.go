package policy

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// observe returns what a datapath enforcing st holds, numbers only: the
// content of its IP→identity and policy maps, port ranges split into
// aligned blocks as the datapath stores them.
func observe(st *State) Observed {
	obs := Observed{IPs: map[netip.Prefix]NumericIdentity{}, Rules: map[RuleKey]uint32{}}
	for _, e := range st.IPs {
		obs.IPs[e.Prefix] = e.Identity
	}
	put := func(k RuleKey, id uint32) {
		if prev, ok := obs.Rules[k]; !ok || id < prev {
			obs.Rules[k] = id
		}
	}
	for _, r := range st.Rules {
		k := r.RuleKey
		if k.EndPort == 0 || k.EndPort == k.Port {
			k.EndPort = 0
			put(k, r.RuleID())
			continue
		}
		for start := uint32(r.Port); start <= uint32(r.EndPort); {
			size := uint32(1)
			for start%(size*2) == 0 && start+size*2-1 <= uint32(r.EndPort) {
				size *= 2
			}
			k.Port, k.EndPort = uint16(start), uint16(start+size-1)
			put(k, r.RuleID())
			start += size
		}
	}
	return obs
}

const seedPolicies = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: "y"}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}, {ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}}]
    ports: [{port: 5432}, {port: 6000, endPort: 6100}]
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  egress:
  - to: [{podSelector: {}, namespaceSelector: {}}]
`

// restartCluster returns a cluster and the State an enforcer with a
// history enforces for it: its numbers are not the ones a first
// compilation of the cluster gives.
func restartCluster(t *testing.T) (*Cluster, *State) {
	t.Helper()
	nss := []corev1.Namespace{testNS("x"), testNS("y")}
	pods := []corev1.Pod{
		testPod("x", "web-1", "10.0.0.1", "app=web"),
		testPod("x", "web-2", "10.0.0.2,fd00::2", "app=web"),
		testPod("y", "db-1", "10.0.1.1", "app=db"),
		testPod("y", "cache-1", "10.0.1.9", "app=cache"),
	}
	early := `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: aaa, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{ipBlock: {cidr: 172.16.0.0/12}}]
  - from: [{podSelector: {matchLabels: {app: gone}}}]
---
`
	alloc := NewIdentityAllocator(nil)
	gone := append([]corev1.Pod{testPod("x", "gone-1", "10.0.0.5", "app=gone")}, pods...)
	mustCompile(t, testCluster(t, nss, gone, early+seedPolicies), Options{Allocator: alloc})
	c := testCluster(t, nss, pods, seedPolicies)
	return c, mustCompile(t, c, Options{Allocator: alloc})
}

func TestRestartKeepsObservedNumbers(t *testing.T) {
	c, running := restartCluster(t)
	if fresh := mustCompile(t, c, Options{}); fresh.Diff(running).Empty() {
		t.Fatal("test needs a history whose numbers differ from a fresh compilation's")
	}
	alloc := NewIdentityAllocatorFromObserved(c, Options{}, observe(running))
	restarted := mustCompile(t, c, Options{Allocator: alloc})
	if d := running.Diff(restarted); !d.Empty() {
		t.Errorf("restart changes the datapath: %+v", d)
	}
	if !slices.EqualFunc(running.Identities, restarted.Identities, identityEqual) {
		t.Errorf("identities renumbered:\n%+v\n%+v", running.Identities, restarted.Identities)
	}
	// The allocator goes on from there: a pod churned after the restart
	// keeps the numbers too.
	c.Pods = append(c.Pods, testPod("x", "web-3", "10.0.0.3", "app=web"))
	next := mustCompile(t, c, Options{Allocator: alloc})
	if d := restarted.Diff(next); len(d.IPUpserts) != 1 || len(d.IPDeletes)+len(d.RuleUpserts)+len(d.RuleDeletes) != 0 {
		t.Errorf("want one IP upsert after a new replica, got %+v", d)
	}
}

func TestObservedConflicts(t *testing.T) {
	pods := []corev1.Pod{
		testPod("x", "a-1", "10.0.0.1", "app=a"),
		testPod("x", "a-2", "10.0.0.2", "app=a"),
		testPod("x", "b-1", "10.0.0.3", "app=b"),
	}
	c := testCluster(t, []corev1.Namespace{testNS("x")}, pods, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: 192.168.0.0/16}}]
`)
	a1, a2, b1 := netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("10.0.0.2/32"), netip.MustParsePrefix("10.0.0.3/32")
	block := netip.MustParsePrefix("192.168.0.0/16")
	const cidr = FirstCIDRIdentity
	tests := []struct {
		name string
		obs  map[netip.Prefix]NumericIdentity
		// want the identity of a-*, b-1 and the block.
		a, b, block NumericIdentity
	}{
		{"nothing observed", nil, 256, 257, cidr},
		{"all kept", map[netip.Prefix]NumericIdentity{a1: 900, a2: 900, b1: 700, block: cidr + 40}, 900, 700, cidr + 40},
		{"one key two numbers: first prefix wins", map[netip.Prefix]NumericIdentity{a1: 900, a2: 800, b1: 700}, 900, 700, cidr},
		{"two keys one number: first prefix wins", map[netip.Prefix]NumericIdentity{a1: 900, b1: 900}, 900, 901, cidr},
		{"later prefix seeds a key the first left unclaimed", map[netip.Prefix]NumericIdentity{a1: 900, a2: 800, b1: 800}, 900, 800, cidr},
		{"workload number in the cidr range", map[netip.Prefix]NumericIdentity{a1: cidr + 5, b1: 300}, 301, 300, cidr + 6},
		{"reserved number", map[netip.Prefix]NumericIdentity{a1: IdentityHost, b1: IdentityWorld}, 256, 257, cidr},
		{"cidr number in the workload range", map[netip.Prefix]NumericIdentity{block: 400}, 401, 402, cidr},
		{"stale numbers are passed", map[netip.Prefix]NumericIdentity{netip.MustParsePrefix("10.9.9.9/32"): 5000, b1: 300}, 5001, 300, cidr},
		{"unmasked prefix", map[netip.Prefix]NumericIdentity{netip.MustParsePrefix("192.168.7.7/16"): cidr + 9}, 256, 257, cidr + 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alloc := NewIdentityAllocatorFromObserved(c, Options{}, Observed{IPs: tt.obs})
			st := mustCompile(t, c, Options{Allocator: alloc})
			got := [3]NumericIdentity{st.Lookup(a1.Addr()), st.Lookup(b1.Addr()), st.Lookup(netip.MustParseAddr("192.168.3.3"))}
			if want := [3]NumericIdentity{tt.a, tt.b, tt.block}; got != want {
				t.Errorf("identities of a, b, block = %v, want %v", got, want)
			}
			if st.Lookup(a2.Addr()) != got[0] {
				t.Errorf("a-2 has %d, a-1 %d", st.Lookup(a2.Addr()), got[0])
			}
		})
	}
}

func TestObservedRuleIDs(t *testing.T) {
	pods := []corev1.Pod{testPod("x", "a", "10.0.0.1", "app=a"), testPod("x", "b", "10.0.0.2", "app=b")}
	// Two rules allow b→a on 80: their sources share the key's rule id.
	c := testCluster(t, []corev1.Namespace{testNS("x")}, pods, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: b}}}]
    ports: [{port: 80}]
  - from: [{podSelector: {matchLabels: {app: b}}}]
    ports: [{port: 80}, {port: 81}]
  - from: [{podSelector: {matchLabels: {app: b}}}]
    ports: [{port: 1000, endPort: 1999}]
`)
	a, b := netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("10.0.0.2/32")
	ips := map[netip.Prefix]NumericIdentity{a: 300, b: 301}
	key := func(port, end uint16) RuleKey {
		return RuleKey{Local: 300, Peer: 301, Direction: Ingress, Protocol: ProtocolTCP, Port: port, EndPort: end}
	}
	tests := []struct {
		name  string
		rules map[RuleKey]uint32
		// want the rule ids of ports 80, 81 and 1000-1999.
		want [3]uint32
	}{
		{"nothing observed", nil, [3]uint32{1, 2, 3}},
		{"single sources, then the shared key", map[RuleKey]uint32{key(80, 0): 40, key(81, 0): 50, key(1000, 1007): 60}, [3]uint32{40, 50, 60}},
		{"shared key alone cannot tell", map[RuleKey]uint32{key(80, 0): 40}, [3]uint32{41, 42, 43}},
		{"two sources one number: first wins", map[RuleKey]uint32{key(81, 0): 50, key(1000, 1007): 50}, [3]uint32{50, 50, 52}},
		{"range looked up by its first block only", map[RuleKey]uint32{key(1000, 1999): 60}, [3]uint32{61, 62, 63}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alloc := NewIdentityAllocatorFromObserved(c, Options{}, Observed{IPs: ips, Rules: tt.rules})
			st := mustCompile(t, c, Options{Allocator: alloc})
			var got [3]uint32
			for _, r := range st.Rules {
				switch r.Port {
				case 80:
					got[0] = r.RuleID()
				case 81:
					got[1] = r.RuleID()
				case 1000:
					got[2] = r.RuleID()
				}
			}
			if got != tt.want {
				t.Errorf("rule ids of 80, 81, 1000-1999 = %v, want %v", got, tt.want)
			}
		})
	}
}
