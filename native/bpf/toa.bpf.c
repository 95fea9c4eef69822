// SPDX-License-Identifier: Apache-2.0
/*
 * fullnat TOA receiver for real servers, as eBPF (no kernel module).
 *
 * A FULLNAT load balancer puts the client's address into a TCP option (TOA)
 * of the packet that completes the handshake with the real server:
 *
 *   kind 254, len 8   port(2) IPv4(4)          (everyone)
 *   kind 254, len 20  port(2) IPv6(16)         (DPVS, Huawei)
 *   kind 253, len 20  port(2) IPv6(16)         (Alibaba LVS)
 *
 * Three programs, all attached to one cgroup (v2):
 *
 *   toa_sockops    sock_ops, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: the kernel
 *                  hands us the segment that concluded the passive handshake
 *                  (skb_data .. skb_data_end = its TCP header, Linux >= 5.10).
 *                  We parse its options the way tcp_parse_options() does and
 *                  keep the first TOA in socket-local storage.
 *   toa_peername4  cgroup/getpeername4 and
 *   toa_peername6  cgroup/getpeername6: when a socket has a stored TOA,
 *                  getpeername() — and accept(), which fills the peer address
 *                  through the same inet_getname() path — report it instead
 *                  of the load balancer's local address. An IPv4 TOA on an
 *                  AF_INET6 socket becomes ::ffff:a.b.c.d; an IPv6 TOA on an
 *                  AF_INET socket cannot be expressed and is left alone (a
 *                  dual-stack listener, [::] with IPV6_V6ONLY off, accepts
 *                  IPv4 connections as AF_INET6 sockets and reports it).
 *
 * Userspace reads toa_sk too, by a socket's fd (native/toa-peer.c, toaPeer()
 * in fullnat/realserver): the way to an IPv6 client on an AF_INET socket.
 *
 * Trusted load balancers: a TOA is believed only when the segment came from
 * an address in toa_trust4 / toa_trust6 (LPM tries of the LBs' local
 * addresses, the LIPs, filled by `fullnat rs attach --trust PREFIXES`). The
 * address checked is the connection's real peer, the one the SYN came from
 * (an IPv4 peer of a dual-stack socket, ::ffff:a.b.c.d, is looked up as
 * IPv4). A TOA from any other peer is ignored — the application sees the
 * true peer — and counted as untrusted. Without --trust the tries hold
 * 0.0.0.0/0 and ::/0: every peer is trusted, as the toa kernel module does,
 * and any host that can reach the real server can claim any address.
 *
 * Counters (per-CPU array toa_stats, summed by `fullnat rs status`) mirror
 * the toa module's /proc/net/toa_stats; see the TOA_STAT_* indexes.
 *
 * Only programs attached to the cgroup of the *listening* socket run (the
 * accepted socket inherits it), so the server must create its listener after
 * it has been moved into the cgroup (`fullnat rs exec -- CMD`).
 *
 * Note: Linux >= 6.7 built with TCP-MD5/TCP-AO drops a segment whose options
 * are malformed while >= 18 (MD5 only) or >= 5 (AO) option bytes remain
 * (tcp_do_parse_auth_options); such a segment never concludes a handshake,
 * so "malformed" here only counts the ones the kernel let through.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10

#define TCP_HDR_MIN 20
#define TCP_OPT_MAX 40
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_TOA 254
#define TCPOPT_TOA_ALI_V6 253
#define TCPOLEN_TOA_V4 8
#define TCPOLEN_TOA_V6 20

/* Indexes into toa_stats. Keep in sync with STAT_NAMES in src/realserver/ebpf.ts. */
enum {
	TOA_STAT_WITH_TOA = 0,  /* handshake concluded by a segment carrying a TOA from a trusted peer */
	TOA_STAT_WITHOUT_TOA,   /* options parsed cleanly, no TOA among them */
	TOA_STAT_MALFORMED,     /* option parsing stopped (size < 2 / past the header) before any TOA */
	TOA_STAT_ERRORS,        /* no concluding segment visible, or socket storage unavailable */
	TOA_STAT_PEER_REWRITES, /* getpeername()/accept() answers rewritten to the TOA address */
	TOA_STAT_V6_ON_V4_SOCK, /* IPv6 TOA asked for through an AF_INET socket (left unchanged) */
	TOA_STAT_UNTRUSTED,     /* handshake with a TOA from a peer outside toa_trust4/6 (TOA ignored) */
	TOA_STAT_MAX,
};

/* Read from userspace by native/toa-peer.c, which checks value_size: keep the two in step. */
struct toa_addr {
	__u16 family; /* AF_INET or AF_INET6 */
	__u16 port;   /* network byte order, as on the wire */
	__u8 kind;    /* 254 or 253 */
	__u8 pad[3];
	__u8 addr[16]; /* IPv4 in the first 4 bytes, network byte order */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct toa_addr);
} toa_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TOA_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} toa_stats SEC(".maps");

/* LPM trie keys: prefix length in bits, then the address in network byte order. */
struct trust4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct trust6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

#define TRUST_MAX 1024 /* per family; keep in sync with TRUST_MAX in src/realserver/ebpf.ts */

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TRUST_MAX);
	__type(key, struct trust4_key);
	__type(value, __u32);
} toa_trust4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TRUST_MAX);
	__type(key, struct trust6_key);
	__type(value, __u32);
} toa_trust6 SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&toa_stats, &idx);

	if (v)
		*v += 1;
}

enum { PARSE_NONE = 0, PARSE_FOUND = 1, PARSE_MALFORMED = 2 };

/*
 * The keys are written field by field, every byte of them, never from an
 * initializer: a compiler may keep a constant aggregate in .rodata, which
 * would become one more pinned map (toa_rodata) that `rs detach` does not
 * know and so never removes.
 */
static __always_inline int trusted4(__u32 addr)
{
	struct trust4_key k;

	k.prefixlen = 32;
	__builtin_memcpy(k.addr, &addr, 4);
	return bpf_map_lookup_elem(&toa_trust4, &k) != 0;
}

/*
 * Whether the connection's real peer (the address the handshake came from:
 * the LB's LIP) may speak for its clients. ::ffff:a.b.c.d, an IPv4 peer of an
 * AF_INET6 socket, is an IPv4 peer.
 */
static __always_inline int peer_trusted(struct bpf_sock_ops *skops)
{
	struct trust6_key k;
	__u32 w[4];

	if (skops->family == AF_INET)
		return trusted4(skops->remote_ip4);
	if (skops->family != AF_INET6)
		return 0;
	w[0] = skops->remote_ip6[0];
	w[1] = skops->remote_ip6[1];
	w[2] = skops->remote_ip6[2];
	w[3] = skops->remote_ip6[3];
	if (w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff))
		return trusted4(w[3]);
	k.prefixlen = 128;
	__builtin_memcpy(k.addr, w, 16);
	return bpf_map_lookup_elem(&toa_trust6, &k) != 0;
}

SEC("sockops")
int toa_sockops(struct bpf_sock_ops *skops)
{
	__u32 optlen, next = 0, found_at = 0, done = 0, p;
	int result = PARSE_NONE;
	struct toa_addr *stored;
	struct bpf_sock *sk;
	__u8 *data, *end, *opt;

	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;

	data = (__u8 *)(long)skops->skb_data;
	end = (__u8 *)(long)skops->skb_data_end;
	if (data + TCP_HDR_MIN > end) {
		count(TOA_STAT_ERRORS);
		return 1;
	}
	opt = data + TCP_HDR_MIN;
	optlen = (__u32)(data[12] >> 4) * 4;
	optlen = optlen > TCP_HDR_MIN ? optlen - TCP_HDR_MIN : 0;

	/*
	 * Exactly tcp_parse_options(): EOL stops; NOP advances one byte; an
	 * option whose size is < 2 or runs past the header ends parsing; the
	 * first TOA of a known (kind, len) wins.
	 *
	 * Written for the verifier: the loop is unrolled, so every byte position
	 * p is a constant and each packet access has a constant offset; the only
	 * state carried from one position to the next is where the next option
	 * starts, so paths reaching a position in the same state are pruned
	 * instead of multiplying. (skb_data_end is the end of the TCP header, so
	 * the pointer checks coincide with p < optlen.)
	 */
#pragma clang loop unroll(full)
	for (p = 0; p < TCP_OPT_MAX; p++) {
		__u32 left;
		__u8 kind, size;

		if (done || p < next)
			continue;
		if (p >= optlen || opt + p + 1 > end) {
			done = 1;
			continue;
		}
		kind = opt[p];
		if (kind == TCPOPT_EOL) {
			done = 1;
			continue;
		}
		if (kind == TCPOPT_NOP) {
			next = p + 1;
			continue;
		}
		left = optlen - p;
		if (left < 2 || opt + p + 2 > end) {
			result = PARSE_MALFORMED;
			done = 1;
			continue;
		}
		size = opt[p + 1];
		if (size < 2 || size > left) {
			result = PARSE_MALFORMED;
			done = 1;
			continue;
		}
		if ((kind == TCPOPT_TOA && (size == TCPOLEN_TOA_V4 || size == TCPOLEN_TOA_V6)) ||
		    (kind == TCPOPT_TOA_ALI_V6 && size == TCPOLEN_TOA_V6)) {
			result = PARSE_FOUND;
			found_at = p;
			done = 1;
			continue;
		}
		next = p + size;
	}

	if (result == PARSE_NONE) {
		count(TOA_STAT_WITHOUT_TOA);
		return 1;
	}
	if (result == PARSE_MALFORMED) {
		count(TOA_STAT_MALFORMED);
		return 1;
	}
	if (!peer_trusted(skops)) {
		count(TOA_STAT_UNTRUSTED);
		return 1;
	}

	sk = skops->sk;
	if (!sk) {
		count(TOA_STAT_ERRORS);
		return 1;
	}
	{
		/* found_at < 40 and the option fits in the header (size <= left above). */
		__u8 *t = opt + (found_at & 63);
		__u8 *port;

		if (t + TCPOLEN_TOA_V4 > end) {
			count(TOA_STAT_ERRORS);
			return 1;
		}
		if (t[1] == TCPOLEN_TOA_V6 && t + TCPOLEN_TOA_V6 > end) {
			count(TOA_STAT_ERRORS);
			return 1;
		}
		stored = bpf_sk_storage_get(&toa_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!stored) {
			count(TOA_STAT_ERRORS);
			return 1;
		}
		port = (__u8 *)&stored->port;
		stored->kind = t[0];
		port[0] = t[2];
		port[1] = t[3];
		if (t[1] == TCPOLEN_TOA_V6 && t + TCPOLEN_TOA_V6 <= end) {
			stored->family = AF_INET6;
			__builtin_memcpy(stored->addr, t + 4, 16);
		} else {
			stored->family = AF_INET;
			__builtin_memcpy(stored->addr, t + 4, 4);
			__builtin_memset(stored->addr + 4, 0, 12);
		}
	}
	count(TOA_STAT_WITH_TOA);
	return 1;
}

static __always_inline struct toa_addr *lookup(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return 0;
	return bpf_sk_storage_get(&toa_sk, sk, 0, 0);
}

static __always_inline __u32 word(const __u8 *a)
{
	/* The bytes are already in network order; assemble them as they lie in memory. */
	__u32 w;

	__builtin_memcpy(&w, a, 4);
	return w;
}

SEC("cgroup/getpeername4")
int toa_peername4(struct bpf_sock_addr *ctx)
{
	struct toa_addr *t = lookup(ctx);

	if (!t)
		return 1;
	if (t->family != AF_INET) {
		count(TOA_STAT_V6_ON_V4_SOCK);
		return 1;
	}
	ctx->user_ip4 = word(t->addr);
	ctx->user_port = t->port;
	count(TOA_STAT_PEER_REWRITES);
	return 1;
}

SEC("cgroup/getpeername6")
int toa_peername6(struct bpf_sock_addr *ctx)
{
	struct toa_addr *t = lookup(ctx);

	if (!t)
		return 1;
	if (t->family == AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = word(t->addr);
	} else {
		ctx->user_ip6[0] = word(t->addr);
		ctx->user_ip6[1] = word(t->addr + 4);
		ctx->user_ip6[2] = word(t->addr + 8);
		ctx->user_ip6[3] = word(t->addr + 12);
	}
	ctx->user_port = t->port;
	count(TOA_STAT_PEER_REWRITES);
	return 1;
}

/* The UDP half (UOA): one object, one set of pins, the trusted-LB tries shared. */
#include "uoa.bpf.c"

/* Only helpers without gpl_only are used, so the project's own license is fine here. */
char LICENSE[] SEC("license") = "Apache-2.0";
