package bpf

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// Config adjusts the compiled defaults before the programs are loaded. A
// zero field keeps the default written in include/maps.h.
type Config struct {
	// Map sizes, in entries (Events: ring buffer bytes, a power of two
	// and a multiple of the page size).
	IPIdentity   uint32
	Endpoints    uint32
	Policy       uint32
	PolicyRanges uint32
	Conntrack    uint32
	ServiceCIDRs uint32
	EndpointIPs  uint32
	// SourceCIDRs holds the extra source ranges pods may send from
	// (the palisade.dev/source-cidrs annotation), one entry per range
	// per pod; default 4096.
	SourceCIDRs uint32
	Events      uint32

	// DeferMark is OR-ed into skb->mark of egress to a service range
	// (default 0x08000000).
	DeferMark uint32
	// NewFlowEventInterval and NewFlowEventBurst rate-limit ALLOWED_NEW
	// events per CPU (default one per 10ms, bursts of 32).
	NewFlowEventInterval time.Duration
	NewFlowEventBurst    uint64
	// NoNewFlowEvents turns ALLOWED_NEW events off altogether.
	NoNewFlowEvents bool

	// ConntrackPerEndpoint is how many conntrack entries one endpoint
	// (pod interface) may hold; a new flow of that endpoint which needs
	// tracking beyond it is dropped (reason REASON_CT_ENDPOINT_LIMIT),
	// never another pod's. Default: an eighth of Conntrack (32768 with
	// the default table of 262144).
	ConntrackPerEndpoint uint32
	// DropEventInterval and DropEventBurst rate-limit drop and audit
	// events per endpoint and CPU (default one per 10ms, bursts of 64);
	// what is over is counted per endpoint (Datapath.EventsLost).
	DropEventInterval time.Duration
	DropEventBurst    uint64
}

// DefaultConntrackPerEndpoint is ConntrackPerEndpoint's default for a
// table of conntrack entries.
func DefaultConntrackPerEndpoint(conntrack uint32) uint32 {
	return max(conntrack/8, 1)
}

// NewSpec returns the embedded collection with cfg applied, ready for
// LoadAndAssign into a PalisadeObjects.
func NewSpec(cfg Config) (*ebpf.CollectionSpec, error) {
	spec, err := LoadPalisade()
	if err != nil {
		return nil, fmt.Errorf("load embedded datapath: %w", err)
	}
	var specs PalisadeSpecs
	if err := spec.Assign(&specs); err != nil {
		return nil, fmt.Errorf("assign datapath specs: %w", err)
	}

	sizes := []struct {
		m *ebpf.MapSpec
		n uint32
	}{
		{specs.IpIdentity, cfg.IPIdentity},
		{specs.Endpoints, cfg.Endpoints},
		{specs.Policy, cfg.Policy},
		{specs.PolicyRanges, cfg.PolicyRanges},
		{specs.Conntrack, cfg.Conntrack},
		{specs.ServiceCidrs, cfg.ServiceCIDRs},
		{specs.EndpointIps, cfg.EndpointIPs},
		{specs.SourceCidrs, cfg.SourceCIDRs},
		{specs.Events, cfg.Events},
	}
	for _, s := range sizes {
		if s.n != 0 {
			s.m.MaxEntries = s.n
		}
	}

	// Keyed by endpoint interface: as many as there may be endpoints.
	for _, m := range []*ebpf.MapSpec{specs.CtEndpointUsed, specs.CtEndpointCollected, specs.EndpointEventBudget} {
		m.MaxEntries = max(m.MaxEntries, specs.Endpoints.MaxEntries)
	}
	perEndpoint := cfg.ConntrackPerEndpoint
	if perEndpoint == 0 {
		perEndpoint = DefaultConntrackPerEndpoint(specs.Conntrack.MaxEntries)
	}
	if err := specs.CtEndpointLimit.Set(uint64(perEndpoint)); err != nil {
		return nil, fmt.Errorf("set ct_endpoint_limit: %w", err)
	}
	if cfg.DropEventInterval != 0 {
		if err := specs.DropEventIntervalNs.Set(uint64(cfg.DropEventInterval.Nanoseconds())); err != nil {
			return nil, fmt.Errorf("set drop_event_interval_ns: %w", err)
		}
	}
	if cfg.DropEventBurst != 0 {
		if err := specs.DropEventBurst.Set(cfg.DropEventBurst); err != nil {
			return nil, fmt.Errorf("set drop_event_burst: %w", err)
		}
	}
	if cfg.DeferMark != 0 {
		if err := specs.DeferMark.Set(cfg.DeferMark); err != nil {
			return nil, fmt.Errorf("set defer_mark: %w", err)
		}
	}
	interval := uint64(cfg.NewFlowEventInterval.Nanoseconds())
	if cfg.NoNewFlowEvents {
		interval = 0
	}
	if interval != 0 || cfg.NoNewFlowEvents {
		if err := specs.NewFlowEventIntervalNs.Set(interval); err != nil {
			return nil, fmt.Errorf("set new_flow_event_interval_ns: %w", err)
		}
	}
	if cfg.NewFlowEventBurst != 0 {
		if err := specs.NewFlowEventBurst.Set(cfg.NewFlowEventBurst); err != nil {
			return nil, fmt.Errorf("set new_flow_event_burst: %w", err)
		}
	}
	return spec, nil
}
