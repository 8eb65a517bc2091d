// SPDX-License-Identifier: GPL-2.0
//
// The fast path of clatd (and, in PLAT mode, of platd's stateless step
// before its SNAT: each client's IPv6 address to its own IPv4 address): a tc classifier at the egress of the
// daemon's TUN that translates the common packets (RFC 7915) in the kernel
// and hands them back to the same device's ingress, where the TUN path's
// packets arrive too: the kernel then routes, firewalls and forwards them
// as if the daemon had written them. clatd's UDP and ICMP echo go direct
// instead where no netfilter hook of the second pass needs them: out of
// the device the kernel's FIB names; and the same program at the clients'
// device's ingress sends the clients' ones before their IPv4 forwarding
// pass (early; docs/fastpath.md). Everything else (ICMP errors, fragments, options, extension
// headers, TCP SYNs for the MSS clamp, zero UDP checksums, packets too big,
// GSO packets, anything not between the client network and the PLAT) goes
// on to the TUN unchanged (TC_ACT_OK), counted by reason.
//
// Built for both byte orders by `make bpf` (clang -target bpfel/bpfeb) and
// committed; no BTF, no BPF-to-BPF calls, no helper newer than Linux 5.15,
// no loops (the MIPS interpreter before 5.16 runs it instruction by
// instruction). The maps are made by the Go loader (fastpath/load.go) with
// the sizes below; "maps" only names them for its relocations.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>

#define SEC(n) __attribute__((section(n), used))
#define INLINE static inline __attribute__((always_inline))

static long (*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_skb_store_bytes)(struct __sk_buff *, __u32, const void *, __u32, __u64) = (void *)9;
static long (*bpf_l4_csum_replace)(struct __sk_buff *, __u32, __u64, __u64, __u64) = (void *)11;
static long (*bpf_redirect)(__u32, __u64) = (void *)23;
static __u32 (*bpf_get_prandom_u32)(void) = (void *)7;
static long (*bpf_skb_change_proto)(struct __sk_buff *, __u16, __u64) = (void *)31;
static __s64 (*bpf_csum_diff)(const void *, __u32, const void *, __u32, __u32) = (void *)28;
static long (*bpf_fib_lookup)(void *, void *, int, __u32) = (void *)69;
static long (*bpf_redirect_neigh)(__u32, void *, int, __u64) = (void *)152;
static long (*bpf_skb_change_head)(struct __sk_buff *, __u32, __u64) = (void *)43;

#define htons(x) ((__u16)__builtin_bswap16(x))
#define htonl(x) ((__u32)__builtin_bswap32(x))
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#undef htons
#undef htonl
#define htons(x) ((__u16)(x))
#define htonl(x) ((__u32)(x))
#endif

// The configuration, one element at key 0 of a hash map (an update
// replaces it whole, so a packet never sees half of a new PLAT prefix).
struct cfg {
	__u8 clat[12]; // the CLAT /96
	__u8 plat[12]; // the PLAT /96 (RFC 6052 with a /96 only)
	__u32 net4;    // client network, network byte order
	__u32 mask4;   // its mask, network byte order
	__u16 mtu6;    // 4->6 with DF: at most this (the TUN path's MTU6)
	__u16 frag6;   // 4->6 without DF: at most this (the lowest IPv6 MTU)
	__u16 mtu4;    // 6->4: at most this
	__u8 has_plat; // 0: no PLAT prefix yet, everything to the TUN
	__u8 l3off;    // where the IP header starts: 0 on the TUN, 14 in a test run
	// 1: platd's stateless step. The roles turn round: the IPv4 side's
	// own addresses (the client pool, net4/mask4) are the destinations of
	// what goes 4->6 and the sources of what goes 6->4, each a client's
	// IPv6 address by the plat_client maps (platd fills them; a client
	// not in them yet goes to the TUN, which maps it). Destinations in the
	// deny map go to the TUN (which refuses them).
	__u8 plat_mode;
	// 1: UDP and ICMP echo that the kernel's FIB sends on out of another
	// device go there at once (bpf_redirect_neigh), not through the
	// stack's second pass; see out4to6 and out6to4.
	__u8 direct;
	// 1: the roamed map has entries: clients whose packets l3roamd
	// rewrites in netfilter (they roamed here) take the second pass.
	__u8 roamed;
	__u8 pad;
	// The TUN and the clients' device: at the clients' device's ingress
	// (early, with direct) the program sends UDP and echo that the FIB
	// routes to the TUN straight to the mesh device, before the stack's
	// IPv4 forwarding pass; everything else goes on unchanged, to the TUN
	// and this program at its egress.
	__u32 tun_ifindex;
	__u32 early_ifindex;
};

// An IPv4 prefix of the deny map (an LPM trie).
struct deny_key {
	__u32 len;
	__u32 addr;
};

// Counters, one per-CPU slot each: what was translated, and why the rest
// went to the TUN.
enum {
	C_4TO6,
	C_6TO4,
	C_PASS_GSO,       // a GSO super-packet
	C_PASS_HEADER,    // IPv4 options, fragments, extension headers, bad lengths
	C_PASS_ADDRESS,   // not client network <-> PLAT, no PLAT, multicast
	C_PASS_PROTOCOL,  // not TCP, UDP, ICMP echo
	C_PASS_SYN,       // a TCP SYN: the MSS clamp is the TUN path's
	C_PASS_CHECKSUM,  // zero UDP checksum, bad IPv4 header checksum
	C_PASS_SIZE,      // too big for the other side (fragment or ICMP error)
	C_PASS_HOPLIMIT,  // TTL or hop limit runs out here
	C_DIRECT_4TO6,    // of C_4TO6: sent on at once (direct)
	C_DIRECT_6TO4,    // of C_6TO4: sent on at once
	C_PASS_CLIENT,    // PLAT mode: a client without an IPv4 address yet
	C_NUM,
};

struct map_def {
	__u32 type, key_size, value_size, max_entries, flags;
};
SEC("maps") struct map_def clat_cfg = {BPF_MAP_TYPE_HASH, 4, sizeof(struct cfg), 1, 0};
SEC("maps") struct map_def clat_counters = {BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, C_NUM, 0};
SEC("maps") struct map_def clat_deny = {BPF_MAP_TYPE_LPM_TRIE, sizeof(struct deny_key), 1, 64, BPF_F_NO_PREALLOC};
SEC("maps") struct map_def clat_roamed = {BPF_MAP_TYPE_HASH, 4, 1, 1024, BPF_F_NO_PREALLOC};
// PLAT mode: a client's IPv4 address -> its IPv6 address, and back.
SEC("maps") struct map_def plat_client4 = {BPF_MAP_TYPE_HASH, 4, 16, 65536, BPF_F_NO_PREALLOC};
SEC("maps") struct map_def plat_client6 = {BPF_MAP_TYPE_HASH, 16, 4, 65536, BPF_F_NO_PREALLOC};

INLINE void count(int what)
{
	__u32 k = what;
	__u64 *c = (__u64 *)bpf_map_lookup_elem(&clat_counters, &k);
	if (c)
		*c += 1;
}

INLINE int pass(int reason)
{
	count(reason);
	return TC_ACT_OK;
}

// done hands a translated packet on: to the device found by the FIB
// lookup (direct, nh set) or to this device's ingress.
INLINE int done(struct __sk_buff *skb, __u32 off, int what, int direct, __u32 oif, struct bpf_redir_neigh *nh)
{
	count(what);
	if (direct) {
		count(what + C_DIRECT_4TO6 - C_4TO6);
		// The kernel's neighbour redirect takes an Ethernet header off
		// first (and drops a packet without one): a TUN's packets get a
		// blank one, which the next device's own replaces.
		if (!off && bpf_skb_change_head(skb, ETH_HLEN, 0))
			return TC_ACT_SHOT;
		return bpf_redirect_neigh(oif, nh, sizeof(*nh), 0);
	}
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

// fold makes bpf_csum_diff's 32-bit sum a 16-bit one.
INLINE __u16 fold(__s64 sum)
{
	__u32 s = (__u32)sum;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return s;
}

// is_proto reports whether the byte at off is proto.
INLINE int is_proto(struct __sk_buff *skb, __u32 off, __u8 proto)
{
	__u8 *p = (__u8 *)(long)skb->data + off;
	if ((void *)(p + 1) > (void *)(long)skb->data_end)
		return 0;
	return *p == proto;
}

// The IP headers as the program reads them in the packet: 2-byte
// aligned. A MIPS kernel (no efficient unaligned access) has the verifier
// refuse a packet access it cannot prove aligned, assuming the IP header
// at 2 bytes past a word (NET_IP_ALIGN): so the program reads the
// packet 2 bytes at a time at most, at even offsets from the IP header
// (which starts at 0 or at 14, ETH_HLEN), never a 32-bit word.
#define PKT __attribute__((packed, aligned(2)))

struct iphdr4 {
	__u8 vihl, tos;
	__u16 tot, id, frag;
	__u8 ttl, proto;
	__u16 check;
	__u32 src, dst;
} PKT;

struct iphdr6 {
	__u32 vtf;
	__u16 plen;
	__u8 nh, hop;
	__u32 src[4], dst[4];
} PKT;

// The ICMPv6 pseudo-header's sum, as 40 bytes for bpf_csum_diff.
struct pseudo6 {
	__u32 src[4], dst[4];
	__u32 len;
	__u32 nh;
};

// check_l4 is what both directions ask of the transport header at l4
// (which starts at l4off in the packet): TCP but a SYN, UDP with a
// checksum, an ICMP echo (icmp, its request and reply types). It returns
// the reason to leave the packet to the TUN, or -1 and where the checksum
// is and the TCP header's length.
INLINE int check_l4(__u8 *l4, void *end, __u8 proto, __u8 icmp, __u8 req, __u8 rep, __u32 l4off,
		    __u32 *csumoff, __u32 *doff)
{
	*doff = 0;
	if (proto == IPPROTO_TCP) {
		if (l4 + 20 > (__u8 *)end)
			return C_PASS_HEADER;
		if (l4[13] & 0x02)
			return C_PASS_SYN;
		*csumoff = l4off + 16;
		*doff = (l4[12] >> 4) * 4;
		return -1;
	}
	if (proto == IPPROTO_UDP) {
		if (l4[6] == 0 && l4[7] == 0)
			return C_PASS_CHECKSUM;
		*csumoff = l4off + 6;
		return -1;
	}
	if (proto == icmp) {
		if ((l4[0] != req && l4[0] != rep) || l4[1] != 0)
			return C_PASS_PROTOCOL;
		*csumoff = l4off + 2;
		return -1;
	}
	// (in IPv6 also an extension header: all of them are the TUN's)
	return icmp == IPPROTO_ICMP ? C_PASS_PROTOCOL : C_PASS_HEADER;
}

#define IPPROTO_ICMPV6_ 58

// Why only UDP and ICMP echo go direct: conntrack follows a TCP
// connection's windows in both directions, and a direct packet passes no
// netfilter hook of its second family; the other direction's packets do
// (they arrive from the mesh or the client). TCP takes the second pass,
// where conntrack sees both directions as on the TUN path.
#define AF_INET_ 2
#define AF_INET6_ 10

// route6 asks the kernel's FIB where a translated IPv6 packet goes from
// this device (what the stack's second pass would ask, policy rules
// included) and reports whether it may go there at once: out of another
// device, to a gateway (a mesh neighbour; a route without one is the
// exit's own PLAT, whose gates and SNAT are netfilter's), within its MTU.
INLINE int route6(struct __sk_buff *skb, struct iphdr6 *h6, __u8 *l4, __u32 *oif, struct bpf_redir_neigh *nh)
{
	struct bpf_fib_lookup f = {};
	f.family = AF_INET6_;
	f.l4_protocol = h6->nh;
	if (h6->nh == IPPROTO_UDP) {
		f.sport = *(__u16 *)l4;
		f.dport = *(__u16 *)(l4 + 2);
	}
	f.tot_len = 40 + htons(h6->plen);
	f.ifindex = skb->ifindex;
	f.flowinfo = h6->vtf & htonl(0x0fffffff);
	__builtin_memcpy(f.ipv6_src, h6->src, 16);
	__builtin_memcpy(f.ipv6_dst, h6->dst, 16);
	long rc = bpf_fib_lookup(skb, &f, sizeof(f), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return 0;
	if (f.ifindex == skb->ifindex || (f.ipv6_dst[0] == h6->dst[0] && f.ipv6_dst[1] == h6->dst[1] &&
					  f.ipv6_dst[2] == h6->dst[2] && f.ipv6_dst[3] == h6->dst[3]))
		return 0;
	*oif = f.ifindex;
	nh->nh_family = AF_INET6_;
	__builtin_memcpy(nh->ipv6_nh, f.ipv6_dst, 16);
	return 1;
}

// route4 is route6 for a translated IPv4 packet: to a client, out of
// another device (the client network's, a route without a gateway).
INLINE int route4(struct __sk_buff *skb, struct iphdr4 *h4, __u8 *l4, __u32 *oif, struct bpf_redir_neigh *nh)
{
	struct bpf_fib_lookup f = {};
	f.family = AF_INET_;
	f.l4_protocol = h4->proto;
	if (h4->proto == IPPROTO_UDP) {
		f.sport = *(__u16 *)l4;
		f.dport = *(__u16 *)(l4 + 2);
	}
	f.tot_len = htons(h4->tot);
	f.ifindex = skb->ifindex;
	f.tos = h4->tos;
	f.ipv4_src = h4->src;
	f.ipv4_dst = h4->dst;
	long rc = bpf_fib_lookup(skb, &f, sizeof(f), 0);
	if ((rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) || f.ifindex == skb->ifindex)
		return 0;
	*oif = f.ifindex;
	nh->nh_family = AF_INET_;
	nh->ipv4_nh = f.ipv4_dst;
	return 1;
}

// routed4 reports whether the kernel's FIB would forward an IPv4 packet
// arriving on the clients' device to the TUN (what the stack's IPv4 pass
// would do with it), within the TUN's MTU.
INLINE int routed4(struct __sk_buff *skb, struct cfg *c, struct iphdr4 *ip)
{
	struct bpf_fib_lookup f = {};
	f.family = AF_INET_;
	f.l4_protocol = ip->proto;
	f.tot_len = htons(ip->tot);
	f.ifindex = skb->ifindex;
	f.tos = ip->tos;
	f.ipv4_src = ip->src;
	f.ipv4_dst = ip->dst;
	long rc = bpf_fib_lookup(skb, &f, sizeof(f), 0);
	return (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) && f.ifindex == c->tun_ifindex;
}

// PASS leaves a packet alone: to the TUN, counted (at the TUN's egress),
// or (early) on through the stack, uncounted: the TUN's egress sees it.
#define PASS(why) return early ? TC_ACT_OK : pass(why)

// RFC 7915 section 4: IPv4 to IPv6. early: at the clients' device's
// ingress, where the packet has not been forwarded yet (its TTL is the
// client's, and the stack's hop is taken here too).
INLINE int xlat4to6(struct __sk_buff *skb, struct cfg *c, __u32 off, int early)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr4 *ip = data + off;
	if ((void *)(ip + 1) + 8 > end) // the header and what the L4 checks read
		PASS(C_PASS_HEADER);
	if (ip->vihl != 0x45 || (ip->frag & htons(0x3fff)) || htons(ip->tot) != skb->len - off)
		PASS(C_PASS_HEADER);
	if (fold(bpf_csum_diff(0, 0, (void *)ip, 20, 0)) != 0xffff)
		PASS(C_PASS_CHECKSUM);
	__u32 dst = ip->dst, src = ip->src;
	// own: the client network's address (platd: a client's), far: the other
	__u32 own = c->plat_mode ? dst : src, far = c->plat_mode ? src : dst;
	__u8 f0 = ((__u8 *)&far)[0];
	// (0/8, 127/8, multicast and broadcast are not translated: RFC 6052
	// section 3.1, RFC 7915 section 1.2)
	if (!c->has_plat || (own & c->mask4) != c->net4 || (far & c->mask4) == c->net4 ||
	    f0 == 0 || f0 == 127 || f0 >= 224)
		PASS(C_PASS_ADDRESS);
	// (early: the forwarding hop, the translator's and the one direct
	// sending takes must all leave one)
	if (ip->ttl <= 1 + 2 * early)
		PASS(C_PASS_HOPLIMIT);
	if (early && !routed4(skb, c, ip))
		return TC_ACT_OK;
	__u32 tot = htons(ip->tot), plen = tot - 20;
	// (a GSO packet's segments are the kernel's to fit, as on the TUN path)
	__u32 limit = (ip->frag & htons(0x4000)) ? c->mtu6 : c->frag6;
	if (!skb->gso_size && 40 + plen > limit)
		PASS(C_PASS_SIZE);
	__u8 proto = ip->proto, tos = ip->tos, hop = ip->ttl - 1 - early;
	__u8 *l4 = (__u8 *)(ip + 1);
	__u32 csumoff, doff;
	int why = check_l4(l4, end, proto, IPPROTO_ICMP, 8, 0, off + 20, &csumoff, &doff);
	if (why >= 0)
		PASS(why);

	struct iphdr6 h6;
	if (c->plat_mode) {
		// (the client's IPv6 address, any of the mesh's)
		void *cl6 = (void *)bpf_map_lookup_elem(&plat_client4, &dst);
		if (!cl6)
			PASS(C_PASS_CLIENT);
		__builtin_memcpy(h6.dst, cl6, 16);
		__builtin_memcpy(h6.src, c->plat, 12);
	} else {
		__builtin_memcpy(h6.src, c->clat, 12);
		__builtin_memcpy(h6.dst, c->plat, 12);
		h6.dst[3] = dst;
	}
	h6.src[3] = src;
	h6.vtf = htonl(0x60000000 | (__u32)tos << 20);
	h6.plen = htons(plen);
	h6.nh = proto == IPPROTO_ICMP ? IPPROTO_ICMPV6_ : proto;
	h6.hop = hop;
	// (direct: the second pass's hop is taken here)
	__u32 oif = 0;
	struct bpf_redir_neigh nh;
	int direct = c->direct && proto != IPPROTO_TCP && hop > 1 &&
		     !(c->roamed && bpf_map_lookup_elem(&clat_roamed, &src)) && route6(skb, &h6, l4, &oif, &nh);
	h6.hop -= direct;
	if (early && !direct)
		return TC_ACT_OK;

	if (proto == IPPROTO_ICMP) {
		// Echo: the type changes, and ICMPv6 sums a pseudo-header that
		// ICMPv4 does not have (section 4.2).
		__u8 type = l4[0] == 8 ? 128 : 129;
		__u16 oldw = htons((__u16)l4[0] << 8), neww = htons((__u16)type << 8);
		struct pseudo6 ph;
		__builtin_memcpy(ph.src, h6.src, 16);
		__builtin_memcpy(ph.dst, h6.dst, 16);
		ph.len = htonl(plen);
		ph.nh = htonl(IPPROTO_ICMPV6_);
		__s64 diff = bpf_csum_diff(0, 0, (void *)&ph, sizeof(ph), 0);
		if (bpf_l4_csum_replace(skb, csumoff, oldw, neww, 2) ||
		    bpf_l4_csum_replace(skb, csumoff, 0, diff, BPF_F_PSEUDO_HDR) ||
		    bpf_skb_store_bytes(skb, off + 20, &type, 1, 0))
			return TC_ACT_SHOT;
	} else {
		// TCP and UDP: only the pseudo-header's addresses change (4.5).
		__s64 diff = bpf_csum_diff(&ip->src, 8, (void *)h6.src, 32, 0);
		if (bpf_l4_csum_replace(skb, csumoff, 0, diff,
					BPF_F_PSEUDO_HDR | (proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
			return TC_ACT_SHOT;
	}
	if (bpf_skb_change_proto(skb, htons(ETH_P_IPV6), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, off, &h6, sizeof(h6), 0))
		return TC_ACT_SHOT;
	return done(skb, off, C_4TO6, direct, oif, &nh);
}

// RFC 7915 section 5: IPv6 to IPv4.
INLINE int xlat6to4(struct __sk_buff *skb, struct cfg *c, __u32 off)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr6 *ip = data + off;
	if ((void *)(ip + 1) + 8 > end)
		return pass(C_PASS_HEADER);
	__u32 plen = htons(ip->plen);
	if ((((__u8 *)ip)[0] >> 4) != 6 || plen + 40 != skb->len - off)
		return pass(C_PASS_HEADER);
	__u8 *d = (__u8 *)ip->dst;
	if (!c->has_plat || d[0] == 0xff)
		return pass(C_PASS_ADDRESS);
	// the client's CLAT::a.b.c.d from PLAT::w.x.y.z (platd: from a
	// client's address to PLAT::w.x.y.z); the addresses on the stack,
	// where they are words
	__u32 src6[4], dst6[4];
	__builtin_memcpy(src6, ip->src, 16);
	__builtin_memcpy(dst6, ip->dst, 16);
	__u32 *cl = (__u32 *)c->clat, *pl = (__u32 *)c->plat;
	__u32 *far = c->plat_mode ? dst6 : src6;
	if (far[0] != pl[0] || far[1] != pl[1] || far[2] != pl[2] || (far[3] & c->mask4) == c->net4)
		return pass(C_PASS_ADDRESS);
	if (!c->plat_mode &&
	    (dst6[0] != cl[0] || dst6[1] != cl[1] || dst6[2] != cl[2] || (dst6[3] & c->mask4) != c->net4))
		return pass(C_PASS_ADDRESS);
	__u32 far4 = far[3];
	__u8 f0 = ((__u8 *)&far4)[0];
	if (f0 == 0 || f0 == 127 || f0 >= 224)
		return pass(C_PASS_ADDRESS);
	__u32 src4 = src6[3];
	if (c->plat_mode) {
		struct deny_key k = {32, far4};
		if (bpf_map_lookup_elem(&clat_deny, &k))
			return pass(C_PASS_ADDRESS);
		__u32 *a = (__u32 *)bpf_map_lookup_elem(&plat_client6, src6);
		if (!a)
			return pass(C_PASS_CLIENT);
		src4 = *a;
	}
	if (ip->hop <= 1)
		return pass(C_PASS_HOPLIMIT);
	if (!skb->gso_size && 20 + plen > c->mtu4)
		return pass(C_PASS_SIZE);
	__u8 proto = ip->nh;
	__u8 *l4 = (__u8 *)(ip + 1);
	__u32 csumoff, doff;
	int why = check_l4(l4, end, proto, IPPROTO_ICMPV6_, 128, 129, off + 40, &csumoff, &doff);
	if (why >= 0)
		return pass(why);

	__u32 tc = htonl(ip->vtf);
	struct iphdr4 h4;
	h4.vihl = 0x45;
	h4.tos = tc >> 20;
	h4.tot = htons(20 + plen);
	// Section 5.1: Identification from a generator, DF above 1260 bytes.
	h4.id = bpf_get_prandom_u32();
	// (for a GSO packet, the size of its segments)
	__u32 size = 20 + plen;
	if (skb->gso_size)
		size = 20 + doff + skb->gso_size;
	h4.frag = size > 1260 ? htons(0x4000) : 0;
	h4.ttl = ip->hop - 1;
	h4.proto = proto == IPPROTO_ICMPV6_ ? IPPROTO_ICMP : proto;
	h4.check = 0;
	h4.src = src4;
	h4.dst = dst6[3];
	__u32 oif = 0;
	struct bpf_redir_neigh nh;
	int direct = c->direct && proto != IPPROTO_TCP && h4.ttl > 1 && route4(skb, &h4, l4, &oif, &nh);
	h4.ttl -= direct;
	h4.check = ~fold(bpf_csum_diff(0, 0, (void *)&h4, 20, 0));

	if (proto == IPPROTO_ICMPV6_) {
		__u8 type = l4[0] == 128 ? 8 : 0;
		__u16 oldw = htons((__u16)l4[0] << 8), neww = htons((__u16)type << 8);
		struct pseudo6 ph;
		__builtin_memcpy(ph.src, src6, 16);
		__builtin_memcpy(ph.dst, dst6, 16);
		ph.len = htonl(plen);
		ph.nh = htonl(IPPROTO_ICMPV6_);
		__s64 diff = bpf_csum_diff((void *)&ph, sizeof(ph), 0, 0, 0);
		if (bpf_l4_csum_replace(skb, csumoff, oldw, neww, 2) ||
		    bpf_l4_csum_replace(skb, csumoff, 0, diff, BPF_F_PSEUDO_HDR) ||
		    bpf_skb_store_bytes(skb, off + 40, &type, 1, 0))
			return TC_ACT_SHOT;
	} else {
		__s64 diff = bpf_csum_diff((void *)ip->src, 32, &h4.src, 8, 0);
		if (bpf_l4_csum_replace(skb, csumoff, 0, diff,
					BPF_F_PSEUDO_HDR | (proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0)))
			return TC_ACT_SHOT;
	}
	if (bpf_skb_change_proto(skb, htons(ETH_P_IP), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, off, &h4, sizeof(h4), 0))
		return TC_ACT_SHOT;
	return done(skb, off, C_6TO4, direct, oif, &nh);
}

SEC("tc") int clat_egress(struct __sk_buff *skb)
{
	__u32 k = 0;
	struct cfg *c = (struct cfg *)bpf_map_lookup_elem(&clat_cfg, &k);
	if (!c)
		return TC_ACT_OK;
	// GSO super-packets: TCP only (bpf_skb_change_proto turns TCPv4 GSO
	// into TCPv6 and back; UDP's kinds it does not know)
	if (c->early_ifindex && skb->ifindex == c->early_ifindex) {
		// (an Ethernet header first; frames for this host only)
		if (skb->protocol != htons(ETH_P_IP) || skb->gso_size || skb->pkt_type != 0 || !c->direct ||
		    c->plat_mode)
			return TC_ACT_OK;
		return xlat4to6(skb, c, ETH_HLEN, 1);
	}
	__u32 off = c->l3off & 0xe; // (0 or 14: known to be even)
	if (skb->protocol == htons(ETH_P_IP)) {
		if (skb->gso_size && !is_proto(skb, off + 9, IPPROTO_TCP))
			return pass(C_PASS_GSO);
		return xlat4to6(skb, c, off, 0);
	}
	if (skb->protocol == htons(ETH_P_IPV6)) {
		if (skb->gso_size && !is_proto(skb, off + 6, IPPROTO_TCP))
			return pass(C_PASS_GSO);
		return xlat6to4(skb, c, off);
	}
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
