package policy

import (
	"maps"
	"net/netip"
	"slices"
)

func (cp *compiler) identities(all []*workload) []Identity {
	out := []Identity{
		{ID: IdentityWorld, Kind: KindReserved, Key: "reserved:world"},
		{ID: IdentityHost, Kind: KindReserved, Key: "reserved:host"},
	}
	for _, w := range all {
		out = append(out, Identity{
			ID: w.id, Kind: KindWorkload, Key: w.key, Namespace: w.ns,
			NamespaceLabels: maps.Clone(map[string]string(w.nsLabels)),
			Labels:          maps.Clone(map[string]string(w.labels)),
			NamedPorts:      slices.Clone(w.ports),
			Blocks:          blockKeys(w.blocks),
		})
	}
	for _, c := range cp.cidrs {
		out = append(out, Identity{ID: c.id, Kind: KindCIDR, Key: c.key, Blocks: blockKeys(c.blocks)})
	}
	slices.SortFunc(out, func(a, b Identity) int { return cmpNum(a.ID, b.ID) })
	return out
}

// ipEntries lists every prefix. On an exact tie the host's entry beats a
// pod's, and a pod's beats an ipBlock prefix's: the pod identity already
// records which blocks contain the pod.
func (cp *compiler) ipEntries() []IPEntry {
	m := map[netip.Prefix]NumericIdentity{}
	for p, key := range cp.cidrPrefixes {
		if key == "" {
			m[p] = IdentityWorld
		} else {
			m[p] = cp.cidrs[key].id
		}
	}
	for _, pod := range cp.pods {
		for i, a := range pod.ips {
			m[netip.PrefixFrom(a, a.BitLen())] = pod.byIP[i].id
		}
	}
	for _, h := range cp.hostIPs {
		m[netip.PrefixFrom(h, h.BitLen())] = IdentityHost
	}
	out := make([]IPEntry, 0, len(m))
	for p, id := range m {
		out = append(out, IPEntry{Prefix: p, Identity: id})
	}
	slices.SortFunc(out, compareIPEntry)
	return out
}
