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
    long long end = srv_clock_ms() + (long long)timeout_s * 1000 + 5000;

    while (atomic_load(&sc->go) != 1) {
        struct timespec ts = {0, 5 * 1000 * 1000};
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

int
srv_worker_run(const struct srv_worker_args *a)
{
    const struct srv_config *cfg = a->cfg;
    struct srv_plugin_set plugins;
    struct srv_http *h;
    sigset_t set;
    int failed, status = 0, draining = 0, fast = 0;
    long long drain_deadline = 0, drain_start = 0;
    struct srv_score *sc = a->score;

    srv_log_set_identity("worker", a->worker_id, a->generation);
    /* The master going away must not leave us serving alone. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    /* Block the signals before libmicrohttpd starts its threads: only we take them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTTIN);
    sigaddset(&set, SIGTTOU);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    failed = srv_plugins_load(&plugins, cfg);
    if (failed < 0) {
        if (sc)
            atomic_store(&sc->load_failures, 1000);
        return 2;
    }
    h = srv_http_new(cfg, a->listeners, a->n_listeners, a->workers);
    if (!h) {
        srv_plugins_unload(&plugins);
        return 2;
    }
    if (sc)
        srv_http_set_score(h, sc, a->board);
    failed += srv_plugins_init(&plugins, srv_http_api(h), cfg->threads > 1);
    if (sc) {
        publish_plugins(sc, &plugins);
        atomic_store(&sc->load_failures, failed);
        atomic_store(&sc->state, SRV_W_LOADED);
        if (wait_for_go(sc, &set, cfg->ready_timeout) < 0) {
            srv_log(SRV_LOG_INFO, "not started: the master did not let this worker serve");
            srv_http_free(h);
            srv_plugins_unload(&plugins);
            return 0;
        }
    }
    if (srv_http_start(h, &plugins) < 0) {
        srv_http_free(h);
        srv_plugins_unload(&plugins);
        return 2;
    }
    if (sc)
        atomic_store(&sc->state, SRV_W_READY);
    srv_log(SRV_LOG_INFO, "worker ready: %zu plugin(s), %d failed", plugins.n, failed);

    for (;;) {
        /*
         * The request count is only checked here: with --max-requests, tick
         * often enough that a busy worker does not overshoot it by much, and
         * while draining, often enough to leave soon after the last request.
         */
        struct timespec ts = {0, (a->max_requests || draining ? 20L : 250L) * 1000 * 1000};
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &ts);

        if (sig == SIGTERM) {
            if (draining) {
                fast = 1;
                break;
            }
            draining = 1;
        } else if (sig == SIGINT || sig == SIGQUIT) {
            fast = 1;
            break;
        } else if (sig == SIGUSR1) {
            srv_log_reopen();
        }
        srv_http_tick(h);
        if (sc)
            update_stats(sc, &plugins, h);
        if (!draining && a->max_requests &&
            atomic_load(&srv_http_stats(h)->requests) >= a->max_requests) {
            srv_log(SRV_LOG_INFO, "served %llu requests (--max-requests): retiring",
                    (unsigned long long)atomic_load(&srv_http_stats(h)->requests));
            if (sc)
                atomic_store(&sc->state, SRV_W_RETIRING);
            draining = 1;
        }
        if (draining && !drain_deadline) {
            if (sc && atomic_load(&sc->state) != SRV_W_RETIRING)
                atomic_store(&sc->state, SRV_W_DRAINING);
            srv_http_drain(h);
            drain_start = srv_clock_ms();
            drain_deadline = drain_start + (long long)cfg->graceful_timeout * 1000;
            srv_log(SRV_LOG_INFO, "draining: %llu request(s) in flight", srv_http_inflight(h));
        }
        if (draining) {
            if (srv_http_inflight(h) == 0 && srv_clock_ms() >= drain_start + DRAIN_LINGER_MS)
                break;
            if (srv_clock_ms() >= drain_deadline) {
                srv_log(SRV_LOG_WARN, "graceful timeout: stopping with %llu request(s) in flight",
                        srv_http_inflight(h));
                break;
            }
        }
    }
    if (fast)
        srv_log(SRV_LOG_INFO, "fast stop");
    if (sc)
        update_stats(sc, &plugins, h);
    if (srv_http_inflight(h) > 0) {
        /*
         * A fast stop or the graceful timeout with requests still in flight:
         * stopping the daemon would wait for threads that may sit in plugin
         * code for a long time yet, and exit_worker must not run under them.
         * Leave now; the kernel closes the connections.
         */
        srv_log(SRV_LOG_WARN, "exiting with %llu request(s) in flight", srv_http_inflight(h));
        _exit(status);
    }
    srv_http_free(h);
    srv_plugins_unload(&plugins);
    srv_log(SRV_LOG_INFO, "worker exiting");
    return status;
}
