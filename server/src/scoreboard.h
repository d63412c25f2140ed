/*
 * The scoreboard: one shared-memory table, written by workers and read by
 * the master (watchdog, reload readiness, stats). Created by the master
 * before the first fork with MAP_SHARED | MAP_ANONYMOUS.
 */
#ifndef SRV_SCOREBOARD_H
#define SRV_SCOREBOARD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/*
 * The request a worker thread is running plugin code for (call(), a body's
 * next() or close()), written by that thread and read by the master when it
 * reaps a worker killed by a signal: the crash log line and the access-log
 * line of the request that was lost both come from here.
 *
 * The strings are written by a process that may have crashed mid-write:
 * readers copy them with a bound (srv_inflight_read()) and never trust a NUL.
 */
struct srv_inflight {
    /* 1 while the fields below describe the request in plugin code, else 0. */
    atomic_int active;
    uint64_t request_id; /* per worker; the error log's "request N" */
    const void *key;     /* the worker's own plugin pointer, to skip rewriting */
    char plugin[SRV_PLUGIN_NAME_SIZE];
    char method[SRV_INFLIGHT_METHOD_SIZE];
    char target[SRV_INFLIGHT_TARGET_SIZE]; /* raw request target, cut */
    char remote_addr[SRV_INFLIGHT_ADDR_SIZE];
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
    /* What each thread's busy_since_ms is about (see struct srv_inflight). */
    struct srv_inflight in_plugin[SRV_MAX_THREADS];
    /* Set by a worker once it has closed its copies of the listening sockets. */
    atomic_int listeners_closed;
};

struct srv_scoreboard {
    atomic_uint generation;
    /*
     * Set by the master on SIGTERM with --drain-delay: --health answers 503
     * and responses close their connection while the instance still serves.
     */
    atomic_int health_failing;
    struct srv_score slots[SRV_MAX_SLOTS];
};

/* Copy the string s into dst (size bytes), cut, NUL-terminated; NULL as "". */
static inline void
srv__score_copy(char *dst, size_t size, const char *s, size_t len)
{
    if (!s)
        len = 0;
    if (len > size - 1)
        len = size - 1;
    if (len)
        memcpy(dst, s, len);
    dst[len] = '\0';
}

/*
 * Copy a worker-written string field (an array, maybe without a NUL) into
 * the array dst, reading no further than the field.
 */
#define SRV_SCORE_TEXT(dst, field)                                                                 \
    srv__score_copy((dst), sizeof(dst), (field), strnlen((field), sizeof(field) - 1))

/*
 * Publish, in slot thread of sc, that this thread now runs plugin code of
 * plugin (key: any pointer that identifies it in this worker) for request id.
 * Call it right before the plugin's call(), next() or close(). plugin is
 * NUL-terminated (or NULL); method is given with its length and need not be
 * terminated. target (its length target_len) and remote_addr are padded:
 * each is readable for the whole size of its field in struct srv_inflight,
 * and remote_addr is NUL-terminated within it, so that each is copied whole
 * by a copy of fixed size (which the compiler inlines) and then cut.
 * Everything is copied (cut to the sizes of struct srv_inflight); the
 * plugin name only when key changes. Re-entering for the same request and
 * plugin rewrites nothing. sc NULL or thread out of range: nothing happens.
 * This runs on every request: the lengths come from the caller so that
 * nothing is measured twice.
 */
static inline void
srv_score_set_inflight(struct srv_score *sc, int thread, const void *key, const char *plugin,
                       uint64_t id, const char *method, size_t method_len, const char *target,
                       size_t target_len, const char *remote_addr)
{
    struct srv_inflight *f;

    if (!sc || thread < 0 || thread >= SRV_MAX_THREADS)
        return;
    f = &sc->in_plugin[thread];
    if (f->request_id == id && f->key == key && f->plugin[0]) {
        atomic_store_explicit(&f->active, 1, memory_order_release);
        return;
    }
    atomic_store_explicit(&f->active, 0, memory_order_relaxed);
    if (f->key != key || !f->plugin[0])
        srv__score_copy(f->plugin, sizeof(f->plugin), plugin, plugin ? strlen(plugin) : 0);
    f->request_id = id;
    f->key = key;
    srv__score_copy(f->method, sizeof(f->method), method, method_len);
    /* Most targets are short: half the field holds them and their NUL. */
    if (target_len < sizeof(f->target) / 2)
        memcpy(f->target, target, sizeof(f->target) / 2);
    else
        memcpy(f->target, target, sizeof(f->target));
    f->target[target_len < sizeof(f->target) ? target_len : sizeof(f->target) - 1] = '\0';
    memcpy(f->remote_addr, remote_addr, sizeof(f->remote_addr));
    f->remote_addr[sizeof(f->remote_addr) - 1] = '\0';
    atomic_store_explicit(&f->active, 1, memory_order_release);
}

/* The thread left plugin code: its slot no longer describes a request. */
static inline void
srv_score_clear_inflight(struct srv_score *sc, int thread)
{
    if (!sc || thread < 0 || thread >= SRV_MAX_THREADS)
        return;
    atomic_store_explicit(&sc->in_plugin[thread].active, 0, memory_order_release);
}

/* A reader's copy of a struct srv_inflight: every string NUL-terminated. */
struct srv_inflight_text {
    uint64_t request_id;
    char plugin[SRV_PLUGIN_NAME_SIZE];
    char method[SRV_INFLIGHT_METHOD_SIZE];
    char target[SRV_INFLIGHT_TARGET_SIZE];
    char remote_addr[SRV_INFLIGHT_ADDR_SIZE];
};

/*
 * Copy slot thread of sc into out, each string read up to its field's size
 * (never past it, whatever the writer left). Returns 1 when the slot
 * describes a request in plugin code, else 0 (out untouched).
 */
static inline int
srv_inflight_read(struct srv_score *sc, int thread, struct srv_inflight_text *out)
{
    const struct srv_inflight *f;

    if (!sc || thread < 0 || thread >= SRV_MAX_THREADS)
        return 0;
    f = &sc->in_plugin[thread];
    if (!atomic_load_explicit(&f->active, memory_order_acquire))
        return 0;
    out->request_id = f->request_id;
    SRV_SCORE_TEXT(out->plugin, f->plugin);
    SRV_SCORE_TEXT(out->method, f->method);
    SRV_SCORE_TEXT(out->target, f->target);
    SRV_SCORE_TEXT(out->remote_addr, f->remote_addr);
    return 1;
}

#endif /* SRV_SCOREBOARD_H */
