package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// isolation is what every pod of one local identity shares.
type isolation struct {
	ingressBy, egressBy []PolicyRef
	mode                EnforcementMode
	revision            uint32
}

func (cp *compiler) endpoints(locals []*workload, rules []Rule) []LocalEndpoint {
	iso := make(map[*workload]*isolation, len(locals))
	byID := make(map[NumericIdentity]*isolation, len(locals))
	for _, w := range locals {
		is := &isolation{mode: cp.namespace(w.ns).mode}
		for _, p := range cp.policies {
			if !p.selects(w) {
				continue
			}
			if p.ingress {
				is.ingressBy = append(is.ingressBy, p.ref)
			}
			if p.egress {
				is.egressBy = append(is.egressBy, p.ref)
			}
		}
		iso[w] = is
		byID[w.id] = is
	}
	// The revision digests what decides this identity's verdicts.
	digests := make(map[NumericIdentity][]byte, len(locals))
	for _, r := range rules {
		var b [20]byte
		binary.LittleEndian.PutUint32(b[0:], uint32(r.Peer))
		b[4], b[5] = byte(r.Direction), byte(r.Protocol)
		binary.LittleEndian.PutUint16(b[6:], r.Port)
		binary.LittleEndian.PutUint16(b[8:], r.EndPort)
		binary.LittleEndian.PutUint32(b[10:], r.RuleID())
		digests[r.Local] = append(digests[r.Local], b[:14]...)
	}
	for id, is := range byID {
		h := sha256.New()
		var head [8]byte
		binary.LittleEndian.PutUint32(head[0:], uint32(id))
		if len(is.ingressBy) > 0 {
			head[4] |= 1
		}
		if len(is.egressBy) > 0 {
			head[4] |= 2
		}
		if is.mode == ModeAudit {
			head[4] |= 4
		}
		h.Write(head[:])
		h.Write(digests[id])
		is.revision = binary.LittleEndian.Uint32(h.Sum(nil))
		if is.revision == 0 {
			is.revision = 1
		}
	}
	var out []LocalEndpoint
	for _, pod := range cp.pods {
		if !pod.local {
			continue
		}
		is := iso[pod.identity]
		out = append(out, LocalEndpoint{
			Pod: pod.ref, IPs: slices.Clone(pod.ips), Identity: pod.identity.id,
			IngressIsolated: len(is.ingressBy) > 0, EgressIsolated: len(is.egressBy) > 0,
			IngressIsolatedBy: is.ingressBy, EgressIsolatedBy: is.egressBy,
			Mode: is.mode, Revision: is.revision, SourceCIDRs: slices.Clone(pod.sources),
		})
	}
	return out
}
