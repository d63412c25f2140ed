/*
 * The master's stats endpoint (see stats.h). Replies are built from the
 * master's snapshot and the scoreboard, which workers update as they serve.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "listener.h"
#include "stats.h"

/* How long a reply waits for the request line before it sends the JSON anyway. */
#define STATS_READ_WAIT_MS 100

int
srv_stats_open(struct srv_stats_server *s, const char *spec)
{
    /* The same address syntax and socket set-up as --bind. */
    struct srv_listener l;
    char err[256];
    int rc = srv_listener_open(&l, spec, err, sizeof(err));

    s->fd = -1;
    s->path[0] = '\0';
    free(l.spec);
    if (rc < 0)
        return rc;
    fcntl(l.fd, F_SETFL, fcntl(l.fd, F_GETFL) | O_NONBLOCK);
    if (l.family == AF_UNIX)
        snprintf(s->path, sizeof(s->path), "%s", l.host);
    s->fd = l.fd;
    return 0;
}

void
srv_stats_close(struct srv_stats_server *s)
{
    if (s->fd < 0)
        return;
    close(s->fd);
    s->fd = -1;
    if (s->path[0])
        unlink(s->path);
    s->path[0] = '\0';
}

static const char *
state_name(int s)
{
    switch (s) {
    case SRV_W_STARTING:
        return "starting";
    case SRV_W_LOADED:
        return "loaded";
    case SRV_W_READY:
        return "ready";
    case SRV_W_RETIRING:
        return "retiring";
    case SRV_W_DRAINING:
        return "draining";
    default:
        return "free";
    }
}

struct buf {
    char *p;
    size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) bprintf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t cap = b->cap ? b->cap * 2 : 8192;
            char *np;
            while (cap < b->len + (size_t)n + 1)
                cap *= 2;
            np = realloc(b->p, cap);
            if (!np)
                return;
            b->p = np;
            b->cap = cap;
        }
    }
}

/* JSON-escape a short string we own (names, mounts). */
static void
bjson(struct buf *b, const char *s)
{
    bprintf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            bprintf(b, "\\%c", c);
        else if (c < 0x20)
            bprintf(b, "\\u%04x", c);
        else
            bprintf(b, "%c", c);
    }
    bprintf(b, "\"");
}

/* Sum the per-plugin counters of the serving generation's workers into agg. */
static int
collect_plugins(const struct srv_stats_view *v, struct srv_plugin_score *agg)
{
    int n_agg = 0;

    memset(agg, 0, SRV_MAX_PLUGIN_STATS * sizeof(*agg));
    for (size_t i = 0; i < v->n_workers; i++) {
        const struct srv_stats_worker *w = &v->workers[i];
        struct srv_score *sc;
        int np;
        if (w->generation != v->generation)
            continue;
        sc = &v->board->slots[w->slot];
        np = atomic_load(&sc->n_plugins);
        if (np < 0 || np > SRV_MAX_PLUGIN_STATS)
            np = np < 0 ? 0 : SRV_MAX_PLUGIN_STATS;
        for (int k = 0; k < np; k++) {
            struct srv_plugin_score *ps = &sc->plugins[k];
            int j;
            for (j = 0; j < n_agg; j++) {
                if (strcmp(agg[j].name, ps->name) == 0)
                    break;
            }
            if (j >= SRV_MAX_PLUGIN_STATS)
                continue;
            if (j == n_agg) {
                snprintf(agg[j].name, sizeof(agg[j].name), "%s", ps->name);
                snprintf(agg[j].version, sizeof(agg[j].version), "%s", ps->version);
                snprintf(agg[j].mount, sizeof(agg[j].mount), "%s", ps->mount);
                n_agg++;
            }
            agg[j].requests += atomic_load(&ps->requests);
            agg[j].status_4xx += atomic_load(&ps->status_4xx);
            agg[j].status_5xx += atomic_load(&ps->status_5xx);
            agg[j].latency_us += atomic_load(&ps->latency_us);
        }
    }
    return n_agg;
}

static const char *
worker_state(const struct srv_stats_view *v, const struct srv_stats_worker *w)
{
    int st = atomic_load(&v->board->slots[w->slot].state);

    return w->stopping && st == SRV_W_READY ? "draining" : state_name(st);
}

static char *
stats_json(const struct srv_stats_view *v, size_t *len)
{
    struct buf b = {NULL, 0, 0};
    struct srv_plugin_score agg[SRV_MAX_PLUGIN_STATS];
    int n_agg = collect_plugins(v, agg);
    unsigned long long total = v->retired_requests;

    bprintf(&b,
            "{\"master_pid\":%d,\"uptime_s\":%.3f,\"generation\":%u,"
            "\"reloading_generation\":%u,\"target_workers\":%u,\"restarts\":%u,\"workers\":[",
            (int)getpid(), (double)(srv_clock_ms() - v->started_ms) / 1000.0, v->generation,
            v->reloading_generation, v->target_workers, v->restarts);
    for (size_t i = 0; i < v->n_workers; i++) {
        const struct srv_stats_worker *w = &v->workers[i];
        struct srv_score *sc = &v->board->slots[w->slot];

        total += atomic_load(&sc->requests);
        bprintf(&b,
                "%s{\"pid\":%d,\"id\":%d,\"generation\":%u,\"state\":\"%s\",\"requests\":%llu,"
                "\"in_flight\":%llu,\"connections\":%ld,\"age_s\":%.1f}",
                i ? "," : "", (int)w->pid, w->worker_id, w->generation, worker_state(v, w),
                (unsigned long long)atomic_load(&sc->requests),
                (unsigned long long)atomic_load(&sc->inflight), atomic_load(&sc->connections),
                (double)(srv_clock_ms() - w->started_ms) / 1000.0);
    }
    bprintf(&b, "],\"requests_total\":%llu,\"plugins\":[", total);
    for (int j = 0; j < n_agg; j++) {
        bprintf(&b, "%s{\"name\":", j ? "," : "");
        bjson(&b, agg[j].name);
        bprintf(&b, ",\"version\":");
        bjson(&b, agg[j].version);
        bprintf(&b, ",\"mount\":");
        bjson(&b, agg[j].mount);
        bprintf(&b,
                ",\"requests\":%llu,\"status_4xx\":%llu,\"status_5xx\":%llu,"
                "\"latency_sum_ms\":%.3f}",
                (unsigned long long)agg[j].requests, (unsigned long long)agg[j].status_4xx,
                (unsigned long long)agg[j].status_5xx, (double)agg[j].latency_us / 1000.0);
    }
    bprintf(&b, "]}\n");
    *len = b.len;
    return b.p;
}

/* The same figures in the Prometheus text exposition format (GET /metrics). */
static char *
stats_prometheus(const struct srv_stats_view *v, size_t *len)
{
    struct buf b = {NULL, 0, 0};
    struct srv_plugin_score agg[SRV_MAX_PLUGIN_STATS];
    int n_agg = collect_plugins(v, agg);
    unsigned long long total = v->retired_requests;
    static const char *const states[] = {"starting", "loaded", "ready", "draining", "retiring"};

    bprintf(&b, "# TYPE csgi_uptime_seconds gauge\ncsgi_uptime_seconds %.3f\n",
            (double)(srv_clock_ms() - v->started_ms) / 1000.0);
    bprintf(&b, "# TYPE csgi_generation gauge\ncsgi_generation %u\n", v->generation);
    bprintf(&b, "# TYPE csgi_worker_restarts_total counter\ncsgi_worker_restarts_total %u\n",
            v->restarts);
    bprintf(&b, "# TYPE csgi_workers gauge\n");
    for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
        unsigned n = 0;
        for (size_t i = 0; i < v->n_workers; i++) {
            if (strcmp(worker_state(v, &v->workers[i]), states[k]) == 0)
                n++;
        }
        bprintf(&b, "csgi_workers{state=\"%s\"} %u\n", states[k], n);
    }
    bprintf(&b, "# TYPE csgi_worker_requests_total counter\n");
    for (size_t i = 0; i < v->n_workers; i++) {
        const struct srv_stats_worker *w = &v->workers[i];
        unsigned long long r = atomic_load(&v->board->slots[w->slot].requests);

        total += r;
        bprintf(&b, "csgi_worker_requests_total{pid=\"%d\",worker=\"%d\",generation=\"%u\"} %llu\n",
                (int)w->pid, w->worker_id, w->generation, r);
    }
    bprintf(&b, "# TYPE csgi_requests_total counter\ncsgi_requests_total %llu\n", total);
    bprintf(&b, "# TYPE csgi_plugin_requests_total counter\n");
    for (int j = 0; j < n_agg; j++)
        bprintf(&b, "csgi_plugin_requests_total{plugin=\"%s\",mount=\"%s\"} %llu\n", agg[j].name,
                agg[j].mount, (unsigned long long)agg[j].requests);
    bprintf(&b, "# TYPE csgi_plugin_errors_total counter\n");
    for (int j = 0; j < n_agg; j++) {
        bprintf(&b, "csgi_plugin_errors_total{plugin=\"%s\",class=\"4xx\"} %llu\n", agg[j].name,
                (unsigned long long)agg[j].status_4xx);
        bprintf(&b, "csgi_plugin_errors_total{plugin=\"%s\",class=\"5xx\"} %llu\n", agg[j].name,
                (unsigned long long)agg[j].status_5xx);
    }
    bprintf(&b, "# TYPE csgi_plugin_latency_seconds_sum counter\n");
    for (int j = 0; j < n_agg; j++)
        bprintf(&b, "csgi_plugin_latency_seconds_sum{plugin=\"%s\"} %.6f\n", agg[j].name,
                (double)agg[j].latency_us / 1e6);
    *len = b.len;
    return b.p;
}

char *
srv_stats_render(const struct srv_stats_view *view, int prometheus, size_t *len)
{
    *len = 0;
    return prometheus ? stats_prometheus(view, len) : stats_json(view, len);
}

void
srv_stats_serve(struct srv_stats_server *s, const struct srv_stats_view *view)
{
    for (;;) {
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        size_t len = 0, off = 0;
        char *json;
        char req[1024];
        int http, prom;

        if (c < 0)
            return;
        /* Plain readers get the JSON; an HTTP request gets it with a status line. */
        {
            struct pollfd p = {c, POLLIN, 0};
            ssize_t n = 0;
            if (poll(&p, 1, STATS_READ_WAIT_MS) > 0)
                n = recv(c, req, sizeof(req) - 1, MSG_DONTWAIT);
            req[n > 0 ? n : 0] = '\0';
            http = n > 0 && (strncmp(req, "GET ", 4) == 0 || strncmp(req, "HEAD ", 5) == 0);
        }
        prom = http &&
               (strncmp(req, "GET /metrics", 12) == 0 || strncmp(req, "HEAD /metrics", 13) == 0);
        json = srv_stats_render(view, prom, &len);
        if (http) {
            char head[256];
            int hn = snprintf(head, sizeof(head),
                              "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                              prom ? "text/plain; version=0.0.4" : "application/json", len);
            if (send(c, head, (size_t)hn, MSG_NOSIGNAL) < 0)
                len = 0;
        }
        while (json && off < len) {
            ssize_t n = send(c, json + off, len - off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        free(json);
        close(c);
    }
}
