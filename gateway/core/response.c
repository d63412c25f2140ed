/*
 * The response side of the host core (see core.h): start_response(),
 * write() and exc_info, body pulling, the framing decision, HEAD, length
 * checks and the exactly-once close().
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "csgi_internal.h"

/* A body yielding this many empty chunks in a row is taken to spin. */
#define MAX_EMPTY_CHUNKS (1u << 20)
/* How much of a HEAD response's body of unknown length is pulled to learn its length. */
#define HEAD_DRAIN_MAX (1024u * 1024u)
/* Longest application message quoted in a log line. */
#define MAX_QUOTE 200

static void core_log(struct csgi__response *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
core_log(struct csgi__response *r, int level, const char *fmt, ...)
{
    char msg[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->ops->log(r->ctx, level, r->plugin ? r->plugin : "-", msg);
}

static void
app_enter(struct csgi__response *r, int on)
{
    if (r->ops->app_enter)
        r->ops->app_enter(r->ctx, on);
}

/* Record the first error; the response fails (and aborts once something was sent). */
static void
fail(struct csgi__response *r, int code)
{
    if (!r->error)
        r->error = code;
    if (r->state == CSGI__RESP_SENT)
        r->state = CSGI__RESP_ABORTED;
    else if (r->state != CSGI__RESP_ABORTED)
        r->state = CSGI__RESP_FAILED;
}

static void fail_log(struct csgi__response *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Log why the response fails, naming the error code, and record the failure. */
static void
fail_log(struct csgi__response *r, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    core_log(r, CSGI_LOG_ERROR, "%s (%s)", msg, csgi_err_name(code));
    fail(r, code);
}

static int
failed(const struct csgi__response *r)
{
    return r->state == CSGI__RESP_FAILED || r->state == CSGI__RESP_ABORTED;
}

static int
buf_append(struct csgi__response *r, const void *data, size_t len)
{
    if (len == 0)
        return CSGI_OK;
    if (r->buf_len + len > r->buf_cap) {
        size_t cap = r->buf_cap ? r->buf_cap : 4096;
        char *nb;

        while (cap < r->buf_len + len)
            cap *= 2;
        nb = realloc(r->buf, cap);
        if (!nb)
            return CSGI_ENOMEM;
        r->buf = nb;
        r->buf_cap = cap;
    }
    memcpy(r->buf + r->buf_len, data, len);
    r->buf_len += len;
    return CSGI_OK;
}

static int
quote_len(const struct csgi_exc_info *exc)
{
    if (!exc->message.ptr)
        return 0;
    return (int)(exc->message.len > MAX_QUOTE ? MAX_QUOTE : exc->message.len);
}

/* Copy the headers and their strings in one allocation, NUL-terminated. */
static struct csgi_header *
copy_headers(struct csgi__response *r, const struct csgi_header *headers, size_t n)
{
    size_t bytes = (n ? n : 1) * sizeof(struct csgi_header);
    struct csgi_header *copy;
    char *text;

    for (size_t i = 0; i < n; i++)
        bytes += headers[i].name.len + headers[i].value.len + 2;
    copy = r->ops->alloc(r->ctx, bytes);
    if (!copy)
        return NULL;
    text = (char *)(copy + (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        const struct csgi_str *name = &headers[i].name, *value = &headers[i].value;

        memcpy(text, name->ptr, name->len);
        text[name->len] = '\0';
        copy[i].name.ptr = text;
        copy[i].name.len = name->len;
        text += name->len + 1;
        if (value->len)
            memcpy(text, value->ptr, value->len);
        text[value->len] = '\0';
        copy[i].value.ptr = text;
        copy[i].value.len = value->len;
        text += value->len + 1;
    }
    return copy;
}

/*
 * The last response head this thread accepted. Applications send the same
 * status, reason and headers again and again, and csgi__check_response_head()
 * is a function of those bytes alone: a head equal to the memo is accepted
 * without checking it again (with the memo's Content-Length), and its copy
 * is made from the memo's image, which is laid out as that copy is: the
 * header array, then each name and value NUL-terminated. Heads too large for
 * the memo are always checked and copied header by header.
 */
#define MEMO_HEADERS 8
#define MEMO_TEXT    512
#define MEMO_REASON  64

struct head_memo {
    int status; /* 0: empty */
    /* Counts the heads stored: a copy made from the image names the one it holds. */
    uint64_t gen;
    size_t n_headers;
    size_t reason_len;
    int64_t length;
    size_t image_len;
    char reason[MEMO_REASON];
    union {
        /* The names and values point into text, after the array. */
        struct csgi_header hdr[MEMO_HEADERS];
        char bytes[MEMO_HEADERS * sizeof(struct csgi_header) + MEMO_TEXT];
    } image;
};

static _Thread_local struct head_memo head_memo;

/* The same bytes (a NULL pointer only matches an empty piece). */
static inline __attribute__((always_inline)) int
memo_piece(const struct csgi_str *memo, const struct csgi_str *s)
{
    return s->len == memo->len &&
           (!s->len || (s->ptr && csgi__bytes_eq(memo->ptr, s->ptr, s->len)));
}

static int
memo_match(int status, struct csgi_str reason, const struct csgi_header *headers, size_t n)
{
    const struct head_memo *m = &head_memo;

    if (m->status != status || m->n_headers != n || m->reason_len != reason.len || (n && !headers))
        return 0;
    if (reason.len && (!reason.ptr || !csgi__bytes_eq(m->reason, reason.ptr, reason.len)))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!memo_piece(&m->image.hdr[i].name, &headers[i].name) ||
            !memo_piece(&m->image.hdr[i].value, &headers[i].value))
            return 0;
    }
    return 1;
}

/*
 * The copy of a head that matched the memo: in r->head_copy when the
 * transport lent room and the image fits, else in request memory; the image
 * is copied whole and its pointers moved. (When an earlier request of this
 * response state copied the same generation into r->head_copy, the caller
 * uses that without a call.)
 */
static struct csgi_header *
memo_copy(struct csgi__response *r)
{
    const struct head_memo *m = &head_memo;
    size_t n = m->n_headers;
    struct csgi_header *copy;
    char *base;

    if (r->head_copy && m->image_len <= r->head_copy_size) {
        copy = r->head_copy;
        r->head_memo = NULL; /* until the copy is whole */
    } else {
        copy = r->ops->alloc(r->ctx, m->image_len ? m->image_len : sizeof(struct csgi_header));
        if (!copy)
            return NULL;
    }
    base = (char *)copy;
    memcpy(copy, m->image.bytes, m->image_len);
    for (size_t i = 0; i < n; i++) {
        copy[i].name.ptr = base + (m->image.hdr[i].name.ptr - m->image.bytes);
        copy[i].value.ptr = base + (m->image.hdr[i].value.ptr - m->image.bytes);
    }
    if (copy == r->head_copy) {
        r->head_memo = m;
        r->head_gen = m->gen;
    }
    return copy;
}

/* Put [p, p+n) and a NUL at *text; returns where it went. */
static const char *
memo_put(char **text, const char *p, size_t n)
{
    char *at = *text;

    if (n)
        memcpy(at, p, n);
    at[n] = '\0';
    *text += n + 1;
    return at;
}

/* Remember a head that passed the checks (when it fits). */
static void
memo_store(int status, struct csgi_str reason, const struct csgi_header *headers, size_t n,
           int64_t length)
{
    struct head_memo *m = &head_memo;
    size_t total = 0;
    char *text;

    m->status = 0; /* empty until complete, and left empty for a head that does not fit */
    if (n > MEMO_HEADERS || reason.len > MEMO_REASON)
        return;
    for (size_t i = 0; i < n; i++)
        total += headers[i].name.len + headers[i].value.len + 2;
    if (total > MEMO_TEXT)
        return;
    m->gen++; /* copies of the image being replaced are stale from here */
    m->n_headers = n;
    m->reason_len = reason.len;
    if (reason.len)
        memcpy(m->reason, reason.ptr, reason.len);
    text = m->image.bytes + n * sizeof(struct csgi_header);
    for (size_t i = 0; i < n; i++) {
        struct csgi_header *hd = &m->image.hdr[i];

        hd->name.ptr = memo_put(&text, headers[i].name.ptr, headers[i].name.len);
        hd->name.len = headers[i].name.len;
        hd->value.ptr = memo_put(&text, headers[i].value.ptr, headers[i].value.len);
        hd->value.len = headers[i].value.len;
    }
    m->image_len = (size_t)(text - m->image.bytes);
    m->length = length;
    m->status = status;
}

/*
 * A head the memo does not hold: checked, remembered, copied into *copy
 * (NULL when out of memory). Out of line, so that the memo's path (the
 * common one) has no room for the refusal's text on its stack.
 */
static __attribute__((noinline)) int
check_and_copy(struct csgi__response *r, int status, struct csgi_str reason,
               const struct csgi_header *headers, size_t n_headers, int64_t *length,
               struct csgi_header **copy)
{
    char why[300];
    int rc =
        csgi__check_response_head(status, reason, headers, n_headers, length, why, sizeof(why));

    if (rc < 0) {
        core_log(r, CSGI_LOG_ERROR, "start_response() refused: %s", why);
        return rc;
    }
    memo_store(status, reason, headers, n_headers, *length);
    *copy = head_memo.status ? memo_copy(r) : copy_headers(r, headers, n_headers);
    return 0;
}

uint64_t
csgi__response_head_key(const struct csgi__response *r)
{
    /* head_copy is written by memo_copy() alone, which names the generation it holds. */
    if (r->head_memo != &head_memo || !r->head_copy || r->headers != r->head_copy)
        return 0;
    return r->head_gen; /* from 1: memo_store() counts before it stores */
}

static int
core_start_response(void *ctx, int status, struct csgi_str reason,
                    const struct csgi_header *headers, size_t n_headers,
                    const struct csgi_exc_info *exc)
{
    struct csgi__response *r = ctx;
    struct csgi_header *copy;
    int64_t length;
    int rc;

    if (r->state == CSGI__RESP_ENDED || failed(r)) {
        core_log(r, CSGI_LOG_ERROR, "start_response() called after the response ended");
        return CSGI_ESTATE;
    }
    if (exc && exc->version < 1) {
        core_log(r, CSGI_LOG_ERROR, "start_response() with an exc_info of version 0");
        return CSGI_EINVAL;
    }
    if (exc && r->state == CSGI__RESP_SENT) {
        /* Too late to replace the response: it fails, even if the application goes on. */
        fail_log(r, CSGI_EHEADERS_SENT,
                 "start_response() with exc_info after the headers were sent (%s: %.*s)",
                 csgi_err_name(exc->code), quote_len(exc),
                 exc->message.ptr ? exc->message.ptr : "");
        return CSGI_EHEADERS_SENT;
    }
    if (!exc && r->state != CSGI__RESP_NEW) {
        core_log(r, CSGI_LOG_ERROR, "start_response() called a second time without exc_info");
        return CSGI_ESTATE;
    }
    if (memo_match(status, reason, headers, n_headers)) {
        length = head_memo.length;
        if (r->head_memo == &head_memo && r->head_gen == head_memo.gen)
            copy = r->head_copy; /* copied by an earlier request, and unchanged since */
        else
            copy = memo_copy(r);
    } else {
        rc = check_and_copy(r, status, reason, headers, n_headers, &length, &copy);
        if (rc < 0)
            return rc;
    }
    if (!copy)
        return CSGI_ENOMEM;
    if (exc)
        core_log(r, CSGI_LOG_ERROR, "application error %s, response replaced by %d: %.*s",
                 csgi_err_name(exc->code), status, quote_len(exc),
                 exc->message.ptr ? exc->message.ptr : "");
    r->status = status;
    r->headers = copy;
    r->n_headers = n_headers;
    r->declared = length;
    r->state = CSGI__RESP_STARTED;
    return CSGI_OK;
}

static int
core_write(void *ctx, const void *data, size_t len)
{
    struct csgi__response *r = ctx;

    if (failed(r))
        return r->error;
    if (r->in_next) {
        core_log(r, CSGI_LOG_ERROR, "write() called from inside next()");
        return CSGI_ESTATE;
    }
    if (!r->in_call || r->state == CSGI__RESP_ENDED) {
        core_log(r, CSGI_LOG_ERROR, "write() called after call() returned");
        return CSGI_ESTATE;
    }
    if (r->state == CSGI__RESP_NEW) {
        core_log(r, CSGI_LOG_ERROR, "write() called before start_response()");
        return CSGI_ESTATE;
    }
    if (len && !data)
        return CSGI_EINVAL;
    if (r->declared >= 0 && r->produced + len > (uint64_t)r->declared) {
        /* The write() counts as the first output: the failure aborts after what was held. */
        r->state = CSGI__RESP_SENT;
        fail_log(r, CSGI_ELENGTH, "write() past the declared Content-Length %lld",
                 (long long)r->declared);
        return CSGI_ELENGTH;
    }
    if (r->buf_len + len > r->write_limit) {
        r->state = CSGI__RESP_SENT;
        fail_log(r, CSGI_ETOOBIG, "write() output above %zu bytes held before call() returned",
                 r->write_limit);
        return CSGI_ETOOBIG;
    }
    if (buf_append(r, data, len) < 0) {
        fail(r, CSGI_ENOMEM);
        return CSGI_ENOMEM;
    }
    r->state = CSGI__RESP_SENT;
    r->produced += len;
    return CSGI_OK;
}

void
csgi__response_init(struct csgi__response *r, const struct csgi__host_ops *ops, void *ctx,
                    unsigned flags, size_t write_limit)
{
    memset(r, 0, sizeof(*r));
    r->ops = ops;
    r->ctx = ctx;
    r->flags = flags;
    r->declared = -1;
    r->length = -1;
    r->write_limit = write_limit ? write_limit : CSGI__WRITE_LIMIT;
    r->responder.version = CSGI_RESPONDER_VERSION;
    r->responder.ctx = r;
    r->responder.start_response = core_start_response;
    r->responder.write = core_write;
}

/* The result of call() when it is not a plain CSGI_OK with a valid body (see core.h). */
int
csgi__response_called_other(struct csgi__response *r, int rc)
{
    r->in_call = 0;
    if (rc == CSGI_EDECLINED && r->state == CSGI__RESP_NEW)
        return 1;
    if (rc == CSGI_EDECLINED) {
        fail_log(r, CSGI_ESTATE, "declined after start_response()");
    } else if (rc < 0) {
        core_log(r, CSGI_LOG_ERROR, "call() failed: %s (%s)", csgi_strerror(rc), csgi_err_name(rc));
        fail(r, rc);
    } else if (rc == CSGI_PENDING && !r->may_wait) {
        r->body_open = 1; /* the body is the server's to close, as after CSGI_OK */
        fail_log(r, CSGI_EAPP,
                 "call() returned CSGI_PENDING, but the plugin does not declare "
                 "CSGI_PLUGIN_WAITS");
    } else if (rc == CSGI_PENDING) {
        /* As CSGI_OK, but the body waits for resume() before its first next(). */
        r->body_open = 1;
        r->wait_call = 1;
        if (r->body.total_length < -1) {
            fail_log(r, CSGI_EAPP, "body total_length %lld is invalid",
                     (long long)r->body.total_length);
        }
    } else if (rc != CSGI_OK) {
        fail_log(r, CSGI_EAPP, "call() returned %d, not a CSGI result", rc);
    } else {
        r->body_open = 1;
        if (r->body.total_length < -1) {
            fail_log(r, CSGI_EAPP, "body total_length %lld is invalid",
                     (long long)r->body.total_length);
        }
    }
    return 0;
}

/*
 * Ask the body for its next non-empty chunk, into r->pending. Returns
 * CSGI_OK, CSGI_DONE, or an error (logged; the response failed).
 */
static int
pull(struct csgi__response *r)
{
    unsigned empty = 0;

    for (;;) {
        int rc;

        r->pending.ptr = NULL;
        r->pending.len = 0;
        r->pending_off = 0;
        if (r->body_done || !r->body_open || !r->body.next) {
            r->body_done = 1;
            return CSGI_DONE;
        }
        /* A resume() from now on is for this next(): it is not lost if next() says pending. */
        if (atomic_load_explicit(&r->wake, memory_order_relaxed) & CSGI__WAKE_WOKEN)
            atomic_fetch_and(&r->wake, ~(unsigned)CSGI__WAKE_WOKEN);
        r->in_next = 1;
        app_enter(r, 1);
        rc = r->body.next(r->body.ctx, &r->pending);
        app_enter(r, 0);
        r->in_next = 0;
        if (rc == CSGI_PENDING && r->may_wait) {
            r->pending.len = 0;
            return CSGI_PENDING;
        }
        if (rc == CSGI_PENDING) {
            r->pending.len = 0;
            core_log(r, CSGI_LOG_ERROR,
                     "body next() returned CSGI_PENDING after %llu bytes, but the plugin does not "
                     "declare CSGI_PLUGIN_WAITS",
                     (unsigned long long)r->produced);
            fail(r, CSGI_EAPP);
            return CSGI_EAPP;
        }
        if (rc == CSGI_DONE) {
            r->pending.len = 0;
            r->body_done = 1;
            return CSGI_DONE;
        }
        if (rc != CSGI_OK) {
            r->pending.len = 0;
            if (rc < 0) {
                core_log(r, CSGI_LOG_ERROR, "body next() failed after %llu bytes: %s (%s)",
                         (unsigned long long)r->produced, csgi_strerror(rc), csgi_err_name(rc));
            } else {
                core_log(r, CSGI_LOG_ERROR, "body next() returned %d, not a CSGI result", rc);
                rc = CSGI_EAPP;
            }
            fail(r, rc);
            return rc;
        }
        if (r->pending.len && !r->pending.ptr) {
            fail_log(r, CSGI_EINVAL, "body chunk of %zu bytes has a NULL pointer", r->pending.len);
            r->pending.len = 0;
            return CSGI_EINVAL;
        }
        if (r->pending.len == 0) {
            if (++empty < MAX_EMPTY_CHUNKS)
                continue;
            fail_log(r, CSGI_EAPP, "body yields only empty chunks");
            return CSGI_EAPP;
        }
        if (failed(r)) {
            /* exc_info refused inside this next(): its chunk is not part of the output. */
            r->pending.len = 0;
            return r->error;
        }
        if (r->state == CSGI__RESP_NEW) {
            fail_log(r, CSGI_ESTATE, "body produced data without start_response()");
            r->pending.len = 0;
            return CSGI_ESTATE;
        }
        r->state = CSGI__RESP_SENT;
        if (r->length >= 0 && r->produced + r->pending.len > (uint64_t)r->length) {
            fail_log(r, CSGI_ELENGTH, "body longer than its declared %lld bytes",
                     (long long)r->length);
            r->pending.len = 0;
            return CSGI_ELENGTH;
        }
        r->produced += r->pending.len;
        return CSGI_OK;
    }
}

/* The length the wire announces: the declared one, else what total_length implies. */
static void
settle_length(struct csgi__response *r)
{
    /* Called before any chunk joins r->buf: it holds write() output only. */
    r->length = r->declared;
    if (r->length < 0 && r->body.total_length >= 0)
        r->length = (int64_t)r->buf_len + r->body.total_length;
}

size_t
csgi__error_page(int status, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%d %s\n", status, csgi__status_reason(status));

    return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

/* The host's own answer: a short text page, nothing of the application's. */
static void
plan_error(struct csgi__response *r, struct csgi__plan *plan, int status)
{
    char *page = r->ops->alloc(r->ctx, CSGI__ERROR_PAGE_MAX);

    csgi__response_close(r);
    plan->kind = CSGI__PLAN_ERROR;
    plan->status = status;
    plan->framing = CSGI__FRAMING_LENGTH;
    plan->data = page;
    plan->len = page ? csgi__error_page(status, page, CSGI__ERROR_PAGE_MAX) : 0;
    plan->length = (int64_t)plan->len;
}

/*
 * The framing of a response of @p length bytes (-1: unknown): Content-Length,
 * else chunked on HTTP/1.1 and the connection's close on HTTP/1.0 (what
 * libmicrohttpd chooses too: setup_reply_properties(), 0.9.75 and 1.0.1).
 * A HEAD response's headers say what the GET's would.
 */
static enum csgi__framing
framing_for(const struct csgi__response *r, int64_t length)
{
    if (length >= 0)
        return CSGI__FRAMING_LENGTH;
    return (r->flags & CSGI__RESP_HTTP10) ? CSGI__FRAMING_CLOSE : CSGI__FRAMING_CHUNKED;
}

static void
plan_stream(struct csgi__response *r, struct csgi__plan *plan)
{
    plan->kind = CSGI__PLAN_STREAM;
    plan->length = r->length;
    plan->framing = framing_for(r, r->length);
}

/* A file body not yet read goes out as a file range (sendfile), checked first. */
static int
plan_file(struct csgi__response *r, struct csgi__plan *plan)
{
    struct csgi__file_body *fb;
    struct stat st;
    int fd;

    if (!(r->body.flags & CSGI_BODY_FILE))
        return 0; /* the test csgi__file_body_of() starts with, without the call */
    fb = csgi__file_body_of(&r->body);
    if (!fb || r->state != CSGI__RESP_STARTED || r->buf_len || fb->remaining < 0)
        return 0;
    if (r->declared >= 0 && r->declared != fb->remaining) {
        fail_log(r, CSGI_ELENGTH, "Content-Length %lld differs from the file body's %lld bytes",
                 (long long)r->declared, (long long)fb->remaining);
        plan_error(r, plan, 500);
        return 1;
    }
    if (fstat(fb->fd, &st) == 0 && S_ISREG(st.st_mode) &&
        fb->offset + fb->remaining > (int64_t)st.st_size) {
        fail_log(r, CSGI_ELENGTH,
                 "file body of %lld bytes from offset %lld is past the end of its %lld-byte file",
                 (long long)fb->remaining, (long long)fb->offset, (long long)st.st_size);
        plan_error(r, plan, 500);
        return 1;
    }
    fd = fb->close_fd ? fb->fd : dup(fb->fd);
    if (fd < 0)
        return 0; /* pulled like any body */
    if (fb->close_fd)
        fb->fd = -1; /* the transport's now */
    plan->kind = CSGI__PLAN_FILE;
    plan->fd = fd;
    plan->offset = fb->offset;
    plan->length = fb->remaining;
    plan->framing = CSGI__FRAMING_LENGTH;
    r->length = fb->remaining;
    r->produced = (uint64_t)fb->remaining;
    r->state = CSGI__RESP_ENDED;
    csgi__response_close(r);
    return 1;
}

/* Everything in hand: r->buf (or the pending chunk alone, without a copy). */
static void
plan_buffer(struct csgi__response *r, struct csgi__plan *plan, int from_pending)
{
    plan->kind = CSGI__PLAN_BUFFER;
    plan->framing = CSGI__FRAMING_LENGTH;
    if (from_pending) {
        plan->data = r->pending.ptr;
        plan->len = r->pending.len;
    } else {
        plan->data = r->buf;
        plan->len = r->buf_len;
    }
    plan->length = (int64_t)plan->len;
    r->length = plan->length;
    r->delivered = plan->len;
    r->state = CSGI__RESP_ENDED;
}

/*
 * HEAD: the body is pulled and counted, never sent, so that the headers
 * carry the length a GET would have. A body that does not end within
 * HEAD_DRAIN_MAX bytes (an event stream, say) is cut off: the headers then
 * go out close-delimited.
 */
static void
plan_head(struct csgi__response *r, struct csgi__plan *plan)
{
    int64_t length = r->length;

    plan->kind = CSGI__PLAN_BUFFER;
    plan->data = NULL;
    plan->len = 0;
    if (length < 0 && csgi__response_drain(r, HEAD_DRAIN_MAX) < 0) {
        plan_error(r, plan, 500);
        return;
    }
    if (length < 0 && r->body_done)
        length = (int64_t)r->produced;
    plan->length = length;
    plan->framing = framing_for(r, length);
    r->length = length;
    r->state = CSGI__RESP_ENDED;
}

/*
 * A 101 (SPEC 4.15): only with upgrade(), without a body, not waiting. The
 * body is asked once: it must be empty. Returns 1 when planned (or failed).
 */
static int
plan_upgrade(struct csgi__response *r, struct csgi__plan *plan)
{
    int rc;

    if (!r->upgrade) {
        fail_log(r, CSGI_ESTATUS, "status 101 without upgrade()");
        plan_error(r, plan, 500);
        return 1;
    }
    if (r->status != 101 || r->state == CSGI__RESP_NEW) {
        fail_log(r, CSGI_ESTATE, "upgrade() without start_response() of status 101");
        plan_error(r, plan, 500);
        return 1;
    }
    if (r->wait_call) {
        fail_log(r, CSGI_ESTATE, "a 101 cannot wait: call() returned CSGI_PENDING");
        plan_error(r, plan, 500);
        return 1;
    }
    rc = r->produced ? CSGI_OK : pull(r);
    if (rc != CSGI_DONE || r->produced) {
        if (rc == CSGI_OK || rc == CSGI_PENDING || r->produced)
            fail_log(r, CSGI_ESTATE, "a 101 has no body");
        plan_error(r, plan, 500);
        return 1;
    }
    csgi__response_close(r);
    r->state = CSGI__RESP_ENDED;
    plan->kind = CSGI__PLAN_UPGRADE;
    plan->status = 101;
    plan->framing = CSGI__FRAMING_NONE;
    plan->length = 0;
    return 1;
}

static void plan_response(struct csgi__response *r, int declined, struct csgi__plan *plan);

void
csgi__response_plan(struct csgi__response *r, int declined, struct csgi__plan *plan)
{
    plan_response(r, declined, plan);
    /* An upgrade that will not happen: the application hears of it once. */
    if (__builtin_expect(r->upgrade != NULL, 0) && plan->kind != CSGI__PLAN_UPGRADE &&
        plan->kind != CSGI__PLAN_WAIT)
        csgi__upgrade_end(r->upgrade, CSGI_FINISH_ERROR);
}

static void
plan_response(struct csgi__response *r, int declined, struct csgi__plan *plan)
{
    int rc;

    memset(plan, 0, sizeof(*plan));
    plan->fd = -1;
    plan->length = -1;
    if (declined) {
        plan_error(r, plan, 404);
        return;
    }
    if (r->state == CSGI__RESP_FAILED) {
        plan_error(r, plan, 500);
        return;
    }
    plan->status = r->status;
    if ((r->flags & CSGI__RESP_HEAD) && r->state == CSGI__RESP_ABORTED) {
        plan_error(r, plan, 500);
        return;
    }
    if (__builtin_expect(r->upgrade != NULL || r->status == 101, 0) && !declined &&
        r->state != CSGI__RESP_ABORTED && plan_upgrade(r, plan))
        return;
    if (r->wait_call) {
        if (!(atomic_load(&r->wake) & CSGI__WAKE_WOKEN)) {
            plan->kind = CSGI__PLAN_WAIT;
            return;
        }
        r->wait_call = 0;
    }
    if (r->state != CSGI__RESP_ABORTED && plan_file(r, plan))
        return;
    if (r->state == CSGI__RESP_ABORTED) {
        /* write() output, then a failure: send what was produced, then abort. */
        settle_length(r);
        plan_stream(r, plan);
        return;
    }
    rc = pull(r);
    if (rc == CSGI_PENDING) {
        /* Nothing to plan with yet, not even a status, perhaps: wait for resume(). */
        plan->kind = CSGI__PLAN_WAIT;
        return;
    }
    if (r->state == CSGI__RESP_FAILED || r->state == CSGI__RESP_NEW) {
        if (r->state == CSGI__RESP_NEW) {
            fail_log(r, CSGI_ESTATE, "body ended without start_response()");
        }
        plan_error(r, plan, 500);
        return;
    }
    plan->status = r->status;
    settle_length(r);
    if (r->length >= 0 && r->produced > (uint64_t)r->length) {
        fail_log(r, CSGI_ELENGTH, "body longer than its declared %lld bytes", (long long)r->length);
        r->pending.len = 0;
    }
    if (r->flags & CSGI__RESP_HEAD) {
        if (r->state == CSGI__RESP_ABORTED)
            plan_error(r, plan, 500);
        else
            plan_head(r, plan);
        return;
    }
    if (rc == CSGI_DONE && r->state != CSGI__RESP_ABORTED &&
        (r->length < 0 || r->produced == (uint64_t)r->length)) {
        plan_buffer(r, plan, 0);
        return;
    }
    if (rc == CSGI_OK && r->buf_len == 0 && r->length >= 0 &&
        r->pending.len == (uint64_t)r->length) {
        /* The declared length in one chunk: sent as it is, and the body is complete. */
        plan_buffer(r, plan, 1);
        return;
    }
    /*
     * Unknown length: stream from the first chunk. There is no look-ahead
     * next(): it could wait (an event stream), holding back a chunk already
     * produced. A body of one chunk declares total_length to get a length.
     */
    plan_stream(r, plan);
}

int64_t
csgi__response_read(struct csgi__response *r, void *out, size_t max)
{
    size_t n = 0;

    if (r->length >= 0 && r->delivered + max > (uint64_t)r->length)
        max = (size_t)((uint64_t)r->length - r->delivered);
    while (n < max) {
        size_t take;

        if (r->buf_off < r->buf_len) {
            take = r->buf_len - r->buf_off;
            take = take > max - n ? max - n : take;
            memcpy((char *)out + n, r->buf + r->buf_off, take);
            r->buf_off += take;
            n += take;
            continue;
        }
        if (r->pending_off < r->pending.len) {
            take = r->pending.len - r->pending_off;
            take = take > max - n ? max - n : take;
            memcpy((char *)out + n, (const char *)r->pending.ptr + r->pending_off, take);
            r->pending_off += take;
            n += take;
            continue;
        }
        /* Never wait for more once something is in hand: it goes out now. */
        if (n > 0 || failed(r) || r->body_done || r->state == CSGI__RESP_ENDED)
            break;
        if (r->length >= 0 && r->delivered == (uint64_t)r->length)
            break;
        if (pull(r) == CSGI_PENDING)
            return CSGI__READ_PENDING;
    }
    r->delivered += n;
    if (n > 0)
        return (int64_t)n;
    if (failed(r))
        return r->error ? r->error : CSGI_EAPP;
    if (r->length >= 0 && r->delivered < (uint64_t)r->length) {
        fail_log(r, CSGI_ELENGTH, "body ended after %llu of its declared %lld bytes",
                 (unsigned long long)r->delivered, (long long)r->length);
        return CSGI_ELENGTH;
    }
    r->state = CSGI__RESP_ENDED;
    return 0;
}

int
csgi__response_drain(struct csgi__response *r, uint64_t max)
{
    uint64_t start = r->produced;

    r->buf_off = r->buf_len;
    r->pending_off = r->pending.len;
    while (!failed(r) && !r->body_done && r->produced - start < max &&
           (r->length < 0 || r->produced < (uint64_t)r->length)) {
        int rc = pull(r);

        if (rc == CSGI_PENDING)
            break; /* a body that waits is cut off here, as one too long */
        if (rc == CSGI_OK)
            r->pending_off = r->pending.len;
    }
    return failed(r) ? r->error : CSGI_OK;
}

/* The body is open: close it (see csgi__response_close() in core.h). */
int
csgi__response_stop(struct csgi__response *r)
{
    if (r->length >= 0)
        return CSGI_ECONNRESET;
    r->body_done = 1;
    r->state = CSGI__RESP_ENDED;
    return 0;
}

int
csgi__response_park(struct csgi__response *r)
{
    unsigned v = atomic_load(&r->wake);

    for (;;) {
        if (v & CSGI__WAKE_WOKEN)
            return 0;
        if (atomic_compare_exchange_weak(&r->wake, &v, v | CSGI__WAKE_PARKED))
            return 1;
    }
}

int
csgi__response_resume(struct csgi__response *r)
{
    unsigned v = atomic_load(&r->wake);

    for (;;) {
        if (v & CSGI__WAKE_CLOSED)
            return CSGI_ESTATE;
        if (atomic_compare_exchange_weak(&r->wake, &v,
                                         (v | CSGI__WAKE_WOKEN) & ~(unsigned)CSGI__WAKE_PARKED))
            return (v & CSGI__WAKE_PARKED) ? 1 : 0;
    }
}

void
csgi__response_close_body(struct csgi__response *r)
{
    atomic_fetch_or(&r->wake, CSGI__WAKE_CLOSED);
    r->body_open = 0;
    if (r->body.close) {
        app_enter(r, 1);
        r->body.close(r->body.ctx);
        app_enter(r, 0);
    }
}

int
csgi__response_finish_reason(const struct csgi__response *r, int transport_reason)
{
    if (transport_reason == CSGI_FINISH_CLIENT_ABORT)
        return CSGI_FINISH_CLIENT_ABORT;
    if (r->error)
        return CSGI_FINISH_ERROR;
    return transport_reason;
}

void
csgi__response_free(struct csgi__response *r)
{
    free(r->buf);
    r->buf = NULL;
    r->buf_cap = r->buf_len = r->buf_off = 0;
}
