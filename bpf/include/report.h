/* Counters and flow events: what Go turns into metrics and flow records. */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"
#include "maps.h"
#include "parse.h"

static __always_inline void count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &counter);

	if (v)
		*v += 1; /* per-CPU: no other writer */
}

/* Token bucket kept in nanoseconds of credit: each event costs one
 * interval, credit accrues with time and is capped at burst intervals. */
static __always_inline bool bucket_take(struct token_bucket *b, __u64 interval, __u64 burst,
					__u64 now)
{
	__u64 cap = interval * burst;

	if (b->last_ns == 0) /* first use on this CPU: a full bucket */
		b->credit_ns = cap;
	else
		b->credit_ns += now - b->last_ns;
	if (b->credit_ns > cap)
		b->credit_ns = cap;
	b->last_ns = now;
	if (b->credit_ns < interval)
		return false;
	b->credit_ns -= interval;
	return true;
}

static __always_inline bool new_flow_event_allowed(__u64 now)
{
	__u64 interval = new_flow_event_interval_ns;
	__u32 zero = 0;
	struct token_bucket *b;

	if (interval == 0)
		return false;
	b = bpf_map_lookup_elem(&event_budget, &zero);
	if (!b)
		return false;
	return bucket_take(b, interval, new_flow_event_burst, now);
}

/* The budget of drop and audit events of the endpoint behind ifindex on
 * this CPU, created full on first use. NULL only if the map fails. */
static __always_inline struct event_bucket *endpoint_bucket(__u32 ifindex)
{
	struct event_bucket fresh = {}, *b = bpf_map_lookup_elem(&endpoint_event_budget, &ifindex);

	if (b)
		return b;
	bpf_map_update_elem(&endpoint_event_budget, &ifindex, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&endpoint_event_budget, &ifindex);
}

struct verdict_info {
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id;
	__u32 reason;
	/* The judged endpoint's interface when it is not the packet's (a
	 * source judged after DNAT); 0 means skb->ifindex. */
	__u32 ifindex;
	__u32 flags; /* event_flags */
	__u8 service_addr[16];
	__be16 service_port;
	__u8 direction;
	__u8 verdict;
};

static __always_inline void emit_event(struct __sk_buff *skb, const struct tuple *t,
				       const struct verdict_info *v, __u64 now)
{
	struct event_bucket *b = NULL;
	__u32 ifindex;
	struct event *e;

	/* Read skb->ifindex straight off the context: clang would otherwise
	 * reuse a pointer into it computed elsewhere, a modified context
	 * pointer the verifier refuses to dereference. */
	asm volatile("" : "+r"(skb));
	ifindex = skb->ifindex;
	if (v->ifindex)
		ifindex = v->ifindex;
	if (v->verdict == EVENT_ALLOWED_NEW) {
		if (!new_flow_event_allowed(now)) {
			count(COUNTER_EVENT_RATE_LIMITED);
			return;
		}
	} else {
		/* A drop or audit event: within its endpoint's own budget, so
		 * that one pod's flood cannot fill the ring buffer that another
		 * pod's denials need. What is not sent is counted per endpoint;
		 * Go reports it as "N events of POD lost". */
		b = endpoint_bucket(ifindex);
		if (b && drop_event_interval_ns &&
		    !bucket_take(&b->tokens, drop_event_interval_ns, drop_event_burst, now)) {
			b->lost++; /* per-CPU: no other writer */
			count(COUNTER_DROP_EVENT_RATE_LIMITED);
			return;
		}
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		if (b)
			b->lost++;
		count(COUNTER_EVENT_LOST);
		return;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->ifindex = ifindex;
	e->src_identity = v->src_identity;
	e->dst_identity = v->dst_identity;
	e->rule_id = v->rule_id;
	__builtin_memcpy(e->saddr, t->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, t->daddr, sizeof(e->daddr));
	e->sport = bpf_ntohs(t->sport);
	e->dport = bpf_ntohs(t->dport);
	e->protocol = t->protocol;
	e->family = t->family;
	e->direction = v->direction;
	e->verdict = v->verdict;
	e->reason = v->reason;
	e->flags = v->flags;
	__builtin_memcpy(e->service_addr, v->service_addr, sizeof(e->service_addr));
	e->service_port = bpf_ntohs(v->service_port);
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	bpf_ringbuf_submit(e, 0);
}
