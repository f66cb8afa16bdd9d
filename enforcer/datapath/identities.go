package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Observed returns the numbers the state maps hold: each ip_identity
// prefix's identity and each allow entry's rule id. A restarted enforcer
// seeds its allocator with them (policy.NewIdentityAllocatorFromObserved)
// so that its first Sync keeps the numbers the adopted maps enforce
// instead of rewriting most entries under fresh ones.
func (d *Datapath) Observed() (policy.Observed, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return policy.Observed{}, errors.New("read observed numbers: closed")
	}
	if d.dirty {
		if err := d.readState(); err != nil {
			return policy.Observed{}, fmt.Errorf("read observed numbers: %w", err)
		}
	}
	return observedOf(d.applied)
}

// observedOf decodes entries into numbers keyed as the compiler keys
// them. Entries no Translate writes (an undecodable prefix, a verdict
// other than allow) are skipped: they name nothing a compilation can
// keep.
func observedOf(e Entries) (policy.Observed, error) {
	obs := policy.Observed{
		IPs:   make(map[netip.Prefix]policy.NumericIdentity, len(e.IPs)),
		Rules: make(map[policy.RuleKey]uint32, len(e.Policy)+len(e.PolicyRanges)),
	}
	for k, v := range e.IPs {
		if p, ok := prefixOf(k); ok {
			obs.IPs[p.Masked()] = policy.NumericIdentity(v.Identity)
		}
	}
	allow := uint8(bpf.PalisadePolicyVerdictPOLICY_ALLOW)
	for k, v := range e.Policy {
		if v.Verdict != allow {
			continue
		}
		obs.Rules[policy.RuleKey{
			Local: policy.NumericIdentity(k.LocalIdentity), Peer: policy.NumericIdentity(k.PeerIdentity),
			Direction: policy.Direction(k.Direction), Protocol: policy.Protocol(k.Protocol), Port: k.Dport,
		}] = v.RuleId
	}
	if len(e.PolicyRanges) == 0 {
		return obs, nil
	}
	// The key of the whole port space has no port bits: its prefix length
	// is the part every range key matches in full.
	whole, err := bpf.NewPolicyRangeKeys(0, 0, bpf.PalisadeDirection(policy.Ingress), uint8(policy.ProtocolTCP), 0, 65535)
	if err != nil || len(whole) != 1 {
		return obs, fmt.Errorf("read observed numbers: encode the whole port range: %v keys, %w", len(whole), err)
	}
	fixed := int(whole[0].Prefixlen)
	for k, v := range e.PolicyRanges {
		bits := int(k.Prefixlen) - fixed
		if v.Verdict != allow || bits < 0 || bits > 16 {
			continue
		}
		start := uint32(bpf.NetworkOrder16(k.Dport))
		end := start + 1<<(16-bits) - 1
		if end > 65535 {
			continue
		}
		obs.Rules[policy.RuleKey{
			Local: policy.NumericIdentity(k.LocalIdentity), Peer: policy.NumericIdentity(k.PeerIdentity),
			Direction: policy.Direction(k.Direction), Protocol: policy.Protocol(k.Protocol),
			Port: uint16(start), EndPort: uint16(end),
		}] = v.RuleId
	}
	return obs, nil
}
