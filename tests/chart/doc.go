// Package chart proves the Helm chart (charts/palisade) installs what the Go
// code means: it renders the chart with the Helm SDK for the default values
// and a matrix of options, compares the webhook configurations, RBAC and
// cert-manager objects with the functions that define them
// (webhook.WebhookConfigurations, webhook.ClusterRoleRules, certs.*Rules,
// certs.CertManagerObjects), applies the manifests to a real API server with
// server-side apply, and checks least privilege with SubjectAccessReviews as
// the chart's ServiceAccounts. The tests are in this package's _test files.
package chart
