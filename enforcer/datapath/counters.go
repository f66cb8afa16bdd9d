package datapath

import (
	"fmt"

	"github.com/palisade-dev/palisade/bpf"
)

// counterNames names the programs' per-CPU counters (enum counter in
// bpf/include/abi.h) as metrics label values.
func counterNames() map[bpf.PalisadeCounter]string {
	return map[bpf.PalisadeCounter]string{
		bpf.PalisadeCounterCOUNTER_UNMANAGED:                "unmanaged",
		bpf.PalisadeCounterCOUNTER_NON_IP_PASSED:            "non_ip_passed",
		bpf.PalisadeCounterCOUNTER_ALLOWED_POLICY:           "allowed_policy",
		bpf.PalisadeCounterCOUNTER_ALLOWED_OPEN:             "allowed_open",
		bpf.PalisadeCounterCOUNTER_ALLOWED_HOST:             "allowed_host",
		bpf.PalisadeCounterCOUNTER_CT_ESTABLISHED:           "ct_established",
		bpf.PalisadeCounterCOUNTER_CT_REPLY:                 "ct_reply",
		bpf.PalisadeCounterCOUNTER_CT_RELATED:               "ct_related",
		bpf.PalisadeCounterCOUNTER_CT_REVALIDATED:           "ct_revalidated",
		bpf.PalisadeCounterCOUNTER_CT_REVOKED:               "ct_revoked",
		bpf.PalisadeCounterCOUNTER_CT_INSERT_FAILED:         "ct_insert_failed",
		bpf.PalisadeCounterCOUNTER_DROP_POLICY:              "drop_policy",
		bpf.PalisadeCounterCOUNTER_DROP_MALFORMED:           "drop_malformed",
		bpf.PalisadeCounterCOUNTER_DROP_FRAGMENT:            "drop_fragment",
		bpf.PalisadeCounterCOUNTER_DROP_NON_IP:              "drop_non_ip",
		bpf.PalisadeCounterCOUNTER_AUDIT_WOULD_DROP:         "audit_would_drop",
		bpf.PalisadeCounterCOUNTER_MALFORMED_PASSED:         "malformed_passed",
		bpf.PalisadeCounterCOUNTER_EVENT_LOST:               "event_lost",
		bpf.PalisadeCounterCOUNTER_EVENT_RATE_LIMITED:       "event_rate_limited",
		bpf.PalisadeCounterCOUNTER_DEFERRED:                 "deferred",
		bpf.PalisadeCounterCOUNTER_FRAGMENT_MATCHED:         "fragment_matched",
		bpf.PalisadeCounterCOUNTER_DROP_TCP_NOT_NEW:         "drop_tcp_not_new",
		bpf.PalisadeCounterCOUNTER_TCP_NOT_NEW_PASSED:       "tcp_not_new_passed",
		bpf.PalisadeCounterCOUNTER_SERVICE_JUDGED:           "service_judged",
		bpf.PalisadeCounterCOUNTER_DROP_SERVICE_SOURCE:      "drop_service_source",
		bpf.PalisadeCounterCOUNTER_DROP_SERVICE_UNCONFIRMED: "drop_service_unconfirmed",
		bpf.PalisadeCounterCOUNTER_SERVICE_MASQUERADED:      "service_masqueraded",
		bpf.PalisadeCounterCOUNTER_DROP_SPOOFED:             "drop_spoofed",
		bpf.PalisadeCounterCOUNTER_NEIGHBOUR_PASSED:         "neighbour_passed",
		bpf.PalisadeCounterCOUNTER_DROP_NEIGHBOUR:           "drop_neighbour",
		bpf.PalisadeCounterCOUNTER_UNTRACKED:                "untracked",
		bpf.PalisadeCounterCOUNTER_DROP_CT_ENDPOINT_LIMIT:   "drop_ct_endpoint_limit",
		bpf.PalisadeCounterCOUNTER_DROP_EVENT_RATE_LIMITED:  "drop_event_rate_limited",
		bpf.PalisadeCounterCOUNTER_CT_CLOSING:               "ct_closing",
	}
}

// Counters returns every program counter summed over CPUs, by name. They
// count since the counters map was created, across enforcer restarts.
func (d *Datapath) Counters() (map[string]uint64, error) {
	names := counterNames()
	out := make(map[string]uint64, len(names))
	var perCPU []uint64
	for c, name := range names {
		if err := d.objs.Counters.Lookup(uint32(c), &perCPU); err != nil {
			return nil, fmt.Errorf("read counter %s: %w", name, err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}
