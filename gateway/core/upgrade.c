/*
 * Upgraded connections (SPEC 4.15; see core.h): the rules of upgrade() and
 * the state of a connection the application took over after a 101, written
 * once for both transports. A transport watches the descriptor for the
 * events the core asks for (csgi__upgrade_ops.want) and reports them with
 * csgi__upgrade_ready(); the core reads, calls the application, and writes
 * its queue without ever blocking. on_close() runs only from an entry point
 * of the transport, never from inside a callback: a write that fails during
 * another connection's callback marks the connection, which ends at its
 * next event.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "csgi_internal.h"

#define UPGRADE_MAGIC 0x55504752u
/* Bytes read per read(), and reads per event: one connection cannot hold the loop. */
#define READ_BLOCK     16384
#define READS_PER_TURN 4

/* True when the comma-separated list [p, p+n) holds @p token (ASCII case-insensitive). */
static int
list_has(const char *p, size_t n, const char *token)
{
    size_t tl = strlen(token), i = 0;

    while (i < n) {
        size_t s, e;

        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
            i++;
        s = i;
        while (i < n && p[i] != ',')
            i++;
        e = i;
        while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (e - s == tl && csgi__str_ieq(p + s, tl, token))
            return 1;
    }
    return 0;
}

int
csgi__upgrade_asked(const struct csgi_environ *env)
{
    struct csgi_str v;
    int conn = 0;

    if (!csgi__str_ieq(env->server_protocol.ptr, env->server_protocol.len, "HTTP/1.1"))
        return 0;
    if (csgi__header_get(env, "upgrade", 0, &v) != CSGI_OK || v.len == 0)
        return 0;
    for (size_t i = 0; !conn && csgi__header_get(env, "connection", i, &v) == CSGI_OK; i++)
        conn = list_has(v.ptr, v.len, "upgrade");
    return conn;
}

int
csgi__upgrade_begin(struct csgi__response *r, const struct csgi_environ *env, int allowed,
                    const struct csgi__upgrade_ops *ops, void *ctx,
                    const struct csgi_upgrade_handler *handler, void *arg,
                    struct csgi_upgrade **out)
{
    struct csgi_upgrade *u;

    if (!env || !handler || !out || !handler->on_data || !handler->on_close)
        return CSGI_EINVAL;
    *out = NULL;
    if (!allowed)
        return CSGI_ENOTSUP;
    if (!r->in_call || r->upgrade || !csgi__upgrade_asked(env))
        return CSGI_ESTATE;
    u = r->ops->alloc(r->ctx, sizeof(*u));
    if (!u)
        return CSGI_ENOMEM;
    memset(u, 0, sizeof(*u));
    u->magic = UPGRADE_MAGIC;
    u->state = CSGI__UP_ASKED;
    u->fd = -1;
    u->app = handler;
    u->arg = arg;
    u->ops = ops;
    u->ctx = ctx;
    u->hops = r->ops;
    u->hctx = r->ctx;
    r->upgrade = u;
    *out = u;
    return CSGI_OK;
}

/* Enter or leave the application's code (a transport serializes plugins that are not thread-safe).
 */
static void
enter(struct csgi_upgrade *u, int on)
{
    if (u->hops->app_enter)
        u->hops->app_enter(u->hctx, on);
}

static void
call_data(struct csgi_upgrade *u, const void *data, size_t len)
{
    enter(u, 1);
    u->app->on_data(u->arg, u, data, len);
    enter(u, 0);
}

static size_t
queued(const struct csgi_upgrade *u)
{
    return u->q_len - u->q_off;
}

/* Tell the transport what to wait for, when that changed. */
static void
want_update(struct csgi_upgrade *u)
{
    unsigned w = 0;

    if (u->fd < 0)
        return; /* not started (a write or close from call()): start() asks */
    if (u->state == CSGI__UP_OPEN || u->state == CSGI__UP_CLOSING) {
        /* A failed or closing connection needs an event soon: writable comes at once. */
        w = u->failed ? CSGI_WATCH_WRITE : u->peer_eof ? 0 : CSGI_WATCH_READ;
        if (queued(u) || (u->state == CSGI__UP_CLOSING && !u->shut_wr))
            w |= CSGI_WATCH_WRITE;
        /* A closing connection's timer: its queue's drain, then the wait for the client. */
        if (u->state == CSGI__UP_CLOSING)
            w |= CSGI__UP_LINGER;
    }
    if (w != u->want) {
        u->want = w;
        u->ops->want(u->ctx, w);
    }
}

/* Send what the queue holds, as far as the socket takes it. */
static void
flush(struct csgi_upgrade *u)
{
    while (queued(u) && !u->failed) {
        ssize_t n = send(u->fd, u->q + u->q_off, queued(u), MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            u->failed = 1;
            break;
        }
        u->q_off += (size_t)n;
        u->sent += (uint64_t)n;
    }
    if (u->q_off == u->q_len)
        u->q_off = u->q_len = 0;
}

int
csgi__upgrade_write(struct csgi_upgrade *u, const void *data, size_t len)
{
    if (!u || u->magic != UPGRADE_MAGIC || (len && !data))
        return CSGI_EINVAL;
    if (u->state == CSGI__UP_CLOSING || u->state == CSGI__UP_CLOSED || u->failed)
        return CSGI_ESTATE;
    if (len > CSGI__UPGRADE_HARD - queued(u))
        return CSGI_ETOOBIG;
    if (u->q_len + len > u->q_cap) {
        size_t cap = u->q_cap ? u->q_cap : 4096;
        char *q;

        if (u->q_off) {
            memmove(u->q, u->q + u->q_off, queued(u));
            u->q_len -= u->q_off;
            u->q_off = 0;
        }
        while (cap < u->q_len + len)
            cap *= 2;
        if (cap != u->q_cap) {
            q = realloc(u->q, cap);
            if (!q)
                return CSGI_ENOMEM;
            u->q = q;
            u->q_cap = cap;
        }
    }
    if (len)
        memcpy(u->q + u->q_len, data, len);
    u->q_len += len;
    if (u->state == CSGI__UP_OPEN)
        flush(u);
    want_update(u);
    if (queued(u) > CSGI__UPGRADE_SOFT) {
        u->owe_writable = 1;
        return 1;
    }
    return CSGI_OK;
}

int
csgi__upgrade_close(struct csgi_upgrade *u)
{
    if (!u || u->magic != UPGRADE_MAGIC)
        return CSGI_EINVAL;
    if (u->state == CSGI__UP_CLOSING || u->state == CSGI__UP_CLOSED)
        return CSGI_ESTATE;
    u->state = CSGI__UP_CLOSING;
    u->owe_writable = 0;
    want_update(u);
    return CSGI_OK;
}

/*
 * The last word: on_close(), then the transport lets go. The state and the
 * queue change inside the application's lock: an upgrade that ends before
 * its 101 went out ends on a request thread, while the loop may be writing
 * to it from another connection's callback (a broadcast).
 */
static void
finish(struct csgi_upgrade *u, int reason)
{
    int was_open;

    enter(u, 1);
    was_open = u->state != CSGI__UP_CLOSED;
    u->state = CSGI__UP_CLOSED;
    u->want = 0; /* done() below drops the watch and the linger */
    free(u->q);
    u->q = NULL;
    u->q_off = u->q_len = u->q_cap = 0;
    if (was_open)
        u->app->on_close(u->arg, u, reason);
    enter(u, 0);
    u->magic = 0;
    u->ops->done(u->ctx);
}

/* After the transport's event: end the connection, or go on waiting. */
static void
settle(struct csgi_upgrade *u)
{
    if (u->failed) {
        finish(u, u->state == CSGI__UP_CLOSING && u->shut_wr ? CSGI_FINISH_OK
                                                             : CSGI_FINISH_CLIENT_ABORT);
        return;
    }
    if (u->state == CSGI__UP_CLOSING && !queued(u) && !u->shut_wr) {
        /* Everything went out: close our side, and wait a whole linger for the client's. */
        shutdown(u->fd, SHUT_WR);
        u->shut_wr = 1;
        if (u->want & CSGI__UP_LINGER) {
            u->want &= ~CSGI__UP_LINGER; /* the drain's period dropped; want_update() asks anew */
            u->ops->want(u->ctx, u->want);
        }
    }
    if (u->peer_eof && !queued(u)) {
        /*
         * The client closed its side and what was queued went out: after
         * upgrade_close() that is the closing handshake done; before it, the
         * client left.
         */
        finish(u, u->state == CSGI__UP_CLOSING ? CSGI_FINISH_OK : CSGI_FINISH_CLIENT_ABORT);
        return;
    }
    if (u->state == CSGI__UP_OPEN && u->owe_writable && queued(u) <= CSGI__UPGRADE_SOFT / 2) {
        u->owe_writable = 0;
        if (u->app->on_writable) {
            enter(u, 1);
            u->app->on_writable(u->arg, u);
            enter(u, 0);
        }
        if (u->failed) {
            settle(u);
            return;
        }
    }
    want_update(u);
}

/* Read what is there (a bounded number of reads) and hand it to on_data(). */
static void
read_some(struct csgi_upgrade *u)
{
    char buf[READ_BLOCK];

    for (int k = 0; k < READS_PER_TURN && !u->failed && !u->peer_eof; k++) {
        ssize_t n = recv(u->fd, buf, sizeof(buf), MSG_DONTWAIT);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n == 0) {
            u->peer_eof = 1; /* the client closed its side: what is queued still goes out */
            return;
        }
        if (n < 0) {
            u->failed = 1; /* the connection broke */
            return;
        }
        if (u->state == CSGI__UP_OPEN || u->state == CSGI__UP_CLOSING)
            call_data(u, buf, (size_t)n);
        if ((size_t)n < sizeof(buf))
            return;
    }
}

void
csgi__upgrade_start(struct csgi_upgrade *u, int fd, const void *extra, size_t n)
{
    /* Closed from call() (upgrade_close() after its last write) is started too: its queue goes out.
     */
    if (u->fd >= 0 || (u->state != CSGI__UP_ASKED && u->state != CSGI__UP_CLOSING))
        return;
    u->fd = fd;
    if (u->state == CSGI__UP_ASKED)
        u->state = CSGI__UP_OPEN;
    if (n)
        call_data(u, extra, n);
    flush(u);
    settle(u);
}

void
csgi__upgrade_ready(struct csgi_upgrade *u, unsigned events)
{
    if (u->state != CSGI__UP_OPEN && u->state != CSGI__UP_CLOSING)
        return;
    if (events & CSGI_WATCH_WRITE)
        flush(u);
    if (events & CSGI_WATCH_READ)
        read_some(u);
    settle(u);
}

void
csgi__upgrade_stop(struct csgi_upgrade *u)
{
    if (u->state != CSGI__UP_OPEN || u->stop_told)
        return;
    u->stop_told = 1;
    if (u->app->on_stop) {
        enter(u, 1);
        u->app->on_stop(u->arg, u);
        enter(u, 0);
    } else
        csgi__upgrade_close(u);
    settle(u);
}

void
csgi__upgrade_linger(struct csgi_upgrade *u)
{
    if (!u || u->state != CSGI__UP_CLOSING)
        return;
    if (!u->shut_wr && !u->failed) {
        /* The queue still drains: another period while the client takes bytes. */
        if (u->sent != u->sent_at_linger) {
            u->sent_at_linger = u->sent;
            u->stalled = 0;
        } else {
            u->stalled++;
        }
        if ((uint64_t)u->stalled * CSGI__UPGRADE_LINGER_MS < CSGI__UPGRADE_DRAIN_STALL_MS) {
            u->ops->want(u->ctx, u->want);
            return;
        }
    }
    finish(u, u->shut_wr ? CSGI_FINISH_OK : CSGI_FINISH_CLIENT_ABORT);
}

void
csgi__upgrade_end(struct csgi_upgrade *u, int reason)
{
    if (!u || u->state == CSGI__UP_CLOSED)
        return;
    finish(u, reason);
}
