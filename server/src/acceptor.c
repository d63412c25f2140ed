/*
 * The acceptor (see acceptor.h).
 *
 * Every worker waits on the shared listening sockets in its own thread,
 * accepts, and hands each connection to its libmicrohttpd daemons. The
 * daemons never touch a listening socket, so stopping one can never shut the
 * shared socket down, and a draining worker just stops accepting.
 *
 * The thread is either armed (in epoll_wait() on the listening sockets and
 * its wake-up eventfd) or parked (in poll() on the eventfd alone), never
 * both, so parking costs no epoll_ctl(). It parks while this worker holds
 * more than its share of the generation's connections (over_share()), and a
 * connection that closes while it is parked wakes it at once through the
 * eventfd: with one request per connection, the counts go up and down on
 * every request, and a parked acceptor that slept a fixed time would leave
 * the connections in the backlog while every worker slept.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "clock.h"
#include "log.h"
#include "proxy_proto.h"
#include "scoreboard.h"

/* Connections accepted per wake-up and listener before the balance is checked again. */
#define ACCEPT_BURST 32

/* epoll_wait() timeout while armed: only a safety net, the eventfd wakes the thread. */
#define ARMED_WAIT_MS 100

/*
 * poll() timeout while parked over the share. A connection that closes here
 * wakes the thread at once; this bounds the wait for what cannot: another
 * worker's count going up, or a worker of the generation leaving.
 */
#define PARKED_WAIT_MS 5

/*
 * poll() timeout while parked at --max-connections: only a safety net. Only a
 * connection of this worker closing can end that wait, and it wakes the
 * thread (as does srv_acceptor_stop()).
 */
#define FULL_WAIT_MS 100

/*
 * How often over_share() looks at every scoreboard slot for workers. In
 * between it reads only the slots that held a worker at the last look: the
 * scoreboard has SRV_MAX_SLOTS slots a page or more apart, and reading them
 * all on every accept cost a tenth of the acceptor's time.
 */
#define PEER_SCAN_MS 100

/* epoll data of the wake-up eventfd; listeners use their index, PROXY waits PENDING_TAG + slot. */
#define WAKE_TAG    UINT32_MAX
#define PENDING_TAG 0x80000000u

/*
 * The time a connection on a PROXY listener has to send its whole header,
 * at most (--header-timeout when shorter). A balancer sends it with its
 * first segment; one that sends half a header and waits costs one
 * descriptor this long, never the accept thread.
 */
#define PROXY_WAIT_MS 3000

/*
 * A connection on a PROXY listener whose header is not read whole yet: it
 * is in the epoll set (tag PENDING_TAG + its index) until it is.
 */
struct pending {
    int fd; /* -1: free */
    size_t listener;
    long long deadline_ms;
    /* TLV bytes of a version 2 header still to read past (header longer than the peek). */
    size_t skip;
    struct sockaddr_storage peer; /* the balancer's address, from accept() */
    socklen_t peer_len;
    struct sockaddr_storage client; /* the header's client (client_len 0: the peer stands) */
    socklen_t client_len;
    int parsed;  /* the header is read, but for p->skip TLV bytes */
    int watched; /* in the epoll set */
};

struct srv_acceptor {
    const struct srv_config *cfg;
    struct srv_listener *listeners;
    size_t n_listeners;
    srv_hand_fn hand;
    void *cls;
    struct srv_score *score;
    struct srv_scoreboard *board;
    atomic_long conn_count;
    atomic_int stop;
    /* 1 while the thread is parked: srv_acceptor_conn_closed() then writes wakefd. */
    atomic_int parked;
    /* Slots that held a worker at the last full scan (at peer_scan_ms). */
    int peers[SRV_MAX_SLOTS];
    int n_peers;
    long long peer_scan_ms;
    pthread_t thread;
    int started;
    int epfd;
    int wakefd;
    /* Connections reading their PROXY header (allocated when a listener has the flag). */
    struct pending *pending;
    size_t pending_cap;
    size_t n_pending;
    long long proxy_wait_ms;
};

static void
publish_conns(struct srv_acceptor *a, long n)
{
    if (a->score)
        atomic_store(&a->score->connections, n);
}

static void
wake(struct srv_acceptor *a)
{
    uint64_t one = 1;

    /* EAGAIN: the counter is full, so the thread is woken already. */
    if (write(a->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        srv_log(SRV_LOG_WARN, "acceptor wake-up failed: %s", strerror(errno));
}

static void
drain_wake(struct srv_acceptor *a)
{
    uint64_t n;

    if (read(a->wakefd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        srv_log(SRV_LOG_WARN, "acceptor wake-up read failed: %s", strerror(errno));
}

/* Note which slots hold a worker (of any generation and state) now. */
static void
scan_peers(struct srv_acceptor *a, long long now)
{
    a->n_peers = 0;
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        if (atomic_load(&a->board->slots[i].pid))
            a->peers[a->n_peers++] = i;
    }
    a->peer_scan_ms = now;
}

/*
 * True when this worker is full, or holds more connections than its share among
 * the serving workers of its generation (from the scoreboard): it then stops
 * accepting for a moment and leaves new connections to the others. Without
 * this, the worker that wakes first takes every keep-alive connection of a
 * burst.
 */
static int
over_share(struct srv_acceptor *a)
{
    long mine, total = 0;
    int n = 0;
    unsigned gen;
    long long now;

    mine = atomic_load(&a->conn_count);
    /*
     * At --max-connections: accept nothing, so that new connections wait in
     * the listen backlog (for another worker, or for this one) instead of
     * being accepted and closed.
     */
    if (mine >= (long)a->cfg->max_connections)
        return 1;
    if (!a->board || !a->score)
        return 0;
    now = srv_clock_coarse_ms();
    if (a->n_peers == 0 || now - a->peer_scan_ms >= PEER_SCAN_MS)
        scan_peers(a, now);
    gen = atomic_load(&a->score->generation);
    /*
     * This worker counts with its own, current count. A worker that started
     * since the last scan is left out until the next: the balance is off for
     * a moment, but the rule below still holds within the workers counted.
     */
    if (atomic_load(&a->score->state) == SRV_W_READY) {
        total = mine;
        n = 1;
    }
    for (int k = 0; k < a->n_peers; k++) {
        struct srv_score *sc = &a->board->slots[a->peers[k]];
        if (sc == a->score || !atomic_load(&sc->pid) || atomic_load(&sc->state) != SRV_W_READY ||
            atomic_load(&sc->generation) != gen)
            continue;
        total += atomic_load(&sc->connections);
        n++;
    }
    if (n <= 1)
        return 0;
    /*
     * Over when this worker holds more than the average. Never true of every
     * worker at once: the least loaded one is at or below the average.
     */
    return mine * n > total;
}

/*
 * Wait while over the share: until a connection of this worker closes, the
 * acceptor is stopped, or PARKED_WAIT_MS pass (FULL_WAIT_MS at
 * --max-connections); then the caller checks again.
 *
 * A close wakes the thread also from full, and the connection handed over
 * next may find its daemon still counting the closed one: libmicrohttpd
 * reports a connection closed before it counts it down. The daemons' limit
 * leaves room for that one (srv_http_start()).
 */
static void
park(struct srv_acceptor *a)
{
    struct pollfd p = {.fd = a->wakefd, .events = POLLIN};

    /*
     * Set parked before checking the balance again: srv_acceptor_conn_closed()
     * lowers the count before it reads parked (both sequentially consistent),
     * so either the check sees the lower count or the closer sees parked and
     * writes the eventfd, which poll() then finds readable. No wake-up is lost.
     */
    atomic_store(&a->parked, 1);
    if (!atomic_load(&a->stop) && over_share(a)) {
        int full = atomic_load(&a->conn_count) >= (long)a->cfg->max_connections;
        poll(&p, 1, full ? FULL_WAIT_MS : PARKED_WAIT_MS);
    }
    atomic_store(&a->parked, 0);
    drain_wake(a);
}

/* ------------------------------------------------------------------ */
/* PROXY listeners: the header is read before the hand-over            */
/* ------------------------------------------------------------------ */

/* An address as text for a log line ("unix:" for a unix socket's peer). */
static const char *
addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
    const void *a = NULL;

    if (ss->ss_family == AF_INET)
        a = &((const struct sockaddr_in *)(const void *)ss)->sin_addr;
    else if (ss->ss_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
    else
        return "unix:";
    return inet_ntop(ss->ss_family, a, buf, (socklen_t)size) ? buf : "-";
}

/* Close a connection whose header did not come (why: logged with its listener and peer). */
static void
pending_close(struct srv_acceptor *a, struct pending *p, int level, const char *why)
{
    char text[INET6_ADDRSTRLEN];

    srv_log(level, "connection on \"%s\" from %s closed: %s", a->listeners[p->listener].spec,
            addr_text(&p->peer, text, sizeof(text)), why);
    close(p->fd);
    p->fd = -1;
    a->n_pending--;
}

/*
 * The header is read: hand the connection over with the client's address
 * when the header named one (libmicrohttpd's per-IP limit, the environ and
 * the logs then see the client), else with the balancer's own.
 */
static void
pending_hand(struct srv_acceptor *a, struct pending *p)
{
    const struct sockaddr_storage *ss = p->client_len ? &p->client : &p->peer;
    socklen_t sl = p->client_len ? p->client_len : p->peer_len;

    if (p->watched)
        epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    if (a->hand(a->cls, p->listener, p->fd, (const struct sockaddr *)ss, sl) == 0)
        publish_conns(a, atomic_fetch_add(&a->conn_count, 1) + 1);
    p->fd = -1;
    a->n_pending--;
}

/*
 * Peek at what there is of the header and, once its addresses are in, read
 * exactly the header (never a byte of the request after it). Returns 0 when
 * the header is read (p->skip may still count TLV bytes), 1 to wait for
 * more, -1 when the connection was closed.
 */
static int
pending_peek(struct srv_acceptor *a, struct pending *p)
{
    uint8_t buf[SRV_PROXY_ADDR_MAX];
    struct srv_proxy_header hdr;
    const char *why = "";
    ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_PEEK);
    int rc;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 1;
    if (n <= 0) {
        pending_close(a, p, SRV_LOG_INFO,
                      n == 0 ? "the peer left before its proxy protocol header" : strerror(errno));
        return -1;
    }
    rc = srv_proxy_parse(buf, (size_t)n, &hdr, &why);
    if (rc == SRV_PROXY_MORE)
        return 1;
    if (rc < 0) {
        pending_close(a, p, SRV_LOG_WARN, why);
        return -1;
    }
    if (!hdr.local) {
        memcpy(&p->client, &hdr.src, sizeof(hdr.src));
        p->client_len = hdr.src_len;
    }
    /* The peeked bytes are there: this read takes them at once. */
    n = recv(p->fd, buf, (size_t)rc < (size_t)n ? (size_t)rc : (size_t)n, 0);
    if (n <= 0) {
        pending_close(a, p, SRV_LOG_INFO, "read error in the proxy protocol header");
        return -1;
    }
    p->skip = (size_t)rc - (size_t)n;
    p->parsed = 1;
    return 0;
}

/*
 * Go on with a connection on a PROXY listener: read what has come of its
 * header; hand it over once the header is read whole. Returns 1 when the
 * connection is done with (handed over or closed), 0 while it waits.
 */
static int
pending_read(struct srv_acceptor *a, struct pending *p)
{
    uint8_t skip[512];

    /* An event fetched in the same batch as the one that closed it: nothing to do. */
    if (p->fd < 0)
        return 1;
    if (!p->parsed) {
        int rc = pending_peek(a, p);
        if (rc != 0)
            return rc < 0;
    }
    while (p->skip) {
        ssize_t n = recv(p->fd, skip, p->skip < sizeof(skip) ? p->skip : sizeof(skip), 0);
        if (n > 0) {
            p->skip -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        pending_close(a, p, SRV_LOG_INFO, "the peer left within its proxy protocol header");
        return 1;
    }
    pending_hand(a, p);
    return 1;
}

/*
 * A connection accepted on a PROXY listener: read its header now (it
 * usually came with the first segment), else wait for it in the epoll set.
 */
static void
pending_start(struct srv_acceptor *a, size_t index, int fd, const struct sockaddr_storage *ss,
              socklen_t sl)
{
    struct pending *p = NULL;
    struct epoll_event ev;

    for (size_t i = 0; i < a->pending_cap && a->n_pending < a->pending_cap; i++) {
        if (a->pending[i].fd < 0) {
            p = &a->pending[i];
            break;
        }
    }
    if (!p) {
        srv_log(SRV_LOG_WARN,
                "connection on \"%s\" closed: %zu connections wait for their "
                "proxy protocol header (--max-connections)",
                a->listeners[index].spec, a->n_pending);
        close(fd);
        return;
    }
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->listener = index;
    memcpy(&p->peer, ss, sizeof(*ss));
    p->peer_len = sl;
    p->deadline_ms = srv_clock_coarse_ms() + a->proxy_wait_ms;
    a->n_pending++;
    if (pending_read(a, p))
        return;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u32 = PENDING_TAG + (uint32_t)(p - a->pending);
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        pending_close(a, p, SRV_LOG_WARN, strerror(errno));
        return;
    }
    p->watched = 1;
}

/* Close the connections whose header is late (the time they had: PROXY_WAIT_MS). */
static void
pending_expire(struct srv_acceptor *a)
{
    long long now = srv_clock_coarse_ms();

    for (size_t i = 0; i < a->pending_cap && a->n_pending; i++) {
        struct pending *p = &a->pending[i];
        if (p->fd >= 0 && now > p->deadline_ms)
            pending_close(a, p, SRV_LOG_INFO, "no whole proxy protocol header in time");
    }
}

/*
 * The accept thread stops (a drain): hand over what has its header by now,
 * close the rest, as connections this worker never accepted would be.
 */
static void
pending_flush(struct srv_acceptor *a)
{
    for (size_t i = 0; i < a->pending_cap && a->n_pending; i++) {
        struct pending *p = &a->pending[i];
        if (p->fd >= 0 && !pending_read(a, p))
            pending_close(a, p, SRV_LOG_INFO, "stopping before its proxy protocol header came");
    }
}

static void
accept_burst(struct srv_acceptor *a, size_t index)
{
    struct srv_listener *l = &a->listeners[index];

    for (int k = 0; k < ACCEPT_BURST; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                srv_log(SRV_LOG_WARN, "accept on \"%s\" failed: %s", l->spec, strerror(errno));
                usleep(10 * 1000);
            }
            return;
        }
        /*
         * Count the connection now, not when the daemon thread reports it
         * started: the balance check needs to see a burst as it happens. A
         * PROXY listener's is counted once its header is read (pending_hand()).
         */
        if (l->proxy)
            pending_start(a, index, fd, &ss, sl);
        else if (a->hand(a->cls, index, fd, (const struct sockaddr *)&ss, sl) == 0)
            publish_conns(a, atomic_fetch_add(&a->conn_count, 1) + 1);
        if (over_share(a))
            return;
    }
}

static void *
acceptor_main(void *arg)
{
    struct srv_acceptor *a = arg;

    while (!atomic_load(&a->stop)) {
        struct epoll_event ev[8];
        int n;

        if (over_share(a)) {
            park(a);
            continue;
        }
        n = epoll_wait(a->epfd, ev, 8, ARMED_WAIT_MS);
        for (int i = 0; i < n && !atomic_load(&a->stop); i++) {
            uint32_t tag = ev[i].data.u32;
            if (tag == WAKE_TAG)
                drain_wake(a);
            else if (tag >= PENDING_TAG)
                pending_read(a, &a->pending[tag - PENDING_TAG]);
            else if (!over_share(a))
                accept_burst(a, tag);
        }
        if (a->n_pending)
            pending_expire(a);
    }
    pending_flush(a);
    return NULL;
}

struct srv_acceptor *
srv_acceptor_new(const struct srv_config *cfg, struct srv_listener *listeners, size_t n_listeners,
                 srv_hand_fn hand, void *cls)
{
    struct srv_acceptor *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->cfg = cfg;
    a->listeners = listeners;
    a->n_listeners = n_listeners;
    a->hand = hand;
    a->cls = cls;
    a->epfd = -1;
    a->wakefd = -1;
    return a;
}

void
srv_acceptor_set_score(struct srv_acceptor *a, struct srv_score *sc, struct srv_scoreboard *board)
{
    a->score = sc;
    a->board = board;
}

/* Put fd in the epoll set, level-triggered, tagged with tag. 0 or -1 (logged). */
static int
watch(struct srv_acceptor *a, int fd, uint32_t tag)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    /*
     * Level-triggered and not EPOLLEXCLUSIVE: every armed worker sees a
     * listening socket readable while connections wait, so a worker that stops
     * accepting (draining, or over its share) never strands a connection that
     * the kernel woke it for.
     */
    ev.events = EPOLLIN;
    ev.data.u32 = tag;
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        srv_log(SRV_LOG_ERROR, "epoll_ctl failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* With a PROXY listener: room for --max-connections connections waiting for their header. */
static int
pending_wanted(struct srv_acceptor *a)
{
    int any = 0;

    for (size_t i = 0; i < a->n_listeners; i++)
        any |= a->listeners[i].proxy;
    if (!any)
        return 0;
    a->pending_cap = a->cfg->max_connections;
    a->pending = calloc(a->pending_cap, sizeof(*a->pending));
    if (!a->pending) {
        srv_log(SRV_LOG_ERROR, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < a->pending_cap; i++)
        a->pending[i].fd = -1;
    a->proxy_wait_ms = (long long)a->cfg->header_timeout * 1000;
    if (a->proxy_wait_ms > PROXY_WAIT_MS)
        a->proxy_wait_ms = PROXY_WAIT_MS;
    return 0;
}

int
srv_acceptor_start(struct srv_acceptor *a)
{
    for (size_t i = 0; i < a->n_listeners; i++) {
        int fd = a->listeners[i].fd;
        /* accept4() must not block: the socket is shared, another worker may win. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    if (!a->pending && pending_wanted(a) < 0)
        return -1;
    if (a->epfd < 0) {
        a->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (a->epfd < 0) {
            srv_log(SRV_LOG_ERROR, "epoll_create1 failed: %s", strerror(errno));
            return -1;
        }
        a->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (a->wakefd < 0) {
            srv_log(SRV_LOG_ERROR, "eventfd failed: %s", strerror(errno));
            return -1;
        }
        if (watch(a, a->wakefd, WAKE_TAG) < 0)
            return -1;
        for (size_t i = 0; i < a->n_listeners; i++) {
            if (watch(a, a->listeners[i].fd, (uint32_t)i) < 0)
                return -1;
        }
    }
    atomic_store(&a->stop, 0);
    if (pthread_create(&a->thread, NULL, acceptor_main, a) != 0) {
        srv_log(SRV_LOG_ERROR, "cannot start the acceptor thread");
        return -1;
    }
    a->started = 1;
    return 0;
}

void
srv_acceptor_stop(struct srv_acceptor *a)
{
    if (!a || !a->started)
        return;
    atomic_store(&a->stop, 1);
    wake(a);
    pthread_join(a->thread, NULL);
    a->started = 0;
}

void
srv_acceptor_conn_closed(struct srv_acceptor *a)
{
    publish_conns(a, atomic_fetch_sub(&a->conn_count, 1) - 1);
    /* Only a parked thread needs the wake-up; an armed one would wake for nothing. */
    if (atomic_load(&a->parked))
        wake(a);
}

long
srv_acceptor_connections(struct srv_acceptor *a)
{
    return atomic_load(&a->conn_count);
}

void
srv_acceptor_free(struct srv_acceptor *a)
{
    if (!a)
        return;
    srv_acceptor_stop(a);
    if (a->epfd >= 0)
        close(a->epfd);
    if (a->wakefd >= 0)
        close(a->wakefd);
    free(a->pending);
    free(a);
}
