package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/palisade-dev/palisade/bpf"
)

// addFloodFlags registers the flags bounding what one pod may spend of the
// node's datapath, writing into cfg.
func addFloodFlags(f *pflag.FlagSet, cfg *bpf.Config) {
	f.Uint32Var(&cfg.ConntrackPerEndpoint, "conntrack-per-endpoint", 0,
		"conntrack entries one pod may hold (its own flows, and those it opens into other pods of the node); over it its new flows are dropped and recorded, never another pod's (default: an eighth of the conntrack map)")
}

// validateFloodFlags checks --conntrack-per-endpoint against the conntrack
// map it is a share of.
func validateFloodFlags(f *pflag.FlagSet, cfg *bpf.Config) error {
	if !f.Changed("conntrack-per-endpoint") {
		return nil
	}
	table := cfg.Conntrack
	if table == 0 {
		spec, err := bpf.LoadPalisade()
		if err != nil {
			return fmt.Errorf("--conntrack-per-endpoint: read the compiled conntrack size: %w", err)
		}
		table = spec.Maps[bpf.PalisadeMapConntrack].MaxEntries
	}
	if n := cfg.ConntrackPerEndpoint; n < 1 || n > table {
		return fmt.Errorf("--conntrack-per-endpoint: %d entries; must be between 1 and the conntrack map's %d (--map-conntrack)", n, table)
	}
	return nil
}
