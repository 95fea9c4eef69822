/*
 * fullnat_peercred: who is on the other end of a unix stream socket.
 *
 *   peerCredentials(fd) -> { pid, uid, gid }
 *
 * getsockopt(SO_PEERCRED) on a connected AF_UNIX socket: the credentials the
 * peer had when it called connect(2) (or socketpair(2)), as the kernel
 * recorded them — the peer cannot choose them. The only caller is
 * src/control/socket/peercred.ts, which the control socket uses to refuse anyone
 * who is neither root nor the LB's own user.
 *
 * System-call failures throw an Error shaped like Node's own system errors
 * ({ message: "<syscall>: <strerror>", code: "EXXX", errno: -E, syscall });
 * a socket that is not AF_UNIX throws one with code ENOTSUP (SO_PEERCRED
 * then reports no real peer); a bad argument throws TypeError.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define ADDON_NAME "fullnat_peercred"
#include "napi_errors.h"
#include <node_api.h>
#include <uv.h>

static napi_value PeerCredentials(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));

    napi_valuetype t = napi_undefined;
    if (argc >= 1)
        CHECK(env, napi_typeof(env, argv[0], &t));
    double d = -1;
    if (t == napi_number)
        CHECK(env, napi_get_value_double(env, argv[0], &d));
    if (t != napi_number || d != d || d < 0 || d > 0x7fffffff || d != (double)(int)d) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                              "peerCredentials(fd): fd must be a non-negative integer");
        return NULL;
    }
    int fd = (int)d;

    /* SO_PEERCRED on a TCP or UDP socket "succeeds" with pid 0 and the
     * overflow uid: only a unix socket has a peer the kernel vouches for. */
    int domain = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) {
        throw_errno(env, "getsockopt SO_DOMAIN", errno);
        return NULL;
    }
    if (domain != AF_UNIX) {
        char msg[96];
        snprintf(msg, sizeof msg, "peerCredentials: fd %d is not a unix socket (family %d)", fd,
                 domain);
        napi_throw_error(env, "ENOTSUP", msg);
        return NULL;
    }

    struct ucred cred;
    memset(&cred, 0, sizeof cred);
    len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        throw_errno(env, "getsockopt SO_PEERCRED", errno);
        return NULL;
    }

    napi_value result, v;
    CHECK(env, napi_create_object(env, &result));
    CHECK(env, napi_create_int32(env, cred.pid, &v));
    CHECK(env, napi_set_named_property(env, result, "pid", v));
    CHECK(env, napi_create_uint32(env, cred.uid, &v));
    CHECK(env, napi_set_named_property(env, result, "uid", v));
    CHECK(env, napi_create_uint32(env, cred.gid, &v));
    CHECK(env, napi_set_named_property(env, result, "gid", v));
    return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */)
{
    napi_property_descriptor props[] = {
        {"peerCredentials", NULL, PeerCredentials, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
        return NULL;
    return exports;
}
