/*
 * Tests for the validator middleware (gateway/lib/validator.c).
 *
 * Every rule has a purpose-built bad application (or bad "server": a
 * middleware that corrupts what it hands to the validator) in bad_cases[],
 * each asserting the exact sequence of rule ids reported; good_cases[] are
 * well-behaved applications that must produce no report even with every
 * strict rule on. The requests run on the in-process test client.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <csgi/testclient.h>
#include <csgi/validator.h>

static int g_argc;
static char **g_argv;

static const struct csgi_host_api *g_api;
static int g_calls;
static int g_closes;
static int g_bodies;
static int g_rc[4];
/* The descriptor of the last file body an application made (for SRV_SHRINK_FILE). */
static int g_file_fd;

#define MAX_SEEN 16
static struct {
    char rules[MAX_SEEN][48];
    char messages[MAX_SEEN][512];
    size_t n;
} g_seen;

static const struct csgi_str no_reason = {NULL, 0};
static const struct csgi_header ct_plain[] = {
    {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
};

static void
setup(void)
{
    g_api = NULL;
    g_calls = 0;
    g_closes = 0;
    g_bodies = 0;
    g_file_fd = -1;
    memset(g_rc, 0, sizeof(g_rc));
    memset(&g_seen, 0, sizeof(g_seen));
}

static void
record(void *arg, const struct csgi_environ *env, const char *rule, const char *message)
{
    (void)arg;
    (void)env;
    if (g_seen.n < MAX_SEEN) {
        snprintf(g_seen.rules[g_seen.n], sizeof(g_seen.rules[0]), "%s", rule);
        snprintf(g_seen.messages[g_seen.n], sizeof(g_seen.messages[0]), "%s", message);
    }
    g_seen.n++;
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

/* ------------------------------------------------------------------ */
/* A configurable list body                                            */
/* ------------------------------------------------------------------ */

enum vb_mode {
    VB_PLAIN,
    VB_NULL_CHUNK,     /* first chunk is {NULL, 5} */
    VB_POSITIVE,       /* next() returns 7 */
    VB_DECLINE,        /* next() returns CSGI_EDECLINED */
    VB_WRITE_IN_NEXT,  /* first next() calls write() */
    VB_WRITE_IN_CLOSE, /* close() calls write() */
    VB_READ_IN_CLOSE,  /* close() reads the input */
    VB_FAIL_SECOND,    /* second next() fails with CSGI_EIO */
    VB_LAZY_START,     /* first next() calls start_response() */
    VB_EXC_IN_NEXT,    /* second next(): start_response(exc) and return its code */
    VB_PENDING_FIRST,  /* first next(): resume() itself, then CSGI_PENDING (SPEC 4.14) */
    VB_REENTER         /* first next(): call next() of g_reenter (the outer body) again */
};

/* The validator's body that VB_REENTER calls back into (SRV_NEXT_REENTER). */
static const struct csgi_body *g_reenter;

struct vbody {
    const char *chunks[4];
    size_t n;
    size_t i;
    enum vb_mode mode;
    int waited;
    const struct csgi_responder *resp;
    const struct csgi_environ *env;
};

static int
vbody_next(void *ctx, struct csgi_chunk *out)
{
    struct vbody *b = ctx;
    size_t i = b->i;

    switch (b->mode) {
    case VB_NULL_CHUNK:
        out->ptr = NULL;
        out->len = 5;
        b->i++;
        return CSGI_OK;
    case VB_POSITIVE:
        return 7;
    case VB_DECLINE:
        return CSGI_EDECLINED;
    case VB_WRITE_IN_NEXT:
        if (i == 0)
            g_rc[0] = b->resp->write(b->resp->ctx, "w", 1);
        break;
    case VB_FAIL_SECOND:
        if (i == 1)
            return CSGI_EIO;
        break;
    case VB_LAZY_START:
        if (i == 0) {
            int rc = b->resp->start_response(b->resp->ctx, 200, no_reason, ct_plain, 1, NULL);
            if (rc < 0)
                return rc;
        }
        break;
    case VB_PENDING_FIRST:
        if (i == 0 && !b->waited) {
            b->waited = 1;
            g_rc[2] = g_api->resume(b->env->request);
            return CSGI_PENDING;
        }
        break;
    case VB_REENTER:
        if (i == 0 && g_reenter) {
            struct csgi_chunk again;
            const struct csgi_body *outer = g_reenter;

            g_reenter = NULL;
            g_rc[2] = outer->next(outer->ctx, &again);
        }
        break;
    case VB_EXC_IN_NEXT:
        if (i == 1) {
            struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO, CSGI_STR_INIT("late")};
            return b->resp->start_response(b->resp->ctx, 500, no_reason, ct_plain, 1, &exc);
        }
        break;
    default:
        break;
    }
    if (b->i >= b->n)
        return CSGI_DONE;
    out->ptr = b->chunks[b->i];
    out->len = strlen(b->chunks[b->i]);
    b->i++;
    return CSGI_OK;
}

/* An upgraded connection and the host table it came from (SPEC 4.15). */
static struct csgi_upgrade *g_up;
static const struct csgi_host_api *g_up_api;
static int g_up_closes;

static void
vbody_close(void *ctx)
{
    struct vbody *b = ctx;
    char buf[4];

    g_closes++;
    if (b->mode == VB_WRITE_IN_CLOSE)
        g_rc[1] = b->resp->write(b->resp->ctx, "late", 4);
    if (b->mode == VB_READ_IN_CLOSE)
        g_rc[1] = (int)b->env->input->read(b->env->input->ctx, buf, sizeof(buf));
}

/* Fill @p out with a body of up to three chunks. */
static struct vbody *
vbody_make(struct csgi_environ *env, const struct csgi_responder *resp, struct csgi_body *out,
           enum vb_mode mode, const char *a, const char *b, const char *c)
{
    struct vbody *body = g_api->alloc(env->request, sizeof(*body));

    ck_assert_ptr_nonnull(body);
    memset(body, 0, sizeof(*body));
    if (a)
        body->chunks[body->n++] = a;
    if (b)
        body->chunks[body->n++] = b;
    if (c)
        body->chunks[body->n++] = c;
    body->mode = mode;
    body->resp = resp;
    body->env = env;
    out->ctx = body;
    out->next = vbody_next;
    out->close = vbody_close;
    g_bodies++;
    return body;
}

static int
start(const struct csgi_responder *resp, int status, const struct csgi_header *h, size_t n)
{
    return resp->start_response(resp->ctx, status, no_reason, h, n, NULL);
}

/* start_response(200, one header) */
static int
start1(const struct csgi_responder *resp, const char *name, const char *value)
{
    struct csgi_header h[2] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
        {{name, strlen(name)}, {value, strlen(value)}},
    };

    return start(resp, 200, h, 2);
}

#define APP(name)                                                                                  \
    static int name(void *state, struct csgi_environ *env, const struct csgi_responder *resp,      \
                    struct csgi_body *out)

/* Shorthand: start_response, then fail the call if it failed. */
#define START_OR_RETURN(expr)                                                                      \
    do {                                                                                           \
        int start_rc_ = (expr);                                                                    \
        if (start_rc_ < 0)                                                                         \
            return start_rc_;                                                                      \
    } while (0)

/* ------------------------------------------------------------------ */
/* Good applications                                                   */
/* ------------------------------------------------------------------ */

APP(good_stream)
{
    (void)state;
    g_calls++;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_PLAIN, "a", "", "bc");
    return CSGI_OK;
}

APP(good_write)
{
    (void)state;
    (void)env;
    (void)out;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    g_rc[0] = resp->write(resp->ctx, "hello ", 6);
    g_rc[1] = resp->write(resp->ctx, "world", 5);
    return g_rc[0] < 0 ? g_rc[0] : g_rc[1];
}

APP(good_file)
{
    char path[] = "/tmp/csgi-validator-XXXXXX";
    int fd = mkstemp(path);
    int rc;

    (void)state;
    ck_assert_int_ge(fd, 0);
    unlink(path);
    ck_assert_int_eq(write(fd, "abcdefghijklmnopqrstuvwxyz", 26), 26);
    rc = g_api->body_from_fd(env->request, fd, 0, -1, CSGI_FD_CLOSE, out);
    if (rc < 0)
        return rc;
    return start1(resp, "Content-Length", "26");
}

APP(good_exc_before_sent)
{
    struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO, CSGI_STR_INIT("oops")};

    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    START_OR_RETURN(resp->start_response(resp->ctx, 500, no_reason, ct_plain, 1, &exc));
    vbody_make(env, resp, out, VB_PLAIN, "error page", NULL, NULL);
    return CSGI_OK;
}

APP(good_exc_after_write)
{
    struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO, CSGI_STR_INIT("oops")};

    (void)state;
    (void)env;
    (void)out;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    g_rc[0] = resp->write(resp->ctx, "partial", 7);
    /* Too late to replace: propagate CSGI_EHEADERS_SENT at once. */
    return resp->start_response(resp->ctx, 500, no_reason, ct_plain, 1, &exc);
}

APP(good_exc_in_next)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_EXC_IN_NEXT, "a", "b", NULL);
    return CSGI_OK;
}

APP(good_lazy_start)
{
    (void)state;
    vbody_make(env, resp, out, VB_LAZY_START, "late", "start", NULL);
    return CSGI_OK;
}

APP(good_head)
{
    (void)state;
    (void)env;
    (void)out;
    return start1(resp, "Content-Length", "5");
}

APP(good_input)
{
    const struct csgi_input *in = env->input;
    char buf[64];
    int64_t n, total = 0;

    (void)state;
    (void)out;
    for (n = in->readline(in->ctx, buf, sizeof(buf)); n > 0;
         n = in->readline(in->ctx, buf, sizeof(buf)))
        total += n;
    g_rc[0] = (int)total;
    g_rc[1] = (int)in->read(in->ctx, buf, sizeof(buf));
    g_rc[2] = in->rewind(in->ctx);
    total = 0;
    for (n = in->read(in->ctx, buf, 3); n > 0; n = in->read(in->ctx, buf, 3))
        total += n;
    g_rc[3] = (int)total;
    in->read(in->ctx, buf, 0);
    return start(resp, 204, NULL, 0);
}

APP(good_errors)
{
    const struct csgi_errors *e = env->errors;

    (void)state;
    (void)out;
    e->log(e->ctx, CSGI_LOG_INFO, "fine", 4);
    e->write(e->ctx, "a line\npartial", 14);
    e->flush(e->ctx);
    e->write(e->ctx, NULL, 0);
    return start(resp, 204, NULL, 0);
}

APP(good_no_content)
{
    (void)state;
    (void)env;
    (void)out;
    return start(resp, 204, NULL, 0);
}

APP(good_declined)
{
    (void)state;
    (void)env;
    (void)resp;
    (void)out;
    return CSGI_EDECLINED;
}

APP(good_error_mid_body)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_FAIL_SECOND, "a", "b", NULL);
    return CSGI_OK;
}

APP(good_lengths)
{
    (void)state;
    START_OR_RETURN(start1(resp, "Content-Length", "6"));
    g_rc[0] = resp->write(resp->ctx, "abc", 3);
    vbody_make(env, resp, out, VB_PLAIN, "d", "ef", NULL);
    out->total_length = 3;
    return g_rc[0];
}

/* ------------------------------------------------------------------ */
/* Bad applications: one per app.* rule                                */
/* ------------------------------------------------------------------ */

static void
up_data(void *arg, struct csgi_upgrade *u, const void *data, size_t len)
{
    (void)arg;
    (void)u;
    (void)data;
    (void)len;
}

static void
up_close(void *arg, struct csgi_upgrade *u, int reason)
{
    (void)arg;
    (void)reason;
    ck_assert_ptr_eq(u, g_up);
    g_up_closes++;
}

static const struct csgi_upgrade_handler up_handler = {
    .version = CSGI_UPGRADE_HANDLER_VERSION, .on_data = up_data, .on_close = up_close};

static const struct csgi_header up_head[] = {
    {CSGI_STR_INIT("Upgrade"), CSGI_STR_INIT("x")},
    {CSGI_STR_INIT("Connection"), CSGI_STR_INIT("upgrade")}};

/* A 101 for a request that did not ask (the host then answers 500: no upgrade()). */
APP(bad_upgrade_not_asked)
{
    (void)state;
    (void)env;
    (void)out;
    g_calls++;
    return start(resp, 101, up_head, 2);
}

/* A 101 with body bytes (the request asked). */
APP(bad_upgrade_body)
{
    (void)state;
    (void)env;
    (void)out;
    g_calls++;
    g_rc[0] = start(resp, 101, up_head, 2);
    return resp->write(resp->ctx, "x", 1);
}

/* The request's end, after on_close(): a write to the closed connection. */
static void
up_late(void *arg, int reason)
{
    (void)arg;
    (void)reason;
    g_rc[1] = g_up_api->upgrade_write(g_up, "late", 4);
}

/*
 * upgrade() then a 200: the host answers 500 and calls on_close(); an
 * on_finished() callback, later, still writes to the connection.
 */
APP(bad_upgrade_after_close)
{
    (void)state;
    g_calls++;
    g_up_api = env->host;
    g_rc[0] = env->host->upgrade(env->request, &up_handler, NULL, &g_up);
    ck_assert_int_eq(g_rc[0], CSGI_OK);
    ck_assert_int_eq(start1(resp, "X-A", "b"), CSGI_OK);
    ck_assert_int_eq(env->host->on_finished(env->request, up_late, NULL), CSGI_OK);
    vbody_make(env, resp, out, VB_PLAIN, "x", NULL, NULL);
    return CSGI_OK;
}

/* A long poll whose data is there at once: resume() before CSGI_PENDING, the start in next(). */
APP(pending_call)
{
    (void)state;
    g_calls++;
    vbody_make(env, resp, out, VB_LAZY_START, "p", NULL, NULL);
    g_rc[3] = g_api->resume(env->request);
    return CSGI_PENDING;
}

/* A stream that waits once (and wakes itself) before its first chunk. */
APP(pending_next)
{
    (void)state;
    g_calls++;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_PENDING_FIRST, "a", "b", NULL);
    return CSGI_OK;
}

APP(reenter_stream)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_REENTER, "a", NULL, NULL);
    return CSGI_OK;
}

APP(bad_call_result)
{
    (void)state;
    (void)env;
    (void)out;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    return 1;
}

APP(bad_declined_late)
{
    (void)state;
    (void)env;
    (void)out;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    return CSGI_EDECLINED;
}

APP(bad_declined_in_next)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_DECLINE, NULL, NULL, NULL);
    return CSGI_OK;
}

APP(bad_start_twice)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    g_rc[0] = start(resp, 201, ct_plain, 1);
    vbody_make(env, resp, out, VB_PLAIN, "x", NULL, NULL);
    return CSGI_OK;
}

APP(bad_status)
{
    (void)state;
    (void)env;
    (void)out;
    return start(resp, 99, ct_plain, 1);
}

APP(bad_status_informational)
{
    (void)state;
    (void)env;
    (void)out;
    return start(resp, 103, ct_plain, 1);
}

APP(bad_reason)
{
    struct csgi_str reason = CSGI_STR_INIT("OK\r\nX-Injected: 1");

    (void)state;
    (void)env;
    (void)out;
    return resp->start_response(resp->ctx, 200, reason, ct_plain, 1, NULL);
}

APP(bad_headers_array)
{
    (void)state;
    (void)env;
    (void)out;
    return start(resp, 200, NULL, 1);
}

APP(bad_header_null_name)
{
    const struct csgi_header h[] = {{{NULL, 4}, CSGI_STR_INIT("v")}};

    (void)state;
    (void)env;
    (void)out;
    return start(resp, 200, h, 1);
}

APP(bad_header_status)
{
    (void)state;
    (void)env;
    (void)out;
    return start1(resp, "Status", "200 OK");
}

APP(bad_header_name)
{
    (void)state;
    (void)env;
    (void)out;
    return start1(resp, "Bad Name", "v");
}

APP(bad_header_name_strict)
{
    (void)state;
    (void)env;
    (void)out;
    return start1(resp, "X-Trailing_", "v");
}

APP(bad_header_name_digit)
{
    (void)state;
    (void)env;
    (void)out;
    return start1(resp, "1st-Header", "v");
}

APP(bad_header_value)
{
    (void)state;
    (void)env;
    (void)out;
    return start1(resp, "X-Split", "a\r\nSet-Cookie: evil");
}

APP(bad_header_value_tab)
{
    (void)state;
    (void)env;
    (void)out;
    return start1(resp, "X-Tab", "a\tb");
}

APP(bad_hop_by_hop)
{
    (void)state;
    (void)env;
    (void)out;
    return start1(resp, "Transfer-Encoding", "chunked");
}

APP(bad_content_length_value)
{
    (void)state;
    (void)env;
    (void)out;
    return start1(resp, "Content-Length", "12abc");
}

APP(bad_content_length_twice)
{
    const struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
        {CSGI_STR_INIT("Content-Length"), CSGI_STR_INIT("0")},
        {CSGI_STR_INIT("content-length"), CSGI_STR_INIT("0")},
    };

    (void)state;
    (void)env;
    (void)out;
    return start(resp, 200, h, 3);
}

APP(bad_content_length_204)
{
    const struct csgi_header h[] = {{CSGI_STR_INIT("Content-Length"), CSGI_STR_INIT("0")}};

    (void)state;
    (void)env;
    (void)out;
    return start(resp, 204, h, 1);
}

APP(bad_content_type_missing)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, NULL, 0));
    vbody_make(env, resp, out, VB_PLAIN, "x", NULL, NULL);
    return CSGI_OK;
}

APP(bad_content_type_forbidden)
{
    (void)state;
    (void)env;
    (void)out;
    return start(resp, 304, ct_plain, 1);
}

APP(bad_exc_info)
{
    struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, 0, CSGI_STR_INIT("not an error")};

    (void)state;
    (void)env;
    (void)out;
    return resp->start_response(resp->ctx, 500, no_reason, ct_plain, 1, &exc);
}

APP(bad_exc_version0)
{
    /* A version-0 exc_info: no field is defined, the server must refuse it. */
    struct csgi_exc_info exc = {0, CSGI_EIO, CSGI_STR_INIT("oops")};

    (void)state;
    (void)env;
    (void)out;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    g_rc[0] = resp->start_response(resp->ctx, 500, no_reason, ct_plain, 1, &exc);
    return CSGI_OK;
}

/* A 26-byte temporary file, already unlinked. */
static int
alphabet_file(void)
{
    char path[] = "/tmp/csgi-validator-XXXXXX";
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    unlink(path);
    ck_assert_int_eq(write(fd, "abcdefghijklmnopqrstuvwxyz", 26), 26);
    return fd;
}

APP(bad_file_range)
{
    int rc;

    (void)state;
    /* Bytes 20..29 of a 26-byte file. */
    rc = g_api->body_from_fd(env->request, alphabet_file(), 20, 10, CSGI_FD_CLOSE, out);
    if (rc < 0)
        return rc;
    return start(resp, 200, ct_plain, 1);
}

APP(file_whole)
{
    int rc;

    (void)state;
    g_file_fd = alphabet_file();
    rc = g_api->body_from_fd(env->request, g_file_fd, 0, -1, CSGI_FD_CLOSE, out);
    if (rc < 0)
        return rc;
    return start(resp, 200, ct_plain, 1);
}

APP(bad_headers_sent_ignored)
{
    struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO, CSGI_STR_INIT("oops")};

    (void)state;
    (void)env;
    (void)out;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    resp->write(resp->ctx, "partial", 7);
    g_rc[0] = resp->start_response(resp->ctx, 500, no_reason, ct_plain, 1, &exc);
    return CSGI_OK; /* should have returned g_rc[0] */
}

APP(bad_write_before_start)
{
    (void)state;
    g_rc[0] = resp->write(resp->ctx, "early", 5);
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_PLAIN, "x", NULL, NULL);
    return CSGI_OK;
}

APP(bad_write_in_next)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_WRITE_IN_NEXT, "x", NULL, NULL);
    return CSGI_OK;
}

APP(bad_write_args)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    g_rc[0] = resp->write(resp->ctx, NULL, 3);
    vbody_make(env, resp, out, VB_PLAIN, "x", NULL, NULL);
    return CSGI_OK;
}

APP(bad_responder_late)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_WRITE_IN_CLOSE, "x", NULL, NULL);
    return CSGI_OK;
}

APP(bad_chunk_before_start)
{
    (void)state;
    vbody_make(env, resp, out, VB_PLAIN, "too early", NULL, NULL);
    return CSGI_OK;
}

APP(bad_no_start_response)
{
    (void)state;
    (void)env;
    (void)resp;
    (void)out;
    return CSGI_OK;
}

APP(bad_chunk_null)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_NULL_CHUNK, NULL, NULL, NULL);
    return CSGI_OK;
}

APP(bad_next_result)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_POSITIVE, NULL, NULL, NULL);
    return CSGI_OK;
}

APP(bad_total_length)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_PLAIN, "x", NULL, NULL);
    out->total_length = -5;
    return CSGI_OK;
}

APP(bad_total_length_short)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_PLAIN, "abc", NULL, NULL);
    out->total_length = 10;
    return CSGI_OK;
}

APP(bad_total_length_long)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_PLAIN, "abc", "def", NULL);
    out->total_length = 2;
    return CSGI_OK;
}

APP(bad_content_length_short)
{
    (void)state;
    START_OR_RETURN(start1(resp, "Content-Length", "10"));
    vbody_make(env, resp, out, VB_PLAIN, "abc", NULL, NULL);
    return CSGI_OK;
}

APP(bad_content_length_long)
{
    (void)state;
    START_OR_RETURN(start1(resp, "Content-Length", "2"));
    vbody_make(env, resp, out, VB_PLAIN, "abc", "def", NULL);
    return CSGI_OK;
}

APP(bad_write_past_length)
{
    (void)state;
    (void)env;
    (void)out;
    START_OR_RETURN(start1(resp, "Content-Length", "2"));
    g_rc[0] = resp->write(resp->ctx, "abc", 3);
    return g_rc[0];
}

APP(bad_head_body)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_PLAIN, "abc", NULL, NULL);
    return CSGI_OK;
}

APP(bad_body_forbidden)
{
    (void)state;
    START_OR_RETURN(start(resp, 204, NULL, 0));
    vbody_make(env, resp, out, VB_PLAIN, "abc", NULL, NULL);
    return CSGI_OK;
}

APP(bad_input_args)
{
    (void)state;
    (void)out;
    g_rc[0] = (int)env->input->read(env->input->ctx, NULL, 5);
    return start(resp, 204, NULL, 0);
}

APP(bad_input_late)
{
    (void)state;
    START_OR_RETURN(start(resp, 200, ct_plain, 1));
    vbody_make(env, resp, out, VB_READ_IN_CLOSE, "x", NULL, NULL);
    return CSGI_OK;
}

APP(bad_errors_level)
{
    (void)state;
    (void)out;
    g_rc[0] = env->errors->log(env->errors->ctx, 9, "loud", 4);
    return start(resp, 204, NULL, 0);
}

APP(bad_errors_write)
{
    (void)state;
    (void)out;
    g_rc[0] = env->errors->write(env->errors->ctx, NULL, 3);
    return start(resp, 204, NULL, 0);
}

/* Applications that exercise the server's input stream. */
APP(reader_read)
{
    char buf[4];

    (void)state;
    (void)out;
    /* Read to the end (at most 8 times), then once more. */
    for (int i = 0; i < 8; i++) {
        if (env->input->read(env->input->ctx, buf, sizeof(buf)) <= 0)
            break;
    }
    env->input->read(env->input->ctx, buf, sizeof(buf));
    return start(resp, 204, NULL, 0);
}

APP(reader_readline)
{
    char buf[16];

    (void)state;
    (void)out;
    for (int i = 0; i < 8; i++) {
        if (env->input->readline(env->input->ctx, buf, sizeof(buf)) <= 0)
            break;
    }
    return start(resp, 204, NULL, 0);
}

APP(reader_rewind)
{
    (void)state;
    (void)out;
    g_rc[0] = env->input->rewind(env->input->ctx);
    return start(resp, 204, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* Bad servers: a middleware that breaks what the validator receives   */
/* ------------------------------------------------------------------ */

enum srv_mode {
    SRV_NONE,
    SRV_CALL_NULL_ENV,
    SRV_NO_WRITE,
    SRV_STALE_BODY,
    SRV_READ_TOO_MUCH,
    SRV_READLINE_PAST_NEWLINE,
    SRV_DATA_AFTER_EOF,
    SRV_INPUT_SHORT,
    SRV_INPUT_LONG,
    SRV_REWIND_FAILS,
    SRV_PERMISSIVE,
    SRV_NEXT_AFTER_DONE,
    SRV_NEXT_AFTER_CLOSE,
    SRV_CLOSE_TWICE,
    SRV_NO_CLOSE,
    SRV_SHRINK_FILE,  /* the file of the application's file body shrinks after call() */
    SRV_NEXT_REENTER, /* the application's next() gets the validator's next() called again */
    SRV_OLD_HOST      /* the validator sees host API version 2 (no resume()) */
};

struct fake_input {
    struct csgi_input table;
    enum srv_mode mode;
    int calls;
};

static int64_t
fake_read(void *ctx, void *buf, size_t n)
{
    struct fake_input *f = ctx;
    int call = f->calls++;

    switch (f->mode) {
    case SRV_READ_TOO_MUCH:
        return call == 0 ? (int64_t)n + 1 : 0;
    case SRV_DATA_AFTER_EOF:
        if (call == 1 && n >= 3) {
            memcpy(buf, "xyz", 3);
            return 3;
        }
        return 0;
    case SRV_INPUT_LONG:
        if (call < 2 && n >= 3) {
            memcpy(buf, "abc", 3);
            return 3;
        }
        return 0;
    default:
        return 0;
    }
}

static int64_t
fake_readline(void *ctx, void *buf, size_t n)
{
    struct fake_input *f = ctx;

    if (f->calls++ == 0 && n >= 3) {
        memcpy(buf, "a\nb", 3);
        return 3;
    }
    return 0;
}

static int
fake_rewind(void *ctx)
{
    (void)ctx;
    return CSGI_ENOTSUP;
}

static int
permissive_start(void *ctx, int status, struct csgi_str reason, const struct csgi_header *headers,
                 size_t n_headers, const struct csgi_exc_info *exc)
{
    const struct csgi_responder *real = ctx;
    int rc = real->start_response(real->ctx, status, reason, headers, n_headers, exc);

    /* CSGI_EINVAL: what a server answers to an exc_info of version 0. */
    return rc == CSGI_ESTATE || rc == CSGI_EINVAL ? CSGI_OK : rc;
}

static int
permissive_write(void *ctx, const void *data, size_t len)
{
    const struct csgi_responder *real = ctx;
    int rc = real->write(real->ctx, data, len);

    return rc == CSGI_ESTATE ? CSGI_OK : rc;
}

struct vcase;

struct bad_server {
    const struct vcase *c;
    struct csgi_validator *v;
};

/* ------------------------------------------------------------------ */
/* Cases                                                               */
/* ------------------------------------------------------------------ */

#define ASKS_UPGRADE 2

struct vcase {
    /* The rule the case is about (NULL for a good case). */
    const char *rule;
    /* A rule reported before it, when the breakage also triggers that one. */
    const char *before;
    csgi_app_fn app;
    uint32_t flags;
    const char *method;
    /*
     * 1: send "hello" with Content-Length: 5. ASKS_UPGRADE: send no body but
     * Upgrade and Connection headers (SPEC 4.15).
     */
    int body;
    enum srv_mode server;
    void (*mutate)(struct csgi_environ *env);
    /* Good cases: the expected outcome. */
    int expect_rc;
};

static void
m_version(struct csgi_environ *e)
{
    e->version = 0;
}

static void
m_request(struct csgi_environ *e)
{
    e->request = NULL;
}

static void
m_string_null(struct csgi_environ *e)
{
    e->server_name.ptr = NULL;
}

static void
m_string_nul(struct csgi_environ *e)
{
    e->path_info.ptr = "/a\0b";
    e->path_info.len = 4;
}

static void
m_method(struct csgi_environ *e)
{
    e->request_method.ptr = "G ET";
    e->request_method.len = 4;
}

static void
m_script_name(struct csgi_environ *e)
{
    e->script_name.ptr = "app";
    e->script_name.len = 3;
}

static void
m_script_slash(struct csgi_environ *e)
{
    e->script_name.ptr = "/";
    e->script_name.len = 1;
}

static void
m_path_info(struct csgi_environ *e)
{
    e->path_info.ptr = "x";
    e->path_info.len = 1;
}

static void
m_path_empty(struct csgi_environ *e)
{
    e->path_info.ptr = "";
    e->path_info.len = 0;
}

static void
m_query(struct csgi_environ *e)
{
    e->query_string.ptr = NULL;
    e->query_string.len = 0;
}

static void
m_raw_target(struct csgi_environ *e)
{
    e->raw_target.ptr = "http://x/";
    e->raw_target.len = 9;
}

static void
m_options_star(struct csgi_environ *e)
{
    e->request_method.ptr = "OPTIONS";
    e->request_method.len = 7;
    e->raw_target.ptr = "*";
    e->raw_target.len = 1;
}

static void
m_content_length(struct csgi_environ *e)
{
    e->content_length = -2;
}

static void
m_content_type_header(struct csgi_environ *e)
{
    e->content_type.ptr = "text/html";
    e->content_type.len = 9;
}

static void
m_content_length_header(struct csgi_environ *e)
{
    e->content_length = 5;
    e->input_length = 5; /* only the header disagrees */
}

static void
m_server_name(struct csgi_environ *e)
{
    e->server_name.ptr = "";
    e->server_name.len = 0;
}

static void
m_server_port(struct csgi_environ *e)
{
    e->server_port.ptr = "8o";
    e->server_port.len = 2;
}

static void
m_server_protocol(struct csgi_environ *e)
{
    e->server_protocol.ptr = "HTTP/one";
    e->server_protocol.len = 8;
}

static void
m_url_scheme(struct csgi_environ *e)
{
    e->url_scheme.ptr = "ftp";
    e->url_scheme.len = 3;
}

static void
m_header(struct csgi_environ *e)
{
    static const struct csgi_header bad[] = {{CSGI_STR_INIT("Bad Name"), CSGI_STR_INIT("v")}};

    e->headers = bad;
    e->n_headers = 1;
}

static void
m_input(struct csgi_environ *e)
{
    e->input = NULL;
}

static void
m_errors(struct csgi_environ *e)
{
    e->errors = NULL;
}

static void
m_flags_terminated(struct csgi_environ *e)
{
    e->flags &= ~(uint32_t)CSGI_ENV_INPUT_TERMINATED;
}

static void
m_flags_tls(struct csgi_environ *e)
{
    e->flags |= CSGI_ENV_TLS;
}

static void
m_config(struct csgi_environ *e)
{
    e->config = NULL;
    e->n_config = 1;
}

static void
m_v2_request_id(struct csgi_environ *e)
{
    e->request_id.ptr = "has space";
    e->request_id.len = 9;
}

static void
m_v2_input_length(struct csgi_environ *e)
{
    e->input_length = e->content_length + 1;
}

static void
m_v2_host(struct csgi_environ *e)
{
    e->host = NULL;
}

static void
m_v3_tls_missing(struct csgi_environ *e)
{
    /* An https request whose facts are gone. */
    e->flags |= CSGI_ENV_TLS;
    e->url_scheme.ptr = "https";
    e->url_scheme.len = 5;
    e->tls = NULL;
}

#define STRICT_CT CSGI_VALIDATOR_STRICT_CONTENT_TYPE
#define STRICT_H  CSGI_VALIDATOR_STRICT_HEADERS

/* clang-format off */
static const struct vcase bad_cases[] = {
    /* The server's environ. */
    {"env.version", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_version, 0},
    {"env.request", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_request, 0},
    {"env.string", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_string_null, 0},
    {"env.string", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_string_nul, 0},
    {"env.request_method", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_method, 0},
    {"env.method_unknown", NULL, good_stream, CSGI_VALIDATOR_STRICT_METHOD, "BREW", 0, SRV_NONE,
     NULL, 0},
    {"env.script_name", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_script_name, 0},
    {"env.script_name_slash", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_script_slash, 0},
    {"env.path_info", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_path_info, 0},
    {"env.path_empty", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_path_empty, 0},
    {"env.query_string", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_query, 0},
    {"env.raw_target", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_raw_target, 0},
    {"env.content_length", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_content_length, 0},
    {"env.content_type_header", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_content_type_header,
     0},
    {"env.content_length_header", NULL, good_stream, 0, NULL, 0, SRV_NONE,
     m_content_length_header, 0},
    {"env.server_name", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_server_name, 0},
    {"env.server_port", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_server_port, 0},
    {"env.server_protocol", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_server_protocol, 0},
    {"env.url_scheme", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_url_scheme, 0},
    {"env.header", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_header, 0},
    {"env.input", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_input, 0},
    {"env.errors", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_errors, 0},
    {"env.flags", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_flags_terminated, 0},
    {"env.flags", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_flags_tls, 0},
    {"env.config", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_config, 0},
    {"env.v2", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_v2_request_id, 0},
    {"env.v2", NULL, good_stream, 0, NULL, 1, SRV_NONE, m_v2_input_length, 0},
    {"env.v2", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_v2_host, 0},
    {"env.v3", NULL, good_stream, 0, NULL, 0, SRV_NONE, m_v3_tls_missing, 0},
    /* The server's behaviour. */
    {"srv.call_args", NULL, good_stream, 0, NULL, 0, SRV_CALL_NULL_ENV, NULL, 0},
    {"srv.responder", NULL, good_stream, 0, NULL, 0, SRV_NO_WRITE, NULL, 0},
    {"srv.body_init", NULL, good_stream, 0, NULL, 0, SRV_STALE_BODY, NULL, 0},
    {"srv.input_result", NULL, reader_read, 0, NULL, 0, SRV_READ_TOO_MUCH, NULL, 0},
    {"srv.input_result", NULL, reader_readline, 0, NULL, 0, SRV_READLINE_PAST_NEWLINE, NULL, 0},
    {"srv.input_eof", NULL, reader_read, 0, NULL, 0, SRV_DATA_AFTER_EOF, NULL, 0},
    {"srv.input_length", NULL, reader_read, 0, NULL, 1, SRV_INPUT_SHORT, NULL, 0},
    {"srv.input_length", NULL, reader_read, 0, NULL, 1, SRV_INPUT_LONG, NULL, 0},
    {"srv.input_rewind", NULL, reader_rewind, 0, NULL, 0, SRV_REWIND_FAILS, NULL, 0},
    {"srv.state_not_enforced", "app.start_response_twice", bad_start_twice, 0, NULL, 0,
     SRV_PERMISSIVE, NULL, 0},
    {"srv.state_not_enforced", "app.write_before_start", bad_write_before_start, 0, NULL, 0,
     SRV_PERMISSIVE, NULL, 0},
    {"srv.next_after_done", NULL, good_stream, 0, NULL, 0, SRV_NEXT_AFTER_DONE, NULL, 0},
    {"srv.next_after_close", NULL, good_stream, 0, NULL, 0, SRV_NEXT_AFTER_CLOSE, NULL, 0},
    {"srv.close_twice", NULL, good_stream, 0, NULL, 0, SRV_CLOSE_TWICE, NULL, 0},
    {"srv.body_not_closed", NULL, good_stream, 0, NULL, 0, SRV_NO_CLOSE, NULL, 0},
    /* The application. */
    {"app.call_result", NULL, bad_call_result, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.declined_late", NULL, bad_declined_late, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.declined_late", NULL, bad_declined_in_next, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.start_response_twice", NULL, bad_start_twice, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.status", NULL, bad_status, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.status", NULL, bad_status_informational, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.reason", NULL, bad_reason, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.headers_array", NULL, bad_headers_array, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.headers_array", NULL, bad_header_null_name, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.header_status", NULL, bad_header_status, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.header_name", NULL, bad_header_name, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.header_name_strict", NULL, bad_header_name_strict, STRICT_H, NULL, 0, SRV_NONE, NULL,
     0},
    {"app.header_name_strict", NULL, bad_header_name_digit, STRICT_H, NULL, 0, SRV_NONE, NULL,
     0},
    {"app.header_value", NULL, bad_header_value, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.header_value_tab", NULL, bad_header_value_tab, STRICT_H, NULL, 0, SRV_NONE, NULL, 0},
    {"app.hop_by_hop", NULL, bad_hop_by_hop, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.content_length_header", NULL, bad_content_length_value, 0, NULL, 0, SRV_NONE, NULL,
     0},
    {"app.content_length_header", NULL, bad_content_length_twice, 0, NULL, 0, SRV_NONE, NULL,
     0},
    {"app.content_length_header", NULL, bad_content_length_204, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.content_type_missing", NULL, bad_content_type_missing, STRICT_CT, NULL, 0, SRV_NONE,
     NULL, 0},
    {"app.content_type_forbidden", NULL, bad_content_type_forbidden, STRICT_CT, NULL, 0,
     SRV_NONE, NULL, 0},
    {"app.exc_info", NULL, bad_exc_info, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.exc_info", NULL, bad_exc_version0, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"srv.state_not_enforced", "app.exc_info", bad_exc_version0, 0, NULL, 0, SRV_PERMISSIVE, NULL,
     0},
    {"app.headers_sent_ignored", NULL, bad_headers_sent_ignored, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.write_before_start", NULL, bad_write_before_start, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.write_in_next", NULL, bad_write_in_next, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.write_args", NULL, bad_write_args, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.responder_late", NULL, bad_responder_late, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.chunk_before_start", NULL, bad_chunk_before_start, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.no_start_response", NULL, bad_no_start_response, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.chunk_null", NULL, bad_chunk_null, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.next_result", NULL, bad_next_result, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.total_length", NULL, bad_total_length, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.total_length_mismatch", NULL, bad_total_length_short, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.total_length_mismatch", NULL, bad_total_length_long, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.content_length_mismatch", NULL, bad_content_length_short, 0, NULL, 0, SRV_NONE, NULL,
     0},
    {"app.content_length_mismatch", NULL, bad_content_length_long, 0, NULL, 0, SRV_NONE, NULL,
     0},
    {"app.content_length_mismatch", NULL, bad_write_past_length, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.head_body", NULL, bad_head_body, CSGI_VALIDATOR_STRICT_HEAD, "HEAD", 0, SRV_NONE, NULL,
     0},
    {"app.body_forbidden", NULL, bad_body_forbidden, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.input_args", NULL, bad_input_args, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.input_late", NULL, bad_input_late, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.errors_args", NULL, bad_errors_level, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.errors_args", NULL, bad_errors_write, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.file_range", NULL, bad_file_range, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.file_range", NULL, file_whole, 0, NULL, 0, SRV_SHRINK_FILE, NULL, 0},
    {"srv.next_reentered", NULL, reenter_stream, 0, NULL, 0, SRV_NEXT_REENTER, NULL, 0},
    {"app.pending_unsupported", NULL, pending_call, 0, NULL, 0, SRV_OLD_HOST, NULL, 0},
    {"app.upgrade_not_asked", NULL, bad_upgrade_not_asked, 0, NULL, 0, SRV_NONE, NULL, 0},
    {"app.upgrade_body", NULL, bad_upgrade_body, 0, NULL, ASKS_UPGRADE, SRV_NONE, NULL, 0},
    {"app.upgrade_after_close", NULL, bad_upgrade_after_close, 0, NULL, ASKS_UPGRADE, SRV_NONE,
     NULL, 0},
};

static const struct vcase good_cases[] = {
    {NULL, NULL, good_stream, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, good_write, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, good_file, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, good_exc_before_sent, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, good_exc_after_write, 0, NULL, 0, SRV_NONE, NULL, CSGI_EHEADERS_SENT},
    {NULL, NULL, good_exc_in_next, 0, NULL, 0, SRV_NONE, NULL, CSGI_EHEADERS_SENT},
    {NULL, NULL, good_lazy_start, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, good_head, 0, "HEAD", 0, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, good_input, 0, "POST", 1, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, good_errors, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, good_no_content, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, good_declined, 0, NULL, 0, SRV_NONE, NULL, CSGI_EDECLINED},
    {NULL, NULL, good_error_mid_body, 0, NULL, 0, SRV_NONE, NULL, CSGI_EIO},
    {NULL, NULL, good_lengths, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
    /* A server passing through everything unchanged, and OPTIONS *. */
    {NULL, NULL, good_stream, 0, NULL, 0, SRV_NONE, m_options_star, CSGI_OK},
    /* Responses that wait (SPEC 4.14): CSGI_PENDING from call() and from next(). */
    {NULL, NULL, pending_call, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
    {NULL, NULL, pending_next, 0, NULL, 0, SRV_NONE, NULL, CSGI_OK},
};
/* clang-format on */

#define N_BAD  (sizeof(bad_cases) / sizeof(bad_cases[0]))
#define N_GOOD (sizeof(good_cases) / sizeof(good_cases[0]))

static int
needs_bad_server(const struct vcase *c)
{
    return c->mutate || c->server != SRV_NONE;
}

static void
drain(const struct csgi_body *b)
{
    struct csgi_chunk chunk;

    for (int i = 0; i < 100; i++) {
        if (b->next(b->ctx, &chunk) != CSGI_OK)
            break;
    }
}

static int
bad_server_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
                struct csgi_body *out)
{
    struct bad_server *bs = state;
    const struct vcase *c = bs->c;
    struct csgi_environ *e = g_api->alloc(env->request, sizeof(*e));
    struct csgi_responder *r = g_api->alloc(env->request, sizeof(*r));
    struct csgi_body *b = g_api->alloc(env->request, sizeof(*b));
    struct fake_input *in = g_api->alloc(env->request, sizeof(*in));
    struct csgi_chunk chunk;
    int rc;

    ck_assert(e && r && b && in);
    *e = *env;
    *r = *resp;
    *b = *out;
    memset(in, 0, sizeof(*in));
    in->table.version = CSGI_INPUT_VERSION;
    in->table.ctx = in;
    in->table.read = fake_read;
    in->table.readline = fake_readline;
    in->table.rewind = fake_rewind;
    in->mode = c->server;
    if (c->mutate)
        c->mutate(e);

    switch (c->server) {
    case SRV_CALL_NULL_ENV:
        return csgi_validator_call(bs->v, NULL, resp, out);
    case SRV_NO_WRITE:
        r->write = NULL;
        break;
    case SRV_STALE_BODY:
        b->version = 0;
        break;
    case SRV_READ_TOO_MUCH:
    case SRV_READLINE_PAST_NEWLINE:
    case SRV_DATA_AFTER_EOF:
    case SRV_INPUT_SHORT:
    case SRV_INPUT_LONG:
    case SRV_REWIND_FAILS:
        e->input = &in->table;
        /* A stream of unknown length: only Content-Length says what it must yield. */
        if (e->content_length < 0)
            e->input_length = -1;
        break;
    case SRV_PERMISSIVE:
        r->ctx = (void *)resp;
        r->start_response = permissive_start;
        r->write = permissive_write;
        break;
    default:
        break;
    }

    rc = csgi_validator_call(bs->v, e, r, b);
    if (rc != CSGI_OK && rc != CSGI_PENDING)
        return rc;
    switch (c->server) {
    case SRV_NEXT_REENTER:
        g_reenter = b;
        drain(b);
        b->close(b->ctx);
        return CSGI_OK;
    case SRV_NEXT_AFTER_DONE:
        drain(b);
        b->next(b->ctx, &chunk);
        b->close(b->ctx);
        return CSGI_OK;
    case SRV_NEXT_AFTER_CLOSE:
        b->close(b->ctx);
        b->next(b->ctx, &chunk);
        return CSGI_OK;
    case SRV_CLOSE_TWICE:
        drain(b);
        b->close(b->ctx);
        b->close(b->ctx);
        return CSGI_OK;
    case SRV_NO_CLOSE:
        drain(b);
        return CSGI_OK;
    case SRV_SHRINK_FILE:
        ck_assert_int_eq(ftruncate(g_file_fd, 10), 0);
        *out = *b;
        return CSGI_OK;
    default:
        *out = *b;
        return rc;
    }
}

/* How run_stacked() puts validators around the application. */
enum stack_mode {
    STACK_NONE,   /* one validator */
    STACK_DIRECT, /* a validator around a validator */
    STACK_RELAY   /* a validator, a middleware that wraps the responder, a validator */
};

/* The relay middleware: passes everything on, through a responder of its own. */
struct relay_req {
    const struct csgi_responder *outer;
    struct csgi_responder self;
};

static int
relay_start(void *ctx, int status, struct csgi_str reason, const struct csgi_header *headers,
            size_t n_headers, const struct csgi_exc_info *exc)
{
    struct relay_req *rr = ctx;

    return rr->outer->start_response(rr->outer->ctx, status, reason, headers, n_headers, exc);
}

static int
relay_write(void *ctx, const void *data, size_t len)
{
    struct relay_req *rr = ctx;

    return rr->outer->write(rr->outer->ctx, data, len);
}

static int
relay_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    struct relay_req *rr = g_api->alloc(env->request, sizeof(*rr));

    ck_assert_ptr_nonnull(rr);
    rr->outer = resp;
    rr->self = (struct csgi_responder){.version = CSGI_RESPONDER_VERSION,
                                       .ctx = rr,
                                       .start_response = relay_start,
                                       .write = relay_write};
    return csgi_validator_call(state, env, &rr->self, out);
}

static struct csgi_test_response *run_stacked(const struct vcase *c, uint32_t flags,
                                              uint64_t *violations, enum stack_mode stack);

/* Run one case through the validator on a fresh test client. */
static struct csgi_test_response *
run_case(const struct vcase *c, uint32_t flags, uint64_t *violations)
{
    return run_stacked(c, flags, violations, STACK_NONE);
}

/*
 * Run one case through one validator, or two stacked ones (@p violations is
 * then the sum of both counts), on a fresh test client.
 */
static struct csgi_test_response *
run_stacked(const struct vcase *c, uint32_t flags, uint64_t *violations, enum stack_mode stack)
{
    const struct csgi_header length = {CSGI_STR_INIT("Content-Length"), CSGI_STR_INIT("5")};
    struct csgi_test_request rq = {.method = c->method};
    struct csgi_validator_options opts = {.flags = flags, .report = record};
    struct csgi_test_response *resp = NULL;
    struct csgi_test_client *client;
    struct csgi_validator *v, *inner = NULL;
    /* SRV_OLD_HOST: what the validator is told the host is. */
    static struct csgi_host_api old_api;
    const struct csgi_host_api *vapi;
    struct bad_server bs;
    char err[256] = "";

    static const struct csgi_header asks[] = {
        {CSGI_STR_INIT("Upgrade"), CSGI_STR_INIT("x")},
        {CSGI_STR_INIT("Connection"), CSGI_STR_INIT("Upgrade")},
    };

    if (c->body == 1) {
        rq.headers = &length;
        rq.n_headers = 1;
        rq.body = "hello";
        rq.body_len = 5;
    }
    if (c->body == ASKS_UPGRADE) {
        rq.headers = asks;
        rq.n_headers = 2;
    }
    client = csgi_test_client_new_app(c->app, NULL, "", err, sizeof(err));
    ck_assert_msg(client != NULL, "%s", err);
    g_api = csgi_test_client_host_api(client);
    vapi = g_api;
    if (c->server == SRV_OLD_HOST) {
        old_api = *g_api;
        old_api.version = 2;
        vapi = &old_api;
    }
    if (stack == STACK_NONE) {
        v = csgi_validator_new(vapi, c->app, NULL, &opts);
    } else {
        inner = csgi_validator_new(vapi, c->app, NULL, &opts);
        ck_assert_ptr_nonnull(inner);
        v = csgi_validator_new(vapi, stack == STACK_RELAY ? relay_call : csgi_validator_call, inner,
                               &opts);
    }
    ck_assert_ptr_nonnull(v);
    if (needs_bad_server(c)) {
        bs.c = c;
        bs.v = v;
        ck_assert_int_eq(csgi_test_client_request_app(client, bad_server_call, &bs, &rq, &resp),
                         CSGI_OK);
    } else {
        ck_assert_int_eq(csgi_test_client_request_app(client, csgi_validator_call, v, &rq, &resp),
                         CSGI_OK);
    }
    if (violations)
        *violations = csgi_validator_violations(v) + csgi_validator_violations(inner);
    csgi_validator_free(v);
    csgi_validator_free(inner);
    csgi_test_client_free(client);
    return resp;
}

static void
assert_reports(const char *what, const char *const *want, size_t n_want)
{
    ck_assert_msg(g_seen.n == n_want, "%s: %zu reports, want %zu (first: %s)", what, g_seen.n,
                  n_want, g_seen.n ? g_seen.messages[0] : "none");
    for (size_t i = 0; i < n_want; i++) {
        size_t id_len = strlen(want[i]);

        ck_assert_msg(strcmp(g_seen.rules[i], want[i]) == 0, "%s: report %zu is %s, want %s", what,
                      i, g_seen.rules[i], want[i]);
        /* The message names the rule it reports. */
        ck_assert_msg(strncmp(g_seen.messages[i], want[i], id_len) == 0 &&
                          strncmp(g_seen.messages[i] + id_len, ": ", 2) == 0,
                      "%s: message \"%s\"", what, g_seen.messages[i]);
    }
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

START_TEST(validator_rule_fires_on_bad_app)
{
    const struct vcase *c = &bad_cases[_i];
    const char *want[2];
    size_t n = 0;
    uint64_t violations = 0;
    struct csgi_test_response *resp;
    char what[96];

    snprintf(what, sizeof(what), "bad case %d (%s)", _i, c->rule);
    if (c->before)
        want[n++] = c->before;
    want[n++] = c->rule;
    resp = run_case(c, c->flags, &violations);
    assert_reports(what, want, n);
    ck_assert_uint_eq(violations, n);
    /* Whatever went wrong, every body the application made was closed once. */
    ck_assert_msg(g_closes == g_bodies, "%s: %d bodies, %d closes", what, g_bodies, g_closes);
    csgi_test_response_free(resp);
}
END_TEST

/*
 * Two validators stacked around the same bad application (directly, and with
 * a middleware between them that wraps the responder) report each violation
 * once, exactly as one validator does.
 */
START_TEST(validator_stacked_reports_once)
{
    const struct vcase *c = &bad_cases[_i / 2];
    enum stack_mode stack = _i % 2 ? STACK_RELAY : STACK_DIRECT;
    const char *want[2];
    size_t n = 0;
    uint64_t violations = 0;
    struct csgi_test_response *resp;
    char what[128];

    snprintf(what, sizeof(what), "stacked (%s) bad case %d (%s)",
             stack == STACK_RELAY ? "relay" : "direct", _i / 2, c->rule);
    if (c->before)
        want[n++] = c->before;
    want[n++] = c->rule;
    resp = run_stacked(c, c->flags, &violations, stack);
    assert_reports(what, want, n);
    ck_assert_msg(violations == n, "%s: the validators count %llu violations, want %zu", what,
                  (unsigned long long)violations, n);
    ck_assert_msg(g_closes == g_bodies, "%s: %d bodies, %d closes", what, g_bodies, g_closes);
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_stacked_good_app_is_silent)
{
    const struct vcase *c = &good_cases[_i / 2];
    struct csgi_test_response *resp =
        run_stacked(c, CSGI_VALIDATOR_STRICT, NULL, _i % 2 ? STACK_RELAY : STACK_DIRECT);
    char what[64];

    snprintf(what, sizeof(what), "stacked good case %d", _i);
    assert_reports(what, NULL, 0);
    ck_assert_msg(resp->rc == c->expect_rc, "%s: rc %s, want %s", what, csgi_err_name(resp->rc),
                  csgi_err_name(c->expect_rc));
    ck_assert_msg(g_closes == g_bodies, "%s: %d bodies, %d closes", what, g_bodies, g_closes);
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_good_app_is_silent)
{
    const struct vcase *c = &good_cases[_i];
    struct csgi_test_response *resp = run_case(c, CSGI_VALIDATOR_STRICT, NULL);
    char what[64];

    snprintf(what, sizeof(what), "good case %d", _i);
    assert_reports(what, NULL, 0);
    ck_assert_msg(resp->rc == c->expect_rc, "%s: rc %s, want %s", what, csgi_err_name(resp->rc),
                  csgi_err_name(c->expect_rc));
    ck_assert_msg(g_closes == g_bodies, "%s: %d bodies, %d closes", what, g_bodies, g_closes);
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_good_apps_pass_through_unchanged)
{
    struct csgi_test_response *resp;

    resp = run_case(&good_cases[0], CSGI_VALIDATOR_STRICT, NULL);
    ck_assert_int_eq(resp->status, 200);
    ck_assert_str_eq(resp->body, "abc");
    csgi_test_response_free(resp);

    resp = run_case(&good_cases[1], CSGI_VALIDATOR_STRICT, NULL);
    ck_assert_str_eq(resp->body, "hello world");
    csgi_test_response_free(resp);

    resp = run_case(&good_cases[2], CSGI_VALIDATOR_STRICT, NULL);
    ck_assert_str_eq(resp->body, "abcdefghijklmnopqrstuvwxyz");
    csgi_test_response_free(resp);

    resp = run_case(&good_cases[3], CSGI_VALIDATOR_STRICT, NULL);
    ck_assert_int_eq(resp->status, 500);
    ck_assert_str_eq(resp->body, "error page");
    csgi_test_response_free(resp);

    resp = run_case(&good_cases[6], CSGI_VALIDATOR_STRICT, NULL);
    ck_assert_str_eq(resp->body, "latestart");
    csgi_test_response_free(resp);

    resp = run_case(&good_cases[8], CSGI_VALIDATOR_STRICT, NULL);
    ck_assert_int_eq(g_rc[0], 5);
    ck_assert_int_eq(g_rc[1], 0);
    ck_assert_int_eq(g_rc[2], CSGI_OK);
    ck_assert_int_eq(g_rc[3], 5);
    csgi_test_response_free(resp);

    resp = run_case(&good_cases[13], CSGI_VALIDATOR_STRICT, NULL);
    ck_assert_str_eq(resp->body, "abcdef");
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_strict_rules_need_their_flag)
{
    const struct vcase *c = &bad_cases[_i];
    const struct csgi_validator_rule *rule = csgi_validator_rule_find(c->rule);
    struct csgi_test_response *resp;

    ck_assert_ptr_nonnull(rule);
    if (!rule->strict_flag)
        return;
    resp = run_case(c, c->flags & ~rule->strict_flag, NULL);
    for (size_t i = 0; i < g_seen.n && i < MAX_SEEN; i++)
        ck_assert_msg(strcmp(g_seen.rules[i], c->rule) != 0, "%s fired without its flag", c->rule);
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_rules_all_have_a_bad_case)
{
    size_t n;
    const struct csgi_validator_rule *rules = csgi_validator_rules(&n);

    ck_assert_uint_gt(n, 0);
    for (size_t i = 0; i < n; i++) {
        int found = 0;

        for (size_t j = 0; j < N_BAD; j++)
            found |= strcmp(bad_cases[j].rule, rules[i].id) == 0;
        ck_assert_msg(found, "rule %s has no bad case", rules[i].id);
    }
    for (size_t j = 0; j < N_BAD; j++)
        ck_assert_msg(csgi_validator_rule_find(bad_cases[j].rule) != NULL, "unknown rule %s",
                      bad_cases[j].rule);
}
END_TEST

START_TEST(validator_rules_table_well_formed)
{
    size_t n;
    const struct csgi_validator_rule *rules = csgi_validator_rules(&n);

    for (size_t i = 0; i < n; i++) {
        const char *id = rules[i].id;

        ck_assert_msg(strncmp(id, "env.", 4) == 0 || strncmp(id, "srv.", 4) == 0 ||
                          strncmp(id, "app.", 4) == 0,
                      "bad id %s", id);
        ck_assert_msg(rules[i].summary && rules[i].summary[0], "%s has no summary", id);
        ck_assert_msg(rules[i].wsgiref && rules[i].wsgiref[0], "%s has no wsgiref field", id);
        ck_assert_msg((rules[i].strict_flag & ~(uint32_t)CSGI_VALIDATOR_STRICT) == 0,
                      "%s has a non-strict flag", id);
        ck_assert_ptr_eq(csgi_validator_rule_find(id), &rules[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(rules[j].id, id) != 0, "duplicate id %s", id);
    }
    ck_assert_ptr_null(csgi_validator_rule_find("app.nonexistent"));
    ck_assert_ptr_null(csgi_validator_rule_find(NULL));
}
END_TEST

START_TEST(validator_default_report_logs_to_errors)
{
    struct csgi_test_client *client = csgi_test_client_new_app(bad_status, NULL, "", NULL, 0);
    struct csgi_validator *v;
    struct csgi_test_response *resp = NULL;
    const char *line;

    ck_assert_ptr_nonnull(client);
    g_api = csgi_test_client_host_api(client);
    v = csgi_validator_new(g_api, bad_status, NULL, NULL);
    ck_assert_int_eq(csgi_test_client_request_app(client, csgi_validator_call, v, NULL, &resp),
                     CSGI_OK);
    line = csgi_test_response_find_log(resp, "csgi validator: app.status: ");
    ck_assert_ptr_nonnull(line);
    ck_assert_str_eq(line, "csgi validator: app.status: status 99 is outside 200..599");
    ck_assert_int_eq(resp->logs[0].level, CSGI_LOG_ERROR);
    ck_assert_uint_eq(csgi_validator_violations(v), 1);
    csgi_test_response_free(resp);
    csgi_validator_free(v);
    csgi_test_client_free(client);
}
END_TEST

START_TEST(validator_default_report_without_errors_uses_host_log)
{
    static const struct vcase c = {"env.errors", NULL, good_stream, 0, NULL, 0, SRV_NONE,
                                   m_errors,     0};
    struct csgi_test_client *client = csgi_test_client_new_app(good_stream, NULL, "", NULL, 0);
    struct csgi_validator *v;
    struct csgi_test_response *resp = NULL;
    struct bad_server bs;

    ck_assert_ptr_nonnull(client);
    g_api = csgi_test_client_host_api(client);
    v = csgi_validator_new(g_api, good_stream, NULL, NULL);
    bs.c = &c;
    bs.v = v;
    ck_assert_int_eq(csgi_test_client_request_app(client, bad_server_call, &bs, NULL, &resp),
                     CSGI_OK);
    ck_assert_ptr_nonnull(csgi_test_client_find_log(client, "csgi validator: env.errors: "));
    ck_assert_int_eq(resp->rc, CSGI_OK);
    csgi_test_response_free(resp);
    csgi_validator_free(v);
    csgi_test_client_free(client);
}
END_TEST

static struct csgi_test_response *
run_fail_fast(const struct vcase *c)
{
    return run_case(c, c->flags | CSGI_VALIDATOR_FAIL_FAST, NULL);
}

START_TEST(validator_fail_fast_env_skips_app)
{
    static const struct vcase c = {"env.script_name_slash", NULL, good_stream, 0, NULL, 0, SRV_NONE,
                                   m_script_slash,          0};
    struct csgi_test_response *resp = run_fail_fast(&c);

    ck_assert_int_eq(resp->rc, CSGI_EAPP);
    ck_assert_int_eq(resp->status, 500);
    ck_assert_int_eq(g_calls, 0);
    ck_assert_uint_eq(g_seen.n, 1);
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_fail_fast_refuses_bad_head)
{
    static const struct vcase c = {"app.status", NULL, bad_status, 0, NULL, 0, SRV_NONE, NULL, 0};
    struct csgi_test_response *resp = run_fail_fast(&c);

    ck_assert_int_eq(resp->rc, CSGI_EAPP);
    /* The bad head never reached the server. */
    ck_assert_ptr_null(csgi_test_response_find_log(resp, "start_response() refused"));
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_fail_fast_aborts_body)
{
    static const struct vcase c = {"app.content_length_mismatch",
                                   NULL,
                                   bad_content_length_long,
                                   0,
                                   NULL,
                                   0,
                                   SRV_NONE,
                                   NULL,
                                   0};
    struct csgi_test_response *resp = run_fail_fast(&c);

    ck_assert_int_eq(resp->rc, CSGI_EAPP);
    ck_assert_int_eq(g_closes, 1);
    ck_assert_int_eq(resp->status, 500);
    ck_assert_str_eq(resp->body, "500 Internal Server Error\n");
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_fail_fast_closes_returned_body)
{
    static const struct vcase c = {
        "app.write_args", NULL, bad_write_args, 0, NULL, 0, SRV_NONE, NULL, 0};
    struct csgi_test_response *resp = run_fail_fast(&c);

    /* write() was refused with CSGI_EAPP; the app ignored it and returned a
     * body, which the validator closes as the request fails. */
    ck_assert_int_eq(g_rc[0], CSGI_EAPP);
    ck_assert_int_eq(resp->rc, CSGI_EAPP);
    ck_assert_int_eq(g_bodies, 1);
    ck_assert_int_eq(g_closes, 1);
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_fail_fast_server_input)
{
    static const struct vcase c = {
        "srv.input_eof", NULL, reader_read, 0, NULL, 0, SRV_DATA_AFTER_EOF, NULL, 0};
    struct csgi_test_response *resp = run_fail_fast(&c);

    ck_assert_int_eq(resp->rc, CSGI_EAPP);
    ck_assert_uint_eq(g_seen.n, 1);
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_fail_fast_keeps_errors_stream)
{
    static const struct vcase c = {
        "app.errors_args", NULL, bad_errors_level, 0, NULL, 0, SRV_NONE, NULL, 0};
    struct csgi_test_response *resp = run_fail_fast(&c);

    /* The bad log call still reached the server (which refused the level),
     * but the request failed at the next call. */
    ck_assert_int_eq(g_rc[0], CSGI_EINVAL);
    ck_assert_int_eq(resp->rc, CSGI_EAPP);
    ck_assert_uint_eq(g_seen.n, 1);
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_report_only_is_transparent)
{
    struct csgi_test_response *resp;
    static const struct vcase c = {
        "app.write_before_start", NULL, bad_write_before_start, 0, NULL, 0, SRV_NONE, NULL, 0};

    resp = run_case(&c, 0, NULL);
    /* The server's own answer reaches the app, and the response is normal. */
    ck_assert_int_eq(g_rc[0], CSGI_ESTATE);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_str_eq(resp->body, "x");
    csgi_test_response_free(resp);
}
END_TEST

START_TEST(validator_wraps_loaded_plugin)
{
    struct csgi_validator_options opts = {.flags = CSGI_VALIDATOR_STRICT, .report = record};
    char err[512] = "";
    struct csgi_test_client *client =
        csgi_test_client_open(fixture("good"), NULL, NULL, 0, err, sizeof(err));
    struct csgi_test_response *resp = NULL;
    struct csgi_validator *v;
    csgi_app_fn app;
    void *state;

    ck_assert_msg(client != NULL, "%s", err);
    csgi_test_client_app(client, &app, &state);
    v = csgi_validator_new(csgi_test_client_host_api(client), app, state, &opts);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(csgi_test_client_request_app(client, csgi_validator_call, v, NULL, &resp),
                     CSGI_OK);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    ck_assert_str_eq(resp->body, "hello from fixture\n");
    ck_assert_uint_eq(g_seen.n, 0);
    csgi_test_response_free(resp);
    csgi_validator_free(v);
    csgi_test_client_free(client);
}
END_TEST

START_TEST(validator_stacks_before_and_after_middleware)
{
    struct csgi_validator_options opts = {.report = record};
    struct csgi_test_client *client = csgi_test_client_new_app(bad_hop_by_hop, NULL, "", NULL, 0);
    struct csgi_validator *inner, *outer;
    struct csgi_test_response *resp = NULL;

    ck_assert_ptr_nonnull(client);
    g_api = csgi_test_client_host_api(client);
    inner = csgi_validator_new(g_api, bad_hop_by_hop, NULL, &opts);
    outer = csgi_validator_new(g_api, csgi_validator_call, inner, &opts);
    ck_assert_int_eq(csgi_test_client_request_app(client, csgi_validator_call, outer, NULL, &resp),
                     CSGI_OK);
    /* Both see the application's hop-by-hop header: the inner one, first to
     * see it, reports it, and the outer one does not repeat it. */
    ck_assert_uint_eq(g_seen.n, 1);
    ck_assert_str_eq(g_seen.rules[0], "app.hop_by_hop");
    ck_assert_uint_eq(csgi_validator_violations(inner), 1);
    ck_assert_uint_eq(csgi_validator_violations(outer), 0);
    ck_assert_int_eq(resp->rc, CSGI_EHEADER);
    csgi_test_response_free(resp);
    csgi_validator_free(outer);
    csgi_validator_free(inner);
    csgi_test_client_free(client);
}
END_TEST

START_TEST(validator_new_rejects_bad_arguments)
{
    struct csgi_test_client *client = csgi_test_client_new_app(good_stream, NULL, "", NULL, 0);
    struct csgi_host_api api = *csgi_test_client_host_api(client);

    ck_assert_ptr_null(csgi_validator_new(NULL, good_stream, NULL, NULL));
    ck_assert_ptr_null(csgi_validator_new(&api, NULL, NULL, NULL));
    api.on_finished = NULL;
    ck_assert_ptr_null(csgi_validator_new(&api, good_stream, NULL, NULL));
    api = *csgi_test_client_host_api(client);
    api.version = 0;
    ck_assert_ptr_null(csgi_validator_new(&api, good_stream, NULL, NULL));
    ck_assert_int_eq(csgi_validator_call(NULL, NULL, NULL, NULL), CSGI_EINVAL);
    ck_assert_uint_eq(csgi_validator_violations(NULL), 0);
    csgi_validator_free(NULL);
    csgi_test_client_free(client);
}
END_TEST

static Suite *
validator_suite(void)
{
    Suite *s = suite_create("validator");
    TCase *tc;

    tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, validator_rule_fires_on_bad_app, 0, (int)N_BAD);
    tcase_add_loop_test(tc, validator_strict_rules_need_their_flag, 0, (int)N_BAD);
    tcase_add_loop_test(tc, validator_stacked_reports_once, 0, 2 * (int)N_BAD);
    tcase_add_test(tc, validator_rules_all_have_a_bad_case);
    tcase_add_test(tc, validator_rules_table_well_formed);
    suite_add_tcase(s, tc);

    tc = tcase_create("good");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, validator_good_app_is_silent, 0, (int)N_GOOD);
    tcase_add_loop_test(tc, validator_stacked_good_app_is_silent, 0, 2 * (int)N_GOOD);
    tcase_add_test(tc, validator_good_apps_pass_through_unchanged);
    tcase_add_test(tc, validator_wraps_loaded_plugin);
    suite_add_tcase(s, tc);

    tc = tcase_create("modes");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, validator_default_report_logs_to_errors);
    tcase_add_test(tc, validator_default_report_without_errors_uses_host_log);
    tcase_add_test(tc, validator_fail_fast_env_skips_app);
    tcase_add_test(tc, validator_fail_fast_refuses_bad_head);
    tcase_add_test(tc, validator_fail_fast_aborts_body);
    tcase_add_test(tc, validator_fail_fast_closes_returned_body);
    tcase_add_test(tc, validator_fail_fast_server_input);
    tcase_add_test(tc, validator_fail_fast_keeps_errors_stream);
    tcase_add_test(tc, validator_report_only_is_transparent);
    tcase_add_test(tc, validator_stacks_before_and_after_middleware);
    tcase_add_test(tc, validator_new_rejects_bad_arguments);
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
    sr = srunner_create(validator_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
