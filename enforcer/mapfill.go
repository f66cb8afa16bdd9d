package enforcer

import (
	"errors"
	"slices"
	"strings"

	"github.com/palisade-dev/palisade/enforcer/datapath"
)

// fillWarnRatio is how full (in use, or needed by the State being synced)
// a state map gets before the agent warns: room for a burst of pods or a
// policy change, and time to grow the map before a Sync fails on it.
const fillWarnRatio = 0.8

// mapFlag names the flag (and, in the chart, enforcer.maps.*) that sizes
// a map.
func mapFlag(name string) string { return "--map-" + strings.ReplaceAll(name, "_", "-") }

func isMapFull(err error) bool { return errors.Is(err, datapath.ErrMapFull) }

// checkFill publishes a Sync's map fill, and warns (log line and Node
// Event) when a map crosses fillWarnRatio, once per crossing. The first
// Sync after start is the check against the cluster's size: what the
// State needs is known then even when it does not fit.
func (a *Agent) checkFill(fill map[string]datapath.MapFill) {
	a.metrics.recordFill(fill)
	names := make([]string, 0, len(fill))
	for name := range fill {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := fill[name]
		over := f.Max > 0 && float64(max(f.Entries, f.Wanted)) >= fillWarnRatio*float64(f.Max)
		if over && !a.filling[name] {
			a.opts.Logger.Warn("datapath map nearly full; grow it before a sync fails on it",
				"map", name, "entries", f.Entries, "needed", f.Wanted, "capacity", f.Max, "flag", mapFlag(name))
			a.events.mapFilling(name, f)
		}
		a.filling[name] = over
	}
}
