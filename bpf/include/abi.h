/* The layout shared with Go: every map key and value, every event, every
 * number Go writes or reads. bpf2go turns these into Go types; abi_test.go
 * pins their sizes and offsets so that a change here is a deliberate one.
 * All padding is explicit and must be zero: hash and LPM keys compare bytes. */
#pragma once

#include <linux/types.h>

/* Identities. 0 never names a workload: in a policy key it means "any peer". */
enum identity {
	IDENTITY_ANY = 0,
	/* Any address the ip_identity map does not know. */
	IDENTITY_WORLD = 1,
	/* The node itself. Ingress from it is always allowed (kubelet probes);
	 * egress to it is judged like any other peer. */
	IDENTITY_HOST = 2,
	/* Go allocates workload and CIDR identities from here up. */
	IDENTITY_FIRST_USER = 256,
	/* A peer wildcard in policy keys: every pod (a workload identity,
	 * IDENTITY_FIRST_USER up to IDENTITY_FIRST_CIDR), never the host, the
	 * world or an ipBlock range. One entry stands for namespaceSelector: {}
	 * however many identities the cluster has. */
	IDENTITY_ANY_POD = 4,
	/* CIDR identities start here; workload identities stay below. */
	IDENTITY_FIRST_CIDR = 1 << 24,
	/* Peer wildcards for ipBlock 0.0.0.0/0 and ::/0 without except: every
	 * address of the family, whatever its identity (world, pod, CIDR),
	 * except the host's (it gets its own entry when all its addresses are
	 * in the block) and the reserved ones of endpoints in quarantine or in
	 * transition. */
	IDENTITY_ANY_IPV4 = 5,
	IDENTITY_ANY_IPV6 = 6,
};

/* Address family as stored in keys and events (not AF_*: one byte each). */
enum family {
	FAMILY_IPV4 = 4,
	FAMILY_IPV6 = 6,
};

/* Direction relative to the pod. Zero is deliberately invalid. */
enum direction {
	DIR_INGRESS = 1, /* towards the pod: tcx egress on the host-side veth */
	DIR_EGRESS = 2,  /* from the pod: tcx ingress on the host-side veth */
};

enum endpoint_flags {
	ENDPOINT_F_INGRESS_ISOLATED = 1 << 0,
	ENDPOINT_F_EGRESS_ISOLATED = 1 << 1,
	/* Would-drops are reported and passed. */
	ENDPOINT_F_AUDIT = 1 << 2,
};

enum policy_verdict {
	/* Any other value is treated as no entry at all (fail closed). */
	POLICY_ALLOW = 1,
};

enum ct_flags {
	/* Admitted only because the endpoint was in audit mode. */
	CT_F_AUDIT = 1 << 0,
	/* Egress to a service range: judged later, after DNAT. */
	CT_F_DEFERRED = 1 << 1,
	/* A packet in the reply direction has been seen. */
	CT_F_SEEN_REPLY = 1 << 2,
	/* A deferred flow as judged after DNAT: keyed by the rewritten tuple
	 * on the source pod's interface. Its replies travel un-NATed back
	 * through the deferred entry, never through this one. */
	CT_F_SERVICE = 1 << 3,
	/* A deferred entry whose flow the post-DNAT judgement allowed (or
	 * passed in audit mode): only then do its replies pass where the
	 * source's egress is isolated. */
	CT_F_CONFIRMED = 1 << 4,
	/* A TCP FIN or RST was seen: the collector gives the entry a short
	 * idle timeout (ConntrackTimeouts.Closing) instead of hours. A SYN
	 * reusing the flow's ports clears it. */
	CT_F_CLOSING = 1 << 5,
};

enum event_verdict {
	EVENT_DROP = 1,
	EVENT_AUDIT_WOULD_DROP = 2,
	EVENT_ALLOWED_NEW = 3,
};

enum event_flags {
	/* Judged after DNAT of a service address: the tuple is the rewritten
	 * one, service_addr and service_port the original destination when
	 * known (zero otherwise). */
	EVENT_F_SERVICE = 1 << 0,
};

/* Why a packet got its verdict; carried in events. */
enum reason {
	REASON_NONE = 0,
	REASON_POLICY_ALLOW = 1,  /* a policy entry allowed it */
	REASON_NOT_ISOLATED = 2,  /* no policy isolates this direction */
	REASON_HOST = 3,          /* ingress from the node */
	REASON_POLICY_MISS = 4,   /* isolated, no entry allows it */
	REASON_MALFORMED = 5,     /* truncated or invalid headers */
	REASON_FRAGMENT = 6,      /* later fragment whose first was never seen */
	REASON_REVOKED = 7,       /* established flow no longer allowed */
	REASON_NON_IP = 8,        /* neither IP nor ARP, or VLAN-tagged */
	REASON_TCP_NOT_NEW = 9,   /* TCP other than a SYN without a tracked flow */
	REASON_SERVICE_SOURCE_UNKNOWN = 10, /* after DNAT, the source is no local pod */
	REASON_SERVICE_UNCONFIRMED = 11,    /* reply to a deferred flow never allowed after DNAT */
	REASON_SPOOFED_SOURCE = 12, /* from a pod: an IP source or ARP sender not its own */
	REASON_ROUTER_MESSAGE = 13, /* from a pod: a router advertisement or redirect */
	REASON_CT_ENDPOINT_LIMIT = 14, /* a flow that needs tracking; the endpoint's conntrack share is used up */
	REASON_CT_TABLE_FULL = 15,     /* a flow that needs tracking; the node's conntrack table is full */
};

/* Indexes into the per-CPU counters array. */
enum counter {
	COUNTER_UNMANAGED = 0,        /* no endpoint entry: passed untouched */
	COUNTER_NON_IP_PASSED = 1,    /* non-IP in an open direction */
	COUNTER_ALLOWED_POLICY = 2,   /* new flow allowed by a policy entry */
	COUNTER_ALLOWED_OPEN = 3,     /* new flow in a direction nothing isolates */
	COUNTER_ALLOWED_HOST = 4,     /* new flow from the node */
	COUNTER_CT_ESTABLISHED = 5,   /* packet of a known flow, forward */
	COUNTER_CT_REPLY = 6,         /* packet of a known flow, reply */
	COUNTER_CT_RELATED = 7,       /* ICMP error about a known flow */
	COUNTER_CT_REVALIDATED = 8,   /* revision changed, flow still allowed */
	COUNTER_CT_REVOKED = 9,       /* revision changed, flow no longer allowed */
	COUNTER_CT_INSERT_FAILED = 10,/* new flow refused: the conntrack table is full */
	COUNTER_DROP_POLICY = 11,
	COUNTER_DROP_MALFORMED = 12,
	COUNTER_DROP_FRAGMENT = 13,
	COUNTER_DROP_NON_IP = 14,
	COUNTER_AUDIT_WOULD_DROP = 15,
	COUNTER_MALFORMED_PASSED = 16,/* unparsable, but in an open direction */
	COUNTER_EVENT_LOST = 17,      /* ring buffer full */
	COUNTER_EVENT_RATE_LIMITED = 18,
	COUNTER_DEFERRED = 19,        /* egress to a service range, marked */
	COUNTER_FRAGMENT_MATCHED = 20,/* later fragment given its first's ports */
	COUNTER_DROP_TCP_NOT_NEW = 21,/* TCP non-SYN without a flow, isolated direction */
	COUNTER_TCP_NOT_NEW_PASSED = 22,/* the same in an open direction: passed untracked */
	COUNTER_SERVICE_JUDGED = 23,  /* marked packet judged after DNAT */
	COUNTER_DROP_SERVICE_SOURCE = 24,/* marked packet from no local pod */
	COUNTER_DROP_SERVICE_UNCONFIRMED = 25,/* reply via an unconfirmed deferred entry */
	COUNTER_SERVICE_MASQUERADED = 26,/* marked, masqueraded: source recovered */
	COUNTER_DROP_SPOOFED = 27,    /* from a pod: source not its own, every mode */
	COUNTER_NEIGHBOUR_PASSED = 28,/* ARP or neighbour discovery resolution needs */
	COUNTER_DROP_NEIGHBOUR = 29,  /* ARP for another's address, RA, redirect, MLD, bad ARP */
	COUNTER_UNTRACKED = 30,       /* packet of an endpoint isolated in neither direction: passed, not tracked */
	COUNTER_DROP_CT_ENDPOINT_LIMIT = 31,/* new flow refused: its endpoint's conntrack share is used up */
	COUNTER_DROP_EVENT_RATE_LIMITED = 32,/* drop or audit event over its endpoint's budget: not sent */
	COUNTER_CT_CLOSING = 33,      /* TCP FIN or RST of a tracked flow */
	COUNTER_MAX = 48,
};

/* ip_identity and service_cidrs: LPM trie keys. prefixlen counts bits of
 * everything after it, so it is 32 (family + pad) + the address prefix
 * length. IPv4 sits in addr[0..3], addr[4..15] zero. */
struct ip_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

struct identity_value {
	__u32 identity;
};

struct service_value {
	__u32 flags; /* reserved, zero */
};

/* endpoint_ips: exact hash from a local pod's address to its host-side
 * interface, so that a packet judged after DNAT (away from its source's
 * interface) finds the source's endpoint. IPv4 in addr[0..3]. */
struct addr_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

struct endpoint_ip_value {
	__u32 ifindex;
};

/* source_cidrs: LPM trie of the ranges a pod may send from besides its
 * own addresses (a VPN or router pod, by its palisade.dev/source-cidrs
 * annotation). prefixlen counts bits of everything after it: 64 (ifindex,
 * family, pad) + the range's prefix length. IPv4 in addr[0..3]. */
struct source_cidr_key {
	__u32 prefixlen;
	__u32 ifindex;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

struct source_cidr_value {
	__u32 flags; /* reserved, zero */
};

/* service_origin: what a deferred flow's source socket last sent to a
 * service address, so that the post-DNAT judgement can find (and confirm
 * or remove) the deferred conntrack entry and report the service. DNAT
 * keeps the source address and port, and the source interface is the one
 * endpoint_ips names. */
struct service_origin_key {
	__u32 ifindex;
	__be16 sport;
	__u8 protocol;
	__u8 family;
	__u8 saddr[16];
};

struct service_origin_value {
	__u8 daddr[16];
	__be16 dport;
	__u8 pad[2];
};

/* endpoints: keyed by the host-side interface index (__u32). */
struct endpoint_value {
	__u32 identity;
	__u32 flags;    /* endpoint_flags */
	__u32 revision; /* bump on any change that can alter a verdict */
	__u32 pad;
};

/* policy: exact hash. dport is in host byte order; 0 means any port,
 * protocol 0 any protocol, peer_identity 0 any peer. */
struct policy_key {
	__u32 local_identity;
	__u32 peer_identity;
	__u8 direction;
	__u8 protocol;
	__u16 dport;
};

struct policy_value {
	__u8 verdict; /* POLICY_ALLOW */
	__u8 pad[3];
	__u32 rule_id;
};

/* policy_ranges: LPM trie for endPort ranges. A range is split into
 * aligned power-of-two blocks; each block is one entry whose prefixlen is
 * 80 (identities, direction, protocol) + the block's port prefix bits.
 * dport is big-endian so that its high bits come first. */
struct policy_range_key {
	__u32 prefixlen;
	__u32 local_identity;
	__u32 peer_identity;
	__u8 direction;
	__u8 protocol;
	__be16 dport;
};

/* conntrack: one entry per flow per endpoint and direction. The tuple is
 * the flow's first packet as seen on that interface; ports are in network
 * byte order (ICMP echo: sport = identifier, dport = 0). Keying by
 * interface and direction means one pod's allowed flow never opens
 * another pod's direction, even with spoofed addresses. */
struct ct_key {
	__u32 ifindex;
	__be16 sport;
	__be16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 protocol;
	__u8 family;
	__u8 direction; /* the direction the flow started in */
	__u8 pad;
};

struct ct_value {
	__u64 created_ns;   /* bpf_ktime_get_coarse_ns: CLOCK_MONOTONIC, tick resolution */
	__u64 last_seen_ns; /* same clock; refreshed at most once a second */
	__u32 revision;     /* the endpoint revision it was last judged at */
	__u32 flags;        /* ct_flags */
	__u32 rule_id;
	/* The interface whose share the entry counts in (ct_endpoint_used):
	 * its own, or for a flow into it from another local pod, that pod's,
	 * so that one pod opening flows to another fills only its own share.
	 * 0 (entries of older programs): ct_key.ifindex. */
	__u32 share_ifindex;
};

/* fragments: the ports of a fragmented datagram, recorded from its first
 * fragment so that later fragments (which carry no L4 header) are judged
 * as the same flow. id is the IPv4 identification or IPv6 fragment id. */
struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 protocol;
	__u8 family;
	__u8 pad[2];
};

struct frag_value {
	__be16 sport;
	__be16 dport;
};

/* events: ring buffer records. Ports in host byte order. */
struct event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u32 ifindex;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 protocol;
	__u8 family;
	__u8 direction; /* direction */
	__u8 verdict;   /* event_verdict */
	__u32 reason;   /* reason */
	__u32 flags;    /* event_flags */
	__u8 service_addr[16];
	__u16 service_port;
	__u8 pad[6];
};

/* event_budget: per-CPU token bucket for ALLOWED_NEW events. */
struct token_bucket {
	__u64 credit_ns;
	__u64 last_ns;
};

/* endpoint_event_budget: per endpoint interface and CPU, the token bucket
 * of drop and audit events, and how many of them were not sent (over the
 * budget, or the ring buffer full). lost only grows; Go reports the
 * difference between two reads. */
struct event_bucket {
	struct token_bucket tokens;
	__u64 lost;
};

/* Never loaded: names every enum so that its type (and so its values)
 * reaches BTF, where bpf2go can turn it into Go constants. */
struct abi_enums {
	enum identity identity;
	enum family family;
	enum direction direction;
	enum endpoint_flags endpoint_flags;
	enum policy_verdict policy_verdict;
	enum ct_flags ct_flags;
	enum event_verdict event_verdict;
	enum event_flags event_flags;
	enum reason reason;
	enum counter counter;
};
