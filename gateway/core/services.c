/*
 * Host services of the core (see core.h): header lookup, request_url(),
 * file and buffer bodies, request ids, and the input and error streams.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "csgi_internal.h"

#define FILE_BODY_MAGIC 0x46424f44u
/* Longest error-stream message logged; longer ones are cut. */
#define MAX_ERROR_MESSAGE 2048

int
csgi__header_get(const struct csgi_environ *env, const char *name, size_t index,
                 struct csgi_str *value)
{
    if (!env || !name || !value)
        return CSGI_EINVAL;
    for (size_t i = 0; i < env->n_headers; i++) {
        const struct csgi_header *hd = &env->headers[i];

        if (csgi__str_ieq(hd->name.ptr, hd->name.len, name)) {
            if (index == 0) {
                *value = hd->value;
                return CSGI_OK;
            }
            index--;
        }
    }
    return CSGI_ENOENT;
}

/* Append [p, p+n) percent-encoding bytes outside unreserved and "/". */
static size_t
url_quote(char *out, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c && strchr("-._~/", c))) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    return o;
}

static int
default_port(const struct csgi_environ *env)
{
    const struct csgi_str *s = &env->url_scheme, *p = &env->server_port;

    return (csgi__str_ieq(s->ptr, s->len, "https") && csgi__str_ieq(p->ptr, p->len, "443")) ||
           (csgi__str_ieq(s->ptr, s->len, "http") && csgi__str_ieq(p->ptr, p->len, "80"));
}

static size_t
put(char *buf, size_t n, const char *p, size_t len)
{
    if (len)
        memcpy(buf + n, p, len);
    return n + len;
}

int
csgi__request_url(const struct csgi_environ *env, void *(*alloc)(void *ctx, size_t n), void *ctx,
                  struct csgi_str *out)
{
    struct csgi_str host = {NULL, 0};
    size_t cap, n = 0;
    char *buf;

    if (!env || !out)
        return CSGI_EINVAL;
    csgi__header_get(env, "host", 0, &host);
    cap = env->url_scheme.len + 3 +
          (host.len ? host.len : env->server_name.len + 1 + env->server_port.len) +
          3 * (env->script_name.len + env->path_info.len) + 1 + env->query_string.len + 1;
    buf = alloc(ctx, cap);
    if (!buf)
        return CSGI_ENOMEM;
    n = put(buf, n, env->url_scheme.ptr, env->url_scheme.len);
    n = put(buf, n, "://", 3);
    if (host.len) {
        n = put(buf, n, host.ptr, host.len);
    } else {
        n = put(buf, n, env->server_name.ptr, env->server_name.len);
        if (!default_port(env)) {
            buf[n++] = ':';
            n = put(buf, n, env->server_port.ptr, env->server_port.len);
        }
    }
    n += url_quote(buf + n, env->script_name.ptr, env->script_name.len);
    n += url_quote(buf + n, env->path_info.ptr, env->path_info.len);
    if (env->query_string.len) {
        buf[n++] = '?';
        n = put(buf, n, env->query_string.ptr, env->query_string.len);
    }
    buf[n] = '\0';
    out->ptr = buf;
    out->len = n;
    return CSGI_OK;
}

/* ------------------------------------------------------------------ */
/* File bodies                                                         */
/* ------------------------------------------------------------------ */

static int
file_body_next(void *ctx, struct csgi_chunk *out)
{
    struct csgi__file_body *fb = ctx;
    size_t want = sizeof(fb->buf);
    ssize_t n;

    if (fb->remaining == 0)
        return CSGI_DONE;
    if (fb->remaining > 0 && (int64_t)want > fb->remaining)
        want = (size_t)fb->remaining;
    do {
        n = pread(fb->fd, fb->buf, want, fb->offset);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return CSGI_EIO;
    if (n == 0) {
        /* The file is shorter than promised: an error when a count was given. */
        return fb->remaining > 0 ? CSGI_ELENGTH : CSGI_DONE;
    }
    fb->offset += n;
    if (fb->remaining > 0)
        fb->remaining -= n;
    out->ptr = fb->buf;
    out->len = (size_t)n;
    return CSGI_OK;
}

static void
file_body_close(void *ctx)
{
    struct csgi__file_body *fb = ctx;

    if (fb->close_fd && fb->fd >= 0)
        close(fb->fd);
    fb->fd = -1;
    fb->magic = 0;
}

int
csgi__body_from_fd(void *(*alloc)(void *ctx, size_t n), void *ctx, struct csgi__file_body **list,
                   int fd, int64_t offset, int64_t count, uint32_t flags, struct csgi_body *out)
{
    struct csgi__file_body *fb;
    struct stat st;
    int rc = CSGI_EINVAL;

    if (!out || offset < 0 || count < -1 || (flags & ~(uint32_t)CSGI_FD_CLOSE))
        goto error_close;
    rc = CSGI_EBADF;
    if (fd < 0 || fstat(fd, &st) < 0)
        goto error_close;
    if (count < 0 && S_ISREG(st.st_mode))
        count = st.st_size > offset ? st.st_size - offset : 0;
    rc = CSGI_ENOMEM;
    fb = alloc(ctx, sizeof(*fb));
    if (!fb)
        goto error_close;
    fb->magic = FILE_BODY_MAGIC;
    fb->next = *list;
    *list = fb;
    fb->fd = fd;
    fb->close_fd = (flags & CSGI_FD_CLOSE) != 0;
    fb->offset = offset;
    fb->remaining = count;
    memset(out, 0, sizeof(*out));
    out->version = CSGI_BODY_VERSION;
    out->flags = CSGI_BODY_FILE;
    out->total_length = count;
    out->ctx = fb;
    out->next = file_body_next;
    out->close = file_body_close;
    return CSGI_OK;

error_close:
    /* With CSGI_FD_CLOSE the descriptor is the host's from the call on. */
    if (fd >= 0 && (flags & CSGI_FD_CLOSE))
        close(fd);
    return rc;
}

struct csgi__file_body *
csgi__file_body_of(const struct csgi_body *body)
{
    struct csgi__file_body *fb = body->ctx;

    if (!(body->flags & CSGI_BODY_FILE) || !fb || body->next != file_body_next ||
        fb->magic != FILE_BODY_MAGIC)
        return NULL;
    return fb;
}

void
csgi__file_bodies_release(struct csgi__file_body *list)
{
    for (struct csgi__file_body *fb = list; fb; fb = fb->next) {
        if (fb->close_fd && fb->fd >= 0)
            close(fb->fd);
        fb->fd = -1;
    }
}

/* ------------------------------------------------------------------ */
/* Buffer bodies                                                       */
/* ------------------------------------------------------------------ */

/* A one-chunk body (body_from_buffer()): the bytes, and whether they were produced. */
struct buffer_body {
    const void *ptr;
    size_t len;
    int done;
};

static int
buffer_body_next(void *ctx, struct csgi_chunk *out)
{
    struct buffer_body *b = ctx;

    if (b->done || b->len == 0)
        return CSGI_DONE;
    b->done = 1;
    out->ptr = b->ptr;
    out->len = b->len;
    return CSGI_OK;
}

int
csgi__body_from_buffer(void *(*alloc)(void *ctx, size_t n), void *ctx, const void *data, size_t len,
                       uint32_t flags, struct csgi_body *out)
{
    int borrow = (flags & CSGI_BUF_BORROW) != 0;
    struct buffer_body *b;

    if (!out || (!data && len) || (flags & ~(uint32_t)CSGI_BUF_BORROW) || len > INT64_MAX)
        return CSGI_EINVAL;
    if (!borrow && len > SIZE_MAX - sizeof(*b))
        return CSGI_ENOMEM;
    b = alloc(ctx, sizeof(*b) + (borrow ? 0 : len));
    if (!b)
        return CSGI_ENOMEM;
    b->ptr = data;
    b->len = len;
    b->done = 0;
    if (!borrow && len) {
        memcpy(b + 1, data, len);
        b->ptr = b + 1;
    }
    memset(out, 0, sizeof(*out));
    out->version = CSGI_BODY_VERSION;
    out->total_length = (int64_t)len;
    out->ctx = b;
    out->next = buffer_body_next;
    return CSGI_OK;
}

/* ------------------------------------------------------------------ */
/* Request ids                                                         */
/* ------------------------------------------------------------------ */

int
csgi__request_id_prefix(char *prefix)
{
    static const char hex[16] = "0123456789abcdef";
    uint64_t v = 0;
    int rc = CSGI_OK;
    ssize_t n;

    /* Never wait for entropy (early boot): the fallback below still differs between live processes.
     */
    do {
        n = getrandom(&v, sizeof(v), GRND_NONBLOCK);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(v)) {
        struct timespec ts;

        /* No entropy: pid and clock still differ between live processes. */
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)getpid() << 40) ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)ts.tv_nsec;
        rc = CSGI_EIO;
    }
    for (int i = 15; i >= 0; i--) {
        prefix[i] = hex[v & 15];
        v >>= 4;
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* The input stream                                                    */
/* ------------------------------------------------------------------ */

static int64_t
input_read(void *ctx, void *buf, size_t n)
{
    struct csgi__input *in = ctx;
    uint64_t left = in->len - in->pos;
    ssize_t got;

    if (!buf && n)
        return CSGI_EINVAL;
    if (left == 0 || n == 0)
        return 0;
    if (n > left)
        n = (size_t)left;
    if (in->fd < 0) {
        memcpy(buf, in->mem + in->pos, n);
        in->pos += n;
        return (int64_t)n;
    }
    do {
        got = pread(in->fd, buf, n, (off_t)in->pos);
    } while (got < 0 && errno == EINTR);
    if (got < 0)
        return CSGI_EIO;
    in->pos += (uint64_t)got;
    return got;
}

static int64_t
input_readline(void *ctx, void *buf, size_t n)
{
    struct csgi__input *in = ctx;
    int64_t got = input_read(ctx, buf, n);
    char *nl;

    if (got <= 0)
        return got;
    nl = memchr(buf, '\n', (size_t)got);
    if (nl) {
        int64_t keep = nl - (char *)buf + 1;

        in->pos -= (uint64_t)(got - keep);
        got = keep;
    }
    return got;
}

static int
input_rewind(void *ctx)
{
    struct csgi__input *in = ctx;

    in->pos = 0;
    return CSGI_OK;
}

void
csgi__input_init(struct csgi_input *in, struct csgi__input *state)
{
    memset(in, 0, sizeof(*in));
    in->version = CSGI_INPUT_VERSION;
    in->ctx = state;
    in->read = input_read;
    in->readline = input_readline;
    in->rewind = input_rewind;
}

/* ------------------------------------------------------------------ */
/* The error stream                                                    */
/* ------------------------------------------------------------------ */

static int
errors_log(void *ctx, int level, const char *msg, size_t len)
{
    struct csgi__errors *e = ctx;

    if (level < CSGI_LOG_ERROR || level > CSGI_LOG_TRACE || (len && !msg))
        return CSGI_EINVAL;
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        len--;
    if (len > MAX_ERROR_MESSAGE)
        len = MAX_ERROR_MESSAGE;
    e->sink(e->ctx, level, msg, len);
    return CSGI_OK;
}

int
csgi__errors_flush(struct csgi__errors *e)
{
    if (e->line_len) {
        errors_log(e, CSGI_LOG_ERROR, e->line, e->line_len);
        e->line_len = 0;
    }
    return CSGI_OK;
}

static int
errors_flush(void *ctx)
{
    return csgi__errors_flush(ctx);
}

static int
errors_write(void *ctx, const char *text, size_t len)
{
    struct csgi__errors *e = ctx;

    if (len && !text)
        return CSGI_EINVAL;
    if (len && !e->line && !(e->line = e->alloc(e->ctx, CSGI__ERRORS_LINE)))
        return CSGI_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n' || e->line_len == CSGI__ERRORS_LINE) {
            csgi__errors_flush(e);
            if (text[i] == '\n')
                continue;
        }
        e->line[e->line_len++] = text[i];
    }
    return CSGI_OK;
}

void
csgi__errors_init(struct csgi_errors *err, struct csgi__errors *state)
{
    memset(err, 0, sizeof(*err));
    err->version = CSGI_ERRORS_VERSION;
    err->ctx = state;
    err->log = errors_log;
    err->write = errors_write;
    err->flush = errors_flush;
}
