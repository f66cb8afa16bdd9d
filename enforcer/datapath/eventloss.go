package datapath

import (
	"fmt"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// EventLoss is how many drop and audit events of one interface the
// programs did not send: over the interface's budget
// (bpf.Config.DropEventInterval and DropEventBurst, per CPU) or with the
// ring buffer full. The count only grows while the interface's bucket
// lives (it starts again at zero if a bucket of an interface long idle is
// evicted for a new one); callers report the difference between reads.
type EventLoss struct {
	Ifindex uint32
	// Pod is the endpoint behind Ifindex as of the last Sync; zero if
	// unknown (gone, or not a pod's: an uplink's drops after DNAT).
	Pod  policy.PodRef
	Lost uint64
}

// EventsLost reads every interface's lost events, summed over CPUs.
func (d *Datapath) EventsLost() ([]EventLoss, error) {
	pods := *d.pods.Load()
	var out []EventLoss
	var idx uint32
	var perCPU []bpf.PalisadeEventBucket
	it := d.objs.EndpointEventBudget.Iterate()
	for it.Next(&idx, &perCPU) {
		l := EventLoss{Ifindex: idx, Pod: pods[idx]}
		for _, b := range perCPU {
			l.Lost += b.Lost
		}
		out = append(out, l)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read lost events: %w", err)
	}
	return out, nil
}
