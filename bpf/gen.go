package bpf

// The object is compiled for little-endian BPF only (every supported node
// is amd64 or arm64). hack/bpf-generate.sh checks the toolchain and that
// regeneration is byte-for-byte reproducible.
//go:generate go tool bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target bpfel -type ip_key -type identity_value -type service_value -type endpoint_value -type policy_key -type policy_value -type policy_range_key -type ct_key -type ct_value -type event -type token_bucket -type frag_key -type frag_value -type addr_key -type endpoint_ip_value -type service_origin_key -type service_origin_value -type source_cidr_key -type source_cidr_value -type event_bucket -type identity -type family -type direction -type endpoint_flags -type policy_verdict -type ct_flags -type event_verdict -type event_flags -type reason -type counter Palisade palisade.c -- -I./include
