package datapath

import (
	"context"
	"fmt"
	"time"

	"github.com/palisade-dev/palisade/bpf"
	"golang.org/x/sys/unix"
)

// ConntrackTimeouts are how long a tracked flow may stay idle (no packet
// in either direction) before the collector forgets it. A forgotten flow
// is judged afresh on its next packet: fine for the side that opened it,
// fatal for replies into an isolated direction, so the timeouts must
// outlast the idle gaps of healthy connections.
type ConntrackTimeouts struct {
	// Established covers TCP and SCTP flows that have seen a reply.
	// Default 6h: longer than the 2h Linux TCP keepalive default, so a
	// keepalive-probed idle connection survives.
	Established time.Duration
	// Datagram covers other flows (UDP, ICMP echo, ...) that have seen a
	// reply. Default 2m, as netfilter's UDP stream timeout.
	Datagram time.Duration
	// Unreplied covers flows of any protocol without a reply yet: SYNs to
	// dead peers, scans, one-way datagrams. Default 1m.
	Unreplied time.Duration
}

// DefaultConntrackTimeouts are the timeouts zero fields take.
func DefaultConntrackTimeouts() ConntrackTimeouts {
	return ConntrackTimeouts{Established: 6 * time.Hour, Datagram: 2 * time.Minute, Unreplied: time.Minute}
}

func (t ConntrackTimeouts) withDefaults() ConntrackTimeouts {
	def := DefaultConntrackTimeouts()
	if t.Established == 0 {
		t.Established = def.Established
	}
	if t.Datagram == 0 {
		t.Datagram = def.Datagram
	}
	if t.Unreplied == 0 {
		t.Unreplied = def.Unreplied
	}
	return t
}

// idleLimit is the timeout of one entry.
func (t ConntrackTimeouts) idleLimit(k *bpf.PalisadeCtKey, v *bpf.PalisadeCtValue) time.Duration {
	// A service flow's post-DNAT entry never sees its replies: they come
	// back un-NATed through the deferred entry. It lives as a replied
	// flow would.
	replied := v.Flags&uint32(bpf.PalisadeCtFlagsCT_F_SEEN_REPLY|bpf.PalisadeCtFlagsCT_F_SERVICE) != 0
	switch {
	case !replied:
		return t.Unreplied
	case k.Protocol == unix.IPPROTO_TCP || k.Protocol == unix.IPPROTO_SCTP:
		return t.Established
	}
	return t.Datagram
}

// CollectConntrack deletes the conntrack entries idle longer than their
// timeout at monotonic time now (CLOCK_MONOTONIC, the programs' clock),
// and those of interfaces Palisade no longer enforces. It returns how
// many it deleted.
func (d *Datapath) CollectConntrack(now time.Duration) (int, error) {
	// Entries created after this snapshot may belong to an endpoint a
	// concurrent Sync adds: only older ones count as orphans.
	d.mu.Lock()
	snapshot := monotonicNow()
	endpoints := make(map[uint32]bool, len(d.applied.Endpoints))
	for idx := range d.applied.Endpoints {
		endpoints[idx] = true
	}
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return 0, fmt.Errorf("collect conntrack: datapath closed")
	}
	t := d.opts.Conntrack.withDefaults()
	n, err := d.scanConntrack(func(k *bpf.PalisadeCtKey, v *bpf.PalisadeCtValue) bool {
		if !endpoints[k.Ifindex] && time.Duration(v.CreatedNs) < snapshot {
			return true
		}
		idle := now - time.Duration(v.LastSeenNs)
		return idle > t.idleLimit(k, v)
	})
	if err != nil {
		return n, fmt.Errorf("collect conntrack: %w", err)
	}
	return n, nil
}

// RunConntrackGC collects idle entries every interval until ctx ends,
// reporting each round's result to report (which may be nil). The
// programs refresh an entry's last-seen time at most once a second, so an
// interval under a few seconds buys nothing.
func (d *Datapath) RunConntrackGC(ctx context.Context, interval time.Duration, report func(removed int, err error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := d.CollectConntrack(monotonicNow())
		if report != nil {
			report(n, err)
		}
	}
}

// monotonicNow reads CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns and
// (at tick resolution) bpf_ktime_get_coarse_ns.
func monotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
