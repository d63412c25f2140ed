/*
 * One worker process: load the plugins after fork, serve on the inherited
 * listening sockets, drain on request.
 */
#ifndef SRV_WORKER_H
#define SRV_WORKER_H

#include <stddef.h>

#include "config.h"
#include "listener.h"
#include "scoreboard.h"

struct srv_worker_args {
    const struct srv_config *cfg;
    struct srv_listener *listeners;
    size_t n_listeners;
    int worker_id;
    unsigned generation;
    unsigned workers;
    unsigned long long max_requests; /* 0 = unlimited */
    struct srv_score *score;         /* may be NULL */
    struct srv_scoreboard *board;    /* every worker's slot; may be NULL */
};

/*
 * Run a worker until told to stop (SIGTERM graceful, SIGINT/SIGQUIT fast) or,
 * with max_requests, until it has served that many. Returns the exit status.
 */
int srv_worker_run(const struct srv_worker_args *a);

#endif /* SRV_WORKER_H */
