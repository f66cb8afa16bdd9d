package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/palisade-dev/palisade/bpf"
)

// maxMapEntries bounds every map size flag: 16M entries of the largest
// state map's value is already gigabytes of locked kernel memory.
const maxMapEntries = 1 << 24

// mapSizeFlag is one --map-* flag: the bpf.Config field it sets and the
// map it sizes.
type mapSizeFlag struct {
	name, bpfMap, what string
	field              func(*bpf.Config) *uint32
}

// mapSizeFlags are the state and conntrack maps' sizes. Their names are
// "--map-" and the map's name with dashes, as the agent's fill warnings
// say (enforcer/mapfill.go).
var mapSizeFlags = []mapSizeFlag{
	{"map-ip-identity", bpf.PalisadeMapIpIdentity, "address prefixes with an identity: every pod address in the cluster, node addresses and ipBlock ranges", func(c *bpf.Config) *uint32 { return &c.IPIdentity }},
	{"map-endpoints", bpf.PalisadeMapEndpoints, "pods on this node", func(c *bpf.Config) *uint32 { return &c.Endpoints }},
	{"map-endpoint-ips", bpf.PalisadeMapEndpointIps, "addresses of the pods on this node", func(c *bpf.Config) *uint32 { return &c.EndpointIPs }},
	{"map-policy", bpf.PalisadeMapPolicy, "allow entries (local identity × peer identity × port) of this node's pods", func(c *bpf.Config) *uint32 { return &c.Policy }},
	{"map-policy-ranges", bpf.PalisadeMapPolicyRanges, "allow entries of port ranges (endPort)", func(c *bpf.Config) *uint32 { return &c.PolicyRanges }},
	{"map-service-cidrs", bpf.PalisadeMapServiceCidrs, "service address ranges", func(c *bpf.Config) *uint32 { return &c.ServiceCIDRs }},
	{"map-source-cidrs", bpf.PalisadeMapSourceCidrs, "extra source ranges granted to this node's pods (palisade.dev/source-cidrs)", func(c *bpf.Config) *uint32 { return &c.SourceCIDRs }},
	{"map-conntrack", bpf.PalisadeMapConntrack, "tracked flows", func(c *bpf.Config) *uint32 { return &c.Conntrack }},
}

// addMapSizeFlags registers the --map-* flags on f, writing into cfg. A
// flag left out keeps the size compiled into the datapath.
func addMapSizeFlags(f *pflag.FlagSet, cfg *bpf.Config) {
	compiled := map[string]uint32{}
	if spec, err := bpf.LoadPalisade(); err == nil {
		for name, m := range spec.Maps {
			compiled[name] = m.MaxEntries
		}
	}
	for _, m := range mapSizeFlags {
		usage := fmt.Sprintf("entries of the %s map: %s (default: the compiled size, %d). A size other than the pinned map's replaces the state maps on start without a lapse", m.bpfMap, m.what, compiled[m.bpfMap])
		f.Uint32Var(m.field(cfg), m.name, 0, usage)
	}
}

// validateMapSizes checks the --map-* flags given.
func validateMapSizes(f *pflag.FlagSet, cfg *bpf.Config) error {
	for _, m := range mapSizeFlags {
		if !f.Changed(m.name) {
			continue
		}
		if n := *m.field(cfg); n < 1 || n > maxMapEntries {
			return fmt.Errorf("--%s: %d entries; must be between 1 and %d", m.name, n, maxMapEntries)
		}
	}
	return nil
}
