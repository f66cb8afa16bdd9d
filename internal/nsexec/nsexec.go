// Package nsexec runs Go code inside another network namespace. Sockets
// keep the namespace they were created in and netlink or tcx calls resolve
// interface indexes in the calling thread's, so the enforcer (serving a
// node namespace) and the tests and demo (pods as namespaces) all need the
// same careful thread switch, kept here once.
package nsexec

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread inside the network namespace at path. The
// thread goes back to its namespace afterwards and is only then released:
// a goroutine that exits locked retires its thread, except the process's
// main thread, which Go keeps wedged for life — it would hold the
// namespace (and its links) until the process exits. A thread that cannot
// go back stays locked and is retired with its goroutine.
func Do(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open this thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		h, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open network namespace %s: %w", path, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		err = fn()
		if serr := netns.Set(orig); serr == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
