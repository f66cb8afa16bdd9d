// Package webhook is Palisade's admission control: it holds Namespaces,
// Pods, workload pod templates and NetworkPolicies to the labeling
// standard, fills inherited labels, keeps every governed namespace's
// baseline NetworkPolicies in place, and records each decision as evidence.
//
// The package serves six admission paths (see WebhookConfigurations, the
// single source of truth for what the API server sends where) and runs one
// reconciler. It never blocks the system namespaces or its own, and it
// never silently allows a governed kind on an internal error: the response
// is an error and the API server's failurePolicy (Fail) decides.
package webhook
