/*
 * libcsgi-util: the middleware kit (see csgi/middleware.h).
 */
#include <stddef.h>
#include <string.h>

#include "csgi/middleware.h"
#include "csgi_internal.h"

/* Spare slots in a start hook's header copy, for the headers it adds. */
#define MW_HEADER_SPARE 4

/* Where the wrapped body is. */
enum mw_body_state {
    MW_BODY_NONE,      /* no inner body yet, or the inner call failed */
    MW_BODY_WRAPPED,   /* the kit's body is the server's; the inner one is ours to close */
    MW_BODY_FORWARDED, /* the inner body went to the server unchanged */
    MW_BODY_CLOSED     /* the inner body was closed */
};

struct csgi_mw {
    const struct csgi_host_api *api;
    const struct csgi_mw_ops *ops;
    void *user;
    void *data;
    const struct csgi_environ *outer_env;
    const struct csgi_responder *outer;
    struct csgi_body *out;
    struct csgi_environ env;
    struct csgi_responder self;
    struct csgi_body inner;
    enum mw_body_state body;
    int started;   /* the server accepted a start_response() */
    int transform; /* body bytes go through ops->filter */
    int ended;     /* the filter saw the end */
    int failed;    /* the code the middleware failed with, else 0 */
    int ran;       /* csgi_mw_run() was called */
    int in_call;   /* inside the inner call() */
    /* A start_response() waiting for the hook (inside the inner call()). */
    int has_pending;
    struct csgi_mw_response pending;
    struct csgi_exc_info pending_exc;
};

/* alloc() aligns for any type: so is the middleware's data after the struct. */
#define MW_DATA_OFFSET                                                                             \
    ((sizeof(struct csgi_mw) + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) *                \
     _Alignof(max_align_t))

int
csgi_mw_environ_copy_to(struct csgi_environ *dst, const struct csgi_environ *src)
{
    if (!dst || !src || src->version < 1)
        return CSGI_EINVAL;
    /* Only the fields of the lower version: an older server's struct is shorter. */
    if (src->version >= CSGI_ENVIRON_VERSION) {
        *dst = *src;
        dst->version = CSGI_ENVIRON_VERSION;
        return CSGI_OK;
    }
    memset(dst, 0, sizeof(*dst));
    memcpy(dst, src,
           src->version >= 2 ? offsetof(struct csgi_environ, tls)
                             : offsetof(struct csgi_environ, host));
    return CSGI_OK;
}

struct csgi_environ *
csgi_mw_environ_copy(const struct csgi_host_api *api, const struct csgi_environ *src)
{
    struct csgi_environ *e;

    if (!api || !api->alloc || !src || !src->request)
        return NULL;
    e = api->alloc(src->request, sizeof(*e));
    if (!e || csgi_mw_environ_copy_to(e, src) < 0)
        return NULL;
    return e;
}

/* A copy of [p, p+n) in the request's arena, or {NULL, 0} when memory is short. */
static struct csgi_str
mw_dup(const struct csgi_host_api *api, struct csgi_request *req, const char *p, size_t n)
{
    char *c = api->alloc(req, n + 1);

    if (!c)
        return (struct csgi_str){NULL, 0};
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    return (struct csgi_str){c, n};
}

/*
 * Copy the n headers at @p h into a new array of @p cap slots from the arena,
 * leaving out those called @p name. Returns the array (its length in *kept),
 * or NULL when memory is short.
 */
static struct csgi_header *
mw_headers_without(const struct csgi_host_api *api, struct csgi_request *req,
                   const struct csgi_header *h, size_t n, size_t cap, const char *name,
                   size_t *kept)
{
    struct csgi_header *v = api->alloc(req, (cap ? cap : 1) * sizeof(*v));

    *kept = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!csgi__str_ieq(h[i].name.ptr, h[i].name.len, name))
            v[(*kept)++] = h[i];
    }
    return v;
}

int
csgi_mw_environ_set_header(const struct csgi_host_api *api, struct csgi_environ *env,
                           const char *name, struct csgi_str value)
{
    size_t nlen = name ? strlen(name) : 0, kept;
    struct csgi_header *v;

    if (!api || !api->alloc || !env || !env->request || !name || nlen == 0 ||
        (value.len && !value.ptr))
        return CSGI_EINVAL;
    if (csgi__str_ieq(name, nlen, "content-length"))
        return CSGI_EINVAL;
    if (!csgi__is_token(name, nlen) || (value.ptr && !csgi__is_field_value(value.ptr, value.len)))
        return CSGI_EHEADER;
    v = mw_headers_without(api, env->request, env->headers, env->n_headers, env->n_headers + 1,
                           name, &kept);
    if (!v)
        return CSGI_ENOMEM;
    if (value.ptr) {
        v[kept].name = mw_dup(api, env->request, name, nlen);
        v[kept].value = mw_dup(api, env->request, value.ptr, value.len);
        if (!v[kept].name.ptr || !v[kept].value.ptr)
            return CSGI_ENOMEM;
        kept++;
    }
    if (csgi__str_ieq(name, nlen, "content-type"))
        env->content_type = value.ptr ? v[kept - 1].value : (struct csgi_str){NULL, 0};
    env->headers = v;
    env->n_headers = kept;
    return CSGI_OK;
}

int
csgi_mw_header_set(struct csgi_mw *m, struct csgi_mw_response *r, const char *name,
                   struct csgi_str value)
{
    size_t kept;
    struct csgi_header *v;

    if (!m || !r || !name || (value.len && !value.ptr))
        return CSGI_EINVAL;
    v = mw_headers_without(m->api, m->outer_env->request, r->headers, r->n_headers,
                           r->n_headers + 1, name, &kept);
    if (!v)
        return CSGI_ENOMEM;
    if (value.ptr)
        v[kept++] = (struct csgi_header){{name, strlen(name)}, value};
    r->headers = v;
    r->n_headers = kept;
    return CSGI_OK;
}

/* Close the inner body if it is still ours to close: exactly once. */
static void
mw_close_inner(struct csgi_mw *m)
{
    if (m->body != MW_BODY_WRAPPED && m->body != MW_BODY_NONE)
        return;
    m->body = MW_BODY_CLOSED;
    if (m->inner.close)
        m->inner.close(m->inner.ctx);
}

/*
 * Keep a deep copy of the inner application's start_response() arguments
 * until the hook runs. Returns 0 or CSGI_ENOMEM.
 */
static int
mw_defer(struct csgi_mw *m, int status, struct csgi_str reason, const struct csgi_header *headers,
         size_t n_headers, const struct csgi_exc_info *exc)
{
    const struct csgi_host_api *api = m->api;
    struct csgi_request *req = m->outer_env->request;
    struct csgi_header *h = api->alloc(req, (n_headers + MW_HEADER_SPARE) * sizeof(*h));

    if (!h)
        return CSGI_ENOMEM;
    for (size_t i = 0; i < n_headers; i++) {
        h[i].name = mw_dup(api, req, headers[i].name.ptr, headers[i].name.len);
        h[i].value = mw_dup(api, req, headers[i].value.ptr, headers[i].value.len);
        if (!h[i].name.ptr || !h[i].value.ptr)
            return CSGI_ENOMEM;
    }
    m->pending.status = status;
    m->pending.reason = reason.ptr ? mw_dup(api, req, reason.ptr, reason.len) : reason;
    m->pending.headers = h;
    m->pending.n_headers = n_headers;
    m->pending.exc = NULL;
    if (exc) {
        m->pending_exc = *exc;
        m->pending_exc.message = mw_dup(api, req, exc->message.ptr, exc->message.len);
        m->pending.exc = &m->pending_exc;
    }
    if ((reason.ptr && !m->pending.reason.ptr) || (exc && !m->pending_exc.message.ptr))
        return CSGI_ENOMEM;
    m->has_pending = 1;
    return CSGI_OK;
}

/*
 * Run the start hook on the deferred response (@p body_length: the inner
 * body's total_length, -1 when not known yet) and pass the result to the
 * server's start_response(). Returns what that returned, or the hook's error.
 */
static int
mw_dispatch(struct csgi_mw *m, int64_t body_length)
{
    struct csgi_mw_response r = m->pending;
    size_t kept;
    int hook, rc;

    m->has_pending = 0;
    r.body_length = body_length;
    r.can_transform = m->body != MW_BODY_FORWARDED && m->ops->filter != NULL;
    hook = m->ops->start(m, &r);
    if (hook == CSGI_MW_TRANSFORM && !r.can_transform)
        hook = CSGI_ESTATE;
    if (hook < 0) {
        m->failed = hook;
        return hook;
    }
    if (hook == CSGI_MW_TRANSFORM) {
        /* The bytes change: the inner length no longer holds (4.7 rule 5). */
        r.headers = mw_headers_without(m->api, m->outer_env->request, r.headers, r.n_headers,
                                       r.n_headers, "content-length", &kept);
        if (!r.headers)
            return CSGI_ENOMEM;
        r.n_headers = kept;
    }
    rc = m->outer->start_response(m->outer->ctx, r.status, r.reason, r.headers, r.n_headers, r.exc);
    if (rc == CSGI_OK) {
        m->started = 1;
        m->transform = hook == CSGI_MW_TRANSFORM;
        m->ended = 0;
    }
    return rc;
}

/*
 * The inner start_response(). Inside the inner call(), before any write(),
 * the response waits (checked as the server checks it, so the inner
 * application gets the same answer) until call() returns, so that the hook
 * sees the body's length; otherwise the hook and the server's
 * start_response() run at once.
 */
static int
mw_start_response(void *ctx, int status, struct csgi_str reason, const struct csgi_header *headers,
                  size_t n_headers, const struct csgi_exc_info *exc)
{
    struct csgi_mw *m = ctx;
    int rc;

    if (m->failed)
        return m->failed;
    if (!m->ops->start) {
        rc = m->outer->start_response(m->outer->ctx, status, reason, headers, n_headers, exc);
        m->started |= rc == CSGI_OK;
        return rc;
    }
    if (n_headers && !headers)
        return CSGI_EINVAL;
    rc = csgi__check_response_head(status, reason, headers, n_headers, NULL, NULL, 0);
    if (rc < 0)
        return rc;
    if (exc && exc->version < 1)
        return CSGI_EINVAL;
    if (!exc && (m->started || m->has_pending))
        return CSGI_ESTATE;
    rc = mw_defer(m, status, reason, headers, n_headers, exc);
    if (rc < 0)
        return rc;
    if (m->in_call && !m->started)
        return CSGI_OK;
    return mw_dispatch(m, -1);
}

/* Run the filter; a failure fails the request. */
static int
mw_filter(struct csgi_mw *m, const void *in, size_t len, int end, struct csgi_chunk *out)
{
    int rc;

    *out = (struct csgi_chunk){NULL, 0};
    rc = m->ops->filter(m, in, len, end, out);
    if (rc < 0) {
        m->failed = rc;
        return rc;
    }
    if (out->len && !out->ptr) {
        m->failed = CSGI_EAPP;
        return CSGI_EAPP;
    }
    return CSGI_OK;
}

/* The inner write(): transformed like a chunk when the body is (4.7 rule 8). */
static int
mw_write(void *ctx, const void *data, size_t len)
{
    struct csgi_mw *m = ctx;
    struct csgi_chunk c;
    int rc;

    if (m->failed)
        return m->failed;
    if (m->has_pending) {
        /* Bytes go out now: the response cannot wait for the body's length. */
        rc = mw_dispatch(m, -1);
        if (rc < 0)
            return rc;
    }
    if (!m->transform)
        return m->outer->write(m->outer->ctx, data, len);
    if (!data && len)
        return CSGI_EINVAL;
    rc = mw_filter(m, data, len, 0, &c);
    if (rc < 0)
        return rc;
    /* Even with no output: the inner write() makes the headers count as sent. */
    return m->outer->write(m->outer->ctx, c.ptr, c.len);
}

/* The kit's body: one outer chunk per inner chunk, then the filter's last bytes. */
static int
mw_next(void *ctx, struct csgi_chunk *out)
{
    struct csgi_mw *m = ctx;
    struct csgi_chunk c = {NULL, 0};
    int rc;

    if (m->failed)
        return m->failed;
    if (m->ended)
        return CSGI_DONE;
    rc = m->inner.next ? m->inner.next(m->inner.ctx, &c) : CSGI_DONE;
    if (rc != CSGI_OK && rc != CSGI_DONE)
        return rc;
    if (!m->transform) {
        if (rc == CSGI_OK)
            *out = c;
        return rc;
    }
    if (rc == CSGI_DONE) {
        m->ended = 1;
        rc = mw_filter(m, NULL, 0, 1, out);
        if (rc < 0)
            return rc;
        return out->len ? CSGI_OK : CSGI_DONE;
    }
    return mw_filter(m, c.ptr, c.len, 0, out);
}

static void
mw_close(void *ctx)
{
    mw_close_inner(ctx);
}

/* The request is finished: close what nobody closed, then the finish hook. */
static void
mw_finished(void *arg, int reason)
{
    struct csgi_mw *m = arg;

    mw_close_inner(m);
    if (m->ops->finish)
        m->ops->finish(m, reason);
}

int
csgi_mw_begin(const struct csgi_host_api *api, const struct csgi_mw_ops *ops, void *user,
              size_t data_size, struct csgi_environ *env, const struct csgi_responder *resp,
              struct csgi_body *out, struct csgi_mw **mp)
{
    struct csgi_mw *m;
    int rc;

    if (!api || !api->alloc || !api->on_finished || !ops || ops->version < 1 || !env ||
        !env->request || !resp || !out || !mp)
        return CSGI_EINVAL;
    m = api->alloc(env->request, MW_DATA_OFFSET + data_size);
    if (!m)
        return CSGI_ENOMEM;
    memset(m, 0, MW_DATA_OFFSET + data_size);
    m->api = api;
    m->ops = ops;
    m->user = user;
    m->data = data_size ? (char *)m + MW_DATA_OFFSET : NULL;
    m->outer_env = env;
    m->outer = resp;
    m->out = out;
    rc = csgi_mw_environ_copy_to(&m->env, env);
    if (rc < 0)
        return rc;
    m->self = (struct csgi_responder){.version = CSGI_RESPONDER_VERSION,
                                      .ctx = m,
                                      .start_response = mw_start_response,
                                      .write = mw_write};
    /* 4.7 rule 7: the inner body starts as a server's does. */
    m->inner = (struct csgi_body){.version = CSGI_BODY_VERSION, .total_length = -1};
    rc = api->on_finished(env->request, mw_finished, m);
    if (rc < 0)
        return rc;
    *mp = m;
    return CSGI_OK;
}

int
csgi_mw_run(struct csgi_mw *m, csgi_app_fn inner, void *inner_state)
{
    int rc;

    if (!m || !inner || m->ran)
        return CSGI_EINVAL;
    m->ran = 1;
    m->in_call = 1;
    rc = inner(inner_state, &m->env, &m->self, &m->inner);
    m->in_call = 0;
    /* CSGI_PENDING (SPEC 4.14): as CSGI_OK, and passed on; the body waits for resume(). */
    if (rc != CSGI_OK && rc != CSGI_PENDING) {
        /* The inner application released its body (4.1); a waiting response never started. */
        m->body = MW_BODY_CLOSED;
        m->has_pending = 0;
        return m->failed ? m->failed : rc;
    }
    if (m->has_pending && !m->failed) {
        rc = mw_dispatch(m, m->inner.total_length);
        if (rc < 0 && !m->failed)
            m->failed = rc;
    }
    if (m->failed) {
        mw_close_inner(m);
        return m->failed;
    }
    if (m->started && !m->transform) {
        /* Nothing changes the bytes: the server gets the inner body as it is (4.7 rule 6). */
        *m->out = m->inner;
        m->body = MW_BODY_FORWARDED;
        return rc;
    }
    m->body = MW_BODY_WRAPPED;
    m->out->flags = 0;
    m->out->total_length = m->transform ? -1 : m->inner.total_length;
    m->out->ctx = m;
    m->out->next = mw_next;
    m->out->close = mw_close;
    return rc;
}

struct csgi_environ *
csgi_mw_environ(struct csgi_mw *m)
{
    return m ? &m->env : NULL;
}

const struct csgi_environ *
csgi_mw_outer_environ(const struct csgi_mw *m)
{
    return m ? m->outer_env : NULL;
}

void *
csgi_mw_data(struct csgi_mw *m)
{
    return m ? m->data : NULL;
}

void *
csgi_mw_user(const struct csgi_mw *m)
{
    return m ? m->user : NULL;
}

const struct csgi_host_api *
csgi_mw_api(const struct csgi_mw *m)
{
    return m ? m->api : NULL;
}
