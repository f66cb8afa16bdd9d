//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package audit

import "os"

// lockFile does nothing where flock is unavailable; one Recorder per file is
// then the caller's responsibility.
func lockFile(*os.File) error { return nil }
