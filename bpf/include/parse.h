/* Packet parsing: Ethernet, IPv4, IPv6 with its extension headers, the
 * ports of TCP, UDP and SCTP, ICMP echo identifiers and the flow embedded in
 * ICMP errors. Reads go through bpf_skb_load_bytes so that non-linear skbs
 * parse the same as linear ones, and a read past the end is a clean error. */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_IPV6 0x86DD

#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58
#define IPPROTO_SCTP 132

#define IPV6_HOPOPTS 0
#define IPV6_ROUTING 43
#define IPV6_FRAGMENT 44
#define IPV6_AH 51
#define IPV6_DSTOPTS 60

/* Bounded so the verifier can unroll; more headers than this is malformed. */
#define IPV6_MAX_EXT_HEADERS 6

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

enum parse_result {
	PARSE_OK,
	PARSE_ARP,       /* judged by neighbour.h */
	PARSE_NDP,       /* IPv6 neighbour discovery, redirect and MLD: judged by neighbour.h */
	PARSE_NON_IP,    /* any other ethertype, or a VLAN-tagged frame */
	PARSE_MALFORMED, /* truncated or invalid */
	PARSE_FRAGMENT,  /* later fragment: its ports are in the first one */
};

struct ipv4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct ipv6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct icmp_hdr {
	__u8 type;
	__u8 code;
	__be16 check;
	__be16 id;
	__be16 seq;
};

/* A flow's identifying fields, laid out as the tail of struct ct_key. */
struct tuple {
	__be16 sport;
	__be16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 protocol;
	__u8 family;
};

enum fragment_kind {
	FRAG_NONE,
	FRAG_FIRST, /* offset 0, more to come: carries the ports */
	FRAG_LATER, /* offset > 0: no L4 header */
};

struct packet {
	struct tuple flow;
	__u32 frag_id;
	__u8 fragment; /* enum fragment_kind */
	/* Set for an ICMP error whose embedded packet parsed: that packet's
	 * tuple, as it was sent. */
	struct tuple inner;
	__u8 is_icmp_error;
	/* TCP only: the flags byte; zero for a later fragment. */
	__u8 tcp_flags;
	/* PARSE_NDP only: the IPv6 hop limit and the ICMPv6 type (the rest
	 * neighbour.h reads itself: these two bytes fit in padding, more
	 * would grow every program's frame). */
	__u8 hop_limit;
	__u8 icmp_type;
};

/* Only a SYN without ACK opens a TCP connection: anything else that
 * misses conntrack belongs to a flow nobody allowed (or one that was
 * revoked), and must not be judged as a new one. A later fragment
 * carries no flags and counts as not new. */
static __always_inline bool tcp_opens(const struct packet *p)
{
	return (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) == TCP_FLAG_SYN;
}

/* Ports as the policy sees them: only TCP, UDP and SCTP have any. */
static __always_inline __u16 policy_port(__u8 protocol, __be16 dport)
{
	switch (protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		return bpf_ntohs(dport);
	}
	return 0;
}

static __always_inline int l4_header_len(__u8 protocol)
{
	switch (protocol) {
	case IPPROTO_TCP:
		return 20;
	case IPPROTO_UDP:
		return 8;
	case IPPROTO_SCTP:
		return 12;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 8;
	}
	return 0;
}

static __always_inline bool icmp_is_error(__u8 family, __u8 type)
{
	if (family == FAMILY_IPV4) /* unreachable, source quench, time exceeded, parameter problem */
		return type == 3 || type == 4 || type == 11 || type == 12;
	/* unreachable, packet too big, time exceeded, parameter problem */
	return type >= 1 && type <= 4;
}

static __always_inline bool icmp6_is_ndp(__u8 type)
{
	/* MLD query/report/done (130-132), RS, RA, NS, NA, redirect (133-137),
	 * MLDv2 report (143). */
	return (type >= 130 && type <= 137) || type == 143;
}

/* Fills the ports of t from an L4 header at off. For ICMP, echo
 * requests carry the identifier as the source port and echo replies as
 * the destination port, so that a reply is the exact reverse of its
 * request. end is the first byte past the IP packet. */
static __always_inline int parse_ports(struct __sk_buff *skb, __u32 off, __u32 end,
				       struct tuple *t, struct icmp_hdr *icmp, __u8 *tcp_flags)
{
	int need = l4_header_len(t->protocol);

	t->sport = 0;
	t->dport = 0;
	if (need == 0)
		return 0;
	if (off + need > end)
		return -1;

	if (t->protocol == IPPROTO_ICMP || t->protocol == IPPROTO_ICMPV6) {
		if (bpf_skb_load_bytes(skb, off, icmp, sizeof(*icmp)) < 0)
			return -1;
		if ((t->protocol == IPPROTO_ICMP && icmp->type == 8) ||
		    (t->protocol == IPPROTO_ICMPV6 && icmp->type == 128))
			t->sport = icmp->id;
		else if ((t->protocol == IPPROTO_ICMP && icmp->type == 0) ||
			 (t->protocol == IPPROTO_ICMPV6 && icmp->type == 129))
			t->dport = icmp->id;
		return 0;
	}

	if (t->protocol == IPPROTO_TCP) {
		/* Ports, sequence and acknowledgement numbers, offset, flags. */
		__u8 hdr[14];

		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0)
			return -1;
		__builtin_memcpy(&t->sport, &hdr[0], 2);
		__builtin_memcpy(&t->dport, &hdr[2], 2);
		*tcp_flags = hdr[13];
		return 0;
	}

	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
		return -1;
	t->sport = ports[0];
	t->dport = ports[1];
	return 0;
}

/* The packet embedded in an ICMP error: its IP header and the first 8 bytes
 * after it (RFC 792, RFC 4443). Only the ports are needed, so a shorter
 * embedded L4 header than a full one is fine. */
static __always_inline int parse_inner(struct __sk_buff *skb, __u32 off, __u32 end,
				       __u8 family, struct tuple *t)
{
	__u32 l4;

	t->family = family;
	if (family == FAMILY_IPV4) {
		struct ipv4_hdr ip;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
			return -1;
		if ((ip.ver_ihl >> 4) != 4 || (ip.ver_ihl & 0xf) < 5)
			return -1;
		__builtin_memset(t->saddr, 0, sizeof(t->saddr));
		__builtin_memset(t->daddr, 0, sizeof(t->daddr));
		__builtin_memcpy(t->saddr, ip.saddr, 4);
		__builtin_memcpy(t->daddr, ip.daddr, 4);
		t->protocol = ip.protocol;
		l4 = off + (ip.ver_ihl & 0xf) * 4;
	} else {
		struct ipv6_hdr ip6;

		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0)
			return -1;
		if ((bpf_ntohl(ip6.ver_tc_flow) >> 28) != 6)
			return -1;
		__builtin_memcpy(t->saddr, ip6.saddr, 16);
		__builtin_memcpy(t->daddr, ip6.daddr, 16);
		t->protocol = ip6.nexthdr;
		l4 = off + sizeof(ip6);
	}

	t->sport = 0;
	t->dport = 0;
	switch (t->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP: {
		__be16 ports[2];

		if (l4 + 4 > end || bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
			return -1;
		t->sport = ports[0];
		t->dport = ports[1];
		return 0;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		struct icmp_hdr icmp;
		__u8 unused;

		return parse_ports(skb, l4, end, t, &icmp, &unused);
	}
	}
	/* An extension header or an unknown protocol: not something we track. */
	return -1;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct packet *p)
{
	struct ipv4_hdr ip;
	struct icmp_hdr icmp;
	__u32 ihl, end, off;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return PARSE_MALFORMED;
	ihl = (ip.ver_ihl & 0xf) * 4;
	if ((ip.ver_ihl >> 4) != 4 || ihl < sizeof(ip))
		return PARSE_MALFORMED;

	end = ETH_HLEN + bpf_ntohs(ip.tot_len);
	/* BIG TCP: GSO packets over 64 KiB carry tot_len 0. */
	if (ip.tot_len == 0 && skb->len > ETH_HLEN + 0xffff)
		end = skb->len;
	if (end > skb->len || end < ETH_HLEN + ihl)
		return PARSE_MALFORMED;

	p->flow.family = FAMILY_IPV4;
	p->flow.protocol = ip.protocol;
	__builtin_memset(p->flow.saddr, 0, sizeof(p->flow.saddr));
	__builtin_memset(p->flow.daddr, 0, sizeof(p->flow.daddr));
	__builtin_memcpy(p->flow.saddr, ip.saddr, 4);
	__builtin_memcpy(p->flow.daddr, ip.daddr, 4);

	if (bpf_ntohs(ip.frag_off) & 0x1fff) {
		p->fragment = FRAG_LATER;
		p->frag_id = bpf_ntohs(ip.id);
		return PARSE_FRAGMENT;
	}
	if (bpf_ntohs(ip.frag_off) & 0x2000) { /* more fragments */
		p->fragment = FRAG_FIRST;
		p->frag_id = bpf_ntohs(ip.id);
	}

	off = ETH_HLEN + ihl;
	if (parse_ports(skb, off, end, &p->flow, &icmp, &p->tcp_flags) < 0)
		return PARSE_MALFORMED;

	if (ip.protocol == IPPROTO_ICMP && icmp_is_error(FAMILY_IPV4, icmp.type))
		p->is_icmp_error = parse_inner(skb, off + sizeof(icmp), end, FAMILY_IPV4, &p->inner) == 0;
	return PARSE_OK;
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct packet *p)
{
	struct ipv6_hdr ip6;
	struct icmp_hdr icmp;
	__u32 end, off = ETH_HLEN + sizeof(ip6);
	__u8 next;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return PARSE_MALFORMED;
	if ((bpf_ntohl(ip6.ver_tc_flow) >> 28) != 6)
		return PARSE_MALFORMED;

	end = off + bpf_ntohs(ip6.payload_len);
	/* BIG TCP (and jumbograms): payload_len 0 on a packet over 64 KiB. */
	if (ip6.payload_len == 0 && skb->len > off + 0xffff)
		end = skb->len;
	if (end > skb->len)
		return PARSE_MALFORMED;

	p->flow.family = FAMILY_IPV6;
	__builtin_memcpy(p->flow.saddr, ip6.saddr, 16);
	__builtin_memcpy(p->flow.daddr, ip6.daddr, 16);

	next = ip6.nexthdr;
#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		__u8 ext[2];

		switch (next) {
		case IPV6_HOPOPTS:
		case IPV6_ROUTING:
		case IPV6_DSTOPTS:
			if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
				return PARSE_MALFORMED;
			next = ext[0];
			off += (ext[1] + 1) * 8;
			break;
		case IPV6_AH:
			if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
				return PARSE_MALFORMED;
			next = ext[0];
			off += (ext[1] + 2) * 4;
			break;
		case IPV6_FRAGMENT: {
			struct {
				__u8 next;
				__u8 reserved;
				__be16 off_flags;
				__be32 id;
			} frag;

			if (bpf_skb_load_bytes(skb, off, &frag, sizeof(frag)) < 0)
				return PARSE_MALFORMED;
			p->flow.protocol = frag.next;
			p->frag_id = bpf_ntohl(frag.id);
			if (bpf_ntohs(frag.off_flags) & 0xfff8) {
				p->fragment = FRAG_LATER;
				return PARSE_FRAGMENT;
			}
			/* An atomic fragment (offset 0, no more) is a whole packet. */
			if (bpf_ntohs(frag.off_flags) & 1)
				p->fragment = FRAG_FIRST;
			next = frag.next;
			off += sizeof(frag);
			break;
		}
		default:
			goto upper;
		}
		if (off > end)
			return PARSE_MALFORMED;
	}
	/* Still an extension header after the last one we allow. */
	return PARSE_MALFORMED;

upper:
	p->flow.protocol = next;
	if (parse_ports(skb, off, end, &p->flow, &icmp, &p->tcp_flags) < 0)
		return PARSE_MALFORMED;

	if (next == IPPROTO_ICMPV6) {
		if (icmp6_is_ndp(icmp.type)) {
			p->hop_limit = ip6.hop_limit;
			p->icmp_type = icmp.type;
			return PARSE_NDP;
		}
		if (icmp_is_error(FAMILY_IPV6, icmp.type))
			p->is_icmp_error =
				parse_inner(skb, off + sizeof(icmp), end, FAMILY_IPV6, &p->inner) == 0;
	}
	return PARSE_OK;
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct packet *p)
{
	__be16 proto;

	/* A tag the device took out of the frame: the host has no business
	 * with it, and what it carries is not what we would be judging. */
	if (skb->vlan_present)
		return PARSE_NON_IP;
	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0)
		return PARSE_MALFORMED;

	switch (bpf_ntohs(proto)) {
	case ETH_P_IP:
		return parse_ipv4(skb, p);
	case ETH_P_IPV6:
		return parse_ipv6(skb, p);
	case ETH_P_ARP:
		return PARSE_ARP;
	}
	return PARSE_NON_IP;
}
