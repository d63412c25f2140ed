/*
 * The event loop of a plain libmicrohttpd daemon (see mhd_loop.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "mhd_loop.h"

/* libmicrohttpd's epoll batch (MAX_EVENTS in daemon.c, 0.9.75 and 1.0.1). */
#define MHD_BATCH 128

/* A connection handed over and not added yet. */
struct handed {
    int fd;
    socklen_t addr_len;
    struct sockaddr_storage addr;
};

/* Handed connections: the acceptor appends under the lock, the loop takes the lot. */
struct hand_queue {
    struct handed *v;
    size_t n;
    size_t cap;
};

struct srv_mhd_loop {
    struct MHD_Daemon *d;
    struct srv_mhd_loop_ops ops;
    int epfd; /* the daemon's epoll descriptor */
    int wake; /* eventfd, edge-triggered in the daemon's set; never read */
    pthread_t thread;
    atomic_int stop;
    /* Set with the write to wake (a connection queued, a poke, stop); the loop clears it. */
    atomic_int pending;
    /* Connections handed over and not closed yet (srv_mhd_loop_connections()). */
    atomic_uint conns;
    pthread_mutex_t lock;
    struct hand_queue q;      /* under lock */
    struct hand_queue taking; /* the loop thread's own */
    /* Deferred work (srv_mhd_loop_defer()), oldest first, under lock. */
    struct srv_mhd_task *tasks, *tasks_tail;
    size_t n_tasks;
};

/* Something for the loop: wake it, once until it has looked. */
static void
wake_up(struct srv_mhd_loop *lp)
{
    uint64_t one = 1;

    /* Each write is an edge in the daemon's set; only a full counter (never) fails. */
    if (!atomic_exchange(&lp->pending, 1))
        (void)!write(lp->wake, &one, sizeof(one));
}

static _Thread_local struct srv_mhd_loop *current;

struct srv_mhd_loop *
srv_mhd_loop_current(void)
{
    return current;
}

void
srv_mhd_loop_poke(struct srv_mhd_loop *lp)
{
    if (lp)
        wake_up(lp);
}

unsigned
srv_mhd_loop_connections(struct srv_mhd_loop *lp)
{
    return atomic_load(&lp->conns);
}

void
srv_mhd_loop_closed(struct srv_mhd_loop *lp)
{
    if (lp)
        atomic_fetch_sub(&lp->conns, 1);
}

int
srv_mhd_loop_hand(struct srv_mhd_loop *lp, int fd, const struct sockaddr *addr, socklen_t addr_len)
{
    struct hand_queue *q = &lp->q;

    if (addr_len > sizeof(q->v[0].addr)) {
        close(fd);
        return -1;
    }
    pthread_mutex_lock(&lp->lock);
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        struct handed *v = realloc(q->v, cap * sizeof(*v));
        if (!v) {
            pthread_mutex_unlock(&lp->lock);
            close(fd);
            return -1;
        }
        q->v = v;
        q->cap = cap;
    }
    atomic_fetch_add(&lp->conns, 1);
    q->v[q->n].fd = fd;
    q->v[q->n].addr_len = addr_len;
    memcpy(&q->v[q->n].addr, addr, addr_len);
    q->n++;
    pthread_mutex_unlock(&lp->lock);
    wake_up(lp);
    return 0;
}

void
srv_mhd_loop_defer(struct srv_mhd_loop *lp, struct srv_mhd_task *t)
{
    pthread_mutex_lock(&lp->lock);
    if (!t->queued) {
        t->queued = 1;
        t->next = NULL;
        if (lp->tasks_tail)
            lp->tasks_tail->next = t;
        else
            lp->tasks = t;
        lp->tasks_tail = t;
        lp->n_tasks++;
    }
    pthread_mutex_unlock(&lp->lock);
    wake_up(lp);
}

void
srv_mhd_loop_cancel(struct srv_mhd_loop *lp, struct srv_mhd_task *t)
{
    struct srv_mhd_task **pp, *prev = NULL;

    if (!lp)
        return;
    pthread_mutex_lock(&lp->lock);
    for (pp = &lp->tasks; t->queued && *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            if (lp->tasks_tail == t)
                lp->tasks_tail = prev;
            lp->n_tasks--;
            t->queued = 0;
            break;
        }
    }
    pthread_mutex_unlock(&lp->lock);
}

/*
 * Run the tasks queued before this call, one at a time: each is out of the
 * queue before it runs, so that it may be queued again (for the next round:
 * no more run than were queued when it began).
 */
static void
run_tasks(struct srv_mhd_loop *lp)
{
    size_t n;

    pthread_mutex_lock(&lp->lock);
    for (n = lp->n_tasks; n && lp->tasks; n--) {
        struct srv_mhd_task *t = lp->tasks;

        lp->tasks = t->next;
        if (!lp->tasks)
            lp->tasks_tail = NULL;
        lp->n_tasks--;
        t->queued = 0;
        pthread_mutex_unlock(&lp->lock);
        t->fn(t);
        pthread_mutex_lock(&lp->lock);
    }
    pthread_mutex_unlock(&lp->lock);
}

/* Take what the acceptor queued; the loop then adds (or drops) it. */
static struct hand_queue *
take_handed(struct srv_mhd_loop *lp)
{
    struct hand_queue t;

    pthread_mutex_lock(&lp->lock);
    t = lp->q;
    lp->q = lp->taking;
    pthread_mutex_unlock(&lp->lock);
    lp->taking = t;
    return &lp->taking;
}

/* A handed-over connection that never reached the daemon: counted out here and by the owner. */
static void
not_taken(struct srv_mhd_loop *lp)
{
    atomic_fetch_sub(&lp->conns, 1);
    lp->ops.dropped(lp->ops.cls);
}

static void
add_handed(struct srv_mhd_loop *lp)
{
    struct hand_queue *t = take_handed(lp);

    for (size_t i = 0; i < t->n; i++) {
        if (lp->ops.add(lp->ops.cls, lp->d, t->v[i].fd, (const struct sockaddr *)&t->v[i].addr,
                        t->v[i].addr_len) < 0)
            not_taken(lp);
    }
    t->n = 0;
}

static void
drop_handed(struct srv_mhd_loop *lp)
{
    struct hand_queue *t = take_handed(lp);

    for (size_t i = 0; i < t->n; i++) {
        close(t->v[i].fd);
        not_taken(lp);
    }
    t->n = 0;
}

/* The daemon's own wait: 0 when it has work left, -1 when no connection has a deadline. */
static int
daemon_wait_ms(struct MHD_Daemon *d)
{
    MHD_UNSIGNED_LONG_LONG ms;

    if (MHD_get_timeout(d, &ms) != MHD_YES)
        return -1;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/*
 * True when the daemon's epoll set holds fewer descriptors than a full batch
 * (its connections and the wake, with room to spare): then its own wait
 * cannot hit the full-batch re-wait (mhd_loop.h), and one blocking call
 * instead of two serves each round. Only this thread adds connections, so the
 * count cannot grow during the call. (Counted here, not asked of the library:
 * on 0.9.75, MHD_get_daemon_info() cleans closed connections up, which only
 * this thread may do; a connection is counted from its hand-over.)
 */
static int
below_batch(struct srv_mhd_loop *lp)
{
    return atomic_load(&lp->conns) + 3 < MHD_BATCH;
}

/* Never expected (epoll and the descriptor are the daemon's own): say so once, do not spin. */
static void
loop_failed(int *failing, const char *why)
{
    if (!(*failing)++)
        srv_log(SRV_LOG_ERROR, "HTTP loop: %s", why);
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
}

static void *
loop_main(void *arg)
{
    struct srv_mhd_loop *lp = arg;
    int failing = 0;

    current = lp;
    for (;;) {
        int woken = 0;

        if (atomic_load(&lp->pending)) {
            /* A wake from here on writes again; what came before it is taken now. */
            atomic_store(&lp->pending, 0);
            if (atomic_load(&lp->stop))
                break;
            add_handed(lp);
            run_tasks(lp);
            woken = 1;
        }
        if (below_batch(lp)) {
            /* The wake is in the daemon's set too: its wait ends for it (and skips it). */
            if (MHD_run_wait(lp->d, -1) != MHD_YES)
                loop_failed(&failing, "libmicrohttpd's wait failed");
            continue;
        }
        /*
         * Readable while the daemon's set has events (the wake's too) it has
         * not taken. Not after a wake: its edge may have been taken inside the
         * last MHD_run() with a resume coalesced into it, and 0.9.75's
         * MHD_get_timeout() does not count resumes (MHD_run_wait() above
         * resumes before it waits): MHD_run() resumes them first.
         */
        struct pollfd p = {lp->epfd, POLLIN, 0};
        if (poll(&p, 1, woken ? 0 : daemon_wait_ms(lp->d)) < 0 && errno != EINTR) {
            loop_failed(&failing, strerror(errno));
            continue;
        }
        MHD_run(lp->d);
    }
    drop_handed(lp);
    run_tasks(lp);
    /* On this thread: the connections' end callbacks run where their requests ran. */
    MHD_stop_daemon(lp->d);
    return NULL;
}

static void
loop_free(struct srv_mhd_loop *lp)
{
    if (lp->wake >= 0)
        close(lp->wake);
    pthread_mutex_destroy(&lp->lock);
    free(lp->q.v);
    free(lp->taking.v);
    free(lp);
}

struct srv_mhd_loop *
srv_mhd_loop_start(struct MHD_Daemon *d, const struct srv_mhd_loop_ops *ops)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
    struct srv_mhd_loop *lp = calloc(1, sizeof(*lp));
    /*
     * The wake, edge-triggered (it is never read), in the daemon's set with a
     * NULL pointer, which libmicrohttpd (0.9.75 and 1.0.1) skips as its own
     * shutdown mark: its wait (MHD_run_wait()) ends, and so does the loop's
     * poll() on the set.
     */
    struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
    int err;

    if (!lp) {
        srv_log(SRV_LOG_ERROR, "HTTP loop: out of memory");
        return NULL;
    }
    lp->d = d;
    lp->ops = *ops;
    pthread_mutex_init(&lp->lock, NULL);
    lp->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!di || di->epoll_fd < 0 || lp->wake < 0) {
        srv_log(SRV_LOG_ERROR, "HTTP loop: %s",
                !di || di->epoll_fd < 0 ? "libmicrohttpd gave no epoll descriptor"
                                        : strerror(errno));
        loop_free(lp);
        return NULL;
    }
    lp->epfd = di->epoll_fd;
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->wake, &e) < 0) {
        srv_log(SRV_LOG_ERROR, "HTTP loop: epoll_ctl: %s", strerror(errno));
        loop_free(lp);
        return NULL;
    }
    err = pthread_create(&lp->thread, NULL, loop_main, lp);
    if (err) {
        srv_log(SRV_LOG_ERROR, "HTTP loop: cannot start a thread: %s", strerror(err));
        loop_free(lp);
        return NULL;
    }
    pthread_setname_np(lp->thread, "csgi-http");
    return lp;
}

void
srv_mhd_loop_stop(struct srv_mhd_loop *lp)
{
    if (!lp)
        return;
    atomic_store(&lp->stop, 1);
    wake_up(lp);
    pthread_join(lp->thread, NULL);
    loop_free(lp);
}
