/*
 * fullnat_toa: the TOA the eBPF receiver (native/bpf/toa.bpf.c) stored for
 * one socket.
 *
 *   toaLookup(mapPath, fd) -> { family, port, kind, addr } | null
 *
 * The receiver keeps the client address of every connection that arrived
 * with a trusted TOA in a socket-local storage map (toa_sk, pinned by
 * `fullnat rs attach`). getpeername() reports it on AF_INET6 sockets, but an
 * AF_INET socket cannot hold an IPv6 address (FNAT64: an IPv6 client, an
 * IPv4 leg to this server); the application asks here instead. The map is
 * looked up with the socket's file descriptor as the key (the kernel finds
 * the socket behind it), through bpf(2) directly: BPF_OBJ_GET on the pin,
 * BPF_OBJ_GET_INFO_BY_FD to make sure it is that map (type, key and value
 * sizes — the kernel writes value_size bytes), BPF_MAP_LOOKUP_ELEM.
 *
 * Result: family 4 or 6; port in host order; kind 254 or 253; addr a
 * Buffer of 4 or 16 bytes in network order. null when the socket has no
 * stored TOA (ENOENT). A failing system call throws an Error shaped like
 * Node's system errors (code "ENOENT" when nothing is pinned at mapPath,
 * "EACCES"/"EPERM" without the privilege, "ENOTSOCK"/"EBADF" for an fd that
 * is no socket); a pin that is not the receiver's map throws code EINVAL; a
 * bad argument throws TypeError. The only caller is src/realserver/toa-peer.ts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>

#define ADDON_NAME "fullnat_toa"
#include "napi_errors.h"
#include <node_api.h>
#include <uv.h>

/* struct toa_addr in native/bpf/toa.bpf.c; keep the two in step. */
struct toa_addr {
    uint16_t family; /* AF_INET or AF_INET6 */
    uint16_t port;   /* network byte order */
    uint8_t kind;
    uint8_t pad[3];
    uint8_t addr[16];
};

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

static napi_value ToaLookup(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2];
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    napi_valuetype t0 = napi_undefined;
    if (argc >= 1)
        CHECK(env, napi_typeof(env, argv[0], &t0));
    if (argc < 2 || t0 != napi_string) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                              "toaLookup(mapPath, fd): mapPath must be a string");
        return NULL;
    }
    char path[4096];
    size_t plen = 0;
    CHECK(env, napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen));
    if (plen == 0 || plen >= sizeof path - 1 || strlen(path) != plen) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE",
                               "toaLookup: mapPath is empty, too long or holds a NUL");
        return NULL;
    }
    napi_valuetype t1 = napi_undefined;
    double d = -1;
    CHECK(env, napi_typeof(env, argv[1], &t1));
    if (t1 == napi_number)
        CHECK(env, napi_get_value_double(env, argv[1], &d));
    if (t1 != napi_number || d != d || d < 0 || d > 0x7fffffff || d != (double)(int)d) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                              "toaLookup(mapPath, fd): fd must be a non-negative integer");
        return NULL;
    }
    int sock = (int)d;

    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.pathname = (uint64_t)(uintptr_t)path;
    attr.file_flags = BPF_F_RDONLY;
    int map = (int)sys_bpf(BPF_OBJ_GET, &attr);
    if (map < 0) {
        throw_errno(env, "bpf BPF_OBJ_GET", errno);
        return NULL;
    }

    struct bpf_map_info mi;
    memset(&mi, 0, sizeof mi);
    memset(&attr, 0, sizeof attr);
    attr.info.bpf_fd = (uint32_t)map;
    attr.info.info_len = sizeof mi;
    attr.info.info = (uint64_t)(uintptr_t)&mi;
    if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0) {
        int e = errno;
        close(map);
        throw_errno(env, "bpf BPF_OBJ_GET_INFO_BY_FD", e);
        return NULL;
    }
    if (mi.type != BPF_MAP_TYPE_SK_STORAGE || mi.key_size != sizeof(int) ||
        mi.value_size != sizeof(struct toa_addr)) {
        char msg[192];
        close(map);
        snprintf(msg, sizeof msg,
                 "toaLookup: %s is not the TOA receiver's socket storage (map type %u, key %u "
                 "bytes, value %u bytes)",
                 path, mi.type, mi.key_size, mi.value_size);
        napi_throw_error(env, "EINVAL", msg);
        return NULL;
    }

    struct toa_addr value;
    memset(&value, 0, sizeof value);
    memset(&attr, 0, sizeof attr);
    attr.map_fd = (uint32_t)map;
    attr.key = (uint64_t)(uintptr_t)&sock;
    attr.value = (uint64_t)(uintptr_t)&value;
    long rc = sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr);
    int e = errno;
    close(map);
    if (rc < 0) {
        if (e == ENOENT) {
            napi_value none;
            CHECK(env, napi_get_null(env, &none));
            return none;
        }
        throw_errno(env, "bpf BPF_MAP_LOOKUP_ELEM", e);
        return NULL;
    }
    if (value.family != AF_INET && value.family != AF_INET6) {
        char msg[96];
        snprintf(msg, sizeof msg, "toaLookup: stored TOA has an unknown family %u", value.family);
        napi_throw_error(env, "EINVAL", msg);
        return NULL;
    }

    size_t alen = value.family == AF_INET ? 4 : 16;
    napi_value result, v;
    void *data = NULL;
    CHECK(env, napi_create_object(env, &result));
    CHECK(env, napi_create_uint32(env, value.family == AF_INET ? 4 : 6, &v));
    CHECK(env, napi_set_named_property(env, result, "family", v));
    CHECK(env, napi_create_uint32(env, ntohs(value.port), &v));
    CHECK(env, napi_set_named_property(env, result, "port", v));
    CHECK(env, napi_create_uint32(env, value.kind, &v));
    CHECK(env, napi_set_named_property(env, result, "kind", v));
    CHECK(env, napi_create_buffer_copy(env, alen, value.addr, &data, &v));
    CHECK(env, napi_set_named_property(env, result, "addr", v));
    return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */)
{
    napi_property_descriptor props[] = {
        {"toaLookup", NULL, ToaLookup, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
        return NULL;
    return exports;
}
