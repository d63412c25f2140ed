/*
 * The master's stats endpoint (see stats.h). Replies are built from the
 * master's snapshot and the scoreboard, which workers update as they serve.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "events.h"
#include "listener.h"
#include "log.h"
#include "stats.h"
#include "status_page.h"

/* True for an address only this host reaches: 127.0.0.0/8 or ::1 (or ::ffff:127.x). */
static int
loopback_host(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}

static void
conns_reset(struct srv_stats_server *s)
{
    for (size_t i = 0; i < SRV_STATS_MAX_CONNS; i++) {
        s->conns[i].fd = -1;
        s->conns[i].out = NULL;
    }
}

int
srv_stats_open(struct srv_stats_server *s, const char *spec, int mode)
{
    /* The same address syntax and socket set-up as --bind. */
    struct srv_listener l;
    char err[256];
    int rc = srv_listener_open_mode(&l, spec, mode, err, sizeof(err));

    s->fd = -1;
    s->path[0] = '\0';
    conns_reset(s);
    free(l.spec);
    if (rc < 0)
        return rc;
    fcntl(l.fd, F_SETFL, fcntl(l.fd, F_GETFL) | O_NONBLOCK);
    if (l.family == AF_UNIX)
        snprintf(s->path, sizeof(s->path), "%s", l.host);
    else if (!loopback_host(l.host))
        srv_log(SRV_LOG_WARN,
                "--stats \"%s\" is reachable from other hosts: the stats show pids, plugin names "
                "and versions to anyone, unauthenticated; prefer unix:/path or 127.0.0.1:PORT",
                spec);
    s->fd = l.fd;
    if (l.family == AF_UNIX)
        srv_log(SRV_LOG_INFO, "stats on unix:%s", l.host);
    else
        srv_log(SRV_LOG_INFO, "stats on http://%s%s%s:%s/", l.family == AF_INET6 ? "[" : "", l.host,
                l.family == AF_INET6 ? "]" : "", l.port);
    return 0;
}

static void
conn_close(struct srv_stats_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    c->req_len = 0;
}

void
srv_stats_close(struct srv_stats_server *s)
{
    for (size_t i = 0; i < SRV_STATS_MAX_CONNS; i++)
        conn_close(&s->conns[i]);
    if (s->fd < 0)
        return;
    close(s->fd);
    s->fd = -1;
    if (s->path[0])
        unlink(s->path);
    s->path[0] = '\0';
}

void
srv_stats_drop_fds(struct srv_stats_server *s)
{
    for (size_t i = 0; i < SRV_STATS_MAX_CONNS; i++) {
        if (s->conns[i].fd >= 0)
            close(s->conns[i].fd);
        s->conns[i].fd = -1;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

size_t
srv_stats_pollfds(const struct srv_stats_server *s, struct pollfd *pf, size_t cap)
{
    size_t n = 0;

    if (s->fd < 0 || cap == 0)
        return 0;
    pf[n++] = (struct pollfd){s->fd, POLLIN, 0};
    for (size_t i = 0; i < SRV_STATS_MAX_CONNS && n < cap; i++) {
        const struct srv_stats_conn *c = &s->conns[i];
        if (c->fd >= 0)
            pf[n++] = (struct pollfd){c->fd, c->out ? POLLOUT : POLLIN, 0};
    }
    return n;
}

int
srv_stats_busy(const struct srv_stats_server *s)
{
    for (size_t i = 0; i < SRV_STATS_MAX_CONNS; i++) {
        if (s->conns[i].fd >= 0)
            return 1;
    }
    return 0;
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

/*
 * JSON-escape a string copied from the scoreboard (names, versions, mounts):
 * a worker wrote it, so any byte outside printable ASCII becomes \u00XX
 * (control bytes) or \ufffd, and the reply stays valid JSON in UTF-8.
 */
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
        else if (c >= 0x80)
            bprintf(b, "\\ufffd");
        else
            bprintf(b, "%c", c);
    }
    bprintf(b, "\"");
}

/*
 * A Prometheus label value from the scoreboard: '\\', '"' and LF escaped as
 * the text format says, any other byte outside printable ASCII as '?', so
 * one sample stays one line.
 */
static void
blabel(struct buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            bprintf(b, "\\%c", c);
        else if (c == '\n')
            bprintf(b, "\\n");
        else if (c < 0x20 || c >= 0x7f)
            bprintf(b, "?");
        else
            bprintf(b, "%c", c);
    }
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
            char name[sizeof(ps->name)];
            int j;
            /* Read with bounds: the worker may have left no NUL (crashed mid-write, or worse). */
            SRV_SCORE_TEXT(name, ps->name);
            for (j = 0; j < n_agg; j++) {
                if (strcmp(agg[j].name, name) == 0)
                    break;
            }
            if (j >= SRV_MAX_PLUGIN_STATS)
                continue;
            if (j == n_agg) {
                memcpy(agg[j].name, name, sizeof(name));
                SRV_SCORE_TEXT(agg[j].version, ps->version);
                SRV_SCORE_TEXT(agg[j].mount, ps->mount);
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

static void
json_workers(struct buf *b, const struct srv_stats_view *v, unsigned long long *total)
{
    for (size_t i = 0; i < v->n_workers; i++) {
        const struct srv_stats_worker *w = &v->workers[i];
        struct srv_score *sc = &v->board->slots[w->slot];

        *total += atomic_load(&sc->requests);
        bprintf(b,
                "%s{\"pid\":%d,\"id\":%d,\"generation\":%u,\"state\":\"%s\",\"requests\":%llu,"
                "\"in_flight\":%llu,\"connections\":%ld,\"age_s\":%.1f}",
                i ? "," : "", (int)w->pid, w->worker_id, w->generation, worker_state(v, w),
                (unsigned long long)atomic_load(&sc->requests),
                (unsigned long long)atomic_load(&sc->inflight), atomic_load(&sc->connections),
                (double)(srv_clock_ms() - w->started_ms) / 1000.0);
    }
}

static void
json_plugins(struct buf *b, const struct srv_stats_view *v)
{
    struct srv_plugin_score agg[SRV_MAX_PLUGIN_STATS];
    int n_agg = collect_plugins(v, agg);

    for (int j = 0; j < n_agg; j++) {
        bprintf(b, "%s{\"name\":", j ? "," : "");
        bjson(b, agg[j].name);
        bprintf(b, ",\"version\":");
        bjson(b, agg[j].version);
        bprintf(b, ",\"mount\":");
        bjson(b, agg[j].mount);
        bprintf(b,
                ",\"requests\":%llu,\"status_4xx\":%llu,\"status_5xx\":%llu,"
                "\"latency_sum_ms\":%.3f}",
                (unsigned long long)agg[j].requests, (unsigned long long)agg[j].status_4xx,
                (unsigned long long)agg[j].status_5xx, (double)agg[j].latency_us / 1000.0);
    }
}

/* One event of the ring; a crash adds the worker, the signal or exit status and the request. */
static void
json_event(struct buf *b, const struct srv_event *e)
{
    bprintf(b, "{\"seq\":%llu,\"time\":%.3f,\"uptime_s\":%.3f,\"kind\":\"%s\",\"generation\":%u,",
            e->seq, e->unix_time, (double)e->uptime_ms / 1000.0, srv_event_kind_name(e->kind),
            e->generation);
    if (e->kind == SRV_EVENT_CRASH) {
        const char *sig = e->signal ? sigabbrev_np(e->signal) : NULL;
        bprintf(b, "\"pid\":%d,\"worker\":%d,\"signal\":", e->pid, e->worker_id);
        if (sig)
            bjson(b, sig);
        else
            bprintf(b, "null");
        bprintf(b, ",\"exit_status\":%d,\"plugin\":", e->exit_status);
        bjson(b, e->plugin);
        bprintf(b, ",\"method\":");
        bjson(b, e->method);
        bprintf(b, ",\"target\":");
        bjson(b, e->target);
        bprintf(b, ",");
    }
    bprintf(b, "\"detail\":");
    bjson(b, e->detail);
    bprintf(b, "}");
}

static void
json_events(struct buf *b, const struct srv_events *ev)
{
    size_t n = ev ? srv_events_count(ev) : 0;

    bprintf(b, "\"events_total\":%llu,\"events\":[", ev ? ev->total : 0ULL);
    for (size_t i = 0; i < n; i++) {
        if (i)
            bprintf(b, ",");
        json_event(b, srv_events_get(ev, i));
    }
    bprintf(b, "]");
}

static char *
stats_json(const struct srv_stats_view *v, size_t *len)
{
    struct buf b = {NULL, 0, 0};
    unsigned long long total = v->retired_requests;
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    bprintf(&b,
            "{\"master_pid\":%d,\"time\":%.3f,\"uptime_s\":%.3f,\"generation\":%u,"
            "\"reloading_generation\":%u,\"target_workers\":%u,\"restarts\":%u,\"workers\":[",
            (int)getpid(), (double)now.tv_sec + (double)now.tv_nsec / 1e9,
            (double)(srv_clock_ms() - v->started_ms) / 1000.0, v->generation,
            v->reloading_generation, v->target_workers, v->restarts);
    json_workers(&b, v, &total);
    bprintf(&b, "],\"requests_total\":%llu,\"plugins\":[", total);
    json_plugins(&b, v);
    bprintf(&b, "],");
    json_events(&b, v->events);
    bprintf(&b, "}\n");
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
    for (int j = 0; j < n_agg; j++) {
        bprintf(&b, "csgi_plugin_requests_total{plugin=\"");
        blabel(&b, agg[j].name);
        bprintf(&b, "\",mount=\"");
        blabel(&b, agg[j].mount);
        bprintf(&b, "\"} %llu\n", (unsigned long long)agg[j].requests);
    }
    bprintf(&b, "# TYPE csgi_plugin_errors_total counter\n");
    for (int j = 0; j < n_agg; j++) {
        bprintf(&b, "csgi_plugin_errors_total{plugin=\"");
        blabel(&b, agg[j].name);
        bprintf(&b, "\",class=\"4xx\"} %llu\n", (unsigned long long)agg[j].status_4xx);
        bprintf(&b, "csgi_plugin_errors_total{plugin=\"");
        blabel(&b, agg[j].name);
        bprintf(&b, "\",class=\"5xx\"} %llu\n", (unsigned long long)agg[j].status_5xx);
    }
    bprintf(&b, "# TYPE csgi_plugin_latency_seconds_sum counter\n");
    for (int j = 0; j < n_agg; j++) {
        bprintf(&b, "csgi_plugin_latency_seconds_sum{plugin=\"");
        blabel(&b, agg[j].name);
        bprintf(&b, "\"} %.6f\n", (double)agg[j].latency_us / 1e6);
    }
    *len = b.len;
    return b.p;
}

char *
srv_stats_render(const struct srv_stats_view *view, int prometheus, size_t *len)
{
    *len = 0;
    return prometheus ? stats_prometheus(view, len) : stats_json(view, len);
}

/* Take up to SRV_STATS_ACCEPT_PER_TURN new connections; past the limit, close them at once. */
static void
accept_some(struct srv_stats_server *s)
{
    long long now = srv_clock_ms();

    for (int k = 0; k < SRV_STATS_ACCEPT_PER_TURN; k++) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        struct srv_stats_conn *c = NULL;

        if (fd < 0)
            return;
        for (size_t i = 0; i < SRV_STATS_MAX_CONNS; i++) {
            if (s->conns[i].fd < 0) {
                c = &s->conns[i];
                break;
            }
        }
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->req_len = 0;
        c->out = NULL;
        c->out_len = c->out_off = 0;
        c->reply_at_ms = now + SRV_STATS_READ_WAIT_MS;
        c->drop_at_ms = now + SRV_STATS_CONN_LIFE_MS;
    }
}

/* True for a request line of HTTP/1.x: "GET " or "HEAD ", a target, then " HTTP/". */
static int
http_request_line(const char *req)
{
    const char *eol = strchr(req, '\n');
    const char *ver = strstr(req, " HTTP/");

    return (strncmp(req, "GET ", 4) == 0 || strncmp(req, "HEAD ", 5) == 0) && eol && ver &&
           ver < eol;
}

/*
 * True when the request has come whole: the headers' blank line after an
 * HTTP/1.x request line (the page is chosen by Accept), or any line break
 * from another reader (HTTP/0.9, or a plain reader's line).
 */
static int
request_complete(const char *req)
{
    if (!strchr(req, '\n'))
        return 0;
    if (!http_request_line(req))
        return 1;
    return strstr(req, "\r\n\r\n") || strstr(req, "\n\n");
}

/*
 * Read what has come of the request (never blocking). Returns 1 when the
 * connection is to be answered now (the request whole, a full buffer, the
 * peer done sending, or the wait over), 0 to wait, -1 to drop it.
 */
static int
read_request(struct srv_stats_conn *c, long long now)
{
    int eof = 0;

    while (c->req_len < sizeof(c->req) - 1) {
        ssize_t n = recv(c->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len, 0);
        if (n == 0) {
            eof = 1;
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->req_len += (size_t)n;
    }
    c->req[c->req_len] = '\0';
    if (eof || c->req_len >= sizeof(c->req) - 1 ||
        (memchr(c->req, '\0', c->req_len) == NULL && request_complete(c->req)))
        return 1;
    return now >= c->reply_at_ms;
}

/* What a stats request asks for. */
enum stats_route {
    ROUTE_JSON,    /* the JSON: a plain reader, GET /stats.json, GET / without text/html */
    ROUTE_METRICS, /* GET /metrics */
    ROUTE_PAGE,    /* GET / from a browser (Accept: text/html) */
};

/* True when the request's target path (query cut) is path. */
static int
target_is(const char *req, const char *path)
{
    const char *t = strchr(req, ' ') + 1;
    size_t n = strlen(path);

    return strncmp(t, path, n) == 0 && (t[n] == ' ' || t[n] == '?');
}

/* True when an Accept header of the request names text/html (any case, any position). */
static int
accepts_html(const char *req)
{
    const char *line = strchr(req, '\n');

    while (line && line[1] != '\r' && line[1] != '\n' && line[1]) {
        const char *eol = strchr(line + 1, '\n');
        size_t n = eol ? (size_t)(eol - line - 1) : strlen(line + 1);
        if (n > 7 && strncasecmp(line + 1, "accept:", 7) == 0) {
            for (size_t k = 8; k + 8 <= n; k++) {
                if (strncasecmp(line + k, "text/html", 9) == 0)
                    return 1;
            }
        }
        line = eol;
    }
    return 0;
}

static enum stats_route
route_of(const char *req)
{
    if (!http_request_line(req))
        return ROUTE_JSON;
    if (target_is(req, "/metrics"))
        return ROUTE_METRICS;
    if ((target_is(req, "/") || target_is(req, "/index.html")) && accepts_html(req))
        return ROUTE_PAGE;
    return ROUTE_JSON;
}

/*
 * Render the reply of c: the JSON alone for a plain reader; for an HTTP
 * request a status line and headers, then the body (none for HEAD). The page
 * goes with its Content-Security-Policy (its own inline script and style
 * only, fetches to itself) and nosniff; every answer to / says Vary: Accept.
 */
static void
make_reply(struct srv_stats_conn *c, const struct srv_stats_view *view)
{
    const char *req = c->req;
    int http = http_request_line(req);
    enum stats_route route = route_of(req);
    struct buf out = {NULL, 0, 0};
    char *rendered = NULL;
    const char *body = srv_status_page;
    size_t len = sizeof(srv_status_page) - 1;
    const char *type = "text/html; charset=utf-8";

    if (route != ROUTE_PAGE) {
        rendered = srv_stats_render(view, route == ROUTE_METRICS, &len);
        if (!rendered)
            return;
        body = rendered;
        type = route == ROUTE_METRICS ? "text/plain; version=0.0.4" : "application/json";
    }
    if (http) {
        bprintf(&out,
                "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n",
                type, len);
        if (route == ROUTE_PAGE)
            bprintf(&out, "Content-Security-Policy: %s\r\nReferrer-Policy: no-referrer\r\n",
                    SRV_STATUS_PAGE_CSP);
        if (target_is(req, "/") || target_is(req, "/index.html"))
            bprintf(&out, "Vary: Accept\r\n");
        bprintf(&out, "Connection: close\r\n\r\n");
        if (strncmp(req, "HEAD ", 5) == 0)
            len = 0;
        if (!out.p) {
            free(rendered);
            return;
        }
    }
    /* The body is copied whole (bprintf() would stop at a NUL a worker wrote). */
    c->out = realloc(out.p, out.len + len + 1);
    if (c->out) {
        memcpy(c->out + out.len, body, len);
        c->out_len = out.len + len;
    } else {
        free(out.p);
    }
    c->out_off = 0;
    free(rendered);
}

/* Write what the socket takes of c's reply. Returns 1 when it is all out or the peer went. */
static int
write_reply(struct srv_stats_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
        c->out_off += (size_t)n;
    }
    return 1;
}

void
srv_stats_serve(struct srv_stats_server *s, const struct srv_stats_view *view)
{
    long long now;

    if (s->fd < 0)
        return;
    accept_some(s);
    now = srv_clock_ms();
    for (size_t i = 0; i < SRV_STATS_MAX_CONNS; i++) {
        struct srv_stats_conn *c = &s->conns[i];
        if (c->fd < 0)
            continue;
        if (now >= c->drop_at_ms) {
            conn_close(c);
            continue;
        }
        if (!c->out) {
            int r = read_request(c, now);
            if (r < 0) {
                conn_close(c);
                continue;
            }
            if (r == 0)
                continue;
            make_reply(c, view);
            if (!c->out) {
                conn_close(c);
                continue;
            }
        }
        if (write_reply(c))
            conn_close(c);
    }
}
