/*
 * The master's stats endpoint (--stats ADDR): JSON for plain readers, GET /
 * and GET /stats.json, the Prometheus text format for GET /metrics, and a
 * status page (status_page.html, polling /stats.json) for GET / from a
 * browser (Accept: text/html). It runs in the master,
 * between signal-loop steps, and reads only what the master hands it: a
 * snapshot of the master's own state plus the shared scoreboard.
 */
#ifndef SRV_STATS_H
#define SRV_STATS_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

#include "events.h"
#include "listener.h"
#include "scoreboard.h"

/*
 * Bounds that keep the stats endpoint from delaying the master, which serves
 * it between the steps of its signal and reap loop: connections accepted per
 * loop turn, connections open at once (more are closed at once), how long a
 * connection may take to send its request (its line, or for HTTP/1.x its
 * headers) before it is answered anyway, how long a connection lives at
 * most, and the request bytes read (a browser's headers take about 1 KiB).
 */
#define SRV_STATS_ACCEPT_PER_TURN 4
#define SRV_STATS_MAX_CONNS       16
#define SRV_STATS_READ_WAIT_MS    100
#define SRV_STATS_CONN_LIFE_MS    1000
#define SRV_STATS_REQUEST_BYTES   2048

/* One stats connection: reading its request line, then writing its reply. */
struct srv_stats_conn {
    int fd;                /* -1: free */
    long long reply_at_ms; /* reply by then even without a request line */
    long long drop_at_ms;  /* closed by then, whatever it has left */
    size_t req_len;
    char req[SRV_STATS_REQUEST_BYTES];
    char *out; /* the reply, once rendered; NULL while reading */
    size_t out_len, out_off;
};

/* The listening socket of the stats endpoint and its open connections. */
struct srv_stats_server {
    int fd; /* -1 when closed */
    /* A unix socket's path, unlinked on close; empty for TCP. */
    char path[sizeof(((struct srv_listener *)0)->host)];
    struct srv_stats_conn conns[SRV_STATS_MAX_CONNS];
};

/* One live worker as the master knows it. */
struct srv_stats_worker {
    pid_t pid;
    int slot;      /* scoreboard index */
    int worker_id; /* 0..N-1 within its generation */
    unsigned generation;
    long long started_ms; /* srv_clock_ms() at fork */
    int stopping;         /* the master told it to stop */
};

/*
 * The master's state a stats reply shows. Borrowed for one
 * srv_stats_serve() call.
 */
struct srv_stats_view {
    struct srv_scoreboard *board;
    long long started_ms;          /* master start, srv_clock_ms() */
    unsigned generation;           /* the serving generation */
    unsigned reloading_generation; /* being started by a reload, 0 none */
    unsigned target_workers;
    unsigned restarts;                      /* unexpected worker deaths */
    unsigned long long retired_requests;    /* served by workers already reaped */
    const struct srv_stats_worker *workers; /* live workers, in slot order */
    size_t n_workers;
    const struct srv_events *events; /* recent reloads and crashes; NULL: none */
};

/*
 * Open the endpoint on spec (the --bind address syntax), non-blocking. A
 * unix socket's file gets mode (--socket-mode, default 0660: the stats show
 * pids, plugin names and versions, unauthenticated); a TCP address other
 * than loopback is logged as a warning.
 * Returns 0 or -errno; s->fd is -1 on failure.
 */
int srv_stats_open(struct srv_stats_server *s, const char *spec, int mode);

/*
 * Close the socket and the open connections and unlink a unix socket's path.
 * Safe on a closed server.
 */
void srv_stats_close(struct srv_stats_server *s);

/*
 * In a forked child: close the descriptors of s without unlinking anything
 * (the master still serves on them).
 */
void srv_stats_drop_fds(struct srv_stats_server *s);

/*
 * Fill pf (room for cap entries) with what the master's poll() waits on for
 * the endpoint: the listening socket and each open connection. Returns the
 * entries used (0 when closed).
 */
size_t srv_stats_pollfds(const struct srv_stats_server *s, struct pollfd *pf, size_t cap);

/* True when the endpoint has work: connections open, or pf said one waits. */
int srv_stats_busy(const struct srv_stats_server *s);

/*
 * One step of the endpoint, never blocking: accept up to
 * SRV_STATS_ACCEPT_PER_TURN new connections (closing those past
 * SRV_STATS_MAX_CONNS at once), read what request bytes have come, reply to
 * a connection that sent its request (or after SRV_STATS_READ_WAIT_MS
 * without one: a plain reader gets the JSON without a status line), write
 * what the socket takes, and close connections done or older than
 * SRV_STATS_CONN_LIFE_MS. view is rendered only for a reply.
 */
void srv_stats_serve(struct srv_stats_server *s, const struct srv_stats_view *view);

/*
 * Render the stats of view, as JSON (prometheus 0) or in the Prometheus text
 * format (prometheus 1). Returns a malloc'ed buffer (caller owns; release
 * with free()) and its length in *len; NULL and 0 when no memory could be had.
 */
char *srv_stats_render(const struct srv_stats_view *view, int prometheus, size_t *len);

#endif /* SRV_STATS_H */
