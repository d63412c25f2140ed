/*
 * waits: a fixture plugin for responses that wait without holding a thread
 * (CSGI_PENDING and resume(), SPEC.md 4.14). One channel per worker: every
 * waiting request of the worker receives what /publish posts. Thread-safe
 * (CSGI_PLUGIN_THREADSAFE): its state is under one lock.
 *
 * Endpoints (under its mount):
 *   /stream?n=K   200 text/plain, "ready\n", then each published message and
 *                 "\n", ending after K messages (without n: never);
 *   /poll         a long poll: call() returns CSGI_PENDING; the first next()
 *                 after a publish calls start_response() and yields the
 *                 message, then the body ends;
 *   /later?ms=N   as /stream?n=1, but a thread of the plugin publishes
 *                 "late" to this request alone after N ms (a resume() from
 *                 another thread, racing a client that leaves);
 *   /publish?msg=X[&rep=K]  append X (K times, then one newline) to every
 *                 waiting request and resume() it; answers "woken=N\n" (N
 *                 the requests it resumed);
 *   /tick?ms=N&n=K  "ready\n", then "tick\n" every N ms from a host timer
 *                 (timer(), no thread of the plugin's), K times;
 *   /fdwait       "ready\n", then the first message /publish writes into the
 *                 request's pipe, read when watch_fd() wakes the request;
 *   /stats        "waiting=W closed=C aborted=A finished=F refused=R\n":
 *                 requests waiting now, bodies closed, on_finished() calls
 *                 with CSGI_FINISH_CLIENT_ABORT, all on_finished() calls,
 *                 resume() calls refused with CSGI_ESTATE (after close).
 * A stream that waits while the server stops says "bye\n" (stopping()) and ends.
 * An older host (host API below 3) makes init_worker() fail with CSGI_ENOSYS.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>
#include <fcntl.h>

#include <csgi/csgi.h>

struct state;

enum waiter_kind { W_STREAM, W_POLL, W_TICK, W_FD };

/* One waiting request: in the worker's list from call() until its body closes. */
struct waiter {
    struct waiter *prev, *next;
    struct state *st;
    /* Which request this is: the memory of a finished one may hold the next one. */
    unsigned long serial;
    struct csgi_request *req;
    enum waiter_kind kind;
    const struct csgi_responder *resp;
    /* Messages not yet yielded (malloc), and the chunk being yielded. */
    char *queue;
    size_t queue_len;
    char *chunk;
    int sent_ready;
    long remaining; /* messages until the body ends; -1: never */
    int started;
    /* W_TICK: the interval and the next tick (CLOCK_MONOTONIC ms; 0: not armed). */
    long tick_ms;
    long long tick_due;
    /* W_FD: a pipe; /publish writes into it, and next() waits on it with watch_fd(). */
    int pipe_r, pipe_w;
    char fdbuf[256];
};

struct state {
    const struct csgi_host_api *api;
    pthread_mutex_t lock;
    struct waiter head; /* list head */
    long waiting, closed, aborted, finished, refused;
    unsigned long serials;
    atomic_int threads;
};

static int
path_is(const struct csgi_environ *env, const char *p)
{
    return env->path_info.len == strlen(p) &&
           memcmp(env->path_info.ptr, p, env->path_info.len) == 0;
}

/* The value of "key=" in the query, copied into @p buf (empty when absent). */
static void
query_value(const struct csgi_environ *env, const char *key, char *buf, size_t size)
{
    const char *q = env->query_string.ptr;
    size_t kl = strlen(key), n = env->query_string.len;

    buf[0] = '\0';
    for (size_t i = 0; i + kl < n; i++) {
        if ((i == 0 || q[i - 1] == '&') && strncmp(q + i, key, kl) == 0 && q[i + kl] == '=') {
            size_t j = i + kl + 1, k = 0;

            while (j < n && q[j] != '&' && k + 1 < size)
                buf[k++] = q[j++];
            buf[k] = '\0';
            return;
        }
    }
}

static int
start_text(const struct csgi_responder *resp)
{
    static const struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
    };
    struct csgi_str reason = {NULL, 0};

    return resp->start_response(resp->ctx, 200, reason, h, 1, NULL);
}

/* Append @p msg @p rep times and a newline to @p w's queue (the state's lock held). */
static int
enqueue_rep(struct waiter *w, const char *msg, size_t rep)
{
    size_t n = strlen(msg);
    char *q = realloc(w->queue, w->queue_len + n * rep + 2);

    if (!q)
        return -1;
    for (size_t i = 0; i < rep; i++)
        memcpy(q + w->queue_len + i * n, msg, n);
    q[w->queue_len + n * rep] = '\n';
    w->queue = q;
    w->queue_len += n * rep + 1;
    return 0;
}

static int
enqueue(struct waiter *w, const char *msg)
{
    return enqueue_rep(w, msg, 1);
}

/* Resume @p w (the state's lock held, so its body has not closed). */
static void
wake(struct state *st, struct waiter *w)
{
    if (st->api->resume(w->req) == CSGI_ESTATE)
        st->refused++;
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* W_TICK: a tick when its time came, else (re-)arm the host timer and wait. */
static int
tick_next(struct waiter *w, struct csgi_chunk *out)
{
    long long now = now_ms();
    int rc;

    if (w->remaining == 0)
        return CSGI_DONE;
    if (w->tick_due && now >= w->tick_due) {
        w->tick_due = 0;
        w->remaining--;
        out->ptr = "tick\n";
        out->len = 5;
        return CSGI_OK;
    }
    if (!w->tick_due)
        w->tick_due = now + w->tick_ms;
    rc = w->st->api->timer(w->req, (uint64_t)(w->tick_due - now));
    return rc < 0 ? rc : CSGI_PENDING;
}

/* W_FD: what the pipe holds, else watch it and wait. */
static int
fd_next(struct waiter *w, struct csgi_chunk *out)
{
    ssize_t n;
    int rc;

    if (w->remaining == 0)
        return CSGI_DONE;
    n = read(w->pipe_r, w->fdbuf, sizeof(w->fdbuf));
    if (n > 0) {
        w->remaining--;
        out->ptr = w->fdbuf;
        out->len = (size_t)n;
        return CSGI_OK;
    }
    if (n < 0 && errno != EAGAIN)
        return CSGI_EIO;
    rc = w->st->api->watch_fd(w->req, w->pipe_r, CSGI_WATCH_READ);
    return rc < 0 ? rc : CSGI_PENDING;
}

static int
waiter_next(void *ctx, struct csgi_chunk *out)
{
    struct waiter *w = ctx;
    struct state *st = w->st;
    int rc;

    pthread_mutex_lock(&st->lock);
    if (w->kind != W_POLL && !w->sent_ready) {
        w->sent_ready = 1;
        out->ptr = "ready\n";
        out->len = 6;
        rc = CSGI_OK;
    } else if (w->kind == W_TICK) {
        rc = tick_next(w, out);
    } else if (w->kind == W_FD) {
        rc = fd_next(w, out);
    } else if (w->queue_len == 0 && w->remaining != 0 && w->started != 2 && w->kind == W_STREAM &&
               st->api->stopping(w->req)) {
        w->started = 2; /* the last word, once */
        w->remaining = 0;
        out->ptr = "bye\n";
        out->len = 4;
        rc = CSGI_OK;
    } else if (w->remaining == 0) {
        rc = CSGI_DONE;
    } else if (w->queue_len == 0) {
        rc = CSGI_PENDING;
    } else {
        free(w->chunk);
        w->chunk = w->queue;
        out->ptr = w->chunk;
        out->len = w->queue_len;
        w->queue = NULL;
        w->queue_len = 0;
        rc = CSGI_OK;
        if (w->kind == W_POLL && !w->started) {
            w->started = 1;
            rc = start_text(w->resp); /* the delayed start of a long poll */
        }
        if (w->remaining > 0)
            w->remaining--;
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void
waiter_close(void *ctx)
{
    struct waiter *w = ctx;
    struct state *st = w->st;

    pthread_mutex_lock(&st->lock);
    w->prev->next = w->next;
    w->next->prev = w->prev;
    st->waiting--;
    st->closed++;
    free(w->queue);
    free(w->chunk);
    if (w->kind == W_FD) {
        close(w->pipe_r);
        close(w->pipe_w);
    }
    pthread_mutex_unlock(&st->lock);
}

static void
on_finished(void *arg, int reason)
{
    struct state *st = arg;

    pthread_mutex_lock(&st->lock);
    st->finished++;
    if (reason == CSGI_FINISH_CLIENT_ABORT)
        st->aborted++;
    pthread_mutex_unlock(&st->lock);
}

struct later {
    struct state *st;
    unsigned long serial;
    long ms;
};

/* Publish "late" to one waiter after a delay, if its request still waits. */
static void *
later_main(void *arg)
{
    struct later *l = arg;
    struct state *st = l->st;
    struct timespec ts = {l->ms / 1000, (l->ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
    pthread_mutex_lock(&st->lock);
    for (struct waiter *w = st->head.next; w != &st->head; w = w->next) {
        if (w->serial == l->serial) {
            if (enqueue(w, "late") == 0)
                wake(st, w);
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    free(l);
    atomic_fetch_sub(&st->threads, 1);
    return NULL;
}

static int
start_later(struct state *st, struct waiter *w, long ms)
{
    struct later *l = malloc(sizeof(*l));
    pthread_attr_t attr;
    pthread_t t;
    int rc;

    if (!l)
        return CSGI_ENOMEM;
    l->st = st;
    l->serial = w->serial;
    l->ms = ms;
    atomic_fetch_add(&st->threads, 1);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, later_main, l);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_fetch_sub(&st->threads, 1);
        free(l);
        return CSGI_ENOMEM;
    }
    return CSGI_OK;
}

/* /stream, /poll, /later: a waiter in the list, its body in @p out. */
static int
serve_waiter(struct state *st, struct csgi_environ *env, const struct csgi_responder *resp,
             struct csgi_body *out, enum waiter_kind kind, long remaining, long later_ms)
{
    struct waiter *w = st->api->alloc(env->request, sizeof(*w));
    int rc;

    if (!w)
        return CSGI_ENOMEM;
    memset(w, 0, sizeof(*w));
    w->st = st;
    w->pipe_r = w->pipe_w = -1;
    w->req = env->request;
    w->kind = kind;
    w->resp = resp;
    w->remaining = remaining;
    rc = st->api->on_finished(env->request, on_finished, st);
    if (rc < 0)
        return rc;
    if (kind != W_POLL) {
        rc = start_text(resp);
        if (rc < 0)
            return rc;
    }
    if (kind == W_FD) {
        int p[2];

        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
            return CSGI_EIO;
        w->pipe_r = p[0];
        w->pipe_w = p[1];
    }
    out->ctx = w;
    out->next = waiter_next;
    out->close = waiter_close;
    pthread_mutex_lock(&st->lock);
    w->serial = ++st->serials;
    w->next = &st->head;
    w->prev = st->head.prev;
    st->head.prev->next = w;
    st->head.prev = w;
    st->waiting++;
    pthread_mutex_unlock(&st->lock);
    if (later_ms >= 0 && start_later(st, w, later_ms) < 0)
        st->api->log(st->api->ctx, CSGI_LOG_ERROR, "cannot start a thread for /later");
    return kind == W_POLL ? CSGI_PENDING : CSGI_OK;
}

static int
reply_text(struct state *st, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out, const char *text)
{
    int rc = start_text(resp);

    if (rc < 0)
        return rc;
    return st->api->body_from_buffer(env->request, text, strlen(text), 0, out);
}

static int
publish(struct state *st, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    char msg[256], text[64], v[32];
    long woken = 0;
    long rep;

    query_value(env, "msg", msg, sizeof(msg));
    query_value(env, "rep", v, sizeof(v));
    rep = v[0] ? atol(v) : 1;
    if (rep < 1 || rep > 8000000)
        rep = 1;
    pthread_mutex_lock(&st->lock);
    for (struct waiter *w = st->head.next; w != &st->head; w = w->next) {
        if (w->kind == W_TICK)
            continue;
        if (w->kind == W_FD) {
            /* No resume(): the request's own descriptor watch wakes it. */
            char line[258];
            int n = snprintf(line, sizeof(line), "%s\n", msg);

            if (n > 0 && write(w->pipe_w, line, (size_t)n) == n)
                woken++;
            continue;
        }
        if (enqueue_rep(w, msg, (size_t)rep) == 0) {
            wake(st, w);
            woken++;
        }
    }
    pthread_mutex_unlock(&st->lock);
    snprintf(text, sizeof(text), "woken=%ld\n", woken);
    return reply_text(st, env, resp, out, text);
}

static int
waits_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    struct state *st = state;
    char v[32], text[160];
    int rc;

    if (path_is(env, "/stream")) {
        query_value(env, "n", v, sizeof(v));
        return serve_waiter(st, env, resp, out, W_STREAM, v[0] ? atol(v) : -1, -1);
    }
    if (path_is(env, "/poll"))
        return serve_waiter(st, env, resp, out, W_POLL, 1, -1);
    if (path_is(env, "/later")) {
        query_value(env, "ms", v, sizeof(v));
        return serve_waiter(st, env, resp, out, W_STREAM, 1, v[0] ? atol(v) : 0);
    }
    if (path_is(env, "/tick")) {
        long n, ms;

        query_value(env, "n", v, sizeof(v));
        n = v[0] ? atol(v) : 3;
        query_value(env, "ms", v, sizeof(v));
        ms = v[0] ? atol(v) : 20;
        rc = serve_waiter(st, env, resp, out, W_TICK, n, -1);
        if (rc >= 0)
            ((struct waiter *)out->ctx)->tick_ms = ms;
        return rc;
    }
    if (path_is(env, "/fdwait"))
        return serve_waiter(st, env, resp, out, W_FD, 1, -1);
    if (path_is(env, "/publish"))
        return publish(st, env, resp, out);
    if (path_is(env, "/stats")) {
        pthread_mutex_lock(&st->lock);
        snprintf(text, sizeof(text),
                 "waiting=%ld closed=%ld aborted=%ld finished=%ld refused=%ld\n", st->waiting,
                 st->closed, st->aborted, st->finished, st->refused);
        pthread_mutex_unlock(&st->lock);
        return reply_text(st, env, resp, out, text);
    }
    return CSGI_EDECLINED;
}

static int
waits_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
           void **state)
{
    struct state *st;

    (void)config;
    (void)n_config;
    if (!CSGI_HAS(api, 3)) {
        api->log(api->ctx, CSGI_LOG_ERROR, "host API version 3 (resume) needed");
        return CSGI_ENOSYS;
    }
    st = calloc(1, sizeof(*st));
    if (!st)
        return CSGI_ENOMEM;
    st->api = api;
    pthread_mutex_init(&st->lock, NULL);
    st->head.next = st->head.prev = &st->head;
    *state = st;
    return 0;
}

static void
waits_exit(void *state)
{
    struct state *st = state;

    /* The /later threads are ours to stop: they end within their delay. */
    for (int i = 0; i < 1000 && atomic_load(&st->threads) > 0; i++)
        usleep(10000);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static const struct csgi_plugin waits_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "waits",
    .plugin_version = "1",
    .description = "responses that wait for resume() (test fixture)",
    .flags = CSGI_PLUGIN_THREADSAFE | CSGI_PLUGIN_WAITS,
    .init_worker = waits_init,
    .call = waits_call,
    .exit_worker = waits_exit,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &waits_plugin;
}
