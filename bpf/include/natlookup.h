/* The original tuple of a NATed packet, from the kernel's own conntrack
 * (the nf_conntrack kfuncs, Linux 6.0+): what a masqueraded packet was
 * before kube-proxy rewrote its source. The kfuncs are weak: on a kernel
 * without nf_conntrack the lookup reports nothing and the caller falls
 * back on what the packet shows. */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"
#include "parse.h"

/* The kernel's layouts, as far as they are read; field offsets are
 * relocated against the running kernel's BTF (CO-RE). */
union nf_inet_addr {
	__u32 all[4];
	__be32 ip;
	__be32 ip6[4];
} __attribute__((preserve_access_index));

union nf_conntrack_man_proto {
	__be16 all;
} __attribute__((preserve_access_index));

struct nf_conntrack_man {
	union nf_inet_addr u3;
	union nf_conntrack_man_proto u;
} __attribute__((preserve_access_index));

struct nf_conntrack_tuple {
	struct nf_conntrack_man src;
} __attribute__((preserve_access_index));

struct nf_conntrack_tuple_hash {
	struct nf_conntrack_tuple tuple;
} __attribute__((preserve_access_index));

struct nf_conn {
	struct nf_conntrack_tuple_hash tuplehash[2];
} __attribute__((preserve_access_index));

struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u16 ct_zone_id;
	__u8 ct_zone_dir;
	__u8 reserved[3];
};

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym __weak;
extern void bpf_ct_release(struct nf_conn *ct) __ksym __weak;

#define IP_CT_DIR_ORIGINAL 0
#define IP_CT_DIR_REPLY 1
#define CT_OPTS_CURRENT_NETNS -1

/* The source the connection of packet t started from (address in the
 * tuple layout, port in network order). The packet travels in its
 * connection's original direction, rewritten; the kernel keys the
 * connection by both directions' tuples, and t reversed is its reply
 * tuple. */
static __noinline bool nat_original_source(struct __sk_buff *skb, const struct tuple *t,
				   __u8 *saddr, __be16 *sport)
{
	struct bpf_sock_tuple bt = {};
	struct bpf_ct_opts opts = {
		.netns_id = CT_OPTS_CURRENT_NETNS,
		.l4proto = t->protocol,
	};
	struct nf_conn *ct;
	__u32 size;

	if (!bpf_skb_ct_lookup || !bpf_ct_release)
		return false;
	if (t->protocol != IPPROTO_TCP && t->protocol != IPPROTO_UDP)
		return false;
	if (t->family == FAMILY_IPV4) {
		__builtin_memcpy(&bt.ipv4.saddr, t->daddr, 4);
		__builtin_memcpy(&bt.ipv4.daddr, t->saddr, 4);
		bt.ipv4.sport = t->dport;
		bt.ipv4.dport = t->sport;
		size = sizeof(bt.ipv4);
	} else {
		__builtin_memcpy(bt.ipv6.saddr, t->daddr, 16);
		__builtin_memcpy(bt.ipv6.daddr, t->saddr, 16);
		bt.ipv6.sport = t->dport;
		bt.ipv6.dport = t->sport;
		size = sizeof(bt.ipv6);
	}
	ct = bpf_skb_ct_lookup(skb, &bt, size, &opts, sizeof(opts));
	if (!ct)
		return false;
	__builtin_memset(saddr, 0, 16);
	if (t->family == FAMILY_IPV4) {
		__be32 a = ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple.src.u3.ip;

		__builtin_memcpy(saddr, &a, 4);
	} else {
		for (int i = 0; i < 4; i++) {
			__be32 a = ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple.src.u3.ip6[i];

			__builtin_memcpy(saddr + 4 * i, &a, 4);
		}
	}
	*sport = ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple.src.u.all;
	bpf_ct_release(ct);
	return true;
}
