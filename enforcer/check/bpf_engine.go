package check

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// ErrPrivilege is wrapped by NewBPFEngine's error when the process may not
// load BPF programs.
var ErrPrivilege = errors.New("loading BPF programs needs root (CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON or CAP_SYS_ADMIN)")

// probeIfindex is the interface BPF_PROG_TEST_RUN runs tc programs on:
// loopback. The endpoint being judged is written there before its probes.
const probeIfindex = 1

const (
	tcActUnspec = 0xffffffff // TC_ACT_UNSPEC: tcx "next", not dropped
	tcActShot   = 2          // TC_ACT_SHOT: dropped
)

// BPFEngine judges probes with the real datapath programs: the State is
// written into real kernel maps, and each probe's packet runs through
// palisade_from_pod with the source pod's endpoint entry (its egress) and
// through palisade_to_pod with the destination's (its ingress), both by
// BPF_PROG_TEST_RUN. What decides comes from the kernel: pass or drop, the
// rule id the program recorded in conntrack, the identities its LPM trie
// derives. What the kernel cannot know, the names of isolating policies
// and of the rule behind an id, comes from the State.
type BPFEngine struct {
	objs    bpf.PalisadeObjects
	state   *policy.State
	entries *bpfEntries
	// identity caches the kernel's ip_identity answer per address.
	identity map[netip.Addr]policy.NumericIdentity
}

// NewBPFEngine loads the datapath programs and writes st into their maps.
// Without the privilege to load them the error wraps ErrPrivilege.
func NewBPFEngine(st *policy.State) (*BPFEngine, error) {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones
	// ignore it. Failing here only means the load below reports why.
	_ = rlimit.RemoveMemlock()
	spec, err := bpf.NewSpec(bpf.Config{
		// Each probe's flow is deleted as soon as it is judged.
		Conntrack: 1 << 10,
		Events:    1 << 16,
		// Sized for st; a larger State given to SetState later may not
		// fit, which is an error, never a wrong verdict.
		Policy:       max(1<<16, nextPow2(len(st.Rules)*2)),
		PolicyRanges: max(1<<16, nextPow2(len(st.Rules)*30)),
		IPIdentity:   max(1<<20, nextPow2(len(st.IPs))),
		Endpoints:    1,
		// Drops still emit events; the ring buffer is never drained and
		// only counts them as lost.
		NoNewFlowEvents: true,
	})
	if err != nil {
		return nil, fmt.Errorf("load bpf engine: %w", err)
	}
	e := &BPFEngine{}
	if err := spec.LoadAndAssign(&e.objs, nil); err != nil {
		// Capabilities, not the user id, decide; but without root any
		// failure is most likely the missing privilege.
		if os.Geteuid() != 0 || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("load bpf engine: %w: %w", ErrPrivilege, err)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load bpf engine: %+v", ve)
		}
		return nil, fmt.Errorf("load bpf engine: %w", err)
	}
	if err := e.SetState(st); err != nil {
		e.objs.Close()
		return nil, err
	}
	return e, nil
}

func nextPow2(n int) uint32 {
	p := uint32(1)
	for int(p) < n && p < 1<<31 {
		p <<= 1
	}
	return p
}

// SetState replaces the maps' contents with st's entries, so that one
// loaded engine can judge many States (loading and verifying the programs
// is the expensive part).
func (e *BPFEngine) SetState(st *policy.State) error {
	entries, err := translate(st)
	if err != nil {
		return err
	}
	if old := e.entries; old != nil {
		e.entries = nil
		if err := errors.Join(
			deleteKeys(e.objs.IpIdentity, old.IPs),
			deleteKeys(e.objs.Policy, old.Policy),
			deleteKeys(e.objs.PolicyRanges, old.PolicyRanges),
		); err != nil {
			return fmt.Errorf("set bpf state: %w", err)
		}
	}
	e.state, e.identity = st, map[netip.Addr]policy.NumericIdentity{}
	if err := clearMap(e.objs.Conntrack); err != nil {
		return fmt.Errorf("set bpf state: %w", err)
	}
	if err := errors.Join(
		putAll(e.objs.IpIdentity, entries.IPs),
		putAll(e.objs.Policy, entries.Policy),
		putAll(e.objs.PolicyRanges, entries.PolicyRanges),
	); err != nil {
		return fmt.Errorf("set bpf state: %w", err)
	}
	e.entries = entries
	return nil
}

// putAll writes entries, batched where the map type supports it (LPM
// tries do not).
func putAll[K comparable, V any](m *ebpf.Map, entries map[K]V) error {
	if len(entries) == 0 {
		return nil
	}
	keys := make([]K, 0, len(entries))
	values := make([]V, 0, len(entries))
	for k, v := range entries {
		keys = append(keys, k)
		values = append(values, v)
	}
	if _, err := m.BatchUpdate(keys, values, nil); err == nil {
		return nil
	}
	for i := range keys {
		if err := m.Put(&keys[i], &values[i]); err != nil {
			return fmt.Errorf("write %v: %w", m, err)
		}
	}
	return nil
}

func deleteKeys[K comparable, V any](m *ebpf.Map, entries map[K]V) error {
	for k := range entries {
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete from %v: %w", m, err)
		}
	}
	return nil
}

func clearMap(m *ebpf.Map) error {
	var keys [][]byte
	k := make([]byte, m.KeySize())
	var v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, slices.Clone(k))
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate %v: %w", m, err)
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("clear %v: %w", m, err)
		}
	}
	return nil
}

// Close implements Engine.
func (e *BPFEngine) Close() error { return e.objs.Close() }

// Judge implements Engine. Probes are judged in two passes, all egress
// judgements grouped by source pod and then all ingress judgements by
// destination pod, so that the endpoint entry at ifindex 1 is rewritten
// once per pod and direction rather than twice per probe.
func (e *BPFEngine) Judge(probes []Probe) ([]Result, error) {
	out := make([]Result, len(probes))
	for i, p := range probes {
		src, dst, err := addresses(e.state, p)
		if err != nil {
			return nil, fmt.Errorf("judge with bpf: %w", err)
		}
		out[i] = Result{Probe: p, Src: src, Dst: dst}
		if p.From == p.To {
			// Never leaves the pod: no program sees it.
			ep, _ := e.state.Endpoint(p.From)
			out[i].Verdict = policy.Verdict{Allowed: true, Passes: true}
			out[i].Verdict.Egress = policy.Judgement{Pod: ep.Pod, Allowed: true, Cause: policy.CauseLoopback}
			out[i].Verdict.Ingress = out[i].Verdict.Egress
			out[i].Verdict.SrcIdentity, out[i].Verdict.DstIdentity = ep.Identity, ep.Identity
		}
	}
	for _, dir := range []policy.Direction{policy.Egress, policy.Ingress} {
		order := make([]int, 0, len(out))
		for i := range out {
			if out[i].From != out[i].To {
				order = append(order, i)
			}
		}
		local := func(r *Result) policy.PodRef {
			if dir == policy.Egress {
				return r.From
			}
			return r.To
		}
		slices.SortStableFunc(order, func(a, b int) int { return comparePod(local(&out[a]), local(&out[b])) })
		var current policy.PodRef
		for n, i := range order {
			r := &out[i]
			pod := local(r)
			if n == 0 || pod != current {
				if err := e.setEndpoint(pod); err != nil {
					return nil, err
				}
				current = pod
			}
			if err := e.judge(r, dir); err != nil {
				return nil, err
			}
		}
	}
	for i := range out {
		v := &out[i].Verdict
		if out[i].From == out[i].To {
			continue
		}
		v.Allowed = v.Egress.Allowed && v.Ingress.Allowed
		v.Passes = (v.Egress.Allowed || v.Egress.Audit) && (v.Ingress.Allowed || v.Ingress.Audit)
	}
	return out, nil
}

func (e *BPFEngine) setEndpoint(pod policy.PodRef) error {
	v, ok := e.entries.endpoint(e.state, pod)
	if !ok {
		return fmt.Errorf("judge with bpf: pod %s has no endpoint entry", pod)
	}
	if err := e.objs.Endpoints.Put(uint32(probeIfindex), &v); err != nil {
		return fmt.Errorf("judge with bpf: write endpoint of %s: %w", pod, err)
	}
	// The program drops a packet leaving a pod from an address that is
	// not the pod's: the probe interface sends from the pod's addresses.
	ep, _ := e.state.Endpoint(pod)
	for _, a := range ep.IPs {
		k := addrKey(a)
		if err := e.objs.EndpointIps.Put(&k, &bpf.PalisadeEndpointIpValue{Ifindex: uint32(probeIfindex)}); err != nil {
			return fmt.Errorf("judge with bpf: write address %s of %s: %w", a, pod, err)
		}
	}
	return nil
}

// addrKey is an endpoint_ips key.
func addrKey(a netip.Addr) bpf.PalisadeAddrKey {
	a = a.Unmap()
	if a.Is4() {
		k := bpf.PalisadeAddrKey{Family: uint8(bpf.PalisadeFamilyFAMILY_IPV4)}
		v4 := a.As4()
		copy(k.Addr[:], v4[:])
		return k
	}
	return bpf.PalisadeAddrKey{Family: uint8(bpf.PalisadeFamilyFAMILY_IPV6), Addr: a.As16()}
}

// judge runs r's packet through the program of dir with the endpoint
// entry already in place, and records that direction's judgement.
func (e *BPFEngine) judge(r *Result, dir policy.Direction) error {
	prog, pod := e.objs.PalisadeFromPod, r.From
	if dir == policy.Ingress {
		prog, pod = e.objs.PalisadeToPod, r.To
	}
	frame, err := probeFrame(r.Src, r.Dst, r.Port.Protocol, probeSourcePort, r.Port.Number)
	if err != nil {
		return fmt.Errorf("judge with bpf: %s: %w", r.Probe, err)
	}
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return fmt.Errorf("judge with bpf: %s: run %s: %w", r.Probe, dir, err)
	}
	var ruleID uint32
	var tracked bool
	if ret != tcActShot {
		// A drop is never tracked (audit mode, which tracks would-drops,
		// is not written to the endpoint entry): one syscall saved.
		if ruleID, tracked, err = e.untrack(r, dir); err != nil {
			return err
		}
	}
	srcID, err := e.lookupIdentity(r.Src)
	if err != nil {
		return err
	}
	dstID, err := e.lookupIdentity(r.Dst)
	if err != nil {
		return err
	}
	r.Verdict.SrcIdentity, r.Verdict.DstIdentity = srcID, dstID
	peer := dstID
	if dir == policy.Ingress {
		peer = srcID
	}

	ep, _ := e.state.Endpoint(pod)
	j := policy.Judgement{Pod: pod, Audit: ep.Mode == policy.ModeAudit}
	if dir == policy.Ingress {
		j.Isolated, j.IsolatedBy = ep.IngressIsolated, ep.IngressIsolatedBy
	} else {
		j.Isolated, j.IsolatedBy = ep.EgressIsolated, ep.EgressIsolatedBy
	}
	switch ret {
	case tcActShot:
		j.Cause = policy.CausePolicyMiss
	case tcActUnspec:
		// Only flows in isolated directions are tracked: a pass where
		// nothing isolates needs no entry.
		if !tracked && j.Isolated {
			return fmt.Errorf("judge with bpf: %s: %s passed without a new conntrack entry (map full, or a stale flow)", r.Probe, dir)
		}
		j.Allowed = true
		switch {
		case ruleID != 0:
			j.Cause = policy.CausePolicyAllow
			j.Source, _ = e.state.RuleSource(ruleID)
			peerIP := r.Dst
			if dir == policy.Ingress {
				peerIP = r.Src
			}
			j.Rule = e.matchedRule(ruleID, ep.Identity, peer, peerIP, dir, r.Port)
		case dir == policy.Ingress && peer == policy.IdentityHost && j.Isolated:
			j.Cause = policy.CauseHost
		case !j.Isolated:
			j.Cause = policy.CauseNotIsolated
		default:
			return fmt.Errorf("judge with bpf: %s: %s allowed in an isolated direction with no rule id", r.Probe, dir)
		}
	default:
		return fmt.Errorf("judge with bpf: %s: %s: unexpected tc verdict %#x", r.Probe, dir, ret)
	}
	if dir == policy.Ingress {
		r.Verdict.Ingress = j
	} else {
		r.Verdict.Egress = j
	}
	return nil
}

// untrack removes the conntrack entry the probe's packet created, so that
// no later probe is judged as part of an earlier flow, and returns the
// rule id the program recorded in it.
func (e *BPFEngine) untrack(r *Result, dir policy.Direction) (uint32, bool, error) {
	k := bpf.PalisadeCtKey{
		Ifindex: probeIfindex,
		Sport:   bpf.NetworkOrder16(probeSourcePort), Dport: bpf.NetworkOrder16(r.Port.Number),
		Protocol: uint8(r.Port.Protocol), Direction: uint8(dir),
	}
	k.Family = uint8(bpf.PalisadeFamilyFAMILY_IPV6)
	if r.Src.Is4() {
		k.Family = uint8(bpf.PalisadeFamilyFAMILY_IPV4)
		s, d := r.Src.As4(), r.Dst.As4()
		copy(k.Saddr[:], s[:])
		copy(k.Daddr[:], d[:])
	} else {
		k.Saddr, k.Daddr = r.Src.As16(), r.Dst.As16()
	}
	var v bpf.PalisadeCtValue
	err := e.objs.Conntrack.LookupAndDelete(&k, &v)
	if err == nil {
		// The probe endpoint's conntrack share counts the entry the
		// program made; deleted from Go, it is forgotten with the share,
		// or enough probes would exhaust it.
		if derr := e.objs.CtEndpointUsed.Delete(uint32(probeIfindex)); derr != nil && !errors.Is(derr, ebpf.ErrKeyNotExist) {
			return 0, false, fmt.Errorf("judge with bpf: %s: reset conntrack share: %w", r.Probe, derr)
		}
	}
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("judge with bpf: %s: read conntrack: %w", r.Probe, err)
	}
	return v.RuleId, true, nil
}

func (e *BPFEngine) lookupIdentity(a netip.Addr) (policy.NumericIdentity, error) {
	if id, ok := e.identity[a]; ok {
		return id, nil
	}
	k, err := bpf.NewIPKey(netip.PrefixFrom(a, a.BitLen()))
	if err != nil {
		return 0, fmt.Errorf("judge with bpf: %w", err)
	}
	var v bpf.PalisadeIdentityValue
	id := policy.IdentityWorld
	switch err := e.objs.IpIdentity.Lookup(&k, &v); {
	case err == nil:
		id = policy.NumericIdentity(v.Identity)
	case !errors.Is(err, ebpf.ErrKeyNotExist):
		return 0, fmt.Errorf("judge with bpf: look up identity of %s: %w", a, err)
	}
	e.identity[a] = id
	return id, nil
}

// matchedRule names the entry with ruleID that matches the probe, in the
// program's lookup order: the peer's own entries, then every-pod ones
// (for a pod), every-address-of-the-family ones (for peerIP's family),
// any-peer ones, and for each the exact port, any port of the protocol, a
// port range, any protocol.
func (e *BPFEngine) matchedRule(ruleID uint32, local, peer policy.NumericIdentity, peerIP netip.Addr, dir policy.Direction, port Port) policy.RuleKey {
	best, bestRank := policy.RuleKey{}, -1
	family := policy.FamilyWildcard(peerIP)
	for _, k := range e.entries.rulesByID[ruleID] {
		wildcard := k.Peer == policy.PeerAny || k.Peer == policy.PeerAnyPod && policy.IsPodIdentity(peer) ||
			k.Peer == family && policy.IsAddressedIdentity(peer)
		if k.Local != local || k.Direction != dir || (k.Peer != peer && !wildcard) {
			continue
		}
		rank := -1
		switch {
		case k.Protocol == port.Protocol && k.Port == port.Number && k.EndPort == 0:
			rank = 0
		case k.Protocol == port.Protocol && k.Port == 0:
			rank = 1
		case k.Protocol == port.Protocol && k.EndPort != 0 && k.Port <= port.Number && port.Number <= k.EndPort:
			rank = 2
		case k.Protocol == policy.ProtocolAny:
			rank = 3
		}
		if rank < 0 {
			continue
		}
		switch k.Peer {
		case peer:
		case policy.PeerAnyPod:
			rank += 4
		case family:
			rank += 8
		default:
			rank += 12
		}
		if bestRank < 0 || rank < bestRank {
			best, bestRank = k, rank
		}
	}
	return best
}
