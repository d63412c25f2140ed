/*
 * The HTTP front of a worker (see http.h): the libmicrohttpd adapter. The
 * rules of CSGI are the host core's (gateway/core); the host services are
 * in host_api.c, body storage in body_store.c, accepting in acceptor.c.
 *
 * libmicrohttpd 0.9.75 calls the access handler several times per request:
 * once when the head is parsed, once per piece of body, and once at the end.
 * We check the head on the first call (queueing a response there forces
 * "Connection: close", which we want only for errors that must not keep the
 * connection), store the body, and call the application on the last call.
 *
 * A request is one allocation (struct csgi_request plus the first arena
 * block). It lives until the request is complete (NOTIFY_COMPLETED) and, for
 * a response libmicrohttpd pulls from the core (a stream, or the headers of a
 * HEAD answer), until that response object is destroyed too (which closes the
 * application's body), so that the reader and the body's close() may still
 * use arena memory. A response whose body is in hand refers to its bytes in
 * place and holds no reference: libmicrohttpd (0.9.75 and 1.0) reads them
 * only while sending, and reports the request complete before it destroys
 * the response, so the body is closed and the memory freed after the last
 * byte was read.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "acceptor.h"
#include "body_store.h"
#include "clock.h"
#include "csgi_internal.h"
#include "host_api.h"
#include "log.h"
#include "mhd_loop.h"
#include "request.h"
#include "wait.h"

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static void
set_deadline(struct csgi_request *r, unsigned seconds)
{
    if (!r->sconn)
        return;
    if (!seconds) {
        /* Cleared once: the head check, the last body piece and queue() all clear it. */
        if (r->deadline_cleared)
            return;
        r->deadline_cleared = 1;
    } else {
        r->deadline_cleared = 0;
    }
    atomic_store(&r->sconn->deadline_ms,
                 seconds ? srv_clock_coarse_ms() + (long long)seconds * 1000 : 0);
}

/*
 * The request line is in: the head must end by @p line_deadline_ms too. The
 * head has one deadline, set when the connection started or when the
 * previous request on it ended (on_connection(), on_completed()); the
 * request line may only bring it closer, never move it on, or a line
 * trickled for almost --header-timeout would earn the headers a second one.
 * On keep-alive, the deadline from the previous request allows
 * --conn-timeout of idling first; a request line that comes early ends that
 * allowance.
 */
static void
head_deadline_seen(struct srv_conn *c, long long line_deadline_ms)
{
    long long dl = atomic_load(&c->deadline_ms);

    if (!dl || line_deadline_ms < dl)
        atomic_store(&c->deadline_ms, line_deadline_ms);
}

/* Connections libmicrohttpd reported started on this thread (on_connection()). */
static _Thread_local unsigned long conns_started;
static _Thread_local int busy_slot = -1;
/*
 * Set when the reader ends a response whose client left while it waited:
 * libmicrohttpd's "application error" warning that follows is not logged.
 */
static _Thread_local int quiet_close;

/* Mark this thread as inside plugin code (for the --timeout watchdog). */
static void
busy_enter(struct srv_http *h)
{
    if (!h->score)
        return;
    if (busy_slot < 0)
        busy_slot = atomic_fetch_add(&h->thread_seq, 1) % SRV_MAX_THREADS;
    atomic_store(&h->score->busy_since_ms[busy_slot], srv_clock_coarse_ms());
}

static void
busy_leave(struct srv_http *h)
{
    if (h->score && busy_slot >= 0) {
        atomic_store(&h->score->busy_since_ms[busy_slot], 0);
        srv_score_clear_inflight(h->score, busy_slot);
    }
}

/*
 * Publish the request this thread runs plugin code for, so that the master
 * can name it if the worker dies (call after busy_enter()).
 */
static inline __attribute__((always_inline)) void
publish_inflight(struct csgi_request *r)
{
    struct srv_plugin *p = r->plugin;

    srv_score_set_inflight(r->h->score, busy_slot, p, p ? p->desc.name : NULL, r->id, r->method,
                           r->method_len, r->raw_target, r->raw_target_len, r->remote_addr);
}

/* ------------------------------------------------------------------ */
/* Request lifetime                                                    */
/* ------------------------------------------------------------------ */

/* True once the application's response was queued (its status line may be out). */
static int
r_state_sent(const struct csgi__response *core)
{
    return core->state == CSGI__RESP_SENT || core->state == CSGI__RESP_ENDED ||
           core->state == CSGI__RESP_STARTED;
}

/* How libmicrohttpd says the request ended, as a CSGI finish reason. */
static int
finish_reason(const struct csgi_request *r, int toe, const struct csgi__response *core)
{
    if (r->client_gone)
        return CSGI_FINISH_CLIENT_ABORT;
    if (r->stopped)
        return CSGI_FINISH_SHUTDOWN;
    /*
     * libmicrohttpd reports a failed send (the client left mid-response) as
     * an error, like a body that failed; only the core knows the latter.
     */
    if (toe == MHD_REQUEST_TERMINATED_WITH_ERROR && !core->error && r_state_sent(core))
        return CSGI_FINISH_CLIENT_ABORT;
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return CSGI_FINISH_OK;
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return CSGI_FINISH_TIMEOUT;
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return CSGI_FINISH_SHUTDOWN;
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return CSGI_FINISH_CLIENT_ABORT;
    default:
        return CSGI_FINISH_ERROR;
    }
}

/* When the request ended (the first call wins): its duration ends there. */
static const struct timespec *
req_end_time(struct csgi_request *r)
{
    if (!r->t1_set) {
        clock_gettime(CLOCK_MONOTONIC, &r->t1);
        r->t1_set = 1;
    }
    return &r->t1;
}

/*
 * The client's address for the logs: every line about a request names it,
 * a refused one included. "unix:" on a unix socket (nginx's word; the
 * environ's remote_addr is "" there, SPEC 4.2), "-" only when unknown.
 *
 * Before the environ is built, the address comes from the connection: that
 * is only ever read while the connection lives (a request refused before
 * dispatch() has no response of ours that could outlive it, so its last
 * reference goes in on_completed()).
 */
static const char *
peer_addr(const struct csgi_request *r)
{
    if (r->env_built && r->env.remote_addr.len)
        return r->env.remote_addr.ptr;
    if (!r->env_built && r->sconn && r->sconn->addr_len)
        return r->sconn->addr;
    if (r->slot->l->family == AF_UNIX)
        return "unix:";
    return "-";
}

/*
 * The error-log line of a refused request: its id, method and target (the
 * logger escapes their control bytes), the client's address and the status.
 */
static void
refusal_log(const struct csgi_request *r, int status, const char *why)
{
    /* 501 and 505 are the client's doing (a method or version we do not serve): info. */
    srv_log(status >= 500 && status != 501 && status != 505 ? SRV_LOG_ERROR : SRV_LOG_INFO,
            "request %llu \"%s %.200s\" from %s: %d: %s", (unsigned long long)r->id,
            r->method ? r->method : "-", r->raw_target ? r->raw_target : "", peer_addr(r), status,
            why);
}

static void
access_log(struct csgi_request *r)
{
    struct srv_access_record rec;
    struct timespec t1;
    struct csgi_str ref = {NULL, 0}, ua = {NULL, 0};
    char *refz = NULL, *uaz = NULL;

    if (r->headers) {
        struct csgi_environ e = r->env;
        e.headers = r->headers;
        e.n_headers = r->n_headers;
        if (csgi__header_get(&e, "referer", 0, &ref) == 0)
            refz = (char *)ref.ptr;
        if (csgi__header_get(&e, "user-agent", 0, &ua) == 0)
            uaz = (char *)ua.ptr;
    }
    t1 = *req_end_time(r);
    memset(&rec, 0, sizeof(rec));
    rec.remote_addr = peer_addr(r);
    rec.method = r->method ? r->method : "-";
    rec.target = r->raw_target;
    rec.target_len = r->raw_target_len;
    rec.protocol = r->version ? r->version : "-";
    rec.status = r->queued_status;
    rec.bytes = r->sent_bytes;
    rec.referer = refz;
    rec.user_agent = uaz;
    rec.duration_ms =
        (double)(t1.tv_sec - r->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6;
    rec.plugin = r->plugin ? r->plugin->desc.name : NULL;
    rec.request_id = r->id;
    rec.request_id_text = r->request_id;
    srv_access_log_write(&rec);
}

/*
 * One cached request block per thread: a keep-alive connection then costs no
 * malloc()/free() per request for the request itself. The cache is a plain
 * thread-local pointer (pthread_getspecific() and pthread_setspecific() cost
 * about 100 instructions per request); a pthread key, set once per thread to
 * the pointer's address, frees the cached block when the thread ends.
 */
static _Thread_local struct csgi_request *req_cached;
static _Thread_local int req_cache_armed;
/* Set once the thread made its first request block (the one with a FIRST_ARENA block). */
static _Thread_local int req_made_first;
/* The first arena block of the thread's small request blocks (request.h, small_arena_learn()). */
static _Thread_local size_t small_arena = FIRST_ARENA_SMALL;
static pthread_key_t req_cache_key;
static pthread_once_t req_cache_once = PTHREAD_ONCE_INIT;
static int req_cache_key_ok;

static void resp_cache_drop(void);

/* The thread ends: its cached request block and response go. */
static void
req_cache_free(void *slot)
{
    struct csgi_request **cached = slot;

    free(*cached);
    *cached = NULL;
    resp_cache_drop();
}

static void
req_cache_init(void)
{
    req_cache_key_ok = pthread_key_create(&req_cache_key, req_cache_free) == 0;
}

/*
 * req_release() keeps the thread's first block by its larger first arena
 * block, and small ones grow by small blocks (arena.h).
 */
_Static_assert(SMALL_ARENA_MAX < FIRST_ARENA && FIRST_ARENA_SMALL <= SMALL_ARENA_MAX &&
                   SMALL_ARENA_MAX < SRV_ARENA_BLOCK / 2 && FIRST_ARENA >= SRV_ARENA_BLOCK / 2,
               "small first arena blocks stay below the thread's first one");

/* What the thread's first block has after its first arena block (request.h). */
#define REQ_ROOM (INLINE_HEADERS * sizeof(struct csgi_header) + CSGI__HEAD_COPY)
_Static_assert(FIRST_ARENA % _Alignof(struct csgi_header) == 0 &&
                   _Alignof(struct csgi_request) % _Alignof(struct csgi_header) == 0,
               "the rooms after the first arena block are aligned for their headers");

static struct csgi_request *
req_alloc(void)
{
    struct csgi_request *r = req_cached;
    size_t first;

    if (r) {
        req_cached = NULL;
        return r;
    }
    /*
     * The cache is empty: the thread's first block, or blocks in use by
     * requests still going (a response that waits holds one for as long as
     * it waits). Only the first gets the full first arena block and the
     * rooms for INLINE_HEADERS request headers and the core's head copies
     * (REQ_ROOM): 10,000 waiting SSE subscribers on a thread are 36 MiB less
     * (the others take their headers and head copy in their arena, at size).
     */
    first = req_made_first ? small_arena : FIRST_ARENA;
    r = malloc(sizeof(*r) + first + (req_made_first ? 0 : REQ_ROOM));
    if (!r)
        return NULL;
    r->first_arena = first;
    /* What stays the same from one request of the block to the next. */
    csgi__response_init(&r->core, &srv_core_ops, r, 0, 0);
    if (!req_made_first)
        csgi__response_head_room(&r->core, req_header_room(r) + INLINE_HEADERS, CSGI__HEAD_COPY);
    req_made_first = 1;
    r->errors_state.sink = srv_errors_sink;
    r->errors_state.alloc = srv_core_ops.alloc;
    r->errors_state.ctx = r;
    csgi__input_init(&r->input, &r->input_state);
    csgi__errors_init(&r->errors, &r->errors_state);
    return r;
}

static void
req_release(struct csgi_request *r)
{
    if (req_cached) {
        /* The cache keeps the thread's block with the full first arena block. */
        if (r->first_arena > req_cached->first_arena) {
            free(req_cached);
            req_cached = r;
        } else {
            free(r);
        }
        return;
    }
    if (!req_cache_armed) {
        /* First release on this thread: make sure its exit frees the cache. */
        pthread_once(&req_cache_once, req_cache_init);
        if (!req_cache_key_ok || pthread_setspecific(req_cache_key, &req_cached) != 0) {
            /* No cache: the thread's next block is made whole again (req_alloc()). */
            if (req_header_room(r))
                req_made_first = 0;
            free(r);
            return;
        }
        req_cache_armed = 1;
    }
    req_cached = r;
}

/*
 * The last reference is gone: finish the request and free it. Inlined into
 * both callers: on_completed() is where almost every request ends.
 */
static inline __attribute__((always_inline)) void
req_finish(struct csgi_request *r)
{
    struct srv_http *h = r->h;

    csgi__response_close(&r->core);
    if (__builtin_expect(r->wake_task.fn != NULL, 0)) {
        srv_mhd_loop_cancel(r->mloop, &r->wake_task);
        free(r->out);
    }
    /* An upgrade whose 101 never went out: the application hears of it. */
    if (__builtin_expect(r->core.upgrade != NULL, 0))
        csgi__upgrade_end(r->core.upgrade, CSGI_FINISH_CLIENT_ABORT);
    srv_wait_request_done(r);
    if (r->errors_state.line_len)
        csgi__errors_flush(&r->errors_state);
    for (struct finished_cb *cb = r->finished; cb; cb = cb->next)
        cb->fn(cb->arg, csgi__response_finish_reason(&r->core, finish_reason(r, r->toe, &r->core)));
    if (r->plugin && r->counted) {
        struct timespec t1 = *req_end_time(r);
        atomic_fetch_add(&r->plugin->requests, 1);
        if (r->queued_status >= 400 && r->queued_status < 500)
            atomic_fetch_add(&r->plugin->status_4xx, 1);
        else if (r->queued_status >= 500)
            atomic_fetch_add(&r->plugin->status_5xx, 1);
        atomic_fetch_add(&r->plugin->latency_us,
                         (unsigned long long)((t1.tv_sec - r->t0.tv_sec) * 1000000LL +
                                              (t1.tv_nsec - r->t0.tv_nsec) / 1000));
    }
    if (srv_access_log_enabled())
        access_log(r);
    /* Descriptors handed over with CSGI_FD_CLOSE whose body never ran. */
    if (r->file_bodies)
        csgi__file_bodies_release(r->file_bodies);
    if (r->body_fd >= 0)
        close(r->body_fd);
    if (r->body_mem)
        free(r->body_mem);
    if (r->core.buf)
        csgi__response_free(&r->core);
    if (r->arena.head)
        srv_arena_free(&r->arena);
    atomic_fetch_add(&h->stats.requests, 1);
    atomic_fetch_sub(&h->stats.inflight, 1);
    req_release(r);
}

/* Drop one reference; the last one finishes and frees the request. */
static inline void
req_unref(struct csgi_request *r)
{
    if (--r->refs <= 0)
        req_finish(r);
}

/*
 * A request in a small block begins to wait: what its arena holds (an
 * overflow counts its blocks whole, and the size comes down again) sizes the first arena block of
 * the thread's next small blocks, made mostly for more requests like it (request.h). Its later
 * waits teach nothing (an application that takes request memory per event would keep it growing).
 */
static inline void
small_arena_learn(struct csgi_request *r)
{
    if (!r->arena_learnt && !req_header_room(r)) {
        r->arena_learnt = 1;
        small_arena =
            srv_arena_first_size(small_arena, srv_arena_held(&r->arena, r + 1, r->first_arena),
                                 SMALL_ARENA_SLACK, SMALL_ARENA_MIN, SMALL_ARENA_MAX);
    }
}

/* srv_wait_park(), once the thread learnt from the request's arena. */
static inline int
park(struct csgi_request *r)
{
    small_arena_learn(r);
    return srv_wait_park(r);
}

/* URI log callback: a new request line arrived. Returns the request. */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct daemon_slot *slot = cls;
    struct srv_http *h = slot->h;
    struct csgi_request *r;
    const union MHD_ConnectionInfo *ci;
    size_t len = strlen(uri), pad;

    r = req_alloc();
    if (!r)
        return NULL;
    csgi__zero((char *)r + offsetof(struct csgi_request, t1_set),
               offsetof(struct csgi_request, remote_addr) - offsetof(struct csgi_request, t1_set));
    /* The parts outside the memset that a request refused early still uses. */
    csgi__response_reset(&r->core, 0);
    r->errors_state.line = NULL;
    r->errors_state.line_len = 0;
    srv_arena_init(&r->arena, r + 1, r->first_arena);
    r->h = h;
    r->slot = slot;
    r->mloop = srv_mhd_loop_current();
    r->conn = conn;
    r->refs = 1;
    r->body_fd = -1;
    r->id = atomic_fetch_add(&h->next_id, 1) + 1;
    csgi__request_id_format(r->request_id, h->id_prefix, r->id);
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    /*
     * Padded for srv_score_set_inflight(), which copies half its field's size
     * for a target shorter than that, else the whole field.
     */
    pad = len < SRV_INFLIGHT_TARGET_SIZE / 2 ? SRV_INFLIGHT_TARGET_SIZE / 2
          : len < SRV_INFLIGHT_TARGET_SIZE   ? SRV_INFLIGHT_TARGET_SIZE
                                             : len + 1;
    r->raw_target = srv_arena_alloc(&r->arena, pad);
    r->raw_target_len = 0;
    if (r->raw_target) {
        memcpy(r->raw_target, uri, len + 1);
        r->raw_target_len = len;
    }
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->sconn = ci ? ci->socket_context : NULL;
    /* The deadline from t0, not a second clock read (deadlines count seconds). */
    if (r->sconn)
        head_deadline_seen(r->sconn, (long long)r->t0.tv_sec * 1000 + r->t0.tv_nsec / 1000000 +
                                         (long long)h->cfg->header_timeout * 1000);
    atomic_fetch_add(&h->stats.inflight, 1);
    return r;
}

/*
 * A request that ends without a response of ours. When libmicrohttpd
 * refused it itself (a Content-Length it cannot parse, 400, or that
 * overflows, 413; a head past --conn-memory, 431; a broken chunk), its own
 * reply is still attached here (MHD_connection_close_() calls us before it
 * destroys the response): the access log gets that status, and the error log
 * a line with the client's address, as for our own refusals. Without a reply
 * (the client left, a timeout, a connection we dropped) the status stays 0,
 * which the access log writes as "-": no response was sent.
 */
static void
note_library_reply(struct csgi_request *r, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);

    if (!ci || !ci->http_status)
        return;
    r->queued_status = (int)ci->http_status;
    refusal_log(r, r->queued_status, "refused by libmicrohttpd");
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct csgi_request *r = *con_cls;

    (void)cls;
    if (!r)
        return;
    *con_cls = NULL;
    r->toe = toe;
    if (!r->queued_status)
        note_library_reply(r, conn);
    /* The descriptor is open still: a watch on it goes now, not when the request is freed. */
    srv_wait_conn_done(r);
    /* One clock read for the next deadline and this request's duration. */
    req_end_time(r);
    if (r->sconn)
        atomic_store(&r->sconn->deadline_ms,
                     (long long)r->t1.tv_sec * 1000 + r->t1.tv_nsec / 1000000 +
                         (long long)(r->h->cfg->conn_timeout + r->h->cfg->header_timeout) * 1000);
    req_unref(r);
}

/* Dotted-quad text of an IPv4 address (network order); inet_ntop goes through printf. */
static size_t
ipv4_text(const unsigned char *a, char *out)
{
    size_t n = 0;

    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            out[n++] = (char)('0' + v / 100);
        if (v >= 10)
            out[n++] = (char)('0' + v / 10 % 10);
        out[n++] = (char)('0' + v % 10);
        out[n++] = '.';
    }
    out[--n] = '\0';
    return n;
}

/* The client's address as text, once per connection (every request's environ copies it). */
static void
conn_remote_addr(struct MHD_Connection *conn, struct srv_conn *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    c->addr_len = 0;
    c->addr[0] = '\0';
    c->port = 0;
    if (!sa)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
        c->addr_len = ipv4_text((const unsigned char *)&a->sin_addr, c->addr);
        c->port = ntohs(a->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, c->addr, sizeof(c->addr)))
            c->addr_len = strlen(c->addr);
        c->port = ntohs(a->sin6_port);
    }
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
    struct daemon_slot *slot = cls;
    struct srv_http *h = slot->h;
    struct srv_conn *c;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conns_started++;
        c = calloc(1, sizeof(*c));
        if (!c)
            return;
        c->fd = ci ? ci->connect_fd : -1;
        conn_remote_addr(conn, c);
        if (slot->l->tls) {
            /* Before the handshake: libmicrohttpd reads nothing before this call. */
            ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
            if (ci && ci->tls_session)
                srv_tls_session_start(ci->tls_session);
        }
        atomic_store(&c->deadline_ms,
                     srv_clock_coarse_ms() + (long long)h->cfg->header_timeout * 1000);
        pthread_mutex_lock(&h->conn_lock);
        c->next = h->conns.next;
        c->prev = &h->conns;
        h->conns.next->prev = c;
        h->conns.next = c;
        pthread_mutex_unlock(&h->conn_lock);
        *socket_context = c;
        return;
    }
    /* Every started connection is counted down, also one whose record could not be made. */
    srv_mhd_loop_closed(srv_mhd_loop_current());
    srv_acceptor_conn_closed(h->acceptor);
    c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&h->conn_lock);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    pthread_mutex_unlock(&h->conn_lock);
    free(c->head_memo);
    srv_tls_facts_free(c->tls);
    free(c);
    *socket_context = NULL;
}

void
srv_http_tick(struct srv_http *h)
{
    long long now = srv_clock_coarse_ms();

    /*
     * The lock also orders us against on_connection(CLOSED), which
     * libmicrohttpd calls before it closes the descriptor, so the fd we shut
     * down is still the connection we mean.
     */
    pthread_mutex_lock(&h->conn_lock);
    for (struct srv_conn *c = h->conns.next; c != &h->conns; c = c->next) {
        long long dl = atomic_load(&c->deadline_ms);
        if (dl && now > dl && c->fd >= 0) {
            srv_log(SRV_LOG_INFO,
                    "connection fd %d from %s cut off: too slow (sending its request head or body, "
                    "or reading a stream)",
                    c->fd, c->addr_len ? c->addr : "-");
            shutdown(c->fd, SHUT_RDWR);
            atomic_store(&c->deadline_ms, 0);
        }
    }
    pthread_mutex_unlock(&h->conn_lock);
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

/*
 * True once the master fails health checks (SIGTERM with --drain-delay):
 * each response then closes its connection, so that a balancer's idle
 * keep-alive connections are gone before the drain closes them under it.
 */
static inline int
health_failing(const struct srv_http *h)
{
    return h->board && atomic_load_explicit(&h->board->health_failing, memory_order_relaxed);
}

/* The response ends the connection ("Connection: close", added per request). */
static inline int
closing(const struct csgi_request *r)
{
    return r->close_conn || atomic_load(&r->h->draining) || health_failing(r->h);
}

static void
add_common_headers(struct csgi_request *r, struct MHD_Response *resp)
{
    /*
     * No "Server" header: each extra header costs libmicrohttpd a malloc and
     * a copy (about 1,400 instructions per response, measured); applications
     * that want one add it.
     */
    if (closing(r))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

/* Queue @p resp as it is; the caller keeps its reference. */
static enum MHD_Result
queue_as_is(struct csgi_request *r, int status, struct MHD_Response *resp)
{
    r->queued_status = status;
    r->state = REQ_DONE;
    set_deadline(r, 0);
    return MHD_queue_response(r->conn, (unsigned)status, resp);
}

/* Queue @p resp with the headers every response gets, and drop the caller's reference. */
static enum MHD_Result
queue(struct csgi_request *r, int status, struct MHD_Response *resp)
{
    enum MHD_Result ret;

    if (status != 101)
        add_common_headers(r, resp);
    ret = queue_as_is(r, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A short text/plain error response, logged. close: end the connection after it. */
static enum MHD_Result
queue_error(struct csgi_request *r, int status, const char *why, int close_conn)
{
    char body[CSGI__ERROR_PAGE_MAX];
    size_t n = csgi__error_page(status, body, sizeof(body));
    struct MHD_Response *resp;

    resp = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, CSGI__ERROR_CONTENT_TYPE);
    if (close_conn)
        r->close_conn = 1;
    if (why)
        refusal_log(r, status, why);
    r->sent_bytes = (uint64_t)n;
    return queue(r, status, resp);
}

/*
 * libmicrohttpd's content reader: the core hands over what the application
 * has produced, never waiting for more once it has a byte, so each chunk
 * goes to the wire when next() returns it.
 */
static ssize_t
reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct csgi_request *r = cls;
    int64_t n;

    (void)pos;
    quiet_close = 0;
    if (__builtin_expect(r->direct_end != 0, 0)) {
        /* The body ended while the loop wrote it (direct_run()). */
        return r->direct_end == 1 ? MHD_CONTENT_READER_END_OF_STREAM
                                  : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (r->client_gone) {
        /* Seen while parked (wait.c): not an application error, whatever libmicrohttpd says. */
        quiet_close = 1;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    busy_enter(r->h);
    publish_inflight(r);
    for (;;) {
        n = csgi__response_read(&r->core, buf, max);
        if (n != CSGI__READ_PENDING)
            break;
        if (!r->stopped) {
            int parked = park(r);

            if (parked == 1) {
                /* Suspended: nothing now; libmicrohttpd asks again once resume() woke it. */
                busy_leave(r->h);
                return 0;
            }
            if (parked == 0)
                continue;
            r->stopped = 1;
        }
        /* The worker stops: a body of unknown length ends here, a shorter one aborts. */
        n = csgi__response_stop(&r->core);
        break;
    }
    busy_leave(r->h);
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    r->sent_bytes += (uint64_t)n;
    return (ssize_t)n;
}

/* ------------------------------------------------------------------ */
/* Streams woken without libmicrohttpd                                 */
/* ------------------------------------------------------------------ */

/*
 * What the loop reads from a woken stream at a time (on its own stack). A
 * chunk of libmicrohttpd's is at most its connection's free memory.
 */
#define DIRECT_BLOCK (16 * 1024)

/*
 * What one run writes at most before it queues itself again: a stream with
 * a backlog and a fast client does not hold the loop (libmicrohttpd serves
 * one chunk per connection and round).
 */
#define DIRECT_TURN (256 * 1024)

/*
 * Write what a blocked stream held back. 1: all of it is out; 0: the socket
 * is full again (its watch stays); -1: the client is gone.
 */
static int
direct_flush(struct csgi_request *r)
{
    while (r->out_off < r->out_len) {
        ssize_t k = send(r->sconn->fd, r->out + r->out_off, r->out_len - r->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        r->out_off += (size_t)k;
        /* Progress: the client reads, slowly; it has --conn-timeout for the next bytes. */
        set_deadline(r, r->h->cfg->conn_timeout);
    }
    free(r->out);
    r->out = NULL;
    r->out_len = r->out_off = 0;
    set_deadline(r, 0);
    return srv_wait_want_write(r, 0) < 0 ? -1 : 1;
}

/*
 * Send one chunk of @p n bytes, framed as libmicrohttpd frames it (size in
 * hex, CRLF, data, CRLF): 1 sent; 0 the socket took part of it, the rest is
 * held (r->out) until the socket drains, within --conn-timeout; -1 the
 * client is gone; -2 the rest cannot be held (out of memory).
 */
static int
direct_send(struct csgi_request *r, const char *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char head[2 * sizeof(size_t) + 2];
    size_t hl = 0;
    struct iovec iov[3];
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
    size_t total, done;
    ssize_t k;

    /* The size line (n > 0), without snprintf() (which was a third of the loop's instructions). */
    for (int shift = (63 - __builtin_clzll((unsigned long long)n)) / 4 * 4; shift >= 0; shift -= 4)
        head[hl++] = hex[(n >> shift) & 15u];
    head[hl++] = '\r';
    head[hl++] = '\n';
    iov[0] = (struct iovec){head, hl};
    iov[1] = (struct iovec){(void *)data, n};
    iov[2] = (struct iovec){(void *)"\r\n", 2};
    total = hl + n + 2;

    do
        k = sendmsg(r->sconn->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (k < 0 && errno == EINTR);
    if ((size_t)k == total)
        return 1;
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
    done = k < 0 ? 0 : (size_t)k;
    r->out = malloc(total - done);
    if (!r->out) {
        srv_log(SRV_LOG_ERROR, "request %s: out of memory for a stream's chunk", r->request_id);
        return -2;
    }
    r->out_len = total - done;
    r->out_off = 0;
    for (size_t i = 0, at = 0, o = 0; i < 3; at += iov[i].iov_len, i++) {
        size_t from = done > at ? done - at : 0;

        if (from < iov[i].iov_len) {
            memcpy(r->out + o, (char *)iov[i].iov_base + from, iov[i].iov_len - from);
            o += iov[i].iov_len - from;
        }
    }
    if (srv_wait_want_write(r, 1) < 0)
        return -1;
    set_deadline(r, r->h->cfg->conn_timeout);
    srv_log(SRV_LOG_DEBUG, "request %s: stream waits for its client to read (%zu bytes held)",
            r->request_id, r->out_len);
    return 0;
}

/*
 * A stream woken without libmicrohttpd (request.h, direct), on its loop's
 * thread: its connection is suspended there, and libmicrohttpd called the
 * reader only with its own buffer sent (0.9.75 and 1.0.1 both assert that
 * before a chunked body's read), so the socket is ours between two reads.
 * Read and send chunks until the body waits again; when it ends (or fails,
 * or the client left, or the worker stops) the connection goes back to
 * libmicrohttpd, whose reader() then ends it (the last chunk, or a close).
 * Saves libmicrohttpd's resume: an epoll_ctl() pair, its round and the
 * reader's calls per event and waiting client.
 */
static void
direct_run(struct srv_mhd_task *t)
{
    struct csgi_request *r =
        (struct csgi_request *)((char *)t - offsetof(struct csgi_request, wake_task));
    char buf[DIRECT_BLOCK];
    size_t turn = 0;
    int rc;

    /*
     * Queued by a watch event that came while the last run flushed, that
     * run parked the stream again (or gave it back): nothing to do.
     */
    if (!srv_wait_direct_due(r))
        return;
    if (r->client_gone || r->stopped)
        goto hand_back;
    if (r->out) {
        rc = direct_flush(r);
        if (rc == 0)
            return;
        if (rc < 0) {
            r->client_gone = 1;
            goto hand_back;
        }
    }
    busy_enter(r->h);
    publish_inflight(r);
    for (;;) {
        int64_t n = csgi__response_read(&r->core, buf, sizeof(buf));

        if (n == CSGI__READ_PENDING) {
            int parked = park(r);

            if (parked == 1) {
                busy_leave(r->h);
                return; /* still suspended; resume() queues this task again */
            }
            if (parked == 0)
                continue;
            r->stopped = 1; /* the worker stops: reader() ends the body, as its own would */
            break;
        }
        if (n <= 0) {
            r->direct_end = n == 0 ? 1 : 2;
            break;
        }
        r->sent_bytes += (uint64_t)n;
        rc = direct_send(r, buf, (size_t)n);
        if (rc == 0) {
            busy_leave(r->h);
            return; /* the wake loop queues this task once the socket drains */
        }
        if (rc < 0) {
            if (rc == -2)
                r->direct_end = 2; /* the rest could not be held: the body fails */
            else
                r->client_gone = 1;
            break;
        }
        turn += (size_t)n;
        if (turn >= DIRECT_TURN) {
            /* The loop's other connections first: the rest at its next round. */
            busy_leave(r->h);
            srv_mhd_loop_defer(r->mloop, &r->wake_task);
            return;
        }
        busy_enter(r->h); /* each next() has --timeout of its own */
    }
    busy_leave(r->h);
hand_back:
    srv_wait_hand_back(r);
}

/* Response destroyed: the body is closed and the request reference dropped. */
static void
response_freed(void *cls)
{
    struct csgi_request *r = cls;

    csgi__response_close(&r->core);
    req_unref(r);
}

static void
add_app_headers(struct csgi_request *r, struct MHD_Response *resp)
{
    for (size_t i = 0; i < r->core.n_headers; i++) {
        const struct csgi_header *hd = &r->core.headers[i];
        if (hd->name.len == 14 && csgi__str_ieq(hd->name.ptr, hd->name.len, "content-length"))
            continue; /* the response size carries it */
        if (__builtin_expect(r->core.status == 101, 0) && hd->name.len == 10 &&
            csgi__str_ieq(hd->name.ptr, hd->name.len, "connection"))
            continue; /* libmicrohttpd's upgrade response says "Connection: Upgrade" itself */
        MHD_add_response_header(resp, hd->name.ptr, hd->value.ptr);
    }
}

/*
 * The last small buffer response this thread sent, kept for the next request
 * that sends the very same one. libmicrohttpd builds a response object with a
 * malloc() and two copies per header and frees it all again after the send
 * (about 1,800 instructions for a response with one header, measured), and
 * one object may be queued on any number of connections. The key is the
 * head's (csgi__response_head_key(): status, reason and headers) and the
 * body's bytes. The object (with its own copy of the body) is built the
 * second time in a row the same response goes out: a response that differs
 * each time costs a compare and a copy of at most RESP_CACHE_BODY bytes.
 */
#define RESP_CACHE_BODY 1024

struct resp_cache {
    struct MHD_Response *resp; /* NULL: the bytes are a candidate only */
    uint64_t key;              /* 0: empty; the status is part of the head it names */
    size_t len;
    char body[RESP_CACHE_BODY];
};

static _Thread_local struct resp_cache resp_cache;

/* Drop the thread's cached response (libmicrohttpd frees it after its last send). */
static void
resp_cache_drop(void)
{
    if (resp_cache.resp)
        MHD_destroy_response(resp_cache.resp);
    resp_cache.resp = NULL;
    resp_cache.key = 0;
}

/*
 * The cached response when @p r sends the same one again; NULL otherwise,
 * and the caller builds its own. Not for HEAD (libmicrohttpd reads no body
 * from that response), nor when "Connection: close" is added to it.
 */
static struct MHD_Response *
cached_response(struct csgi_request *r, const struct csgi__plan *plan)
{
    struct resp_cache *c = &resp_cache;
    uint64_t key;

    if ((r->core.flags & CSGI__RESP_HEAD) || plan->len > RESP_CACHE_BODY || closing(r))
        return NULL;
    key = csgi__response_head_key(&r->core);
    if (!key)
        return NULL;
    if (c->key == key && c->len == plan->len &&
        (!c->len || csgi__bytes_eq(c->body, plan->data, c->len))) {
        /* Only once the thread's exit will drop it (see req_release()). */
        if (!c->resp && req_cache_armed) {
            c->resp = MHD_create_response_from_buffer(c->len, c->body, MHD_RESPMEM_MUST_COPY);
            if (c->resp)
                add_app_headers(r, c->resp);
        }
        return c->resp;
    }
    resp_cache_drop();
    c->key = key;
    c->len = plan->len;
    if (plan->len)
        memcpy(c->body, plan->data, plan->len);
    return NULL;
}

/* A response of @p size bytes that libmicrohttpd pulls from the core. */
static struct MHD_Response *
stream_response(struct csgi_request *r, int64_t size)
{
    /*
     * libmicrohttpd allocates the block with the response, but fills a
     * chunked body straight into the connection's write buffer: a chunked
     * stream (often one that waits, SPEC 4.14: thousands of them) gets a
     * small one. Content-Length and close-delimited bodies read through it.
     */
    size_t block =
        size < 0 && r->plan.framing == CSGI__FRAMING_CHUNKED ? READER_BLOCK_CHUNKED : READER_BLOCK;
    struct MHD_Response *resp = MHD_create_response_from_callback(
        size >= 0 ? (uint64_t)size : MHD_SIZE_UNKNOWN, block, reader, r, response_freed);

    if (resp)
        r->refs++;
    /*
     * A chunked stream on a daemon of ours may be woken without
     * libmicrohttpd (direct_run()); its framing is libmicrohttpd's choice
     * too, the same rule (an HTTP/1.1 request, a length unknown; 0.9.75 and
     * 1.0.1 setup_reply_properties()).
     */
    if (r->mloop && block == READER_BLOCK_CHUNKED && !(r->core.flags & CSGI__RESP_HEAD) &&
        r->sconn && r->sconn->fd >= 0) {
        r->wake_task.fn = direct_run;
    }
    return resp;
}

/*
 * libmicrohttpd sent the 101 (SPEC 4.15): the socket is the application's
 * now, driven by the wake loop. No deadline of ours applies any more. The
 * request stays: libmicrohttpd (0.9.75 and 1.0.1, outside thread-per-
 * connection mode) reports it completed (on_completed()) only once the wake
 * loop gave the socket back with MHD_UPGRADE_ACTION_CLOSE.
 */
static void
on_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
            size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct csgi_request *r = cls;

    (void)conn;
    (void)con_cls;
    if (r->sconn)
        atomic_store(&r->sconn->deadline_ms, 0);
    srv_upgrade_handed(r, sock, extra_in, extra_in_size, urh);
}

/* Build the libmicrohttpd response the core planned. NULL when out of memory. */
static struct MHD_Response *
planned_response(struct csgi_request *r, const struct csgi__plan *plan)
{
    struct MHD_Response *resp = NULL;
    int head = (r->core.flags & CSGI__RESP_HEAD) != 0;

    switch (plan->kind) {
    case CSGI__PLAN_ERROR:
    case CSGI__PLAN_WAIT:
        return NULL;
    case CSGI__PLAN_BUFFER:
        if (head)
            /* Headers only: libmicrohttpd never reads a HEAD response's body. */
            return stream_response(r, plan->length);
        /* In place, without a reference (see the top of this file). */
        resp =
            MHD_create_response_from_buffer(plan->len, (void *)plan->data, MHD_RESPMEM_PERSISTENT);
        if (resp)
            r->sent_bytes = plan->len;
        return resp;
    case CSGI__PLAN_FILE:
        resp = MHD_create_response_from_fd_at_offset64((uint64_t)plan->length, plan->fd,
                                                       (uint64_t)plan->offset);
        if (!resp)
            close(plan->fd);
        else if (!head)
            r->sent_bytes = (uint64_t)plan->length;
        return resp;
    case CSGI__PLAN_STREAM:
        return stream_response(r, plan->length);
    case CSGI__PLAN_UPGRADE:
        return MHD_create_response_for_upgrade(on_upgraded, r);
    }
    return NULL;
}

/* Queue the response the host core planned once call() returned. */
static enum MHD_Result
respond(struct csgi_request *r, int declined)
{
    struct csgi__plan *plan = &r->plan;
    struct MHD_Response *resp;

    for (;;) {
        int parked;

        csgi__response_plan(&r->core, declined, plan);
        if (plan->kind != CSGI__PLAN_WAIT)
            break;
        /* No status yet (CSGI_PENDING): park, without a response; resume() comes back here. */
        parked = park(r);
        if (parked == 1) {
            r->state = REQ_WAIT;
            return MHD_YES;
        }
        if (parked < 0) {
            r->stopped = 1;
            csgi__response_close(&r->core);
            return queue_error(r, 503, NULL, 1);
        }
    }
    if (plan->kind == CSGI__PLAN_ERROR)
        return queue_error(r, plan->status, NULL, 0);
    if (plan->kind == CSGI__PLAN_BUFFER && (resp = cached_response(r, plan))) {
        r->sent_bytes = plan->len;
        return queue_as_is(r, r->core.status, resp);
    }
    resp = planned_response(r, plan);
    if (!resp) {
        csgi__response_close(&r->core);
        return queue_error(r, 500, "cannot create response", 0);
    }
    add_app_headers(r, resp);
    return queue(r, r->core.status, resp);
}

/* ------------------------------------------------------------------ */
/* Head checks and environ                                             */
/* ------------------------------------------------------------------ */

/*
 * The connection's head memo: made at its second request (keep-alive
 * clients repeat their heads; a connection of one request never needs one).
 */
static struct csgi__head_memo *
conn_head_memo(struct srv_conn *c)
{
    if (!c)
        return NULL;
    if (!c->head_memo && c->requests++ == 1)
        c->head_memo = calloc(1, sizeof(*c->head_memo));
    return c->head_memo;
}

/* Collects the header lines libmicrohttpd parsed, into an array that grows in the arena. */
struct head_collect {
    struct csgi_request *r;
    size_t n;
    size_t cap;
    size_t max;
    int too_many;
    int oom;
    /* libmicrohttpd 0.9.75: where the previous value ended, and a line found cut or moved. */
    const char *prev_end;
    int cut;
};

#if MHD_VERSION < 0x01000000
/*
 * libmicrohttpd 0.9.75 parses the head as C strings, in place: a NUL inside
 * a header value silently ends it ("Content-Length: 0<NUL>5" reads as 0,
 * and the body is then parsed as a second request), and an obs-fold
 * continuation is appended to the field *name* in a copy elsewhere. Its
 * lines otherwise stay where they arrived, each "name:" with the colon
 * replaced by NUL and each line's CR LF (or bare LF) by NULs, in order. So a
 * line is whole when its value starts after the name's colon and optional
 * whitespace, and the next line starts right after the value's line end.
 * (1.0 refuses NUL, bare CR and obs-fold in its own parser, at discipline
 * level 1.)
 */
static int
mhd09_line_whole(struct head_collect *c, const char *key, size_t key_len, const char *value)
{
    const char *p = key + key_len + 1;

    if (c->prev_end && !(key == c->prev_end + 2 && !c->prev_end[0] && !c->prev_end[1]) &&
        !(key == c->prev_end + 1 && !c->prev_end[0]))
        return 0;
    /* More than 256 bytes of whitespace before a value: refused too (only on 0.9.75). */
    if (value < p || value - p > 256)
        return 0;
    for (; p < value; p++) {
        if (*p != ' ' && *p != '\t')
            return 0;
    }
    return 1;
}
#endif

static enum MHD_Result
collect_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
               const char *value, size_t value_size)
{
    struct head_collect *c = cls;
    struct csgi_request *r = c->r;

    (void)kind;
#if MHD_VERSION < 0x01000000
    if (!value || !mhd09_line_whole(c, key, key_size, value))
        c->cut = 1;
    c->prev_end = value ? value + value_size : NULL;
#endif
    if (c->n >= c->max) {
        c->too_many = 1;
        return MHD_NO;
    }
    if (c->n == c->cap) {
        /* Past the inline array: grow in the arena. */
        struct csgi_header *nh = srv_arena_alloc(&r->arena, 2 * c->cap * sizeof(*nh));
        if (!nh) {
            c->oom = 1;
            return MHD_NO;
        }
        memcpy(nh, r->headers, c->n * sizeof(*nh));
        r->headers = nh;
        c->cap *= 2;
    }
    /* The recorded lengths: a NUL inside a value shows as a shorter string. */
    r->headers[c->n].name = cstr(key, key_size);
    r->headers[c->n].value = value ? cstr(value, value_size) : cstr("", 0);
    c->n++;
    return MHD_YES;
}

/*
 * Check the request head with the host core's rules. Returns 0, or an HTTP
 * status (>= 400) with r->early_why set. Every refusal closes the connection
 * (the reply is queued on the first handler call).
 */
static int
check_head(struct csgi_request *r)
{
    struct head_collect c = {r, 0, INLINE_HEADERS, r->h->cfg->max_headers, 0, 0, NULL, 0};
    struct csgi__head head;
    struct csgi__head_facts *facts = &r->facts;
    char *path_buf;
    int status;

    r->headers = req_header_room(r);
    if (!r->headers) {
        /* A small block: room for the headers there are (up to the bound), in the arena. */
        int n = MHD_get_connection_values(r->conn, MHD_HEADER_KIND, NULL, NULL);

        c.cap = n < 1 ? 1 : (size_t)n < c.max ? (size_t)n : c.max;
        r->headers = srv_arena_alloc(&r->arena, c.cap * sizeof(*r->headers));
        if (!r->headers) {
            r->early_why = "out of memory";
            return 500;
        }
    }
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, collect_header, &c);
    r->n_headers = c.n;
#if MHD_VERSION < 0x01000000
    /* The last line ends in NULs too: one more after the first (see mhd09_line_whole()). */
    if (c.cut || (c.prev_end && c.prev_end[1])) {
        r->early_why = "header line with a NUL byte or an obs-fold";
        return 400;
    }
    if (r->uri_in_line && r->version != r->uri_in_line + r->raw_target_len + 1) {
        /* The target and the version are apart by more than one space: a NUL cut the target. */
        r->early_why = "request-target with a NUL byte";
        return 400;
    }
#endif
    path_buf = r->raw_target ? srv_arena_alloc(&r->arena, r->raw_target_len + 2) : NULL;
    if (c.oom || !path_buf) {
        r->early_why = "out of memory";
        return 500;
    }
    head.method = r->method;
    head.method_len = r->method_len;
    head.version = r->version;
    head.version_len = r->version_len;
    head.raw_target = r->raw_target;
    head.raw_target_len = r->raw_target_len;
    head.headers = r->headers;
    head.n_headers = r->n_headers;
    head.too_many_headers = c.too_many;
    head.known_host = r->sconn && r->sconn->host_len ? r->sconn->host : NULL;
    head.known_host_len = r->sconn ? r->sconn->host_len : 0;
    head.known_host_name_len = r->sconn ? r->sconn->host_name_len : 0;
    head.any_method = 0; /* csgi-server passes only the methods it knows (501 otherwise) */
    status = csgi__head_check_memo(&head, path_buf, facts, &r->early_why, conn_head_memo(r->sconn));
    if (status)
        return status;
    if (r->sconn && facts->host_field.ptr && facts->host_field.ptr != r->sconn->host &&
        facts->host_field.len <= sizeof(r->sconn->host)) {
        /* A new Host value: remembered for the next request on this connection. */
        memcpy(r->sconn->host, facts->host_field.ptr, facts->host_field.len);
        r->sconn->host_len = facts->host_field.len;
        r->sconn->host_name_len = facts->host_field_name_len;
    }
    return 0;
}

_Static_assert(sizeof(((struct csgi_request *)0)->remote_addr) >=
                   sizeof(((struct srv_conn *)0)->addr),
               "the request's remote_addr holds the connection's");

/*
 * The environ's server_name: the request's host name, NUL-terminated. When
 * the connection's Host memo held, a copy of fixed size from it into the
 * request; else in the arena, unless it is terminated already.
 */
static struct csgi_str
server_name(struct csgi_request *r)
{
    const struct csgi__head_facts *f = &r->facts;

    if (!f->target.host && r->sconn && f->host_field.ptr == r->sconn->host &&
        f->host_len < sizeof(r->server_name)) {
        csgi__copy(r->server_name, r->sconn->host, sizeof(r->sconn->host));
        r->server_name[f->host_len] = '\0';
        return cstr(r->server_name, f->host_len);
    }
    if (f->host[f->host_len] == '\0')
        return cstr(f->host, f->host_len);
    return arena_str(r, f->host, f->host_len);
}

/*
 * A trusted proxy's word on the client (--trusted-proxy): the host core's
 * rule. The client's address goes into the request's remote_addr too, so
 * that the logs and a crash report name the client, not the proxy.
 */
static void
forwarded(struct csgi_request *r)
{
    struct csgi_environ *e = &r->env;
    /* In the arena: only requests through a trusted proxy need it (a waiting one is smaller). */
    struct csgi__fwd_buf *fwd = srv_arena_alloc(&r->arena, sizeof(*fwd));

    if (!fwd) {
        srv_log(SRV_LOG_ERROR, "out of memory for a trusted proxy's headers: not applied");
        return;
    }
    if (!csgi__forwarded_apply(r->h->trusted, r->h->n_trusted, e, fwd))
        return;
    if (e->remote_addr.ptr == fwd->addr) {
        memcpy(r->remote_addr, fwd->addr, sizeof(fwd->addr));
        e->remote_addr = cstr(r->remote_addr, e->remote_addr.len);
    }
}

/*
 * A TLS connection's facts, taken at its first request (the handshake is
 * over once a request line has arrived), kept with the connection.
 */
static const struct srv_tls_facts *
tls_facts(struct csgi_request *r)
{
    const union MHD_ConnectionInfo *ci;

    if (!r->sconn)
        return NULL;
    if (!r->sconn->tls) {
        ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (ci && ci->tls_session)
            r->sconn->tls = srv_tls_facts_take(ci->tls_session);
    }
    return r->sconn->tls;
}

/*
 * The environ of a request on a TLS connection: url_scheme "https", the TLS
 * flag and the facts, copied into the arena (the request may outlive its
 * connection, which holds the facts).
 */
static void
tls_environ(struct csgi_request *r)
{
    const struct srv_tls_facts *f = tls_facts(r);
    struct csgi_tls *t;

    r->env.url_scheme = cstr("https", 5);
    r->env.flags |= CSGI_ENV_TLS;
    /* In the arena: only TLS requests need it (a waiting one is smaller). */
    if (!f || !(t = srv_arena_alloc(&r->arena, sizeof(*t))))
        return;
    srv_tls_facts_environ(f, t);
    t->protocol = arena_str(r, t->protocol.ptr, t->protocol.len);
    t->cipher = arena_str(r, t->cipher.ptr, t->cipher.len);
    t->sni = arena_str(r, t->sni.ptr, t->sni.len);
    t->client_verify = arena_str(r, t->client_verify.ptr, t->client_verify.len);
    t->client_s_dn = arena_str(r, t->client_s_dn.ptr, t->client_s_dn.len);
    t->client_i_dn = arena_str(r, t->client_i_dn.ptr, t->client_i_dn.len);
    r->env.tls = t;
}

static void
build_environ(struct csgi_request *r)
{
    struct srv_http *h = r->h;
    struct csgi_environ *e = &r->env;

    e->version = CSGI_ENVIRON_VERSION;
    e->flags = h->env_flags;
    e->request = r;
    e->request_method = cstr(r->method, r->method_len);
    /* The query ends the (NUL-terminated) raw target: no copy needed. */
    e->query_string = cstr(r->facts.target.query, r->facts.target.query_len);
    e->raw_target = cstr(r->raw_target, r->raw_target_len);
    e->content_type = r->facts.content_type;
    e->content_length = r->facts.content_length;
    if (r->facts.host && r->facts.host_len)
        e->server_name = server_name(r);
    else if (r->slot->l->family == AF_UNIX)
        e->server_name = cstr("localhost", 9);
    else
        e->server_name = cstr(r->slot->l->host, r->slot->host_len);
    e->server_port = cstr(r->slot->l->port, r->slot->port_len);
    e->server_protocol = cstr(r->version, r->version_len);
    e->url_scheme = cstr("http", 4);
    e->reserved = 0;
    e->tls = NULL;
    if (r->slot->l->tls)
        tls_environ(r);
    /*
     * Copied from the connection: a request can outlive its connection (a
     * body closed after the client left), its environ must not. The whole
     * array is copied, a copy of fixed size.
     */
    if (r->sconn) {
        csgi__copy(r->remote_addr, r->sconn->addr, sizeof(r->sconn->addr));
        e->remote_addr = cstr(r->remote_addr, r->sconn->addr_len);
        e->remote_port = r->sconn->port;
    } else {
        struct srv_conn tmp;
        conn_remote_addr(r->conn, &tmp);
        memcpy(r->remote_addr, tmp.addr, sizeof(tmp.addr));
        e->remote_addr = cstr(r->remote_addr, tmp.addr_len);
        e->remote_port = tmp.port;
    }
    e->headers = r->headers;
    e->n_headers = r->n_headers;
    if (h->n_trusted)
        forwarded(r);
    e->host = &h->api;
    e->request_id = cstr(r->request_id, CSGI__REQUEST_ID_LEN);
    /* The whole body is in hand (a chunked one too): its length is known (SPEC 4.2). */
    e->input_length = (int64_t)r->body_len;
    /* dispatch() sets the mount's fields (script_name, path_info, config). */
    r->env_built = 1;

    r->input_state.mem = r->body_mem;
    r->input_state.fd = r->body_fd;
    r->input_state.len = r->body_len;
    e->input = &r->input;
    e->errors = &r->errors;
    /* The head check let HTTP/1.1 and HTTP/1.0 through, nothing else. */
    r->core.flags =
        (r->facts.head_request ? CSGI__RESP_HEAD : 0) | (r->facts.http11 ? 0 : CSGI__RESP_HTTP10);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

/*
 * --health: answered here, before any plugin, for any method (HAProxy
 * checks with OPTIONS by default): 200 "ok" while serving, 503 "draining"
 * once the instance fails health (SIGTERM with --drain-delay) or this
 * worker drains.
 */
static enum MHD_Result
answer_health(struct csgi_request *r)
{
    int failing = atomic_load(&r->h->draining) || health_failing(r->h);
    static const char ok[] = "ok\n", draining[] = "draining\n";
    const char *text = failing ? draining : ok;
    size_t len = failing ? sizeof(draining) - 1 : sizeof(ok) - 1;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_PERSISTENT);

    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    r->sent_bytes = r->facts.head_request ? 0 : len;
    return queue(r, failing ? 503 : 200, resp);
}

static int
is_health(const struct csgi_request *r)
{
    const struct csgi__target *t = &r->facts.target;

    return r->h->health_len && t->path_len == r->h->health_len &&
           memcmp(t->path, r->h->cfg->health, t->path_len) == 0;
}

static enum MHD_Result
dispatch(struct csgi_request *r)
{
    struct srv_http *h = r->h;
    size_t iter = 0;
    struct srv_plugin *p;

    if (is_health(r))
        return answer_health(r);

    if (r->facts.target.asterisk) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        MHD_add_response_header(resp, "Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");
        return queue(r, 200, resp);
    }
    build_environ(r);
    while ((
        p = srv_plugins_match(h->plugins, r->facts.target.path, r->facts.target.path_len, &iter))) {
        /*
         * The environ lives in the request, not on this stack: a body may
         * read it until the request is finished (SPEC 4.1).
         */
        size_t ml = p->mount_len == 1 ? 0 : p->mount_len;
        struct csgi_body *body;
        int rc;

        r->plugin = p;
        r->env.script_name = cstr(p->mount, ml);
        r->env.path_info = cstr(r->facts.target.path + ml, r->facts.target.path_len - ml);
        r->env.config = p->config;
        r->env.n_config = p->n_config;
        r->input_state.pos = 0;
        /* The core takes the plugin's lock around next() and close() only when it has one. */
        r->core.ops = p->serialize ? &srv_core_ops : &srv_core_ops_threadsafe;
        body = csgi__response_begin(&r->core, p->desc.name, p->flags);
        publish_inflight(r);
        plugin_lock(p);
        rc = p->app(p->app_state, &r->env, &r->core.responder, body);
        plugin_unlock(p);
        if (!csgi__response_called(&r->core, rc)) {
            r->counted = 1;
            return respond(r, 0);
        }
    }
    if (!r->plugin) {
        /* No mount takes the path: the environ's mount fields say so. */
        r->env.script_name = cstr("", 0);
        r->env.path_info = cstr("", 0);
        r->env.config = NULL;
        r->env.n_config = 0;
    }
    /* Every mount declined (the last plugin tried still names log lines). */
    return respond(r, 1);
}

static enum MHD_Result
dispatch_timed(struct csgi_request *r)
{
    enum MHD_Result ret;

    busy_enter(r->h);
    ret = dispatch(r);
    busy_leave(r->h);
    return ret;
}

/*
 * With --tls-client-ca and --tls-client-verify require, a request on a
 * connection without a verified client certificate is refused (nginx's
 * "ssl_verify_client on" answers such a request with an error too, after the
 * handshake). True when refused, with r->early_why set.
 */
static int
tls_refused(struct csgi_request *r)
{
    const struct srv_tls_facts *f = tls_facts(r);

    if (!f) {
        r->early_why = "TLS session unknown";
        return 1;
    }
    if (srv_tls_client_required(r->h->cfg->tls) && !srv_tls_facts_verified(f)) {
        r->early_why = "no verified client certificate (--tls-client-verify require)";
        return 1;
    }
    return 0;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct daemon_slot *slot = cls;
    struct csgi_request *r = *con_cls;
    const struct srv_config *cfg = slot->h->cfg;

    (void)url;
    if (!r)
        return MHD_NO; /* on_uri could not allocate: drop the connection */
    if (r->state == REQ_NEW) {
        int status;

        r->conn = conn;
        r->method = method;
        r->version = version;
#if MHD_VERSION < 0x01000000
        r->uri_in_line = url; /* where on_uri()'s target began (0.9.75 passes that pointer) */
#endif
        r->method_len = strlen(method);
        r->version_len = strlen(version);
        r->state = REQ_HEAD;
        status = check_head(r);
        if (status)
            return queue_error(r, status, r->early_why, 1);
        if (r->slot->l->tls && tls_refused(r))
            return queue_error(r, 403, r->early_why, 1);
        if (r->facts.content_length > 0 && (uint64_t)r->facts.content_length > cfg->max_body) {
            return queue_error(r, 413, "Content-Length above --max-body", 1);
        }
        set_deadline(r, (r->facts.content_length > 0 || r->facts.chunked) ? cfg->body_timeout : 0);
        return MHD_YES;
    }
    if (r->state == REQ_DONE) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->state == REQ_WAIT) {
        /* Woken (resume(), or the worker's stop): plan again. */
        enum MHD_Result ret;

        if (r->client_gone)
            return MHD_NO; /* the client closed the connection while the request waited */
        busy_enter(r->h);
        publish_inflight(r);
        ret = respond(r, 0);
        busy_leave(r->h);
        return ret;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->body_too_big || r->body_io_error) {
            /* Discard, but not forever: past twice the limit, drop the connection. */
            r->body_len += n;
            if (r->body_len > 2 * (uint64_t)cfg->max_body + 65536)
                return MHD_NO;
            return MHD_YES;
        }
        if (r->body_len + n > cfg->max_body) {
            r->body_too_big = 1;
            r->body_len += n;
            return MHD_YES;
        }
        /* The store's -errno is kept: -ENOSPC means --max-spill, which is a 503. */
        r->body_io_error = srv_body_store(r, upload_data, n);
        return MHD_YES;
    }
    /* The whole request is here. */
    set_deadline(r, 0);
    if (r->body_too_big)
        return queue_error(r, 413, "chunked body above --max-body", 1);
    if (r->body_io_error == -ENOSPC)
        return queue_error(r, 503, "spilled request bodies above --max-spill", 1);
    if (r->body_io_error)
        return queue_error(r, 500, "request body could not be stored", 1);
    return dispatch_timed(r);
}

/* ------------------------------------------------------------------ */
/* Daemons                                                             */
/* ------------------------------------------------------------------ */

/*
 * True for libmicrohttpd's warnings about TCP options (TCP_NODELAY, TCP_CORK
 * and the "push" that needs them). libmicrohttpd (0.9.75 and 1.0.1 alike)
 * takes a connection handed over with MHD_add_connection() for a TCP one
 * until setsockopt() fails with EINVAL, ENOPROTOOPT or ENOTSOCK; Linux
 * answers EOPNOTSUPP on a unix socket, so it tries again on every response
 * and warns three times a request. A unix socket has no Nagle delay to push
 * through: there, these warnings say nothing. The format is compared, not the
 * text: the library passes its own literal (it is built without gettext).
 */
static int
tcp_option_warning(const char *fmt)
{
    static const char *const prefixes[] = {
        "Setting %s option to %s state failed",
        "Failed to push the data from buffers",
    };

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(fmt, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    }
    return 0;
}

/* libmicrohttpd's error log; cls is the daemon's listener slot. */
static void __attribute__((format(printf, 2, 0))) mhd_logger(void *cls, const char *fmt, va_list ap)
{
    const struct daemon_slot *slot = cls;
    char buf[512];

    if (slot && slot->l->family == AF_UNIX && tcp_option_warning(fmt))
        return;
    if (quiet_close) {
        quiet_close = 0;
        return;
    }
    vsnprintf(buf, sizeof(buf), fmt, ap);
    srv_log(SRV_LOG_WARN, "libmicrohttpd: %s", buf);
}

/* The daemon (its index) of a listener with the fewest connections. */
static unsigned
pick_daemon(struct daemon_slot *s)
{
    unsigned best = 0;
    unsigned best_n = ~0u;

    for (unsigned k = 0; k < s->n_d && s->n_d > 1; k++) {
        const union MHD_DaemonInfo *di =
            s->loop[k] ? NULL : MHD_get_daemon_info(s->d[k], MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        unsigned n = s->loop[k] ? srv_mhd_loop_connections(s->loop[k])
                     : di       ? di->num_connections
                                : 0;
        if (n < best_n) {
            best_n = n;
            best = k;
        }
    }
    return best;
}

/* Hand an accepted connection to the least busy daemon of its listener. */
static int
hand_connection(void *cls, size_t index, int fd, const struct sockaddr *addr, socklen_t addr_len)
{
    struct srv_http *h = cls;
    struct daemon_slot *s = &h->slots[index];
    unsigned k = pick_daemon(s);

    /* The loop (or libmicrohttpd) owns (and closes) the socket from here, also on failure. */
    if (s->loop[k])
        return srv_mhd_loop_hand(s->loop[k], fd, addr, addr_len);
    return MHD_add_connection(s->d[k], fd, addr, addr_len) == MHD_YES ? 0 : -1;
}

/* srv_mhd_loop_ops.add: on the daemon's loop thread. */
static int
loop_add(void *cls, struct MHD_Daemon *d, int fd, const struct sockaddr *addr, socklen_t addr_len)
{
    unsigned long started = conns_started;

    (void)cls;
    /*
     * A refusal after on_connection(STARTED) was reported closed too (and
     * counted out there); one before it never reaches on_connection().
     */
    return MHD_add_connection(d, fd, addr, addr_len) != MHD_YES && conns_started == started ? -1
                                                                                            : 0;
}

/* srv_mhd_loop_ops.dropped */
static void
loop_dropped(void *cls)
{
    struct srv_http *h = cls;

    srv_acceptor_conn_closed(h->acceptor);
}

struct srv_http *
srv_http_new(const struct srv_config *cfg, struct srv_listener *listeners, size_t n_listeners,
             unsigned workers)
{
    struct srv_http *h = calloc(1, sizeof(*h));
    const char *tmp;

    if (!h)
        return NULL;
    h->cfg = cfg;
    h->slots = calloc(n_listeners ? n_listeners : 1, sizeof(*h->slots));
    if (!h->slots) {
        free(h);
        return NULL;
    }
    h->n_slots = n_listeners;
    for (size_t i = 0; i < n_listeners; i++) {
        h->slots[i].l = &listeners[i];
        h->slots[i].h = h;
        h->slots[i].host_len = strlen(listeners[i].host);
        h->slots[i].port_len = strlen(listeners[i].port);
    }
    h->acceptor = srv_acceptor_new(cfg, listeners, n_listeners, hand_connection, h);
    if (!h->acceptor) {
        free(h->slots);
        free(h);
        return NULL;
    }
    if (cfg->n_trusted_proxies) {
        h->trusted = calloc(cfg->n_trusted_proxies, sizeof(*h->trusted));
        if (!h->trusted) {
            srv_acceptor_free(h->acceptor);
            free(h->slots);
            free(h);
            return NULL;
        }
        /* Each one parsed already when the configuration was read (config.c). */
        for (size_t i = 0; i < cfg->n_trusted_proxies; i++)
            h->n_trusted +=
                csgi__cidr_parse(cfg->trusted_proxies[i], &h->trusted[h->n_trusted]) == 0;
    }
    pthread_mutex_init(&h->conn_lock, NULL);
    pthread_mutex_init(&h->wake_lock, NULL);
    pthread_cond_init(&h->up_cond, NULL);
    h->conns.next = h->conns.prev = &h->conns;
    tmp = cfg->tmp_dir ? cfg->tmp_dir : getenv("TMPDIR");
    snprintf(h->tmp_dir, sizeof(h->tmp_dir), "%s", tmp && *tmp ? tmp : "/tmp");
    h->health_len = cfg->health ? strlen(cfg->health) : 0;
    h->env_flags = CSGI_ENV_INPUT_TERMINATED | CSGI_ENV_INPUT_BUFFERED;
    if (cfg->threads > 1)
        h->env_flags |= CSGI_ENV_MULTITHREAD;
    if (workers > 1)
        h->env_flags |= CSGI_ENV_MULTIPROCESS;

    /* In the worker, after fork(): each process draws its own prefix. */
    if (csgi__request_id_prefix(h->id_prefix) < 0)
        srv_log(SRV_LOG_WARN, "no random bytes for request ids: pid and clock used instead");
    srv_host_api_init(&h->api, h);
    if (srv_wait_loop_start(h) < 0) {
        srv_acceptor_free(h->acceptor);
        pthread_cond_destroy(&h->up_cond);
        pthread_mutex_destroy(&h->wake_lock);
        pthread_mutex_destroy(&h->conn_lock);
        free(h->slots);
        free(h);
        return NULL;
    }
    return h;
}

const struct csgi_host_api *
srv_http_api(struct srv_http *h)
{
    return &h->api;
}

/*
 * The options that make a https:// listener's daemons speak TLS (an empty
 * list for plain HTTP): the priority string, the certificate callback (SNI)
 * and, with --tls-client-ca, the CAs whose client certificates are asked
 * for. libmicrohttpd offers ALPN "http/1.1" (and "http/1.0") itself.
 */
/*
 * libmicrohttpd's unescape callback: leave the bytes as they are. The host
 * core decodes the path itself, from the raw target on_uri() copied before
 * libmicrohttpd touched it, and csgi-server reads neither the url that
 * libmicrohttpd passes to on_request() nor its parsed GET arguments: its own
 * percent-decoding of both would be work thrown away (about 90 instructions
 * per request).
 */
static size_t
unescape_none(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static int
tls_options(const struct srv_http *h, const struct daemon_slot *s, struct MHD_OptionItem *ops,
            unsigned *flags)
{
    const struct srv_tls *t = h->cfg->tls;
    size_t n = 0;

    if (s->l->tls) {
        if (!t) {
            srv_log(SRV_LOG_ERROR, "\"%s\" serves TLS but no certificate was loaded", s->l->spec);
            return -1;
        }
        /*
         * poll(), not epoll, for TLS: in epoll mode libmicrohttpd (0.9.75
         * and 1.0.1) keeps a connection whose handshake waits for the
         * client's next flight on its ready list (only a GNUTLS_E_AGAIN from
         * a record read clears its "readable" mark, never one from
         * gnutls_handshake()), so the daemon's thread spins, recv() and
         * epoll_wait(0), until the client answers: 32 rounds per resumed
         * handshake measured, on CPU the client needed, so the busier the
         * machine the longer the spin (one wrk connection: 80-250 resumed
         * handshakes/s, nginx 1,100-1,900; with poll() 900-2,400). poll()
         * waits on the direction the handshake asks for (POLLIN here), so
         * the thread sleeps. The cost: each round passes over all of the
         * daemon's connections (--threads splits them).
         */
        *flags = (*flags & ~(unsigned)MHD_USE_EPOLL) | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
                 MHD_USE_TLS;
        ops[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)srv_tls_priorities(t)};
        ops[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, srv_tls_cert_callback()};
        if (srv_tls_client_ca(t))
            ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0,
                                               (void *)srv_tls_client_ca(t)};
    }
    ops[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return 0;
}

int
srv_http_start(struct srv_http *h, struct srv_plugin_set *plugins)
{
    const struct srv_config *cfg = h->cfg;
    unsigned threads = cfg->threads ? cfg->threads : 1;

    if (threads > SRV_MAX_THREADS)
        threads = SRV_MAX_THREADS;
    /*
     * Suspension only when a plugin may wait (CSGI_PLUGIN_WAITS): with
     * MHD_ALLOW_SUSPEND_RESUME, libmicrohttpd 0.9.75 takes a mutex in every
     * round of its loop (about 80 instructions per keep-alive request).
     */
    int may_wait = srv_plugins_wait(plugins);

    h->plugins = plugins;
    /* Upgrades (SPEC 4.15), which imply suspension in libmicrohttpd: only for a plugin that asks.
     */
    for (size_t i = 0; plugins && i < plugins->n; i++)
        h->allow_upgrade |= (plugins->v[i].flags & CSGI_PLUGIN_UPGRADES) != 0;
    srv_tls_use(cfg->tls);
    for (size_t i = 0; i < h->n_slots; i++) {
        struct daemon_slot *s = &h->slots[i];
        /*
         * epoll, run by a thread of ours (mhd_loop.h), which wakes it itself:
         * no MHD_USE_ITC (0.9.75 drops it in this mode; on 1.0 it would cost
         * an eventfd write per resume). TLS keeps the library's thread
         * (tls_options()).
         */
        unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET |
                         (may_wait ? MHD_ALLOW_SUSPEND_RESUME : 0) |
                         (h->allow_upgrade ? MHD_ALLOW_UPGRADE : 0);
        struct MHD_OptionItem tls_ops[4];
        /*
         * --max-connections is the acceptor's to keep: it hands over no more
         * than that (over_share()), to whichever daemon pick_daemon() likes.
         * A daemon's own limit must never refuse one of those, because a
         * connection it refuses after MHD_add_connection() said yes is
         * closed unanswered and never reported closed, so the acceptor would
         * count it for good. Hence the whole limit for every daemon, plus
         * one: libmicrohttpd (0.9.75 and 1.0.1) reports a connection closed
         * (on_connection()) before it counts it down, one at a time in the
         * daemon's thread, so a daemon may count one connection more than
         * the acceptor does.
         */
        unsigned limit = cfg->max_connections < UINT_MAX ? cfg->max_connections + 1 : UINT_MAX;
        /* The per-IP limit is libmicrohttpd's to keep, per daemon: split it. */
        unsigned per_ip = s->l->family == AF_UNIX && !s->l->proxy
                              ? 0
                              : (cfg->max_conn_per_ip + threads - 1) / threads;
        struct MHD_OptionItem ops[] = {
            {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, s},
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)limit, NULL},
            {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)per_ip, NULL},
            {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->conn_timeout, NULL},
            {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)cfg->conn_memory, NULL},
            {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, s},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
            {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
            {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape_none, NULL},
#if MHD_VERSION >= 0x01000000
            /*
             * libmicrohttpd 1.0: discipline level 1 ("highly loaded public
             * servers"): obs-fold, bare LF, whitespace in odd places and CL
             * with TE are refused by its own (well-formed) 400.
             */
            {MHD_OPTION_CLIENT_DISCIPLINE_LVL, 1, NULL},
#else
            /*
             * libmicrohttpd 0.9.75 not strict: its own 400 for a missing Host
             * repeats its status line; check_head() refuses the same requests
             * cleanly.
             */
            {MHD_OPTION_STRICT_FOR_CLIENT, 0, NULL},
#endif
            {MHD_OPTION_END, 0, NULL},
        };

        if (tls_options(h, s, tls_ops, &flags) < 0)
            return -1;
        for (unsigned k = 0; k < threads; k++) {
            const struct srv_mhd_loop_ops lo = {loop_add, loop_dropped, h};

            s->d[k] = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, ops,
                                       MHD_OPTION_ARRAY, tls_ops, MHD_OPTION_END);
            if (!s->d[k]) {
                srv_log(SRV_LOG_ERROR, "cannot start libmicrohttpd for \"%s\"", s->l->spec);
                return -1;
            }
            if (!(flags & MHD_USE_INTERNAL_POLLING_THREAD) &&
                !(s->loop[k] = srv_mhd_loop_start(s->d[k], &lo))) {
                MHD_stop_daemon(s->d[k]);
                return -1;
            }
            s->n_d = k + 1;
        }
    }
    return srv_acceptor_start(h->acceptor);
}

void
srv_http_drain(struct srv_http *h)
{
    atomic_store(&h->draining, 1);
    /* Stop accepting; the shared sockets stay open for the other workers. */
    srv_acceptor_stop(h->acceptor);
    /* Requests that wait for resume() end now: they could wait past any graceful timeout. */
    srv_wait_stop(h);
}

void
srv_http_set_score(struct srv_http *h, struct srv_score *sc, struct srv_scoreboard *board)
{
    h->score = sc;
    h->board = board;
    srv_acceptor_set_score(h->acceptor, sc, board);
}

unsigned long long
srv_http_inflight(struct srv_http *h)
{
    return atomic_load(&h->stats.inflight);
}

struct srv_http_stats *
srv_http_stats(struct srv_http *h)
{
    return &h->stats;
}

void
srv_http_free(struct srv_http *h)
{
    if (!h)
        return;
    srv_acceptor_stop(h->acceptor);
    /* libmicrohttpd must not stop with a connection suspended (parked ones end first). */
    srv_wait_stop(h);
    /* Nor with an upgraded connection open (SPEC 4.15: the graceful timeout is over). */
    srv_wait_upgrades_end(h);
    for (size_t i = 0; i < h->n_slots; i++) {
        for (unsigned k = 0; k < h->slots[i].n_d; k++) {
            if (h->slots[i].loop[k])
                srv_mhd_loop_stop(h->slots[i].loop[k]); /* which stops the daemon */
            else
                MHD_stop_daemon(h->slots[i].d[k]);
        }
    }
    srv_acceptor_free(h->acceptor);
    srv_wait_loop_stop(h);
    pthread_cond_destroy(&h->up_cond);
    pthread_mutex_destroy(&h->wake_lock);
    pthread_mutex_destroy(&h->conn_lock);
    free(h->trusted);
    free(h->slots);
    free(h);
}
