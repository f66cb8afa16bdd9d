#!/usr/bin/env bash
# Builds the real Helm 4 CLI from the Go module proxy (wrapper module
# hack/helm) and prints its path. The chart tests install, upgrade and
# uninstall with it; Helm 3 is covered in-process through its SDK. A second
# run with the binary present costs nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=$(grep -Eo "helm\.sh/helm/v4 v[0-9][^ ]*" "$here/helm/go.mod" | cut -d" " -f2)
stamp=$(cat "$here/helm/go.sum" "$0" | sha256sum | cut -c1-12)
dest=${PALISADE_HELM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/palisade/helm/helm-${version}-${stamp}}

if [[ ! -x "$dest/helm" ]]; then
  echo "building helm $version (cold: several minutes; warm cache: seconds)" >&2
  mkdir -p "$dest"
  (cd "$here/helm" && go build -trimpath -o "$dest/helm.tmp" \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" helm.sh/helm/v4/cmd/helm)
  mv "$dest/helm.tmp" "$dest/helm"
fi
echo "$dest/helm"
