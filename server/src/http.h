/*
 * The HTTP front: libmicrohttpd daemons on the worker's listening sockets,
 * request -> environ translation, the CSGI call, and the response.
 */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "listener.h"
#include "plugin_loader.h"

struct srv_http;

/* Per-worker counters, read by the worker loop (scoreboard, stats). */
struct srv_http_stats {
    atomic_ullong requests; /* finished requests */
    atomic_ullong inflight; /* started, not finished */
};

/*
 * Create the HTTP front for a worker: the host API table, and one daemon per
 * listener (started by srv_http_start()). Returns NULL on failure (logged).
 */
struct srv_http *srv_http_new(const struct srv_config *cfg, struct srv_listener *listeners,
                              size_t n_listeners, unsigned workers);

/* The host API handed to init_worker(). */
const struct csgi_host_api *srv_http_api(struct srv_http *h);

/* Attach the initialized plugins (borrowed) and start the daemons. 0 or -1. */
int srv_http_start(struct srv_http *h, struct srv_plugin_set *plugins);

/* Cut off connections past their header/body deadline. Call about once a second. */
void srv_http_tick(struct srv_http *h);

/*
 * Stop accepting (quiesce) and mark responses "Connection: close". In-flight
 * requests continue.
 */
void srv_http_drain(struct srv_http *h);

/* Requests started and not finished. */
unsigned long long srv_http_inflight(struct srv_http *h);
struct srv_http_stats *srv_http_stats(struct srv_http *h);

struct srv_score;
struct srv_scoreboard;
/*
 * Publish per-thread "in plugin code since" times and the connection count
 * into this worker's scoreboard slot; the board is read to balance accepts.
 */
void srv_http_set_score(struct srv_http *h, struct srv_score *sc, struct srv_scoreboard *board);

/* Stop the daemons (closes idle connections) and free everything. */
void srv_http_free(struct srv_http *h);

#endif /* SRV_HTTP_H */
