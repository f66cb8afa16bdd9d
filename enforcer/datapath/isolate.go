package datapath

import (
	"fmt"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// isolateTouched is a failed Sync's last step: every endpoint whose value
// the plan was about to change from before (a new one, a new identity or
// flags, a revision bumped because its rules or peers changed) is written
// isolated both ways with transitIdentity and a fresh revision, so that
// its tracked flows are judged again and dropped. Whatever step failed, a
// pod the new State concerns is then closed rather than judged by a mix of
// two States; the other pods keep what they had.
//
// Endpoints the maps already hold come first: when the endpoints map
// itself is full, rewriting an existing key still succeeds, and new ones
// that do not fit have no links yet (Sync attaches only after a complete
// plan). It returns the pods left closed, best effort: an error here is
// joined to the Sync's.
func (d *Datapath) isolateTouched(before, final map[uint32]bpf.PalisadeEndpointValue, pods map[uint32]policy.PodRef) ([]policy.PodRef, error) {
	var held, added keyValues[uint32, bpf.PalisadeEndpointValue]
	var closed []uint32
	for _, idx := range sortedKeys(final, cmpUint32) {
		if old, ok := before[idx]; ok && old == final[idx] {
			continue
		}
		cur, ok := d.applied.Endpoints[idx]
		switch {
		case ok && cur.Identity == transitIdentity && cur.Flags == isolationFlags:
			closed = append(closed, idx) // by step 1, or by an earlier failure
		case ok:
			held.add(idx, newEndpointTransit(d.nextRevision()))
		default:
			added.add(idx, newEndpointTransit(d.nextRevision()))
		}
	}
	var err error
	for _, kv := range []keyValues[uint32, bpf.PalisadeEndpointValue]{held, added} {
		o := op{step: "isolate touched endpoints", target: mapEndpoints, keys: kv.keys, values: kv.values}
		if o.len() == 0 {
			continue
		}
		var n int
		n, err = d.write(o)
		applyOp(&d.applied, o, n)
		closed = append(closed, kv.keys[:n]...)
		if err != nil {
			err = fmt.Errorf("isolate endpoints of a failed sync: %w", err)
			break
		}
	}
	var isolated []policy.PodRef
	for _, idx := range closed {
		if pod, ok := pods[idx]; ok {
			isolated = append(isolated, pod)
		}
	}
	return isolated, err
}
