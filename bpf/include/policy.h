/* Judging a new flow: which identity is the peer, and does any policy
 * entry allow this endpoint to talk to it in this direction. */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"
#include "maps.h"
#include "parse.h"

static __always_inline void ip_key_init(struct ip_key *k, __u8 family, const __u8 *addr)
{
	k->family = family;
	k->pad[0] = 0;
	k->pad[1] = 0;
	k->pad[2] = 0;
	__builtin_memcpy(k->addr, addr, sizeof(k->addr));
	k->prefixlen = 32 + (family == FAMILY_IPV4 ? 32 : 128);
}

static __always_inline void addr_key_init(struct addr_key *k, __u8 family, const __u8 *addr)
{
	k->family = family;
	k->pad[0] = 0;
	k->pad[1] = 0;
	k->pad[2] = 0;
	__builtin_memcpy(k->addr, addr, sizeof(k->addr));
}

static __always_inline __u32 identity_of(__u8 family, const __u8 *addr)
{
	struct ip_key k;
	struct identity_value *v;

	ip_key_init(&k, family, addr);
	v = bpf_map_lookup_elem(&ip_identity, &k);
	return v ? v->identity : IDENTITY_WORLD;
}

static __always_inline bool is_service(__u8 family, const __u8 *addr)
{
	struct ip_key k;

	ip_key_init(&k, family, addr);
	return bpf_map_lookup_elem(&service_cidrs, &k) != NULL;
}

static __always_inline bool policy_hit(struct policy_key *k, __u32 *rule_id)
{
	struct policy_value *v = bpf_map_lookup_elem(&policy, k);

	if (!v || v->verdict != POLICY_ALLOW)
		return false;
	*rule_id = v->rule_id;
	return true;
}

static __always_inline bool range_hit(__u32 local, __u32 peer, __u8 dir, __u8 protocol,
				      __u16 port, __u32 *rule_id)
{
	struct policy_range_key k = {
		.prefixlen = 96,
		.local_identity = local,
		.peer_identity = peer,
		.direction = dir,
		.protocol = protocol,
		.dport = bpf_htons(port),
	};
	struct policy_value *v = bpf_map_lookup_elem(&policy_ranges, &k);

	if (!v || v->verdict != POLICY_ALLOW)
		return false;
	*rule_id = v->rule_id;
	return true;
}

/* Entries for one peer (a real identity, or 0 for any peer), most specific
 * first: exact port, any port of the protocol, a port range, any protocol. */
static __always_inline bool policy_allows_peer(__u32 local, __u32 peer, __u8 dir,
					       __u8 protocol, __u16 port, __u32 *rule_id)
{
	struct policy_key k = {
		.local_identity = local,
		.peer_identity = peer,
		.direction = dir,
		.protocol = protocol,
		.dport = port,
	};

	if (port != 0) {
		if (policy_hit(&k, rule_id))
			return true;
		k.dport = 0;
	}
	if (policy_hit(&k, rule_id))
		return true;
	if (port != 0 && range_hit(local, peer, dir, protocol, port, rule_id))
		return true;
	k.protocol = 0;
	return policy_hit(&k, rule_id);
}

/* A workload identity: what IDENTITY_ANY_POD entries match. The reserved
 * numbers below (world, host, a quarantined or transitional endpoint's)
 * and CIDR identities are not pods. */
static __always_inline bool is_pod_identity(__u32 id)
{
	return id >= IDENTITY_FIRST_USER && id < IDENTITY_FIRST_CIDR;
}

/* An identity the family wildcards match: the world's or an allocated one
 * (pod or CIDR), never the host's or a reserved endpoint identity. */
static __always_inline bool is_addressed_identity(__u32 id)
{
	return id == IDENTITY_WORLD || id >= IDENTITY_FIRST_USER;
}

/* The wildcard peers judged after the peer's own entries, one byte each
 * in order, any peer (0) last: every pod (for a pod), every address of the
 * family (for an addressed identity). Packed so that one value, not the
 * peer and its family, stays live across the lookups: to_pod's stack has
 * no room to spare. */
static __always_inline __u32 wildcards(__u8 family, __u32 peer)
{
	__u32 fam = family == FAMILY_IPV4 ? IDENTITY_ANY_IPV4 : IDENTITY_ANY_IPV6;

	if (is_pod_identity(peer))
		return IDENTITY_ANY_POD | fam << 8;
	if (is_addressed_identity(peer))
		return fam;
	return IDENTITY_ANY;
}

/* The verdict for a flow that starts in dir, between the endpoint and
 * peer (an address of family): the peer's own entries, then every-pod,
 * every-address-of-the-family and any-peer ones.
 * Returns a REASON_*: allowed when it is POLICY_ALLOW, NOT_ISOLATED or
 * HOST. */
static __always_inline __u32 judge(const struct endpoint_value *ep, __u8 dir, __u32 peer,
				   __u8 family, __u8 protocol, __u16 port, __u32 *rule_id)
{
	__u32 isolated = dir == DIR_INGRESS ? ENDPOINT_F_INGRESS_ISOLATED
					    : ENDPOINT_F_EGRESS_ISOLATED;
	__u32 seq;

	*rule_id = 0;
	if (!(ep->flags & isolated))
		return REASON_NOT_ISOLATED;
	if (dir == DIR_INGRESS && peer == IDENTITY_HOST)
		return REASON_HOST;
	if (policy_allows_peer(ep->identity, peer, dir, protocol, port, rule_id))
		return REASON_POLICY_ALLOW;
	/* The wildcards share one copy of the lookups: to_pod judges at three
	 * places and has no stack to spare for a third copy at each. */
	seq = wildcards(family, peer);
#pragma clang loop unroll(disable)
	for (int i = 0; i < 3; i++) {
		__u32 wildcard = seq & 0xff;

		if (policy_allows_peer(ep->identity, wildcard, dir, protocol, port, rule_id))
			return REASON_POLICY_ALLOW;
		if (wildcard == IDENTITY_ANY)
			break;
		seq >>= 8;
	}
	return REASON_POLICY_MISS;
}

static __always_inline bool reason_allows(__u32 reason)
{
	return reason == REASON_POLICY_ALLOW || reason == REASON_NOT_ISOLATED ||
	       reason == REASON_HOST;
}
