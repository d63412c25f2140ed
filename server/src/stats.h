/*
 * The master's stats endpoint (--stats ADDR): JSON for plain readers and
 * GET /, the Prometheus text format for GET /metrics. It runs in the master,
 * between signal-loop steps, and reads only what the master hands it: a
 * snapshot of the master's own state plus the shared scoreboard.
 */
#ifndef SRV_STATS_H
#define SRV_STATS_H

#include <stddef.h>
#include <sys/types.h>

#include "listener.h"
#include "scoreboard.h"

/* The listening socket of the stats endpoint. */
struct srv_stats_server {
    int fd; /* -1 when closed */
    /* A unix socket's path, unlinked on close; empty for TCP. */
    char path[sizeof(((struct srv_listener *)0)->host)];
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
};

/*
 * Open the endpoint on spec (the --bind address syntax), non-blocking.
 * Returns 0 or -errno; s->fd is -1 on failure.
 */
int srv_stats_open(struct srv_stats_server *s, const char *spec);

/* Close the socket and unlink a unix socket's path. Safe on a closed server. */
void srv_stats_close(struct srv_stats_server *s);

/*
 * Answer every connection waiting on s->fd with the figures of view, then
 * return. A reply waits briefly (100 ms) for an HTTP request line: a plain
 * reader that sends nothing gets the JSON without a status line.
 */
void srv_stats_serve(struct srv_stats_server *s, const struct srv_stats_view *view);

/*
 * Render the stats of view, as JSON (prometheus 0) or in the Prometheus text
 * format (prometheus 1). Returns a malloc'ed buffer (caller owns; release
 * with free()) and its length in *len; NULL and 0 when no memory could be had.
 */
char *srv_stats_render(const struct srv_stats_view *view, int prometheus, size_t *len);

#endif /* SRV_STATS_H */
