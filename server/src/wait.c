/*
 * Parking and waking requests (see wait.h). The host core keeps the wake
 * state (csgi__response_park() and csgi__response_resume()); this file adds
 * what libmicrohttpd needs: a suspended connection is resumed once, after it
 * was suspended (hence one lock for both), and none is left suspended when
 * the daemon stops (libmicrohttpd forbids MHD_stop_daemon() then).
 *
 * It also runs the worker's wake loop, one thread with an epoll set and a
 * timer heap: host timers and descriptor watches (csgi_host_api.timer() and
 * watch_fd()) wake their request when they fire, and the connection of a
 * parked request is watched for the client closing it (libmicrohttpd does
 * not look at a suspended connection). Every watch is a slot in one table,
 * named in epoll by index and generation, so that an event read just before
 * its watch was cancelled is recognised as stale under the lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <microhttpd.h>

#include "clock.h"
#include "log.h"
#include "mhd_loop.h"
#include "request.h"
#include "wait.h"

enum slot_kind { SLOT_FREE = 0, SLOT_TIMER, SLOT_FD, SLOT_PARK, SLOT_UP, SLOT_LINGER };

/*
 * An upgraded connection (SPEC 4.15): the host core's state (r->core.upgrade)
 * driven by the wake loop. Only the loop thread touches a started one.
 */
struct srv_upgrade {
    struct csgi_request *r;
    struct MHD_UpgradeResponseHandle *urh;
    int fd;
    unsigned slot;   /* its SLOT_UP (index + 1; 0: not started) */
    unsigned linger; /* its SLOT_LINGER timer (index + 1; 0: none) */
    unsigned events; /* gathered for this turn of the loop (struct up_turn) */
    int batched;
    char *extra; /* bytes libmicrohttpd read past the request head */
    size_t n_extra;
    int lost_extra;                  /* no memory to keep them: the connection cannot go on */
    struct srv_upgrade *prev, *next; /* srv_http.upgraded (started ones) */
    struct srv_upgrade *start_next;  /* srv_http.up_starting */
};

struct slot {
    enum slot_kind kind;
    uint32_t gen;
    struct csgi_request *r;
    struct srv_upgrade *up; /* SLOT_UP, SLOT_LINGER */
    unsigned next;          /* the request's next slot (index + 1; 0: none), or the free list's */
    int fd;                 /* SLOT_FD, SLOT_PARK: the descriptor in the epoll set */
    long long due_ms;       /* SLOT_TIMER: when it fires */
    size_t heap_index;      /* SLOT_TIMER: its place in the heap */
};

struct srv_wait_loop {
    int epfd;
    int evfd;
    pthread_t thread;
    int quit;
    struct slot *slots;
    size_t n_slots;
    unsigned free_list; /* index + 1; 0: none */
    unsigned *heap;     /* timer slot indexes, earliest due first */
    size_t heap_len, heap_cap;
    /* Upgraded connections: told of the stop already; to be ended (the worker exits). */
    int up_stop_done;
    int up_end_all;
};

/*
 * The upgraded connections one turn of the loop handles, each once, with
 * what happened to it: ready events, the end of its linger, the start, the
 * stop, the worker's exit (the UP_* bits beside enum csgi_watch_events).
 */
#define UP_FIRST_BATCH 64
#define UP_START       (1u << 9)
#define UP_STOP        (1u << 10)
#define UP_END         (1u << 11)

struct up_turn {
    struct srv_upgrade *first[UP_FIRST_BATCH];
    struct srv_upgrade **batch; /* first, or malloc'd when it grows */
    size_t n_batch, cap;
};

/* ------------------------------------------------------------------ */
/* Slots and the timer heap (all under srv_http.wake_lock)            */
/* ------------------------------------------------------------------ */

static int
slot_new(struct srv_wait_loop *L, enum slot_kind kind, struct csgi_request *r, unsigned *index)
{
    unsigned i;

    if (!L->free_list) {
        size_t n = L->n_slots ? L->n_slots * 2 : 64;
        struct slot *s = realloc(L->slots, n * sizeof(*s));

        if (!s)
            return CSGI_ENOMEM;
        for (size_t k = L->n_slots; k < n; k++) {
            s[k].kind = SLOT_FREE;
            s[k].gen = 0;
            s[k].next = k + 1 < n ? (unsigned)(k + 2) : 0;
        }
        L->free_list = (unsigned)L->n_slots + 1;
        L->slots = s;
        L->n_slots = n;
    }
    i = L->free_list - 1;
    L->free_list = L->slots[i].next;
    L->slots[i].kind = kind;
    L->slots[i].r = r;
    L->slots[i].next = 0;
    L->slots[i].fd = -1;
    *index = i;
    return CSGI_OK;
}

static void
heap_swap(struct srv_wait_loop *L, size_t a, size_t b)
{
    unsigned t = L->heap[a];

    L->heap[a] = L->heap[b];
    L->heap[b] = t;
    L->slots[L->heap[a]].heap_index = a;
    L->slots[L->heap[b]].heap_index = b;
}

static long long
heap_due(const struct srv_wait_loop *L, size_t i)
{
    return L->slots[L->heap[i]].due_ms;
}

static void
heap_fix(struct srv_wait_loop *L, size_t i)
{
    while (i > 0 && heap_due(L, (i - 1) / 2) > heap_due(L, i)) {
        heap_swap(L, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, m = i;

        if (l < L->heap_len && heap_due(L, l) < heap_due(L, m))
            m = l;
        if (l + 1 < L->heap_len && heap_due(L, l + 1) < heap_due(L, m))
            m = l + 1;
        if (m == i)
            return;
        heap_swap(L, i, m);
        i = m;
    }
}

static int
heap_push(struct srv_wait_loop *L, unsigned slot)
{
    if (L->heap_len == L->heap_cap) {
        size_t cap = L->heap_cap ? L->heap_cap * 2 : 64;
        unsigned *h = realloc(L->heap, cap * sizeof(*h));

        if (!h)
            return CSGI_ENOMEM;
        L->heap = h;
        L->heap_cap = cap;
    }
    L->heap[L->heap_len] = slot;
    L->slots[slot].heap_index = L->heap_len++;
    heap_fix(L, L->heap_len - 1);
    return CSGI_OK;
}

static void
heap_remove(struct srv_wait_loop *L, size_t i)
{
    L->heap_len--;
    if (i != L->heap_len) {
        L->heap[i] = L->heap[L->heap_len];
        L->slots[L->heap[i]].heap_index = i;
        heap_fix(L, i);
    }
}

/* Free slot @p i: out of the heap or the epoll set, its generation bumped. */
static void
slot_free(struct srv_wait_loop *L, unsigned i)
{
    struct slot *s = &L->slots[i];

    if (s->kind == SLOT_TIMER || s->kind == SLOT_LINGER)
        heap_remove(L, s->heap_index);
    else if (s->kind == SLOT_FD || s->kind == SLOT_PARK || s->kind == SLOT_UP)
        epoll_ctl(L->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    s->kind = SLOT_FREE;
    s->gen++;
    s->r = NULL;
    s->next = L->free_list;
    L->free_list = i + 1;
}

/* Unlink slot @p i from its request's list and free it. */
static void
slot_drop(struct srv_wait_loop *L, unsigned i)
{
    struct csgi_request *r = L->slots[i].r;

    for (unsigned *p = &r->watches; *p; p = &L->slots[*p - 1].next) {
        if (*p == i + 1) {
            *p = L->slots[i].next;
            break;
        }
    }
    slot_free(L, i);
}

static uint64_t
slot_token(const struct srv_wait_loop *L, unsigned i)
{
    return (uint64_t)L->slots[i].gen << 32 | i;
}

static void loop_poke(struct srv_wait_loop *L);

/* ------------------------------------------------------------------ */
/* Parking and waking                                                  */
/* ------------------------------------------------------------------ */

static void
parked_unlink(struct srv_http *h, struct csgi_request *r)
{
    if (r->park_prev)
        r->park_prev->park_next = r->park_next;
    else
        h->parked = r->park_next;
    if (r->park_next)
        r->park_next->park_prev = r->park_prev;
    r->park_prev = r->park_next = NULL;
    r->parked = 0;
    h->n_parked--;
}

/* Under the lock: the connection's watch goes (its descriptor is still open). */
static void
park_unwatch(struct srv_http *h, struct csgi_request *r)
{
    if (r->park_slot) {
        slot_free(h->loop, r->park_slot - 1);
        r->park_slot = 0;
    }
}

/*
 * Watch a parked request's connection for the client closing it. Once, at
 * its first park, until libmicrohttpd is done with the request (srv_wait_
 * conn_done()), edge-triggered: a request that waits again and again (a
 * stream of events) costs no epoll_ctl() per wake. An edge while the request
 * is awake marks the client gone; the next park sees that (srv_wait_park()).
 */
static void
park_watch(struct srv_http *h, struct csgi_request *r)
{
    struct srv_wait_loop *L = h->loop;
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET};
    unsigned i;

    if (r->park_slot || !L || !r->sconn || r->sconn->fd < 0 || slot_new(L, SLOT_PARK, r, &i) < 0)
        return;
    L->slots[i].fd = r->sconn->fd;
    ev.data.u64 = slot_token(L, i);
    if (epoll_ctl(L->epfd, EPOLL_CTL_ADD, r->sconn->fd, &ev) < 0) {
        L->slots[i].kind = SLOT_FREE; /* not in the set: nothing to delete */
        L->slots[i].gen++;
        L->slots[i].next = L->free_list;
        L->free_list = i + 1;
        return;
    }
    r->park_slot = i + 1;
}

/*
 * Resume a suspended connection in libmicrohttpd. A daemon csgi-server runs
 * itself has no inter-thread channel of libmicrohttpd's (mhd_loop.h): its
 * loop is woken too. The loop is read first: once resumed, the request may
 * end on that loop.
 */
static void
mhd_resume(struct csgi_request *r)
{
    struct srv_mhd_loop *lp = r->mloop;

    MHD_resume_connection(r->conn);
    srv_mhd_loop_poke(lp);
}

/* Wake a parked request: its loop's task when that writes it (http_mhd.c), else libmicrohttpd. */
static void
resume_conn(struct csgi_request *r)
{
    if (r->direct)
        srv_mhd_loop_defer(r->mloop, &r->wake_task);
    else
        mhd_resume(r);
}

/* Under the lock: watch the parked connection for room to write too, or no more. */
static int
park_want_write(struct srv_http *h, struct csgi_request *r, int on)
{
    struct srv_wait_loop *L = h->loop;
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0)};
    unsigned i;

    if (!r->park_slot)
        return -1;
    i = r->park_slot - 1;
    ev.data.u64 = slot_token(L, i);
    if (epoll_ctl(L->epfd, EPOLL_CTL_MOD, L->slots[i].fd, &ev) < 0)
        return -1;
    r->direct_blocked = on;
    return 0;
}

int
srv_wait_want_write(struct csgi_request *r, int on)
{
    int rc;

    pthread_mutex_lock(&r->h->wake_lock);
    rc = park_want_write(r->h, r, on);
    pthread_mutex_unlock(&r->h->wake_lock);
    return rc;
}

int
srv_wait_direct_due(struct csgi_request *r)
{
    int due;

    pthread_mutex_lock(&r->h->wake_lock);
    due = r->direct && !r->parked;
    pthread_mutex_unlock(&r->h->wake_lock);
    return due;
}

void
srv_wait_hand_back(struct csgi_request *r)
{
    pthread_mutex_lock(&r->h->wake_lock);
    if (r->direct_blocked)
        (void)park_want_write(r->h, r, 0);
    r->direct_blocked = 0;
    r->direct = 0;
    pthread_mutex_unlock(&r->h->wake_lock);
    mhd_resume(r);
}

int
srv_wait_park(struct csgi_request *r)
{
    struct srv_http *h = r->h;
    int rc;

    r->used_wait = 1;
    pthread_mutex_lock(&h->wake_lock);
    if (h->stopping) {
        rc = -1;
    } else {
        rc = csgi__response_park(&r->core);
        if (rc == 1) {
            r->parked = 1;
            r->park_prev = NULL;
            r->park_next = h->parked;
            if (h->parked)
                h->parked->park_prev = r;
            h->parked = r;
            h->n_parked++;
            park_watch(h, r);
            if (!r->direct) {
                MHD_suspend_connection(r->conn);
                /* Woken without libmicrohttpd from now on: only with the watch for the client. */
                r->direct = r->wake_task.fn && r->park_slot;
            }
            if (r->left_awake) {
                /* It left while the request was awake: woken at once to end. */
                r->client_gone = 1;
                parked_unlink(h, r);
                resume_conn(r);
            }
        }
    }
    pthread_mutex_unlock(&h->wake_lock);
    return rc;
}

/* resume() with the lock held. */
static int
wake_locked(struct srv_http *h, struct csgi_request *r)
{
    int rc = csgi__response_resume(&r->core);

    /* r->parked: not woken already by srv_wait_stop(), which leaves the core's bits alone. */
    if (rc == 1 && r->parked) {
        parked_unlink(h, r);
        resume_conn(r);
    }
    return rc < 0 ? rc : CSGI_OK;
}

int
srv_wait_resume(struct csgi_request *r)
{
    struct srv_http *h;
    int rc;

    if (!r)
        return CSGI_EINVAL;
    h = r->h;
    pthread_mutex_lock(&h->wake_lock);
    rc = wake_locked(h, r);
    pthread_mutex_unlock(&h->wake_lock);
    return rc;
}

void
srv_wait_stop(struct srv_http *h)
{
    pthread_mutex_lock(&h->wake_lock);
    h->stopping = 1;
    /* Upgraded connections hear of it on the loop (on_stop()). */
    if (h->loop && (h->upgraded || h->up_starting))
        loop_poke(h->loop);
    while (h->parked) {
        struct csgi_request *r = h->parked;

        /* Woken by the host, not the application: the wake bits stay as they are. */
        parked_unlink(h, r);
        r->stopped = 1;
        resume_conn(r);
    }
    pthread_mutex_unlock(&h->wake_lock);
}

unsigned
srv_wait_parked(struct srv_http *h)
{
    unsigned n;

    pthread_mutex_lock(&h->wake_lock);
    n = h->n_parked;
    pthread_mutex_unlock(&h->wake_lock);
    return n;
}

int
srv_wait_stopping(struct csgi_request *r)
{
    /*
     * Without the lock: it is asked in next() of every waiting stream. A
     * request is only ever stopped (r->stopped) once the worker is.
     */
    return r && atomic_load_explicit(&r->h->stopping, memory_order_acquire);
}

/* ------------------------------------------------------------------ */
/* Host timers and descriptor watches                                  */
/* ------------------------------------------------------------------ */

/* Tell the loop thread to look at the heap again. */
static void
loop_poke(struct srv_wait_loop *L)
{
    uint64_t one = 1;

    if (write(L->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        srv_log(SRV_LOG_WARN, "wake loop: write(eventfd) failed");
}

int
srv_wait_timer(struct csgi_request *r, uint64_t ms)
{
    struct srv_wait_loop *L;
    unsigned i;
    int rc;

    if (!r)
        return CSGI_EINVAL;
    if (ms > (uint64_t)INT32_MAX * 1000)
        ms = (uint64_t)INT32_MAX * 1000;
    r->used_wait = 1;
    pthread_mutex_lock(&r->h->wake_lock);
    L = r->h->loop;
    rc = atomic_load(&r->core.wake) & CSGI__WAKE_CLOSED ? CSGI_ESTATE
         : !L                                           ? CSGI_ENOSYS
                                                        : slot_new(L, SLOT_TIMER, r, &i);
    if (rc == CSGI_OK) {
        L->slots[i].due_ms = srv_clock_ms() + (long long)ms;
        rc = heap_push(L, i);
        if (rc < 0) {
            L->slots[i].kind = SLOT_FREE;
            L->slots[i].next = L->free_list;
            L->free_list = i + 1;
        } else {
            L->slots[i].next = r->watches;
            r->watches = i + 1;
            if (L->slots[i].heap_index == 0)
                loop_poke(L); /* the new earliest */
        }
    }
    pthread_mutex_unlock(&r->h->wake_lock);
    return rc;
}

int
srv_wait_watch_fd(struct csgi_request *r, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = EPOLLONESHOT};
    struct srv_wait_loop *L;
    unsigned i;
    int rc;

    if (!r || fd < 0 || !events || (events & ~(uint32_t)(CSGI_WATCH_READ | CSGI_WATCH_WRITE)))
        return CSGI_EINVAL;
    if (events & CSGI_WATCH_READ)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (events & CSGI_WATCH_WRITE)
        ev.events |= EPOLLOUT;
    r->used_wait = 1;
    pthread_mutex_lock(&r->h->wake_lock);
    L = r->h->loop;
    rc = atomic_load(&r->core.wake) & CSGI__WAKE_CLOSED ? CSGI_ESTATE
         : !L                                           ? CSGI_ENOSYS
                                                        : slot_new(L, SLOT_FD, r, &i);
    if (rc == CSGI_OK) {
        ev.data.u64 = slot_token(L, i);
        if (epoll_ctl(L->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            rc = errno == ENOMEM ? CSGI_ENOMEM : errno == EEXIST ? CSGI_EINVAL : CSGI_EBADF;
            L->slots[i].kind = SLOT_FREE;
            L->slots[i].next = L->free_list;
            L->free_list = i + 1;
        } else {
            L->slots[i].fd = fd;
            L->slots[i].next = r->watches;
            r->watches = i + 1;
        }
    }
    pthread_mutex_unlock(&r->h->wake_lock);
    return rc;
}

void
srv_wait_request_done(struct csgi_request *r)
{
    struct srv_wait_loop *L = r->h->loop;

    if (!r->used_wait)
        return;
    pthread_mutex_lock(&r->h->wake_lock);
    while (r->watches) {
        unsigned i = r->watches - 1;

        r->watches = L->slots[i].next;
        slot_free(L, i);
    }
    if (r->parked)
        parked_unlink(r->h, r);
    park_unwatch(r->h, r);
    pthread_mutex_unlock(&r->h->wake_lock);
}

void
srv_wait_conn_done(struct csgi_request *r)
{
    if (!r->park_slot)
        return; /* set and cleared under the lock, by this thread or with it parked */
    pthread_mutex_lock(&r->h->wake_lock);
    park_unwatch(r->h, r);
    pthread_mutex_unlock(&r->h->wake_lock);
}

/* Gather ready events of an upgraded connection for this turn (once per turn). */
static int
up_batch(struct up_turn *t, struct srv_upgrade *up, unsigned events)
{
    if (!up->batched) {
        if (t->n_batch == t->cap) {
            size_t cap = t->cap * 2;
            struct srv_upgrade **b = t->batch == t->first ? malloc(cap * sizeof(*b))
                                                          : realloc(t->batch, cap * sizeof(*b));

            if (!b)
                return 0; /* the next turn */
            if (t->batch == t->first)
                memcpy(b, t->first, sizeof(t->first));
            t->batch = b;
            t->cap = cap;
        }
        t->batch[t->n_batch++] = up;
        up->batched = 1;
    }
    up->events |= events;
    return 1;
}

/* One epoll event: wake the slot's request (a parked connection that closed: as gone). */
static void
loop_event(struct srv_http *h, uint64_t token, uint32_t events, struct up_turn *t)
{
    struct srv_wait_loop *L = h->loop;
    unsigned i = (unsigned)(token & 0xffffffffu);
    struct csgi_request *r;

    if (i >= L->n_slots || L->slots[i].gen != (uint32_t)(token >> 32))
        return; /* cancelled since epoll_wait() returned it */
    r = L->slots[i].r;
    if (L->slots[i].kind == SLOT_UP) {
        unsigned ev = 0;

        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            ev |= CSGI_WATCH_READ;
        if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            ev |= CSGI_WATCH_WRITE;
        up_batch(t, L->slots[i].up, ev);
        return;
    }
    if (L->slots[i].kind == SLOT_PARK) {
        /* A chunk held back (http_mhd.c direct_run()): the socket drained, or failed. */
        if (r->direct_blocked && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
            srv_mhd_loop_defer(r->mloop, &r->wake_task);
        if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
            return;
        if (r->parked) {
            r->client_gone = 1;
            parked_unlink(h, r);
            resume_conn(r);
        } else {
            r->left_awake = 1;
        }
        return;
    }
    if (L->slots[i].kind == SLOT_FD) {
        slot_drop(L, i);
        wake_locked(h, r);
    }
}

/* Fire what is due in the timer heap (a linger that ended: its connection, in the turn). */
static void
loop_timers(struct srv_http *h, struct up_turn *t)
{
    struct srv_wait_loop *L = h->loop;

    while (L->heap_len && heap_due(L, 0) <= srv_clock_ms()) {
        unsigned i = L->heap[0];
        struct csgi_request *r = L->slots[i].r;

        if (L->slots[i].kind == SLOT_LINGER) {
            struct srv_upgrade *up = L->slots[i].up;

            if (!up_batch(t, up, CSGI__UP_LINGER))
                return; /* the next turn, at once */
            slot_free(L, i);
            up->linger = 0;
            continue;
        }
        slot_drop(L, i);
        wake_locked(h, r);
    }
}

static void up_turn_take(struct srv_http *h, struct up_turn *t);
static void up_turn_run(struct up_turn *t);

static void *
loop_main(void *arg)
{
    struct srv_http *h = arg;
    struct srv_wait_loop *L = h->loop;
    struct epoll_event evs[64];
    struct up_turn t;

    for (;;) {
        long long wait_ms = -1;
        int n;

        pthread_mutex_lock(&h->wake_lock);
        if (L->quit) {
            pthread_mutex_unlock(&h->wake_lock);
            return NULL;
        }
        if (L->heap_len) {
            wait_ms = heap_due(L, 0) - srv_clock_ms();
            wait_ms = wait_ms < 0 ? 0 : wait_ms > 60000 ? 60000 : wait_ms;
        }
        pthread_mutex_unlock(&h->wake_lock);
        n = epoll_wait(L->epfd, evs, 64, (int)wait_ms);
        t.batch = t.first;
        t.n_batch = 0;
        t.cap = UP_FIRST_BATCH;
        pthread_mutex_lock(&h->wake_lock);
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u64 == UINT64_MAX) {
                uint64_t v;

                if (read(L->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    srv_log(SRV_LOG_WARN, "wake loop: read(eventfd) failed");
                continue;
            }
            loop_event(h, evs[k].data.u64, evs[k].events, &t);
        }
        loop_timers(h, &t);
        up_turn_take(h, &t);
        pthread_mutex_unlock(&h->wake_lock);
        /* The application's callbacks run without the lock: they may call resume(). */
        up_turn_run(&t);
    }
}

int
srv_wait_loop_start(struct srv_http *h)
{
    struct srv_wait_loop *L = calloc(1, sizeof(*L));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};

    if (!L)
        return -1;
    L->epfd = epoll_create1(EPOLL_CLOEXEC);
    L->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (L->epfd < 0 || L->evfd < 0 || epoll_ctl(L->epfd, EPOLL_CTL_ADD, L->evfd, &ev) < 0)
        goto error_close;
    h->loop = L;
    if (pthread_create(&L->thread, NULL, loop_main, h) != 0) {
        h->loop = NULL;
        goto error_close;
    }
    return 0;

error_close:
    if (L->epfd >= 0)
        close(L->epfd);
    if (L->evfd >= 0)
        close(L->evfd);
    free(L);
    srv_log(SRV_LOG_ERROR, "cannot start the wake loop (timers, descriptor watches)");
    return -1;
}

void
srv_wait_loop_stop(struct srv_http *h)
{
    struct srv_wait_loop *L = h->loop;

    if (!L)
        return;
    pthread_mutex_lock(&h->wake_lock);
    L->quit = 1;
    loop_poke(L);
    pthread_mutex_unlock(&h->wake_lock);
    pthread_join(L->thread, NULL);
    close(L->epfd);
    close(L->evfd);
    free(L->slots);
    free(L->heap);
    free(L);
    h->loop = NULL;
}

/* ------------------------------------------------------------------ */
/* Upgraded connections (SPEC 4.15)                                    */
/* ------------------------------------------------------------------ */

/* The core waits for other events: re-arm the descriptor, arm or drop the linger. */
static void
up_want(void *ctx, unsigned events)
{
    struct srv_upgrade *up = ctx;
    struct srv_http *h = up->r->h;
    struct srv_wait_loop *L = h->loop;
    struct epoll_event ev = {.events = 0};

    if (events & CSGI_WATCH_READ)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (events & CSGI_WATCH_WRITE)
        ev.events |= EPOLLOUT;
    pthread_mutex_lock(&h->wake_lock);
    if (up->slot) {
        ev.data.u64 = slot_token(L, up->slot - 1);
        epoll_ctl(L->epfd, EPOLL_CTL_MOD, up->fd, &ev);
    }
    if ((events & CSGI__UP_LINGER) && !up->linger && up->slot) {
        unsigned i;

        if (slot_new(L, SLOT_LINGER, up->r, &i) == CSGI_OK) {
            L->slots[i].up = up;
            L->slots[i].due_ms = srv_clock_ms() + CSGI__UPGRADE_LINGER_MS;
            if (heap_push(L, i) < 0) {
                L->slots[i].kind = SLOT_FREE;
                L->slots[i].next = L->free_list;
                L->free_list = i + 1;
            } else {
                up->linger = i + 1;
            }
        }
    } else if (!(events & CSGI__UP_LINGER) && up->linger) {
        slot_free(L, up->linger - 1);
        up->linger = 0;
    }
    pthread_mutex_unlock(&h->wake_lock);
}

/*
 * The connection up_done() let go last on this thread: compared, never read
 * (its memory, and perhaps its request's, is gone).
 */
static _Thread_local const struct srv_upgrade *up_just_done;

/* on_close() has returned: out of the loop, the socket back to libmicrohttpd to close. */
static void
up_done(void *ctx)
{
    struct srv_upgrade *up = ctx;

    up_just_done = up;
    struct csgi_request *r = up->r;
    struct srv_http *h = r->h;
    int counted = up->slot != 0;

    pthread_mutex_lock(&h->wake_lock);
    if (up->linger)
        slot_free(h->loop, up->linger - 1);
    if (up->slot) {
        slot_free(h->loop, up->slot - 1);
        if (up->prev)
            up->prev->next = up->next;
        else
            h->upgraded = up->next;
        if (up->next)
            up->next->prev = up->prev;
    }
    pthread_mutex_unlock(&h->wake_lock);
    r->up = NULL;
    free(up->extra);
    /* The request may be finished (on_completed()) from here on, on libmicrohttpd's thread. */
    if (up->urh) {
        struct srv_mhd_loop *lp = r->mloop;

        MHD_upgrade_action(up->urh, MHD_UPGRADE_ACTION_CLOSE); /* it resumes the connection */
        srv_mhd_loop_poke(lp);
    }
    /*
     * Counted out only now: srv_wait_upgrades_end() waits for it, and the
     * daemon and its loop are stopped and freed once it returns.
     */
    if (counted) {
        pthread_mutex_lock(&h->wake_lock);
        h->n_upgraded--;
        pthread_cond_broadcast(&h->up_cond);
        pthread_mutex_unlock(&h->wake_lock);
    }
    free(up);
}

static const struct csgi__upgrade_ops up_ops = {up_want, up_done};

int
srv_upgrade_begin(struct csgi_request *r, const struct csgi_upgrade_handler *handler, void *arg,
                  struct csgi_upgrade **out)
{
    struct srv_upgrade *up;
    int allowed, rc;

    if (!r || !handler || !out)
        return CSGI_EINVAL;
    allowed =
        r->h->allow_upgrade && r->h->loop && r->plugin && (r->plugin->flags & CSGI_PLUGIN_UPGRADES);
    if (r->up)
        return CSGI_ESTATE;
    up = calloc(1, sizeof(*up));
    if (!up)
        return CSGI_ENOMEM;
    up->r = r;
    up->fd = -1;
    rc = csgi__upgrade_begin(&r->core, &r->env, allowed, &up_ops, up, handler, arg, out);
    if (rc < 0) {
        free(up);
        return rc;
    }
    r->up = up;
    return CSGI_OK;
}

void
srv_upgrade_handed(struct csgi_request *r, int fd, const char *extra, size_t n,
                   struct MHD_UpgradeResponseHandle *urh)
{
    struct srv_upgrade *up = r->up;
    struct srv_http *h = r->h;

    up->urh = urh;
    up->fd = fd;
    if (n) {
        up->extra = malloc(n);
        if (up->extra) {
            memcpy(up->extra, extra, n);
            up->n_extra = n;
        } else {
            up->lost_extra = 1; /* the stream would miss its first bytes: not started */
        }
    }
    pthread_mutex_lock(&h->wake_lock);
    /* The descriptor is the upgraded connection's now (its slot adds it again). */
    park_unwatch(h, r);
    up->start_next = h->up_starting;
    h->up_starting = up;
    loop_poke(h->loop);
    pthread_mutex_unlock(&h->wake_lock);
}

/* Under the lock: start what was handed over, and bring stop and exit to every connection. */
static void
up_turn_take(struct srv_http *h, struct up_turn *t)
{
    struct srv_wait_loop *L = h->loop;
    unsigned all = 0;

    if (h->stopping && !L->up_stop_done) {
        L->up_stop_done = 1;
        all |= UP_STOP;
    }
    if (L->up_end_all)
        all |= UP_END;
    for (struct srv_upgrade *up = h->upgraded; all && up; up = up->next)
        up_batch(t, up, all);
    while (h->up_starting) {
        struct srv_upgrade *up = h->up_starting;
        struct epoll_event ev = {.events = 0};
        unsigned i;

        if (!up_batch(t, up, UP_START | (h->stopping ? UP_STOP : 0) | (L->up_end_all ? UP_END : 0)))
            break;
        h->up_starting = up->start_next;
        /* Without a slot (or without its first bytes) it is not started: the turn ends it. */
        if (up->lost_extra || slot_new(L, SLOT_UP, up->r, &i) < 0)
            continue;
        L->slots[i].up = up;
        L->slots[i].fd = up->fd; /* slot_free() takes it out of the epoll set */
        ev.data.u64 = slot_token(L, i);
        if (epoll_ctl(L->epfd, EPOLL_CTL_ADD, up->fd, &ev) < 0) {
            slot_free(L, i);
            continue;
        }
        up->slot = i + 1;
        up->prev = NULL;
        up->next = h->upgraded;
        if (h->upgraded)
            h->upgraded->prev = up;
        h->upgraded = up;
        h->n_upgraded++;
    }
}

/* Without the lock: one entry point of the core per connection (it may end there). */
static void
up_turn_run(struct up_turn *t)
{
    for (size_t k = 0; k < t->n_batch; k++) {
        struct srv_upgrade *up = t->batch[k];
        struct csgi_upgrade *u = up->r->core.upgrade;
        unsigned ev = up->events;

        up->events = 0;
        up->batched = 0;
        if (ev & UP_START) {
            if (!up->slot) {
                /* The 101 went out, the connection could not be served: it failed. */
                csgi__upgrade_end(u, CSGI_FINISH_CLIENT_ABORT);
                continue;
            }
            up_just_done = NULL;
            csgi__upgrade_start(u, up->fd, up->extra, up->n_extra);
            if (up_just_done == up)
                continue; /* over already */
        }
        if (ev & UP_END)
            csgi__upgrade_end(u, CSGI_FINISH_SHUTDOWN);
        else if (ev & CSGI__UP_LINGER)
            csgi__upgrade_linger(u);
        else if (ev & UP_STOP)
            csgi__upgrade_stop(u);
        else if (ev & (CSGI_WATCH_READ | CSGI_WATCH_WRITE))
            csgi__upgrade_ready(u, ev & (CSGI_WATCH_READ | CSGI_WATCH_WRITE));
    }
    if (t->batch != t->first)
        free(t->batch);
}

void
srv_wait_upgrades_end(struct srv_http *h)
{
    struct timespec until;

    if (!h->loop)
        return;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 3;
    pthread_mutex_lock(&h->wake_lock);
    h->loop->up_end_all = 1;
    loop_poke(h->loop);
    while ((h->n_upgraded || h->up_starting) &&
           pthread_cond_timedwait(&h->up_cond, &h->wake_lock, &until) == 0)
        ;
    pthread_mutex_unlock(&h->wake_lock);
}
