/*
 * fullnat_notify: systemd's readiness protocol (sd_notify(3)).
 *
 *   notify(socketPath, message) -> undefined
 *
 * One datagram on an AF_UNIX socket: what libsystemd's sd_notify does,
 * without linking libsystemd. Node has no unix datagram sockets, and
 * `systemd-notify --ready` from a child process is attributed to the child,
 * not to the service's main process (NotifyAccess=main refuses it). A path
 * starting with '@' is in the abstract namespace. The only caller is
 * src/io/sd-notify.ts. System-call failures throw an Error shaped like
 * Node's own system errors; bad arguments throw TypeError/RangeError.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ADDON_NAME "fullnat_notify"
#include "napi_errors.h"
#include <node_api.h>
#include <uv.h>

static napi_value Notify(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2];
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    napi_valuetype t0 = napi_undefined, t1 = napi_undefined;
    if (argc >= 2) {
        CHECK(env, napi_typeof(env, argv[0], &t0));
        CHECK(env, napi_typeof(env, argv[1], &t1));
    }
    if (t0 != napi_string || t1 != napi_string) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                              "notify(socketPath, message): both must be strings");
        return NULL;
    }
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t plen = 0;
    CHECK(env, napi_get_value_string_utf8(env, argv[0], addr.sun_path, sizeof addr.sun_path, &plen));
    if (plen == 0 || plen >= sizeof addr.sun_path - 1 || strlen(addr.sun_path) != plen) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE",
                               "notify: socketPath is empty, too long or holds a NUL");
        return NULL;
    }
    if (addr.sun_path[0] == '@')
        addr.sun_path[0] = '\0';
    char msg[512];
    size_t mlen = 0;
    CHECK(env, napi_get_value_string_utf8(env, argv[1], msg, sizeof msg, &mlen));
    if (mlen == 0 || mlen >= sizeof msg - 1) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "notify: message is empty or too long");
        return NULL;
    }

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw_errno(env, "socket", errno);
        return NULL;
    }
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    ssize_t r;
    do
        r = sendto(fd, msg, mlen, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen);
    while (r < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (r < 0) {
        throw_errno(env, "sendto NOTIFY_SOCKET", err);
        return NULL;
    }
    return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */)
{
    napi_property_descriptor props[] = {
        {"notify", NULL, Notify, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
        return NULL;
    return exports;
}
