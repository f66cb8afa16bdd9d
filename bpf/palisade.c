//go:build ignore

/* Palisade's datapath: two tcx programs on the host side of each pod's
 * veth. palisade_from_pod (tcx ingress) judges what the pod sends — its
 * egress; palisade_to_pod (tcx egress) judges what it receives — its
 * ingress. Both find the pod by the interface index in the endpoints map.
 *
 * Egress to a service address is judged after the node's DNAT (kube-proxy)
 * has chosen a backend: from_pod marks it and lets it go; to_pod, when the
 * backend is local, or palisade_uplink (tcx egress of the node's other
 * interfaces), when it is not, judges the marked packet as its source
 * pod's egress towards the backend. See after_dnat.
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
#include "include/natlookup.h"
#include "include/source.h"
#include "include/neighbour.h"

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

/* Refused whatever the mode: a forged source, a router message. Audit
 * mode is for trying policies out, and none of these is a policy's to
 * allow. report is false for what a bridge floods to every port. v is the
 * caller's, still all zero (the frames are tight: see neighbour.h). */
static __always_inline int refuse_always(struct __sk_buff *skb, const struct endpoint_value *ep,
					 __u8 dir, const struct tuple *t, struct verdict_info *v,
					 __u32 reason, __u32 drop_counter, bool report)
{
	count(drop_counter);
	if (report) {
		v->reason = reason;
		v->verdict = EVENT_DROP;
		fill_identities(v, ep, dir, peer_of(dir, t));
		emit_event(skb, t, v, bpf_ktime_get_coarse_ns());
	}
	return TC_ACT_SHOT;
}

/* ARP or neighbour discovery (neighbour.h): false to judge the packet
 * like any other, else true with the verdict in *ret. */
static __always_inline bool neighbour(struct __sk_buff *skb, const struct endpoint_value *ep,
				      __u8 dir, int parsed, struct packet *p,
				      struct verdict_info *v, int *ret)
{
	__u32 ifindex = skb->ifindex;
	int nv;

	if (dir == DIR_EGRESS)
		nv = parsed == PARSE_ARP ? arp_from_pod(skb, ifindex, p) : nd_from_pod(skb, ifindex, p);
	else
		nv = parsed == PARSE_ARP ? arp_to_pod(skb, ifindex, p) : nd_to_pod(skb, ifindex, p);

	switch (nv) {
	case NEIGH_PASS:
		count(COUNTER_NEIGHBOUR_PASSED);
		*ret = TC_ACT_UNSPEC;
		return true;
	case NEIGH_SPOOFED:
		*ret = refuse_always(skb, ep, dir, &p->flow, v, REASON_SPOOFED_SOURCE,
				     COUNTER_DROP_SPOOFED, true);
		return true;
	case NEIGH_ROUTER:
		*ret = refuse_always(skb, ep, dir, &p->flow, v, REASON_ROUTER_MESSAGE,
				     COUNTER_DROP_NEIGHBOUR, true);
		return true;
	case NEIGH_MALFORMED:
		*ret = refuse_always(skb, ep, dir, &p->flow, v, REASON_MALFORMED,
				     COUNTER_DROP_NEIGHBOUR, true);
		return true;
	case NEIGH_QUIET:
		*ret = refuse_always(skb, ep, dir, &p->flow, v, REASON_NONE, COUNTER_DROP_NEIGHBOUR,
				     false);
		return true;
	}
	return false;
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

/* A flow that needs an entry and cannot have one (ct_create) is refused:
 * without it, its replies into an isolated direction (and its own later
 * packets, where its direction is isolated) would be dropped anyway, and
 * the record says why. */
static __always_inline int untrackable(struct __sk_buff *skb, const struct endpoint_value *ep,
				       const struct tuple *t, struct verdict_info *v, int created,
				       __u64 now)
{
	if (created == CT_ENDPOINT_FULL) {
		v->reason = REASON_CT_ENDPOINT_LIMIT;
		return refuse(skb, ep, t, v, COUNTER_DROP_CT_ENDPOINT_LIMIT, now);
	}
	v->reason = REASON_CT_TABLE_FULL;
	return refuse(skb, ep, t, v, COUNTER_CT_INSERT_FAILED, now);
}

/* An endpoint isolated in neither direction: everything passes, so
 * nothing of it is tracked. An entry serves a verdict only where a
 * direction of its endpoint is isolated: its flow's later packets and
 * revision changes, where the flow's own direction is; its replies, where
 * the opposite one is (so a flow in an open direction is still tracked
 * when the other is isolated); a deferred service flow's post-DNAT
 * judgement and replies, where its source's egress or ingress is; an
 * audit flow's report-once, where a direction would drop. With neither
 * isolated, none of those can refuse anything, and after_dnat judges no
 * flow of this endpoint (from_pod marks none). A flow that started while
 * its pod was open is therefore unknown once a policy isolates the pod:
 * its packets are judged then as any, and TCP ones, being no SYN, are
 * refused where isolated (a new connection is judged and works).
 * Only a TCP SYN is known to open a connection: it alone gets a
 * forwarded event, so that chatty datagrams do not spend the node-wide
 * budget of those events. */
static __always_inline int untracked(struct __sk_buff *skb, const struct endpoint_value *ep,
				     __u8 dir, const struct packet *p, __u64 now)
{
	struct verdict_info v = { .reason = REASON_NOT_ISOLATED, .verdict = EVENT_ALLOWED_NEW };

	if (p->is_icmp_error || p->flow.protocol != IPPROTO_TCP || !tcp_opens(p)) {
		count(COUNTER_UNTRACKED);
		return TC_ACT_UNSPEC;
	}
	count(COUNTER_ALLOWED_OPEN);
	fill_identities(&v, ep, dir, peer_of(dir, &p->flow));
	emit_event(skb, &p->flow, &v, now);
	return TC_ACT_UNSPEC;
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
		/* Judged after DNAT, on its next forward packet. */
		ct->revision = ep->revision;
		count(COUNTER_CT_REVALIDATED);
		return TC_ACT_UNSPEC;
	}

	peer = identity_of(k->family, peer_addr);
	reason = judge(ep, k->direction, peer, k->family, k->protocol, policy_port(k->protocol, k->dport),
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
	ct_delete(k);
	return refuse(skb, ep, t, &v, COUNTER_CT_REVOKED, now);
}

/* Remembers where a deferred flow's source socket sent it, for the
 * post-DNAT judgement (service_origin in abi.h). */
static __always_inline void origin_remember(__u32 ifindex, const struct tuple *t)
{
	struct service_origin_key ok = {
		.ifindex = ifindex,
		.sport = t->sport,
		.protocol = t->protocol,
		.family = t->family,
	};
	struct service_origin_value ov = { .dport = t->dport };

	__builtin_memcpy(ok.saddr, t->saddr, sizeof(ok.saddr));
	__builtin_memcpy(ov.daddr, t->daddr, sizeof(ov.daddr));
	bpf_map_update_elem(&service_origin, &ok, &ov, BPF_ANY);
}

/* The deferred entry of the flow a post-DNAT packet belongs to, through
 * service_origin; dk is left holding its key. saddr and sport are the
 * source's own (the packet's, unless it was masqueraded). Fills in the
 * service address for reports. */
static __always_inline struct ct_value *deferred_entry(__u32 ifindex, const __u8 *saddr,
						       __be16 sport, const struct tuple *t,
						       struct ct_key *dk, struct verdict_info *v)
{
	struct service_origin_key ok = {
		.ifindex = ifindex,
		.sport = sport,
		.protocol = t->protocol,
		.family = t->family,
	};
	struct service_origin_value *o;

	__builtin_memcpy(ok.saddr, saddr, sizeof(ok.saddr));
	o = bpf_map_lookup_elem(&service_origin, &ok);
	if (!o)
		return NULL;
	__builtin_memcpy(v->service_addr, o->daddr, sizeof(v->service_addr));
	v->service_port = o->dport;
	dk->ifindex = ifindex;
	dk->sport = sport;
	dk->dport = o->dport;
	__builtin_memcpy(dk->saddr, saddr, sizeof(dk->saddr));
	__builtin_memcpy(dk->daddr, o->daddr, sizeof(dk->daddr));
	dk->protocol = t->protocol;
	dk->family = t->family;
	dk->direction = DIR_EGRESS;
	dk->pad = 0;
	return bpf_map_lookup_elem(&conntrack, dk);
}

static __always_inline void confirm(struct ct_value *deferred)
{
	if (deferred && !(deferred->flags & CT_F_CONFIRMED))
		deferred->flags |= CT_F_CONFIRMED; /* a lost race only delays replies' pass */
}

/* A marked packet whose source is no local pod: nothing on this node may
 * judge it, and the mark says it was bound for a service, so it is
 * dropped. */
static __always_inline int unknown_source(struct __sk_buff *skb, const struct tuple *t,
					  struct verdict_info *v, __u64 now)
{
	v->reason = REASON_SERVICE_SOURCE_UNKNOWN;
	v->src_identity = identity_of(t->family, t->saddr);
	v->dst_identity = identity_of(t->family, t->daddr);
	v->verdict = EVENT_DROP;
	count(COUNTER_DROP_SERVICE_SOURCE);
	emit_event(skb, t, v, now);
	return TC_ACT_SHOT;
}

/* A packet from_pod deferred (skb->mark & defer_mark), after the node's
 * DNAT: judged as the source pod's egress towards the backend it now goes
 * to, with its own conntrack entry on the source's interface (keyed by the
 * rewritten tuple, so revisions re-judge it like any flow). The verdict
 * also settles the deferred entry the replies come back through: confirmed
 * when allowed, removed when refused. here is the interface of the
 * endpoint the packet is being delivered to (0 on an uplink). Returns
 * TC_ACT_SHOT to drop; the caller clears the mark otherwise. */
static __always_inline int after_dnat(struct __sk_buff *skb, const struct packet *p,
				      bool judgeable, __u32 here, __u64 now)
{
	struct verdict_info v = { .flags = EVENT_F_SERVICE };
	const struct tuple *t = &p->flow;
	__u8 own_addr[16];
	__be16 own_sport = t->sport;
	struct endpoint_ip_value *src;
	struct endpoint_value *ep;
	struct ct_value *ct = NULL, *deferred;
	struct ct_key k, dk;
	struct addr_key ak;
	__u32 ifindex, peer, reason, rule_id;

	count(COUNTER_SERVICE_JUDGED);
	v.direction = DIR_EGRESS;
	__builtin_memcpy(own_addr, t->saddr, sizeof(own_addr));
	addr_key_init(&ak, t->family, t->saddr);
	src = bpf_map_lookup_elem(&endpoint_ips, &ak);
	if (!src && nat_original_source(skb, t, own_addr, &own_sport)) {
		/* Masqueraded on the way (kube-proxy does it to a pod reaching
		 * itself through its service, and to everything with
		 * masqueradeAll): the kernel's conntrack knows the source. */
		addr_key_init(&ak, t->family, own_addr);
		src = bpf_map_lookup_elem(&endpoint_ips, &ak);
		if (src)
			count(COUNTER_SERVICE_MASQUERADED);
	}
	if (!src && here) {
		/* Without the kernel's conntrack: a masqueraded packet
		 * delivered to the pod it is addressed to is that pod reaching
		 * itself, believed only if the pod deferred a flow from this
		 * very port (a masquerade that keeps ports). */
		addr_key_init(&ak, t->family, t->daddr);
		src = bpf_map_lookup_elem(&endpoint_ips, &ak);
		if (src && src->ifindex == here &&
		    deferred_entry(here, t->daddr, t->sport, t, &dk, &v)) {
			__builtin_memcpy(own_addr, t->daddr, sizeof(own_addr));
			own_sport = t->sport;
			count(COUNTER_SERVICE_MASQUERADED);
		} else {
			src = NULL;
		}
	}
	if (!src)
		return unknown_source(skb, t, &v, now);
	ifindex = src->ifindex;
	ep = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!ep)
		return unknown_source(skb, t, &v, now);
	v.ifindex = ifindex;

	if (judgeable) {
		ct_key_init(&k, ifindex, DIR_EGRESS, t, false);
		ct = bpf_map_lookup_elem(&conntrack, &k);
		if (ct && ct->revision == ep->revision &&
		    !((ct->flags & CT_F_AUDIT) && !(ep->flags & ENDPOINT_F_AUDIT))) {
			/* The deferred entry may be younger than this one (the
			 * first was evicted, the socket sent again): it takes
			 * this flow's standing. */
			confirm(deferred_entry(ifindex, own_addr, own_sport, t, &dk, &v));
			count(COUNTER_CT_ESTABLISHED);
			ct_touch(ct, CT_FORWARD, p, now);
			return TC_ACT_UNSPEC;
		}
	}

	/* Off the established path: a verdict to reach, report, and settle
	 * the deferred entry with. */
	deferred = deferred_entry(ifindex, own_addr, own_sport, t, &dk, &v);
	peer = identity_of(t->family, t->daddr);
	fill_identities(&v, ep, DIR_EGRESS, peer);
	if (!judgeable) {
		if (!(ep->flags & ENDPOINT_F_EGRESS_ISOLATED)) {
			count(COUNTER_MALFORMED_PASSED);
			return TC_ACT_UNSPEC;
		}
		v.reason = REASON_FRAGMENT;
		return refuse(skb, ep, t, &v, COUNTER_DROP_FRAGMENT, now);
	}

	if (ct) {
		reason = judge(ep, DIR_EGRESS, peer, t->family, t->protocol, policy_port(t->protocol, t->dport),
			       &rule_id);
		if (reason_allows(reason)) {
			ct->revision = ep->revision;
			ct->rule_id = rule_id;
			ct->flags &= ~CT_F_AUDIT;
			count(COUNTER_CT_REVALIDATED);
			confirm(deferred);
			ct_touch(ct, CT_FORWARD, p, now);
			return TC_ACT_UNSPEC;
		}
		v.reason = REASON_REVOKED;
		if (ep->flags & ENDPOINT_F_AUDIT) {
			ct->revision = ep->revision;
			ct->flags |= CT_F_AUDIT;
			return refuse(skb, ep, t, &v, COUNTER_CT_REVOKED, now);
		}
		ct_delete(&k);
		if (deferred)
			ct_delete(&dk);
		return refuse(skb, ep, t, &v, COUNTER_CT_REVOKED, now);
	}

	if (t->protocol == IPPROTO_TCP && !tcp_opens(p)) {
		if (!(ep->flags & ENDPOINT_F_EGRESS_ISOLATED)) {
			count(COUNTER_TCP_NOT_NEW_PASSED);
			return TC_ACT_UNSPEC;
		}
		v.reason = REASON_TCP_NOT_NEW;
		return refuse(skb, ep, t, &v, COUNTER_DROP_TCP_NOT_NEW, now);
	}

	reason = judge(ep, DIR_EGRESS, peer, t->family, t->protocol, policy_port(t->protocol, t->dport),
		       &rule_id);
	v.reason = reason;
	v.rule_id = rule_id;
	if (reason_allows(reason)) {
		int created = ct_create(&k, ep->revision, CT_F_SERVICE, rule_id, now, 0);

		if (created != CT_CREATED) {
			if (deferred)
				ct_delete(&dk);
			return untrackable(skb, ep, t, &v, created, now);
		}
		count(reason == REASON_POLICY_ALLOW ? COUNTER_ALLOWED_POLICY : COUNTER_ALLOWED_OPEN);
		confirm(deferred);
		v.verdict = EVENT_ALLOWED_NEW;
		emit_event(skb, t, &v, now);
		return TC_ACT_UNSPEC;
	}
	if (ep->flags & ENDPOINT_F_AUDIT) {
		ct_create(&k, ep->revision, CT_F_SERVICE | CT_F_AUDIT, 0, now, 0);
		confirm(deferred);
	} else if (deferred) {
		ct_delete(&dk);
	}
	return refuse(skb, ep, t, &v, COUNTER_DROP_POLICY, now);
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
	int match, parsed;
	__u64 now;

	ep = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!ep) {
		count(COUNTER_UNMANAGED);
		return TC_ACT_UNSPEC;
	}

	parsed = parse_packet(skb, &p);
	if (parsed == PARSE_ARP || parsed == PARSE_NDP) {
		int ret;

		if (neighbour(skb, ep, dir, parsed, &p, &v, &ret))
			return ret;
		parsed = PARSE_OK; /* an ICMPv6 message like any other */
	}

	/* Before any verdict, conntrack included, and in every mode: a
	 * packet from the pod carries one of its own addresses. Whatever
	 * parsed far enough to have a source (fragments, malformed L4) has
	 * it checked. */
	if (dir == DIR_EGRESS && p.flow.family &&
	    !source_allowed(ifindex, p.flow.family, p.flow.saddr))
		return refuse_always(skb, ep, dir, &p.flow, &v, REASON_SPOOFED_SOURCE,
				     COUNTER_DROP_SPOOFED, true);

	switch (parsed) {
	case PARSE_OK:
		break;
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

	/* Some pod's service traffic, DNATed to this pod: its source's egress
	 * first, then this pod's ingress as for any packet. */
	if (dir == DIR_INGRESS && (skb->mark & defer_mark)) {
		if (after_dnat(skb, &p, true, ifindex, now) == TC_ACT_SHOT)
			return TC_ACT_SHOT;
		skb->mark &= ~defer_mark;
	}

	/* Conntrack serves verdicts only; see untracked. */
	if (!(ep->flags & (ENDPOINT_F_INGRESS_ISOLATED | ENDPOINT_F_EGRESS_ISOLATED)))
		return untracked(skb, ep, dir, &p, now);

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
		/* What comes back through a deferred entry is only as good as
		 * the post-DNAT judgement of its flow. An ICMP error about it
		 * still passes: it carries no data, and it is how the node
		 * refuses a service without endpoints (kube-proxy's reject),
		 * which no DNAT and so no judgement precedes. A refused flow's
		 * entry is gone, so its errors are judged on their own. */
		if ((ct->flags & (CT_F_DEFERRED | CT_F_CONFIRMED)) == CT_F_DEFERRED &&
		    match == CT_REPLY && !p.is_icmp_error &&
		    (ep->flags & ENDPOINT_F_EGRESS_ISOLATED)) {
			fill_identities(&v, ep, dir, peer_of(dir, &p.flow));
			v.reason = REASON_SERVICE_UNCONFIRMED;
			return refuse(skb, ep, &p.flow, &v, COUNTER_DROP_SERVICE_UNCONFIRMED, now);
		}
		if (p.is_icmp_error)
			count(COUNTER_CT_RELATED);
		else if (match == CT_REPLY)
			count(COUNTER_CT_REPLY);
		else
			count(COUNTER_CT_ESTABLISHED);
		if ((ct->flags & CT_F_DEFERRED) && match == CT_FORWARD && dir == DIR_EGRESS &&
		    !p.is_icmp_error)
			skb->mark |= defer_mark;
		ct_touch(ct, match, &p, now);
		return TC_ACT_UNSPEC;
	}

	/* A new flow. ICMP errors about nothing we know are judged as plain
	 * ICMP and never tracked. */
	ct_key_init(&k, ifindex, dir, &p.flow, false);

	/* A mid-connection TCP packet of no tracked flow (one revoked, or
	 * never allowed) must not open one: in an isolated direction it is
	 * refused, elsewhere it passes untracked, so that its replies are
	 * judged on their own. */
	if (p.flow.protocol == IPPROTO_TCP && !tcp_opens(&p))
		return unjudgeable(skb, ep, dir, &p, REASON_TCP_NOT_NEW, COUNTER_DROP_TCP_NOT_NEW,
				   COUNTER_TCP_NOT_NEW_PASSED);

	if (dir == DIR_EGRESS && !p.is_icmp_error && is_service(p.flow.family, p.flow.daddr)) {
		int created = ct_create(&k, ep->revision, CT_F_DEFERRED, 0, now, 0);

		if (created != CT_CREATED) {
			fill_identities(&v, ep, dir, peer_of(dir, &p.flow));
			return untrackable(skb, ep, &p.flow, &v, created, now);
		}
		skb->mark |= defer_mark;
		count(COUNTER_DEFERRED);
		origin_remember(ifindex, &p.flow);
		return TC_ACT_UNSPEC;
	}

	peer = peer_of(dir, &p.flow);
	reason = judge(ep, dir, peer, p.flow.family, p.flow.protocol, policy_port(p.flow.protocol, p.flow.dport),
		       &rule_id);
	fill_identities(&v, ep, dir, peer);
	v.reason = reason;
	v.rule_id = rule_id;

	if (reason_allows(reason)) {
		if (!p.is_icmp_error) {
			int created = ct_create(&k, ep->revision, 0, rule_id, now, arrived_on(skb));

			if (created != CT_CREATED)
				return untrackable(skb, ep, &p.flow, &v, created, now);
		}
		if (reason == REASON_POLICY_ALLOW)
			count(COUNTER_ALLOWED_POLICY);
		else if (reason == REASON_HOST)
			count(COUNTER_ALLOWED_HOST);
		else
			count(COUNTER_ALLOWED_OPEN);
		v.verdict = EVENT_ALLOWED_NEW;
		emit_event(skb, &p.flow, &v, now);
		return TC_ACT_UNSPEC;
	}

	if (ep->flags & ENDPOINT_F_AUDIT)
		flags = CT_F_AUDIT;
	if (flags && !p.is_icmp_error)
		ct_create(&k, ep->revision, flags, 0, now, arrived_on(skb));
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

/* tcx egress of the node's interfaces towards other nodes and the world:
 * deferred service traffic whose backend is elsewhere is judged here, as
 * its source pod's egress. Everything unmarked passes at the cost of one
 * load. */
SEC("tcx/egress")
int palisade_uplink(struct __sk_buff *skb)
{
	struct packet p = {};
	bool judgeable = true;

	if (!(skb->mark & defer_mark))
		return TC_ACT_UNSPEC;
	switch (parse_packet(skb, &p)) {
	case PARSE_OK:
		break;
	case PARSE_FRAGMENT:
		if (frag_recall(&p)) {
			count(COUNTER_FRAGMENT_MATCHED);
			break;
		}
		judgeable = false;
		break;
	default:
		/* from_pod marks only IP packets it parsed: this mark is not
		 * Palisade's to act on. */
		return TC_ACT_UNSPEC;
	}
	if (p.fragment == FRAG_FIRST)
		frag_remember(&p);
	if (after_dnat(skb, &p, judgeable, 0, bpf_ktime_get_coarse_ns()) == TC_ACT_SHOT)
		return TC_ACT_SHOT;
	skb->mark &= ~defer_mark;
	return TC_ACT_UNSPEC;
}

const struct abi_enums abi_enums_unused __attribute__((used)) SEC(".abi");
