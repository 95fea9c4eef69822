/*
 * fullnat_peercred: who is on the other end of a unix stream socket.
 *
 *   peerCredentials(fd) -> { pid, uid, gid }
 *
 * getsockopt(SO_PEERCRED) on a connected AF_UNIX socket: the credentials the
 * peer had when it called connect(2) (or socketpair(2)), as the kernel
 * recorded them — the peer cannot choose them. The only caller is
 * src/control/peercred.ts, which the control socket uses to refuse anyone
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

#include <node_api.h>
#include <uv.h>

/* Throws an Error like Node's system errors: message "<syscall>: <strerror>". */
static void throw_errno(napi_env env, const char *syscall, int err)
{
    char text[128];
    char msg[256];
    /* GNU strerror_r (we build with _GNU_SOURCE): returns the string. */
    const char *s = strerror_r(err, text, sizeof text);
    snprintf(msg, sizeof msg, "%s: %s", syscall, s);

    napi_value code, message, error, v;
    const char *name = err > 0 ? uv_err_name(-err) : "EUNKNOWN";
    if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
        napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
        napi_create_error(env, code, message, &error) != napi_ok)
        return;
    if (napi_create_int32(env, -err, &v) == napi_ok)
        napi_set_named_property(env, error, "errno", v);
    if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v) == napi_ok)
        napi_set_named_property(env, error, "syscall", v);
    napi_throw(env, error);
}

/* Returns NULL from the calling function if a napi call failed (an
 * exception is then usually pending already). */
#define CHECK(env, call)                                                            \
    do {                                                                            \
        if ((call) != napi_ok) {                                                    \
            bool pending_ = false;                                                  \
            napi_is_exception_pending((env), &pending_);                            \
            if (!pending_)                                                          \
                napi_throw_error((env), NULL, "fullnat_peercred: " #call " failed"); \
            return NULL;                                                            \
        }                                                                           \
    } while (0)

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
