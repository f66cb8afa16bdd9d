//go:build tools

// Package helm pins the Helm 4 CLI built by hack/helm.sh.
package helm

import _ "helm.sh/helm/v4/cmd/helm"
