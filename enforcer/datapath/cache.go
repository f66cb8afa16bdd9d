package datapath

import "github.com/palisade-dev/palisade/bpf"

// applyOp records in e the first n elements of o, as the kernel applied
// them: the Datapath keeps e equal to the maps' contents, and the plan's
// tests replay a plan one element at a time.
func applyOp(e *Entries, o op, n int) {
	switch keys := o.keys.(type) {
	case []bpf.PalisadeIpKey:
		if o.target == mapServiceCIDRs {
			applyN(e.ServiceCIDRs, keys, o.values, o.delete, n)
		} else {
			applyN(e.IPs, keys, o.values, o.delete, n)
		}
	case []uint32:
		applyN(e.Endpoints, keys, o.values, o.delete, n)
		if o.delete {
			for _, k := range keys[:min(n, len(keys))] {
				delete(e.Pods, k)
			}
		}
	case []bpf.PalisadePolicyKey:
		applyN(e.Policy, keys, o.values, o.delete, n)
	case []bpf.PalisadePolicyRangeKey:
		applyN(e.PolicyRanges, keys, o.values, o.delete, n)
	case []bpf.PalisadeAddrKey:
		applyN(e.EndpointIPs, keys, o.values, o.delete, n)
	case []bpf.PalisadeSourceCidrKey:
		applyN(e.SourceCIDRs, keys, o.values, o.delete, n)
	}
}

func applyN[K comparable, V any](m map[K]V, keys []K, values any, del bool, n int) {
	n = min(n, len(keys))
	if del {
		for _, k := range keys[:n] {
			delete(m, k)
		}
		return
	}
	vals := values.([]V)
	for i, k := range keys[:n] {
		m[k] = vals[i]
	}
}

// clone returns a deep copy of the map contents of e.
func (e Entries) clone() Entries {
	c := newEntries()
	copyInto(c.IPs, e.IPs)
	copyInto(c.Endpoints, e.Endpoints)
	copyInto(c.Policy, e.Policy)
	copyInto(c.PolicyRanges, e.PolicyRanges)
	copyInto(c.ServiceCIDRs, e.ServiceCIDRs)
	copyInto(c.EndpointIPs, e.EndpointIPs)
	copyInto(c.SourceCIDRs, e.SourceCIDRs)
	copyInto(c.Pods, e.Pods)
	copyInto(c.Unresolved, e.Unresolved)
	return c
}

func copyInto[K comparable, V any](dst, src map[K]V) {
	for k, v := range src {
		dst[k] = v
	}
}
