package enforcer

import (
	"context"
	"fmt"
	"time"

	"github.com/palisade-dev/palisade/enforcer/datapath"
)

// eventLossInterval is how often the agent reads the datapath's lost
// drop and audit events and writes one record per pod that lost some:
// often enough that a flood shows within seconds, rarely enough that a
// flooding pod costs one line per interval.
const eventLossInterval = 10 * time.Second

// lossTracker turns the programs' growing per-interface counts of lost
// events into what was lost since the previous read.
type lossTracker struct {
	last map[uint32]uint64
}

// since returns the losses since the previous call, only those above
// zero. The first call only takes the counts in: they may be a previous
// agent's, already reported. A count that went down started again (its
// bucket was evicted and recreated): all of it is new.
func (l *lossTracker) since(losses []datapath.EventLoss) []datapath.EventLoss {
	first := l.last == nil
	seen := make(map[uint32]uint64, len(losses))
	var out []datapath.EventLoss
	for _, e := range losses {
		seen[e.Ifindex] = e.Lost
		if first {
			continue
		}
		prev, ok := l.last[e.Ifindex]
		n := e.Lost
		if ok && e.Lost >= prev {
			n = e.Lost - prev
		}
		if n > 0 {
			out = append(out, datapath.EventLoss{Ifindex: e.Ifindex, Pod: e.Pod, Lost: n})
		}
	}
	l.last = seen
	return out
}

// lossRecord is the flow record of events of one pod lost since the
// previous record.
func lossRecord(node string, at time.Time, l datapath.EventLoss) FlowRecord {
	who := fmt.Sprintf("interface %d", l.Ifindex)
	r := FlowRecord{Time: at.UTC(), Node: node, Verdict: "lost", Lost: l.Lost}
	if l.Pod.Name != "" {
		r.Pod = l.Pod.String()
		who = r.Pod
	}
	r.Reason = fmt.Sprintf("%d events of %s lost (drop and audit events over its budget, or the event ring buffer full); its packets were judged all the same", l.Lost, who)
	return r
}

// lossLabel names the pod (or interface) in the lost events metric.
func lossLabel(l datapath.EventLoss) string {
	if l.Pod.Name != "" {
		return l.Pod.String()
	}
	return fmt.Sprintf("interface %d", l.Ifindex)
}

// reportEventLosses writes a record per pod that lost events, and counts
// them in palisade_enforcer_flow_events_lost_total, every interval until
// ctx ends.
func (a *Agent) reportEventLosses(ctx context.Context, dp *datapath.Datapath, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var track lossTracker
	for {
		losses, err := dp.EventsLost()
		if err != nil {
			a.opts.Logger.Warn("read lost flow events", "error", err)
		} else {
			now := time.Now()
			for _, l := range track.since(losses) {
				a.metrics.eventsLost.WithLabelValues(lossLabel(l)).Add(float64(l.Lost))
				rec := lossRecord(a.opts.NodeName, now, l)
				a.metrics.flowRecords.WithLabelValues(rec.Verdict).Inc()
				if err := a.flows.write(rec); err != nil {
					a.opts.Logger.Error("write flow records", "error", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
