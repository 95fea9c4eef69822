// SPDX-License-Identifier: Apache-2.0
/*
 * fullnat UOA receiver for real servers, as eBPF: the UDP half of the
 * receiver. Not compiled on its own: toa.bpf.c includes it, so both halves
 * are one object with one set of pins and share the trusted-LB tries
 * (toa_trust4/6, trusted4()).
 *
 * A FULLNAT load balancer sends a UDP flow's first datagrams (DPVS: 3) with
 * a UOA, "UDP option of address", carrying the client's address and port,
 * byte for byte as DPVS (include/uoa.h) and its module kmod/uoa read them:
 *
 *   ipo  an IPv4 option: code 31, len 8, port(2), IPv4(4)
 *   opp  IP protocol 248 (IPv4, or the IPv6 next header) followed by
 *        { version:4 (1: IPv4 client, 2: IPv6), rsvd:4, protocol = 17,
 *          be16 length of this header and its options }, the options (the
 *        UOA, len 8 or 20), then the untouched UDP header and payload.
 *
 * Programs:
 *
 *   uoa_ingress     tc (clsact) ingress, Ethernet devices, and
 *   uoa_ingress_l3  the same for devices without a link header (tun,
 *                   wireguard): a UOA from a trusted LB is recorded in
 *                   uoa_map (LIP, LIP port, RS port) -> client and in
 *                   uoa_rev (client, RS port) -> (LIP, LIP port). An opp
 *                   shim is removed (bpf_skb_adjust_room) and the protocol
 *                   set back to 17 with the IPv4 checksum / IPv6 payload
 *                   length fixed, so the kernel delivers ordinary UDP: the
 *                   kernel itself drops protocol 248 (Ip: InUnknownProtos).
 *                   A datagram that carries only the UOA (UDP length 8, the
 *                   LB's "standalone" UOA sent ahead of a datagram with no
 *                   room for it) is recorded and dropped: DPVS's module lets
 *                   it through to an application that knows to skip it, an
 *                   unmodified server would read an empty datagram "from
 *                   the client" and might answer it.
 *   uoa_recvmsg4/6  cgroup/recvmsg: a datagram from LIP:lport with a mapping
 *                   for the socket's local port is reported as coming from
 *                   the client (recvfrom, recvmsg).
 *   uoa_sendmsg4/6  cgroup/sendmsg: a datagram addressed to a client with a
 *                   mapping for the socket's local port goes to LIP:lport
 *                   instead, so the reply passes through the LB.
 *   uoa_connect4/6  cgroup/connect on UDP sockets: the same for a socket
 *                   connected to the client (its later send() has no
 *                   address for sendmsg to see). getpeername() on it then
 *                   reports the LIP.
 *
 * What cannot be expressed is left as the LIP and counted (unexpressible):
 * an IPv6 client behind an IPv4 LIP (NAT64) or an IPv4 client behind an
 * IPv6 LIP. recvmsg4 cannot return an IPv6 address; on a dual-stack AF_INET6
 * socket recvmsg6 could, but the reply could not be turned back: the kernel
 * refuses a sendmsg6 rewrite to an IPv4-mapped address (udpv6_sendmsg,
 * -ENOTSUPP), so the server would answer the client directly.
 *
 * The maps are LRU hashes of UOA_MAP_MAX entries: bounded, the least
 * recently used mapping goes first. A mapping is keyed without the RS
 * address because recvmsg and sendmsg only see the socket's local port (its
 * address is 0.0.0.0 or :: on a wildcard socket); DPVS's module matches a
 * wildcard RS address the same way.
 *
 * Trusted LBs: only a UOA from an address in toa_trust4/6 is believed. An
 * untrusted ipo datagram passes untouched (its UOA ignored); an untrusted
 * opp datagram is dropped, as the kernel would drop it. Both are counted.
 * Fragments are left alone: the LB never puts a UOA into one.
 */

#define UOA_ETH_P_IP 0x0800
#define UOA_ETH_P_IPV6 0x86DD
#define UOA_TC_ACT_OK 0
#define UOA_TC_ACT_SHOT 2
#define UOA_ETH_HLEN 14
#define UOA_IPPROTO_UDP 17
#define UOA_IPPROTO_OPP 248
#define UOA_SOCK_DGRAM 2
#define IPOPT_UOA 31
#define UOA_LEN_V4 8
#define UOA_LEN_V6 20
#define OPP_HDR 4
#define OPP_VERSION_V4 1
#define OPP_VERSION_V6 2
#define IPV4_HDR 20
#define IPV6_HDR 40
#define UDP_HDR 8
#define IP_OPT_MAX 40
#define UOA_MAP_MAX 65536 /* per map; keep in sync with UOA_MAP_MAX in src/realserver/ebpf.ts */

/* Indexes into uoa_stats. Keep in sync with UOA_STAT_NAMES in src/realserver/ebpf.ts. */
enum {
	UOA_STAT_IPO = 0,       /* datagrams with an ipo UOA from a trusted LB */
	UOA_STAT_OPP,           /* opp datagrams (protocol 248) from a trusted LB */
	UOA_STAT_OPP_STRIPPED,  /* opp shims removed: delivered as UDP */
	UOA_STAT_EMPTY_DROPPED, /* UOA-only datagrams (UDP length 8): recorded, then dropped */
	UOA_STAT_UNTRUSTED,     /* a UOA from a source outside toa_trust4/6 (ipo ignored, opp dropped) */
	UOA_STAT_MALFORMED,     /* bad opp header / option block / UOA, truncated UDP header */
	UOA_STAT_RECORDED,      /* mappings written */
	UOA_STAT_RECV_REWRITES, /* recvmsg sources rewritten to the client */
	UOA_STAT_SEND_REDIRECTS,/* sendmsg/connect destinations turned from the client to LIP:lport */
	UOA_STAT_UNEXPRESSIBLE, /* a mapping whose client family cannot be shown here (left as the LIP) */
	UOA_STAT_ERRORS,        /* a map update or the shim's removal failed */
	UOA_STAT_MAX,
};

/* Ports in network byte order; IPv4 addresses in the first 4 bytes, the rest zero. */
struct uoa_key {
	__u8 lip[16];
	__u16 lport;
	__u16 rsport;
	__u8 family; /* 4 or 6: the LIP's */
	__u8 pad[3];
};

struct uoa_peer {
	__u8 addr[16];
	__u16 port;
	__u8 family; /* 4 or 6 */
	__u8 pad;
};

struct uoa_rev_key {
	__u8 client[16];
	__u16 cport;
	__u16 rsport;
	__u8 family; /* 4 or 6: the client's */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, UOA_MAP_MAX);
	__type(key, struct uoa_key);
	__type(value, struct uoa_peer); /* the client */
} uoa_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, UOA_MAP_MAX);
	__type(key, struct uoa_rev_key);
	__type(value, struct uoa_peer); /* the LIP and its port */
} uoa_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, UOA_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} uoa_stats SEC(".maps");

static __always_inline void uoa_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&uoa_stats, &idx);

	if (v)
		*v += 1;
}

static __always_inline int trusted6(const __u8 *addr)
{
	struct trust6_key k;

	k.prefixlen = 128;
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&toa_trust6, &k) != 0;
}

enum { SCAN_NONE = 0, SCAN_FOUND = 1, SCAN_BAD = 2 };

/*
 * An IPv4 option block (or an opp header's options) as ip_options_compile()
 * and DPVS's module walk it: END stops, NOP advances one byte, a size < 2 or
 * past the block is malformed; the first UOA wins and its 20 bytes from the
 * code on are copied to `uoa` (buf has room for them after any position).
 * Unrolled, so every buf[p] has a constant offset.
 */
static __always_inline int scan_options(const __u8 *buf, __u32 optlen, __u8 *uoa)
{
	__u32 p, next = 0, done = 0;
	int r = SCAN_NONE;

#pragma clang loop unroll(full)
	for (p = 0; p < IP_OPT_MAX; p++) {
		__u8 kind, size;
		__u32 left;

		if (done || p < next)
			continue;
		if (p >= optlen) {
			done = 1;
			continue;
		}
		kind = buf[p];
		if (kind == 0) {
			done = 1;
			continue;
		}
		if (kind == 1) {
			next = p + 1;
			continue;
		}
		left = optlen - p;
		if (left < 2) {
			r = SCAN_BAD;
			done = 1;
			continue;
		}
		size = buf[p + 1];
		if (size < 2 || size > left) {
			r = SCAN_BAD;
			done = 1;
			continue;
		}
		if (kind == IPOPT_UOA) {
			if (size == UOA_LEN_V4 || size == UOA_LEN_V6) {
				__builtin_memcpy(uoa, buf + p, UOA_LEN_V6);
				r = SCAN_FOUND;
			} else {
				r = SCAN_BAD;
			}
			done = 1;
			continue;
		}
		next = p + size;
	}
	return r;
}

/* Reads and scans the option block of `len` bytes (1..40) at `off`. */
static __always_inline int read_options(struct __sk_buff *skb, __u32 off, __u32 len, __u8 *uoa)
{
	__u8 buf[IP_OPT_MAX + UOA_LEN_V6];

	__builtin_memset(buf, 0, sizeof(buf));
	if (len == 0 || len > IP_OPT_MAX)
		return SCAN_BAD;
	if (bpf_skb_load_bytes(skb, off, buf, len) < 0)
		return SCAN_BAD;
	return scan_options(buf, len, uoa);
}

/*
 * Records LIP:lport -> client for datagrams to RS port `rsport`, and the
 * reverse. `lip` is 4 or 16 bytes by `family`; `uoa` the UOA option
 * (code, len, port, address). Returns 0, or -1 when a map refused it.
 */
static __always_inline int record(__u8 family, const __u8 *lip, __u16 lport, __u16 rsport,
				  const __u8 *uoa)
{
	struct uoa_key k;
	struct uoa_peer client, via;
	struct uoa_rev_key rk;

	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memset(&client, 0, sizeof(client));
	__builtin_memset(&via, 0, sizeof(via));
	__builtin_memset(&rk, 0, sizeof(rk));

	k.family = family;
	if (family == 4)
		__builtin_memcpy(k.lip, lip, 4);
	else
		__builtin_memcpy(k.lip, lip, 16);
	k.lport = lport;
	k.rsport = rsport;

	__builtin_memcpy(&client.port, uoa + 2, 2);
	if (uoa[1] == UOA_LEN_V4) {
		client.family = 4;
		__builtin_memcpy(client.addr, uoa + 4, 4);
	} else {
		client.family = 6;
		__builtin_memcpy(client.addr, uoa + 4, 16);
	}

	__builtin_memcpy(rk.client, client.addr, 16);
	rk.cport = client.port;
	rk.rsport = rsport;
	rk.family = client.family;

	__builtin_memcpy(via.addr, k.lip, 16);
	via.port = lport;
	via.family = family;

	if (bpf_map_update_elem(&uoa_map, &k, &client, BPF_ANY) < 0 ||
	    bpf_map_update_elem(&uoa_rev, &rk, &via, BPF_ANY) < 0) {
		uoa_count(UOA_STAT_ERRORS);
		return -1;
	}
	uoa_count(UOA_STAT_RECORDED);
	return 0;
}

/*
 * The opp shim at `opp` (the IP payload): checks it, reads its UOA and the
 * UDP header after it. Returns the shim's length, or 0 (malformed).
 */
static __always_inline __u32 read_opp(struct __sk_buff *skb, __u32 opp, __u8 *uoa, __u8 *udp)
{
	__u8 h[OPP_HDR];
	__u32 len, version;

	if (bpf_skb_load_bytes(skb, opp, h, OPP_HDR) < 0)
		return 0;
	version = h[0] >> 4;
	len = ((__u32)h[2] << 8) | h[3];
	if (h[1] != UOA_IPPROTO_UDP || len < OPP_HDR + UOA_LEN_V4 || len > OPP_HDR + IP_OPT_MAX)
		return 0;
	if (read_options(skb, opp + OPP_HDR, len - OPP_HDR, uoa) != SCAN_FOUND)
		return 0;
	if (!((version == OPP_VERSION_V4 && uoa[1] == UOA_LEN_V4) ||
	      (version == OPP_VERSION_V6 && uoa[1] == UOA_LEN_V6)))
		return 0;
	if (bpf_skb_load_bytes(skb, opp + len, udp, UDP_HDR) < 0)
		return 0;
	return len;
}

/* Two bytes as they lie in memory (a port stays in network byte order). */
static __always_inline __u16 half(const __u8 *a)
{
	__u16 h;

	__builtin_memcpy(&h, a, 2);
	return h;
}

static __always_inline __u16 udp_length(const __u8 *udp)
{
	return ((__u16)udp[4] << 8) | udp[5];
}

static __always_inline int uoa_v4(struct __sk_buff *skb, __u32 l3)
{
	__u8 ip[IPV4_HDR], uoa[UOA_LEN_V6], udp[UDP_HDR];
	__u32 ihl, olen;
	__u16 old_len, new_len, old_word, new_word;

	if (bpf_skb_load_bytes(skb, l3, ip, IPV4_HDR) < 0)
		return UOA_TC_ACT_OK;
	if ((ip[0] >> 4) != 4)
		return UOA_TC_ACT_OK;
	ihl = (__u32)(ip[0] & 0x0f) * 4;
	if (ip[9] == UOA_IPPROTO_UDP && ihl == IPV4_HDR)
		return UOA_TC_ACT_OK;
	if ((ip[9] != UOA_IPPROTO_UDP && ip[9] != UOA_IPPROTO_OPP) || ihl < IPV4_HDR)
		return UOA_TC_ACT_OK;
	/* MF or a fragment offset */
	if (((ip[6] & 0x3f) | ip[7]) != 0)
		return UOA_TC_ACT_OK;

	if (ip[9] == UOA_IPPROTO_UDP) {
		int r = read_options(skb, l3 + IPV4_HDR, ihl - IPV4_HDR, uoa);

		if (r == SCAN_NONE)
			return UOA_TC_ACT_OK;
		/* ipo is IPv4 only: DPVS never sends a 20-byte UOA as an IP option. */
		if (r == SCAN_BAD || uoa[1] != UOA_LEN_V4 ||
		    bpf_skb_load_bytes(skb, l3 + ihl, udp, UDP_HDR) < 0) {
			uoa_count(UOA_STAT_MALFORMED);
			return UOA_TC_ACT_OK;
		}
		if (!trusted4(word(ip + 12))) {
			uoa_count(UOA_STAT_UNTRUSTED);
			return UOA_TC_ACT_OK;
		}
		uoa_count(UOA_STAT_IPO);
		record(4, ip + 12, half(udp), half(udp + 2), uoa);
		if (udp_length(udp) == UDP_HDR) {
			uoa_count(UOA_STAT_EMPTY_DROPPED);
			return UOA_TC_ACT_SHOT;
		}
		return UOA_TC_ACT_OK;
	}

	if (!trusted4(word(ip + 12))) {
		uoa_count(UOA_STAT_UNTRUSTED);
		return UOA_TC_ACT_SHOT;
	}
	uoa_count(UOA_STAT_OPP);
	olen = read_opp(skb, l3 + ihl, uoa, udp);
	old_len = ((__u16)ip[2] << 8) | ip[3];
	if (olen == 0 || old_len < ihl + olen + UDP_HDR) {
		uoa_count(UOA_STAT_MALFORMED);
		return UOA_TC_ACT_SHOT;
	}
	record(4, ip + 12, half(udp), half(udp + 2), uoa);
	if (udp_length(udp) == UDP_HDR) {
		uoa_count(UOA_STAT_EMPTY_DROPPED);
		return UOA_TC_ACT_SHOT;
	}

	/*
	 * BPF_ADJ_ROOM_NET removes the bytes right after the fixed 20-byte
	 * header; with IP options the options move up over the shim first.
	 */
	if (ihl > IPV4_HDR) {
		__u8 opts[IP_OPT_MAX];
		__u32 optlen = ihl - IPV4_HDR;

		if (optlen > IP_OPT_MAX || olen > OPP_HDR + IP_OPT_MAX ||
		    bpf_skb_load_bytes(skb, l3 + IPV4_HDR, opts, optlen) < 0 ||
		    bpf_skb_store_bytes(skb, l3 + IPV4_HDR + olen, opts, optlen, 0) < 0) {
			uoa_count(UOA_STAT_ERRORS);
			return UOA_TC_ACT_SHOT;
		}
	}
	if (bpf_skb_adjust_room(skb, -(__s32)olen, BPF_ADJ_ROOM_NET, 0) < 0) {
		uoa_count(UOA_STAT_ERRORS);
		return UOA_TC_ACT_SHOT;
	}
	new_len = bpf_htons(old_len - olen);
	old_len = bpf_htons(old_len);
	__builtin_memcpy(&old_word, ip + 8, 2); /* TTL, protocol */
	new_word = old_word;
	((__u8 *)&new_word)[1] = UOA_IPPROTO_UDP;
	if (bpf_l3_csum_replace(skb, l3 + 10, old_len, new_len, 2) < 0 ||
	    bpf_l3_csum_replace(skb, l3 + 10, old_word, new_word, 2) < 0 ||
	    bpf_skb_store_bytes(skb, l3 + 2, &new_len, 2, 0) < 0 ||
	    bpf_skb_store_bytes(skb, l3 + 8, &new_word, 2, 0) < 0) {
		uoa_count(UOA_STAT_ERRORS);
		return UOA_TC_ACT_SHOT;
	}
	uoa_count(UOA_STAT_OPP_STRIPPED);
	return UOA_TC_ACT_OK;
}

static __always_inline int uoa_v6(struct __sk_buff *skb, __u32 l3)
{
	__u8 ip[IPV6_HDR], uoa[UOA_LEN_V6], udp[UDP_HDR];
	__u8 next = UOA_IPPROTO_UDP;
	__u32 olen;
	__u16 plen, new_plen;

	if (bpf_skb_load_bytes(skb, l3, ip, IPV6_HDR) < 0)
		return UOA_TC_ACT_OK;
	if ((ip[0] >> 4) != 6 || ip[6] != UOA_IPPROTO_OPP)
		return UOA_TC_ACT_OK;
	if (!trusted6(ip + 8)) {
		uoa_count(UOA_STAT_UNTRUSTED);
		return UOA_TC_ACT_SHOT;
	}
	uoa_count(UOA_STAT_OPP);
	olen = read_opp(skb, l3 + IPV6_HDR, uoa, udp);
	plen = ((__u16)ip[4] << 8) | ip[5];
	if (olen == 0 || plen < olen + UDP_HDR) {
		uoa_count(UOA_STAT_MALFORMED);
		return UOA_TC_ACT_SHOT;
	}
	record(6, ip + 8, half(udp), half(udp + 2), uoa);
	if (udp_length(udp) == UDP_HDR) {
		uoa_count(UOA_STAT_EMPTY_DROPPED);
		return UOA_TC_ACT_SHOT;
	}
	new_plen = bpf_htons(plen - olen);
	if (bpf_skb_adjust_room(skb, -(__s32)olen, BPF_ADJ_ROOM_NET, 0) < 0 ||
	    bpf_skb_store_bytes(skb, l3 + 4, &new_plen, 2, 0) < 0 ||
	    bpf_skb_store_bytes(skb, l3 + 6, &next, 1, 0) < 0) {
		uoa_count(UOA_STAT_ERRORS);
		return UOA_TC_ACT_SHOT;
	}
	uoa_count(UOA_STAT_OPP_STRIPPED);
	return UOA_TC_ACT_OK;
}

static __always_inline int uoa_ingress_at(struct __sk_buff *skb, __u32 l3)
{
	if (skb->protocol == bpf_htons(UOA_ETH_P_IP))
		return uoa_v4(skb, l3);
	if (skb->protocol == bpf_htons(UOA_ETH_P_IPV6))
		return uoa_v6(skb, l3);
	return UOA_TC_ACT_OK;
}

SEC("tc")
int uoa_ingress(struct __sk_buff *skb)
{
	return uoa_ingress_at(skb, UOA_ETH_HLEN);
}

SEC("tc")
int uoa_ingress_l3(struct __sk_buff *skb)
{
	return uoa_ingress_at(skb, 0);
}

/* ------------------------------------------------------------ sockets */

static __always_inline __u16 local_port(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return 0;
	return bpf_htons((__u16)sk->src_port);
}

static __always_inline struct uoa_peer *client_of(__u8 family, const __u32 *lip, __u16 lport,
						 __u16 rsport)
{
	struct uoa_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.family = family;
	if (family == 4)
		__builtin_memcpy(k.lip, lip, 4);
	else
		__builtin_memcpy(k.lip, lip, 16);
	k.lport = lport;
	k.rsport = rsport;
	return bpf_map_lookup_elem(&uoa_map, &k);
}

static __always_inline struct uoa_peer *lip_of(__u8 family, const __u32 *client, __u16 cport,
					      __u16 rsport)
{
	struct uoa_rev_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.family = family;
	if (family == 4)
		__builtin_memcpy(k.client, client, 4);
	else
		__builtin_memcpy(k.client, client, 16);
	k.cport = cport;
	k.rsport = rsport;
	return bpf_map_lookup_elem(&uoa_rev, &k);
}

static __always_inline int v4_mapped(const __u32 *w)
{
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

SEC("cgroup/recvmsg4")
int uoa_recvmsg4(struct bpf_sock_addr *ctx)
{
	__u16 rsport = local_port(ctx);
	struct uoa_peer *c;
	__u32 ip = ctx->user_ip4;

	if (!rsport)
		return 1;
	c = client_of(4, &ip, (__u16)ctx->user_port, rsport);
	if (!c)
		return 1;
	if (c->family != 4) {
		uoa_count(UOA_STAT_UNEXPRESSIBLE);
		return 1;
	}
	ctx->user_ip4 = word(c->addr);
	ctx->user_port = c->port;
	uoa_count(UOA_STAT_RECV_REWRITES);
	return 1;
}

SEC("cgroup/recvmsg6")
int uoa_recvmsg6(struct bpf_sock_addr *ctx)
{
	__u16 rsport = local_port(ctx);
	struct uoa_peer *c;
	__u32 w[4];

	if (!rsport)
		return 1;
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	if (v4_mapped(w)) {
		c = client_of(4, &w[3], (__u16)ctx->user_port, rsport);
		if (!c)
			return 1;
		if (c->family != 4) {
			uoa_count(UOA_STAT_UNEXPRESSIBLE);
			return 1;
		}
		ctx->user_ip6[3] = word(c->addr);
	} else {
		c = client_of(6, w, (__u16)ctx->user_port, rsport);
		if (!c)
			return 1;
		if (c->family != 6) {
			uoa_count(UOA_STAT_UNEXPRESSIBLE);
			return 1;
		}
		ctx->user_ip6[0] = word(c->addr);
		ctx->user_ip6[1] = word(c->addr + 4);
		ctx->user_ip6[2] = word(c->addr + 8);
		ctx->user_ip6[3] = word(c->addr + 12);
	}
	ctx->user_port = c->port;
	uoa_count(UOA_STAT_RECV_REWRITES);
	return 1;
}

/* Points a datagram (or a UDP connect) addressed to a mapped IPv4 client at its LIP. */
static __always_inline void redirect4(struct bpf_sock_addr *ctx)
{
	__u16 rsport = local_port(ctx);
	struct uoa_peer *via;
	__u32 ip = ctx->user_ip4;

	if (!rsport)
		return;
	via = lip_of(4, &ip, (__u16)ctx->user_port, rsport);
	if (!via || via->family != 4)
		return;
	ctx->user_ip4 = word(via->addr);
	ctx->user_port = via->port;
	uoa_count(UOA_STAT_SEND_REDIRECTS);
}

/*
 * The IPv6 counterpart. An IPv4-mapped destination only reaches here from
 * connect6 (udpv6_sendmsg hands those to udp_sendmsg and sendmsg4 first).
 */
static __always_inline void redirect6(struct bpf_sock_addr *ctx)
{
	__u16 rsport = local_port(ctx);
	struct uoa_peer *via;
	__u32 w[4];

	if (!rsport)
		return;
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	if (v4_mapped(w)) {
		via = lip_of(4, &w[3], (__u16)ctx->user_port, rsport);
		if (!via || via->family != 4)
			return;
		ctx->user_ip6[3] = word(via->addr);
	} else {
		via = lip_of(6, w, (__u16)ctx->user_port, rsport);
		if (!via || via->family != 6)
			return;
		ctx->user_ip6[0] = word(via->addr);
		ctx->user_ip6[1] = word(via->addr + 4);
		ctx->user_ip6[2] = word(via->addr + 8);
		ctx->user_ip6[3] = word(via->addr + 12);
	}
	ctx->user_port = via->port;
	uoa_count(UOA_STAT_SEND_REDIRECTS);
}

SEC("cgroup/sendmsg4")
int uoa_sendmsg4(struct bpf_sock_addr *ctx)
{
	redirect4(ctx);
	return 1;
}

SEC("cgroup/sendmsg6")
int uoa_sendmsg6(struct bpf_sock_addr *ctx)
{
	redirect6(ctx);
	return 1;
}

SEC("cgroup/connect4")
int uoa_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type == UOA_SOCK_DGRAM && ctx->protocol == UOA_IPPROTO_UDP)
		redirect4(ctx);
	return 1;
}

SEC("cgroup/connect6")
int uoa_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type == UOA_SOCK_DGRAM && ctx->protocol == UOA_IPPROTO_UDP)
		redirect6(ctx);
	return 1;
}
