#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kubectl, etcd) from the Go
# module proxy and prints the directory holding them (KUBEBUILDER_ASSETS).
# setup-envtest's download bucket is unreachable here, so we build instead.
# A second run with the binaries present costs nothing; with a warm Go build
# cache it costs seconds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=v1.36.4
etcd_version=v3.6.16
stamp=$(cat "$here/controlplane/kubernetes/go.sum" "$here/controlplane/etcd/go.sum" "$0" | sha256sum | cut -c1-12)
dest=${PALISADE_ENVTEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/palisade/envtest/k8s-${k8s_version}-etcd-${etcd_version}-${stamp}}

want=(kube-apiserver kubectl etcd)
[[ "${WITH_KUBE_PROXY:-0}" == 1 ]] && want+=(kube-proxy)

missing=()
for b in "${want[@]}"; do [[ -x "$dest/$b" ]] || missing+=("$b"); done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$dest"
minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

for b in "${missing[@]}"; do
  echo "building $b (cold: several minutes; warm cache: seconds)" >&2
  case "$b" in
    etcd)
      (cd "$here/controlplane/etcd" && go build -o "$dest/etcd.tmp" -ldflags "-s -w" go.etcd.io/etcd/server/v3) ;;
    *)
      (cd "$here/controlplane/kubernetes" && go build -o "$dest/$b.tmp" -ldflags "-s -w $ldflags" "k8s.io/kubernetes/cmd/$b") ;;
  esac
  mv "$dest/$b.tmp" "$dest/$b"
done
echo "$dest"
