// Package version carries the build's version, stamped by the linker, so the
// binary, the image and decision records all say which Palisade ran.
package version

// Version is set with -ldflags "-X github.com/palisade-dev/palisade/internal/version.Version=...".
var Version = "v0.1.0-dev"
