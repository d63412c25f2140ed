/*
 * A worker process (see worker.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http.h"
#include "log.h"
#include "plugin_loader.h"
#include "worker.h"

/*
 * After a drain starts, a connection accepted just before the quiesce may not
 * have sent its request line yet, so it is not counted in flight: wait this
 * long before taking "nothing in flight" as "done".
 */
#define DRAIN_LINGER_MS 100

/* How often the serve loop wakes: while draining or with --max-requests, and otherwise. */
#define TICK_BUSY_MS 20
#define TICK_IDLE_MS 250

/*
 * The master gives up on a new generation after --ready-timeout; a worker
 * waiting for the go gives up on its own this much later, and looks every
 * GO_POLL_MS.
 */
#define GO_WAIT_SLACK_MS 5000
#define GO_POLL_MS       5

static void
publish_plugins(struct srv_score *sc, const struct srv_plugin_set *set)
{
    size_t n = set->n < SRV_MAX_PLUGIN_STATS ? set->n : SRV_MAX_PLUGIN_STATS;

    for (size_t i = 0; i < n; i++) {
        struct srv_plugin_score *ps = &sc->plugins[i];
        snprintf(ps->name, sizeof(ps->name), "%s", set->v[i].desc.name);
        snprintf(ps->version, sizeof(ps->version), "%s",
                 set->v[i].desc.plugin_version ? set->v[i].desc.plugin_version : "");
        snprintf(ps->mount, sizeof(ps->mount), "%s", set->v[i].mount);
    }
    atomic_store(&sc->n_plugins, (int)n);
}

static void
update_stats(struct srv_score *sc, const struct srv_plugin_set *set, struct srv_http *h)
{
    size_t n = set->n < SRV_MAX_PLUGIN_STATS ? set->n : SRV_MAX_PLUGIN_STATS;
    struct srv_http_stats *st = srv_http_stats(h);

    atomic_store(&sc->requests, atomic_load(&st->requests));
    atomic_store(&sc->inflight, atomic_load(&st->inflight));
    for (size_t i = 0; i < n; i++) {
        struct srv_plugin_score *ps = &sc->plugins[i];
        atomic_store(&ps->requests, atomic_load(&set->v[i].requests));
        atomic_store(&ps->status_4xx, atomic_load(&set->v[i].status_4xx));
        atomic_store(&ps->status_5xx, atomic_load(&set->v[i].status_5xx));
        atomic_store(&ps->latency_us, atomic_load(&set->v[i].latency_us));
    }
}

/*
 * The health gate: a worker of a new generation loads and initialises its
 * plugins, then waits until the master has seen every worker of the
 * generation do so without failure. Only then does it accept connections, so
 * a generation that is rolled back never served a request. Returns 0 to go
 * on, -1 when told to stop (a signal) or when the go never comes.
 */
static int
wait_for_go(struct srv_score *sc, const sigset_t *set, unsigned timeout_s)
{
    long long end = srv_clock_ms() + (long long)timeout_s * 1000 + GO_WAIT_SLACK_MS;

    while (atomic_load(&sc->go) != 1) {
        struct timespec ts = {0, GO_POLL_MS * 1000L * 1000};
        siginfo_t si;
        int sig = sigtimedwait(set, &si, &ts);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
            return -1;
        if (sig == SIGUSR1)
            srv_log_reopen();
        if (srv_clock_ms() > end)
            return -1;
    }
    return 0;
}

/* A worker's state while it runs. */
struct worker {
    const struct srv_worker_args *a;
    const struct srv_config *cfg;
    struct srv_score *sc; /* may be NULL */
    struct srv_plugin_set plugins;
    struct srv_http *h;
    sigset_t set; /* the signals we take with sigtimedwait() */
    int draining;
    int terms; /* SIGTERMs taken: the second one stops now */
    int fast;  /* stop now, dropping what is in flight */
    long long drain_start, drain_deadline;
};

/* Block the signals before libmicrohttpd starts its threads: only we take them. */
static void
block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGQUIT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGTTIN);
    sigaddset(set, SIGTTOU);
    sigprocmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/*
 * Load and initialise the plugins, pass the health gate (wait_for_go), start
 * serving. Returns 0 when serving, or -1 with everything freed and the exit
 * status in *status.
 */
static int
worker_start(struct worker *w, int *status)
{
    const struct srv_config *cfg = w->cfg;
    int failed = srv_plugins_load(&w->plugins, cfg);

    *status = 2;
    if (failed < 0) {
        if (w->sc)
            atomic_store(&w->sc->load_failures, SRV_LOAD_FAILED);
        return -1;
    }
    w->h = srv_http_new(cfg, w->a->listeners, w->a->n_listeners, w->a->workers);
    if (!w->h)
        goto error_unload;
    if (w->sc)
        srv_http_set_score(w->h, w->sc, w->a->board);
    failed += srv_plugins_init(&w->plugins, srv_http_api(w->h), cfg->threads > 1);
    if (w->sc) {
        publish_plugins(w->sc, &w->plugins);
        atomic_store(&w->sc->load_failures, failed);
        atomic_store(&w->sc->state, SRV_W_LOADED);
        if (wait_for_go(w->sc, &w->set, cfg->ready_timeout) < 0) {
            srv_log(SRV_LOG_INFO, "not started: the master did not let this worker serve");
            *status = 0;
            goto error_free_http;
        }
    }
    if (srv_http_start(w->h, &w->plugins) < 0)
        goto error_free_http;
    if (w->sc)
        atomic_store(&w->sc->state, SRV_W_READY);
    srv_log(SRV_LOG_INFO, "worker ready: %zu plugin(s), %d failed", w->plugins.n, failed);
    return 0;

error_free_http:
    srv_http_free(w->h);
error_unload:
    srv_plugins_unload(&w->plugins);
    return -1;
}

/*
 * Wait for a signal until the next tick and act on it. Returns 1 when told to
 * stop now (SIGINT, SIGQUIT or a second SIGTERM), else 0.
 */
static int
take_signal(struct worker *w)
{
    /*
     * The request count is only checked on a tick: with --max-requests, tick
     * often enough that a busy worker does not overshoot it by much, and
     * while draining, often enough to leave soon after the last request.
     */
    long tick_ms = w->a->max_requests || w->draining ? TICK_BUSY_MS : TICK_IDLE_MS;
    struct timespec ts = {0, tick_ms * 1000 * 1000};
    siginfo_t si;
    int sig = sigtimedwait(&w->set, &si, &ts);

    if (sig == SIGTERM) {
        /*
         * The second SIGTERM stops now. A worker draining by its own
         * retirement (--max-requests) got no SIGTERM yet: the master sends
         * one at a stop or reload, which only lets it go on draining.
         */
        if (++w->terms >= 2) {
            w->fast = 1;
            return 1;
        }
        w->draining = 1;
    } else if (sig == SIGINT || sig == SIGQUIT) {
        w->fast = 1;
        return 1;
    } else if (sig == SIGUSR1) {
        srv_log_reopen(); /* a failure is logged there */
    }
    return 0;
}

/* With --max-requests: once that many are served, ask for a replacement and drain. */
static void
check_max_requests(struct worker *w)
{
    unsigned long long served = atomic_load(&srv_http_stats(w->h)->requests);

    if (w->draining || !w->a->max_requests || served < w->a->max_requests)
        return;
    srv_log(SRV_LOG_INFO, "served %llu requests (--max-requests): retiring", served);
    if (w->sc)
        atomic_store(&w->sc->state, SRV_W_RETIRING);
    w->draining = 1;
}

/*
 * Close this worker's copies of the listening sockets (it accepts no more).
 * The master and the other workers keep theirs; once the last copy is gone
 * (a stop, see master.c shut_listeners()) new connections are refused
 * instead of waiting in a queue that nobody accepts from.
 */
static void
close_listeners(struct worker *w)
{
    for (size_t i = 0; i < w->a->n_listeners; i++) {
        struct srv_listener *l = &w->a->listeners[i];
        if (l->fd >= 0) {
            close(l->fd);
            l->fd = -1;
        }
    }
    if (w->sc)
        atomic_store(&w->sc->listeners_closed, 1);
}

/* Stop accepting and start the graceful timeout's clock. */
static void
start_drain(struct worker *w)
{
    if (w->sc && atomic_load(&w->sc->state) != SRV_W_RETIRING)
        atomic_store(&w->sc->state, SRV_W_DRAINING);
    /* Returns once the accept thread has stopped: the sockets are unused from here. */
    srv_http_drain(w->h);
    close_listeners(w);
    w->drain_start = srv_clock_ms();
    w->drain_deadline = w->drain_start + (long long)w->cfg->graceful_timeout * 1000;
    srv_log(SRV_LOG_INFO, "draining: %llu request(s) in flight", srv_http_inflight(w->h));
}

/* True when a drain is over: nothing in flight (after the linger), or out of time. */
static int
drain_over(struct worker *w)
{
    if (srv_http_inflight(w->h) == 0 && srv_clock_ms() >= w->drain_start + DRAIN_LINGER_MS)
        return 1;
    if (srv_clock_ms() >= w->drain_deadline) {
        srv_log(SRV_LOG_WARN, "graceful timeout: stopping with %llu request(s) in flight",
                srv_http_inflight(w->h));
        return 1;
    }
    return 0;
}

/* Serve until told to stop or until a drain is over. */
static void
serve(struct worker *w)
{
    for (;;) {
        if (take_signal(w))
            break;
        srv_http_tick(w->h);
        if (w->sc)
            update_stats(w->sc, &w->plugins, w->h);
        check_max_requests(w);
        if (w->draining && !w->drain_deadline)
            start_drain(w);
        if (w->draining && drain_over(w))
            break;
    }
}

/* Stop serving and free everything. Returns the exit status (or does not return). */
static int
worker_stop(struct worker *w)
{
    if (w->fast)
        srv_log(SRV_LOG_INFO, "fast stop");
    if (w->sc)
        update_stats(w->sc, &w->plugins, w->h);
    if (srv_http_inflight(w->h) > 0) {
        /*
         * A fast stop or the graceful timeout with requests still in flight:
         * stopping the daemon would wait for threads that may sit in plugin
         * code for a long time yet, and exit_worker must not run under them.
         * Leave now; the kernel closes the connections.
         */
        srv_log(SRV_LOG_WARN, "exiting with %llu request(s) in flight", srv_http_inflight(w->h));
        _exit(0);
    }
    srv_http_free(w->h);
    srv_plugins_unload(&w->plugins);
    srv_log(SRV_LOG_INFO, "worker exiting");
    return 0;
}

int
srv_worker_run(const struct srv_worker_args *a)
{
    struct worker w;
    int status;

    memset(&w, 0, sizeof(w));
    w.a = a;
    w.cfg = a->cfg;
    w.sc = a->score;
    srv_log_set_identity("worker", a->worker_id, a->generation);
    /* The master going away must not leave us serving alone. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    block_signals(&w.set);
    if (worker_start(&w, &status) < 0)
        return status;
    serve(&w);
    return worker_stop(&w);
}
