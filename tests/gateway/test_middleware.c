/*
 * Tests for the middleware kit (gateway/lib/middleware.c, csgi/middleware.h)
 * and for deploy-time composition on the test client (csgi_test_client_wrap):
 * a test middleware (an upper-casing filter with a header hook) wraps small
 * applications; the test client is the host, and every request's close and
 * finish calls are counted.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/middleware.h>
#include <csgi/testclient.h>
#include <csgi/util.h>
#include <csgi/validator.h>

static const struct csgi_str no_reason = {NULL, 0};
static const struct csgi_header ct_plain[] = {
    {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
};
static const struct csgi_header with_cl[] = {
    {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
    {CSGI_STR_INIT("Content-Length"), CSGI_STR_INIT("13")},
};

/* What the inner applications and the hooks saw. */
static struct {
    int inner_closes, finishes, finish_reason, starts, filters;
    int inner_rc;        /* what the inner next() returns after its chunks */
    int hook_rc;         /* what the start hook returns (0, CSGI_MW_TRANSFORM, error) */
    int filter_fail_at;  /* 1-based filter call that fails; 0 never */
    int64_t body_length; /* r->body_length the hook saw */
    int inner_env_version;
    char inner_path[64], inner_header[64], inner_ctype[64];
    const struct csgi_body *inner_body; /* the body the inner app filled */
} g;

static void
setup(void)
{
    memset(&g, 0, sizeof(g));
    g.hook_rc = CSGI_MW_TRANSFORM;
    g.inner_rc = CSGI_DONE;
}

/* ------------------------------------------------------------------ */
/* Inner applications                                                  */
/* ------------------------------------------------------------------ */

struct chunks {
    const char *const *v;
    size_t i, n;
};

static int
chunks_next(void *ctx, struct csgi_chunk *out)
{
    struct chunks *c = ctx;

    if (c->i == c->n)
        return g.inner_rc;
    out->ptr = c->v[c->i];
    out->len = strlen(c->v[c->i++]);
    return CSGI_OK;
}

static void
chunks_close(void *ctx)
{
    (void)ctx;
    g.inner_closes++;
}

static const char *const three[] = {"one ", "two ", "three"};

/* Records the environ, writes "w:" through write() when asked, returns three chunks. */
static int
inner_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    struct chunks *c = env->host->alloc(env->request, sizeof(*c));
    struct csgi_str v = {NULL, 0};
    int rc;

    (void)state;
    g.inner_env_version = (int)env->version;
    snprintf(g.inner_path, sizeof(g.inner_path), "%.*s", (int)env->path_info.len,
             env->path_info.ptr);
    csgi_header_get(env, "X-Added", 0, &v);
    snprintf(g.inner_header, sizeof(g.inner_header), "%.*s", (int)v.len, v.ptr ? v.ptr : "");
    snprintf(g.inner_ctype, sizeof(g.inner_ctype), "%.*s", (int)env->content_type.len,
             env->content_type.ptr ? env->content_type.ptr : "");
    if (csgi_str_eq_c(env->query_string, "len"))
        rc = resp->start_response(resp->ctx, 200, no_reason, with_cl, 2, NULL);
    else
        rc = resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
    if (rc < 0)
        return rc;
    if (csgi_str_eq_c(env->query_string, "write")) {
        rc = resp->write(resp->ctx, "w:", 2);
        if (rc < 0)
            return rc;
    }
    *c = (struct chunks){three, 0, 3};
    out->ctx = c;
    out->next = chunks_next;
    out->close = chunks_close;
    out->total_length = csgi_str_eq_c(env->query_string, "len") ? 13 : -1;
    g.inner_body = out;
    return CSGI_OK;
}

/* ------------------------------------------------------------------ */
/* The test middleware: X-Mw header, upper-cases the body              */
/* ------------------------------------------------------------------ */

struct up_req {
    char buf[64];
};

static int
up_start(struct csgi_mw *m, struct csgi_mw_response *r)
{
    g.starts++;
    g.body_length = r->body_length;
    if (csgi_mw_header_set(m, r, "X-Mw", csgi_str_c("up")) < 0)
        return CSGI_ENOMEM;
    r->status = 203;
    return g.hook_rc;
}

static int
up_filter(struct csgi_mw *m, const void *in, size_t len, int end, struct csgi_chunk *out)
{
    struct up_req *u = csgi_mw_data(m);

    if (++g.filters == g.filter_fail_at)
        return CSGI_EIO;
    if (end) {
        out->ptr = ".";
        out->len = 1;
        return CSGI_OK;
    }
    ck_assert_uint_le(len, sizeof(u->buf));
    for (size_t i = 0; i < len; i++)
        u->buf[i] = (char)toupper(((const unsigned char *)in)[i]);
    out->ptr = u->buf;
    out->len = len;
    return CSGI_OK;
}

static void
up_finish(struct csgi_mw *m, int reason)
{
    (void)m;
    g.finishes++;
    g.finish_reason = reason;
    /* After the inner body's close, on every path. */
    ck_assert_int_le(g.inner_closes, 1);
}

static const struct csgi_mw_ops up_ops = {
    .version = CSGI_MW_OPS_VERSION, .start = up_start, .filter = up_filter, .finish = up_finish};

struct up_state {
    const struct csgi_host_api *api;
    csgi_app_fn inner;
    void *inner_state;
};

static int
up_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    struct up_state *s = state;
    struct csgi_mw *m;
    struct csgi_environ *e;
    int rc = csgi_mw_begin(s->api, &up_ops, s, sizeof(struct up_req), env, resp, out, &m);

    if (rc < 0)
        return rc;
    e = csgi_mw_environ(m);
    /* Overrides: a changed path and an added header, seen by the inner app only. */
    e->path_info = csgi_str_c("/rewritten");
    rc = csgi_mw_environ_set_header(s->api, e, "X-Added", csgi_str_c("yes"));
    if (rc < 0)
        return rc;
    return csgi_mw_run(m, s->inner, s->inner_state);
}

static struct csgi_test_client *
up_client(struct up_state *s, csgi_app_fn inner)
{
    char err[256];
    struct csgi_test_client *c = csgi_test_client_new_app(up_call, s, "", err, sizeof(err));

    ck_assert_msg(c != NULL, "%s", err);
    *s = (struct up_state){csgi_test_client_host_api(c), inner, NULL};
    return c;
}

static struct csgi_test_response *
run(struct csgi_test_client *c, const char *target)
{
    struct csgi_test_request rq = {.target = target};
    struct csgi_test_response *resp = NULL;

    ck_assert_int_eq(csgi_test_client_request(c, &rq, &resp), CSGI_OK);
    return resp;
}

/* ------------------------------------------------------------------ */
/* The environ copy                                                    */
/* ------------------------------------------------------------------ */

START_TEST(mw_environ_copy_versions)
{
    struct csgi_environ src, dst;

    memset(&src, 0x5a, sizeof(src));
    src.version = 1;
    src.flags = 0xffffffffu; /* bits the kit does not know pass through */
    ck_assert_int_eq(csgi_mw_environ_copy_to(&dst, &src), CSGI_OK);
    ck_assert_uint_eq(dst.version, 1);
    ck_assert_uint_eq(dst.flags, 0xffffffffu);
    /* A version-1 environ has no host field: the copy has it zero, not the 0x5a garbage. */
    ck_assert_ptr_null(dst.host);
    ck_assert_int_eq(dst.input_length, 0);
    /* Version 2 has host, request_id and input_length, and no tls (version 3). */
    src.version = 2;
    ck_assert_int_eq(csgi_mw_environ_copy_to(&dst, &src), CSGI_OK);
    ck_assert_uint_eq(dst.version, 2);
    ck_assert_ptr_eq(dst.host, src.host);
    ck_assert_int_eq(dst.input_length, src.input_length);
    ck_assert_ptr_null(dst.tls);
    src.version = CSGI_ENVIRON_VERSION + 7; /* a newer server's */
    ck_assert_int_eq(csgi_mw_environ_copy_to(&dst, &src), CSGI_OK);
    ck_assert_uint_eq(dst.version, CSGI_ENVIRON_VERSION);
    ck_assert_ptr_eq(dst.host, src.host);
    ck_assert_ptr_eq(dst.tls, src.tls);
    src.version = 0;
    ck_assert_int_eq(csgi_mw_environ_copy_to(&dst, &src), CSGI_EINVAL);
    ck_assert_int_eq(csgi_mw_environ_copy_to(NULL, &src), CSGI_EINVAL);
}
END_TEST

/* Sets and removes request headers on a copy inside a real request. */
static int
set_header_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
               struct csgi_body *out)
{
    const struct csgi_host_api *api = env->host;
    struct csgi_environ *e = csgi_mw_environ_copy(api, env);
    struct csgi_str v;

    (void)state;
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(csgi_mw_environ_set_header(api, e, "x-one", csgi_str_c("new")), CSGI_OK);
    ck_assert_int_eq(csgi_header_get(e, "X-One", 0, &v), 0);
    ck_assert(csgi_str_eq_c(v, "new"));
    ck_assert_int_eq(csgi_header_get(e, "X-One", 1, &v), CSGI_ENOENT);
    /* The server's environ is unchanged. */
    ck_assert_int_eq(csgi_header_get(env, "X-One", 1, &v), 0);
    ck_assert(csgi_str_eq_c(v, "b"));
    ck_assert_int_eq(csgi_mw_environ_set_header(api, e, "X-Two", (struct csgi_str){NULL, 0}),
                     CSGI_OK);
    ck_assert_int_eq(csgi_header_get(e, "X-Two", 0, &v), CSGI_ENOENT);
    ck_assert_int_eq(csgi_mw_environ_set_header(api, e, "Content-Type", csgi_str_c("text/x")),
                     CSGI_OK);
    ck_assert(csgi_str_eq_c(e->content_type, "text/x"));
    ck_assert_int_eq(csgi_mw_environ_set_header(api, e, "Content-Length", csgi_str_c("1")),
                     CSGI_EINVAL);
    ck_assert_int_eq(csgi_mw_environ_set_header(api, e, "Bad Name", csgi_str_c("1")), CSGI_EHEADER);
    ck_assert_int_eq(csgi_mw_environ_set_header(api, e, "X-Ok", csgi_str_c("a\r\nb")),
                     CSGI_EHEADER);
    ck_assert_uint_eq(e->n_headers, 3); /* Host, X-One, Content-Type */
    return api->body_from_buffer(env->request, "ok", 2, 0, out) ||
           resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
}

START_TEST(mw_environ_set_header)
{
    static const struct csgi_header hs[] = {
        {CSGI_STR_INIT("X-One"), CSGI_STR_INIT("a")},
        {CSGI_STR_INIT("X-One"), CSGI_STR_INIT("b")},
        {CSGI_STR_INIT("X-Two"), CSGI_STR_INIT("c")},
    };
    struct csgi_test_request rq = {.target = "/", .headers = hs, .n_headers = 3};
    struct csgi_test_response *resp = NULL;
    char err[256];
    struct csgi_test_client *c = csgi_test_client_new_app(set_header_app, NULL, "", err, 256);

    ck_assert_int_eq(csgi_test_client_request(c, &rq, &resp), CSGI_OK);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_str_eq(resp->body, "ok");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Responder forwarding and the body wrapper                           */
/* ------------------------------------------------------------------ */

START_TEST(mw_transform_in_order)
{
    struct up_state s;
    struct csgi_test_client *c = up_client(&s, inner_app);
    struct csgi_test_response *r = run(c, "/x?write");

    ck_assert_int_eq(r->rc, CSGI_OK);
    /* The hook changed the status and added a header before the server saw them. */
    ck_assert_int_eq(r->status, 203);
    ck_assert_str_eq(csgi_test_response_header(r, "X-Mw"), "up");
    /* write() data first, then the chunks, all through the filter, then the end. */
    ck_assert_str_eq(r->body, "W:ONE TWO THREE.");
    ck_assert_int_eq(r->framing, CSGI_TEST_FRAMING_CHUNKED);
    ck_assert_str_eq(g.inner_path, "/rewritten");
    ck_assert_str_eq(g.inner_header, "yes");
    ck_assert_int_eq(g.inner_env_version, CSGI_ENVIRON_VERSION);
    /* write() made the response start at once: the length was not known yet. */
    ck_assert_int_eq(g.body_length, -1);
    ck_assert_int_eq(g.inner_closes, 1);
    ck_assert_int_eq(g.finishes, 1);
    ck_assert_int_eq(g.finish_reason, CSGI_FINISH_OK);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(mw_transform_drops_content_length)
{
    struct up_state s;
    struct csgi_test_client *c = up_client(&s, inner_app);
    struct csgi_test_response *r;

    r = run(c, "/x?len");
    ck_assert_int_eq(r->rc, CSGI_OK);
    /* The hook saw the inner body's length: it waited for call() to return. */
    ck_assert_int_eq(g.body_length, 13);
    ck_assert_str_eq(r->body, "ONE TWO THREE.");
    ck_assert_ptr_null(csgi_test_response_header(r, "Content-Length"));
    ck_assert_int_eq(r->framing, CSGI_TEST_FRAMING_CHUNKED);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

/* Calls the middleware, then checks that the body it got is the inner app's, unchanged. */
static int
forward_probe(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
              struct csgi_body *out)
{
    int rc = up_call(state, env, resp, out);

    ck_assert_int_eq(rc, CSGI_OK);
    ck_assert(out->next == chunks_next);
    ck_assert(out->close == chunks_close);
    ck_assert_int_eq(out->total_length, 13);
    return rc;
}

START_TEST(mw_pass_through_forwards_body)
{
    struct up_state s;
    struct csgi_test_client *c = up_client(&s, inner_app);
    struct csgi_test_request rq = {.target = "/x?len"};
    struct csgi_test_response *r = NULL;

    g.hook_rc = 0;
    ck_assert_int_eq(csgi_test_client_request_app(c, forward_probe, &s, &rq, &r), CSGI_OK);
    ck_assert_int_eq(r->rc, CSGI_OK);
    ck_assert_str_eq(r->body, "one two three");
    ck_assert_str_eq(csgi_test_response_header(r, "Content-Length"), "13");
    ck_assert_int_eq(g.filters, 0);
    ck_assert_int_eq(g.inner_closes, 1);
    ck_assert_int_eq(g.finishes, 1);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(mw_close_once_on_inner_error)
{
    struct up_state s;
    struct csgi_test_client *c = up_client(&s, inner_app);
    struct csgi_test_response *r;

    g.inner_rc = CSGI_EIO;
    r = run(c, "/x");
    ck_assert_int_eq(r->rc, CSGI_EIO);
    ck_assert_int_eq(g.inner_closes, 1);
    ck_assert_int_eq(g.finishes, 1);
    ck_assert_int_ne(g.finish_reason, CSGI_FINISH_OK);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(mw_close_once_on_filter_error)
{
    struct up_state s;
    struct csgi_test_client *c = up_client(&s, inner_app);
    struct csgi_test_response *r;

    g.filter_fail_at = 2;
    r = run(c, "/x");
    ck_assert_int_eq(r->rc, CSGI_EIO);
    ck_assert(r->aborted);
    ck_assert_str_eq(r->body, "ONE ");
    ck_assert_int_eq(g.inner_closes, 1);
    ck_assert_int_eq(g.finishes, 1);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(mw_close_once_on_hook_failure)
{
    struct up_state s;
    struct csgi_test_client *c = up_client(&s, inner_app);
    struct csgi_test_response *r;

    /* The hook fails after the inner call() returned a body: the kit closes it. */
    g.hook_rc = CSGI_EPERM;
    r = run(c, "/x");
    ck_assert_int_eq(r->rc, CSGI_EPERM);
    ck_assert_int_eq(r->status, 500);
    ck_assert_int_eq(g.inner_closes, 1);
    ck_assert_int_eq(g.finishes, 1);
    csgi_test_response_free(r);
    /* With write(), the hook runs inside call(): write() fails, the app returns the error. */
    memset(&g, 0, sizeof(g));
    g.hook_rc = CSGI_EPERM;
    r = run(c, "/x?write");
    ck_assert_int_eq(r->rc, CSGI_EPERM);
    ck_assert_int_eq(g.inner_closes, 0); /* the inner app never made its body */
    ck_assert_int_eq(g.finishes, 1);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

/* start_response() refusals reach the inner app at once, as a server's would. */
static int
bad_header_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
               struct csgi_body *out)
{
    static const struct csgi_header bad[] = {{CSGI_STR_INIT("Bad Name"), CSGI_STR_INIT("x")}};

    (void)state;
    ck_assert_int_eq(resp->start_response(resp->ctx, 99, no_reason, ct_plain, 1, NULL),
                     CSGI_ESTATUS);
    ck_assert_int_eq(resp->start_response(resp->ctx, 200, no_reason, bad, 1, NULL), CSGI_EHEADER);
    ck_assert_int_eq(resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL), CSGI_OK);
    ck_assert_int_eq(resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL),
                     CSGI_ESTATE);
    return env->host->body_from_buffer(env->request, "abc", 3, 0, out);
}

START_TEST(mw_start_response_checked_at_once)
{
    struct up_state s;
    struct csgi_test_client *c = up_client(&s, bad_header_app);
    struct csgi_test_response *r = run(c, "/x");

    ck_assert_int_eq(r->rc, CSGI_OK);
    ck_assert_str_eq(r->body, "ABC.");
    ck_assert_int_eq(g.starts, 1);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

/* The kit's wrapping keeps a validator on each side quiet (both sides' rules). */
START_TEST(mw_validator_both_sides_quiet)
{
    struct up_state s;
    struct csgi_test_client *c = up_client(&s, inner_app);
    const struct csgi_host_api *api = csgi_test_client_host_api(c);
    struct csgi_validator_options o = {.flags = CSGI_VALIDATOR_STRICT};
    struct csgi_validator *inner = csgi_validator_new(api, inner_app, NULL, &o);
    struct csgi_validator *outer;
    struct csgi_test_request rq = {.target = "/x?write"};
    struct csgi_test_response *r = NULL;

    s.inner = csgi_validator_call;
    s.inner_state = inner;
    outer = csgi_validator_new(api, up_call, &s, &o);
    ck_assert_int_eq(csgi_test_client_request_app(c, csgi_validator_call, outer, &rq, &r), 0);
    ck_assert_int_eq(r->rc, CSGI_OK);
    ck_assert_str_eq(r->body, "W:ONE TWO THREE.");
    ck_assert_uint_eq(csgi_validator_violations(inner), 0);
    ck_assert_uint_eq(csgi_validator_violations(outer), 0);
    csgi_test_response_free(r);
    csgi_validator_free(outer);
    csgi_validator_free(inner);
    csgi_test_client_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Deploy-time composition on the test client                          */
/* ------------------------------------------------------------------ */

static char g_order[64];

struct tag_mw {
    const char *tag;
    csgi_app_fn inner;
    void *inner_state;
};

static int
tag_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    struct tag_mw *t = state;

    strcat(g_order, t->tag);
    return t->inner(t->inner_state, env, resp, out);
}

static int
tag_wrap(void *state, csgi_app_fn inner, void *inner_state, const char *inner_name,
         csgi_app_fn *app, void **app_state)
{
    struct tag_mw *t = malloc(sizeof(*t));

    ck_assert_str_eq(inner_name, "plain");
    if (!t || strcmp(state, "fail") == 0) {
        free(t);
        return CSGI_EPERM;
    }
    *t = (struct tag_mw){state, inner, inner_state};
    *app = tag_call;
    *app_state = t;
    return CSGI_OK;
}

static void
tag_unwrap(void *state, void *app_state)
{
    strcat(g_order, "u");
    strcat(g_order, state);
    free(app_state);
}

static int
tag_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n, void **state)
{
    (void)api;
    ck_assert_uint_eq(n, 1);
    *state = (void *)config[0].value;
    return CSGI_OK;
}

static void
tag_exit(void *state)
{
    strcat(g_order, "x");
    strcat(g_order, state);
}

static const struct csgi_plugin tag_plugin = {
    CSGI_PLUGIN_HEADER,      .name = "tag",    .init_worker = tag_init,
    .exit_worker = tag_exit, .wrap = tag_wrap, .unwrap = tag_unwrap,
};

static int
plain_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    (void)state;
    strcat(g_order, "P");
    return resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL) ||
           env->host->body_from_buffer(env->request, "p", 1, 0, out);
}

static const struct csgi_plugin plain_plugin = {CSGI_PLUGIN_HEADER, .name = "plain",
                                                .call = plain_call};

START_TEST(mw_client_wrap_order_and_unwrap)
{
    const struct csgi_kv a = {"tag", "A"}, b = {"tag", "B"}, f = {"tag", "fail"};
    char err[256];
    struct csgi_test_client *c = csgi_test_client_new(&plain_plugin, "", NULL, 0, err, 256);
    struct csgi_test_response *r;

    g_order[0] = '\0';
    /* --wrap plain=A,B: B wraps first, A is outermost. */
    ck_assert_int_eq(csgi_test_client_wrap(c, &tag_plugin, &b, 1, err, sizeof(err)), CSGI_OK);
    ck_assert_int_eq(csgi_test_client_wrap(c, &tag_plugin, &a, 1, err, sizeof(err)), CSGI_OK);
    ck_assert_int_eq(csgi_test_client_wrap(c, &tag_plugin, &f, 1, err, sizeof(err)), CSGI_EPERM);
    ck_assert_msg(strstr(err, "middleware \"tag\" failed to wrap \"plain\"") != NULL, "%s", err);
    /* A failed wrap ran the middleware's exit_worker and left the client as it was. */
    ck_assert_str_eq(g_order, "xfail");
    ck_assert_int_eq(csgi_test_client_wrap(c, &plain_plugin, NULL, 0, err, sizeof(err)),
                     CSGI_EINVAL);
    ck_assert_msg(strstr(err, "not a middleware plugin") != NULL, "%s", err);
    g_order[0] = '\0';
    r = run(c, "/");
    ck_assert_str_eq(r->body, "p");
    ck_assert_str_eq(g_order, "ABP");
    csgi_test_response_free(r);
    g_order[0] = '\0';
    csgi_test_client_free(c);
    /* Every unwrap, outermost first, before any exit_worker. */
    ck_assert_str_eq(g_order, "uAuBxAxB");
}
END_TEST

static Suite *
middleware_suite(void)
{
    Suite *s = suite_create("middleware");
    TCase *env = tcase_create("environ");
    TCase *body = tcase_create("body");
    TCase *deploy = tcase_create("deploy");

    tcase_add_checked_fixture(env, setup, NULL);
    tcase_add_test(env, mw_environ_copy_versions);
    tcase_add_test(env, mw_environ_set_header);
    suite_add_tcase(s, env);
    tcase_add_checked_fixture(body, setup, NULL);
    tcase_add_test(body, mw_transform_in_order);
    tcase_add_test(body, mw_transform_drops_content_length);
    tcase_add_test(body, mw_pass_through_forwards_body);
    tcase_add_test(body, mw_close_once_on_inner_error);
    tcase_add_test(body, mw_close_once_on_filter_error);
    tcase_add_test(body, mw_close_once_on_hook_failure);
    tcase_add_test(body, mw_start_response_checked_at_once);
    tcase_add_test(body, mw_validator_both_sides_quiet);
    suite_add_tcase(s, body);
    tcase_add_checked_fixture(deploy, setup, NULL);
    tcase_add_test(deploy, mw_client_wrap_order_and_unwrap);
    suite_add_tcase(s, deploy);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(middleware_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
