package datapath

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// runInNetNS runs fn on an OS thread inside the network namespace at path
// ("" runs it on the caller's). Interface indexes in tcx attach calls are
// resolved in the calling thread's namespace, so the enforcer's own
// namespace cannot serve a node that lives in another one (as in tests).
func runInNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: Go retires a locked thread when
		// its goroutine exits, so no other goroutine runs in the
		// namespace by accident.
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", path, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
