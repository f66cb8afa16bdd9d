/* Every map the programs share with Go. Sizes are defaults: Go may change
 * max_entries in the CollectionSpec before loading (see spec.go). */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 20);
	__type(key, struct ip_key);
	__type(value, struct identity_value);
} ip_identity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, __u32);
	__type(value, struct endpoint_value);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
} policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 16);
	__type(key, struct policy_range_key);
	__type(value, struct policy_value);
} policy_ranges SEC(".maps");

/* A plain hash, not an LRU: an LRU makes room by evicting the least
 * recently used entry of any pod, so one pod opening flows fast would
 * push out another's idle established connections, whose replies are
 * then dropped. Here a full table refuses new flows instead, and each
 * endpoint's share is bounded (ct_endpoint_limit), so one pod can fill
 * only its own share. The Go collector removes idle entries. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
} conntrack SEC(".maps");

/* Each endpoint's share of conntrack in use is ct_endpoint_used minus
 * ct_endpoint_collected, keyed by interface index. The programs add one
 * per entry they insert and take one per entry they delete
 * (atomically); the Go collector adds to collected what it deletes. Two
 * maps so that each value has one kind of writer: Go cannot add
 * atomically to a value the programs also change. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, __u32);
	__type(value, __u64);
} ct_endpoint_used SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, __u32);
	__type(value, __u64);
} ct_endpoint_collected SEC(".maps");

/* Short-lived: an entry matters only while a datagram is in flight. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 13);
	__type(key, struct frag_key);
	__type(value, struct frag_value);
} fragments SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 256);
	__type(key, struct ip_key);
	__type(value, struct service_value);
} service_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 15);
	__type(key, struct addr_key);
	__type(value, struct endpoint_ip_value);
} endpoint_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 12);
	__type(key, struct source_cidr_key);
	__type(value, struct source_cidr_value);
} source_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct service_origin_key);
	__type(value, struct service_origin_value);
} service_origin SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 21);
	__type(value, struct event);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct token_bucket);
} event_budget SEC(".maps");

/* Drop and audit events by endpoint interface: an LRU at least as large
 * as endpoints, so only buckets of interfaces long gone are evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, __u32);
	__type(value, struct event_bucket);
} endpoint_event_budget SEC(".maps");

/* Tunables, set by Go in the CollectionSpec before loading. */

/* OR-ed into skb->mark on egress deferred to a post-DNAT hook. Bit 27 sits
 * outside kube-proxy's 0x4000/0x8000 and Cilium's 0x0f00/0xf000. */
volatile const __u32 defer_mark = 0x08000000;

/* ALLOWED_NEW events: at most one per interval per CPU, bursts up to
 * burst events. interval 0 disables them. */
volatile const __u64 new_flow_event_interval_ns = 10 * 1000 * 1000;
volatile const __u64 new_flow_event_burst = 32;

/* Drop and audit events: at most one per interval per endpoint and CPU,
 * bursts up to burst events; the rest are counted in the endpoint's
 * bucket (lost). So a pod flooding refused packets spends only its own
 * budget, and another pod's denials are still reported. */
volatile const __u64 drop_event_interval_ns = 10 * 1000 * 1000;
volatile const __u64 drop_event_burst = 64;

/* The conntrack entries one endpoint may hold; a flow that needs
 * tracking beyond that is refused. Go sets it (default: an eighth of the
 * table). */
volatile const __u64 ct_endpoint_limit = (1 << 18) / 8;
