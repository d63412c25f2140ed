/*
 * CSGI middleware kit: what every middleware repeats (SPEC.md 3.4 and 4.7),
 * done once (issue 15).
 *
 * A middleware is an application that calls another one (the inner one) with
 * a copy of the environ, its own responder and, when it changes the bytes,
 * its own body around the inner body. The kit does the rules of the spec:
 *
 *  - the environ copy holds the fields both sides define, its version is the
 *    lower one, its flags pass through unchanged (csgi_mw_environ_copy());
 *    headers can be set or removed on the copy (csgi_mw_environ_set_header());
 *  - the inner application's start_response() reaches a hook that may
 *    change status, reason and headers before the server sees them, and
 *    decides whether the body bytes are transformed;
 *  - when they are, body chunks and write() data go through one filter, in
 *    order (4.7 rules 2, 3 and 8); Content-Length is removed and total_length
 *    is -1 (rule 5); CSGI_BODY_FILE is cleared (rule 6);
 *  - when they are not and the headers are known when the inner call()
 *    returns, the inner body is handed to the server unchanged (a file body
 *    keeps sendfile());
 *  - the inner body is closed exactly once on every path: normal end, an
 *    error of the inner body or of the filter, the client going away, the
 *    middleware failing (4.7 rule 4); a finish hook then runs once per
 *    request, after the close, with the csgi_finish_reason.
 *
 * Use:
 *
 *     static int mw_call(void *state, struct csgi_environ *env,
 *                        const struct csgi_responder *resp, struct csgi_body *out)
 *     {
 *         struct my_mw *s = state;
 *         struct csgi_mw *m;
 *         int rc = csgi_mw_begin(s->api, &my_ops, s, sizeof(struct my_req), env, resp, out, &m);
 *
 *         if (rc < 0)
 *             return rc;
 *         ... look at env, fill csgi_mw_data(m), change csgi_mw_environ(m) ...
 *         return csgi_mw_run(m, s->inner, s->inner_state);
 *     }
 *
 * Everything per request comes from the request arena (api->alloc()); the
 * kit allocates no memory of its own that outlives the request.
 *
 * Part of libcsgi-util, a static library: not part of the plugin ABI.
 */
#ifndef CSGI_MIDDLEWARE_H
#define CSGI_MIDDLEWARE_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* The environ copy                                                    */
/* ------------------------------------------------------------------ */

/**
 * Copy @p src into @p dst for an inner application (SPEC.md 3.4): the fields
 * of the lower of src->version and this header's CSGI_ENVIRON_VERSION, that
 * version, the flags unchanged (bits this header does not know included);
 * fields of a higher version are zero. Strings and arrays are shared with
 * @p src (Borrowed: valid until the request is finished).
 * @return 0, or CSGI_EINVAL for a NULL argument or a src of version 0.
 */
int csgi_mw_environ_copy_to(struct csgi_environ *dst, const struct csgi_environ *src);

/**
 * csgi_mw_environ_copy_to() into memory from @p api->alloc() on src's request.
 * @return the copy (valid until the request is finished), or NULL when an
 *         argument is NULL, src has no request, or memory is short.
 */
struct csgi_environ *csgi_mw_environ_copy(const struct csgi_host_api *api,
                                          const struct csgi_environ *src);

/**
 * Set request header @p name on an environ copy: every header of that name
 * (ASCII case-insensitive) is removed and, unless @p value.ptr is NULL, one
 * "name: value" is appended. The header array is rebuilt in the request's
 * arena; the name and value are copied there too. Setting Content-Type also
 * sets env->content_type; Content-Length, which the body must match, is refused.
 * @return 0; CSGI_EINVAL for a NULL argument, an empty name, or
 *         Content-Length; CSGI_EHEADER when @p name is not a token or the
 *         value holds CR, LF or NUL; CSGI_ENOMEM.
 */
int csgi_mw_environ_set_header(const struct csgi_host_api *api, struct csgi_environ *env,
                               const char *name, struct csgi_str value);

/* ------------------------------------------------------------------ */
/* The per-request wrapper                                             */
/* ------------------------------------------------------------------ */

/** One request through a middleware. Opaque; lives in the request arena. */
struct csgi_mw;

/** A response as the inner application started it; a start hook may change it. */
struct csgi_mw_response {
    /** The status, 200..599. */
    int status;
    /** The reason phrase, or {NULL, 0}. */
    struct csgi_str reason;
    /** The headers: a copy in the request arena. Change with csgi_mw_header_set(). */
    struct csgi_header *headers;
    size_t n_headers;
    /** The inner application's exc_info (a replacement response), or NULL. Borrowed. */
    const struct csgi_exc_info *exc;
    /**
     * The inner body's total_length when it is known as the hook runs (the
     * inner call() returned), else -1. Content-Length, when the application
     * set one, is among the headers.
     */
    int64_t body_length;
    /**
     * 0 when the body can no longer be transformed: the inner body already
     * went to the server unchanged (a replacement response after call()
     * returned). A hook must then not return CSGI_MW_TRANSFORM.
     */
    int can_transform;
};

/** A start hook's result: transform the body bytes with the filter. */
#define CSGI_MW_TRANSFORM 1

/**
 * The hooks of a middleware. Static const, with designated initialisers.
 *
 * When the inner application calls start_response() inside its call() (and
 * writes nothing), the kit checks the response as a server would and returns
 * that result at once, but runs the start hook, and the server's
 * start_response(), only when call() has returned, so that the hook sees the
 * body's length. A write(), or a start_response() from inside the body's
 * next(), runs them at once.
 */
struct csgi_mw_ops {
#define CSGI_MW_OPS_VERSION 1
    uint32_t version;
    /**
     * The inner application called start_response(). May change @p r (its
     * status, reason and headers); the result goes to the server's
     * start_response(). Runs again for a replacement response (exc set): a
     * filter's state must then start over. May be NULL (nothing changes).
     * @return 0 (bytes pass unchanged), CSGI_MW_TRANSFORM (body chunks and
     *         write() data go through @c filter; Content-Length is removed),
     *         or a negative code, which the inner start_response() returns
     *         and the request fails with.
     */
    int (*start)(struct csgi_mw *m, struct csgi_mw_response *r);
    /**
     * Transform inner bytes: each chunk of the inner body and each write()
     * in order, then once with @p end 1 (and no bytes) after the last.
     * @param in   the inner bytes; Borrowed: valid during the call.
     * @param out  out: the bytes to send, possibly none; the memory is the
     *             filter's and must stay valid until its next call or finish.
     * @return 0, or a negative code: the request fails with it.
     */
    int (*filter)(struct csgi_mw *m, const void *in, size_t len, int end, struct csgi_chunk *out);
    /**
     * Once per request that went through csgi_mw_begin(), when it is finished
     * (after the inner body was closed), with its enum csgi_finish_reason:
     * release what the hooks acquired. May be NULL.
     */
    void (*finish)(struct csgi_mw *m, int reason);
};

/**
 * Start one request through a middleware: allocate the request's state (and
 * @p data_size zeroed bytes for the middleware, csgi_mw_data()), copy the
 * environ and register the finish hook.
 * @param api  the host services (alloc() and on_finished() are used). Borrowed;
 *             must outlive the request.
 * @param ops  the hooks. Borrowed; must outlive the request.
 * @param user the middleware's own state, for csgi_mw_user(). Borrowed.
 * @param env, resp, out  what the middleware's call() got.
 * @param m    out: the request's state. Valid until the request is finished.
 * @return 0; CSGI_EINVAL for a NULL argument or an ops version 0; CSGI_ENOMEM.
 *         On failure return the code from call(): nothing was registered.
 */
int csgi_mw_begin(const struct csgi_host_api *api, const struct csgi_mw_ops *ops, void *user,
                  size_t data_size, struct csgi_environ *env, const struct csgi_responder *resp,
                  struct csgi_body *out, struct csgi_mw **m);

/**
 * Call the inner application with the environ copy, the kit's responder and
 * a body initialised as a server does, then fill the outer body: the inner
 * body unchanged when nothing is transformed and the headers are known,
 * otherwise the kit's wrapper. Call it at most once per request.
 * @return what the inner application returned (CSGI_EDECLINED included; and
 *         CSGI_PENDING, SPEC.md 4.14, after which the body is filled as for
 *         CSGI_OK and waits for resume()), or
 *         the code the middleware failed with (a hook's); on failure the
 *         inner body is closed. Return it from call().
 */
int csgi_mw_run(struct csgi_mw *m, csgi_app_fn inner, void *inner_state);

/** The environ the inner application gets; change it before csgi_mw_run(). */
struct csgi_environ *csgi_mw_environ(struct csgi_mw *m);

/** The environ the middleware got. Borrowed: valid until the request is finished. */
const struct csgi_environ *csgi_mw_outer_environ(const struct csgi_mw *m);

/** The @c data_size bytes given to csgi_mw_begin(). Valid until the request is finished. */
void *csgi_mw_data(struct csgi_mw *m);

/** The @c user pointer given to csgi_mw_begin(). */
void *csgi_mw_user(const struct csgi_mw *m);

/** The host services given to csgi_mw_begin(). */
const struct csgi_host_api *csgi_mw_api(const struct csgi_mw *m);

/**
 * Set response header @p name in a start hook: remove every header of that
 * name (ASCII case-insensitive) and, unless @p value.ptr is NULL, append one.
 * @p name and @p value are Borrowed: they must stay valid until the request
 * is finished (static strings, or memory from alloc()).
 * @return 0; CSGI_EINVAL for a NULL argument; CSGI_ENOMEM.
 */
int csgi_mw_header_set(struct csgi_mw *m, struct csgi_mw_response *r, const char *name,
                       struct csgi_str value);

#ifdef __cplusplus
}
#endif

#endif /* CSGI_MIDDLEWARE_H */
