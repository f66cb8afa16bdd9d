/* Fragments: only the first fragment of a datagram carries its ports. It
 * leaves them here, keyed by addresses, protocol and fragment id, and the
 * later fragments take them back, so that every piece is judged as the
 * same flow. A later fragment whose first was never seen stays unjudgeable
 * (dropped where isolated). */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"
#include "maps.h"
#include "parse.h"

static __always_inline void frag_key_init(struct frag_key *k, const struct packet *p)
{
	__builtin_memcpy(k->saddr, p->flow.saddr, sizeof(k->saddr));
	__builtin_memcpy(k->daddr, p->flow.daddr, sizeof(k->daddr));
	k->id = p->frag_id;
	k->protocol = p->flow.protocol;
	k->family = p->flow.family;
	k->pad[0] = 0;
	k->pad[1] = 0;
}

static __always_inline void frag_remember(const struct packet *p)
{
	struct frag_key k;
	struct frag_value v = {
		.sport = p->flow.sport,
		.dport = p->flow.dport,
	};

	frag_key_init(&k, p);
	/* A failure only means the later fragments are judged unjudgeable. */
	bpf_map_update_elem(&fragments, &k, &v, BPF_ANY);
}

static __always_inline bool frag_recall(struct packet *p)
{
	struct frag_key k;
	struct frag_value *v;

	frag_key_init(&k, p);
	v = bpf_map_lookup_elem(&fragments, &k);
	if (!v)
		return false;
	p->flow.sport = v->sport;
	p->flow.dport = v->dport;
	return true;
}
