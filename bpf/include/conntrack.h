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

/* A flow that passed but could not be tracked is counted: its replies
 * will be judged on their own, so a full table never opens anything. */
static __always_inline void ct_create(struct ct_key *k, __u32 revision, __u32 flags,
				      __u32 rule_id, __u64 now)
{
	struct ct_value v = {
		.created_ns = now,
		.last_seen_ns = now,
		.revision = revision,
		.flags = flags,
		.rule_id = rule_id,
	};

	if (bpf_map_update_elem(&conntrack, k, &v, BPF_ANY) < 0)
		count(COUNTER_CT_INSERT_FAILED);
}

static __always_inline void ct_touch(struct ct_value *v, int match, __u64 now)
{
	if (now - v->last_seen_ns > CT_TOUCH_INTERVAL_NS)
		v->last_seen_ns = now;
	if (match == CT_REPLY && !(v->flags & CT_F_SEEN_REPLY))
		v->flags |= CT_F_SEEN_REPLY; /* a lost race only loses this hint */
}
