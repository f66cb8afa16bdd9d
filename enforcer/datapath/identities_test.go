package datapath

import (
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// rangesAndBlocks adds a port range and ipBlocks (an except included) to
// the routed world's policies, so that every kind of number is observed.
const rangesAndBlocks = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: server-ranges}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}, {ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}}]
    ports: [{protocol: TCP, port: 1000, endPort: 1999}, {protocol: UDP, port: 53}]
---
`

// earlier is a policy the node enforced before, which took numbers the
// cluster's current objects no longer need.
const earlier = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: aaa-earlier}
spec:
  podSelector: {matchLabels: {app: client}}
  ingress:
  - from: [{ipBlock: {cidr: 172.16.0.0/12}}, {podSelector: {matchLabels: {app: gone}}}]
---
`

// compileWithHistory returns the cluster of manifests and the State an
// enforcer that first enforced past (with the same allocator) holds for
// it: numbers a fresh compilation would not give.
func compileWithHistory(t *testing.T, past, manifests string) (*policy.Cluster, *policy.State) {
	t.Helper()
	read := func(text string) *policy.Cluster {
		c, err := policy.ReadManifests("test", strings.NewReader(text))
		if err != nil {
			t.Fatalf("read manifests: %v", err)
		}
		return c
	}
	alloc := policy.NewIdentityAllocator(nil)
	if _, err := policy.Compile(read(past), policy.Options{NodeName: "node1", Allocator: alloc}); err != nil {
		t.Fatalf("compile the past: %v", err)
	}
	c := read(manifests)
	st, err := policy.Compile(c, policy.Options{NodeName: "node1", Allocator: alloc})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return c, st
}

func TestObservedNumbersPlanNothingAfterRestart(t *testing.T) {
	pods := namespace("x") + pod("x", "client", "client", "10.0.0.2,fd00::2") + pod("x", "server", "server", "10.0.0.3")
	c, running := compileWithHistory(t, earlier+pod("x", "gone", "gone", "10.0.0.1")+pods+clientToServer+rangesAndBlocks,
		pods+clientToServer+rangesAndBlocks)
	ifindex := byIP(map[string]int{"10.0.0.2": 2, "10.0.0.3": 3})
	applied, err := Translate(running, ifindex)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range applied.Endpoints {
		v.Revision = 40 + k // as a previous run left them
		applied.Endpoints[k] = v
	}
	obs, err := observedOf(applied)
	if err != nil {
		t.Fatal(err)
	}
	counter := uint32(100)
	next := func() uint32 { counter++; return counter }

	fresh, err := policy.Compile(c, policy.Options{NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	freshEntries, err := Translate(fresh, ifindex)
	if err != nil {
		t.Fatal(err)
	}
	if ops, _ := plan(applied, freshEntries, next); len(ops) == 0 {
		t.Fatal("test needs a history whose numbers differ from a fresh compilation's")
	}

	alloc := policy.NewIdentityAllocatorFromObserved(c, policy.Options{NodeName: "node1"}, obs)
	restarted, err := policy.Compile(c, policy.Options{NodeName: "node1", Allocator: alloc})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Translate(restarted, ifindex)
	if err != nil {
		t.Fatal(err)
	}
	ops, final := plan(applied, entries, next)
	for _, o := range ops {
		t.Errorf("restart plans %s: %d %s writes", o.step, o.len(), o.target)
	}
	for k, v := range final {
		if v.Revision != applied.Endpoints[k].Revision {
			t.Errorf("endpoint %d revision %d → %d: its flows would be judged again", k, applied.Endpoints[k].Revision, v.Revision)
		}
	}
}

func TestObservedSkipsWhatNoTranslateWrites(t *testing.T) {
	e := newEntries()
	k := ipKey(t, "10.0.0.0/8")
	k.Family = 9
	e.IPs[k] = bpf.PalisadeIdentityValue{Identity: 300}
	obs, err := observedOf(e)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.IPs)+len(obs.Rules) != 0 {
		t.Errorf("undecodable entries observed: %+v", obs)
	}
}

// A restarted enforcer adopting the pins and seeding its allocator from
// them compiles the same cluster to the numbers the maps hold: its first
// Sync writes nothing.
func TestRestartedAgentKeepsNumbers(t *testing.T) {
	w := newRoutedWorld(t)
	manifests := w.manifests(clientToServer+rangesAndBlocks, nil)
	past := w.manifests(earlier+rangesAndBlocks+clientToServer, nil) + pod("x", "gone", "gone", "10.244.0.9")
	c, running := compileWithHistory(t, past, manifests)
	d := w.open(t)
	syncState(t, d, running)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d2 := w.open(t)
	obs, err := d2.Observed()
	if err != nil {
		t.Fatal(err)
	}
	alloc := policy.NewIdentityAllocatorFromObserved(c, policy.Options{NodeName: "node1"}, obs)
	restarted, err := policy.Compile(c, policy.Options{NodeName: "node1", Allocator: alloc})
	if err != nil {
		t.Fatal(err)
	}
	stats := syncState(t, d2, restarted)
	for m, n := range stats.Writes {
		if n != 0 {
			t.Errorf("sync after restart wrote %d entries of %s; want none", n, m)
		}
	}
	if stats.RevisionsBumped != 0 {
		t.Errorf("sync after restart bumped %d revisions", stats.RevisionsBumped)
	}
	expectPass(t, "client → server after restart", w.client.tcp(w.server, port))
	expectDrop(t, "intruder → server after restart", w.intruder.tcp(w.server, port))
}
