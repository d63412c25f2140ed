/*
 * The CSGI host core: every rule of the gateway that does not depend on the
 * HTTP library, written once. csgi-server's libmicrohttpd adapter and the
 * in-process test client are its two transports; neither re-implements a
 * rule. Internal: not installed, not ABI; symbols are csgi__*.
 *
 * A transport owns the request (memory, connection, logging) and embeds one
 * struct csgi__response per request. It hands the application the
 * responder made by csgi__response_init(), and after call() returns it asks
 * the core for a plan (csgi__response_plan()): how the body is framed, and
 * whether it is in hand already, a file, or to be pulled with
 * csgi__response_read() as the connection can take it.
 */
#ifndef CSGI_CORE_H
#define CSGI_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <csgi/csgi.h>

/* What the core needs from its transport, for one request. */
struct csgi__host_ops {
    /* Request-lifetime memory (valid until the request is finished). NULL on failure. */
    void *(*alloc)(void *ctx, size_t n);
    /*
     * Log one line about this request and @p plugin (the application's name,
     * "-" before any); the transport adds its context (request id...).
     */
    void (*log)(void *ctx, int level, const char *plugin, const char *msg);
    /*
     * Enter (on = 1) or leave (on = 0) the application's code: a transport
     * serializes plugins that are not thread-safe and times calls for its
     * watchdog here. May be NULL.
     */
    void (*app_enter)(void *ctx, int on);
};

/* The response's state: exactly one at a time. */
enum csgi__resp_state {
    CSGI__RESP_NEW = 0, /* start_response() not called yet */
    CSGI__RESP_STARTED, /* status and headers set, nothing counted as sent */
    CSGI__RESP_SENT,    /* headers count as sent: first write() or non-empty chunk */
    CSGI__RESP_ENDED,   /* the body ended and matched its length */
    CSGI__RESP_FAILED,  /* an error before anything counted as sent: the answer is a 500 */
    CSGI__RESP_ABORTED  /* an error after the headers counted as sent: what was produced
                           before it goes out, then the connection is aborted */
};

/* How the body is delimited on the wire (values match enum csgi_test_framing). */
enum csgi__framing {
    CSGI__FRAMING_NONE = 0,
    CSGI__FRAMING_LENGTH = 1,
    CSGI__FRAMING_CHUNKED = 2,
    CSGI__FRAMING_CLOSE = 3
};

/* What the transport does once call() has returned. */
enum csgi__plan_kind {
    /*
     * Nothing of the application's was sent: answer plan.status (500, or 404
     * when every mount declined) with the error page in plan.data/plan.len
     * (Content-Type CSGI__ERROR_CONTENT_TYPE).
     */
    CSGI__PLAN_ERROR = 0,
    /* The whole body is in hand: plan.data/plan.len, sent with Content-Length. */
    CSGI__PLAN_BUFFER,
    /* A file range for sendfile(): plan.fd from plan.offset, plan.length bytes. */
    CSGI__PLAN_FILE,
    /* Pull with csgi__response_read(): plan.length bytes, or -1 when unknown. */
    CSGI__PLAN_STREAM,
    /*
     * Nothing to send yet: call() or the first next() returned CSGI_PENDING
     * (SPEC 4.14). The transport parks the request (csgi__response_park())
     * and, once woken, asks for the plan again.
     */
    CSGI__PLAN_WAIT,
    /*
     * A 101 for a request whose application called upgrade() (SPEC 4.15):
     * send the head without a body, then hand the connection to the core's
     * upgrade state (csgi__upgrade_start()).
     */
    CSGI__PLAN_UPGRADE
};

struct csgi__plan {
    enum csgi__plan_kind kind;
    int status;
    enum csgi__framing framing;
    /* Body length for Content-Length, or -1 (chunked or close-delimited). */
    int64_t length;
    /* CSGI__PLAN_BUFFER: the body; borrowed, valid until csgi__response_close(). */
    const void *data;
    size_t len;
    /* CSGI__PLAN_FILE: the descriptor is the transport's to close from now on. */
    int fd;
    int64_t offset;
};

/* Flags for csgi__response_init(). */
enum csgi__resp_flags {
    CSGI__RESP_HEAD = 1u << 0,  /* the request is HEAD: no body bytes go out */
    CSGI__RESP_HTTP10 = 1u << 1 /* HTTP/1.0: unknown lengths are close-delimited */
};

/*
 * Bytes a transport may lend a response state for copies of the response
 * head (csgi__response_head_room()).
 */
#define CSGI__HEAD_COPY 384

/* Per-request response state; embedded in the transport's request. */
struct csgi__response {
    /* Per request: csgi__response_reset() clears every field up to ops. */
    enum csgi__resp_state state;
    unsigned flags;
    int in_next;
    int in_call;
    /* The first error (a CSGI_E* code), 0 while none. */
    int error;
    /* An error that waits until the output produced before it is sent. */
    int deferred_error;
    int status;
    struct csgi_header *headers;
    size_t n_headers;
    /* Content-Length given to start_response(), or -1. */
    int64_t declared;
    /* The body the application returned, and whether close() is still owed. */
    struct csgi_body body;
    int body_open;
    int body_done;
    /* write() output and look-ahead bytes, sent before the pending chunk. */
    char *buf;
    size_t buf_len, buf_cap, buf_off;
    struct csgi_chunk pending;
    size_t pending_off;
    /* Body bytes produced (write() and chunks), and bytes handed to the transport. */
    uint64_t produced;
    uint64_t delivered;
    /* The length the wire announces (Content-Length), or -1. */
    int64_t length;
    /* call() returned CSGI_PENDING and no resume() has come since. */
    int wait_call;
    /* The plugin declared CSGI_PLUGIN_WAITS: CSGI_PENDING is a result, else a failure. */
    int may_wait;
    /* resume() and the wait it ends: enum csgi__wake bits, changed from any thread. */
    _Atomic unsigned wake;
    /* The connection upgrade() asked for (SPEC 4.15), in request memory; NULL: none. */
    struct csgi_upgrade *upgrade;
    const char *plugin;
    /*
     * Set by csgi__response_init() and kept by csgi__response_reset(), except
     * ops, which a transport may switch per call() (csgi__response_begin()).
     */
    const struct csgi__host_ops *ops;
    void *ctx;
    size_t write_limit;
    struct csgi_responder responder;
    /*
     * Room the transport lent (csgi__response_head_room(); NULL: none) for a
     * copy of the head in the thread's start_response() memo (response.c).
     * When an earlier request that used this response state on the same
     * thread copied the head the next one sends, headers points here and
     * nothing is copied. head_memo and head_gen name the memo and the
     * generation it holds (head_memo NULL: none). Without room a head is
     * copied into request memory each time.
     */
    struct csgi_header *head_copy;
    size_t head_copy_size;
    const void *head_memo;
    uint64_t head_gen;
};

/*
 * Lend @p r, set up by csgi__response_init(), @p size bytes at @p room
 * (aligned for struct csgi_header, for as long as @p r is used) for copies
 * of the response head: a transport that reuses one response state for the
 * requests of a thread gives it room, and a head the thread sent before then
 * costs no copy. A response state per waiting request (SPEC 4.14) is better
 * without: its head is copied once, into request memory, at its size.
 */
static inline void
csgi__response_head_room(struct csgi__response *r, void *room, size_t size)
{
    r->head_copy = room;
    r->head_copy_size = room ? size : 0;
    r->head_memo = NULL;
}

/* The host's error pages: "500 Internal Server Error\n", as text. */
#define CSGI__ERROR_CONTENT_TYPE "text/plain; charset=utf-8"
#define CSGI__ERROR_PAGE_MAX     64

/* Write the error page of @p status into @p buf; returns its length (0 if it does not fit). */
size_t csgi__error_page(int status, char *buf, size_t size);

/* The default bound on write() output held before call() returns (SPEC 4.8). */
#define CSGI__WRITE_LIMIT (16u * 1024u * 1024u)

/*
 * Set up @p r for one request and fill r->responder, the table handed to
 * call(). @p write_limit bounds write() output held by the host (0: default).
 */
void csgi__response_init(struct csgi__response *r, const struct csgi__host_ops *ops, void *ctx,
                         unsigned flags, size_t write_limit);

/*
 * memset(p, 0, n), in pieces of 64 bytes: for a constant n that is inlined
 * as 16-byte stores, where GCC 12 (x86-64) makes a memset() of more than 64
 * bytes "rep stosq", one instruction per 8 bytes. For the per-request clears.
 */
static inline __attribute__((always_inline)) void
csgi__zero(void *p, size_t n)
{
    char *c = p;
    size_t off = 0;

    for (; off + 64 <= n; off += 64)
        memset(c + off, 0, 64);
    if (off < n)
        memset(c + off, 0, n - off);
}

/* memcpy(dst, src, n) in pieces of 32 bytes, for the same reason as csgi__zero(). */
static inline __attribute__((always_inline)) void
csgi__copy(void *dst, const void *src, size_t n)
{
    char *d = dst;
    const char *s = src;
    size_t off = 0;

    for (; off + 32 <= n; off += 32)
        memcpy(d + off, s + off, 32);
    if (off < n)
        memcpy(d + off, s + off, n - off);
}

/*
 * Set up @p r, initialised before and released since (csgi__response_free()
 * after any write() output), for its transport's next request: what
 * csgi__response_init() does, without refilling the parts that do not change
 * from one request to the next (ops, ctx, the write() bound and the responder).
 */
static inline void
csgi__response_reset(struct csgi__response *r, unsigned flags)
{
    csgi__zero(r, offsetof(struct csgi__response, ops));
    r->flags = flags;
    r->declared = -1;
    r->length = -1;
}

/*
 * Before each call() (one per mount tried): name the plugin for log lines
 * and reset the body the application fills; @p plugin_flags are the
 * plugin's descriptor flags as mounted (csgi__wrapped_flags(), plugin_check.h). Returns the
 * body to pass. Inline, as csgi__response_called() below: both run on every
 * request.
 */
static inline struct csgi_body *
csgi__response_begin(struct csgi__response *r, const char *plugin, uint32_t plugin_flags)
{
    r->plugin = plugin;
    r->may_wait = (plugin_flags & CSGI_PLUGIN_WAITS) != 0;
    memset(&r->body, 0, sizeof(r->body));
    r->body.version = CSGI_BODY_VERSION;
    r->body.total_length = -1;
    r->in_call = 1;
    return &r->body;
}

/* csgi__response_called() for every result but a plain CSGI_OK with a valid body. */
int csgi__response_called_other(struct csgi__response *r, int rc);

/*
 * call() returned @p rc. Returns 1 when the application declined cleanly
 * and the next mount may be tried, 0 otherwise (the result is recorded).
 */
static inline int
csgi__response_called(struct csgi__response *r, int rc)
{
    if (rc != CSGI_OK || r->body.total_length < -1)
        return csgi__response_called_other(r, rc);
    r->in_call = 0;
    r->body_open = 1;
    return 0;
}

/*
 * Decide what goes out: pulls the first chunk (and one more, to see whether
 * a body of unknown length is a single chunk), checks lengths and builds
 * @p plan. When no mount answered, @p declined is 1 and the plan is a 404.
 * Call once, after the last call(), and again after each CSGI__PLAN_WAIT
 * once the request is woken.
 */
void csgi__response_plan(struct csgi__response *r, int declined, struct csgi__plan *plan);

/*
 * Which head the response sends, as a key a transport may cache what it built
 * from it under: nonzero when the head (status, reason and headers) is a copy
 * of the calling thread's start_response() memo, and then the same value for
 * the same bytes and no other on this thread; 0 for a head the memo does not
 * hold (too large, or started on another thread).
 */
uint64_t csgi__response_head_key(const struct csgi__response *r);

/*
 * Pull body bytes into [buf, buf+max): what is already in hand, else one
 * next(). Never waits for more once it has a byte, so each chunk goes out
 * when the application produces it.
 * Returns the byte count (> 0), 0 at the end of a body that matched its
 * length, CSGI__READ_PENDING when next() said CSGI_PENDING, or a negative
 * CSGI_E* code when the response failed (logged): the transport then aborts
 * the connection.
 */
int64_t csgi__response_read(struct csgi__response *r, void *buf, size_t max);

/*
 * Pull up to @p max more body bytes (or to the end, or to the declared
 * length) and discard them. Returns 0 or the response's error.
 */
int csgi__response_drain(struct csgi__response *r, uint64_t max);

/*
 * csgi__response_read()'s result when the body's next() returned
 * CSGI_PENDING and nothing is in hand: park the request (SPEC 4.14).
 */
#define CSGI__READ_PENDING (-3000)

/* The bits of csgi__response.wake. */
enum csgi__wake {
    CSGI__WAKE_WOKEN = 1u << 0,  /* resume() came since the last next() began */
    CSGI__WAKE_PARKED = 1u << 1, /* the transport parked the request: resume() wakes it */
    CSGI__WAKE_CLOSED = 1u << 2  /* the body is closed: resume() is refused */
};

/*
 * The transport is about to wait for resume() (after CSGI__PLAN_WAIT or
 * CSGI__READ_PENDING). Returns 1: parked, and the resume() that ends the
 * wait returns 1 to its caller, which wakes the transport; 0: a resume()
 * came already, go on at once. Call it and the transport's own suspend under
 * the lock csgi__response_resume()'s caller holds while it wakes the
 * transport, so that a wake never comes before the suspend.
 */
int csgi__response_park(struct csgi__response *r);

/*
 * csgi_host_api.resume(), from any thread. Returns 1 when the request was
 * parked (the caller wakes its transport; the request is no longer
 * parked), 0 when it was not (the next wait ends at once), CSGI_ESTATE once
 * the body is closed.
 */
int csgi__response_resume(struct csgi__response *r);

/*
 * The host ends a body that waits (its worker stops): one of unknown length
 * ends here (returns 0, the transport ends the response as complete), one
 * of known length cannot (returns CSGI_ECONNRESET, the transport aborts).
 */
int csgi__response_stop(struct csgi__response *r);

/* csgi__response_close() when the body is still open. */
void csgi__response_close_body(struct csgi__response *r);

/*
 * Close the application's body: exactly once, whatever happened. Idempotent.
 * Inline: every request ends here, most of them with the body closed already
 * or without a close().
 */
static inline void
csgi__response_close(struct csgi__response *r)
{
    if (r->body_open)
        csgi__response_close_body(r);
}

/*
 * The reason for on_finished callbacks: @p transport_reason is the
 * transport's view (CSGI_FINISH_OK, CLIENT_ABORT, TIMEOUT, SHUTDOWN); a
 * client abort wins, then an application or host error.
 */
int csgi__response_finish_reason(const struct csgi__response *r, int transport_reason);

/* Release the core's own memory (not the arena). */
void csgi__response_free(struct csgi__response *r);

/* ------------------------------------------------------------------ */
/* Host services shared by both transports                             */
/* ------------------------------------------------------------------ */

/* csgi_host_api.header_get over env->headers. */
int csgi__header_get(const struct csgi_environ *env, const char *name, size_t index,
                     struct csgi_str *value);

/*
 * csgi_host_api.request_url: scheme://host[:port]/quoted(script_name +
 * path_info)[?query] into memory from @p alloc(@p ctx, n).
 */
int csgi__request_url(const struct csgi_environ *env, void *(*alloc)(void *ctx, size_t n),
                      void *ctx, struct csgi_str *out);

/* A file body made by csgi__body_from_fd(). */
struct csgi__file_body {
    uint32_t magic;
    struct csgi__file_body *next; /* every file body of the request */
    int fd;
    int close_fd;
    int64_t offset;
    int64_t remaining;
    char buf[16384];
};

/*
 * csgi_host_api.body_from_fd: a file body in memory from @p alloc, linked
 * into *@p list so that csgi__file_bodies_release() closes descriptors whose
 * body never ran. With CSGI_FD_CLOSE the descriptor is the host's from the
 * call on, also when this fails.
 */
int csgi__body_from_fd(void *(*alloc)(void *ctx, size_t n), void *ctx,
                       struct csgi__file_body **list, int fd, int64_t offset, int64_t count,
                       uint32_t flags, struct csgi_body *out);

/*
 * csgi_host_api.body_from_buffer: a one-chunk body of [data, data+len) with
 * total_length len; its state (and, without CSGI_BUF_BORROW, the copy of the
 * bytes) in memory from @p alloc.
 */
int csgi__body_from_buffer(void *(*alloc)(void *ctx, size_t n), void *ctx, const void *data,
                           size_t len, uint32_t flags, struct csgi_body *out);

/* Characters of a request id (csgi_environ.request_id): 32 lower-case hex digits. */
#define CSGI__REQUEST_ID_LEN 32

/*
 * The 8 hex digits of @p v, most significant first, as the bytes of a
 * little-endian uint64_t: each nibble spread to a byte, then '0'..'9' or
 * 'a'..'f' in parallel (SWAR), about 15 instructions instead of a loop.
 */
static inline uint64_t
csgi__hex8(uint32_t v)
{
    uint64_t x = v, ten;

    x = (x | x << 16) & 0x0000ffff0000ffffull;
    x = (x | x << 8) & 0x00ff00ff00ff00ffull;
    x = (x | x << 4) & 0x0f0f0f0f0f0f0f0full;
    /* Byte k holds nibble k (least significant first); the text wants the opposite. */
    x = __builtin_bswap64(x);
    ten = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
    return x + 0x3030303030303030ull + ten * ('a' - '0' - 10);
}

/*
 * Write a request id into @p out (CSGI__REQUEST_ID_LEN bytes and a NUL):
 * @p prefix, 16 hex digits made once per process from a random number, then
 * @p serial, the process's request counter, as 16 hex digits. Unique across
 * processes as long as their random prefixes differ; the counter part is
 * the error log's "request N". Inline: it runs per request (the upper half
 * is "00000000" for the first four billion requests, without the shifts).
 */
static inline void
csgi__request_id_format(char *out, const char *prefix, uint64_t serial)
{
    uint64_t hi = serial >> 32 ? csgi__hex8((uint32_t)(serial >> 32)) : 0x3030303030303030ull;
    uint64_t lo = csgi__hex8((uint32_t)serial);

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    hi = __builtin_bswap64(hi);
    lo = __builtin_bswap64(lo);
#endif
    memcpy(out, prefix, 16);
    memcpy(out + 16, &hi, 8);
    memcpy(out + 24, &lo, 8);
    out[CSGI__REQUEST_ID_LEN] = '\0';
}

/*
 * Fill @p prefix (16 hex digits, no NUL) from the kernel's random source:
 * called once per process (after fork()). Returns 0, or CSGI_EIO when no
 * random bytes could be read (the prefix then mixes pid and clock).
 */
int csgi__request_id_prefix(char *prefix);

/* True when @p body is a file body made by csgi__body_from_fd() and not yet read. */
struct csgi__file_body *csgi__file_body_of(const struct csgi_body *body);

/* Close the CSGI_FD_CLOSE descriptors of every file body in @p list. */
void csgi__file_bodies_release(struct csgi__file_body *list);

/* The request body as the input stream reads it: memory or a file. */
struct csgi__input {
    const char *mem;
    int fd; /* -1 when in memory */
    uint64_t len;
    uint64_t pos;
};

/* Fill @p in (the stream's ctx must be @p state). */
void csgi__input_init(struct csgi_input *in, struct csgi__input *state);

/* The error stream: lines go to @p sink at their level (or ERROR for write()). */
/* The longest line csgi_errors.write() gathers; a longer one goes out in pieces this long. */
#define CSGI__ERRORS_LINE 512

struct csgi__errors {
    void (*sink)(void *ctx, int level, const char *msg, size_t len);
    /* Request memory for the line, taken at the first write() (most requests write none). */
    void *(*alloc)(void *ctx, size_t n);
    void *ctx;
    /* CSGI__ERRORS_LINE bytes once write() was called (NULL before: a transport that reuses
     * the state for another request sets it NULL again). */
    char *line;
    size_t line_len;
};

/* Fill @p err (the stream's ctx must be @p state). */
void csgi__errors_init(struct csgi_errors *err, struct csgi__errors *state);

/* Flush a partial line of @p state. */
int csgi__errors_flush(struct csgi__errors *state);

/* ------------------------------------------------------------------ */
/* Upgraded connections (SPEC 4.15)                                    */
/* ------------------------------------------------------------------ */

/* What the core needs from its transport for an upgraded connection. */
struct csgi__upgrade_ops {
    /*
     * The events the core waits for on the descriptor changed (enum
     * csgi_watch_events; CSGI__UP_LINGER: call csgi__upgrade_linger()
     * CSGI__UPGRADE_LINGER_MS from now, once; asked again after it fired
     * or with the bit dropped in between, a new period). 0: none, the
     * connection is over.
     */
    void (*want)(void *ctx, unsigned events);
    /* on_close() has returned: release the descriptor and the request. */
    void (*done)(void *ctx);
};

#define CSGI__UP_LINGER (1u << 8)
/* How long a closing connection waits for its client to close too. */
#define CSGI__UPGRADE_LINGER_MS 1000
/* How long a closing connection's queue may go without sending a byte (the client not reading). */
#define CSGI__UPGRADE_DRAIN_STALL_MS 10000
/* The write queue's bounds: upgrade_write() answers 1 above SOFT, refuses above HARD. */
#define CSGI__UPGRADE_SOFT (256u * 1024u)
#define CSGI__UPGRADE_HARD (16u * 1024u * 1024u)

enum csgi__up_state {
    CSGI__UP_ASKED = 1, /* upgrade() called; the 101 is not sent yet */
    CSGI__UP_OPEN,      /* the application owns the connection */
    CSGI__UP_CLOSING,   /* upgrade_close(): the queue drains, then the write side closes */
    CSGI__UP_CLOSED     /* on_close() ran (or runs) */
};

struct csgi_upgrade {
    uint32_t magic;
    enum csgi__up_state state;
    int fd;
    /* The connection broke (a read or write failed): it ends at the next event. */
    int failed;
    /*
     * The client closed its sending side (a read found the end): nothing is
     * read any more, what is queued still goes out, then the connection ends.
     */
    int peer_eof;
    /* Bytes sent so far, their count at the last linger, and the linger periods since a byte went.
     */
    uint64_t sent, sent_at_linger;
    unsigned stalled;
    /* upgrade_write() answered 1: on_writable() is owed once the queue drains. */
    int owe_writable;
    int stop_told;
    int shut_wr;
    unsigned want;
    const struct csgi_upgrade_handler *app;
    void *arg;
    const struct csgi__upgrade_ops *ops;
    void *ctx;
    /* The request's host ops: app_enter() around every callback (a plugin's lock). */
    const struct csgi__host_ops *hops;
    void *hctx;
    /* Bytes queued for the client: [q + q_off, q + q_len). */
    char *q;
    size_t q_off, q_len, q_cap;
};

/*
 * csgi_host_api.upgrade() for the response @p r of the request with @p env:
 * the checks (the plugin declared it: @p allowed; the request asked; within
 * call(); once), then a connection in request memory, driven by the
 * transport through @p ops with @p ctx.
 */
int csgi__upgrade_begin(struct csgi__response *r, const struct csgi_environ *env, int allowed,
                        const struct csgi__upgrade_ops *ops, void *ctx,
                        const struct csgi_upgrade_handler *handler, void *arg,
                        struct csgi_upgrade **out);

/* True when @p env's request asks for an upgrade: HTTP/1.1, Upgrade, "upgrade" in Connection. */
int csgi__upgrade_asked(const struct csgi_environ *env);

/*
 * The 101 went out: the connection is @p fd (non-blocking; the transport's
 * to close after done()). @p extra holds bytes the transport read past the
 * request head, delivered first.
 */
void csgi__upgrade_start(struct csgi_upgrade *u, int fd, const void *extra, size_t n);

/* @p events (enum csgi_watch_events) are ready on the descriptor. */
void csgi__upgrade_ready(struct csgi_upgrade *u, unsigned events);

/* The host stops: on_stop() once (or, without one, upgrade_close()). */
void csgi__upgrade_stop(struct csgi_upgrade *u);

/*
 * The host ends @p u (the worker stops, the 101 could not be sent):
 * on_close(@p reason) unless it ran, then done(). Not from a callback.
 */
void csgi__upgrade_end(struct csgi_upgrade *u, int reason);

/*
 * The linger period the core asked for (CSGI__UP_LINGER) is over: a closing
 * connection whose queue went out ends (OK); one whose queue still drains
 * gets another period, and ends (CLIENT_ABORT) once it sent nothing for
 * CSGI__UPGRADE_DRAIN_STALL_MS. Not from a callback.
 */
void csgi__upgrade_linger(struct csgi_upgrade *u);

/* csgi_host_api.upgrade_write() and upgrade_close(). */
int csgi__upgrade_write(struct csgi_upgrade *u, const void *data, size_t len);
int csgi__upgrade_close(struct csgi_upgrade *u);

#endif /* CSGI_CORE_H */
