/*
 * Error helpers shared by the native addons. Define ADDON_NAME (a string
 * literal) before including: it prefixes the message of a failed napi call.
 */
#ifndef FULLNAT_NAPI_ERRORS_H
#define FULLNAT_NAPI_ERRORS_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <node_api.h>
#include <uv.h>

/* Throws an Error like Node's system errors: message "<syscall>: <strerror>",
 * code "EXXX", errno -E, syscall. */
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
#define CHECK(env, call)                                                       \
    do {                                                                       \
        if ((call) != napi_ok) {                                               \
            bool pending_ = false;                                             \
            napi_is_exception_pending((env), &pending_);                       \
            if (!pending_)                                                     \
                napi_throw_error((env), NULL, ADDON_NAME ": " #call " failed"); \
            return NULL;                                                       \
        }                                                                      \
    } while (0)

#endif
