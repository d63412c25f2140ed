/*
 * The acceptor (see acceptor.h).
 *
 * Every worker waits on the shared listening sockets in its own thread,
 * accepts, and hands each connection to its libmicrohttpd daemons. The
 * daemons never touch a listening socket, so stopping one can never shut the
 * shared socket down, and a draining worker just stops accepting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "acceptor.h"
#include "log.h"
#include "scoreboard.h"

/* Connections accepted per wake-up and listener before the balance is checked again. */
#define ACCEPT_BURST 32

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
    pthread_t thread;
    int started;
    int epfd;
};

static void
publish_conns(struct srv_acceptor *a, long n)
{
    if (a->score)
        atomic_store(&a->score->connections, n);
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
    gen = atomic_load(&a->score->generation);
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        struct srv_score *sc = &a->board->slots[i];
        if (!atomic_load(&sc->pid) || atomic_load(&sc->state) != SRV_W_READY ||
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

/* Set the listening sockets in (or out of) the epoll set. */
static void
arm(struct srv_acceptor *a, int on)
{
    for (size_t i = 0; i < a->n_listeners; i++) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        /*
         * Level-triggered and not EPOLLEXCLUSIVE: every armed worker sees the
         * socket readable while connections wait, so a worker that stops
         * accepting (draining, or over its share) never strands a connection
         * that the kernel woke it for.
         */
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(a->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, a->listeners[i].fd, on ? &ev : NULL);
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
         * started: the balance check needs to see a burst as it happens.
         */
        if (a->hand(a->cls, index, fd, (const struct sockaddr *)&ss, sl) == 0)
            publish_conns(a, atomic_fetch_add(&a->conn_count, 1) + 1);
        if (over_share(a))
            return;
    }
}

static void *
acceptor_main(void *arg)
{
    struct srv_acceptor *a = arg;
    int armed = 1;

    arm(a, 1);
    while (!atomic_load(&a->stop)) {
        struct epoll_event ev[8];
        int n;

        if (armed != !over_share(a)) {
            armed = !armed;
            arm(a, armed);
        }
        n = epoll_wait(a->epfd, ev, 8, armed ? 100 : 5);
        for (int i = 0; i < n && !atomic_load(&a->stop) && !over_share(a); i++)
            accept_burst(a, ev[i].data.u32);
    }
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
    return a;
}

void
srv_acceptor_set_score(struct srv_acceptor *a, struct srv_score *sc, struct srv_scoreboard *board)
{
    a->score = sc;
    a->board = board;
}

int
srv_acceptor_start(struct srv_acceptor *a)
{
    for (size_t i = 0; i < a->n_listeners; i++) {
        int fd = a->listeners[i].fd;
        /* accept4() must not block: the socket is shared, another worker may win. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (a->epfd < 0) {
        srv_log(SRV_LOG_ERROR, "epoll_create1 failed: %s", strerror(errno));
        return -1;
    }
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
    pthread_join(a->thread, NULL);
    a->started = 0;
}

void
srv_acceptor_conn_closed(struct srv_acceptor *a)
{
    publish_conns(a, atomic_fetch_sub(&a->conn_count, 1) - 1);
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
    free(a);
}
