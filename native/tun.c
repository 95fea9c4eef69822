/*
 * fullnat_tun: the system calls TypeScript cannot make for a TUN device.
 *
 *   open(name, multiQueue[, offload[, napi]])       -> { fd, name, offload }
 *   readBatch(fd, bufs, offset, lengths[, gso])     -> packets read
 *   writeBatch(fd, bufs, offsets, lengths, count[, stats[, gso]]) -> packets handled
 *   poll(fd, callback)                              -> handle
 *   stopPoll(handle)
 *   setPersist(fd, on)                              (TUNSETPERSIST)
 *   setQueue(fd, attach)                            (TUNSETQUEUE attach/detach)
 *   close(fd)
 *
 * The full contract is documented in src/io/tun.ts (the only caller). In
 * short: system-call failures throw an Error shaped like Node's own system
 * errors ({ message: "<syscall>: <strerror>", code: "EXXX", errno: -E,
 * syscall }); bad arguments throw TypeError/RangeError; EAGAIN is never an
 * error (it ends a batch). Nothing here allocates per packet and nothing
 * runs on another thread: poll() is a plain uv_poll_t on Node's own loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define ADDON_NAME "fullnat_tun"
#include "napi_errors.h"
#include <node_api.h>
#include <uv.h>

/* ---------------------------------------------------------------- errors */

#define THROW_TYPE(env, msg)                                                   \
    do {                                                                       \
        napi_throw_type_error((env), "ERR_INVALID_ARG_TYPE", (msg));           \
        return NULL;                                                           \
    } while (0)

#define THROW_RANGE(env, msg)                                                  \
    do {                                                                       \
        napi_throw_range_error((env), "ERR_OUT_OF_RANGE", (msg));              \
        return NULL;                                                           \
    } while (0)


/* ------------------------------------------------------------- arguments */

static bool get_int32(napi_env env, napi_value v, int32_t *out)
{
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok || t != napi_number)
        return false;
    return napi_get_value_int32(env, v, out) == napi_ok;
}

static bool get_fd(napi_env env, napi_value v, int *fd)
{
    int32_t x;
    if (!get_int32(env, v, &x) || x < 0)
        return false;
    *fd = x;
    return true;
}

static bool get_typed(napi_env env, napi_value v, napi_typedarray_type want,
                      void **data, size_t *length)
{
    bool is = false;
    napi_typedarray_type type;
    if (napi_is_typedarray(env, v, &is) != napi_ok || !is)
        return false;
    if (napi_get_typedarray_info(env, v, &type, length, data, NULL, NULL) != napi_ok)
        return false;
    return type == want;
}

static bool get_u8(napi_env env, napi_value v, uint8_t **data, size_t *length)
{
    void *d = NULL;
    if (!get_typed(env, v, napi_uint8_array, &d, length))
        return false;
    *data = d;
    return true;
}

static bool get_i32s(napi_env env, napi_value v, int32_t **data, size_t *length)
{
    void *d = NULL;
    if (!get_typed(env, v, napi_int32_array, &d, length))
        return false;
    *data = d;
    return true;
}

static bool get_array(napi_env env, napi_value v, uint32_t *length)
{
    bool is = false;
    if (napi_is_array(env, v, &is) != napi_ok || !is)
        return false;
    return napi_get_array_length(env, v, length) == napi_ok;
}

/* ------------------------------------------------------------------ open */

static napi_value Open(napi_env env, napi_callback_info info)
{
    size_t argc = 4;
    napi_value argv[4];
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 2)
        THROW_TYPE(env, "open(name, multiQueue[, offload[, napi]]): expected 2 to 4 arguments");

    napi_valuetype t;
    CHECK(env, napi_typeof(env, argv[0], &t));
    if (t != napi_string)
        THROW_TYPE(env, "open: name must be a string");
    char name[IFNAMSIZ + 1];
    size_t len = 0;
    CHECK(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len));
    if (len >= IFNAMSIZ)
        THROW_RANGE(env, "open: interface name longer than 15 bytes");
    if (strlen(name) != len)
        THROW_TYPE(env, "open: name must not contain NUL");
    bool multi = false;
    CHECK(env, napi_typeof(env, argv[1], &t));
    if (t != napi_boolean)
        THROW_TYPE(env, "open: multiQueue must be a boolean");
    CHECK(env, napi_get_value_bool(env, argv[1], &multi));
    bool offload = false;
    if (argc >= 3) {
        CHECK(env, napi_typeof(env, argv[2], &t));
        if (t != napi_undefined) {
            if (t != napi_boolean)
                THROW_TYPE(env, "open: offload must be a boolean");
            CHECK(env, napi_get_value_bool(env, argv[2], &offload));
        }
    }
    bool napi = false;
    if (argc >= 4) {
        CHECK(env, napi_typeof(env, argv[3], &t));
        if (t != napi_undefined) {
            if (t != napi_boolean)
                THROW_TYPE(env, "open: napi must be a boolean");
            CHECK(env, napi_get_value_bool(env, argv[3], &napi));
        }
    }

    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        throw_errno(env, "open /dev/net/tun", errno);
        return NULL;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, name, len); /* len < IFNAMSIZ: stays NUL-terminated */
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (multi ? IFF_MULTI_QUEUE : 0) |
                    (offload ? IFF_VNET_HDR : 0) | (napi ? IFF_NAPI : 0);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int err = errno;
        close(fd);
        throw_errno(env, "ioctl TUNSETIFF", err);
        return NULL;
    }
    if (offload) {
        /* Whole GSO super-packets cross the device with a virtio_net_hdr in
         * front (little-endian fields); the kernel segments them, or not at
         * all when the next hop takes TSO too (veth). */
        int hdr = (int)sizeof(struct virtio_net_hdr);
        int le = 1;
        unsigned long features = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        const char *failed = NULL;
        if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
            failed = "ioctl TUNSETVNETHDRSZ";
        else if (ioctl(fd, TUNSETVNETLE, &le) < 0 && errno != EINVAL)
            failed = "ioctl TUNSETVNETLE";
        else if (ioctl(fd, TUNSETOFFLOAD, features) < 0)
            failed = "ioctl TUNSETOFFLOAD";
        if (failed) {
            int err = errno;
            close(fd);
            throw_errno(env, failed, err);
            return NULL;
        }
    }

    napi_value result, v;
    CHECK(env, napi_create_object(env, &result));
    CHECK(env, napi_create_int32(env, fd, &v));
    CHECK(env, napi_set_named_property(env, result, "fd", v));
    ifr.ifr_name[IFNAMSIZ - 1] = '\0';
    CHECK(env, napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v));
    CHECK(env, napi_set_named_property(env, result, "name", v));
    CHECK(env, napi_get_boolean(env, offload, &v));
    CHECK(env, napi_set_named_property(env, result, "offload", v));
    return result;
}

/* ------------------------------------------------------------- checksums */

/* In readBatch's gso[2i]: the super-packet's TCP checksum field holds only
 * the kernel's pseudo-header sum (virtio NEEDS_CSUM), not a full checksum. */
#define GSO_CSUM_PARTIAL 0x100

/* One's-complement sum of len bytes, in host byte order: read and written
 * back the same way, the folded result is the right field value whatever
 * the byte order (RFC 1071 section 2(B)). */
static uint64_t csum_add_bytes(const uint8_t *p, size_t len, uint64_t sum)
{
    /* 64-bit words with end-around carry: a 64 KiB super-packet is summed
     * on every read, so this loop is on the throughput path. */
    while (len >= 32) {
        uint64_t w[4];
        memcpy(w, p, 32);
        for (int k = 0; k < 4; k++) {
            sum += w[k];
            sum += sum < w[k];
        }
        p += 32;
        len -= 32;
    }
    /* Fold to 32 bits so the narrower adds below cannot overflow. */
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffffffffu) + (sum >> 32);
    while (len >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        sum += w;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        sum += w;
        p += 2;
        len -= 2;
    }
    if (len) {
        uint16_t w = 0;
        memcpy(&w, p, 1);
        sum += w;
    }
    return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* The kernel left a CHECKSUM_PARTIAL packet: the field holds the
 * pseudo-header sum, the rest is ours to add (what skb_checksum_help does).
 * Afterwards the packet is an ordinary one with a full checksum. */
static bool complete_checksum(uint8_t *pkt, size_t len, const struct virtio_net_hdr *h)
{
    size_t start = le16toh(h->csum_start), field = start + le16toh(h->csum_offset);
    if (start >= len || field + 2 > len)
        return false;
    uint16_t folded = (uint16_t)~csum_fold(csum_add_bytes(pkt + start, len - start, 0));
    memcpy(pkt + field, &folded, 2);
    return true;
}

/* Where the TCP header of an IPv6 packet starts: after the fixed header and
 * any hop-by-hop / destination options headers; 0 if it is not TCP. */
static size_t ipv6_tcp_offset(const uint8_t *pkt, size_t len)
{
    uint8_t next = pkt[6];
    size_t off = 40;
    while (next == 0 || next == 60) {
        if (off + 8 > len)
            return 0;
        next = pkt[off];
        off += ((size_t)pkt[off + 1] + 1) * 8;
    }
    return next == 6 ? off : 0;
}

/* Header for a packet to write: a TCP super-packet (IPv4 or IPv6, whatever
 * family it arrived in: FNAT64 turns TCPv6 into TCPv4) goes out as
 * CHECKSUM_PARTIAL with the pseudo-header sum in its field (the kernel or
 * the next device finishes each segment); everything else is whole. */
static void fill_vnet_hdr(struct virtio_net_hdr *h, uint8_t *pkt, size_t len,
                          int32_t gso_type, int32_t gso_size)
{
    memset(h, 0, sizeof *h);
    if (gso_size <= 0 || len < 40)
        return;
    size_t l4;
    uint64_t sum;
    uint8_t type;
    if ((pkt[0] >> 4) == 4) {
        if (pkt[9] != 6)
            return;
        l4 = (size_t)(pkt[0] & 0x0f) * 4;
        if (l4 < 20)
            return;
        sum = csum_add_bytes(pkt + 12, 8, 0);
        type = VIRTIO_NET_HDR_GSO_TCPV4;
    } else if ((pkt[0] >> 4) == 6) {
        l4 = ipv6_tcp_offset(pkt, len);
        if (l4 == 0)
            return;
        sum = csum_add_bytes(pkt + 8, 32, 0);
        type = VIRTIO_NET_HDR_GSO_TCPV6;
    } else {
        return;
    }
    if (l4 + 20 > len)
        return;
    size_t doff = (size_t)(pkt[l4 + 12] >> 4) * 4;
    if (doff < 20 || l4 + doff > len)
        return;
    /* The TCP length fits 16 bits in both pseudo-headers' sums (IPv6's is
     * 32 bits wide, its upper half zero for anything under 64 KiB). */
    uint16_t tcp_len = htobe16((uint16_t)(len - l4));
    uint16_t proto = htobe16(6);
    uint16_t pseudo = csum_fold(sum + tcp_len + proto);
    memcpy(pkt + l4 + 16, &pseudo, 2);
    h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    /* The ECN bit (CWR on the first segment) carries over. */
    h->gso_type = (uint8_t)(type | (gso_type & VIRTIO_NET_HDR_GSO_ECN));
    h->gso_size = htole16((uint16_t)gso_size);
    h->hdr_len = htole16((uint16_t)(l4 + doff));
    h->csum_start = htole16((uint16_t)l4);
    h->csum_offset = htole16(16);
}

/* ----------------------------------------------------------------- close */

static napi_value Close(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    int fd;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 1 || !get_fd(env, argv[0], &fd))
        THROW_TYPE(env, "close(fd): fd must be a non-negative integer");
    /* Linux always releases the descriptor, even on EINTR: never retry. */
    if (close(fd) < 0 && errno != EINTR) {
        throw_errno(env, "close", errno);
        return NULL;
    }
    return NULL;
}

/* ------------------------------------------------- persistence and queues */

static bool get_bool(napi_env env, napi_value v, bool *out)
{
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean)
        return false;
    return napi_get_value_bool(env, v, out) == napi_ok;
}

/* A persistent device outlives its last descriptor: its addresses and the
 * routes into it stay, and the next open of the same name attaches to it. */
static napi_value SetPersist(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2];
    int fd;
    bool on;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 2 || !get_fd(env, argv[0], &fd))
        THROW_TYPE(env, "setPersist(fd, on): fd must be a non-negative integer");
    if (!get_bool(env, argv[1], &on))
        THROW_TYPE(env, "setPersist: on must be a boolean");
    if (ioctl(fd, TUNSETPERSIST, on ? 1UL : 0UL) < 0) {
        throw_errno(env, "ioctl TUNSETPERSIST", errno);
        return NULL;
    }
    return NULL;
}

/* Detaching a queue of a multi-queue device makes the kernel steer every
 * flow to the queues still attached; the detached descriptor stays open
 * (and keeps the device) but receives nothing, and the kernel purges what
 * was waiting in it. Attaching puts it back in the steering. */
static napi_value SetQueue(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2];
    int fd;
    bool attach;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 2 || !get_fd(env, argv[0], &fd))
        THROW_TYPE(env, "setQueue(fd, attach): fd must be a non-negative integer");
    if (!get_bool(env, argv[1], &attach))
        THROW_TYPE(env, "setQueue: attach must be a boolean");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = attach ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
    if (ioctl(fd, TUNSETQUEUE, &ifr) < 0) {
        throw_errno(env, "ioctl TUNSETQUEUE", errno);
        return NULL;
    }
    return NULL;
}

/* ------------------------------------------------------------- readBatch */

static napi_value ReadBatch(napi_env env, napi_callback_info info)
{
    size_t argc = 5;
    napi_value argv[5];
    int fd;
    uint32_t nbufs;
    int32_t offset;
    int32_t *lengths, *gso = NULL;
    size_t nlengths, ngso = 0;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 4)
        THROW_TYPE(env, "readBatch(fd, bufs, offset, lengths[, gso]): expected 4 or 5 arguments");
    if (!get_fd(env, argv[0], &fd))
        THROW_TYPE(env, "readBatch: fd must be a non-negative integer");
    if (!get_array(env, argv[1], &nbufs))
        THROW_TYPE(env, "readBatch: bufs must be an array of Uint8Array");
    if (!get_int32(env, argv[2], &offset) || offset < 0)
        THROW_TYPE(env, "readBatch: offset must be a non-negative integer");
    if (!get_i32s(env, argv[3], &lengths, &nlengths))
        THROW_TYPE(env, "readBatch: lengths must be an Int32Array");
    if (nlengths < nbufs)
        THROW_RANGE(env, "readBatch: lengths is shorter than bufs");
    if (argc >= 5) {
        napi_valuetype t;
        CHECK(env, napi_typeof(env, argv[4], &t));
        if (t != napi_undefined) {
            if (!get_i32s(env, argv[4], &gso, &ngso))
                THROW_TYPE(env, "readBatch: gso must be an Int32Array");
            if (ngso < 2 * (size_t)nbufs)
                THROW_RANGE(env, "readBatch: gso needs two entries per buffer");
        }
    }

    uint32_t n = 0;
    for (; n < nbufs; n++) {
        napi_value el;
        uint8_t *data;
        size_t cap;
        CHECK(env, napi_get_element(env, argv[1], n, &el));
        if (!get_u8(env, el, &data, &cap))
            THROW_TYPE(env, "readBatch: every element of bufs must be a Uint8Array");
        if ((size_t)offset >= cap)
            THROW_RANGE(env, "readBatch: offset leaves no room in a buffer");

        ssize_t r;
        struct virtio_net_hdr h;
        struct iovec iov[2] = {
            {.iov_base = &h, .iov_len = sizeof h},
            {.iov_base = data + offset, .iov_len = cap - (size_t)offset},
        };
        do
            r = gso ? readv(fd, iov, 2) : read(fd, data + offset, cap - (size_t)offset);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            /* Keep what was read; a persistent error shows on the next call. */
            if (n > 0)
                break;
            throw_errno(env, "read", errno);
            return NULL;
        }
        if (r == 0)
            break;
        if (gso) {
            if ((size_t)r < sizeof h) {
                n--; /* a bare header: nothing to hand on; reuse the slot */
                continue;
            }
            r -= (ssize_t)sizeof h;
            bool super = h.gso_type != VIRTIO_NET_HDR_GSO_NONE;
            gso[2 * n] = h.gso_type;
            gso[2 * n + 1] = super ? le16toh(h.gso_size) : 0;
            if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
                /* A super-packet goes back out partial (writeBatch puts the
                 * pseudo-header sum in for the kernel to finish per
                 * segment), so summing its 64 KiB here would be wasted:
                 * flag it instead. A packet that goes out whole needs its
                 * checksum now; one that cannot be completed stays wrong,
                 * and the engine treats it like any with a bad checksum. */
                if (super)
                    gso[2 * n] |= GSO_CSUM_PARTIAL;
                else
                    complete_checksum(data + offset, (size_t)r, &h);
            }
        }
        lengths[n] = (int32_t)r;
    }

    napi_value result;
    CHECK(env, napi_create_uint32(env, n, &result));
    return result;
}

/* ------------------------------------------------------------ writeBatch */

/* Errors that concern one packet only: skip it and go on with the batch.
 * EINVAL is what TUN answers for an empty packet or an IP version nibble
 * other than 4 or 6; the others are defensive (never seen on TUN). */
static bool packet_error(int err)
{
    switch (err) {
    case EINVAL:
    case EMSGSIZE:
    case EIO:
    case ENOMEM:
    case EPROTO:
    case EAFNOSUPPORT:
        return true;
    default:
        return false;
    }
}

static napi_value WriteBatch(napi_env env, napi_callback_info info)
{
    size_t argc = 7;
    napi_value argv[7];
    int fd;
    uint32_t nbufs;
    int32_t *offsets, *lengths, *stats = NULL, *gso = NULL;
    size_t noffsets, nlengths, nstats = 0, ngso = 0;
    int32_t count;

    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 5)
        THROW_TYPE(env, "writeBatch(fd, bufs, offsets, lengths, count[, stats[, gso]]): expected 5 to 7 arguments");
    if (!get_fd(env, argv[0], &fd))
        THROW_TYPE(env, "writeBatch: fd must be a non-negative integer");
    if (!get_array(env, argv[1], &nbufs))
        THROW_TYPE(env, "writeBatch: bufs must be an array of Uint8Array");
    if (!get_i32s(env, argv[2], &offsets, &noffsets))
        THROW_TYPE(env, "writeBatch: offsets must be an Int32Array");
    if (!get_i32s(env, argv[3], &lengths, &nlengths))
        THROW_TYPE(env, "writeBatch: lengths must be an Int32Array");
    if (!get_int32(env, argv[4], &count) || count < 0)
        THROW_TYPE(env, "writeBatch: count must be a non-negative integer");
    if ((uint32_t)count > nbufs || (size_t)count > noffsets || (size_t)count > nlengths)
        THROW_RANGE(env, "writeBatch: count exceeds bufs, offsets or lengths");
    if (argc >= 6) {
        napi_valuetype t;
        CHECK(env, napi_typeof(env, argv[5], &t));
        if (t != napi_undefined) {
            if (!get_i32s(env, argv[5], &stats, &nstats) || nstats < 2)
                THROW_TYPE(env, "writeBatch: stats must be an Int32Array of length >= 2");
        }
    }
    if (argc >= 7) {
        napi_valuetype t;
        CHECK(env, napi_typeof(env, argv[6], &t));
        if (t != napi_undefined) {
            if (!get_i32s(env, argv[6], &gso, &ngso))
                THROW_TYPE(env, "writeBatch: gso must be an Int32Array");
            if (ngso < 2 * (size_t)count)
                THROW_RANGE(env, "writeBatch: gso needs two entries per packet");
        }
    }

    int32_t errors = 0, last = 0;
    int32_t i = 0;
    for (; i < count; i++) {
        napi_value el;
        uint8_t *data;
        size_t cap;
        CHECK(env, napi_get_element(env, argv[1], (uint32_t)i, &el));
        if (!get_u8(env, el, &data, &cap))
            THROW_TYPE(env, "writeBatch: every element of bufs must be a Uint8Array");
        int32_t off = offsets[i], len = lengths[i];
        if (off < 0 || len < 0 || (size_t)off + (size_t)len > cap)
            THROW_RANGE(env, "writeBatch: offsets[i] + lengths[i] is outside bufs[i]");

        ssize_t r;
        struct virtio_net_hdr h;
        if (gso)
            fill_vnet_hdr(&h, data + off, (size_t)len, gso[2 * i], gso[2 * i + 1]);
        struct iovec iov[2] = {
            {.iov_base = &h, .iov_len = sizeof h},
            {.iov_base = data + off, .iov_len = (size_t)len},
        };
        do
            r = gso ? writev(fd, iov, 2) : write(fd, data + off, (size_t)len);
        while (r < 0 && errno == EINTR);
        if (r >= 0)
            continue; /* TUN writes are whole packets */
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
            break; /* queue full: the caller drops the rest */
        if (packet_error(err)) {
            errors++;
            last = err;
            continue;
        }
        /* Device-level failure (EBADF, EBADFD, ...): report what was done;
         * the next call will throw. */
        if (i > 0)
            break;
        throw_errno(env, "write", err);
        return NULL;
    }

    if (stats) {
        stats[0] = errors;
        stats[1] = last;
    }
    napi_value result;
    CHECK(env, napi_create_int32(env, i, &result));
    return result;
}

/* ------------------------------------------------------------------ poll */

typedef struct {
    uv_poll_t handle;
    napi_env env;
    napi_ref callback;
    napi_async_context async;
    napi_async_cleanup_hook_handle cleanup;
    bool stopping; /* stopPoll() called or the environment is going away */
    int owners;    /* the uv handle (until its close callback) + the JS external */
} poll_t;

static void poll_release(poll_t *p)
{
    if (--p->owners == 0)
        free(p);
}

static void poll_on_close(uv_handle_t *h)
{
    poll_t *p = (poll_t *)h->data;
    napi_delete_reference(p->env, p->callback);
    napi_async_destroy(p->env, p->async);
    /* Unregisters the hook, or tells Node it finished if it was running. */
    napi_remove_async_cleanup_hook(p->cleanup);
    poll_release(p);
}

static void poll_close(poll_t *p)
{
    if (p->stopping)
        return;
    p->stopping = true;
    uv_poll_stop(&p->handle);
    uv_close((uv_handle_t *)&p->handle, poll_on_close);
}

/* Close callback for a handle whose N-API side was never set up. */
static void poll_free_on_close(uv_handle_t *h)
{
    free(h->data);
}

/* The environment (main thread or a worker) is shutting down. */
static void poll_on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg)
{
    (void)handle;
    poll_close((poll_t *)arg);
}

static void poll_on_finalize(napi_env env, void *data, void *hint)
{
    (void)env;
    (void)hint;
    poll_release((poll_t *)data);
}

static void poll_on_ready(uv_poll_t *h, int status, int events)
{
    (void)events;
    poll_t *p = (poll_t *)h->data;
    if (p->stopping)
        return;
    napi_env env = p->env;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok)
        return;

    napi_value fn, recv, err = NULL, result;
    size_t argc = 0;
    if (status < 0) {
        /* The descriptor is unusable: stop watching (the handle stays open
         * until stopPoll) and hand the error to the callback. */
        uv_poll_stop(h);
        napi_value code, message;
        char msg[160];
        snprintf(msg, sizeof msg, "poll: %s", uv_strerror(status));
        if (napi_create_string_utf8(env, uv_err_name(status), NAPI_AUTO_LENGTH, &code) == napi_ok &&
            napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) == napi_ok &&
            napi_create_error(env, code, message, &err) == napi_ok)
            argc = 1;
    }
    /* The receiver is the global object: napi_make_callback needs an object. */
    if (napi_get_reference_value(env, p->callback, &fn) == napi_ok && fn != NULL &&
        napi_get_global(env, &recv) == napi_ok) {
        /* make_callback enters the async context made in poll() and runs
         * process.nextTick callbacks and microtasks after the call, as Node
         * does for its own I/O callbacks. */
        napi_status s = napi_make_callback(env, p->async, recv, fn, argc, argc ? &err : NULL, &result);
        if (s == napi_pending_exception) {
            napi_value exc;
            if (napi_get_and_clear_last_exception(env, &exc) == napi_ok)
                napi_fatal_exception(env, exc); /* -> process 'uncaughtException' */
        }
    }
    napi_close_handle_scope(env, scope);
}

static napi_value Poll(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2];
    int fd;
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (argc < 2 || !get_fd(env, argv[0], &fd))
        THROW_TYPE(env, "poll(fd, callback): fd must be a non-negative integer");
    napi_valuetype t;
    CHECK(env, napi_typeof(env, argv[1], &t));
    if (t != napi_function)
        THROW_TYPE(env, "poll: callback must be a function");

    uv_loop_t *loop;
    CHECK(env, napi_get_uv_event_loop(env, &loop));

    poll_t *p = calloc(1, sizeof *p);
    if (!p) {
        throw_errno(env, "poll", ENOMEM);
        return NULL;
    }
    p->env = env;
    p->handle.data = p;
    int rc = uv_poll_init(loop, &p->handle, fd);
    if (rc < 0) {
        free(p); /* uv_poll_init failed: the handle was never registered */
        throw_errno(env, "uv_poll_init", -rc);
        return NULL;
    }
    /* From here on the uv handle exists and must be closed to be freed. */
    p->owners = 1;

    napi_value name, handle;
    if (napi_create_reference(env, argv[1], 1, &p->callback) != napi_ok)
        goto fail_ref;
    if (napi_create_string_utf8(env, "fullnat_tun.poll", NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_async_init(env, NULL, name, &p->async) != napi_ok)
        goto fail_async;
    if (napi_add_async_cleanup_hook(env, poll_on_env_cleanup, p, &p->cleanup) != napi_ok)
        goto fail_hook;
    if (napi_create_external(env, p, poll_on_finalize, NULL, &handle) != napi_ok) {
        poll_close(p); /* releases everything above through the close callback */
        napi_throw_error(env, NULL, "fullnat_tun: napi_create_external failed");
        return NULL;
    }
    p->owners = 2;

    rc = uv_poll_start(&p->handle, UV_READABLE, poll_on_ready);
    if (rc < 0) {
        poll_close(p);
        throw_errno(env, "uv_poll_start", -rc);
        return NULL;
    }
    return handle;

fail_hook:
    napi_async_destroy(env, p->async);
fail_async:
    napi_delete_reference(env, p->callback);
fail_ref:
    /* Nothing N-API-side left to release: close the bare uv handle. */
    p->stopping = true;
    uv_close((uv_handle_t *)&p->handle, poll_free_on_close);
    napi_throw_error(env, NULL, "fullnat_tun: poll setup failed");
    return NULL;
}

static napi_value StopPoll(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    napi_valuetype t = napi_undefined;
    if (argc >= 1)
        CHECK(env, napi_typeof(env, argv[0], &t));
    if (t != napi_external)
        THROW_TYPE(env, "stopPoll(handle): handle must come from poll()");
    void *data;
    CHECK(env, napi_get_value_external(env, argv[0], &data));
    poll_close((poll_t *)data); /* idempotent */
    return NULL;
}

/* ------------------------------------------------------------------ init */

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */)
{
    napi_property_descriptor props[] = {
        {"open", NULL, Open, NULL, NULL, NULL, napi_enumerable, NULL},
        {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
        {"readBatch", NULL, ReadBatch, NULL, NULL, NULL, napi_enumerable, NULL},
        {"writeBatch", NULL, WriteBatch, NULL, NULL, NULL, napi_enumerable, NULL},
        {"poll", NULL, Poll, NULL, NULL, NULL, napi_enumerable, NULL},
        {"stopPoll", NULL, StopPoll, NULL, NULL, NULL, napi_enumerable, NULL},
        {"setPersist", NULL, SetPersist, NULL, NULL, NULL, napi_enumerable, NULL},
        {"setQueue", NULL, SetQueue, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
        return NULL;
    return exports;
}
