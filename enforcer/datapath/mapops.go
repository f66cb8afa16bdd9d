package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/palisade-dev/palisade/bpf"
	"golang.org/x/sys/unix"
)

// ErrMapFull is wrapped by a Sync error caused by a map at capacity. The
// maps are left where the plan stopped, allowing no more than the old or
// the new State; never an allow of neither.
var ErrMapFull = errors.New("map full")

// write applies one batch and returns how many of its elements the
// kernel applied, in order, before any error.
func (d *Datapath) write(o op) (int, error) {
	m := d.mapFor(o.target)
	var n int
	var err error
	switch keys := o.keys.(type) {
	case []bpf.PalisadeIpKey:
		n, err = writeBatch(m, keys, o.values, o.delete)
	case []uint32:
		n, err = writeBatch(m, keys, o.values, o.delete)
	case []bpf.PalisadePolicyKey:
		n, err = writeBatch(m, keys, o.values, o.delete)
	case []bpf.PalisadePolicyRangeKey:
		n, err = writeBatch(m, keys, o.values, o.delete)
	case []bpf.PalisadeAddrKey:
		n, err = writeBatch(m, keys, o.values, o.delete)
	case []bpf.PalisadeSourceCidrKey:
		n, err = writeBatch(m, keys, o.values, o.delete)
	default:
		return 0, fmt.Errorf("write %s: unexpected key type %T", o.target, o.keys)
	}
	if err != nil {
		if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w: %s holds %d entries at most: %w", ErrMapFull, o.target, m.MaxEntries(), err)
		}
		return n, fmt.Errorf("%s: write %s: %w", o.step, o.target, err)
	}
	return n, nil
}

func (d *Datapath) mapFor(id mapID) *ebpf.Map {
	switch id {
	case mapIPIdentity:
		return d.objs.IpIdentity
	case mapEndpoints:
		return d.objs.Endpoints
	case mapPolicy:
		return d.objs.Policy
	case mapPolicyRanges:
		return d.objs.PolicyRanges
	case mapEndpointIPs:
		return d.objs.EndpointIps
	case mapSourceCIDRs:
		return d.objs.SourceCidrs
	}
	return d.objs.ServiceCidrs
}

// writeBatch writes keys (with values, unless del) in one system call
// where the map type supports it, else one by one, in order either way. A
// key to delete that is already gone counts as deleted.
func writeBatch[K any](m *ebpf.Map, keys []K, values any, del bool) (int, error) {
	done := 0
	for done < len(keys) {
		var n int
		var err error
		if del {
			n, err = m.BatchDelete(keys[done:], nil)
		} else {
			n, err = m.BatchUpdate(keys[done:], sliceFrom(values, done), nil)
		}
		if err == nil {
			return len(keys), nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) && n == 0 {
			// The map type has no batch operations: one by one.
			return writeEach(m, keys, values, del, done)
		}
		done += n
		if del && errors.Is(err, ebpf.ErrKeyNotExist) && done < len(keys) {
			done++ // gone already
			continue
		}
		return done, err
	}
	return done, nil
}

func writeEach[K any](m *ebpf.Map, keys []K, values any, del bool, from int) (int, error) {
	for i := from; i < len(keys); i++ {
		var err error
		if del {
			err = m.Delete(keys[i])
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				err = nil
			}
		} else {
			err = m.Update(keys[i], elementOf(values, i), ebpf.UpdateAny)
		}
		if err != nil {
			return i, err
		}
	}
	return len(keys), nil
}

// sliceFrom and elementOf index the value slice of a batch, whichever
// value type it holds.
func sliceFrom(values any, from int) any {
	switch v := values.(type) {
	case []bpf.PalisadeIdentityValue:
		return v[from:]
	case []bpf.PalisadeEndpointValue:
		return v[from:]
	case []bpf.PalisadePolicyValue:
		return v[from:]
	case []bpf.PalisadeServiceValue:
		return v[from:]
	case []bpf.PalisadeEndpointIpValue:
		return v[from:]
	case []bpf.PalisadeSourceCidrValue:
		return v[from:]
	}
	return values
}

func elementOf(values any, i int) any {
	switch v := values.(type) {
	case []bpf.PalisadeIdentityValue:
		return &v[i]
	case []bpf.PalisadeEndpointValue:
		return &v[i]
	case []bpf.PalisadePolicyValue:
		return &v[i]
	case []bpf.PalisadeServiceValue:
		return &v[i]
	case []bpf.PalisadeEndpointIpValue:
		return &v[i]
	case []bpf.PalisadeSourceCidrValue:
		return &v[i]
	}
	return nil
}

// readState reads the state maps into the applied cache.
func (d *Datapath) readState() error {
	e := newEntries()
	err := errors.Join(
		readMap(d.objs.IpIdentity, func(k bpf.PalisadeIpKey, v bpf.PalisadeIdentityValue) { e.IPs[canonicalIPKey(k)] = v }),
		readMap(d.objs.Endpoints, func(k uint32, v bpf.PalisadeEndpointValue) { e.Endpoints[k] = v }),
		readMap(d.objs.Policy, func(k bpf.PalisadePolicyKey, v bpf.PalisadePolicyValue) { e.Policy[k] = v }),
		readMap(d.objs.PolicyRanges, func(k bpf.PalisadePolicyRangeKey, v bpf.PalisadePolicyValue) { e.PolicyRanges[k] = v }),
		readMap(d.objs.ServiceCidrs, func(k bpf.PalisadeIpKey, v bpf.PalisadeServiceValue) { e.ServiceCIDRs[canonicalIPKey(k)] = v }),
		readMap(d.objs.EndpointIps, func(k bpf.PalisadeAddrKey, v bpf.PalisadeEndpointIpValue) { e.EndpointIPs[k] = v }),
		readMap(d.objs.SourceCidrs, func(k bpf.PalisadeSourceCidrKey, v bpf.PalisadeSourceCidrValue) {
			e.SourceCIDRs[canonicalSourceCIDRKey(k)] = v
		}),
	)
	if err != nil {
		return fmt.Errorf("read state maps: %w", err)
	}
	e.Pods = d.applied.Pods
	d.applied, d.dirty = e, false
	return nil
}

func readMap[K comparable, V any](m *ebpf.Map, put func(K, V)) error {
	var k K
	var v V
	it := m.Iterate()
	for it.Next(&k, &v) {
		put(k, v)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate %v: %w", m, err)
	}
	return nil
}

// canonicalSourceCIDRKey is canonicalIPKey for source_cidrs keys: the
// interface stays, the range is masked.
func canonicalSourceCIDRKey(k bpf.PalisadeSourceCidrKey) bpf.PalisadeSourceCidrKey {
	if k.Prefixlen < 32 {
		return k
	}
	ip := canonicalIPKey(bpf.PalisadeIpKey{Prefixlen: k.Prefixlen - 32, Family: k.Family, Pad: k.Pad, Addr: k.Addr})
	k.Addr = ip.Addr
	return k
}

// canonicalIPKey zeroes the address bits a key's prefix length leaves
// out: the kernel ignores them, and a key read back with stray bits must
// equal the masked key Translate computes.
func canonicalIPKey(k bpf.PalisadeIpKey) bpf.PalisadeIpKey {
	p, ok := prefixOf(k)
	if !ok {
		return k
	}
	c, err := bpf.NewIPKey(p.Masked())
	if err != nil || c.Pad != k.Pad {
		return k
	}
	return c
}
