// SPDX-License-Identifier: GPL-2.0
//
// platd's port guard in the kernel: a socket filter on the netlink socket
// that conntrack's new and destroyed entries are reported to. It counts
// the sessions that platd's SNAT made, per destination (address, protocol,
// port), in a hash map, and lets into the socket only the events at which
// a destination reaches the limit (and is not refused yet) or falls below
// the resume mark (and is refused): platd then puts it into its nftables
// set ports_full or takes it out. Every other event ends here, so platd
// reads a few messages where a busy exit has tens of thousands a second
// (each cost it a read, a parse and a wake-up: bench-plat).
//
// A ctnetlink event starts with the original tuple at fixed offsets, as
// ctnetlink_fill_info and ctnetlink_conntrack_event have written it since
// Linux 2.6 (checked below, header by header; an event laid out otherwise
// is counted as unparsed and let through). The reply tuple follows the
// original's nest.
//
// Built for both byte orders by `make bpf` and committed, like the fast
// path: no BTF, no loops, no helper newer than Linux 5.15. The maps are
// made by the Go loader (ctguard.go) with its sizes; "maps" names them.

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#define AF_INET 2 // (sys/socket.h is libc's, not for a BPF target)

#define SEC(n) __attribute__((section(n), used))

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;

struct guard_cfg {
	__u32 net;  // the client pool, network byte order
	__u32 mask; // its mask
	__s32 limit;
	__s32 resume;
};

// A destination: what one WAN port serves once at a time. ICMP's is
// port 0 (its echo identifier is the NATed "port").
struct dest {
	__u8 addr[4];
	__u8 proto;
	__u8 pad;
	__u16 port; // network byte order
};

enum {
	G_UNPARSED, // an event laid out unlike the kernel's (let through)
	G_MAP_FULL, // a new destination found no room in guard_counts
	G_NUM,
};

struct map_def {
	__u32 type, key_size, value_size, max_entries, flags;
};
SEC("maps") struct map_def guard_cfg = {BPF_MAP_TYPE_ARRAY, 4, sizeof(struct guard_cfg), 1, 0};
// sessions per destination (a __s32); a destination at 0 is deleted
SEC("maps") struct map_def guard_counts = {BPF_MAP_TYPE_HASH, sizeof(struct dest), 4, 65536, BPF_F_NO_PREALLOC};
// the destinations platd refuses (it writes them; the program reads)
SEC("maps") struct map_def guard_full = {BPF_MAP_TYPE_HASH, sizeof(struct dest), 1, 4096, BPF_F_NO_PREALLOC};
SEC("maps") struct map_def guard_stats = {BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, G_NUM, 0};

static inline __attribute__((always_inline)) void stat(__u32 k)
{
	__u64 *c = bpf_map_lookup_elem(&guard_stats, &k);
	if (c)
		*c += 1;
}

// an attribute header at o of h: its type (without the nested and
// byte-order flags) and length
#define NLA_LEN(h, o) (*(__u16 *)&(h)[o])
#define NLA_IS(h, o, t) ((*(__u16 *)&(h)[(o) + 2] & NLA_TYPE_MASK) == (t))

// The original tuple at 20 (after the nlmsghdr and the nfgenmsg):
//   20 CTA_TUPLE_ORIG { 24 CTA_TUPLE_IP { 28 CTA_IP_V4_SRC 32 src, 36 CTA_IP_V4_DST 40 dst },
//                       44 CTA_TUPLE_PROTO { 48 CTA_PROTO_NUM 52 proto, 56 (source port or
//                          ICMP id), 64 CTA_PROTO_DST_PORT 68 port (ICMP: its type) } ... }
#define HEAD 72
#define ORIG 20

SEC("socket") int port_guard(struct __sk_buff *skb)
{
	__u8 h[HEAD] __attribute__((aligned(4)));
	if (bpf_skb_load_bytes(skb, 0, h, HEAD) < 0)
		return 0;
	struct nlmsghdr *nh = (struct nlmsghdr *)h;
	struct nfgenmsg *g = (struct nfgenmsg *)&h[NLMSG_HDRLEN];
	if (g->nfgen_family != AF_INET)
		return 0;
	__s32 d;
	if ((nh->nlmsg_type & 0xff) == IPCTNL_MSG_CT_NEW && (nh->nlmsg_flags & NLM_F_CREATE))
		d = 1;
	else if ((nh->nlmsg_type & 0xff) == IPCTNL_MSG_CT_DELETE)
		d = -1;
	else
		return 0;
	if (!NLA_IS(h, ORIG, CTA_TUPLE_ORIG) || !NLA_IS(h, 24, CTA_TUPLE_IP) || NLA_LEN(h, 24) != 20 ||
	    !NLA_IS(h, 28, CTA_IP_V4_SRC) || NLA_LEN(h, 28) != 8 || !NLA_IS(h, 36, CTA_IP_V4_DST) ||
	    NLA_LEN(h, 36) != 8 || !NLA_IS(h, 44, CTA_TUPLE_PROTO) || !NLA_IS(h, 48, CTA_PROTO_NUM) ||
	    NLA_LEN(h, 48) != 5) {
		stat(G_UNPARSED);
		return skb->len;
	}
	__u32 k0 = 0;
	struct guard_cfg *c = bpf_map_lookup_elem(&guard_cfg, &k0);
	__u32 src = *(__u32 *)&h[32];
	if (!c || (src & c->mask) != c->net)
		return 0;
	struct dest k = {.proto = h[52]};
	__builtin_memcpy(k.addr, &h[40], 4);
	if (k.proto != IPPROTO_ICMP && NLA_IS(h, 64, CTA_PROTO_DST_PORT) && NLA_LEN(h, 64) == 6)
		k.port = *(__u16 *)&h[68];
	// Only what platd's SNAT made takes a WAN port: the reply goes to
	// another address than the client's own.
	__u32 reply = ORIG + ((NLA_LEN(h, ORIG) + 3) & ~3);
	__u8 r[8] __attribute__((aligned(4)));
	if (reply > 512 || bpf_skb_load_bytes(skb, reply + 16, r, 8) < 0)
		return 0;
	if (!NLA_IS(r, 0, CTA_IP_V4_DST) || NLA_LEN(r, 0) != 8) {
		stat(G_UNPARSED);
		return skb->len;
	}
	if (*(__u32 *)&r[4] == src)
		return 0;
	__s32 *n = bpf_map_lookup_elem(&guard_counts, &k);
	__s32 now;
	if (!n) {
		if (d < 0)
			return 0; // counted before platd counted (a recount mends)
		__s32 one = 1;
		if (bpf_map_update_elem(&guard_counts, &k, &one, BPF_NOEXIST) == 0) {
			now = 1;
			goto check;
		}
		n = bpf_map_lookup_elem(&guard_counts, &k);
		if (!n) {
			stat(G_MAP_FULL);
			return 0;
		}
	}
	__sync_fetch_and_add(n, d);
	now = *(volatile __s32 *)n;
	if (now <= 0)
		bpf_map_delete_elem(&guard_counts, &k);
check:;
	int full = bpf_map_lookup_elem(&guard_full, &k) != 0;
	if ((d > 0 && !full && now >= c->limit) || (d < 0 && full && now < c->resume))
		return skb->len;
	return 0;
}

char _license[] SEC("license") = "GPL";
