/*
 * Tests for the in-process test client (gateway/lib/testclient.c).
 *
 * The fixture plugins (fx_<variant>.so) come in as command-line arguments.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csgi/testclient.h>

static int g_argc;
static char **g_argv;

/* Per-test state, reset by setup(). */
static const struct csgi_host_api *g_api;
static int g_calls;
static int g_closes;
static int g_case;
static char g_trace[64];
static int g_rc[8];

static const struct csgi_str no_reason = {NULL, 0};
static const struct csgi_header ct_plain[] = {
    {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
};

static void
trace(char c)
{
    size_t n = strlen(g_trace);

    if (n + 1 < sizeof(g_trace)) {
        g_trace[n] = c;
        g_trace[n + 1] = '\0';
    }
}

static const char *
fixture(const char *variant)
{
    char want[64];

    snprintf(want, sizeof(want), "fx_%s.so", variant);
    for (int i = 1; i < g_argc; i++) {
        const char *base = strrchr(g_argv[i], '/');

        base = base ? base + 1 : g_argv[i];
        if (strcmp(base, want) == 0)
            return g_argv[i];
    }
    ck_abort_msg("fixture %s was not passed on the command line", want);
    return NULL;
}

static void
copy_str(char *dst, size_t n, struct csgi_str s)
{
    snprintf(dst, n, "%.*s", (int)s.len, s.ptr ? s.ptr : "");
}

/* ------------------------------------------------------------------ */
/* A list body: chunks from a fixed list, with optional misbehaviour.  */
/* ------------------------------------------------------------------ */

enum lbody_mode {
    LB_PLAIN,
    LB_FAIL_AT,     /* next() returns fail_rc at index fail_at */
    LB_NULL_CHUNK,  /* a chunk {NULL, 5} at index fail_at */
    LB_POSITIVE,    /* next() returns 7 at index fail_at */
    LB_WRITE,       /* next() calls write() first and records the result */
    LB_EXC_LATE,    /* at fail_at: start_response(exc) and return its code */
    LB_EXC_SWALLOW, /* at fail_at: start_response(exc), ignore its code, return the chunk */
    LB_EMPTY_SPIN   /* empty chunks forever */
};

struct lbody {
    const char *chunks[8];
    size_t n;
    size_t i;
    enum lbody_mode mode;
    size_t fail_at;
    int fail_rc;
    const struct csgi_responder *resp;
};

static int
lbody_next(void *ctx, struct csgi_chunk *out)
{
    struct lbody *b = ctx;

    switch (b->mode) {
    case LB_FAIL_AT:
        if (b->i == b->fail_at)
            return b->fail_rc;
        break;
    case LB_NULL_CHUNK:
        if (b->i == b->fail_at) {
            out->ptr = NULL;
            out->len = 5;
            b->i++;
            return CSGI_OK;
        }
        break;
    case LB_POSITIVE:
        if (b->i == b->fail_at)
            return 7;
        break;
    case LB_WRITE:
        g_rc[0] = b->resp->write(b->resp->ctx, "w", 1);
        break;
    case LB_EXC_LATE:
        if (b->i == b->fail_at) {
            struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO, CSGI_STR_INIT("late")};
            g_rc[1] = b->resp->start_response(b->resp->ctx, 500, no_reason, ct_plain, 1, &exc);
            return g_rc[1];
        }
        break;
    case LB_EXC_SWALLOW:
        if (b->i == b->fail_at) {
            struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO, CSGI_STR_INIT("late")};
            g_rc[1] = b->resp->start_response(b->resp->ctx, 500, no_reason, ct_plain, 1, &exc);
        }
        break;
    case LB_EMPTY_SPIN:
        out->ptr = "";
        out->len = 0;
        return CSGI_OK;
    case LB_PLAIN:
        break;
    }
    if (b->i >= b->n)
        return CSGI_DONE;
    out->ptr = b->chunks[b->i];
    out->len = strlen(b->chunks[b->i]);
    b->i++;
    return CSGI_OK;
}

static void
lbody_close(void *ctx)
{
    (void)ctx;
    g_closes++;
    trace('C');
}

/* Fill @p out with a list body of the given chunks (NULL-terminated). */
static struct lbody *
lbody_make(struct csgi_environ *env, struct csgi_body *out, const char *first, ...)
{
    struct lbody *b = g_api->alloc(env->request, sizeof(*b));
    va_list ap;

    ck_assert_ptr_nonnull(b);
    memset(b, 0, sizeof(*b));
    va_start(ap, first);
    for (const char *c = first; c && b->n < 8; c = va_arg(ap, const char *))
        b->chunks[b->n++] = c;
    va_end(ap);
    out->ctx = b;
    out->next = lbody_next;
    out->close = lbody_close;
    return b;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static struct csgi_test_client *
app_client(csgi_app_fn app, const char *mount)
{
    char err[256] = "";
    struct csgi_test_client *c = csgi_test_client_new_app(app, NULL, mount, err, sizeof(err));

    ck_assert_msg(c != NULL, "client: %s", err);
    g_api = csgi_test_client_host_api(c);
    return c;
}

static struct csgi_test_response *
run(struct csgi_test_client *c, const struct csgi_test_request *rq)
{
    struct csgi_test_response *resp = NULL;

    ck_assert_int_eq(csgi_test_client_request(c, rq, &resp), CSGI_OK);
    ck_assert_ptr_nonnull(resp);
    return resp;
}

static struct csgi_test_response *
get(struct csgi_test_client *c, const char *target)
{
    struct csgi_test_request rq = {.target = target};

    return run(c, &rq);
}

/* ------------------------------------------------------------------ */
/* Environ                                                             */
/* ------------------------------------------------------------------ */

static struct {
    int called;
    unsigned version;
    unsigned flags;
    int request_set;
    char method[32];
    char script[64];
    char path[128];
    size_t path_len;
    char query[128];
    char raw[128];
    char ctype[64];
    int ctype_null;
    int64_t content_length;
    char server_name[64];
    char port[8];
    char protocol[16];
    char scheme[8];
    char remote[32];
    unsigned remote_port;
    size_t n_headers;
    size_t n_config;
    char config0[64];
    int terminated;
    int streams;
    int tls_set;
    char tls_protocol[32];
    char tls_sni[64];
    char tls_verify[64];
    char tls_s_dn[128];
} g_env;

static int
is_terminated(struct csgi_str s)
{
    return s.ptr && s.ptr[s.len] == '\0';
}

static int
env_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    (void)state;
    memset(&g_env, 0, sizeof(g_env));
    g_env.called = 1;
    g_env.version = env->version;
    g_env.flags = env->flags;
    g_env.request_set = env->request != NULL;
    copy_str(g_env.method, sizeof(g_env.method), env->request_method);
    copy_str(g_env.script, sizeof(g_env.script), env->script_name);
    copy_str(g_env.path, sizeof(g_env.path), env->path_info);
    g_env.path_len = env->path_info.len;
    copy_str(g_env.query, sizeof(g_env.query), env->query_string);
    copy_str(g_env.raw, sizeof(g_env.raw), env->raw_target);
    copy_str(g_env.ctype, sizeof(g_env.ctype), env->content_type);
    g_env.ctype_null = env->content_type.ptr == NULL;
    g_env.content_length = env->content_length;
    copy_str(g_env.server_name, sizeof(g_env.server_name), env->server_name);
    copy_str(g_env.port, sizeof(g_env.port), env->server_port);
    copy_str(g_env.protocol, sizeof(g_env.protocol), env->server_protocol);
    copy_str(g_env.scheme, sizeof(g_env.scheme), env->url_scheme);
    copy_str(g_env.remote, sizeof(g_env.remote), env->remote_addr);
    g_env.remote_port = env->remote_port;
    if (CSGI_HAS(env, 3) && env->tls) {
        g_env.tls_set = 1;
        copy_str(g_env.tls_protocol, sizeof(g_env.tls_protocol), env->tls->protocol);
        copy_str(g_env.tls_sni, sizeof(g_env.tls_sni), env->tls->sni);
        copy_str(g_env.tls_verify, sizeof(g_env.tls_verify), env->tls->client_verify);
        copy_str(g_env.tls_s_dn, sizeof(g_env.tls_s_dn), env->tls->client_s_dn);
    }
    g_env.n_headers = env->n_headers;
    g_env.n_config = env->n_config;
    if (env->n_config)
        snprintf(g_env.config0, sizeof(g_env.config0), "%s=%s", env->config[0].key,
                 env->config[0].value);
    g_env.terminated = is_terminated(env->request_method) && is_terminated(env->script_name) &&
                       is_terminated(env->path_info) && is_terminated(env->query_string) &&
                       is_terminated(env->raw_target) && is_terminated(env->server_name) &&
                       is_terminated(env->server_port) && is_terminated(env->server_protocol) &&
                       is_terminated(env->url_scheme) && is_terminated(env->remote_addr);
    for (size_t i = 0; i < env->n_headers; i++)
        g_env.terminated &=
            is_terminated(env->headers[i].name) && is_terminated(env->headers[i].value);
    g_env.streams = env->input && env->input->version == CSGI_INPUT_VERSION && env->errors &&
                    env->errors->version == CSGI_ERRORS_VERSION;
    if (resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL) < 0)
        return CSGI_EAPP;
    lbody_make(env, out, "ok", NULL);
    return CSGI_OK;
}

START_TEST(testclient_environ_fields)
{
    struct csgi_test_client *c = app_client(env_app, "/app");
    const struct csgi_header headers[] = {
        {CSGI_STR_INIT("X-One"), CSGI_STR_INIT("1")},
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/csv")},
        {CSGI_STR_INIT("Content-Length"), CSGI_STR_INIT("3")},
    };
    struct csgi_test_request rq = {
        .method = "POST",
        .target = "/app/hello?x=1",
        .headers = headers,
        .n_headers = 3,
        .body = "a,b",
        .body_len = 3,
    };
    struct csgi_test_response *resp = run(c, &rq);

    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_int_eq(resp->status, 200);
    ck_assert_str_eq(resp->body, "ok");
    ck_assert(g_env.called);
    ck_assert_uint_eq(g_env.version, CSGI_ENVIRON_VERSION);
    ck_assert_uint_eq(g_env.flags, CSGI_ENV_INPUT_TERMINATED | CSGI_ENV_INPUT_BUFFERED);
    ck_assert(g_env.request_set);
    ck_assert_str_eq(g_env.method, "POST");
    ck_assert_str_eq(g_env.script, "/app");
    ck_assert_str_eq(g_env.path, "/hello");
    ck_assert_str_eq(g_env.query, "x=1");
    ck_assert_str_eq(g_env.raw, "/app/hello?x=1");
    ck_assert_str_eq(g_env.ctype, "text/csv");
    ck_assert_int_eq(g_env.content_length, 3);
    ck_assert_str_eq(g_env.server_name, "localhost");
    ck_assert_str_eq(g_env.port, "80");
    ck_assert_str_eq(g_env.protocol, "HTTP/1.1");
    ck_assert_str_eq(g_env.scheme, "http");
    ck_assert_str_eq(g_env.remote, "127.0.0.1");
    ck_assert_uint_eq(g_env.remote_port, CSGI_TEST_REMOTE_PORT);
    /* The three given, and "Host: localhost" that the client adds as curl does. */
    ck_assert_uint_eq(g_env.n_headers, 4);
    ck_assert(g_env.terminated);
    ck_assert(g_env.streams);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_environ_defaults)
{
    struct csgi_test_client *c = app_client(env_app, NULL);
    struct csgi_test_response *resp = NULL;

    ck_assert_int_eq(csgi_test_client_request(c, NULL, &resp), CSGI_OK);
    ck_assert_str_eq(g_env.method, "GET");
    ck_assert_str_eq(g_env.script, "");
    ck_assert_str_eq(g_env.path, "/");
    ck_assert_str_eq(g_env.query, "");
    ck_assert_str_eq(g_env.raw, "/");
    ck_assert(g_env.ctype_null);
    ck_assert_int_eq(g_env.content_length, -1);
    ck_assert_uint_eq(g_env.n_headers, 1); /* Host, added by the client */
    ck_assert_uint_eq(g_env.n_config, 0);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_environ_https_and_protocol)
{
    struct csgi_test_client *c = app_client(env_app, "");
    struct csgi_test_request rq = {.target = "/", .url_scheme = "https", .protocol = "HTTP/1.0"};
    struct csgi_test_response *resp = run(c, &rq);

    ck_assert_str_eq(g_env.scheme, "https");
    ck_assert_str_eq(g_env.port, "443");
    ck_assert_str_eq(g_env.protocol, "HTTP/1.0");
    ck_assert(g_env.flags & CSGI_ENV_TLS);
    /* The default TLS facts: TLS 1.3, no SNI, no client certificate. */
    ck_assert(g_env.tls_set);
    ck_assert_str_eq(g_env.tls_protocol, "TLSv1.3");
    ck_assert_str_eq(g_env.tls_sni, "");
    ck_assert_str_eq(g_env.tls_verify, "NONE");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_environ_tls_facts)
{
    struct csgi_test_client *c = app_client(env_app, "");
    struct csgi_tls tls = {.version = CSGI_TLS_VERSION,
                           .protocol = CSGI_STR_INIT("TLSv1.2"),
                           .sni = CSGI_STR_INIT("example.org"),
                           .client_verify = CSGI_STR_INIT("SUCCESS"),
                           .client_s_dn = CSGI_STR_INIT("CN=alice")};
    struct csgi_test_request rq = {.target = "/", .url_scheme = "https", .tls = &tls};
    struct csgi_test_response *resp = run(c, &rq);

    ck_assert(g_env.tls_set);
    ck_assert_str_eq(g_env.tls_protocol, "TLSv1.2");
    ck_assert_str_eq(g_env.tls_sni, "example.org");
    ck_assert_str_eq(g_env.tls_verify, "SUCCESS");
    ck_assert_str_eq(g_env.tls_s_dn, "CN=alice");
    csgi_test_response_free(resp);
    /* Plain HTTP: no facts, and facts without https are refused. */
    rq.url_scheme = NULL;
    rq.tls = NULL;
    resp = run(c, &rq);
    ck_assert(!g_env.tls_set);
    csgi_test_response_free(resp);
    rq.tls = &tls;
    resp = NULL;
    ck_assert_int_eq(csgi_test_client_request(c, &rq, &resp), CSGI_EINVAL);
    ck_assert_ptr_null(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_environ_server_name_from_host)
{
    struct csgi_test_client *c = app_client(env_app, "");
    struct csgi_header host = {CSGI_STR_INIT("Host"), CSGI_STR_INIT("example.com:8080")};
    struct csgi_test_request rq = {.target = "/", .headers = &host, .n_headers = 1};
    struct csgi_test_response *resp = run(c, &rq);

    ck_assert_str_eq(g_env.server_name, "example.com");
    ck_assert_str_eq(g_env.port, "80");
    csgi_test_response_free(resp);

    host.value.ptr = "[::1]:9000";
    host.value.len = strlen(host.value.ptr);
    resp = run(c, &rq);
    ck_assert_str_eq(g_env.server_name, "[::1]");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_environ_config_visible)
{
    static const struct csgi_plugin plugin = {
        CSGI_PLUGIN_HEADER,
        .name = "cfg",
        .call = env_app,
    };
    const struct csgi_kv cfg[] = {{"greeting", "hi"}, {"other", "x"}};
    char err[256] = "";
    struct csgi_test_client *c = csgi_test_client_new(&plugin, "", cfg, 2, err, sizeof(err));
    struct csgi_test_response *resp;

    ck_assert_msg(c != NULL, "%s", err);
    g_api = csgi_test_client_host_api(c);
    resp = get(c, "/");
    ck_assert_uint_eq(g_env.n_config, 2);
    ck_assert_str_eq(g_env.config0, "greeting=hi");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Target splitting and decoding                                       */
/* ------------------------------------------------------------------ */

START_TEST(testclient_query_split_at_first_question_mark)
{
    struct csgi_test_client *c = app_client(env_app, "");
    struct csgi_test_response *resp;

    resp = get(c, "/a?b=1?c=2");
    ck_assert_str_eq(g_env.path, "/a");
    ck_assert_str_eq(g_env.query, "b=1?c=2");
    csgi_test_response_free(resp);

    resp = get(c, "/a?");
    ck_assert_str_eq(g_env.path, "/a");
    ck_assert_str_eq(g_env.query, "");
    csgi_test_response_free(resp);

    resp = get(c, "/a/b/");
    ck_assert_str_eq(g_env.path, "/a/b/");
    ck_assert_str_eq(g_env.query, "");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_path_percent_decoded_query_raw)
{
    struct csgi_test_client *c = app_client(env_app, "");
    struct csgi_test_response *resp;

    resp = get(c, "/caf%C3%a9/a%2Fb%20c?q=%41+b");
    ck_assert_str_eq(g_env.path, "/caf\xc3\xa9/a/b c");
    ck_assert_str_eq(g_env.query, "q=%41+b");
    ck_assert_str_eq(g_env.raw, "/caf%C3%a9/a%2Fb%20c?q=%41+b");
    csgi_test_response_free(resp);

    /* A malformed escape is refused, as csgi-server answers it with 400. */
    {
        static const char *const bad[] = {"/100%", "/x%zz", "/%4"};
        for (size_t i = 0; i < 3; i++) {
            struct csgi_test_request rq = {.target = bad[i]};
            resp = NULL;
            g_env.called = 0;
            ck_assert_int_eq(csgi_test_client_request(c, &rq, &resp), CSGI_EINVAL);
            ck_assert_ptr_null(resp);
            ck_assert(!g_env.called);
        }
    }
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_rejects_nul_escape)
{
    struct csgi_test_client *c = app_client(env_app, "");
    struct csgi_test_request rq = {.target = "/a%00b"};
    struct csgi_test_response dummy;
    struct csgi_test_response *resp = &dummy;

    ck_assert_int_eq(csgi_test_client_request(c, &rq, &resp), CSGI_EINVAL);
    ck_assert_ptr_null(resp);
    ck_assert(!g_env.called);
    /* %00 in the query is not decoded, so it is allowed there. */
    rq.target = "/a?b=%00";
    resp = run(c, &rq);
    ck_assert_str_eq(g_env.query, "b=%00");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_rejects_bad_requests)
{
    struct csgi_test_client *c = app_client(env_app, "");
    const struct csgi_header bad_name = {CSGI_STR_INIT("Bad Name"), CSGI_STR_INIT("v")};
    const struct csgi_header bad_value = {CSGI_STR_INIT("X"), CSGI_STR_INIT("a\r\nb")};
    const struct csgi_header wrong_length = {CSGI_STR_INIT("Content-Length"), CSGI_STR_INIT("4")};
    const struct csgi_header two_lengths[] = {
        {CSGI_STR_INIT("Content-Length"), CSGI_STR_INIT("3")},
        {CSGI_STR_INIT("Content-Length"), CSGI_STR_INIT("3")},
    };
    const struct csgi_header te_gzip = {CSGI_STR_INIT("Transfer-Encoding"), CSGI_STR_INIT("gzip")};
    const struct csgi_header bad_host = {CSGI_STR_INIT("Host"), CSGI_STR_INIT("a@b")};
    const struct csgi_test_request bad[] = {
        {.target = "relative"},
        {.target = "/a b"},
        {.target = "/a#frag"},
        {.target = "/a\tb"},
        {.method = "G ET"},
        {.method = ""},
        {.url_scheme = "ftp"},
        {.protocol = "HTTP/2"},
        {.headers = &bad_name, .n_headers = 1},
        {.headers = &bad_value, .n_headers = 1},
        {.headers = &wrong_length, .n_headers = 1, .body = "abc", .body_len = 3},
        {.body_len = 3},
        /* Refused by the host core's head checks, exactly as csgi-server answers 400. */
        {.target = "/caf\xc3\xa9"},
        {.target = "/a%zz"},
        {.target = "*"},
        {.headers = &two_lengths[0], .n_headers = 2, .body = "abc", .body_len = 3},
        {.headers = &te_gzip, .n_headers = 1},
        {.headers = &bad_host, .n_headers = 1},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct csgi_test_response *resp = NULL;

        ck_assert_msg(csgi_test_client_request(c, &bad[i], &resp) == CSGI_EINVAL,
                      "request %zu was not refused", i);
        ck_assert_ptr_null(resp);
    }
    ck_assert(!g_env.called);
    csgi_test_client_free(c);
}
END_TEST

/* Mounts follow csgi-server's rules (one check in the host core). */
START_TEST(testclient_mount_rules_match_server)
{
    static const char *const bad[] = {"/a b", "/a%20b", "/a//b", "app", "/a?b", "/a#b"};
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(csgi_test_client_new_app(env_app, NULL, bad[i], err, sizeof(err)) == NULL,
                      "mount \"%s\" was accepted", bad[i]);
        ck_assert_ptr_nonnull(strstr(err, "is invalid"));
    }
}
END_TEST

START_TEST(testclient_mount_prefix_is_script_name)
{
    struct csgi_test_client *c = app_client(env_app, "/app/");
    struct csgi_test_response *resp = NULL;

    resp = get(c, "/app");
    ck_assert_str_eq(g_env.script, "/app");
    ck_assert_str_eq(g_env.path, "");
    csgi_test_response_free(resp);

    resp = get(c, "/app/");
    ck_assert_str_eq(g_env.path, "/");
    csgi_test_response_free(resp);

    /* The mount matches the decoded path, on a segment boundary only. */
    resp = get(c, "/%61pp/x");
    ck_assert_str_eq(g_env.script, "/app");
    ck_assert_str_eq(g_env.path, "/x");
    csgi_test_response_free(resp);

    ck_assert_int_eq(
        csgi_test_client_request(c, &(struct csgi_test_request){.target = "/apple"}, &resp),
        CSGI_ENOENT);
    ck_assert_ptr_null(resp);
    ck_assert_int_eq(csgi_test_client_request(c, &(struct csgi_test_request){.target = "/"}, &resp),
                     CSGI_ENOENT);
    csgi_test_client_free(c);

    c = app_client(env_app, "/");
    resp = get(c, "/x");
    ck_assert_str_eq(g_env.script, "");
    ck_assert_str_eq(g_env.path, "/x");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_rejects_bad_mount)
{
    char err[256] = "";

    ck_assert_ptr_null(csgi_test_client_new_app(env_app, NULL, "app", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "mount \"app\" is invalid"));
    ck_assert_ptr_null(csgi_test_client_new_app(env_app, NULL, "/a?b", err, sizeof(err)));
    ck_assert_ptr_null(csgi_test_client_new_app(NULL, NULL, "", err, sizeof(err)));
    ck_assert_str_eq(err, "app is NULL");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Headers                                                             */
/* ------------------------------------------------------------------ */

static struct {
    char values[6][32];
    int rcs[6];
} g_hdr;

static int
header_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    static const char *const names[] = {"x-multi", "X-MULTI", "HOST", "x-absent", "x-multi"};
    static const size_t index[] = {0, 1, 0, 0, 2};
    struct csgi_str v;

    (void)state;
    (void)out;
    for (size_t i = 0; i < 5; i++) {
        v.ptr = NULL;
        v.len = 0;
        g_hdr.rcs[i] = g_api->header_get(env, names[i], index[i], &v);
        copy_str(g_hdr.values[i], sizeof(g_hdr.values[i]), v);
    }
    g_hdr.rcs[5] = g_api->header_get(env, NULL, 0, &v);
    return resp->start_response(resp->ctx, 204, no_reason, NULL, 0, NULL);
}

START_TEST(testclient_header_get_case_insensitive)
{
    struct csgi_test_client *c = app_client(header_app, "");
    const struct csgi_header headers[] = {
        {CSGI_STR_INIT("X-Multi"), CSGI_STR_INIT("first")},
        {CSGI_STR_INIT("Host"), CSGI_STR_INIT("h.example")},
        {CSGI_STR_INIT("x-multi"), CSGI_STR_INIT("second")},
    };
    struct csgi_test_request rq = {.headers = headers, .n_headers = 3};
    struct csgi_test_response *resp = run(c, &rq);

    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_int_eq(resp->status, 204);
    ck_assert_int_eq(g_hdr.rcs[0], CSGI_OK);
    ck_assert_str_eq(g_hdr.values[0], "first");
    ck_assert_int_eq(g_hdr.rcs[1], CSGI_OK);
    ck_assert_str_eq(g_hdr.values[1], "second");
    ck_assert_int_eq(g_hdr.rcs[2], CSGI_OK);
    ck_assert_str_eq(g_hdr.values[2], "h.example");
    ck_assert_int_eq(g_hdr.rcs[3], CSGI_ENOENT);
    ck_assert_int_eq(g_hdr.rcs[4], CSGI_ENOENT);
    ck_assert_int_eq(g_hdr.rcs[5], CSGI_EINVAL);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

static int
two_cookies_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
                struct csgi_body *out)
{
    const struct csgi_header headers[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
        {CSGI_STR_INIT("Set-Cookie"), CSGI_STR_INIT("a=1")},
        {CSGI_STR_INIT("set-cookie"), CSGI_STR_INIT("b=2")},
    };
    struct csgi_str reason = CSGI_STR_INIT("Fine Thanks");

    (void)state;
    (void)env;
    (void)out;
    return resp->start_response(resp->ctx, 200, reason, headers, 3, NULL);
}

START_TEST(testclient_response_header_lookup)
{
    struct csgi_test_client *c = app_client(two_cookies_app, "");
    struct csgi_test_response *resp = get(c, "/");

    ck_assert_int_eq(resp->rc, CSGI_OK);
    /* The reason phrase is advisory: csgi-server sends the standard one, and so does the client. */
    ck_assert_str_eq(resp->reason, "OK");
    ck_assert_uint_eq(resp->n_headers, 3);
    ck_assert_str_eq(csgi_test_response_header(resp, "SET-COOKIE"), "a=1");
    ck_assert_uint_eq(csgi_test_response_header_count(resp, "Set-Cookie"), 2);
    ck_assert_str_eq(csgi_test_response_header(resp, "content-type"), "text/plain");
    ck_assert_ptr_null(csgi_test_response_header(resp, "X-Nope"));
    ck_assert_uint_eq(csgi_test_response_header_count(resp, "X-Nope"), 0);
    ck_assert_str_eq(resp->body, "");
    ck_assert_uint_eq(resp->body_len, 0);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Input and errors streams                                            */
/* ------------------------------------------------------------------ */

static char g_read[256];

static int
input_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    const struct csgi_input *in = env->input;
    char buf[64];
    int64_t n;
    size_t len = 0;

    (void)state;
    (void)out;
    g_read[0] = '\0';
    switch (g_case) {
    case 0: /* read in 4-byte pieces, then EOF twice */
        for (n = in->read(in->ctx, buf, 4); n > 0; n = in->read(in->ctx, buf, 4)) {
            ck_assert_int_le(n, 4);
            memcpy(g_read + len, buf, (size_t)n);
            len += (size_t)n;
            trace('r');
        }
        g_read[len] = '\0';
        g_rc[0] = (int)n;
        g_rc[1] = (int)in->read(in->ctx, buf, sizeof(buf));
        g_rc[2] = (int)in->read(in->ctx, NULL, 4);
        g_rc[3] = (int)in->read(in->ctx, buf, 0);
        break;
    case 1: /* readline, with a small buffer for the long line */
        for (n = in->readline(in->ctx, buf, 5); n > 0; n = in->readline(in->ctx, buf, 5)) {
            memcpy(g_read + len, buf, (size_t)n);
            len += (size_t)n;
            g_read[len++] = '|';
        }
        g_read[len] = '\0';
        g_rc[0] = (int)n;
        break;
    case 2: /* read all, rewind, read all again */
        n = in->read(in->ctx, buf, sizeof(buf));
        g_rc[0] = (int)n;
        g_rc[1] = (int)in->read(in->ctx, buf, sizeof(buf));
        g_rc[2] = in->rewind(in->ctx);
        n = in->read(in->ctx, buf, sizeof(buf));
        g_rc[3] = (int)n;
        memcpy(g_read, buf, (size_t)n);
        g_read[n] = '\0';
        break;
    default:
        break;
    }
    return resp->start_response(resp->ctx, 204, no_reason, NULL, 0, NULL);
}

START_TEST(testclient_input_read_until_eof)
{
    struct csgi_test_client *c = app_client(input_app, "");
    struct csgi_test_request rq = {.method = "PUT", .body = "hello\nworld\n", .body_len = 12};
    struct csgi_test_response *resp;

    g_case = 0;
    resp = run(c, &rq);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_str_eq(g_read, "hello\nworld\n");
    ck_assert_str_eq(g_trace, "rrr");
    ck_assert_int_eq(g_rc[0], 0);
    ck_assert_int_eq(g_rc[1], 0);
    ck_assert_int_eq(g_rc[2], CSGI_EINVAL);
    ck_assert_int_eq(g_rc[3], 0);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_input_readline_keeps_newline)
{
    struct csgi_test_client *c = app_client(input_app, "");
    struct csgi_test_request rq = {.method = "PUT", .body = "ab\n\nlonger\ntail", .body_len = 15};
    struct csgi_test_response *resp;

    g_case = 1;
    resp = run(c, &rq);
    ck_assert_str_eq(g_read, "ab\n|\n|longe|r\n|tail|");
    ck_assert_int_eq(g_rc[0], 0);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_input_rewind_rereads)
{
    struct csgi_test_client *c = app_client(input_app, "");
    struct csgi_test_request rq = {.method = "PUT", .body = "payload", .body_len = 7};
    struct csgi_test_response *resp;

    g_case = 2;
    resp = run(c, &rq);
    ck_assert_int_eq(g_rc[0], 7);
    ck_assert_int_eq(g_rc[1], 0);
    ck_assert_int_eq(g_rc[2], CSGI_OK);
    ck_assert_int_eq(g_rc[3], 7);
    ck_assert_str_eq(g_read, "payload");
    csgi_test_response_free(resp);

    /* No body at all: EOF at once. */
    g_case = 0;
    resp = get(c, "/");
    ck_assert_str_eq(g_read, "");
    ck_assert_int_eq(g_rc[0], 0);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

static int
errors_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    const struct csgi_errors *e = env->errors;

    (void)state;
    (void)out;
    g_rc[0] = e->log(e->ctx, CSGI_LOG_WARN, "warned\n", 7);
    g_rc[1] = e->write(e->ctx, "part", 4);
    g_rc[2] = e->write(e->ctx, "ial\nnext", 8);
    g_rc[3] = e->flush(e->ctx);
    g_rc[4] = e->log(e->ctx, 0, "x", 1);
    g_rc[5] = e->log(e->ctx, CSGI_LOG_DEBUG, NULL, 3);
    g_rc[6] = e->write(e->ctx, "unflushed", 9);
    g_api->log(g_api->ctx, CSGI_LOG_INFO, "host line %d", 42);
    return resp->start_response(resp->ctx, 204, no_reason, NULL, 0, NULL);
}

START_TEST(testclient_errors_stream_captured)
{
    struct csgi_test_client *c = app_client(errors_app, "");
    struct csgi_test_response *resp = get(c, "/");

    ck_assert_int_eq(g_rc[0], CSGI_OK);
    ck_assert_int_eq(g_rc[1], CSGI_OK);
    ck_assert_int_eq(g_rc[2], CSGI_OK);
    ck_assert_int_eq(g_rc[3], CSGI_OK);
    ck_assert_int_eq(g_rc[4], CSGI_EINVAL);
    ck_assert_int_eq(g_rc[5], CSGI_EINVAL);
    ck_assert_int_eq(g_rc[6], CSGI_OK);
    ck_assert_uint_eq(resp->n_logs, 5);
    ck_assert_int_eq(resp->logs[0].level, CSGI_LOG_WARN);
    ck_assert_str_eq(resp->logs[0].text, "warned");
    ck_assert_int_eq(resp->logs[1].level, CSGI_LOG_ERROR);
    ck_assert_str_eq(resp->logs[1].text, "partial");
    ck_assert_str_eq(resp->logs[2].text, "next");
    ck_assert_int_eq(resp->logs[3].level, CSGI_LOG_INFO);
    ck_assert_str_eq(resp->logs[3].text, "host line 42");
    /* A partial line left at the end of the request is flushed. */
    ck_assert_str_eq(resp->logs[4].text, "unflushed");
    ck_assert_ptr_nonnull(csgi_test_response_find_log(resp, "line 42"));
    ck_assert_ptr_null(csgi_test_response_find_log(resp, "absent"));
    ck_assert_uint_eq(csgi_test_client_log_count(c), 5);
    ck_assert_str_eq(csgi_test_client_log_at(c, 2)->text, "next");
    ck_assert_ptr_null(csgi_test_client_log_at(c, 5));
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* start_response and write                                            */
/* ------------------------------------------------------------------ */

static int
responder_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
              struct csgi_body *out)
{
    struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO, CSGI_STR_INIT("disk on fire")};
    const struct csgi_header hop[] = {{CSGI_STR_INIT("Connection"), CSGI_STR_INIT("close")}};
    const struct csgi_header errhdr[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/html")},
    };

    (void)state;
    switch (g_case) {
    case 0: /* twice without exc */
        g_rc[0] = resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
        g_rc[1] = resp->start_response(resp->ctx, 201, no_reason, ct_plain, 1, NULL);
        lbody_make(env, out, "first", NULL);
        return CSGI_OK;
    case 1: /* exc before the headers were sent replaces the response */
        g_rc[0] = resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
        g_rc[1] = resp->start_response(resp->ctx, 503, no_reason, errhdr, 1, &exc);
        lbody_make(env, out, "<p>sorry</p>", NULL);
        return CSGI_OK;
    case 2: /* exc after write(): too late */
        g_rc[0] = resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
        g_rc[1] = resp->write(resp->ctx, "partial", 7);
        g_rc[2] = resp->start_response(resp->ctx, 500, no_reason, ct_plain, 1, &exc);
        return g_rc[2];
    case 3: /* invalid heads are refused and may be retried */
        g_rc[0] = resp->start_response(resp->ctx, 99, no_reason, ct_plain, 1, NULL);
        g_rc[1] = resp->start_response(resp->ctx, 200, no_reason, hop, 1, NULL);
        g_rc[2] = resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
        return CSGI_OK;
    case 4: /* write before start_response, then write and chunks */
        g_rc[0] = resp->write(resp->ctx, "x", 1);
        g_rc[1] = resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
        g_rc[2] = resp->write(resp->ctx, "a", 1);
        g_rc[3] = resp->write(resp->ctx, NULL, 2);
        lbody_make(env, out, "b", "", "c", NULL);
        return CSGI_OK;
    case 5: /* write() from inside next() */
        g_rc[1] = resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
        lbody_make(env, out, "body", NULL)->mode = LB_WRITE;
        ((struct lbody *)out->ctx)->resp = resp;
        return CSGI_OK;
    default:
        return CSGI_EINVAL;
    }
}

START_TEST(testclient_start_response_twice_refused)
{
    struct csgi_test_client *c = app_client(responder_app, "");
    struct csgi_test_response *resp;

    g_case = 0;
    resp = get(c, "/");
    ck_assert_int_eq(g_rc[0], CSGI_OK);
    ck_assert_int_eq(g_rc[1], CSGI_ESTATE);
    ck_assert_int_eq(resp->status, 200);
    ck_assert_str_eq(resp->body, "first");
    ck_assert_ptr_nonnull(csgi_test_response_find_log(resp, "second time without exc_info"));
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_exc_info_replaces_response)
{
    struct csgi_test_client *c = app_client(responder_app, "");
    struct csgi_test_response *resp;

    g_case = 1;
    resp = get(c, "/");
    ck_assert_int_eq(g_rc[0], CSGI_OK);
    ck_assert_int_eq(g_rc[1], CSGI_OK);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_int_eq(resp->status, 503);
    ck_assert_str_eq(resp->reason, "Service Unavailable");
    ck_assert_uint_eq(resp->n_headers, 1);
    ck_assert_str_eq(csgi_test_response_header(resp, "Content-Type"), "text/html");
    ck_assert_str_eq(resp->body, "<p>sorry</p>");
    ck_assert_ptr_nonnull(csgi_test_response_find_log(resp, "disk on fire"));
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_exc_info_after_headers_sent)
{
    struct csgi_test_client *c = app_client(responder_app, "");
    struct csgi_test_response *resp;

    g_case = 2;
    resp = get(c, "/");
    ck_assert_int_eq(g_rc[1], CSGI_OK);
    ck_assert_int_eq(g_rc[2], CSGI_EHEADERS_SENT);
    ck_assert_int_eq(resp->rc, CSGI_EHEADERS_SENT);
    ck_assert_int_eq(resp->status, 200);
    ck_assert(resp->headers_sent);
    ck_assert_str_eq(resp->body, "partial");
    ck_assert_int_eq(resp->finish_reason, CSGI_FINISH_ERROR);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_start_response_checks_head)
{
    struct csgi_test_client *c = app_client(responder_app, "");
    struct csgi_test_response *resp;
    const char *line;

    g_case = 3;
    resp = get(c, "/");
    ck_assert_int_eq(g_rc[0], CSGI_ESTATUS);
    ck_assert_int_eq(g_rc[1], CSGI_EHEADER);
    ck_assert_int_eq(g_rc[2], CSGI_OK);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_int_eq(resp->status, 200);
    line = csgi_test_response_find_log(resp, "start_response() refused: ");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_nonnull(strstr(line, "99"));
    line = csgi_test_response_find_log(resp, "Connection");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_nonnull(strstr(line, "start_response() refused: "));
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_write_comes_before_body)
{
    struct csgi_test_client *c = app_client(responder_app, "");
    struct csgi_test_response *resp;

    g_case = 4;
    resp = get(c, "/");
    ck_assert_int_eq(g_rc[0], CSGI_ESTATE);
    ck_assert_int_eq(g_rc[1], CSGI_OK);
    ck_assert_int_eq(g_rc[2], CSGI_OK);
    ck_assert_int_eq(g_rc[3], CSGI_EINVAL);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_str_eq(resp->body, "abc");
    ck_assert_uint_eq(resp->body_len, 3);
    ck_assert_int_eq(g_closes, 1);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_write_inside_next_refused)
{
    struct csgi_test_client *c = app_client(responder_app, "");
    struct csgi_test_response *resp;

    g_case = 5;
    resp = get(c, "/");
    ck_assert_int_eq(g_rc[0], CSGI_ESTATE);
    ck_assert_str_eq(resp->body, "body");
    ck_assert_ptr_nonnull(csgi_test_response_find_log(resp, "write() called from inside next()"));
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Driving the body                                                    */
/* ------------------------------------------------------------------ */

/*
 * One app per outcome, selected by g_case. Each returns a list body whose
 * close() counts, so that every outcome can check "closed exactly once".
 */
struct outcome {
    const char *name;
    const char *method;
    const char *content_length; /* NULL: no Content-Length header */
    int64_t total_length;
    enum lbody_mode mode;
    size_t fail_at;
    int fail_rc;
    int start;
    int expect_rc;
    int expect_status;
    const char *expect_body;
};

static const struct outcome outcomes[] = {
    {"normal", NULL, "10", -1, LB_PLAIN, 0, 0, 1, CSGI_OK, 200, "hello, you"},
    {"no length", NULL, NULL, -1, LB_PLAIN, 0, 0, 1, CSGI_OK, 200, "hello, you"},
    {"total_length", NULL, NULL, 10, LB_PLAIN, 0, 0, 1, CSGI_OK, 200, "hello, you"},
    {"error mid-body", NULL, NULL, -1, LB_FAIL_AT, 1, CSGI_EIO, 1, CSGI_EIO, 200, "hello"},
    {"error first", NULL, NULL, -1, LB_FAIL_AT, 0, CSGI_EIO, 1, CSGI_EIO, 500,
     "500 Internal Server Error\n"},
    {"length short", NULL, "12", -1, LB_PLAIN, 0, 0, 1, CSGI_ELENGTH, 200, "hello, you"},
    /* Complete at the declared length: the host stops pulling there (as gunicorn truncates). */
    {"length long", NULL, "7", -1, LB_PLAIN, 0, 0, 1, CSGI_OK, 200, "hello, "},
    /* The first chunk overruns total_length: nothing of it goes out. */
    {"total_length wrong", NULL, NULL, 4, LB_PLAIN, 0, 0, 1, CSGI_ELENGTH, 200, ""},
    {"no start_response", NULL, NULL, -1, LB_PLAIN, 0, 0, 0, CSGI_ESTATE, 500,
     "500 Internal Server Error\n"},
    {"null chunk", NULL, NULL, -1, LB_NULL_CHUNK, 1, 0, 1, CSGI_EINVAL, 200, "hello"},
    {"positive next", NULL, NULL, -1, LB_POSITIVE, 0, 0, 1, CSGI_EAPP, 500,
     "500 Internal Server Error\n"},
    {"late exc", NULL, NULL, -1, LB_EXC_LATE, 1, 0, 1, CSGI_EHEADERS_SENT, 200, "hello"},
    /* exc_info after the headers fails the response even when the app goes on: the chunk
     * returned with it is not sent. */
    {"late exc swallowed", NULL, NULL, -1, LB_EXC_SWALLOW, 1, 0, 1, CSGI_EHEADERS_SENT, 200,
     "hello"},
    {"head", "HEAD", "10", -1, LB_PLAIN, 0, 0, 1, CSGI_OK, 200, ""},
    {"spinning body", NULL, NULL, -1, LB_EMPTY_SPIN, 0, 0, 1, CSGI_EAPP, 500,
     "500 Internal Server Error\n"},
};

static int
outcome_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
            struct csgi_body *out)
{
    const struct outcome *o = &outcomes[g_case];
    struct csgi_header headers[2] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
        {CSGI_STR_INIT("Content-Length"), {NULL, 0}},
    };
    struct lbody *b;

    (void)state;
    if (o->content_length) {
        headers[1].value.ptr = o->content_length;
        headers[1].value.len = strlen(o->content_length);
    }
    if (o->start && resp->start_response(resp->ctx, 200, no_reason, headers,
                                         o->content_length ? 2 : 1, NULL) < 0)
        return CSGI_EAPP;
    b = lbody_make(env, out, "hello", ", ", "you", NULL);
    b->mode = o->mode;
    b->fail_at = o->fail_at;
    b->fail_rc = o->fail_rc;
    b->resp = resp;
    out->total_length = o->total_length;
    return CSGI_OK;
}

START_TEST(testclient_body_outcomes_close_once)
{
    const struct outcome *o = &outcomes[_i];
    struct csgi_test_client *c = app_client(outcome_app, "");
    struct csgi_test_request rq = {.method = o->method};
    struct csgi_test_response *resp;

    g_case = _i;
    resp = run(c, &rq);
    ck_assert_msg(resp->rc == o->expect_rc, "%s: rc %s, want %s", o->name, csgi_err_name(resp->rc),
                  csgi_err_name(o->expect_rc));
    ck_assert_msg(resp->status == o->expect_status, "%s: status %d", o->name, resp->status);
    ck_assert_msg(strcmp(resp->body, o->expect_body) == 0, "%s: body \"%s\"", o->name, resp->body);
    ck_assert_msg(g_closes == 1, "%s: close() ran %d times", o->name, g_closes);
    ck_assert_int_eq(resp->finish_reason,
                     o->expect_rc == CSGI_OK ? CSGI_FINISH_OK : CSGI_FINISH_ERROR);
    if (o->expect_rc != CSGI_OK)
        ck_assert_msg(resp->n_logs > 0, "%s: the failure was not logged", o->name);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_head_discards_body_keeps_length)
{
    struct csgi_test_client *c = app_client(outcome_app, "");
    struct csgi_test_request rq = {.method = "HEAD"};
    struct csgi_test_response *resp;

    g_case = 0;
    resp = run(c, &rq);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_uint_eq(resp->body_len, 0);
    /* The length is declared: the host pulls only the first chunk, sends none of it. */
    ck_assert_uint_eq(resp->body_produced, 5);
    ck_assert_int_eq(resp->framing, CSGI_TEST_FRAMING_LENGTH);
    ck_assert_str_eq(csgi_test_response_header(resp, "Content-Length"), "10");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

static int
head_aware_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
               struct csgi_body *out)
{
    const struct csgi_header headers[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
        {CSGI_STR_INIT("Content-Length"), CSGI_STR_INIT("11")},
    };

    (void)state;
    (void)out;
    (void)env;
    return resp->start_response(resp->ctx, 200, no_reason, headers, 2, NULL);
}

START_TEST(testclient_head_may_omit_body)
{
    struct csgi_test_client *c = app_client(head_aware_app, "");
    struct csgi_test_request rq = {.method = "HEAD"};
    struct csgi_test_response *resp = run(c, &rq);

    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_uint_eq(resp->body_produced, 0);
    csgi_test_response_free(resp);

    /* The same app answering GET breaks its Content-Length. */
    resp = get(c, "/");
    ck_assert_int_eq(resp->rc, CSGI_ELENGTH);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

static int
failing_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
            struct csgi_body *out)
{
    (void)state;
    (void)env;
    (void)out;
    switch (g_case) {
    case 0:
        return CSGI_EIO;
    case 1:
        return CSGI_EDECLINED;
    case 2:
        resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
        return CSGI_EDECLINED;
    case 3:
        return 1;
    default:
        return CSGI_OK; /* no start_response, empty body */
    }
}

START_TEST(testclient_app_failures_map_to_status)
{
    static const struct {
        int rc;
        int status;
        const char *log;
    } want[] = {
        {CSGI_EIO, 500, "call() failed: input/output error (EIO)"},
        {CSGI_EDECLINED, 404, NULL},
        {CSGI_ESTATE, 500, "declined after start_response()"},
        {CSGI_EAPP, 500, "call() returned 1"},
        {CSGI_ESTATE, 500, "body ended without start_response()"},
    };
    struct csgi_test_client *c = app_client(failing_app, "");

    for (g_case = 0; g_case < 5; g_case++) {
        struct csgi_test_response *resp = get(c, "/");

        ck_assert_int_eq(resp->rc, want[g_case].rc);
        ck_assert_int_eq(resp->status, want[g_case].status);
        ck_assert(!resp->headers_sent);
        /* The host's own error page, as csgi-server sends it. */
        ck_assert_uint_eq(resp->n_headers, 1);
        ck_assert_str_eq(csgi_test_response_header(resp, "Content-Type"),
                         "text/plain; charset=utf-8");
        /* A decline answered 404 completes normally, as in csgi-server. */
        ck_assert_int_eq(resp->finish_reason, g_case == 1 ? CSGI_FINISH_OK : CSGI_FINISH_ERROR);
        if (want[g_case].log)
            ck_assert_msg(csgi_test_response_find_log(resp, want[g_case].log) != NULL,
                          "case %d: no log \"%s\"", g_case, want[g_case].log);
        csgi_test_response_free(resp);
    }
    csgi_test_client_free(c);
}
END_TEST

static const char g_mib[1024 * 1024];

static int
huge_next(void *ctx, struct csgi_chunk *out)
{
    (void)ctx;
    out->ptr = g_mib;
    out->len = sizeof(g_mib);
    return CSGI_OK;
}

static int
huge_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    (void)state;
    (void)env;
    out->next = huge_next;
    out->close = lbody_close;
    return resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
}

/* write() past the host's 16 MiB hold (SPEC 4.8): CSGI_ETOOBIG, and the response fails. */
static int
write_flood_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
                struct csgi_body *out)
{
    size_t total = 0;
    int rc;

    (void)state;
    (void)env;
    (void)out;
    rc = resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
    if (rc < 0)
        return rc;
    do {
        rc = resp->write(resp->ctx, g_mib, sizeof(g_mib));
        total += sizeof(g_mib);
    } while (rc == CSGI_OK && total < 64u * sizeof(g_mib));
    g_rc[0] = rc;
    g_rc[1] = (int)(total / sizeof(g_mib));
    return rc;
}

START_TEST(testclient_write_hold_is_bounded)
{
    struct csgi_test_client *c = app_client(write_flood_app, "");
    struct csgi_test_response *resp = get(c, "/");

    ck_assert_int_eq(g_rc[0], CSGI_ETOOBIG);
    ck_assert_int_eq(g_rc[1], 17); /* 16 MiB held, the 17th refused */
    ck_assert_int_eq(resp->rc, CSGI_ETOOBIG);
    /* The held output went out, then the connection was aborted. */
    ck_assert_int_eq(resp->status, 200);
    ck_assert(resp->aborted);
    ck_assert_uint_eq(resp->body_len, 16u * sizeof(g_mib));
    ck_assert_ptr_nonnull(csgi_test_response_find_log(resp, "held before call() returned"));
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_body_size_capped)
{
    struct csgi_test_client *c = app_client(huge_app, "");
    struct csgi_test_response *resp = get(c, "/");

    /* The client stops reading an endless body at its cap, as a real client would. */
    ck_assert_int_eq(resp->rc, CSGI_ETOOBIG);
    ck_assert_uint_eq(resp->body_len, CSGI_TEST_MAX_BODY);
    ck_assert(resp->aborted);
    ck_assert_int_eq(g_closes, 1);
    csgi_test_response_free(resp);
    /*
     * HEAD pulls a bounded amount to learn the length; without one its headers
     * say what the GET's would: chunked on HTTP/1.1 (as the server sends them).
     */
    g_closes = 0;
    {
        struct csgi_test_request rq = {.method = "HEAD"};
        resp = run(c, &rq);
    }
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_int_eq(resp->framing, CSGI_TEST_FRAMING_CHUNKED);
    ck_assert_uint_eq(resp->body_len, 0);
    ck_assert_int_eq(g_closes, 1);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Arena, on_finished, request_url, misc host services                 */
/* ------------------------------------------------------------------ */

static int
arena_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    static const size_t sizes[] = {0, 1, 3, 17, 100, 1000, 5000, 70000, 8, 2};
    char *prev = NULL;
    char *text;

    (void)state;
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            char *p = g_api->alloc(env->request, sizes[i]);

            ck_assert_ptr_nonnull(p);
            ck_assert_uint_eq((uintptr_t)p % _Alignof(max_align_t), 0);
            ck_assert_ptr_ne(p, prev);
            memset(p, 0xa5, sizes[i]);
            prev = p;
        }
    }
    ck_assert_ptr_null(g_api->alloc(NULL, 8));
    ck_assert_ptr_null(g_api->alloc(env->request, SIZE_MAX));
    /* Arena memory lives until the request ends: the body may point into it. */
    text = g_api->alloc(env->request, 6);
    memcpy(text, "arena", 6);
    if (resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL) < 0)
        return CSGI_EAPP;
    lbody_make(env, out, text, text, NULL);
    return CSGI_OK;
}

START_TEST(testclient_arena_alloc_aligned_and_freed)
{
    struct csgi_test_client *c = app_client(arena_app, "");

    /* Several requests: each arena is freed at the end of its request, which
     * the AddressSanitizer run of this suite checks for leaks. */
    for (int i = 0; i < 3; i++) {
        struct csgi_test_response *resp = get(c, "/");

        ck_assert_int_eq(resp->rc, CSGI_OK);
        ck_assert_str_eq(resp->body, "arenaarena");
        csgi_test_response_free(resp);
    }
    csgi_test_client_free(c);
}
END_TEST

static char g_tag1[] = "1", g_tag2[] = "2", g_tag3[] = "3", g_tag4[] = "4";

static void
finished_cb(void *arg, int reason)
{
    trace(*(const char *)arg);
    g_rc[0] = reason;
    g_calls++;
}

static void
finished_registers_more(void *arg, int reason)
{
    (void)reason;
    trace('R');
    ck_assert_int_eq(g_api->on_finished(arg, finished_cb, g_tag4), CSGI_OK);
}

static int
finished_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
             struct csgi_body *out)
{
    (void)state;
    ck_assert_int_eq(g_api->on_finished(env->request, finished_cb, g_tag1), CSGI_OK);
    ck_assert_int_eq(g_api->on_finished(env->request, finished_cb, g_tag2), CSGI_OK);
    ck_assert_int_eq(g_api->on_finished(env->request, finished_registers_more, env->request),
                     CSGI_OK);
    ck_assert_int_eq(g_api->on_finished(env->request, finished_cb, g_tag3), CSGI_OK);
    ck_assert_int_eq(g_api->on_finished(env->request, NULL, NULL), CSGI_EINVAL);
    ck_assert_int_eq(g_api->on_finished(NULL, finished_cb, NULL), CSGI_EINVAL);
    if (g_case == 1)
        return CSGI_EIO;
    if (resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL) < 0)
        return CSGI_EAPP;
    lbody_make(env, out, "x", NULL);
    return CSGI_OK;
}

START_TEST(testclient_on_finished_lifo_after_close)
{
    struct csgi_test_client *c = app_client(finished_app, "");
    struct csgi_test_response *resp;

    g_case = 0;
    resp = get(c, "/");
    /* Body closed first, then callbacks newest first; one registered while
     * finishing still runs. */
    ck_assert_str_eq(g_trace, "C3R421");
    ck_assert_int_eq(g_calls, 4);
    ck_assert_int_eq(g_rc[0], CSGI_FINISH_OK);
    ck_assert_int_eq(resp->finish_reason, CSGI_FINISH_OK);
    csgi_test_response_free(resp);

    g_case = 1;
    g_trace[0] = '\0';
    resp = get(c, "/");
    ck_assert_str_eq(g_trace, "3R421");
    ck_assert_int_eq(g_rc[0], CSGI_FINISH_ERROR);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

static char g_url[256];

static int
url_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    struct csgi_str url = {NULL, 0};

    (void)state;
    (void)out;
    g_rc[0] = g_api->request_url(env, &url);
    copy_str(g_url, sizeof(g_url), url);
    g_rc[1] = (int)strlen(url.ptr) == (int)url.len;
    g_rc[2] = g_api->request_url(NULL, &url);
    g_rc[3] = g_api->get_extension(g_api->ctx, "csgix.anything", 1) == NULL;
    return resp->start_response(resp->ctx, 204, no_reason, NULL, 0, NULL);
}

START_TEST(testclient_request_url_reconstruction)
{
    /* A mount may not hold a space (as in csgi-server); path_info may, and is quoted. */
    struct csgi_test_client *c = app_client(url_app, "/my");
    const struct csgi_header host = {CSGI_STR_INIT("Host"), CSGI_STR_INIT("example.org:8080")};
    struct csgi_test_request rq = {.target = "/my/a%20p/a%2Fb/%C3%A9~x?q=1&r=%20"};
    struct csgi_test_response *resp = run(c, &rq);

    ck_assert_int_eq(g_rc[0], CSGI_OK);
    ck_assert_str_eq(g_url, "http://localhost/my/a%20p/a/b/%C3%A9~x?q=1&r=%20");
    ck_assert(g_rc[1]);
    ck_assert_int_eq(g_rc[2], CSGI_EINVAL);
    ck_assert(g_rc[3]);
    csgi_test_response_free(resp);

    rq.headers = &host;
    rq.n_headers = 1;
    rq.target = "/my/a%20p";
    resp = run(c, &rq);
    ck_assert_str_eq(g_url, "http://example.org:8080/my/a%20p");
    csgi_test_response_free(resp);

    rq.headers = NULL;
    rq.n_headers = 0;
    rq.url_scheme = "https";
    resp = run(c, &rq);
    ck_assert_str_eq(g_url, "https://localhost/my/a%20p");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_host_api_table)
{
    struct csgi_test_client *c = app_client(url_app, "");
    const struct csgi_host_api *api = csgi_test_client_host_api(c);
    const struct csgi_test_log *first;
    char big[1000];

    ck_assert_uint_eq(api->version, CSGI_HOST_API_VERSION);
    ck_assert_uint_eq(api->size, sizeof(struct csgi_host_api));
    ck_assert_uint_eq(api->abi_version, CSGI_ABI_VERSION);
    ck_assert_uint_eq(api->spec_version, CSGI_VERSION_HEX);
    ck_assert_ptr_nonnull(strstr(api->server_software, "csgi-testclient/"));
    ck_assert(api->log && api->vlog && api->alloc && api->header_get && api->body_from_fd &&
              api->on_finished && api->request_url && api->get_extension);
    api->log(api->ctx, CSGI_LOG_DEBUG, "outside a request: %s", "yes");
    ck_assert_uint_eq(csgi_test_client_log_count(c), 1);
    first = csgi_test_client_log_at(c, 0);
    ck_assert_int_eq(first->level, CSGI_LOG_DEBUG);
    ck_assert_str_eq(csgi_test_client_find_log(c, "outside"), "outside a request: yes");
    /* Lines never move, and long ones are kept whole. */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 100; i++)
        api->log(api->ctx, CSGI_LOG_TRACE, "line %d\n", i);
    api->log(api->ctx, CSGI_LOG_WARN, "%s", big);
    ck_assert_ptr_eq(csgi_test_client_log_at(c, 0), first);
    ck_assert_str_eq(first->text, "outside a request: yes");
    ck_assert_str_eq(csgi_test_client_log_at(c, 100)->text, "line 99");
    ck_assert_str_eq(csgi_test_client_log_at(c, 101)->text, big);
    ck_assert_ptr_null(csgi_test_client_host_api(NULL));
    csgi_test_client_free(c);
}
END_TEST

static int
nested_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    struct csgi_test_client *c = state;
    struct csgi_test_response *inner = NULL;

    (void)env;
    (void)out;
    g_rc[0] = csgi_test_client_request(c, NULL, &inner);
    g_rc[1] = inner == NULL;
    return resp->start_response(resp->ctx, 204, no_reason, NULL, 0, NULL);
}

START_TEST(testclient_request_app_and_nesting)
{
    struct csgi_test_client *c = app_client(env_app, "/m");
    struct csgi_test_request rq = {.target = "/m/x"};
    struct csgi_test_response *resp = NULL;
    csgi_app_fn app = NULL;
    void *state = &rq;

    csgi_test_client_app(c, &app, &state);
    ck_assert(app == env_app);
    ck_assert_ptr_null(state);

    ck_assert_int_eq(csgi_test_client_request_app(c, nested_app, c, &rq, &resp), CSGI_OK);
    ck_assert_int_eq(resp->status, 204);
    ck_assert_int_eq(g_rc[0], CSGI_ESTATE);
    ck_assert(g_rc[1]);
    ck_assert(!g_env.called);
    csgi_test_response_free(resp);

    ck_assert_int_eq(csgi_test_client_request_app(c, NULL, NULL, &rq, &resp), CSGI_EINVAL);
    ck_assert_int_eq(csgi_test_client_request(NULL, &rq, &resp), CSGI_EINVAL);
    ck_assert_int_eq(csgi_test_client_request(c, &rq, NULL), CSGI_EINVAL);
    csgi_test_client_free(c);
    csgi_test_client_free(NULL);
    csgi_test_response_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* body_from_fd                                                        */
/* ------------------------------------------------------------------ */

static int g_fd = -1;
static int64_t g_total;

static int
make_file(size_t size)
{
    char path[] = "/tmp/csgi-testclient-XXXXXX";
    int fd = mkstemp(path);
    char buf[4096];

    ck_assert_int_ge(fd, 0);
    unlink(path);
    for (size_t done = 0; done < size;) {
        size_t n = size - done < sizeof(buf) ? size - done : sizeof(buf);

        for (size_t i = 0; i < n; i++)
            buf[i] = (char)('a' + (done + i) % 26);
        ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
        done += n;
    }
    return fd;
}

static int
fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static int
file_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    (void)state;
    switch (g_case) {
    case 0: /* whole file from an offset, fd closed by the host */
        g_rc[0] = g_api->body_from_fd(env->request, g_fd, 2, -1, CSGI_FD_CLOSE, out);
        break;
    case 1: /* a slice, fd kept open */
        g_rc[0] = g_api->body_from_fd(env->request, g_fd, 3, 5, 0, out);
        break;
    case 2: /* count past the end of the file */
        g_rc[0] = g_api->body_from_fd(env->request, g_fd, 0, 1000, CSGI_FD_CLOSE, out);
        break;
    case 3: /* a file body, then failure: the host still closes the fd */
        g_rc[0] = g_api->body_from_fd(env->request, g_fd, 0, -1, CSGI_FD_CLOSE, out);
        return CSGI_EIO;
    default:
        break;
    }
    if (g_rc[0] < 0)
        return g_rc[0];
    g_total = out->total_length;
    g_rc[1] = (int)out->flags;
    return resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
}

START_TEST(testclient_body_from_fd_whole_file)
{
    struct csgi_test_client *c = app_client(file_app, "");
    struct csgi_test_response *resp;

    g_fd = make_file(100000);
    g_case = 0;
    resp = get(c, "/");
    ck_assert_int_eq(g_rc[0], CSGI_OK);
    ck_assert_int_eq(g_rc[1], CSGI_BODY_FILE);
    ck_assert_int_eq(g_total, 99998);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_uint_eq(resp->body_len, 99998);
    for (size_t i = 0; i < resp->body_len; i++) {
        if (resp->body[i] != (char)('a' + (i + 2) % 26))
            ck_abort_msg("byte %zu differs", i);
    }
    ck_assert(!fd_open(g_fd));
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_body_from_fd_slice_keeps_fd)
{
    struct csgi_test_client *c = app_client(file_app, "");
    struct csgi_test_response *resp;

    g_fd = make_file(26);
    g_case = 1;
    resp = get(c, "/");
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_int_eq(g_total, 5);
    ck_assert_str_eq(resp->body, "defgh");
    ck_assert(fd_open(g_fd));
    close(g_fd);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_body_from_fd_short_file_fails)
{
    struct csgi_test_client *c = app_client(file_app, "");
    struct csgi_test_response *resp;

    g_fd = make_file(10);
    g_case = 2;
    resp = get(c, "/");
    /* The range is checked before anything is sent: a 500, as for sendfile() in the server. */
    ck_assert_int_eq(resp->rc, CSGI_ELENGTH);
    ck_assert_int_eq(resp->status, 500);
    ck_assert_ptr_nonnull(csgi_test_response_find_log(resp, "past the end of its 10-byte file"));
    ck_assert(!fd_open(g_fd));
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_body_from_fd_unclosed_is_closed_by_host)
{
    struct csgi_test_client *c = app_client(file_app, "");
    struct csgi_test_response *resp;

    g_fd = make_file(10);
    g_case = 3;
    resp = get(c, "/");
    ck_assert_int_eq(resp->rc, CSGI_EIO);
    ck_assert(!fd_open(g_fd));
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

static int
fd_errors_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
              struct csgi_body *out)
{
    int fd1 = make_file(4), fd2 = make_file(4), fd3 = make_file(4);

    (void)state;
    g_rc[0] = g_api->body_from_fd(env->request, -1, 0, -1, 0, out);
    g_rc[1] = g_api->body_from_fd(env->request, 1000000, 0, -1, CSGI_FD_CLOSE, out);
    g_rc[2] = g_api->body_from_fd(env->request, fd1, -1, -1, CSGI_FD_CLOSE, out);
    g_rc[3] = g_api->body_from_fd(env->request, fd2, 0, -2, 0, out);
    g_rc[4] = g_api->body_from_fd(env->request, fd3, 0, -1, 0x80, out);
    g_rc[5] = fd_open(fd1);
    g_rc[6] = fd_open(fd2);
    g_rc[7] = fd_open(fd3);
    close(fd2);
    close(fd3);
    ck_assert(out->next == NULL);
    return resp->start_response(resp->ctx, 204, no_reason, NULL, 0, NULL);
}

START_TEST(testclient_body_from_fd_rejects_bad_arguments)
{
    struct csgi_test_client *c = app_client(fd_errors_app, "");
    struct csgi_test_response *resp = get(c, "/");

    ck_assert_int_eq(g_rc[0], CSGI_EBADF);
    ck_assert_int_eq(g_rc[1], CSGI_EBADF);
    ck_assert_int_eq(g_rc[2], CSGI_EINVAL);
    ck_assert_int_eq(g_rc[3], CSGI_EINVAL);
    ck_assert_int_eq(g_rc[4], CSGI_EINVAL);
    /* With CSGI_FD_CLOSE the host owns the fd even when it fails. */
    ck_assert_int_eq(g_rc[5], 0);
    ck_assert_int_eq(g_rc[6], 1);
    ck_assert_int_eq(g_rc[7], 1);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Plugins from a descriptor                                           */
/* ------------------------------------------------------------------ */

static int g_exit_calls;
static void *g_exit_state;

static int
lc_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
        void **state)
{
    api->log(api->ctx, CSGI_LOG_INFO, "init with %zu items, first %s", n_config,
             n_config ? config[0].key : "-");
    g_api = api;
    *state = &g_exit_calls;
    return CSGI_OK;
}

static int
lc_init_fail(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
             void **state)
{
    (void)api;
    (void)config;
    (void)n_config;
    (void)state;
    return CSGI_ENOMEM;
}

static void
lc_exit(void *state)
{
    g_exit_state = state;
    g_exit_calls++;
}

static int
lc_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    (void)state;
    return env_app(NULL, env, resp, out);
}

static const struct csgi_plugin lc_plugin = {
    CSGI_PLUGIN_HEADER,     .name = "lifecycle", .mount = "/lc",
    .init_worker = lc_init, .call = lc_call,     .exit_worker = lc_exit,
};

START_TEST(testclient_plugin_lifecycle)
{
    const struct csgi_kv cfg[] = {{"k", "v"}};
    char err[256] = "";
    struct csgi_test_client *c = csgi_test_client_new(&lc_plugin, NULL, cfg, 1, err, sizeof(err));
    struct csgi_test_response *resp;
    csgi_app_fn app;
    void *state;

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(csgi_test_client_find_log(c, "init with"), "init with 1 items, first k");
    csgi_test_client_app(c, &app, &state);
    ck_assert_ptr_eq(state, &g_exit_calls);
    /* The descriptor's mount is the default. */
    resp = get(c, "/lc/page");
    ck_assert_str_eq(g_env.script, "/lc");
    ck_assert_str_eq(g_env.path, "/page");
    csgi_test_response_free(resp);
    ck_assert_int_eq(g_exit_calls, 0);
    csgi_test_client_free(c);
    ck_assert_int_eq(g_exit_calls, 1);
    ck_assert_ptr_eq(g_exit_state, &g_exit_calls);
}
END_TEST

START_TEST(testclient_plugin_default_mount_is_name)
{
    struct csgi_plugin p = lc_plugin;
    char err[256] = "";
    struct csgi_test_client *c;
    struct csgi_test_response *resp;

    p.mount = NULL;
    c = csgi_test_client_new(&p, NULL, NULL, 0, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    resp = get(c, "/lifecycle");
    ck_assert_str_eq(g_env.script, "/lifecycle");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);

    /* An explicit mount wins. */
    c = csgi_test_client_new(&p, "", NULL, 0, err, sizeof(err));
    resp = get(c, "/lifecycle");
    ck_assert_str_eq(g_env.script, "");
    csgi_test_response_free(resp);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(testclient_plugin_descriptor_checks)
{
    static const struct {
        const char *what;
        const char *reason;
    } want[] = {
        /* The host core's descriptor checks: the same words as csgi-server's log. */
        {"magic", "bad descriptor magic 0x12345678: not a CSGI plugin descriptor"},
        {"abi", "plugin built for CSGI ABI 2, this host speaks ABI 1 (EABI)"},
        {"version", "descriptor version 0 size"},
        {"size", "size 8 is smaller than version 1"},
        {"name", "invalid plugin name \"Bad-Name\""},
        {"null name", "invalid plugin name \"(null)\""},
        {"call", "descriptor has no call function"},
        {"init", "plugin \"lifecycle\": init_worker failed: out of memory (ENOMEM)"},
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct csgi_plugin p = lc_plugin;
        char err[256] = "";

        switch (i) {
        case 0:
            p.magic = 0x12345678u;
            break;
        case 1:
            p.abi_version = CSGI_ABI_VERSION + 1;
            break;
        case 2:
            p.version = 0;
            break;
        case 3:
            p.size = 8;
            break;
        case 4:
            p.name = "Bad-Name";
            break;
        case 5:
            p.name = NULL;
            break;
        case 6:
            p.call = NULL;
            break;
        default:
            p.init_worker = lc_init_fail;
            break;
        }
        ck_assert_ptr_null(csgi_test_client_new(&p, NULL, NULL, 0, err, sizeof(err)));
        ck_assert_msg(strstr(err, want[i].reason) != NULL, "%s: \"%s\"", want[i].what, err);
    }
    /* exit_worker never runs for a plugin whose init_worker failed. */
    ck_assert_int_eq(g_exit_calls, 0);
    ck_assert_ptr_null(csgi_test_client_new(NULL, NULL, NULL, 0, NULL, 0));
}
END_TEST

START_TEST(testclient_plugin_config_checks)
{
    const struct csgi_kv bad[] = {{"k", NULL}};
    char err[256] = "";

    ck_assert_ptr_null(csgi_test_client_new(&lc_plugin, NULL, NULL, 2, err, sizeof(err)));
    ck_assert_str_eq(err, "config is NULL with 2 items");
    ck_assert_ptr_null(csgi_test_client_new(&lc_plugin, NULL, bad, 1, err, sizeof(err)));
    ck_assert_str_eq(err, "config item 0 has a NULL key or value");
    ck_assert_int_eq(g_exit_calls, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Plugins from a shared object                                        */
/* ------------------------------------------------------------------ */

START_TEST(testclient_open_good_plugin)
{
    char marker[] = "/tmp/csgi-testclient-exit-XXXXXX";
    int fd = mkstemp(marker);
    struct csgi_kv cfg[] = {{"greeting", "howdy"}, {"exit_marker", marker}};
    char err[256] = "";
    struct csgi_test_client *c;
    struct csgi_test_response *resp;
    struct stat st;

    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(marker);
    c = csgi_test_client_open(fixture("good"), NULL, cfg, 2, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_ptr_nonnull(csgi_test_client_find_log(c, "fixture started with 2 config items"));
    resp = get(c, "/");
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_str_eq(resp->body, "howdy from fixture\n");
    ck_assert_str_eq(csgi_test_response_header(resp, "content-type"), "text/plain");
    csgi_test_response_free(resp);
    resp = get(c, "/deeper/path");
    ck_assert_int_eq(resp->rc, CSGI_EDECLINED);
    ck_assert_int_eq(resp->status, 404);
    csgi_test_response_free(resp);
    ck_assert_int_ne(stat(marker, &st), 0);
    csgi_test_client_free(c);
    /* exit_worker() ran at free. */
    ck_assert_int_eq(stat(marker, &st), 0);
    unlink(marker);
}
END_TEST

START_TEST(testclient_open_rejects_bad_plugins)
{
    static const struct {
        const char *variant;
        const char *reason;
    } want[] = {
        {"wrong_abi", "plugin built for CSGI ABI 2, this host speaks ABI 1"},
        {"no_entry", "entry symbol \"csgi_plugin_entry\" not found"},
        {"bad_magic", "bad descriptor magic 0xdeadbeef"},
        {"init_fail", "plugin \"fixture\": init_worker failed: input/output error (EIO)"},
        {"null_entry", "csgi_plugin_entry(1) returned NULL: the plugin refuses host ABI 1"},
        {"bad_name", "invalid plugin name \"Bad-Name\""},
        {"no_call", "descriptor has no call function"},
        {"small_size", "size 72 is smaller than version 1"},
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *path = fixture(want[i].variant);
        char err[512] = "";

        ck_assert_ptr_null(csgi_test_client_open(path, NULL, NULL, 0, err, sizeof(err)));
        ck_assert_msg(strstr(err, want[i].reason) != NULL, "%s: \"%s\"", want[i].variant, err);
        /* The message names the file it is about. */
        ck_assert_msg(strstr(err, path) != NULL, "%s: \"%s\"", want[i].variant, err);
    }
}
END_TEST

START_TEST(testclient_open_missing_file)
{
    char err[512] = "";

    ck_assert_ptr_null(
        csgi_test_client_open("/nonexistent/fx_none.so", NULL, NULL, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "dlopen(\"/nonexistent/fx_none.so\") failed: ") == err, "%s", err);
    ck_assert_ptr_null(csgi_test_client_open(NULL, NULL, NULL, 0, err, sizeof(err)));
    ck_assert_str_eq(err, "path is NULL");
}
END_TEST

/* Reset every global: with CK_FORK=no the tests share one process. */
static void
setup(void)
{
    g_api = NULL;
    g_calls = 0;
    g_closes = 0;
    g_case = 0;
    g_trace[0] = '\0';
    memset(g_rc, 0, sizeof(g_rc));
    memset(&g_env, 0, sizeof(g_env));
    memset(&g_hdr, 0, sizeof(g_hdr));
    g_read[0] = '\0';
    g_url[0] = '\0';
    g_fd = -1;
    g_total = 0;
    g_exit_calls = 0;
    g_exit_state = NULL;
}

/* ------------------------------------------------------------------ */
/* Environ and host API version 2                                      */
/* ------------------------------------------------------------------ */

static char g_seen_id[64];
static long long g_seen_lengths[2];

/* Replies through env->host only: a copied one-chunk body of a stack buffer. */
static int
v2_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
       struct csgi_body *out)
{
    char text[64];
    struct csgi_body untouched;
    int n, rc;

    (void)state;
    ck_assert_uint_ge(env->version, 2);
    ck_assert_ptr_nonnull(env->host);
    ck_assert_uint_ge(env->host->version, 2);
    snprintf(g_seen_id, sizeof(g_seen_id), "%.*s", (int)env->request_id.len, env->request_id.ptr);
    g_seen_lengths[0] = env->content_length;
    g_seen_lengths[1] = env->input_length;
    memset(&untouched, 0x5a, sizeof(untouched));
    ck_assert_int_eq(env->host->body_from_buffer(env->request, NULL, 3, 0, &untouched),
                     CSGI_EINVAL);
    ck_assert_int_eq(env->host->body_from_buffer(env->request, "x", 1, 1u << 5, &untouched),
                     CSGI_EINVAL);
    ck_assert_int_eq(env->host->body_from_buffer(NULL, "x", 1, 0, &untouched), CSGI_EINVAL);
    ck_assert_int_eq(env->host->body_from_buffer(env->request, "x", 1, 0, NULL), CSGI_EINVAL);
    ck_assert_uint_eq(untouched.version, 0x5a5a5a5au);
    rc = resp->start_response(resp->ctx, 200, no_reason, ct_plain, 1, NULL);
    if (rc < 0)
        return rc;
    n = snprintf(text, sizeof(text), "copied %lld\n", (long long)env->input_length);
    rc = env->host->body_from_buffer(env->request, text, (size_t)n, 0, out);
    /* The body holds a copy: the stack buffer may change now. */
    memset(text, '!', sizeof(text));
    return rc;
}

START_TEST(testclient_v2_request_id_and_buffer_body)
{
    struct csgi_test_client *c = app_client(v2_app, "");
    struct csgi_test_request rq = {.method = "POST", .body = "hello", .body_len = 5};
    struct csgi_test_response *a, *b;

    a = run(c, &rq);
    ck_assert_int_eq(a->rc, CSGI_OK);
    ck_assert_str_eq(a->body, "copied 5\n");
    ck_assert_int_eq(a->framing, CSGI_TEST_FRAMING_LENGTH);
    /* No Content-Length in the request: as a chunked upload, -1 and the buffered length. */
    ck_assert_int_eq(g_seen_lengths[0], -1);
    ck_assert_int_eq(g_seen_lengths[1], 5);
    ck_assert_uint_eq(strlen(a->request_id), 32);
    ck_assert_uint_eq(strspn(a->request_id, "0123456789abcdef"), 32);
    ck_assert_str_eq(a->request_id, g_seen_id);
    b = run(c, NULL);
    ck_assert_str_eq(b->body, "copied 0\n");
    ck_assert_str_eq(b->request_id, g_seen_id);
    ck_assert_str_ne(a->request_id, b->request_id);
    /* One prefix per client, then the counter. */
    ck_assert_int_eq(memcmp(a->request_id, b->request_id, 16), 0);
    csgi_test_response_free(a);
    csgi_test_response_free(b);
    csgi_test_client_free(c);
}
END_TEST

static Suite *
testclient_suite(void)
{
    Suite *s = suite_create("testclient");
    TCase *tc;

    tc = tcase_create("environ");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, testclient_environ_fields);
    tcase_add_test(tc, testclient_environ_defaults);
    tcase_add_test(tc, testclient_environ_https_and_protocol);
    tcase_add_test(tc, testclient_environ_tls_facts);
    tcase_add_test(tc, testclient_environ_server_name_from_host);
    tcase_add_test(tc, testclient_environ_config_visible);
    tcase_add_test(tc, testclient_query_split_at_first_question_mark);
    tcase_add_test(tc, testclient_path_percent_decoded_query_raw);
    tcase_add_test(tc, testclient_rejects_nul_escape);
    tcase_add_test(tc, testclient_rejects_bad_requests);
    tcase_add_test(tc, testclient_mount_rules_match_server);
    tcase_add_test(tc, testclient_mount_prefix_is_script_name);
    tcase_add_test(tc, testclient_rejects_bad_mount);
    suite_add_tcase(s, tc);

    tc = tcase_create("headers");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, testclient_header_get_case_insensitive);
    tcase_add_test(tc, testclient_response_header_lookup);
    suite_add_tcase(s, tc);

    tc = tcase_create("streams");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, testclient_input_read_until_eof);
    tcase_add_test(tc, testclient_input_readline_keeps_newline);
    tcase_add_test(tc, testclient_input_rewind_rereads);
    tcase_add_test(tc, testclient_errors_stream_captured);
    suite_add_tcase(s, tc);

    tc = tcase_create("responder");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, testclient_start_response_twice_refused);
    tcase_add_test(tc, testclient_exc_info_replaces_response);
    tcase_add_test(tc, testclient_exc_info_after_headers_sent);
    tcase_add_test(tc, testclient_start_response_checks_head);
    tcase_add_test(tc, testclient_write_comes_before_body);
    tcase_add_test(tc, testclient_write_inside_next_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("body");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, testclient_body_outcomes_close_once, 0,
                        (int)(sizeof(outcomes) / sizeof(outcomes[0])));
    tcase_add_test(tc, testclient_head_discards_body_keeps_length);
    tcase_add_test(tc, testclient_head_may_omit_body);
    tcase_add_test(tc, testclient_app_failures_map_to_status);
    tcase_add_test(tc, testclient_body_size_capped);
    tcase_add_test(tc, testclient_write_hold_is_bounded);
    suite_add_tcase(s, tc);

    tc = tcase_create("host_api");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, testclient_arena_alloc_aligned_and_freed);
    tcase_add_test(tc, testclient_on_finished_lifo_after_close);
    tcase_add_test(tc, testclient_request_url_reconstruction);
    tcase_add_test(tc, testclient_host_api_table);
    tcase_add_test(tc, testclient_request_app_and_nesting);
    suite_add_tcase(s, tc);

    tc = tcase_create("v2");
    tcase_add_test(tc, testclient_v2_request_id_and_buffer_body);
    suite_add_tcase(s, tc);

    tc = tcase_create("body_from_fd");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, testclient_body_from_fd_whole_file);
    tcase_add_test(tc, testclient_body_from_fd_slice_keeps_fd);
    tcase_add_test(tc, testclient_body_from_fd_short_file_fails);
    tcase_add_test(tc, testclient_body_from_fd_unclosed_is_closed_by_host);
    tcase_add_test(tc, testclient_body_from_fd_rejects_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("plugins");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, testclient_plugin_lifecycle);
    tcase_add_test(tc, testclient_plugin_default_mount_is_name);
    tcase_add_test(tc, testclient_plugin_descriptor_checks);
    tcase_add_test(tc, testclient_plugin_config_checks);
    tcase_add_test(tc, testclient_open_good_plugin);
    tcase_add_test(tc, testclient_open_rejects_bad_plugins);
    tcase_add_test(tc, testclient_open_missing_file);
    suite_add_tcase(s, tc);
    return s;
}

int
main(int argc, char **argv)
{
    SRunner *sr;
    int failed;

    g_argc = argc;
    g_argv = argv;
    sr = srunner_create(testclient_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
