#!/usr/bin/env bash
# Regenerates the committed bpf2go output (bpf/palisade_bpfel.{go,o}) with
# the pinned toolchain: clang-16 and llvm-strip-16 from Debian's clang-16,
# llvm-16 and libbpf-dev (the same packages CI installs).
#
#   hack/bpf-generate.sh           regenerate
#   hack/bpf-generate.sh --check   regenerate twice and fail unless both runs
#                                  produce the same bytes as what is on disk
#
# The output is reproducible: bpf2go compiles with -fdebug-prefix-map and
# -fdebug-compilation-dir, strips DWARF (BTF stays), and the sources use
# only relative includes, so neither the checkout path nor the host
# architecture's headers reach the object.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

missing=()
for tool in clang-16 llvm-strip-16; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ -f /usr/include/bpf/bpf_helpers.h ]] || missing+=("libbpf-dev headers")
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "bpf-generate: missing ${missing[*]}: apt-get install -y clang-16 llvm-16 libbpf-dev" >&2
  exit 1
fi

outputs=(bpf/palisade_bpfel.go bpf/palisade_bpfel.o)

if [[ "${1:-}" != "--check" ]]; then
  go generate ./bpf/
  exit 0
fi

before=$(sha256sum "${outputs[@]}")
go generate ./bpf/
first=$(sha256sum "${outputs[@]}")
go generate ./bpf/
second=$(sha256sum "${outputs[@]}")
if [[ "$first" != "$second" ]]; then
  echo "bpf-generate: two runs differ: generation is not deterministic" >&2
  diff <(echo "$first") <(echo "$second") >&2 || true
  exit 1
fi
if [[ "$before" != "$first" ]]; then
  echo "bpf-generate: the generated files were stale and have been rewritten:" >&2
  diff <(echo "$before") <(echo "$first") >&2 || true
  exit 1
fi
echo "bpf-generate: up to date and reproducible"
