/* Whose address a packet carries. The receiving side takes the peer's
 * identity from the source address, so a pod that could send from another
 * pod's address would pass that pod's allows: every packet leaving a pod
 * must carry one of its own addresses (endpoint_ips names the interface
 * each belongs to) or one of the extra ranges source_cidrs grants it. */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"
#include "maps.h"
#include "policy.h"

/* Bits of a source_cidr_key before the address: ifindex, family, pad. */
#define SOURCE_CIDR_FIXED_BITS 64

/* addr is one of the addresses of the pod behind ifindex. */
static __always_inline bool addr_is_own(__u32 ifindex, __u8 family, const __u8 *addr)
{
	struct endpoint_ip_value *v;
	struct addr_key k;

	addr_key_init(&k, family, addr);
	v = bpf_map_lookup_elem(&endpoint_ips, &k);
	return v && v->ifindex == ifindex;
}

/* The pod behind ifindex may send from addr: its own, or in a range
 * granted to it. */
static __always_inline bool source_allowed(__u32 ifindex, __u8 family, const __u8 *addr)
{
	struct source_cidr_key k = {
		.prefixlen = SOURCE_CIDR_FIXED_BITS + (family == FAMILY_IPV4 ? 32 : 128),
		.ifindex = ifindex,
		.family = family,
	};

	if (addr_is_own(ifindex, family, addr))
		return true;
	__builtin_memcpy(k.addr, addr, sizeof(k.addr));
	return bpf_map_lookup_elem(&source_cidrs, &k) != NULL;
}

static __always_inline bool ipv6_is_link_local(const __u8 *addr)
{
	return addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80; /* fe80::/10 */
}

/* addr (4 or 16 bytes) is all zero. Read as whole words: byte by byte,
 * clang keeps (and spills) each byte. */
static __always_inline bool addr_is_zero(const __u8 *addr, int len)
{
	__u64 hi, lo;
	__u32 v4;

	if (len == 4) {
		__builtin_memcpy(&v4, addr, sizeof(v4));
		return v4 == 0;
	}
	__builtin_memcpy(&hi, addr, sizeof(hi));
	__builtin_memcpy(&lo, addr + 8, sizeof(lo));
	return (hi | lo) == 0;
}
