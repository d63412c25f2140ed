/*
 * A request of csgi-server's HTTP front, and the front's own state: private
 * to the units of the front (http_mhd.c, host_api.c, body_store.c).
 */
#ifndef SRV_REQUEST_H
#define SRV_REQUEST_H

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <microhttpd.h>

#include "arena.h"
#include "config.h"
#include "core.h"
#include "forwarded.h"
#include "head.h"
#include "http.h"
#include "listener.h"
#include "mhd_loop.h"
#include "plugin_loader.h"
#include "scoreboard.h"
#include "tls.h"

/*
 * READER_BLOCK_CHUNKED: a chunked stream's response block. libmicrohttpd
 * (0.9.75 and 1.0.1) fills a chunked body into the connection's write buffer
 * and never reads this block (stream_response()): it only costs memory, per
 * waiting stream.
 */
#define READER_BLOCK         (32 * 1024)
#define READER_BLOCK_CHUNKED 16
#define FIRST_ARENA          4096
/*
 * The first arena block of a request block made while the thread's first one
 * is in use (req_alloc()): requests that overlap on one thread are mostly
 * ones that wait (SPEC 4.14), thousands at a time, using a few hundred bytes
 * (their request headers, at their count, and a copy of the response head
 * included). Such a block has no room for INLINE_HEADERS nor for head copies.
 * Its size is learnt per thread from what such requests held when they began
 * to wait, and SMALL_ARENA_SLACK more (srv_arena_first_size(), within
 * [SMALL_ARENA_MIN, SMALL_ARENA_MAX]); FIRST_ARENA_SMALL until one did.
 */
#define FIRST_ARENA_SMALL 640
#define SMALL_ARENA_MIN   256
#define SMALL_ARENA_MAX   2048
#define SMALL_ARENA_SLACK 64
/*
 * The thread's first block (the one its requests reuse, req_alloc()) has
 * room for this many request headers, and CSGI__HEAD_COPY bytes for the host
 * core's copy of a response head, after its first arena block.
 */
#define INLINE_HEADERS 16

enum req_state {
    REQ_NEW = 0, /* URI seen, head not yet checked */
    REQ_HEAD,    /* head checked; body may be arriving */
    REQ_DONE,    /* response queued */
    REQ_WAIT     /* parked before its response could be queued (CSGI_PENDING, wait.c) */
};

struct finished_cb {
    csgi_finished_fn fn;
    void *arg;
    struct finished_cb *next;
};

/* Connection state for the header/body deadline (slowloris guard). */
struct srv_conn {
    int fd;
    atomic_llong deadline_ms; /* 0: no deadline */
    struct srv_conn *prev, *next;
    /* The client's address as text (addr_len 0: unknown) and port. */
    char addr[INET6_ADDRSTRLEN];
    size_t addr_len;
    uint16_t port;
    /* The last accepted Host value (host_len 0: none), and its name's length. */
    char host[64];
    size_t host_len;
    size_t host_name_len;
    /*
     * The last head accepted and what the checks found (gateway/core/head.h),
     * from the connection's second request on (NULL before, and when out of
     * memory): a connection that closes after one request never has one.
     */
    struct csgi__head_memo *head_memo;
    unsigned long requests;
    /* A TLS connection's facts, taken at its first request (tls_facts()); NULL before. */
    struct srv_tls_facts *tls;
};

/*
 * One listener. Its connections are spread over one libmicrohttpd daemon per
 * thread; the worker's acceptor thread accepts them (see acceptor_main()).
 */
struct srv_mhd_loop;

struct daemon_slot {
    struct MHD_Daemon *d[SRV_MAX_THREADS];
    /* The loop that runs d[k] (mhd_loop.h), NULL for a daemon with its own thread (TLS). */
    struct srv_mhd_loop *loop[SRV_MAX_THREADS];
    unsigned n_d;
    struct srv_listener *l;
    struct srv_http *h;
    size_t host_len;
    size_t port_len;
};

struct srv_http {
    const struct srv_config *cfg;
    struct srv_plugin_set *plugins;
    struct daemon_slot *slots;
    size_t n_slots;
    struct csgi_host_api api;
    uint32_t env_flags;
    atomic_int draining;
    atomic_ullong next_id;
    /* The first half of this process's request ids (csgi__request_id_prefix()). */
    char id_prefix[16];
    struct srv_http_stats stats;
    pthread_mutex_t conn_lock;
    struct srv_conn conns; /* list head */
    struct srv_score *score;
    /* The master's board (NULL in --check-config): health_failing. */
    struct srv_scoreboard *board;
    size_t health_len; /* strlen(cfg->health), 0: no --health */
    atomic_int thread_seq;
    struct srv_acceptor *acceptor;
    char tmp_dir[512];
    /* --trusted-proxy, parsed (the environ's rule: gateway/core/forwarded.h). */
    struct csgi__cidr *trusted;
    size_t n_trusted;
    /*
     * Requests parked for resume() (wait.c). The lock orders a park (and its
     * MHD_suspend_connection()) before the resume() that wakes it; stopping
     * is set once the worker drains: nothing parks any more.
     */
    pthread_mutex_t wake_lock;
    struct csgi_request *parked;
    unsigned n_parked;
    /* Written under wake_lock; atomic so that stopping() reads it without the lock. */
    atomic_int stopping;
    /* Host timers and descriptor watches (wait.c), under wake_lock. */
    struct srv_wait_loop *loop;
    /*
     * Upgraded connections (SPEC 4.15, wait.c), under wake_lock: those the
     * wake loop drives, and those handed over by libmicrohttpd that it has
     * not taken yet. Set when a loaded plugin declares CSGI_PLUGIN_UPGRADES
     * (the daemons then allow upgrades).
     */
    struct srv_upgrade *upgraded;
    struct srv_upgrade *up_starting;
    unsigned n_upgraded;
    pthread_cond_t up_cond;
    int allow_upgrade;
};

struct csgi_request {
    /* Set field by field by on_uri(). */
    struct srv_http *h;
    struct daemon_slot *slot;
    struct MHD_Connection *conn;
    /* The loop that runs the connection's daemon (mhd_loop.h), NULL for a TLS one. */
    struct srv_mhd_loop *mloop;
    struct srv_arena arena;
    uint64_t id;
    /* The environ's request_id: id_prefix, then id in hex (on_uri()). */
    char request_id[CSGI__REQUEST_ID_LEN + 1];
    struct timespec t0;
    struct timespec t1; /* when it ended, once t1_set (req_end_time()) */
    /* NUL-terminated, and padded for srv_score_set_inflight() (on_uri()). */
    char *raw_target;
    size_t raw_target_len;
    /* libmicrohttpd 0.9.75: the target's place in its request line (http_mhd.c check_head()). */
    const char *uri_in_line;
    struct srv_conn *sconn;
    int refs;
    int body_fd;

    /* Cleared by on_uri(): from t1_set to remote_addr. */
    int t1_set;
    int state;
    int deadline_cleared; /* the connection's deadline is 0 since set_deadline(r, 0) */

    /* Head. */
    const char *method;
    const char *version;
    size_t method_len;
    size_t version_len;
    struct csgi_header *headers;
    size_t n_headers;
    const char *early_why;

    /* Body storage. */
    char *body_mem;
    size_t body_cap;
    uint64_t body_len;
    int body_too_big;
    int body_io_error; /* 0, or the body store's -errno */

    struct srv_plugin *plugin;
    int env_built; /* env below is set (build_environ()) */

    uint64_t sent_bytes;
    int queued_status;
    int close_conn;

    struct finished_cb *finished;
    struct csgi__file_body *file_bodies;
    int toe;
    int counted;
    /* In srv_http.parked (wait.c), and that list's links: under srv_http.wake_lock. */
    int parked;
    struct csgi_request *park_prev, *park_next;
    /* Ended by the worker's stop while it waited: on_finished() says SHUTDOWN. */
    int stopped;
    /* The client closed its side while the request was parked (wait.c's loop saw it). */
    int client_gone;
    /*
     * The client closed its side while the request was awake (a stream
     * between two waits): client_gone once it parks again; a response that
     * ends before that ends as it would have.
     */
    int left_awake;
    /* Its timers and descriptor watches (wait.c slots, index + 1; 0: none). */
    unsigned watches;
    /* The slot watching the connection while parked (index + 1; 0: none). */
    unsigned park_slot;
    /*
     * Set on the request's own thread when it parks or arms a timer or watch
     * (the loop thread changes watches and park_slot): the end of a request
     * that never did needs no lock (srv_wait_request_done()).
     */
    int used_wait;
    /* Its first wait sized the thread's next small blocks (http_mhd.c small_arena_learn()). */
    int arena_learnt;
    /* The connection the application takes over after a 101 (wait.c), or NULL. */
    struct srv_upgrade *up;
    /*
     * A chunked stream on a daemon csgi-server runs itself (mhd_loop.h) that
     * waits is woken without libmicrohttpd (http_mhd.c, direct_run()): the
     * connection stays suspended there, and the loop's thread calls next()
     * and writes each chunk to the socket itself. wake_task.fn set: the
     * stream may (stream_response()); direct: it does (from its first wait on).
     */
    int direct;
    /* How its body ended, for reader() once handed back: 1 complete, 2 failed (0: not yet). */
    int direct_end;
    /* A chunk the socket did not take whole: its rest, held until writable (under wake_lock). */
    int direct_blocked;
    char *out;
    size_t out_len, out_off;
    struct srv_mhd_task wake_task;

    /*
     * Not cleared per request (t1_set to here is): each of
     * these is set up by its own init when it is first needed, so that the
     * per-request memset stays small.
     */
    /*
     * The environ's remote_addr (build_environ()): the connection's text,
     * copied whole, so that it is also padded for srv_score_set_inflight().
     */
    char remote_addr[SRV_INFLIGHT_ADDR_SIZE];
    /* The environ's server_name when the connection's Host memo held (build_environ()). */
    char server_name[sizeof(((struct srv_conn *)0)->host) + 1];
    /*
     * What the head check learned (check_head(): the target, framing, Host);
     * set by csgi__head_check() in place, read only once it accepted the head.
     */
    struct csgi__head_facts facts;
    /*
     * The environ lives here until the request is finished (SPEC 4.1). Every
     * field is set by build_environ() and dispatch(); read it only once
     * env_built is set.
     */
    struct csgi_environ env;
    /* The host core's response state (on_uri()), and what it planned (respond()). */
    struct csgi__response core;
    struct csgi__plan plan;
    /*
     * The environ's streams (build_environ(); the error stream's state in
     * on_uri()). Their tables are set once per request block (req_alloc(); the
     * block is reused by the thread's next request), the state per request.
     */
    struct csgi_input input;
    struct csgi_errors errors;
    struct csgi__input input_state;
    struct csgi__errors errors_state;
    /*
     * The size of the first arena block: FIRST_ARENA in the thread's first
     * block, else the thread's learnt small size (req_alloc()).
     */
    size_t first_arena;
    /*
     * The first arena block follows; in the thread's first block, then the
     * room for INLINE_HEADERS request headers (req_header_room()) and the
     * core's head room (csgi__response_head_room()).
     */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/*
 * The room for INLINE_HEADERS request headers after the first arena block of
 * the thread's first request block; NULL for a small block (its first arena
 * block is smaller, SMALL_ARENA_MAX).
 */
static inline struct csgi_header *
req_header_room(struct csgi_request *r)
{
    return r->first_arena == FIRST_ARENA ? (struct csgi_header *)((char *)(r + 1) + FIRST_ARENA)
                                         : NULL;
}

static inline struct csgi_str
cstr(const char *p, size_t n)
{
    struct csgi_str s;

    s.ptr = p;
    s.len = n;
    return s;
}

static inline struct csgi_str
arena_str(struct csgi_request *r, const char *p, size_t n)
{
    char *c = srv_arena_strndup(&r->arena, p, n);

    return cstr(c ? c : "", c ? n : 0);
}

static inline void
plugin_lock(struct srv_plugin *p)
{
    if (p && p->serialize)
        pthread_mutex_lock(&p->lock);
}

static inline void
plugin_unlock(struct srv_plugin *p)
{
    if (p && p->serialize)
        pthread_mutex_unlock(&p->lock);
}

static inline const char *
pname(const struct csgi_request *r)
{
    return r->plugin ? r->plugin->desc.name : "-";
}

#endif /* SRV_REQUEST_H */
