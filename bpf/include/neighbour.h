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

struct arp_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
};

/* Fills p->flow's addresses from the ARP packet (sender as source,
 * target as destination) for reports. */
static __always_inline int arp_verdict(struct __sk_buff *skb, __u32 ifindex, __u8 dir,
				       struct packet *p)
{
	struct arp_ipv4 a;
	__u16 op;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &a, sizeof(a)) < 0)
		return dir == DIR_EGRESS ? NEIGH_MALFORMED : NEIGH_QUIET;
	p->flow.family = FAMILY_IPV4;
	__builtin_memset(p->flow.saddr, 0, sizeof(p->flow.saddr));
	__builtin_memset(p->flow.daddr, 0, sizeof(p->flow.daddr));
	__builtin_memcpy(p->flow.saddr, a.spa, 4);
	__builtin_memcpy(p->flow.daddr, a.tpa, 4);
	op = bpf_ntohs(a.op);
	if (a.htype != bpf_htons(1) || a.ptype != bpf_htons(ETH_P_IP) || a.hlen != 6 ||
	    a.plen != 4 || (op != 1 && op != 2))
		return dir == DIR_EGRESS ? NEIGH_MALFORMED : NEIGH_QUIET;

	if (dir == DIR_INGRESS)
		return addr_is_own(ifindex, FAMILY_IPV4, p->flow.daddr) ? NEIGH_PASS : NEIGH_QUIET;

	if (skb->len != ETH_HLEN + ARP_LEN) {
		__u8 pad[ETH_MIN_LEN - ETH_HLEN - ARP_LEN];

		if (skb->len != ETH_MIN_LEN ||
		    bpf_skb_load_bytes(skb, ETH_HLEN + ARP_LEN, pad, sizeof(pad)) < 0)
			return NEIGH_MALFORMED;
		if (!addr_is_zero(pad, 16) || pad[16] || pad[17])
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

static __always_inline int nd_verdict(struct __sk_buff *skb, __u32 ifindex, __u8 dir,
				      const struct packet *p)
{
	const __u8 *saddr = p->flow.saddr;
	bool unspecified = addr_is_zero(saddr, 16);
	__u8 type = p->icmp_type;
	__u8 target[16];
	__u32 opts;

	if (type < ICMPV6_RS || type > ICMPV6_REDIRECT) { /* MLD */
		if (p->hop_limit == 1 && (unspecified || ipv6_is_link_local(saddr)))
			return NEIGH_QUIET;
		return NEIGH_JUDGE;
	}
	if (dir == DIR_EGRESS && (type == ICMPV6_RA || type == ICMPV6_REDIRECT))
		return NEIGH_ROUTER;
	if (type == ICMPV6_REDIRECT || p->hop_limit != 255 || p->icmp_code != 0 || p->ext ||
	    p->fragment != FRAG_NONE)
		return NEIGH_JUDGE;

	/* RS: 4 reserved bytes; NS, NA: 4 bytes, then the target. */
	opts = p->l4 + 8;
	if (type == ICMPV6_NS || type == ICMPV6_NA) {
		if (opts + 16 > p->end || bpf_skb_load_bytes(skb, opts, target, sizeof(target)) < 0)
			return NEIGH_JUDGE;
		opts += 16;
	}

	if (dir == DIR_INGRESS) {
		/* A bridge floods other pods' solicitations to every port: not
		 * this pod's business, and not worth a report. */
		if (type == ICMPV6_RA || type == ICMPV6_NA)
			return NEIGH_PASS;
		if (type == ICMPV6_NS &&
		    (ipv6_is_link_local(target) || addr_is_own(ifindex, FAMILY_IPV6, target)))
			return NEIGH_PASS;
		return NEIGH_QUIET;
	}

	if (unspecified) {
		if (type == ICMPV6_NA)
			return NEIGH_JUDGE;
	} else if (!ipv6_is_link_local(saddr) && !addr_is_own(ifindex, FAMILY_IPV6, saddr)) {
		return NEIGH_JUDGE; /* and refused as a spoofed source */
	}
	if ((type == ICMPV6_NA || (type == ICMPV6_NS && unspecified)) &&
	    !ipv6_is_link_local(target) && !addr_is_own(ifindex, FAMILY_IPV6, target))
		return NEIGH_SPOOFED; /* claims, or probes for, another's address */
	return nd_options_plain(skb, opts, p->end) ? NEIGH_PASS : NEIGH_JUDGE;
}
