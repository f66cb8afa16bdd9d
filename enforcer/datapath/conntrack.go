package datapath

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
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
	// Closing covers TCP flows that have seen a FIN or RST (the programs
	// mark them closing). Default 30s: past the last ACK and a
	// retransmitted FIN, while a half-closed connection that keeps
	// sending stays fresh. A connection idle that long after a close is
	// forgotten; a new one on the same ports starts with a SYN.
	Closing time.Duration
}

// DefaultConntrackTimeouts are the timeouts zero fields take.
func DefaultConntrackTimeouts() ConntrackTimeouts {
	return ConntrackTimeouts{Established: 6 * time.Hour, Datagram: 2 * time.Minute, Unreplied: time.Minute, Closing: 30 * time.Second}
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
	if t.Closing == 0 {
		t.Closing = def.Closing
	}
	return t
}

// idleLimit is the timeout of one entry.
func (t ConntrackTimeouts) idleLimit(k *bpf.PalisadeCtKey, v *bpf.PalisadeCtValue) time.Duration {
	// A service flow's post-DNAT entry never sees its replies: they come
	// back un-NATed through the deferred entry. It lives as a replied
	// flow would.
	replied := v.Flags&uint32(bpf.PalisadeCtFlagsCT_F_SEEN_REPLY|bpf.PalisadeCtFlagsCT_F_SERVICE) != 0
	limit := t.Datagram
	switch {
	case !replied:
		limit = t.Unreplied
	case k.Protocol == unix.IPPROTO_TCP || k.Protocol == unix.IPPROTO_SCTP:
		limit = t.Established
	}
	if k.Protocol == unix.IPPROTO_TCP && v.Flags&uint32(bpf.PalisadeCtFlagsCT_F_CLOSING) != 0 {
		limit = min(limit, t.Closing)
	}
	return limit
}

// CollectConntrack deletes the conntrack entries idle longer than their
// timeout at monotonic time now (CLOCK_MONOTONIC, the programs' clock),
// and those of interfaces Palisade no longer enforces, giving their
// places back to their endpoints' shares; the share counts of interfaces
// gone for good are dropped. It returns how many entries it deleted.
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
	live := map[uint32]int{}
	n, err := d.scanConntrack(func(k *bpf.PalisadeCtKey, v *bpf.PalisadeCtValue) bool {
		if !endpoints[k.Ifindex] && time.Duration(v.CreatedNs) < snapshot {
			return true
		}
		idle := now - time.Duration(v.LastSeenNs)
		if idle > t.idleLimit(k, v) {
			return true
		}
		live[shareOf(k, v)]++
		return false
	})
	if err == nil {
		err = d.forgetShares(endpoints, live)
	}
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

// conntrackMaps are adopted or replaced together: the share counters
// count the entries of the table beside them, and a count adopted over a
// new table (or a table over new counts) would be wrong for as long as
// the old entries would have lived.
func conntrackMaps() []string {
	return []string{bpf.PalisadeMapConntrack, bpf.PalisadeMapCtEndpointUsed, bpf.PalisadeMapCtEndpointCollected}
}

// adoptConntrackTogether drops from adopted the conntrack maps whose
// partners are not adopted, so that load replaces all of them.
func (d *Datapath) adoptConntrackTogether(adopted map[string]*ebpf.Map) {
	all := true
	for _, name := range conntrackMaps() {
		if adopted[name] == nil {
			all = false
		}
	}
	if all {
		return
	}
	for _, name := range conntrackMaps() {
		if m, ok := adopted[name]; ok {
			d.log.Warn("replacing pinned map so that conntrack and its share counts come from one run", "map", name, "pin", d.mapPin(name))
			m.Close()
			delete(adopted, name)
		}
	}
}

// shareOf is the interface whose share an entry counts in.
func shareOf(k *bpf.PalisadeCtKey, v *bpf.PalisadeCtValue) uint32 {
	if v.ShareIfindex != 0 {
		return v.ShareIfindex
	}
	return k.Ifindex
}

// scanConntrack walks the conntrack table in batches and deletes the
// entries drop selects; it returns how many it deleted. Each entry this
// call deleted (not one gone already) is added to the
// ct_endpoint_collected of the endpoint whose share it counts in, which
// gives its place back to the programs.
func (d *Datapath) scanConntrack(drop func(*bpf.PalisadeCtKey, *bpf.PalisadeCtValue) bool) (int, error) {
	const chunk = 4096
	m := d.objs.Conntrack
	keys := make([]bpf.PalisadeCtKey, chunk)
	vals := make([]bpf.PalisadeCtValue, chunk)
	var doomed []bpf.PalisadeCtKey
	var payers []uint32
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			if drop(&keys[i], &vals[i]) {
				doomed = append(doomed, keys[i])
				payers = append(payers, shareOf(&keys[i], &vals[i]))
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break // end of the table
		}
		if err != nil {
			return 0, fmt.Errorf("scan conntrack: %w", err)
		}
	}
	if len(doomed) == 0 {
		return 0, nil
	}
	deleted, err := deleteConntrack(m, doomed, payers)
	total := 0
	for _, n := range deleted {
		total += int(n)
	}
	if cerr := d.addCollected(deleted); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return total, fmt.Errorf("delete conntrack entries: %w", err)
	}
	return total, nil
}

// deleteConntrack deletes keys and counts those this call removed by the
// share they counted in (payers, one per key): a key already gone was
// removed (and counted) by whoever did.
func deleteConntrack(m *ebpf.Map, keys []bpf.PalisadeCtKey, payers []uint32) (map[uint32]uint64, error) {
	deleted := map[uint32]uint64{}
	for done := 0; done < len(keys); {
		n, err := m.BatchDelete(keys[done:], nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			return deleteEach(m, keys[done:], payers[done:], deleted)
		}
		for _, idx := range payers[done : done+n] {
			deleted[idx]++
		}
		done += n
		switch {
		case err == nil:
			return deleted, nil
		case errors.Is(err, ebpf.ErrKeyNotExist):
			done++ // gone already: not ours to count
		default:
			return deleted, err
		}
	}
	return deleted, nil
}

func deleteEach(m *ebpf.Map, keys []bpf.PalisadeCtKey, payers []uint32, deleted map[uint32]uint64) (map[uint32]uint64, error) {
	for i := range keys {
		err := m.Delete(&keys[i])
		switch {
		case err == nil:
			deleted[payers[i]]++
		case errors.Is(err, ebpf.ErrKeyNotExist):
		default:
			return deleted, err
		}
	}
	return deleted, nil
}

// addCollected adds the collector's deletions to each endpoint's
// ct_endpoint_collected. Go is its only writer; shareMu serialises the
// read-modify-write of concurrent scans (the collector, a Sync's purge).
func (d *Datapath) addCollected(deleted map[uint32]uint64) error {
	d.shareMu.Lock()
	defer d.shareMu.Unlock()
	var errs []error
	for idx, n := range deleted {
		if n == 0 {
			continue
		}
		var have uint64
		if err := d.objs.CtEndpointCollected.Lookup(idx, &have); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("read collected entries of interface %d: %w", idx, err))
			continue
		}
		if err := d.objs.CtEndpointCollected.Put(idx, have+n); err != nil {
			errs = append(errs, fmt.Errorf("count collected entries of interface %d: %w", idx, err))
		}
	}
	return errors.Join(errs...)
}

// forgetShares deletes the share counts of interfaces that are no
// endpoint and hold no entry (live says how many each holds after a
// scan): their pods are gone, and an interface index is reused only
// after the kernel's counter wraps.
func (d *Datapath) forgetShares(endpoints map[uint32]bool, live map[uint32]int) error {
	d.shareMu.Lock()
	defer d.shareMu.Unlock()
	var errs []error
	for _, m := range []*ebpf.Map{d.objs.CtEndpointUsed, d.objs.CtEndpointCollected} {
		var stale []uint32
		var idx uint32
		var v uint64
		it := m.Iterate()
		for it.Next(&idx, &v) {
			if !endpoints[idx] && live[idx] == 0 {
				stale = append(stale, idx)
			}
		}
		if err := it.Err(); err != nil {
			errs = append(errs, fmt.Errorf("read conntrack shares: %w", err))
			continue
		}
		for _, idx := range stale {
			if err := m.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("forget conntrack share of interface %d: %w", idx, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ConntrackShare is how many conntrack entries the endpoint behind
// ifindex holds as the programs count them, against its limit
// (bpf.Config.ConntrackPerEndpoint).
func (d *Datapath) ConntrackShare(ifindex uint32) (int64, error) {
	var used, collected uint64
	if err := d.objs.CtEndpointUsed.Lookup(ifindex, &used); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, fmt.Errorf("read conntrack share of interface %d: %w", ifindex, err)
	}
	if err := d.objs.CtEndpointCollected.Lookup(ifindex, &collected); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, fmt.Errorf("read conntrack share of interface %d: %w", ifindex, err)
	}
	return int64(used - collected), nil
}

// carryConntrack copies the flows of a pinned conntrack table this run
// does not adopt (a previous version's LRU, another size) into the new
// one, counting each in its share, so that an upgrade or a resize does not
// cut the connections it tracked (their next packets would find no entry,
// and TCP ones, being no SYN, would be dropped where isolated). It runs
// before any link uses the new maps, so Go may set the counts. What does
// not fit or cannot be read is forgotten, with a log line.
func (d *Datapath) carryConntrack() {
	path := d.mapPin(bpf.PalisadeMapConntrack)
	old, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		return // none, or not a map: nothing to carry
	}
	defer old.Close()
	m := d.objs.Conntrack
	if old.KeySize() != m.KeySize() || old.ValueSize() != m.ValueSize() {
		d.log.Warn("pinned conntrack has another layout: its flows are forgotten", "pin", path)
		return
	}
	shares := map[uint32]uint64{}
	carried, total := 0, 0
	var k bpf.PalisadeCtKey
	var v bpf.PalisadeCtValue
	it := old.Iterate()
	for it.Next(&k, &v) {
		total++
		if err := m.Update(&k, &v, ebpf.UpdateNoExist); err != nil {
			continue // full, or the same flow twice
		}
		shares[shareOf(&k, &v)]++
		carried++
	}
	if err := it.Err(); err != nil {
		d.log.Warn("read pinned conntrack: the flows not read yet are forgotten", "pin", path, "error", err)
	}
	for idx, n := range shares {
		if err := d.objs.CtEndpointUsed.Put(idx, n); err != nil {
			d.log.Warn("count carried conntrack entries", "ifindex", idx, "error", err)
		}
	}
	if carried != total {
		d.log.Warn("conntrack carried over partly: the rest of its flows are forgotten", "carried", carried, "of", total)
	} else if total > 0 {
		d.log.Info("conntrack carried over into a new table", "entries", carried)
	}
}
