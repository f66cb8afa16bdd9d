/* Connection tracking: once a flow is allowed in the direction it started,
 * its later packets and its replies pass without a policy lookup, until
 * the endpoint's revision moves and the flow is judged again. */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"
#include "maps.h"
#include "parse.h"
#include "policy.h"
#include "report.h"

/* last_seen is refreshed at most this often: a write per packet would
 * bounce the entry's cache line between CPUs. */
#define CT_TOUCH_INTERVAL_NS 1000000000ULL

enum ct_match {
	CT_NONE,
	CT_FORWARD,
	CT_REPLY,
};

static __always_inline __u8 opposite(__u8 dir)
{
	return dir == DIR_INGRESS ? DIR_EGRESS : DIR_INGRESS;
}

static __always_inline void ct_key_init(struct ct_key *k, __u32 ifindex, __u8 dir,
					const struct tuple *t, bool reverse)
{
	k->ifindex = ifindex;
	k->protocol = t->protocol;
	k->family = t->family;
	k->direction = dir;
	k->pad = 0;
	if (reverse) {
		k->sport = t->dport;
		k->dport = t->sport;
		__builtin_memcpy(k->saddr, t->daddr, sizeof(k->saddr));
		__builtin_memcpy(k->daddr, t->saddr, sizeof(k->daddr));
	} else {
		k->sport = t->sport;
		k->dport = t->dport;
		__builtin_memcpy(k->saddr, t->saddr, sizeof(k->saddr));
		__builtin_memcpy(k->daddr, t->daddr, sizeof(k->daddr));
	}
}

/* A packet travelling in dir belongs to a flow that started in dir with
 * the same tuple (forward), or in the opposite direction with the reverse
 * tuple (reply). k is left holding the key that matched. */
static __always_inline struct ct_value *ct_find(__u32 ifindex, __u8 dir, const struct tuple *t,
						struct ct_key *k, int *match)
{
	struct ct_value *v;

	ct_key_init(k, ifindex, dir, t, false);
	v = bpf_map_lookup_elem(&conntrack, k);
	if (v) {
		*match = CT_FORWARD;
		return v;
	}
	ct_key_init(k, ifindex, opposite(dir), t, true);
	v = bpf_map_lookup_elem(&conntrack, k);
	*match = v ? CT_REPLY : CT_NONE;
	return v;
}

#ifndef EEXIST
#define EEXIST 17
#endif

enum ct_create_result {
	CT_CREATED,
	CT_ENDPOINT_FULL, /* the endpoint's share (ct_endpoint_limit) is used up */
	CT_TABLE_FULL,    /* the node's table (or the share counters) is full */
};

/* Whose share a new flow counts in: the endpoint's own, unless the flow
 * comes into it from another pod of this node, which pays for it (it
 * opened it, and its own egress entry is bounded by the same share). A
 * pod flooding another with allowed flows fills its own share, not the
 * target's. The sender is believed only if the packet arrived from its
 * interface (arrived_on: skb->ingress_ifindex), so that a packet from
 * outside forging a local pod's address charges the receiver, never the
 * pod it names. */
static __always_inline __u32 ct_payer(const struct ct_key *k, __u32 arrived_on)
{
	struct endpoint_ip_value *src;
	struct addr_key ak;

	if (k->direction != DIR_INGRESS || arrived_on == 0)
		return k->ifindex;
	addr_key_init(&ak, k->family, k->saddr);
	src = bpf_map_lookup_elem(&endpoint_ips, &ak);
	return src && src->ifindex == arrived_on ? src->ifindex : k->ifindex;
}

/* The interface a packet entered the node through, for ct_payer. */
static __always_inline __u32 arrived_on(struct __sk_buff *skb)
{
	/* Straight off the context (see emit_event). */
	asm volatile("" : "+r"(skb));
	return skb->ingress_ifindex;
}

/* An endpoint's share counter, created at zero on first use. */
static __always_inline __u64 *ct_share(__u32 ifindex)
{
	__u64 zero = 0, *used = bpf_map_lookup_elem(&ct_endpoint_used, &ifindex);

	if (used)
		return used;
	bpf_map_update_elem(&ct_endpoint_used, &ifindex, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&ct_endpoint_used, &ifindex);
}

/* Tracks a new flow within the share it counts in (ct_payer; arrived_on
 * is 0 where the flow cannot come from another pod). Anything but
 * CT_CREATED means the flow has no entry: the caller refuses it where it
 * needed one (its replies, and its own later packets, would find none). */
static __always_inline int ct_create(struct ct_key *k, __u32 revision, __u32 flags,
				     __u32 rule_id, __u64 now, __u32 arrived)
{
	__u32 ifindex = ct_payer(k, arrived);
	struct ct_value v = {
		.created_ns = now,
		.last_seen_ns = now,
		.revision = revision,
		.flags = flags,
		.rule_id = rule_id,
		.share_ifindex = ifindex,
	};
	__u64 *used, *collected;
	__s64 in_use;
	long err;

	used = ct_share(ifindex);
	if (!used)
		return CT_TABLE_FULL;
	collected = bpf_map_lookup_elem(&ct_endpoint_collected, &ifindex);
	in_use = (__s64)(*used - (collected ? *collected : 0));
	/* Racing CPUs may each pass this check: the share is exceeded by
	 * at most one entry per CPU. */
	if (in_use >= (__s64)ct_endpoint_limit)
		return CT_ENDPOINT_FULL;
	err = bpf_map_update_elem(&conntrack, k, &v, BPF_NOEXIST);
	if (err == -EEXIST)
		return CT_CREATED; /* another CPU tracked the same flow first */
	if (err)
		return CT_TABLE_FULL;
	__sync_fetch_and_add(used, 1);
	return CT_CREATED;
}

/* Removes a tracked flow, giving its place back to the share it counts
 * in if this call (not a concurrent one, nor the collector) removed it. */
static __always_inline void ct_delete(struct ct_key *k)
{
	struct ct_value *v = bpf_map_lookup_elem(&conntrack, k);
	__u32 ifindex;
	__u64 *used;

	if (!v)
		return;
	ifindex = v->share_ifindex ? v->share_ifindex : k->ifindex;
	if (bpf_map_delete_elem(&conntrack, k) != 0)
		return;
	used = bpf_map_lookup_elem(&ct_endpoint_used, &ifindex);
	if (used)
		__sync_fetch_and_sub(used, 1);
}

/* Refreshes a flow a packet matched. A TCP FIN or RST marks it closing,
 * which the collector forgets after a short idle time, not hours (a
 * half-closed connection that keeps sending keeps it fresh); a SYN
 * reusing a closing flow's ports starts it over. */
static __always_inline void ct_touch(struct ct_value *v, int match, const struct packet *p,
				     __u64 now)
{
	if (now - v->last_seen_ns > CT_TOUCH_INTERVAL_NS)
		v->last_seen_ns = now;
	if (match == CT_REPLY && !(v->flags & CT_F_SEEN_REPLY))
		v->flags |= CT_F_SEEN_REPLY; /* a lost race only loses this hint */
	if (p->flow.protocol != IPPROTO_TCP || p->is_icmp_error)
		return;
	if (p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) {
		if (!(v->flags & CT_F_CLOSING)) {
			__sync_fetch_and_or(&v->flags, CT_F_CLOSING);
			v->last_seen_ns = now; /* the short timeout runs from here */
			count(COUNTER_CT_CLOSING);
		}
	} else if ((v->flags & CT_F_CLOSING) && match == CT_FORWARD && tcp_opens(p)) {
		__sync_fetch_and_and(&v->flags, ~(__u32)CT_F_CLOSING);
	}
}
