/*
 * The scoreboard: one shared-memory table, written by workers and read by
 * the master (watchdog, reload readiness, stats). Created by the master
 * before the first fork with MAP_SHARED | MAP_ANONYMOUS.
 */
#ifndef SRV_SCOREBOARD_H
#define SRV_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>

#include "srv_limits.h"

/* load_failures of a worker whose plugin directory could not be loaded at all. */
#define SRV_LOAD_FAILED 1000

enum srv_worker_state {
    SRV_W_FREE = 0,
    SRV_W_STARTING,
    SRV_W_LOADED,   /* plugins loaded and initialised; waiting for the master's go */
    SRV_W_READY,    /* serving */
    SRV_W_RETIRING, /* asked for a replacement (max-requests), draining */
    SRV_W_DRAINING, /* told to stop, draining */
};

struct srv_plugin_score {
    char name[SRV_PLUGIN_NAME_SIZE];
    char version[SRV_PLUGIN_VERSION_SIZE];
    char mount[SRV_PLUGIN_MOUNT_SIZE];
    atomic_ullong requests;
    atomic_ullong status_4xx;
    atomic_ullong status_5xx;
    atomic_ullong latency_us;
};

struct srv_score {
    atomic_int pid;
    atomic_int state;
    atomic_uint generation;
    atomic_int worker_id;
    /* Plugins that failed to load or init; SRV_LOAD_FAILED: none could be loaded. */
    atomic_int load_failures;
    /* Set by the master: 1 = start serving. A worker never accepts before it. */
    atomic_int go;
    atomic_int n_plugins;
    atomic_ullong requests;
    atomic_ullong inflight;
    atomic_long connections;
    atomic_llong started_ms;
    /* CLOCK_MONOTONIC ms when each thread entered plugin code, 0 when not in it. */
    atomic_llong busy_since_ms[SRV_MAX_THREADS];
    struct srv_plugin_score plugins[SRV_MAX_PLUGIN_STATS];
};

struct srv_scoreboard {
    atomic_uint generation;
    struct srv_score slots[SRV_MAX_SLOTS];
};

#endif /* SRV_SCOREBOARD_H */
