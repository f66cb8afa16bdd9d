#!/usr/bin/env bash
# make demo: Palisade on its local default. Builds the control plane once
# (cached), then runs the tour and stays up until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
assets=$(hack/envtest-assets.sh)
export KUBEBUILDER_ASSETS="$assets"
export PALISADE_BIN="$PWD/bin/palisade"
exec go run ./hack/demo
