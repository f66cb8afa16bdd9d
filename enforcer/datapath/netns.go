package datapath

import "github.com/palisade-dev/palisade/internal/nsexec"

// runInNetNS runs fn on an OS thread inside the network namespace at path
// ("" runs it on the caller's). Interface indexes in tcx attach calls are
// resolved in the calling thread's namespace, so the enforcer's own
// namespace cannot serve a node that lives in another one (as in tests).
func runInNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return nsexec.Do(path, fn)
}
