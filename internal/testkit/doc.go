// Package testkit is the root of the worlds Palisade's tests, the demo and
// the benchmarks build: pods as network namespaces (podnet), the control
// plane from source (testenv), the upstream NetworkPolicy cases as records
// (netpolcases), child processes (childproc) and forged frames (frames).
// No product package imports anything below it; TestProductImportsNoTestKit
// (cmd/palisade) holds the binary to that.
package testkit
