/*
 * CSGI error codes.
 *
 * An int result of 0 (CSGI_OK) means success; a negative CSGI_E* value means
 * failure. The values are fixed by this header on every platform (they were
 * taken from Linux errno numbers); compare codes by name, not with -errno. Positive results are
 * documented per function (CSGI_DONE ends a body; CSGI_PENDING, since 1.2,
 * says that a body or a response waits for csgi_host_api.resume()). The list is append-only:
 * codes are never renumbered; a retired code stays as CSGI_E_OBSOLETE_<n>.
 */
#ifndef CSGI_ERRORS_H
#define CSGI_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, message). Values below -1000 have no errno equivalent. */
#define CSGI_ERRNO_MAP(XX)                                                                         \
    XX(EPERM, -1, "operation not permitted")                                                       \
    XX(ENOENT, -2, "no such entry")                                                                \
    XX(EIO, -5, "input/output error")                                                              \
    XX(EBADF, -9, "bad file descriptor")                                                           \
    XX(ENOMEM, -12, "out of memory")                                                               \
    XX(EINVAL, -22, "invalid argument")                                                            \
    XX(ENOSYS, -38, "function not implemented")                                                    \
    XX(ENOTSUP, -95, "operation not supported")                                                    \
    XX(ECONNRESET, -104, "connection reset by peer")                                               \
    XX(ETIMEDOUT, -110, "timed out")                                                               \
    XX(EDECLINED, -1000, "handler declined the request")                                           \
    XX(ESTATE, -1001, "call not allowed in the current state")                                     \
    XX(EHEADERS_SENT, -1002, "response headers already sent")                                      \
    XX(EABI, -1003, "incompatible plugin ABI")                                                     \
    XX(EHEADER, -1004, "invalid response header")                                                  \
    XX(ESTATUS, -1005, "invalid response status")                                                  \
    XX(ELENGTH, -1006, "body length does not match the declared length")                           \
    XX(ETOOBIG, -1007, "request entity too large")                                                 \
    XX(EAPP, -1008, "application error")

/** Error codes. CSGI_OK, CSGI_DONE and CSGI_PENDING are not errors. */
enum csgi_error_code {
    CSGI_OK = 0,
    CSGI_DONE = 1,
    /**
     * Since 1.2 (host API version 3): from next(), "no chunk yet"; from
     * call(), "the response comes later". The server waits for
     * csgi_host_api.resume() without holding a thread (SPEC.md 4.14).
     */
    CSGI_PENDING = 2,
#define CSGI__XX_ENUM(name, value, msg) CSGI_##name = (value),
    CSGI_ERRNO_MAP(CSGI__XX_ENUM)
#undef CSGI__XX_ENUM
        CSGI__ERRNO_MAP_END = -1999
};

/**
 * A static, human-readable message for an error code.
 * Borrowed: the string is static; never free it.
 * @return the message, "success" for CSGI_OK, "end of body" for CSGI_DONE,
 *         "pending: waits for resume()" for CSGI_PENDING and
 *         "unknown error" for a code not in the map.
 */
static inline const char *
csgi_strerror(int code)
{
    switch (code) {
    case CSGI_OK:
        return "success";
    case CSGI_DONE:
        return "end of body";
    case CSGI_PENDING:
        return "pending: waits for resume()";
#define CSGI__XX_STR(name, value, msg)                                                             \
    case (value):                                                                                  \
        return (msg);
        CSGI_ERRNO_MAP(CSGI__XX_STR)
#undef CSGI__XX_STR
    default:
        return "unknown error";
    }
}

/**
 * The symbolic name of an error code ("EINVAL"), for logs.
 * Borrowed: the string is static.
 */
static inline const char *
csgi_err_name(int code)
{
    switch (code) {
    case CSGI_OK:
        return "OK";
    case CSGI_DONE:
        return "DONE";
    case CSGI_PENDING:
        return "PENDING";
#define CSGI__XX_NAME(name, value, msg)                                                            \
    case (value):                                                                                  \
        return #name;
        CSGI_ERRNO_MAP(CSGI__XX_NAME)
#undef CSGI__XX_NAME
    default:
        return "UNKNOWN";
    }
}

#ifdef __cplusplus
}
#endif

#endif /* CSGI_ERRORS_H */
