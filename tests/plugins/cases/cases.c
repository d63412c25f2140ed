/*
 * cases: a fixture plugin with one endpoint per response behaviour, for the
 * traffic-shape suite (tests/integration/test_shapes.c) and the differential
 * suite that runs every endpoint through csgi-server and through the
 * in-process test client (tests/integration/test_differential.c).
 *
 * The endpoint is selected by PATH_INFO (see the table at the end), its
 * parameters by the query string. Every line the plugin logs starts with
 * "cases[TAG] ", where TAG is the request's X-Case-Tag header ("-" when
 * absent), so that a test can find the lines of one request in either
 * transport. Every request registers an on_finished() callback that logs
 * "cases[TAG] finished reason=N"; it is registered first, so it runs last.
 * Every body iterator of the plugin logs "cases[TAG] close after N chunks"
 * from its close().
 *
 * Built twice: "cases" (mount /cases) is the raw application; with
 * CASES_VALIDATED it becomes "cases_validated" (mount /vcases): the same
 * application behind two stacked validator middlewares (report-only), whose
 * reports are logged as "cases[TAG] validator <rule>: <details>".
 *
 * Configuration: "tmpdir" is where init_worker() creates the file that /file
 * serves (default $TMPDIR, else /tmp); the file is unlinked at once.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <csgi/csgi.h>
#ifdef CASES_VALIDATED
#include <csgi/validator.h>
#endif

/* Size of the file /file serves: byte k is 'a' + k % 26. */
#define CASES_FILE_SIZE 1000
/* Chunk size of /big. */
#define CASES_BIG_CHUNK (64 * 1024)
/* Default size of /big. */
#define CASES_BIG_DEFAULT (4 * 1024 * 1024)
/* A body_from_fd() flag that CSGI 1.0 does not define. */
#define CASES_UNKNOWN_FD_FLAG (1u << 7)
/* Longest tag kept from X-Case-Tag. */
#define CASES_TAG_MAX 64

struct cases_state {
    const struct csgi_host_api *api;
    /* The unlinked file /file serves, CASES_FILE_SIZE bytes. */
    int file_fd;
};

/* One request, as the application sees it (the env and responder it was given). */
struct case_req {
    const struct cases_state *st;
    struct csgi_environ *env;
    const struct csgi_responder *resp;
    const char *tag;
};

/* The arguments of an on_finished() callback. */
struct case_finish {
    const struct cases_state *st;
    const char *tag;
};

static struct cases_state cases_singleton = {NULL, -1};

static const struct csgi_str no_reason = {NULL, 0};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static void log_tag(const struct cases_state *st, int level, const char *tag, const char *fmt, ...)
    CSGI_PRINTF(4, 5);

static void
log_tag(const struct cases_state *st, int level, const char *tag, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    st->api->log(st->api->ctx, level, "cases[%s] %s", tag, msg);
}

static long long
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/*
 * The integer query parameter @p key, clamped to lo..hi; @p dflt when it is
 * absent or not a decimal integer.
 */
static long long
query_int(const struct csgi_environ *env, const char *key, long long dflt, long long lo,
          long long hi)
{
    const char *p = env->query_string.ptr;
    const char *end = p ? p + env->query_string.len : NULL;
    size_t klen = strlen(key);

    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;

        if ((size_t)(stop - p) > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *d = p + klen + 1;
            int neg = d < stop && *d == '-';
            long long v = 0;

            d += neg;
            if (d == stop)
                return dflt;
            for (; d < stop; d++) {
                if (*d < '0' || *d > '9' || v > 1000000000000LL)
                    return dflt;
                v = v * 10 + (*d - '0');
            }
            v = neg ? -v : v;
            return v < lo ? lo : v > hi ? hi : v;
        }
        p = amp ? amp + 1 : end;
    }
    return dflt;
}

/* The request's tag: X-Case-Tag with anything but [A-Za-z0-9._-] made '_'; "-" when absent. */
static const char *
request_tag(const struct cases_state *st, const struct csgi_environ *env)
{
    struct csgi_str v;
    char *tag;
    size_t len;

    if (!env || st->api->header_get(env, "X-Case-Tag", 0, &v) != CSGI_OK || v.len == 0)
        return "-";
    len = v.len < CASES_TAG_MAX ? v.len : CASES_TAG_MAX;
    tag = st->api->alloc(env->request, len + 1);
    if (!tag)
        return "-";
    for (size_t i = 0; i < len; i++) {
        char c = v.ptr[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        tag[i] = ok ? c : '_';
    }
    tag[len] = '\0';
    return tag;
}

static int
path_is(const struct csgi_environ *env, const char *path)
{
    size_t len = strlen(path);

    return env->path_info.len == len && memcmp(env->path_info.ptr, path, len) == 0;
}

static int
method_is(const struct csgi_environ *env, const char *method)
{
    size_t len = strlen(method);

    return env->request_method.len == len && memcmp(env->request_method.ptr, method, len) == 0;
}

/* start_response() with Content-Type text/plain and, when not NULL, a Content-Length. */
static int
start(const struct case_req *rq, int status, const char *content_length)
{
    struct csgi_header h[2] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
        {CSGI_STR_INIT("Content-Length"), {NULL, 0}},
    };

    if (content_length) {
        h[1].value.ptr = content_length;
        h[1].value.len = strlen(content_length);
    }
    return rq->resp->start_response(rq->resp->ctx, status, no_reason, h, content_length ? 2 : 1,
                                    NULL);
}

/* ------------------------------------------------------------------ */
/* Body iterators                                                      */
/* ------------------------------------------------------------------ */

struct case_body {
    struct case_req *rq;
    /* Chunks returned so far. */
    int produced;
    /* Chunks in the body. */
    int n;
    /* Fixed chunk texts (n of them), or NULL for generated "chunk I" lines. */
    const char *const *texts;
    /* Generated lines: padded with '.' to at least this size. */
    size_t size;
    /* Sleep before every chunk but the first. */
    int delay_ms;
    /* Generated lines carry the CLOCK_MONOTONIC ms at which next() returned them. */
    int stamp;
    /* next() fails with CSGI_EIO when produced == fail_at; -1: never. */
    int fail_at;
    /* next() calls start_response() with exc_info when produced == exc_at; -1: never. */
    int exc_at;
    /* next() returns CSGI_PENDING when produced == pend_at; -1: never (this plugin does not
     * declare CSGI_PLUGIN_WAITS: the host fails the response). */
    int pend_at;
    /* /big: bytes still to produce, and the offset of the next one. */
    int64_t remaining;
    int64_t offset;
    char *buf;
    size_t cap;
};

static void
body_close(void *ctx)
{
    struct case_body *b = ctx;

    log_tag(b->rq->st, CSGI_LOG_INFO, b->rq->tag, "close after %d chunks", b->produced);
}

static int
lines_next(void *ctx, struct csgi_chunk *out)
{
    struct case_body *b = ctx;
    struct case_req *rq = b->rq;

    if (b->produced == b->fail_at) {
        log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "next fails after %d chunks", b->produced);
        return CSGI_EIO;
    }
    if (b->produced == b->pend_at) {
        log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "next pends after %d chunks", b->produced);
        return CSGI_PENDING;
    }
    if (b->produced == b->exc_at) {
        const struct csgi_header h[] = {
            {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
        };
        const struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EAPP,
                                          CSGI_STR_INIT("cases: replaced after output")};
        int rc = rq->resp->start_response(rq->resp->ctx, 500, no_reason, h, 1, &exc);

        log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "exc_info after output rc=%d", rc);
        /* The spec: the application returns CSGI_EHEADERS_SENT at once. */
        if (rc < 0)
            return rc;
    }
    if (b->produced >= b->n)
        return CSGI_DONE;
    if (b->delay_ms > 0 && b->produced > 0)
        sleep_ms(b->delay_ms);
    if (b->texts) {
        out->ptr = b->texts[b->produced];
        out->len = strlen(b->texts[b->produced]);
    } else {
        int len = b->stamp ? snprintf(b->buf, b->cap, "chunk %d t=%lld", b->produced, mono_ms())
                           : snprintf(b->buf, b->cap, "chunk %d", b->produced);
        size_t n = (size_t)len;

        while (n + 1 < b->size && n + 1 < b->cap)
            b->buf[n++] = '.';
        b->buf[n++] = '\n';
        out->ptr = b->buf;
        out->len = n;
    }
    b->produced++;
    return CSGI_OK;
}

/* /big: byte k of the body is k % 251. */
static int
big_next(void *ctx, struct csgi_chunk *out)
{
    struct case_body *b = ctx;
    size_t n;

    if (b->remaining <= 0)
        return CSGI_DONE;
    n = b->remaining < (int64_t)b->cap ? (size_t)b->remaining : b->cap;
    for (size_t i = 0; i < n; i++)
        b->buf[i] = (char)(unsigned char)((b->offset + (int64_t)i) % 251);
    b->offset += (int64_t)n;
    b->remaining -= (int64_t)n;
    out->ptr = b->buf;
    out->len = n;
    b->produced++;
    return CSGI_OK;
}

/* /environ-in-next: each chunk reads the environ anew, after call() returned. */
static int
environ_next(void *ctx, struct csgi_chunk *out)
{
    struct case_body *b = ctx;
    const struct csgi_environ *env = b->rq->env;
    struct csgi_str v = {"-", 1};
    int len;

    switch (b->produced) {
    case 0:
        len = snprintf(b->buf, b->cap, "path_info=%.*s\n", (int)env->path_info.len,
                       env->path_info.ptr);
        break;
    case 1:
        len = snprintf(b->buf, b->cap, "method=%.*s query=%.*s\n", (int)env->request_method.len,
                       env->request_method.ptr, (int)env->query_string.len, env->query_string.ptr);
        break;
    case 2:
        if (b->rq->st->api->header_get(env, "X-Case-Tag", 0, &v) != CSGI_OK)
            v = (struct csgi_str){"-", 1};
        len = snprintf(b->buf, b->cap, "x-case-tag=%.*s\n", (int)v.len, v.ptr);
        break;
    default:
        return CSGI_DONE;
    }
    out->ptr = b->buf;
    out->len = (size_t)len < b->cap ? (size_t)len : b->cap - 1;
    b->produced++;
    return CSGI_OK;
}

static void
environ_close(void *ctx)
{
    struct case_body *b = ctx;
    const struct csgi_environ *env = b->rq->env;
    struct csgi_str v = {"-", 1};

    if (b->rq->st->api->header_get(env, "X-Case-Tag", 0, &v) != CSGI_OK)
        v = (struct csgi_str){"-", 1};
    log_tag(b->rq->st, CSGI_LOG_INFO, b->rq->tag,
            "close after %d chunks path_info=%.*s x-case-tag=%.*s", b->produced,
            (int)env->path_info.len, env->path_info.ptr, (int)v.len, v.ptr);
}

/* A body of @p n chunks with buffer room @p cap, or NULL when out of memory. */
static struct case_body *
body_new(struct case_req *rq, int n, const char *const *texts, size_t cap)
{
    struct case_body *b = rq->st->api->alloc(rq->env->request, sizeof(*b) + cap);

    if (!b)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->rq = rq;
    b->n = n;
    b->texts = texts;
    b->fail_at = -1;
    b->pend_at = -1;
    b->exc_at = -1;
    b->buf = (char *)(b + 1);
    b->cap = cap;
    return b;
}

static void
body_set(struct csgi_body *out, struct case_body *b, int (*next)(void *, struct csgi_chunk *))
{
    out->ctx = b;
    out->next = next;
    out->close = body_close;
}

/* A body of fixed texts, with optional failure and exc_info points. */
static int
texts_body(struct case_req *rq, struct csgi_body *out, const char *const *texts, int n, int fail_at,
           int exc_at)
{
    struct case_body *b = body_new(rq, n, texts, 0);

    if (!b)
        return CSGI_ENOMEM;
    b->fail_at = fail_at;
    b->exc_at = exc_at;
    body_set(out, b, lines_next);
    return CSGI_OK;
}

/* Respond @p status with text/plain and one chunk of @p text (copied). */
static int
reply(struct case_req *rq, struct csgi_body *out, int status, const char *text)
{
    const char **texts = rq->st->api->alloc(rq->env->request, sizeof(*texts) + strlen(text) + 1);
    int rc;

    if (!texts)
        return CSGI_ENOMEM;
    texts[0] = memcpy(texts + 1, text, strlen(text) + 1);
    rc = start(rq, status, NULL);
    if (rc < 0)
        return rc;
    return texts_body(rq, out, texts, 1, -1, -1);
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                           */
/* ------------------------------------------------------------------ */

static const char *const ok_text[] = {"200 OK\n"};
static const char *const created_text[] = {"201 Created\n"};

/* One chunk, length unknown: Content-Length by look-ahead. */
static int
ep_one(struct case_req *rq, struct csgi_body *out)
{
    return reply(rq, out, 200, "one chunk\n");
}

/* ?n=5&size=0&delay_ms=0&stamp=0: n generated lines, one chunk each. */
static int
ep_chunks(struct case_req *rq, struct csgi_body *out)
{
    int n = (int)query_int(rq->env, "n", 5, 0, 100000);
    size_t size = (size_t)query_int(rq->env, "size", 0, 0, 1 << 20);
    struct case_body *b = body_new(rq, n, NULL, size + 64);
    int rc;

    if (!b)
        return CSGI_ENOMEM;
    b->size = size;
    b->delay_ms = (int)query_int(rq->env, "delay_ms", 0, 0, 10000);
    b->stamp = query_int(rq->env, "stamp", 0, 0, 1) != 0;
    rc = start(rq, 200, NULL);
    if (rc < 0)
        return rc;
    body_set(out, b, lines_next);
    return CSGI_OK;
}

/* ?n=3: n lines through write(), an empty body. */
static int
ep_write(struct case_req *rq, struct csgi_body *out)
{
    int n = (int)query_int(rq->env, "n", 3, 0, 100000);
    int rc = start(rq, 200, NULL);

    (void)out;
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        char line[32];
        int len = snprintf(line, sizeof(line), "write %d\n", i);

        rc = rq->resp->write(rq->resp->ctx, line, (size_t)len);
        if (rc < 0) {
            log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "write %d rc=%d", i, rc);
            return rc;
        }
    }
    return CSGI_OK;
}

/* write() some output, then fail from call(). */
static int
ep_write_then_error(struct case_req *rq, struct csgi_body *out)
{
    int rc = start(rq, 200, NULL);

    (void)out;
    if (rc < 0)
        return rc;
    rc = rq->resp->write(rq->resp->ctx, "partial\n", 8);
    log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "write rc=%d, call fails", rc);
    return CSGI_EAPP;
}

/* One good chunk, then next() fails (while a server may be looking ahead). */
static int
ep_lookahead_fail(struct case_req *rq, struct csgi_body *out)
{
    static const char *const texts[] = {"good\n", "never\n"};
    int rc = start(rq, 200, NULL);

    if (rc < 0)
        return rc;
    return texts_body(rq, out, texts, 2, 1, -1);
}

/* next() fails before any chunk. */
static int
ep_fail_first(struct case_req *rq, struct csgi_body *out)
{
    static const char *const texts[] = {"never\n"};
    int rc = start(rq, 200, NULL);

    if (rc < 0)
        return rc;
    return texts_body(rq, out, texts, 1, 0, -1);
}

/*
 * CSGI_PENDING without CSGI_PLUGIN_WAITS (SPEC 4.14), from call() after
 * start_response(), or from next() after one chunk: a failed response.
 */
static int
ep_pending_call(struct case_req *rq, struct csgi_body *out)
{
    static const char *const texts[] = {"never\n"};
    int rc = start(rq, 200, NULL);

    if (rc < 0)
        return rc;
    rc = texts_body(rq, out, texts, 1, -1, -1);
    if (rc < 0)
        return rc;
    log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "call pends");
    return CSGI_PENDING;
}

static int
ep_pending_next(struct case_req *rq, struct csgi_body *out)
{
    static const char *const texts[] = {"good\n", "never\n"};
    struct case_body *b;
    int rc = start(rq, 200, NULL);

    if (rc < 0)
        return rc;
    rc = texts_body(rq, out, texts, 2, -1, -1);
    if (rc < 0)
        return rc;
    b = out->ctx;
    b->pend_at = 1;
    return CSGI_OK;
}

/* call() fails before start_response(). */
static int
ep_call_fail(struct case_req *rq, struct csgi_body *out)
{
    (void)out;
    log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "call fails");
    return CSGI_EAPP;
}

/*
 * Content-Length 5: write 3 bytes, then 4 (past the length: CSGI_ELENGTH), then
 * retry with 2 that would fit. The host must not let the retry repair the
 * response; the application carries on like a naive one would.
 */
static int
ep_overrun_write(struct case_req *rq, struct csgi_body *out)
{
    int rc = start(rq, 200, "5"), rc1, rc2, rc3;

    (void)out;
    if (rc < 0)
        return rc;
    rc1 = rq->resp->write(rq->resp->ctx, "abc", 3);
    rc2 = rq->resp->write(rq->resp->ctx, "defg", 4);
    rc3 = rq->resp->write(rq->resp->ctx, "de", 2);
    log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "write rc=%d,%d,%d", rc1, rc2, rc3);
    return rc3 < 0 ? rc3 : CSGI_OK;
}

/* Content-Length 5, chunks of 3 and 4 bytes. */
static int
ep_overrun_chunk(struct case_req *rq, struct csgi_body *out)
{
    static const char *const texts[] = {"abc", "defg"};
    int rc = start(rq, 200, "5");

    if (rc < 0)
        return rc;
    return texts_body(rq, out, texts, 2, -1, -1);
}

/* Content-Length 10, a body of 5 bytes. */
static int
ep_underrun(struct case_req *rq, struct csgi_body *out)
{
    static const char *const texts[] = {"hello"};
    int rc = start(rq, 200, "10");

    if (rc < 0)
        return rc;
    return texts_body(rq, out, texts, 1, -1, -1);
}

/* Three chunks with their exact total_length. */
static int
ep_total_length(struct case_req *rq, struct csgi_body *out)
{
    static const char *const texts[] = {"abcd", "efgh", "ijkl"};
    int rc = start(rq, 200, NULL);

    if (rc < 0)
        return rc;
    rc = texts_body(rq, out, texts, 3, -1, -1);
    out->total_length = 12;
    return rc;
}

/* ?offset=0&count=-1: a range of the plugin's file, by body_from_fd() with CSGI_FD_CLOSE. */
static int
ep_file(struct case_req *rq, struct csgi_body *out)
{
    int64_t offset = query_int(rq->env, "offset", 0, 0, 1LL << 40);
    int64_t count = query_int(rq->env, "count", -1, -1, 1LL << 40);
    int fd, rc;

    rc = start(rq, 200, NULL);
    if (rc < 0)
        return rc;
    fd = dup(rq->st->file_fd);
    if (fd < 0)
        return CSGI_EIO;
    rc = rq->st->api->body_from_fd(rq->env->request, fd, offset, count, CSGI_FD_CLOSE, out);
    log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "body_from_fd rc=%d", rc);
    return rc;
}

/* Content-Length 13 in two chunks; the body is skipped for HEAD. */
static int
ep_head_skip(struct case_req *rq, struct csgi_body *out)
{
    static const char *const texts[] = {"head-", "skip ok\n"};
    int rc = start(rq, 200, "13");

    if (rc < 0)
        return rc;
    if (method_is(rq->env, "HEAD")) {
        log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "head: body skipped");
        return CSGI_OK;
    }
    return texts_body(rq, out, texts, 2, -1, -1);
}

/* start_response() and nothing else. */
static int
ep_empty(struct case_req *rq, struct csgi_body *out)
{
    (void)out;
    return start(rq, 200, NULL);
}

/*
 * ?n=1&v=0&len=4: n headers "X-Case-I: " + len copies of the letter 'a' + v
 * (mod 26) after Content-Type, built in a buffer that is overwritten once
 * start_response() returned (the host copies the head before it returns),
 * then the head's status line as the body. Status 200, or 201 with odd=1.
 */
static int
ep_headers(struct case_req *rq, struct csgi_body *out)
{
    enum { MAX_N = 16, MAX_LEN = 200 };
    struct csgi_header h[MAX_N + 1];
    char names[MAX_N][20];
    char values[MAX_N][MAX_LEN];
    int n = (int)query_int(rq->env, "n", 1, 0, MAX_N);
    int v = (int)query_int(rq->env, "v", 0, 0, 1000);
    size_t len = (size_t)query_int(rq->env, "len", 4, 1, MAX_LEN);
    int status = query_int(rq->env, "odd", 0, 0, 1) ? 201 : 200;
    int rc;

    h[0].name = (struct csgi_str)CSGI_STR_INIT("Content-Type");
    h[0].value = (struct csgi_str)CSGI_STR_INIT("text/plain");
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "X-Case-%d", i);
        memset(values[i], 'a' + v % 26, len);
        h[i + 1].name.ptr = names[i];
        h[i + 1].name.len = strlen(names[i]);
        h[i + 1].value.ptr = values[i];
        h[i + 1].value.len = len;
    }
    rc = rq->resp->start_response(rq->resp->ctx, status, no_reason, h, (size_t)n + 1, NULL);
    memset(names, 'Z', sizeof(names));
    memset(values, 'Z', sizeof(values));
    if (rc < 0)
        return rc;
    return texts_body(rq, out, status == 200 ? ok_text : created_text, 1, -1, -1);
}

static int
ep_decline(struct case_req *rq, struct csgi_body *out)
{
    (void)rq;
    (void)out;
    return CSGI_EDECLINED;
}

/* A 200 replaced by a 503 (exc_info) before anything was sent. */
static int
ep_exc_before(struct case_req *rq, struct csgi_body *out)
{
    const struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
        {CSGI_STR_INIT("X-Replaced"), CSGI_STR_INIT("yes")},
    };
    const struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EAPP,
                                      CSGI_STR_INIT("cases: replaced before output")};
    static const char *const texts[] = {"replaced\n"};
    int rc = start(rq, 200, NULL);

    if (rc < 0)
        return rc;
    rc = rq->resp->start_response(rq->resp->ctx, 503, no_reason, h, 2, &exc);
    log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "exc_info before output rc=%d", rc);
    if (rc < 0)
        return rc;
    return texts_body(rq, out, texts, 1, -1, -1);
}

/* One chunk, then exc_info from next(): CSGI_EHEADERS_SENT, returned at once. */
static int
ep_exc_after(struct case_req *rq, struct csgi_body *out)
{
    static const char *const texts[] = {"first\n", "replaced\n"};
    int rc = start(rq, 200, NULL);

    if (rc < 0)
        return rc;
    return texts_body(rq, out, texts, 2, -1, 1);
}

/* A body that reads the environ in next() and close(). */
static int
ep_environ_in_next(struct case_req *rq, struct csgi_body *out)
{
    struct case_body *b = body_new(rq, 3, NULL, 256);
    int rc;

    if (!b)
        return CSGI_ENOMEM;
    rc = start(rq, 200, NULL);
    if (rc < 0)
        return rc;
    out->ctx = b;
    out->next = environ_next;
    out->close = environ_close;
    return CSGI_OK;
}

/* Read the whole request body; answer "length=N fnv=H" (FNV-1a, 64 bits). */
static int
ep_echo(struct case_req *rq, struct csgi_body *out)
{
    const struct csgi_input *in = rq->env->input;
    uint64_t hash = 0xcbf29ce484222325ULL;
    long long length = 0;
    char buf[16384], text[96];

    for (;;) {
        int64_t got = in->read(in->ctx, buf, sizeof(buf));

        if (got < 0) {
            log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "input read rc=%lld", (long long)got);
            return (int)got;
        }
        if (got == 0)
            break;
        for (int64_t i = 0; i < got; i++) {
            hash ^= (unsigned char)buf[i];
            hash *= 0x100000001b3ULL;
        }
        length += got;
    }
    snprintf(text, sizeof(text), "length=%lld fnv=%016llx\n", length, (unsigned long long)hash);
    return reply(rq, out, 200, text);
}

/* ?bytes=4194304: a large body in 64 KiB chunks, length unknown. */
static int
ep_big(struct case_req *rq, struct csgi_body *out)
{
    struct case_body *b = body_new(rq, 0, NULL, CASES_BIG_CHUNK);
    int rc;

    if (!b)
        return CSGI_ENOMEM;
    b->remaining = query_int(rq->env, "bytes", CASES_BIG_DEFAULT, 0, 1LL << 30);
    rc = start(rq, 200, NULL);
    if (rc < 0)
        return rc;
    body_set(out, b, big_next);
    return CSGI_OK;
}

/* body_from_fd() with a flag CSGI 1.0 does not define must fail with CSGI_EINVAL. */
static int
ep_fd_badflags(struct case_req *rq, struct csgi_body *out)
{
    struct csgi_body tmp = {CSGI_BODY_VERSION, 0, -1, NULL, NULL, NULL};
    int fd = dup(rq->st->file_fd), rc;
    char text[64];

    if (fd < 0)
        return CSGI_EIO;
    /* Without CSGI_FD_CLOSE the descriptor stays ours whatever happens. */
    rc = rq->st->api->body_from_fd(rq->env->request, fd, 0, 10, CASES_UNKNOWN_FD_FLAG, &tmp);
    if (rc == CSGI_OK && tmp.close)
        tmp.close(tmp.ctx);
    close(fd);
    log_tag(rq->st, CSGI_LOG_INFO, rq->tag, "body_from_fd rc=%d", rc);
    if (rc == CSGI_EINVAL)
        return reply(rq, out, 200, "einval\n");
    snprintf(text, sizeof(text), "other rc=%d\n", rc);
    return reply(rq, out, 500, text);
}

static const struct case_endpoint {
    const char *path;
    int (*handle)(struct case_req *rq, struct csgi_body *out);
} case_endpoints[] = {
    {"/one", ep_one},
    {"/chunks", ep_chunks},
    {"/write", ep_write},
    {"/write-then-error", ep_write_then_error},
    {"/lookahead-fail", ep_lookahead_fail},
    {"/fail-first", ep_fail_first},
    {"/call-fail", ep_call_fail},
    {"/pending-call", ep_pending_call},
    {"/pending-next", ep_pending_next},
    {"/overrun-write", ep_overrun_write},
    {"/overrun-chunk", ep_overrun_chunk},
    {"/underrun", ep_underrun},
    {"/total-length", ep_total_length},
    {"/file", ep_file},
    {"/head-skip", ep_head_skip},
    {"/empty", ep_empty},
    {"/headers", ep_headers},
    {"/decline", ep_decline},
    {"/exc-before", ep_exc_before},
    {"/exc-after", ep_exc_after},
    {"/environ-in-next", ep_environ_in_next},
    {"/echo", ep_echo},
    {"/big", ep_big},
    {"/fd-badflags", ep_fd_badflags},
};

/* ------------------------------------------------------------------ */
/* The application and its lifecycle                                  */
/* ------------------------------------------------------------------ */

/* The application proper: dispatch on PATH_INFO. Registers no callback. */
static int
cases_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    struct cases_state *st = state;
    struct case_req *rq = st->api->alloc(env->request, sizeof(*rq));

    if (!rq)
        return CSGI_ENOMEM;
    rq->st = st;
    rq->env = env;
    rq->resp = resp;
    rq->tag = request_tag(st, env);
    for (size_t i = 0; i < sizeof(case_endpoints) / sizeof(*case_endpoints); i++) {
        if (path_is(env, case_endpoints[i].path))
            return case_endpoints[i].handle(rq, out);
    }
    return reply(rq, out, 404, "no such case\n");
}

static void
case_finished(void *arg, int reason)
{
    const struct case_finish *f = arg;

    log_tag(f->st, CSGI_LOG_INFO, f->tag, "finished reason=%d", reason);
}

/* Register the "finished reason=N" callback; first, so that it runs last. */
static int
register_finished(const struct cases_state *st, struct csgi_environ *env)
{
    struct case_finish *f = st->api->alloc(env->request, sizeof(*f));

    if (!f)
        return CSGI_ENOMEM;
    f->st = st;
    f->tag = request_tag(st, env);
    return st->api->on_finished(env->request, case_finished, f);
}

static int
cases_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
           void **state)
{
    struct cases_state *st = &cases_singleton;
    const char *dir = getenv("TMPDIR");
    char path[512], data[CASES_FILE_SIZE];
    ssize_t wrote;

    st->api = api;
    for (size_t i = 0; i < n_config; i++) {
        if (strcmp(config[i].key, "tmpdir") == 0)
            dir = config[i].value;
    }
    snprintf(path, sizeof(path), "%s/csgi-cases-XXXXXX", dir && *dir ? dir : "/tmp");
    st->file_fd = mkostemp(path, O_CLOEXEC);
    if (st->file_fd < 0) {
        api->log(api->ctx, CSGI_LOG_ERROR, "cannot create a file in \"%s\"", path);
        return CSGI_EIO;
    }
    unlink(path);
    for (size_t k = 0; k < sizeof(data); k++)
        data[k] = (char)('a' + k % 26);
    wrote = write(st->file_fd, data, sizeof(data));
    if (wrote != (ssize_t)sizeof(data)) {
        api->log(api->ctx, CSGI_LOG_ERROR, "cannot write the /file data");
        close(st->file_fd);
        st->file_fd = -1;
        return CSGI_EIO;
    }
    *state = st;
    return CSGI_OK;
}

static void
cases_exit(void *state)
{
    struct cases_state *st = state;

    close(st->file_fd);
    st->file_fd = -1;
}

#ifndef CASES_VALIDATED

static int
cases_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    int rc = register_finished(state, env);

    if (rc < 0)
        return rc;
    return cases_app(state, env, resp, out);
}

static const struct csgi_plugin cases_plugin = {
    CSGI_PLUGIN_HEADER,        .name = "cases",
    .plugin_version = "1.0.0", .description = "one endpoint per response behaviour (test fixture)",
    .mount = "/cases",         .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = cases_init, .call = cases_call,
    .exit_worker = cases_exit,
};

#else /* CASES_VALIDATED */

/* The application behind two stacked validators: outer -> inner -> cases_app. */
struct vcases_state {
    struct cases_state *cases;
    struct csgi_validator *inner;
    struct csgi_validator *outer;
};

static struct vcases_state vcases_singleton;

static void
vcases_report(void *arg, const struct csgi_environ *env, const char *rule, const char *message)
{
    const struct cases_state *st = arg;

    (void)rule;
    log_tag(st, CSGI_LOG_WARN, request_tag(st, env), "validator %s", message);
}

static int
vcases_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
            void **state)
{
    struct vcases_state *vs = &vcases_singleton;
    struct csgi_validator_options opts = {0, vcases_report, NULL};
    void *cases_state;
    int rc = cases_init(api, config, n_config, &cases_state);

    if (rc < 0)
        return rc;
    vs->cases = cases_state;
    opts.report_arg = vs->cases;
    vs->inner = csgi_validator_new(api, cases_app, vs->cases, &opts);
    if (!vs->inner) {
        rc = CSGI_ENOMEM;
        goto error_exit_cases;
    }
    vs->outer = csgi_validator_new(api, csgi_validator_call, vs->inner, &opts);
    if (!vs->outer) {
        rc = CSGI_ENOMEM;
        goto error_free_inner;
    }
    *state = vs;
    return CSGI_OK;

error_free_inner:
    csgi_validator_free(vs->inner);
    vs->inner = NULL;
error_exit_cases:
    cases_exit(vs->cases);
    return rc;
}

static int
vcases_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
            struct csgi_body *out)
{
    struct vcases_state *vs = state;
    int rc = register_finished(vs->cases, env);

    if (rc < 0)
        return rc;
    return csgi_validator_call(vs->outer, env, resp, out);
}

static void
vcases_exit(void *state)
{
    struct vcases_state *vs = state;

    csgi_validator_free(vs->outer);
    csgi_validator_free(vs->inner);
    vs->outer = NULL;
    vs->inner = NULL;
    cases_exit(vs->cases);
}

static const struct csgi_plugin cases_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "cases_validated",
    .plugin_version = "1.0.0",
    .description = "the cases fixture behind two stacked validators (test fixture)",
    .mount = "/vcases",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = vcases_init,
    .call = vcases_call,
    .exit_worker = vcases_exit,
};

#endif /* CASES_VALIDATED */

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    /* The host compares ABI versions and names both if they differ. */
    (void)host_abi_version;
    return &cases_plugin;
}
