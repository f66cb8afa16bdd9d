//go:build ignore

/* Palisade's datapath: two tcx programs on the host side of each pod's
 * veth. palisade_from_pod (tcx ingress) judges what the pod sends — its
 * egress; palisade_to_pod (tcx egress) judges what it receives — its
 * ingress. Both find the pod by the interface index in the endpoints map.
 *
 * Every verdict other than a drop is TC_ACT_UNSPEC (tcx "next"): Palisade
 * only ever objects, and leaves the last word on passing to whatever runs
 * after it. */

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "include/abi.h"
#include "include/maps.h"
#include "include/parse.h"
#include "include/policy.h"
#include "include/conntrack.h"
#include "include/fragments.h"
#include "include/report.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* Identities of the two sides of a packet, given the remote one. */
static __always_inline void fill_identities(struct verdict_info *v,
					    const struct endpoint_value *ep, __u8 dir,
					    __u32 peer)
{
	v->direction = dir;
	if (dir == DIR_EGRESS) {
		v->src_identity = ep->identity;
		v->dst_identity = peer;
	} else {
		v->src_identity = peer;
		v->dst_identity = ep->identity;
	}
}

static __always_inline __u32 peer_of(__u8 dir, const struct tuple *t)
{
	if (t->family == 0) /* not parsed far enough to know */
		return IDENTITY_ANY;
	return identity_of(t->family, dir == DIR_EGRESS ? t->daddr : t->saddr);
}

/* The packet is not allowed. In audit mode that is reported and the packet
 * passes; otherwise reported and dropped. Returns the tc verdict. */
static __always_inline int refuse(struct __sk_buff *skb, const struct endpoint_value *ep,
				  const struct tuple *t, struct verdict_info *v,
				  __u32 drop_counter, __u64 now)
{
	if (ep->flags & ENDPOINT_F_AUDIT) {
		v->verdict = EVENT_AUDIT_WOULD_DROP;
		count(COUNTER_AUDIT_WOULD_DROP);
		emit_event(skb, t, v, now);
		return TC_ACT_UNSPEC;
	}
	v->verdict = EVENT_DROP;
	count(drop_counter);
	emit_event(skb, t, v, now);
	return TC_ACT_SHOT;
}

/* A packet the parser could not judge by ports: fine where nothing
 * isolates this direction, refused where something does. */
static __always_inline int unjudgeable(struct __sk_buff *skb, const struct endpoint_value *ep,
				       __u8 dir, const struct packet *p, __u32 reason,
				       __u32 drop_counter, __u32 pass_counter)
{
	__u32 isolated = dir == DIR_INGRESS ? ENDPOINT_F_INGRESS_ISOLATED
					    : ENDPOINT_F_EGRESS_ISOLATED;
	struct verdict_info v = { .reason = reason };

	if (!(ep->flags & isolated)) {
		count(pass_counter);
		return TC_ACT_UNSPEC;
	}
	fill_identities(&v, ep, dir, peer_of(dir, &p->flow));
	return refuse(skb, ep, &p->flow, &v, drop_counter, bpf_ktime_get_coarse_ns());
}

/* A tracked flow whose endpoint has moved to a new revision: judge it again
 * as the flow it is (its first direction, its destination port). */
static __always_inline int ct_revalidate(struct __sk_buff *skb, const struct endpoint_value *ep,
					 __u8 dir, const struct tuple *t, struct ct_key *k,
					 struct ct_value *ct, __u64 now)
{
	const __u8 *peer_addr = k->direction == DIR_EGRESS ? k->daddr : k->saddr;
	struct verdict_info v = {};
	__u32 peer, reason, rule_id;

	if ((ct->flags & CT_F_DEFERRED) && is_service(k->family, peer_addr)) {
		ct->revision = ep->revision;
		count(COUNTER_CT_REVALIDATED);
		return TC_ACT_UNSPEC;
	}

	peer = identity_of(k->family, peer_addr);
	reason = judge(ep, k->direction, peer, k->protocol, policy_port(k->protocol, k->dport),
		       &rule_id);
	if (reason_allows(reason)) {
		ct->revision = ep->revision;
		ct->rule_id = rule_id;
		ct->flags &= ~(CT_F_AUDIT | CT_F_DEFERRED);
		count(COUNTER_CT_REVALIDATED);
		return TC_ACT_UNSPEC;
	}

	fill_identities(&v, ep, dir, peer);
	v.reason = REASON_REVOKED;
	if (ep->flags & ENDPOINT_F_AUDIT) {
		/* Report once per revision, then keep passing quietly. */
		ct->revision = ep->revision;
		ct->flags |= CT_F_AUDIT;
		return refuse(skb, ep, t, &v, COUNTER_CT_REVOKED, now);
	}
	bpf_map_delete_elem(&conntrack, k);
	return refuse(skb, ep, t, &v, COUNTER_CT_REVOKED, now);
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_value *ep;
	struct packet p = {};
	struct verdict_info v = {};
	struct ct_value *ct;
	struct ct_key k;
	__u32 peer, reason, rule_id, flags = 0;
	int match;
	__u64 now;

	ep = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!ep) {
		count(COUNTER_UNMANAGED);
		return TC_ACT_UNSPEC;
	}

	switch (parse_packet(skb, &p)) {
	case PARSE_OK:
		break;
	case PARSE_ARP:
	case PARSE_NDP:
		count(COUNTER_NON_IP_PASSED);
		return TC_ACT_UNSPEC;
	case PARSE_NON_IP:
		return unjudgeable(skb, ep, dir, &p, REASON_NON_IP, COUNTER_DROP_NON_IP,
				   COUNTER_NON_IP_PASSED);
	case PARSE_FRAGMENT:
		if (frag_recall(&p)) {
			count(COUNTER_FRAGMENT_MATCHED);
			break;
		}
		return unjudgeable(skb, ep, dir, &p, REASON_FRAGMENT, COUNTER_DROP_FRAGMENT,
				   COUNTER_MALFORMED_PASSED);
	default:
		return unjudgeable(skb, ep, dir, &p, REASON_MALFORMED, COUNTER_DROP_MALFORMED,
				   COUNTER_MALFORMED_PASSED);
	}

	if (p.fragment == FRAG_FIRST)
		frag_remember(&p);

	/* Tick resolution is plenty for idle times and the event budget, and
	 * much cheaper than a clock read on every packet. */
	now = bpf_ktime_get_coarse_ns();

	/* An ICMP error travels against the packet it reports on: look its
	 * embedded packet up as if it went the other way. */
	if (p.is_icmp_error)
		ct = ct_find(ifindex, opposite(dir), &p.inner, &k, &match);
	else
		ct = ct_find(ifindex, dir, &p.flow, &k, &match);

	if (ct) {
		/* Audit-only admissions are re-judged as soon as audit ends, even
		 * if Go forgot to bump the revision with the flag. */
		if (ct->revision != ep->revision ||
		    ((ct->flags & CT_F_AUDIT) && !(ep->flags & ENDPOINT_F_AUDIT))) {
			int verdict = ct_revalidate(skb, ep, dir, &p.flow, &k, ct, now);

			if (verdict == TC_ACT_SHOT)
				return verdict;
		}
		if (p.is_icmp_error)
			count(COUNTER_CT_RELATED);
		else if (match == CT_REPLY)
			count(COUNTER_CT_REPLY);
		else
			count(COUNTER_CT_ESTABLISHED);
		if ((ct->flags & CT_F_DEFERRED) && match == CT_FORWARD && dir == DIR_EGRESS)
			skb->mark |= defer_mark;
		ct_touch(ct, match, now);
		return TC_ACT_UNSPEC;
	}

	/* A new flow. ICMP errors about nothing we know are judged as plain
	 * ICMP and never tracked. */
	ct_key_init(&k, ifindex, dir, &p.flow, false);

	if (dir == DIR_EGRESS && !p.is_icmp_error && is_service(p.flow.family, p.flow.daddr)) {
		skb->mark |= defer_mark;
		count(COUNTER_DEFERRED);
		ct_create(&k, ep->revision, CT_F_DEFERRED, 0, now);
		return TC_ACT_UNSPEC;
	}

	peer = peer_of(dir, &p.flow);
	reason = judge(ep, dir, peer, p.flow.protocol, policy_port(p.flow.protocol, p.flow.dport),
		       &rule_id);
	fill_identities(&v, ep, dir, peer);
	v.reason = reason;
	v.rule_id = rule_id;

	if (reason_allows(reason)) {
		if (reason == REASON_POLICY_ALLOW)
			count(COUNTER_ALLOWED_POLICY);
		else if (reason == REASON_HOST)
			count(COUNTER_ALLOWED_HOST);
		else
			count(COUNTER_ALLOWED_OPEN);
		if (!p.is_icmp_error)
			ct_create(&k, ep->revision, 0, rule_id, now);
		v.verdict = EVENT_ALLOWED_NEW;
		emit_event(skb, &p.flow, &v, now);
		return TC_ACT_UNSPEC;
	}

	if (ep->flags & ENDPOINT_F_AUDIT)
		flags = CT_F_AUDIT;
	if (flags && !p.is_icmp_error)
		ct_create(&k, ep->revision, flags, 0, now);
	return refuse(skb, ep, &p.flow, &v, COUNTER_DROP_POLICY, now);
}

SEC("tcx/ingress")
int palisade_from_pod(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS);
}

SEC("tcx/egress")
int palisade_to_pod(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS);
}

const struct abi_enums abi_enums_unused __attribute__((used)) SEC(".abi");
