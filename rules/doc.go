// Package rules holds Palisade's labeling standard: the labels that make a
// workload's security identity, the values they may take, and the baseline
// network profile each namespace gets. The standard is typed, versioned YAML
// (a default is embedded in the binary) and is evaluated natively because it
// runs on every admission request.
package rules
