/*
 * The in-process test client: a fake CSGI host that runs one request at a
 * time against a plugin or a bare application and records what a client
 * would have received. See <csgi/testclient.h>.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csgi/testclient.h>

#include "csgi_internal.h"

/* Under AddressSanitizer every alloc() gets its own heap block, so that an
 * overrun in the code under test is caught instead of landing in the arena. */
#if defined(__SANITIZE_ADDRESS__)
#define TC_ARENA_PER_ALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TC_ARENA_PER_ALLOC 1
#endif
#endif
#ifndef TC_ARENA_PER_ALLOC
#define TC_ARENA_PER_ALLOC 0
#endif

#define TC_BLOCK_SIZE 4096u
#define TC_ALIGN      (_Alignof(max_align_t))
#define TC_FILE_CHUNK 32768u
/* A body yielding this many empty chunks in a row is assumed to spin. */
#define TC_MAX_EMPTY_CHUNKS (1u << 20)

/* ------------------------------------------------------------------ */
/* Types                                                               */
/* ------------------------------------------------------------------ */

struct tc_block {
    struct tc_block *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

/* One captured line, allocated with its text so that it never moves. */
struct tc_logline {
    struct csgi_test_log pub;
    char text[];
};

struct tc_finish {
    struct tc_finish *next;
    csgi_finished_fn fn;
    void *arg;
};

struct tc_file {
    struct tc_file *next;
    struct csgi_request *req;
    int fd;
    uint32_t flags;
    int closed;
    int64_t pos;
    /* Bytes left to send, or -1 for "to end of file". */
    int64_t remaining;
    unsigned char buf[TC_FILE_CHUNK];
};

struct csgi_test_client {
    struct csgi_host_api api;
    pthread_mutex_t log_lock;
    struct tc_logline **logs;
    size_t n_logs;
    size_t cap_logs;

    void *dl;
    const struct csgi_plugin *plugin;
    int worker_started;
    csgi_app_fn app;
    void *app_state;

    char *mount;
    struct csgi_kv *config;
    size_t n_config;
    /* The copied keys and values, two per item; config[] points into them. */
    char **config_strings;
    size_t n_config_strings;

    struct csgi_request *active;
};

/* In the test client a request is this struct; plugins only see the pointer. */
struct csgi_request {
    struct csgi_test_client *client;
    struct tc_block *arena;

    struct csgi_environ env;
    struct csgi_input input;
    struct csgi_errors errors;
    struct csgi_responder resp;

    /* Request body. */
    const unsigned char *body;
    size_t body_len;
    size_t body_pos;

    /* Partial line written to the errors stream. */
    char *errline;
    size_t errline_len;
    size_t errline_cap;

    struct tc_finish *finish;
    struct tc_file *files;

    /* Response state. */
    int is_head;
    int started;
    int status;
    struct csgi_str reason;
    struct csgi_header *headers;
    size_t n_headers;
    int64_t declared_length;
    int headers_sent;
    int in_next;
    int ended;
    int error;
    /* The application declined before start_response(): no mount answered. */
    int declined;
    uint64_t produced;
    uint64_t chunk_bytes;
    char *out;
    size_t out_len;
    size_t out_cap;

    size_t log_start;
};

struct tc_response {
    struct csgi_test_response pub;
    char *pool;
    struct csgi_header *headers;
    struct csgi_test_log *logs;
    char *body;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static void tc_errf(char *err, size_t err_len, const char *fmt, ...) CSGI_PRINTF(3, 4);

static void
tc_errf(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (!err || err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static char *
tc_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ------------------------------------------------------------------ */
/* Log capture                                                         */
/* ------------------------------------------------------------------ */

/* Append one line (a copy of [msg, msg+len) without trailing newlines). */
static int
tc_capture(struct csgi_test_client *c, int level, const char *msg, size_t len)
{
    struct tc_logline *line;
    int rc = CSGI_OK;

    while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        len--;
    line = malloc(sizeof(*line) + len + 1);
    if (!line)
        return CSGI_ENOMEM;
    if (len)
        memcpy(line->text, msg, len);
    line->text[len] = '\0';
    line->pub.level = level;
    line->pub.text = line->text;

    pthread_mutex_lock(&c->log_lock);
    if (c->n_logs == c->cap_logs) {
        size_t cap = c->cap_logs ? c->cap_logs * 2 : 16;
        struct tc_logline **logs = realloc(c->logs, cap * sizeof(*logs));

        if (!logs) {
            free(line);
            rc = CSGI_ENOMEM;
            goto unlock;
        }
        c->logs = logs;
        c->cap_logs = cap;
    }
    c->logs[c->n_logs++] = line;
unlock:
    pthread_mutex_unlock(&c->log_lock);
    return rc;
}

static void tc_vlogf(struct csgi_test_client *c, int level, const char *fmt, va_list ap)
    CSGI_PRINTF(3, 0);

static void
tc_vlogf(struct csgi_test_client *c, int level, const char *fmt, va_list ap)
{
    char small[256], *text = small;
    va_list copy;
    int n;

    va_copy(copy, ap);
    n = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(small)) {
        text = malloc((size_t)n + 1);
        if (!text)
            return;
        vsnprintf(text, (size_t)n + 1, fmt, ap);
    }
    tc_capture(c, level, text, (size_t)n);
    if (text != small)
        free(text);
}

static void tc_logf(struct csgi_test_client *c, int level, const char *fmt, ...) CSGI_PRINTF(3, 4);

static void
tc_logf(struct csgi_test_client *c, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tc_vlogf(c, level, fmt, ap);
    va_end(ap);
}

static void tc_host_vlog(void *ctx, int level, const char *fmt, va_list ap) CSGI_PRINTF(3, 0);

static void
tc_host_vlog(void *ctx, int level, const char *fmt, va_list ap)
{
    if (!ctx || !fmt)
        return;
    tc_vlogf(ctx, level, fmt, ap);
}

static void tc_host_log(void *ctx, int level, const char *fmt, ...) CSGI_PRINTF(3, 4);

static void
tc_host_log(void *ctx, int level, const char *fmt, ...)
{
    va_list ap;

    if (!ctx || !fmt)
        return;
    va_start(ap, fmt);
    tc_vlogf(ctx, level, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The request arena                                                   */
/* ------------------------------------------------------------------ */

static void *
tc_arena_alloc(struct csgi_request *req, size_t n)
{
    struct tc_block *b;
    size_t need, size;
    void *p;

    if (n > SIZE_MAX / 2)
        return NULL;
    need = (n ? n : 1);
    need = (need + TC_ALIGN - 1) / TC_ALIGN * TC_ALIGN;

    b = req->arena;
    if (!TC_ARENA_PER_ALLOC && b && b->size - b->used >= need) {
        p = (char *)b->data + b->used;
        b->used += need;
        return p;
    }
    size = (TC_ARENA_PER_ALLOC || need > TC_BLOCK_SIZE / 4) ? need : TC_BLOCK_SIZE;
    b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->size = size;
    b->used = need;
    if (size == need && req->arena) {
        /* A block of its own: keep the current block's free space in front. */
        b->next = req->arena->next;
        req->arena->next = b;
    } else {
        b->next = req->arena;
        req->arena = b;
    }
    return b->data;
}

static void
tc_arena_free(struct csgi_request *req)
{
    struct tc_block *b = req->arena;

    while (b) {
        struct tc_block *next = b->next;
        free(b);
        b = next;
    }
    req->arena = NULL;
}

static char *
tc_arena_strndup(struct csgi_request *req, const char *s, size_t n)
{
    char *p = tc_arena_alloc(req, n + 1);

    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ------------------------------------------------------------------ */
/* Host api                                                            */
/* ------------------------------------------------------------------ */

static void *
tc_host_alloc(struct csgi_request *req, size_t n)
{
    if (!req)
        return NULL;
    return tc_arena_alloc(req, n);
}

static int
tc_host_header_get(const struct csgi_environ *env, const char *name, size_t index,
                   struct csgi_str *value)
{
    if (!env || !name || !value)
        return CSGI_EINVAL;
    for (size_t i = 0; i < env->n_headers; i++) {
        const struct csgi_header *h = &env->headers[i];

        if (!h->name.ptr || !csgi__str_ieq(h->name.ptr, h->name.len, name))
            continue;
        if (index == 0) {
            *value = h->value;
            return CSGI_OK;
        }
        index--;
    }
    return CSGI_ENOENT;
}

static int
tc_file_next(void *ctx, struct csgi_chunk *out)
{
    struct tc_file *f = ctx;
    size_t want = sizeof(f->buf);
    ssize_t n;

    if (f->closed)
        return CSGI_ESTATE;
    if (f->remaining >= 0 && (uint64_t)f->remaining < want)
        want = (size_t)f->remaining;
    if (want == 0)
        return CSGI_DONE;
    do {
        n = pread(f->fd, f->buf, want, (off_t)f->pos);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        tc_logf(f->req->client, CSGI_LOG_ERROR, "pread() on fd %d failed: %s", f->fd,
                strerror(errno));
        return CSGI_EIO;
    }
    if (n == 0) {
        if (f->remaining < 0)
            return CSGI_DONE;
        tc_logf(f->req->client, CSGI_LOG_ERROR, "file body on fd %d ended %lld bytes early", f->fd,
                (long long)f->remaining);
        return CSGI_EIO;
    }
    f->pos += n;
    if (f->remaining >= 0)
        f->remaining -= n;
    out->ptr = f->buf;
    out->len = (size_t)n;
    return CSGI_OK;
}

static void
tc_file_close(void *ctx)
{
    struct tc_file *f = ctx;

    if (f->closed)
        return;
    f->closed = 1;
    if (f->flags & CSGI_FD_CLOSE)
        close(f->fd);
}

static int
tc_host_body_from_fd(struct csgi_request *req, int fd, int64_t offset, int64_t count,
                     uint32_t flags, struct csgi_body *out)
{
    struct tc_file *f;
    struct stat st;
    int rc;

    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return CSGI_EBADF;
    if (!req || !out || (flags & ~(uint32_t)CSGI_FD_CLOSE) || offset < 0 || count < -1) {
        rc = CSGI_EINVAL;
        goto error_close;
    }
    f = tc_arena_alloc(req, sizeof(*f));
    if (!f) {
        rc = CSGI_ENOMEM;
        goto error_close;
    }
    f->req = req;
    f->fd = fd;
    f->flags = flags;
    f->closed = 0;
    f->pos = offset;
    f->remaining = count;
    f->next = req->files;
    req->files = f;

    out->version = CSGI_BODY_VERSION;
    out->flags = CSGI_BODY_FILE;
    out->total_length = count;
    if (count < 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        out->total_length = st.st_size > offset ? (int64_t)st.st_size - offset : 0;
    out->ctx = f;
    out->next = tc_file_next;
    out->close = tc_file_close;
    return CSGI_OK;

error_close:
    /* With CSGI_FD_CLOSE the descriptor is ours even when we fail. */
    if (flags & CSGI_FD_CLOSE)
        close(fd);
    return rc;
}

static int
tc_host_on_finished(struct csgi_request *req, csgi_finished_fn fn, void *arg)
{
    struct tc_finish *node;

    if (!req || !fn)
        return CSGI_EINVAL;
    node = tc_arena_alloc(req, sizeof(*node));
    if (!node)
        return CSGI_ENOMEM;
    node->fn = fn;
    node->arg = arg;
    node->next = req->finish;
    req->finish = node;
    return CSGI_OK;
}

static int
tc_is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '/';
}

/* Append quote(s) (Python urllib.parse.quote, safe="/") at p; returns the end. */
static char *
tc_quote(char *p, struct csgi_str s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];

        if (tc_is_unreserved(c)) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    return p;
}

static int
tc_str_eq(struct csgi_str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

/* A string that may be read: non-NULL whenever it has a length. */
static int
tc_str_ok(struct csgi_str s)
{
    return s.ptr || s.len == 0;
}

/* PEP 3333 "URL Reconstruction". */
static int
tc_host_request_url(const struct csgi_environ *env, struct csgi_str *out)
{
    struct csgi_str host = {NULL, 0};
    int default_port;
    size_t cap;
    char *buf, *p;

    if (!env || !out || !env->request || !env->url_scheme.ptr || !env->url_scheme.len ||
        !tc_str_ok(env->server_name) || !tc_str_ok(env->server_port) ||
        !tc_str_ok(env->script_name) || !tc_str_ok(env->path_info) || !tc_str_ok(env->query_string))
        return CSGI_EINVAL;
    if (tc_host_header_get(env, "host", 0, &host) < 0 || (host.len && !host.ptr))
        host.len = 0;
    default_port = (tc_str_eq(env->url_scheme, "https") && tc_str_eq(env->server_port, "443")) ||
                   (tc_str_eq(env->url_scheme, "http") && tc_str_eq(env->server_port, "80"));

    cap = env->url_scheme.len + 3 + host.len + env->server_name.len + 1 + env->server_port.len +
          3 * (env->script_name.len + env->path_info.len) + 1 + env->query_string.len + 1;
    buf = tc_arena_alloc(env->request, cap);
    if (!buf)
        return CSGI_ENOMEM;
    p = buf;
    memcpy(p, env->url_scheme.ptr, env->url_scheme.len);
    p += env->url_scheme.len;
    memcpy(p, "://", 3);
    p += 3;
    if (host.len) {
        memcpy(p, host.ptr, host.len);
        p += host.len;
    } else {
        if (env->server_name.len) {
            memcpy(p, env->server_name.ptr, env->server_name.len);
            p += env->server_name.len;
        }
        if (!default_port && env->server_port.len) {
            *p++ = ':';
            memcpy(p, env->server_port.ptr, env->server_port.len);
            p += env->server_port.len;
        }
    }
    p = tc_quote(p, env->script_name);
    p = tc_quote(p, env->path_info);
    if (env->query_string.len) {
        *p++ = '?';
        memcpy(p, env->query_string.ptr, env->query_string.len);
        p += env->query_string.len;
    }
    *p = '\0';
    out->ptr = buf;
    out->len = (size_t)(p - buf);
    return CSGI_OK;
}

static const void *
tc_host_get_extension(void *ctx, const char *name, uint32_t min_version)
{
    (void)ctx;
    (void)name;
    (void)min_version;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Input and errors streams                                            */
/* ------------------------------------------------------------------ */

static int64_t
tc_input_read(void *ctx, void *buf, size_t n)
{
    struct csgi_request *req = ctx;
    size_t left = req->body_len - req->body_pos;

    if (n == 0)
        return 0;
    if (!buf)
        return CSGI_EINVAL;
    if (n > left)
        n = left;
    if (n)
        memcpy(buf, req->body + req->body_pos, n);
    req->body_pos += n;
    return (int64_t)n;
}

static int64_t
tc_input_readline(void *ctx, void *buf, size_t n)
{
    struct csgi_request *req = ctx;
    size_t left = req->body_len - req->body_pos;
    const unsigned char *nl;

    if (n == 0)
        return 0;
    if (!buf)
        return CSGI_EINVAL;
    if (n > left)
        n = left;
    if (n == 0)
        return 0;
    nl = memchr(req->body + req->body_pos, '\n', n);
    if (nl)
        n = (size_t)(nl - (req->body + req->body_pos)) + 1;
    memcpy(buf, req->body + req->body_pos, n);
    req->body_pos += n;
    return (int64_t)n;
}

static int
tc_input_rewind(void *ctx)
{
    struct csgi_request *req = ctx;

    req->body_pos = 0;
    return CSGI_OK;
}

static int
tc_errors_log(void *ctx, int level, const char *msg, size_t len)
{
    struct csgi_request *req = ctx;

    if (level < CSGI_LOG_ERROR || level > CSGI_LOG_TRACE || (!msg && len))
        return CSGI_EINVAL;
    return tc_capture(req->client, level, msg ? msg : "", len);
}

static int
tc_errors_flush(void *ctx)
{
    struct csgi_request *req = ctx;
    int rc = CSGI_OK;

    if (req->errline_len) {
        rc = tc_capture(req->client, CSGI_LOG_ERROR, req->errline, req->errline_len);
        req->errline_len = 0;
    }
    return rc;
}

static int
tc_errors_write(void *ctx, const char *text, size_t len)
{
    struct csgi_request *req = ctx;

    if (!text && len)
        return CSGI_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            int rc = tc_capture(req->client, CSGI_LOG_ERROR, req->errline ? req->errline : "",
                                req->errline_len);
            req->errline_len = 0;
            if (rc < 0)
                return rc;
            continue;
        }
        if (req->errline_len == req->errline_cap) {
            size_t cap = req->errline_cap ? req->errline_cap * 2 : 128;
            char *line = realloc(req->errline, cap);

            if (!line)
                return CSGI_ENOMEM;
            req->errline = line;
            req->errline_cap = cap;
        }
        req->errline[req->errline_len++] = text[i];
    }
    return CSGI_OK;
}

/* ------------------------------------------------------------------ */
/* The responder                                                       */
/* ------------------------------------------------------------------ */

/* Record the request's first error; later ones are only logged. */
static void
tc_fail(struct csgi_request *req, int code)
{
    if (req->error == CSGI_OK)
        req->error = code;
}

static int
tc_start_response(void *ctx, int status, struct csgi_str reason, const struct csgi_header *headers,
                  size_t n_headers, const struct csgi_exc_info *exc)
{
    struct csgi_request *req = ctx;
    struct csgi_test_client *c = req->client;
    struct csgi_header *copy = NULL;
    int64_t length = -1;
    char why[256];
    int rc;

    if (req->ended) {
        tc_logf(c, CSGI_LOG_ERROR, "start_response() called after the body was closed");
        return CSGI_ESTATE;
    }
    if (exc && req->headers_sent) {
        tc_logf(c, CSGI_LOG_ERROR,
                "start_response() with exc_info after the headers were sent (%s: %.*s)",
                csgi_err_name(exc->code), exc->message.ptr ? (int)exc->message.len : 0,
                exc->message.ptr ? exc->message.ptr : "");
        return CSGI_EHEADERS_SENT;
    }
    if (!exc && req->started) {
        tc_logf(c, CSGI_LOG_ERROR, "start_response() called a second time without exc_info");
        return CSGI_ESTATE;
    }
    rc = csgi__check_response_head(status, reason, headers, n_headers, &length, why, sizeof(why));
    if (rc < 0) {
        tc_logf(c, CSGI_LOG_ERROR, "start_response() refused: %s", why);
        return rc;
    }
    if (n_headers) {
        copy = tc_arena_alloc(req, n_headers * sizeof(*copy));
        if (!copy)
            return CSGI_ENOMEM;
    }
    for (size_t i = 0; i < n_headers; i++) {
        char *name = tc_arena_strndup(req, headers[i].name.ptr, headers[i].name.len);
        char *value = tc_arena_strndup(req, headers[i].value.ptr, headers[i].value.len);

        if (!name || !value)
            return CSGI_ENOMEM;
        copy[i].name.ptr = name;
        copy[i].name.len = headers[i].name.len;
        copy[i].value.ptr = value;
        copy[i].value.len = headers[i].value.len;
    }
    if (reason.len) {
        char *r = tc_arena_strndup(req, reason.ptr, reason.len);

        if (!r)
            return CSGI_ENOMEM;
        req->reason.ptr = r;
        req->reason.len = reason.len;
    } else {
        req->reason.ptr = csgi__status_reason(status);
        req->reason.len = strlen(req->reason.ptr);
    }
    if (exc) {
        tc_logf(c, CSGI_LOG_ERROR, "application error %s, response replaced by %d: %.*s",
                csgi_err_name(exc->code), status, exc->message.ptr ? (int)exc->message.len : 0,
                exc->message.ptr ? exc->message.ptr : "");
    }
    req->started = 1;
    req->status = status;
    req->headers = copy;
    req->n_headers = n_headers;
    req->declared_length = length;
    return CSGI_OK;
}

/* Account for body bytes and keep them unless the method is HEAD. */
static int
tc_emit(struct csgi_request *req, const void *data, size_t len)
{
    if (len > CSGI_TEST_MAX_BODY || req->produced + len > CSGI_TEST_MAX_BODY) {
        tc_logf(req->client, CSGI_LOG_ERROR, "response body exceeds %u bytes", CSGI_TEST_MAX_BODY);
        return CSGI_ETOOBIG;
    }
    req->produced += len;
    if (req->is_head || len == 0)
        return CSGI_OK;
    if (req->out_len + len + 1 > req->out_cap) {
        size_t cap = req->out_cap ? req->out_cap : 256;
        char *out;

        while (cap < req->out_len + len + 1)
            cap *= 2;
        out = realloc(req->out, cap);
        if (!out)
            return CSGI_ENOMEM;
        req->out = out;
        req->out_cap = cap;
    }
    memcpy(req->out + req->out_len, data, len);
    req->out_len += len;
    return CSGI_OK;
}

/* Would @p len more bytes exceed the declared Content-Length? Logs if so. */
static int
tc_exceeds_length(struct csgi_request *req, size_t len)
{
    if (req->declared_length < 0 || req->produced + len <= (uint64_t)req->declared_length)
        return 0;
    tc_logf(req->client, CSGI_LOG_ERROR, "body exceeds the declared Content-Length %lld",
            (long long)req->declared_length);
    return 1;
}

static int
tc_write(void *ctx, const void *data, size_t len)
{
    struct csgi_request *req = ctx;
    int rc;

    if (req->ended) {
        tc_logf(req->client, CSGI_LOG_ERROR, "write() called after the body was closed");
        return CSGI_ESTATE;
    }
    if (req->in_next) {
        tc_logf(req->client, CSGI_LOG_ERROR, "write() called from inside next()");
        return CSGI_ESTATE;
    }
    if (!req->started) {
        tc_logf(req->client, CSGI_LOG_ERROR, "write() called before start_response()");
        return CSGI_ESTATE;
    }
    if (!data && len)
        return CSGI_EINVAL;
    if (tc_exceeds_length(req, len)) {
        tc_fail(req, CSGI_ELENGTH);
        return CSGI_ELENGTH;
    }
    req->headers_sent = 1;
    rc = tc_emit(req, data, len);
    if (rc < 0)
        tc_fail(req, rc);
    return rc;
}

/*
 * Pull the body until CSGI_DONE or an error, then close it: exactly once,
 * whatever happened. Errors go to req->error.
 */
static void
tc_drive_body(struct csgi_request *req, struct csgi_body *body)
{
    struct csgi_test_client *c = req->client;
    unsigned empty = 0;

    if (body->total_length < -1) {
        tc_logf(c, CSGI_LOG_ERROR, "body total_length %lld is invalid",
                (long long)body->total_length);
        tc_fail(req, CSGI_EAPP);
    }
    while (body->next && req->error == CSGI_OK) {
        struct csgi_chunk chunk = {NULL, 0};
        int rc;

        req->in_next = 1;
        rc = body->next(body->ctx, &chunk);
        req->in_next = 0;
        if (rc == CSGI_DONE)
            break;
        if (rc < 0) {
            tc_logf(c, CSGI_LOG_ERROR, "body next() failed: %s (%s)", csgi_strerror(rc),
                    csgi_err_name(rc));
            tc_fail(req, rc);
            break;
        }
        if (rc != CSGI_OK) {
            tc_logf(c, CSGI_LOG_ERROR, "body next() returned %d, not a CSGI result", rc);
            tc_fail(req, CSGI_EAPP);
            break;
        }
        if (chunk.len == 0) {
            if (++empty >= TC_MAX_EMPTY_CHUNKS) {
                tc_logf(c, CSGI_LOG_ERROR, "body yields only empty chunks");
                tc_fail(req, CSGI_EAPP);
            }
            continue;
        }
        empty = 0;
        if (!chunk.ptr) {
            tc_logf(c, CSGI_LOG_ERROR, "body chunk of %zu bytes has a NULL pointer", chunk.len);
            tc_fail(req, CSGI_EINVAL);
            break;
        }
        if (!req->started) {
            tc_logf(c, CSGI_LOG_ERROR, "body chunk before start_response()");
            tc_fail(req, CSGI_ESTATE);
            break;
        }
        req->headers_sent = 1;
        if (tc_exceeds_length(req, chunk.len)) {
            tc_fail(req, CSGI_ELENGTH);
            break;
        }
        req->chunk_bytes += chunk.len;
        rc = tc_emit(req, chunk.ptr, chunk.len);
        if (rc < 0) {
            tc_fail(req, rc);
            break;
        }
    }
    if (req->error == CSGI_OK) {
        /* A HEAD response may leave the body out, Content-Length and all. */
        int head_empty = req->is_head && req->produced == 0;

        if (!req->started) {
            tc_logf(c, CSGI_LOG_ERROR, "body ended without start_response()");
            tc_fail(req, CSGI_ESTATE);
        } else if (req->declared_length >= 0 && !head_empty &&
                   req->produced != (uint64_t)req->declared_length) {
            tc_logf(c, CSGI_LOG_ERROR, "body has %llu bytes, Content-Length says %lld",
                    (unsigned long long)req->produced, (long long)req->declared_length);
            tc_fail(req, CSGI_ELENGTH);
        } else if (body->total_length >= 0 && !head_empty &&
                   req->chunk_bytes != (uint64_t)body->total_length) {
            tc_logf(c, CSGI_LOG_ERROR, "body has %llu bytes, total_length says %lld",
                    (unsigned long long)req->chunk_bytes, (long long)body->total_length);
            tc_fail(req, CSGI_ELENGTH);
        }
        if (req->started)
            req->headers_sent = 1;
    }
    req->ended = 1;
    if (body->close)
        body->close(body->ctx);
}

/* ------------------------------------------------------------------ */
/* Building the environ                                                */
/* ------------------------------------------------------------------ */

/*
 * Percent-decode the path [p, p+n) into a new arena string, exactly as
 * csgi-server does: a bad escape or "%00" is refused with CSGI_EINVAL.
 */
static int
tc_decode(struct csgi_request *req, const char *p, size_t n, struct csgi_str *out)
{
    char *buf = tc_arena_alloc(req, n + 1);
    long len;

    if (!buf)
        return CSGI_ENOMEM;
    len = csgi__percent_decode(p, n, buf);
    if (len < 0)
        return CSGI_EINVAL;
    out->ptr = buf;
    out->len = (size_t)len;
    return CSGI_OK;
}

static int
tc_set_str(struct csgi_request *req, struct csgi_str *dst, const char *s, size_t n)
{
    char *p = tc_arena_strndup(req, s, n);

    if (!p)
        return CSGI_ENOMEM;
    dst->ptr = p;
    dst->len = n;
    return CSGI_OK;
}

static int
tc_build_environ(struct csgi_request *req, const struct csgi_test_request *rq)
{
    struct csgi_test_client *c = req->client;
    struct csgi_environ *env = &req->env;
    const char *method = rq->method ? rq->method : "GET";
    const char *target = rq->target ? rq->target : "/";
    const char *scheme = rq->url_scheme ? rq->url_scheme : "http";
    const char *protocol = rq->protocol ? rq->protocol : "HTTP/1.1";
    const char *query;
    struct csgi_str path, host = {NULL, 0};
    struct csgi_header *headers = NULL;
    size_t mount_len = strlen(c->mount), path_len;
    int have_length = 0;
    int rc;

    env->version = CSGI_ENVIRON_VERSION;
    env->flags = CSGI_ENV_INPUT_TERMINATED | CSGI_ENV_INPUT_BUFFERED;
    env->request = req;

    if (!csgi__is_token(method, strlen(method)))
        return CSGI_EINVAL;
    req->is_head = strcmp(method, "HEAD") == 0;
    if (strcmp(scheme, "https") == 0) {
        env->flags |= CSGI_ENV_TLS;
    } else if (strcmp(scheme, "http") != 0) {
        return CSGI_EINVAL;
    }
    if (strcmp(protocol, "HTTP/1.1") != 0 && strcmp(protocol, "HTTP/1.0") != 0)
        return CSGI_EINVAL;
    if (rq->body_len && !rq->body)
        return CSGI_EINVAL;
    if (rq->n_headers && !rq->headers)
        return CSGI_EINVAL;

    /* Origin form only, without whitespace, controls or a fragment. */
    if (target[0] != '/')
        return CSGI_EINVAL;
    for (const char *t = target; *t; t++) {
        unsigned char ch = (unsigned char)*t;
        if (ch <= 0x20 || ch == 0x7f || ch == '#')
            return CSGI_EINVAL;
    }
    query = strchr(target, '?');
    path_len = query ? (size_t)(query - target) : strlen(target);

    rc = tc_decode(req, target, path_len, &path);
    if (rc < 0)
        return rc;
    if (mount_len && (path.len < mount_len || memcmp(path.ptr, c->mount, mount_len) != 0 ||
                      (path.len > mount_len && path.ptr[mount_len] != '/')))
        return CSGI_ENOENT;

    {
        const struct {
            struct csgi_str *dst;
            const char *src;
        } fields[] = {
            {&env->request_method, method},
            {&env->script_name, c->mount},
            {&env->raw_target, target},
            {&env->query_string, query ? query + 1 : ""},
            {&env->server_port, env->flags & CSGI_ENV_TLS ? "443" : "80"},
            {&env->server_protocol, protocol},
            {&env->url_scheme, scheme},
            {&env->remote_addr, "127.0.0.1"},
        };

        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            rc = tc_set_str(req, fields[i].dst, fields[i].src, strlen(fields[i].src));
            if (rc < 0)
                return rc;
        }
    }
    env->path_info.ptr = path.ptr + mount_len;
    env->path_info.len = path.len - mount_len;
    env->remote_port = CSGI_TEST_REMOTE_PORT;
    env->content_length = -1;

    if (rq->n_headers) {
        headers = tc_arena_alloc(req, rq->n_headers * sizeof(*headers));
        if (!headers)
            return CSGI_ENOMEM;
    }
    for (size_t i = 0; i < rq->n_headers; i++) {
        const struct csgi_header *h = &rq->headers[i];

        if (!csgi__is_token(h->name.ptr, h->name.len) ||
            !csgi__is_field_value(h->value.ptr, h->value.len))
            return CSGI_EINVAL;
        rc = tc_set_str(req, &headers[i].name, h->name.ptr, h->name.len);
        if (rc == CSGI_OK)
            rc = tc_set_str(req, &headers[i].value, h->value.ptr, h->value.len);
        if (rc < 0)
            return rc;
        if (csgi__str_ieq(h->name.ptr, h->name.len, "content-length")) {
            int64_t len = csgi__parse_content_length(h->value.ptr, h->value.len);

            if (have_length || len < 0 || (uint64_t)len != rq->body_len)
                return CSGI_EINVAL;
            have_length = 1;
            env->content_length = len;
        } else if (csgi__str_ieq(h->name.ptr, h->name.len, "content-type")) {
            if (env->content_type.ptr)
                return CSGI_EINVAL;
            env->content_type = headers[i].value;
        } else if (csgi__str_ieq(h->name.ptr, h->name.len, "host") && !host.ptr) {
            host = headers[i].value;
        }
    }
    env->headers = headers;
    env->n_headers = rq->n_headers;

    /* server_name is the host part of Host ("[::1]:8080" -> "[::1]"). */
    if (host.len) {
        const char *end = host.ptr + host.len;
        const char *colon;

        if (host.ptr[0] == '[') {
            colon = memchr(host.ptr, ']', host.len);
            colon = colon ? colon + 1 : end;
        } else {
            colon = memchr(host.ptr, ':', host.len);
            colon = colon ? colon : end;
        }
        host.len = (size_t)(colon - host.ptr);
    }
    if (host.len)
        rc = tc_set_str(req, &env->server_name, host.ptr, host.len);
    else
        rc = tc_set_str(req, &env->server_name, "localhost", 9);
    if (rc < 0)
        return rc;

    req->body = rq->body;
    req->body_len = rq->body_len;
    req->input.version = CSGI_INPUT_VERSION;
    req->input.ctx = req;
    req->input.read = tc_input_read;
    req->input.readline = tc_input_readline;
    req->input.rewind = tc_input_rewind;
    env->input = &req->input;

    req->errors.version = CSGI_ERRORS_VERSION;
    req->errors.ctx = req;
    req->errors.log = tc_errors_log;
    req->errors.write = tc_errors_write;
    req->errors.flush = tc_errors_flush;
    env->errors = &req->errors;

    env->config = c->config;
    env->n_config = c->n_config;

    req->resp.version = CSGI_RESPONDER_VERSION;
    req->resp.ctx = req;
    req->resp.start_response = tc_start_response;
    req->resp.write = tc_write;
    req->declared_length = -1;
    return CSGI_OK;
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

static char *
tc_pool_put(char **pool, const char *s, size_t n)
{
    char *p = *pool;

    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    *pool += n + 1;
    return p;
}

static struct csgi_test_response *
tc_make_response(struct csgi_request *req)
{
    struct csgi_test_client *c = req->client;
    struct tc_response *r;
    struct csgi_test_response *pub;
    size_t pool_size = 0, n_logs, n_headers = req->headers_sent ? req->n_headers : 0;
    const char *reason;
    size_t reason_len;
    char *pool;

    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pub = &r->pub;
    pub->rc = req->error;
    pub->finish_reason = req->error == CSGI_OK ? CSGI_FINISH_OK : CSGI_FINISH_ERROR;
    pub->headers_sent = req->headers_sent;
    pub->body_produced = req->produced;
    if (req->headers_sent) {
        pub->status = req->status;
        reason = req->reason.ptr;
        reason_len = req->reason.len;
    } else {
        pub->status = req->declined ? 404 : 500;
        reason = csgi__status_reason(pub->status);
        reason_len = strlen(reason);
    }

    pthread_mutex_lock(&c->log_lock);
    n_logs = c->n_logs - req->log_start;
    pool_size += reason_len + 1;
    for (size_t i = 0; i < n_headers; i++)
        pool_size += req->headers[i].name.len + req->headers[i].value.len + 2;
    for (size_t i = 0; i < n_logs; i++)
        pool_size += strlen(c->logs[req->log_start + i]->text) + 1;

    r->pool = malloc(pool_size);
    r->headers = n_headers ? calloc(n_headers, sizeof(*r->headers)) : NULL;
    r->logs = n_logs ? calloc(n_logs, sizeof(*r->logs)) : NULL;
    r->body = malloc(req->headers_sent ? req->out_len + 1 : 1);
    if (!r->pool || (n_headers && !r->headers) || (n_logs && !r->logs) || !r->body) {
        pthread_mutex_unlock(&c->log_lock);
        csgi_test_response_free(pub);
        return NULL;
    }
    pool = r->pool;
    pub->reason = tc_pool_put(&pool, reason, reason_len);
    for (size_t i = 0; i < n_headers; i++) {
        const struct csgi_header *h = &req->headers[i];

        r->headers[i].name.ptr = tc_pool_put(&pool, h->name.ptr, h->name.len);
        r->headers[i].name.len = h->name.len;
        r->headers[i].value.ptr = tc_pool_put(&pool, h->value.ptr, h->value.len);
        r->headers[i].value.len = h->value.len;
    }
    for (size_t i = 0; i < n_logs; i++) {
        const struct tc_logline *line = c->logs[req->log_start + i];

        r->logs[i].level = line->pub.level;
        r->logs[i].text = tc_pool_put(&pool, line->text, strlen(line->text));
    }
    pthread_mutex_unlock(&c->log_lock);

    if (req->headers_sent && req->out_len) {
        memcpy(r->body, req->out, req->out_len);
        pub->body_len = req->out_len;
    }
    r->body[pub->body_len] = '\0';
    pub->body = r->body;
    pub->headers = r->headers;
    pub->n_headers = n_headers;
    pub->logs = r->logs;
    pub->n_logs = n_logs;
    return pub;
}

void
csgi_test_response_free(struct csgi_test_response *resp)
{
    struct tc_response *r = (struct tc_response *)resp;

    if (!r)
        return;
    free(r->pool);
    free(r->headers);
    free(r->logs);
    free(r->body);
    free(r);
}

const char *
csgi_test_response_header(const struct csgi_test_response *resp, const char *name)
{
    if (!resp || !name)
        return NULL;
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (csgi__str_ieq(resp->headers[i].name.ptr, resp->headers[i].name.len, name))
            return resp->headers[i].value.ptr;
    }
    return NULL;
}

size_t
csgi_test_response_header_count(const struct csgi_test_response *resp, const char *name)
{
    size_t n = 0;

    if (!resp || !name)
        return 0;
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (csgi__str_ieq(resp->headers[i].name.ptr, resp->headers[i].name.len, name))
            n++;
    }
    return n;
}

const char *
csgi_test_response_find_log(const struct csgi_test_response *resp, const char *needle)
{
    if (!resp || !needle)
        return NULL;
    for (size_t i = 0; i < resp->n_logs; i++) {
        if (strstr(resp->logs[i].text, needle))
            return resp->logs[i].text;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Running a request                                                   */
/* ------------------------------------------------------------------ */

/* End of request: on_finished callbacks (LIFO), then leftover file bodies. */
static void
tc_finish_request(struct csgi_request *req, int reason)
{
    while (req->finish) {
        struct tc_finish *node = req->finish;

        req->finish = node->next;
        node->fn(node->arg, reason);
    }
    for (struct tc_file *f = req->files; f; f = f->next) {
        if (f->closed)
            continue;
        if (f->flags & CSGI_FD_CLOSE) {
            tc_logf(req->client, CSGI_LOG_WARN, "file body on fd %d was never closed", f->fd);
            close(f->fd);
        }
        f->closed = 1;
    }
}

int
csgi_test_client_request_app(struct csgi_test_client *client, csgi_app_fn app, void *state,
                             const struct csgi_test_request *rq, struct csgi_test_response **out)
{
    static const struct csgi_test_request get_root = {0};
    struct csgi_request *req;
    struct csgi_body body;
    int rc;

    if (out)
        *out = NULL;
    if (!client || !app || !out)
        return CSGI_EINVAL;
    if (client->active)
        return CSGI_ESTATE;
    if (!rq)
        rq = &get_root;
    req = calloc(1, sizeof(*req));
    if (!req)
        return CSGI_ENOMEM;
    req->client = client;
    rc = tc_build_environ(req, rq);
    if (rc < 0)
        goto free_request;

    pthread_mutex_lock(&client->log_lock);
    req->log_start = client->n_logs;
    pthread_mutex_unlock(&client->log_lock);

    client->active = req;
    memset(&body, 0, sizeof(body));
    body.version = CSGI_BODY_VERSION;
    body.total_length = -1;
    rc = app(state, &req->env, &req->resp, &body);
    if (rc == CSGI_OK) {
        tc_drive_body(req, &body);
    } else if (rc < 0) {
        req->declined = rc == CSGI_EDECLINED && !req->started;
        if (rc == CSGI_EDECLINED && req->started)
            tc_logf(client, CSGI_LOG_ERROR, "application declined after start_response()");
        else if (rc != CSGI_EDECLINED)
            tc_logf(client, CSGI_LOG_ERROR, "application failed: %s (%s)", csgi_strerror(rc),
                    csgi_err_name(rc));
        tc_fail(req, rc);
        req->ended = 1;
    } else {
        tc_logf(client, CSGI_LOG_ERROR, "call() returned %d, not a CSGI result", rc);
        tc_fail(req, CSGI_EAPP);
        req->ended = 1;
    }
    tc_errors_flush(req);
    tc_finish_request(req, req->error == CSGI_OK ? CSGI_FINISH_OK : CSGI_FINISH_ERROR);
    client->active = NULL;

    *out = tc_make_response(req);
    rc = *out ? CSGI_OK : CSGI_ENOMEM;

free_request:
    tc_arena_free(req);
    free(req->errline);
    free(req->out);
    free(req);
    return rc;
}

int
csgi_test_client_request(struct csgi_test_client *client, const struct csgi_test_request *rq,
                         struct csgi_test_response **out)
{
    if (out)
        *out = NULL;
    if (!client)
        return CSGI_EINVAL;
    return csgi_test_client_request_app(client, client->app, client->app_state, rq, out);
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

/* Normalise a mount: "" or "/x" (trailing slashes dropped). NULL when invalid. */
static char *
tc_mount_dup(const char *mount)
{
    size_t n = strlen(mount);

    if (n && mount[0] != '/')
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)mount[i];
        if (ch < 0x20 || ch == 0x7f || ch == '?' || ch == '#')
            return NULL;
    }
    while (n && mount[n - 1] == '/')
        n--;
    return tc_strndup(mount, n);
}

static struct csgi_test_client *
tc_client_alloc(const char *mount, char *err, size_t err_len)
{
    struct csgi_test_client *c = calloc(1, sizeof(*c));

    if (!c) {
        tc_errf(err, err_len, "out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&c->log_lock, NULL) != 0) {
        tc_errf(err, err_len, "pthread_mutex_init() failed");
        free(c);
        return NULL;
    }
    c->mount = tc_mount_dup(mount);
    if (!c->mount) {
        tc_errf(err, err_len, "mount \"%s\" is invalid (want \"\" or \"/prefix\")", mount);
        pthread_mutex_destroy(&c->log_lock);
        free(c);
        return NULL;
    }
    c->api.version = CSGI_HOST_API_VERSION;
    c->api.size = (uint32_t)sizeof(c->api);
    c->api.abi_version = CSGI_ABI_VERSION;
    c->api.spec_version = CSGI_VERSION_HEX;
    c->api.server_software = "csgi-testclient/" CSGI_VERSION_STRING;
    c->api.ctx = c;
    c->api.log = tc_host_log;
    c->api.vlog = tc_host_vlog;
    c->api.alloc = tc_host_alloc;
    c->api.header_get = tc_host_header_get;
    c->api.body_from_fd = tc_host_body_from_fd;
    c->api.on_finished = tc_host_on_finished;
    c->api.request_url = tc_host_request_url;
    c->api.get_extension = tc_host_get_extension;
    return c;
}

static int
tc_client_set_config(struct csgi_test_client *c, const struct csgi_kv *config, size_t n_config,
                     char *err, size_t err_len)
{
    if (n_config && !config) {
        tc_errf(err, err_len, "config is NULL with %zu items", n_config);
        return CSGI_EINVAL;
    }
    if (!n_config)
        return CSGI_OK;
    c->config = calloc(n_config, sizeof(*c->config));
    c->config_strings = calloc(2 * n_config, sizeof(*c->config_strings));
    if (!c->config || !c->config_strings) {
        tc_errf(err, err_len, "out of memory");
        return CSGI_ENOMEM;
    }
    c->n_config_strings = 2 * n_config;
    for (size_t i = 0; i < n_config; i++) {
        char *key, *value;

        if (!config[i].key || !config[i].value) {
            tc_errf(err, err_len, "config item %zu has a NULL key or value", i);
            return CSGI_EINVAL;
        }
        key = tc_strndup(config[i].key, strlen(config[i].key));
        value = tc_strndup(config[i].value, strlen(config[i].value));
        c->config_strings[2 * i] = key;
        c->config_strings[2 * i + 1] = value;
        if (!key || !value) {
            tc_errf(err, err_len, "out of memory");
            return CSGI_ENOMEM;
        }
        c->config[i].key = key;
        c->config[i].value = value;
    }
    c->n_config = n_config;
    return CSGI_OK;
}

static int
tc_valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return 0;
    }
    return 1;
}

/* The server's descriptor checks. Writes the reason and returns CSGI_EABI. */
static int
tc_check_plugin(const struct csgi_plugin *p, char *err, size_t err_len)
{
    if (p->magic != CSGI_PLUGIN_MAGIC) {
        tc_errf(err, err_len, "bad magic 0x%08x, not a csgi plugin (want 0x%08x)",
                (unsigned)p->magic, (unsigned)CSGI_PLUGIN_MAGIC);
        return CSGI_EABI;
    }
    if (p->abi_version != CSGI_ABI_VERSION) {
        tc_errf(err, err_len, "plugin ABI %u, host ABI %u", (unsigned)p->abi_version,
                (unsigned)CSGI_ABI_VERSION);
        return CSGI_EABI;
    }
    if (p->version < 1) {
        tc_errf(err, err_len, "descriptor version %u is invalid", (unsigned)p->version);
        return CSGI_EABI;
    }
    if (p->size < sizeof(struct csgi_plugin)) {
        tc_errf(err, err_len, "descriptor size %u is smaller than %zu for version %u",
                (unsigned)p->size, sizeof(struct csgi_plugin), (unsigned)p->version);
        return CSGI_EABI;
    }
    if (!p->name || !tc_valid_name(p->name)) {
        tc_errf(err, err_len, "plugin name \"%s\" is invalid (want [a-z0-9_]+, at most 63 bytes)",
                p->name ? p->name : "(null)");
        return CSGI_EABI;
    }
    if (!p->call) {
        tc_errf(err, err_len, "plugin \"%s\" has no call()", p->name);
        return CSGI_EABI;
    }
    return CSGI_OK;
}

/* Check the descriptor, set the mount and config, run init_worker(). */
static struct csgi_test_client *
tc_client_start(const struct csgi_plugin *plugin, void *dl, const char *mount,
                const struct csgi_kv *config, size_t n_config, char *err, size_t err_len)
{
    struct csgi_test_client *c;
    char default_mount[72];
    int rc;

    rc = tc_check_plugin(plugin, err, err_len);
    if (rc < 0)
        return NULL;
    if (!mount) {
        mount = plugin->mount;
        if (!mount) {
            snprintf(default_mount, sizeof(default_mount), "/%s", plugin->name);
            mount = default_mount;
        }
    }
    c = tc_client_alloc(mount, err, err_len);
    if (!c)
        return NULL;
    c->dl = dl;
    c->plugin = plugin;
    c->app = plugin->call;
    rc = tc_client_set_config(c, config, n_config, err, err_len);
    if (rc < 0)
        goto error_free;
    if (plugin->init_worker) {
        rc = plugin->init_worker(&c->api, c->config, c->n_config, &c->app_state);
        if (rc < 0) {
            tc_errf(err, err_len, "plugin \"%s\": init_worker failed: %s (%s)", plugin->name,
                    csgi_strerror(rc), csgi_err_name(rc));
            goto error_free;
        }
    }
    c->worker_started = 1;
    return c;

error_free:
    /* The caller still owns the handle on failure. */
    c->dl = NULL;
    csgi_test_client_free(c);
    return NULL;
}

struct csgi_test_client *
csgi_test_client_new(const struct csgi_plugin *plugin, const char *mount,
                     const struct csgi_kv *config, size_t n_config, char *err, size_t err_len)
{
    if (!plugin) {
        tc_errf(err, err_len, "plugin is NULL");
        return NULL;
    }
    return tc_client_start(plugin, NULL, mount, config, n_config, err, err_len);
}

struct csgi_test_client *
csgi_test_client_open(const char *path, const char *mount, const struct csgi_kv *config,
                      size_t n_config, char *err, size_t err_len)
{
    struct csgi_test_client *c;
    csgi_plugin_entry_fn entry;
    const struct csgi_plugin *plugin;
    char why[256];
    void *handle, *sym;

    if (!path) {
        tc_errf(err, err_len, "path is NULL");
        return NULL;
    }
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *msg = dlerror();
        tc_errf(err, err_len, "dlopen(\"%s\") failed: %s", path, msg ? msg : "unknown error");
        return NULL;
    }
    dlerror();
    sym = dlsym(handle, CSGI_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        tc_errf(err, err_len, "\"%s\": entry symbol \"%s\" not found", path,
                CSGI_PLUGIN_ENTRY_SYMBOL);
        goto error_dlclose;
    }
    /* POSIX guarantees a data pointer from dlsym() can hold a function. */
    _Static_assert(sizeof(entry) == sizeof(sym), "function and data pointers differ in size");
    memcpy(&entry, &sym, sizeof(entry));
    plugin = entry(CSGI_ABI_VERSION);
    if (!plugin) {
        tc_errf(err, err_len, "\"%s\": %s(%u) returned NULL: the plugin refuses host ABI %u", path,
                CSGI_PLUGIN_ENTRY_SYMBOL, (unsigned)CSGI_ABI_VERSION, (unsigned)CSGI_ABI_VERSION);
        goto error_dlclose;
    }
    why[0] = '\0';
    c = tc_client_start(plugin, handle, mount, config, n_config, why, sizeof(why));
    if (!c) {
        tc_errf(err, err_len, "\"%s\": %s", path, why);
        goto error_dlclose;
    }
    return c;

error_dlclose:
    dlclose(handle);
    return NULL;
}

struct csgi_test_client *
csgi_test_client_new_app(csgi_app_fn app, void *state, const char *mount, char *err, size_t err_len)
{
    struct csgi_test_client *c;

    if (!app) {
        tc_errf(err, err_len, "app is NULL");
        return NULL;
    }
    c = tc_client_alloc(mount ? mount : "", err, err_len);
    if (!c)
        return NULL;
    c->app = app;
    c->app_state = state;
    return c;
}

void
csgi_test_client_free(struct csgi_test_client *client)
{
    if (!client)
        return;
    if (client->worker_started && client->plugin && client->plugin->exit_worker)
        client->plugin->exit_worker(client->app_state);
    if (client->dl && !getenv("CSGI_NO_DLCLOSE"))
        dlclose(client->dl);
    for (size_t i = 0; i < client->n_logs; i++)
        free(client->logs[i]);
    free(client->logs);
    for (size_t i = 0; i < client->n_config_strings; i++)
        free(client->config_strings[i]);
    free(client->config_strings);
    free(client->config);
    free(client->mount);
    pthread_mutex_destroy(&client->log_lock);
    free(client);
}

const struct csgi_host_api *
csgi_test_client_host_api(const struct csgi_test_client *client)
{
    return client ? &client->api : NULL;
}

void
csgi_test_client_app(const struct csgi_test_client *client, csgi_app_fn *app, void **state)
{
    if (app)
        *app = client ? client->app : NULL;
    if (state)
        *state = client ? client->app_state : NULL;
}

size_t
csgi_test_client_log_count(const struct csgi_test_client *client)
{
    return client ? client->n_logs : 0;
}

const struct csgi_test_log *
csgi_test_client_log_at(const struct csgi_test_client *client, size_t index)
{
    if (!client || index >= client->n_logs)
        return NULL;
    return &client->logs[index]->pub;
}

const char *
csgi_test_client_find_log(const struct csgi_test_client *client, const char *needle)
{
    if (!client || !needle)
        return NULL;
    for (size_t i = 0; i < client->n_logs; i++) {
        if (strstr(client->logs[i]->text, needle))
            return client->logs[i]->text;
    }
    return NULL;
}
