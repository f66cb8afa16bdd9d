/* Address resolution. ARP and IPv6 neighbour discovery have to pass even
 * where a pod is isolated, or nothing would reach it, so they pass only in
 * the shape resolving the pod's own addresses needs, carrying nothing else:
 *
 *  - ARP (IPv4 over Ethernet, request or reply) from a pod: its sender
 *    address is the pod's own (or 0.0.0.0 in a probe for its own), the
 *    frame 42 bytes or 60 with zero padding. To a pod: its target address
 *    is the pod's own. Others from a pod are refused and reported; others
 *    to a pod (a bridge floods every broadcast) are dropped unreported.
 *  - Router and neighbour solicitations and advertisements (ICMPv6
 *    133-136) with hop limit 255 (so never forwarded by a router on the
 *    way), code 0, no extension headers. From a pod: RS, NS or NA from its
 *    own, a link-local or (NS and RS, for duplicate address detection)
 *    the unspecified address; an NA's target, and a DAD NS's, is its own
 *    or link-local; the options are only source/target link-layer address
 *    and nonce, 8 bytes each, at most four, with nothing after them. To a
 *    pod: NA and RA (the node's), NS whose target is its own or
 *    link-local; RS and other pods' NS (a bridge floods them) are dropped
 *    unreported.
 *  - Router advertisements and redirects from a pod are refused and
 *    reported in every mode: no pod is the node's router.
 *  - MLD (130-132, 143) with hop limit 1 from a link-local or the
 *    unspecified address, either way, is the kernel joining its solicited-
 *    node groups: dropped, counted, unreported (nothing on a pod's link
 *    needs it; see the README's gaps for bridges with an MLD querier).
 *
 * Everything else of these types is judged like any packet: its source
 * must be the pod's own, its policy must allow it. */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"
#include "parse.h"
#include "source.h"

#define ARP_LEN 28
/* A minimum Ethernet frame without its FCS: shorter frames are padded. */
#define ETH_MIN_LEN 60
#define ND_MAX_OPTIONS 4

#define ND_OPT_SOURCE_LLADDR 1
#define ND_OPT_TARGET_LLADDR 2
#define ND_OPT_NONCE 14

#define ICMPV6_RS 133
#define ICMPV6_RA 134
#define ICMPV6_NS 135
#define ICMPV6_NA 136
#define ICMPV6_REDIRECT 137

enum neigh_verdict {
	NEIGH_JUDGE,     /* not address resolution: judged like any packet */
	NEIGH_PASS,
	NEIGH_SPOOFED,   /* from a pod, for an address not its own: reported */
	NEIGH_ROUTER,    /* RA or redirect from a pod: reported */
	NEIGH_MALFORMED, /* ARP from a pod in any other shape: reported */
	NEIGH_QUIET,     /* dropped, counted, unreported */
};

/* The fixed part of an ARP packet. */
struct arp_head {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
};

#define ARP_SPA_OFF (ETH_HLEN + 14)
#define ARP_TPA_OFF (ETH_HLEN + 24)

/* Reads an IPv4-over-Ethernet request or reply into p->flow (sender as
 * source, target as destination, for reports) and its operation into
 * *op; false for any other ARP packet. */
static __always_inline bool arp_read(struct __sk_buff *skb, struct packet *p, __u16 *op)
{
	struct arp_head h;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &h, sizeof(h)) < 0)
		return false;
	__builtin_memset(p->flow.saddr, 0, sizeof(p->flow.saddr));
	__builtin_memset(p->flow.daddr, 0, sizeof(p->flow.daddr));
	if (bpf_skb_load_bytes(skb, ARP_SPA_OFF, p->flow.saddr, 4) < 0 ||
	    bpf_skb_load_bytes(skb, ARP_TPA_OFF, p->flow.daddr, 4) < 0)
		return false;
	p->flow.family = FAMILY_IPV4;
	*op = bpf_ntohs(h.op);
	return h.htype == bpf_htons(1) && h.ptype == bpf_htons(ETH_P_IP) && h.hlen == 6 &&
	       h.plen == 4 && (*op == 1 || *op == 2);
}

/* ARP towards the pod: only for its own address. None of the four
 * judgements is inlined: the programs' frames are close to the verifier's
 * 512 bytes, and a callee's frame only adds to its caller's along a chain
 * of calls (nat_original_source's is the longest). */
static __noinline int arp_to_pod(struct __sk_buff *skb, __u32 ifindex, struct packet *p)
{
	__u16 op;

	if (!arp_read(skb, p, &op))
		return NEIGH_QUIET;
	return addr_is_own(ifindex, FAMILY_IPV4, p->flow.daddr) ? NEIGH_PASS : NEIGH_QUIET;
}

/* ARP from the pod. */
static __noinline int arp_from_pod(struct __sk_buff *skb, __u32 ifindex, struct packet *p)
{
	__u16 op;

	if (!arp_read(skb, p, &op))
		return NEIGH_MALFORMED;
	if (skb->len != ETH_HLEN + ARP_LEN) {
		__u64 pad[2];
		__u16 last;

		if (skb->len != ETH_MIN_LEN ||
		    bpf_skb_load_bytes(skb, ETH_HLEN + ARP_LEN, pad, sizeof(pad)) < 0 ||
		    bpf_skb_load_bytes(skb, ETH_HLEN + ARP_LEN + sizeof(pad), &last, sizeof(last)) < 0)
			return NEIGH_MALFORMED;
		if (pad[0] || pad[1] || last)
			return NEIGH_MALFORMED;
	}
	if (addr_is_own(ifindex, FAMILY_IPV4, p->flow.saddr))
		return NEIGH_PASS;
	if (op == 1 && addr_is_zero(p->flow.saddr, 4) &&
	    addr_is_own(ifindex, FAMILY_IPV4, p->flow.daddr))
		return NEIGH_PASS; /* a probe (RFC 5227) for its own address */
	return NEIGH_SPOOFED;
}

/* The options after off, to the end of the packet: only link-layer
 * addresses and nonces, each 8 bytes, nothing else and nothing after. */
static __always_inline bool nd_options_plain(struct __sk_buff *skb, __u32 off, __u32 end)
{
#pragma unroll
	for (int i = 0; i < ND_MAX_OPTIONS; i++) {
		__u8 opt[2];

		if (off >= end)
			break;
		if (off + 8 > end || bpf_skb_load_bytes(skb, off, opt, sizeof(opt)) < 0)
			return false;
		if (opt[1] != 1 || (opt[0] != ND_OPT_SOURCE_LLADDR && opt[0] != ND_OPT_TARGET_LLADDR &&
				    opt[0] != ND_OPT_NONCE))
			return false;
		off += 8;
	}
	return off == end;
}

/* MLD from the kernel: hop limit 1, link-local or unspecified source. */
static __always_inline bool mld_of_the_kernel(const struct packet *p)
{
	return p->hop_limit == 1 &&
	       (addr_is_zero(p->flow.saddr, 16) || ipv6_is_link_local(p->flow.saddr));
}

/* The ICMPv6 header right after the IPv6 one (no extension headers, so
 * not fragmented either), code 0, hop limit 255 (never forwarded by a
 * router); *end is the first byte past the payload (parse_ipv6 checked
 * it is inside the packet). */
#define ND_L4 (ETH_HLEN + 40)

static __always_inline bool nd_header_plain(struct __sk_buff *skb, const struct packet *p,
					    __u32 *end)
{
	struct {
		__be16 payload_len;
		__u8 nexthdr;
		__u8 hop_limit;
	} h;
	__u8 code;

	if (p->hop_limit != 255 || bpf_skb_load_bytes(skb, ETH_HLEN + 4, &h, sizeof(h)) < 0 ||
	    h.nexthdr != IPPROTO_ICMPV6 || bpf_skb_load_bytes(skb, ND_L4 + 1, &code, 1) < 0 ||
	    code != 0)
		return false;
	*end = ND_L4 + bpf_ntohs(h.payload_len);
	return true;
}

/* Loads an NS's or NA's target; false if the message is too short. */
static __always_inline bool nd_target(struct __sk_buff *skb, __u32 end, __u8 *target)
{
	return ND_L4 + 24 <= end && bpf_skb_load_bytes(skb, ND_L4 + 8, target, 16) == 0;
}

static __always_inline bool nd_target_ok(__u32 ifindex, const __u8 *target)
{
	return ipv6_is_link_local(target) || addr_is_own(ifindex, FAMILY_IPV6, target);
}

/* Neighbour discovery towards the pod. A bridge floods other pods'
 * solicitations to every port: not this pod's business, and not worth a
 * report. */
static __noinline int nd_to_pod(struct __sk_buff *skb, __u32 ifindex, const struct packet *p)
{
	__u8 type = p->icmp_type;
	__u8 target[16];
	__u32 end;

	if (type < ICMPV6_RS || type > ICMPV6_REDIRECT) /* MLD */
		return mld_of_the_kernel(p) ? NEIGH_QUIET : NEIGH_JUDGE;
	if (type == ICMPV6_REDIRECT || !nd_header_plain(skb, p, &end))
		return NEIGH_JUDGE;
	if (type == ICMPV6_RA || type == ICMPV6_NA)
		return NEIGH_PASS;
	if (type == ICMPV6_NS) {
		if (!nd_target(skb, end, target))
			return NEIGH_JUDGE;
		if (nd_target_ok(ifindex, target))
			return NEIGH_PASS;
	}
	return NEIGH_QUIET;
}

/* Neighbour discovery from the pod. */
static __noinline int nd_from_pod(struct __sk_buff *skb, __u32 ifindex, const struct packet *p)
{
	const __u8 *saddr = p->flow.saddr;
	bool unspecified = addr_is_zero(saddr, 16);
	__u8 type = p->icmp_type;
	__u8 target[16];
	__u32 end, opts = ND_L4 + 8; /* RS: 4 reserved bytes; NS, NA: 4 bytes, then the target */

	if (type < ICMPV6_RS || type > ICMPV6_REDIRECT) /* MLD */
		return mld_of_the_kernel(p) ? NEIGH_QUIET : NEIGH_JUDGE;
	if (type == ICMPV6_RA || type == ICMPV6_REDIRECT)
		return NEIGH_ROUTER;
	if (!nd_header_plain(skb, p, &end))
		return NEIGH_JUDGE;
	if (unspecified) {
		if (type == ICMPV6_NA)
			return NEIGH_JUDGE;
	} else if (!ipv6_is_link_local(saddr) && !addr_is_own(ifindex, FAMILY_IPV6, saddr)) {
		return NEIGH_JUDGE; /* and refused as a spoofed source */
	}
	if (type != ICMPV6_RS) {
		if (!nd_target(skb, end, target))
			return NEIGH_JUDGE;
		/* An NA claims its target; a DAD NS probes for it. */
		if ((type == ICMPV6_NA || unspecified) && !nd_target_ok(ifindex, target))
			return NEIGH_SPOOFED;
		opts += 16;
	}
	return nd_options_plain(skb, opts, end) ? NEIGH_PASS : NEIGH_JUDGE;
}
