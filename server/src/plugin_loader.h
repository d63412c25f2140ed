/*
 * Plugin loading: scan a directory, dlopen private copies, negotiate the ABI,
 * run per-worker init, and keep the mount table.
 */
#ifndef SRV_PLUGIN_LOADER_H
#define SRV_PLUGIN_LOADER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <csgi/csgi.h>

#include "config.h"

/* One middleware plugin in front of a mounted plugin (--wrap). */
struct srv_wrap_layer {
    const struct srv_plugin *middleware; /* an entry of srv_plugin_set.mw */
    void *instance;                      /* what its wrap() returned, for unwrap() */
};

struct srv_plugin {
    char *file;              /* file name inside the plugin directory */
    char *instance_name;     /* --instance NAME: desc.name points here, else NULL */
    void *handle;            /* dlopen handle */
    int copy_fd;             /* the private copy it was mapped from (valid with handle) */
    struct csgi_plugin desc; /* zero-extended copy of the plugin's descriptor */
    char *mount;             /* "/" or "/prefix" */
    size_t mount_len;
    struct csgi_kv *config;
    size_t n_config;
    void *state;
    /* What a request calls: desc.call and state, or the outermost middleware's. */
    csgi_app_fn app;
    void *app_state;
    char **wrap_names; /* --wrap middleware names, outermost first */
    size_t n_wrap_names;
    struct srv_wrap_layer *layers; /* innermost first, as applied */
    size_t n_layers;
    int initialized;
    int serialize; /* call()/next()/close() under lock */
    /* desc.flags as mounted: with each --wrap middleware's CSGI_PLUGIN_WAITS (wrap_one()). */
    uint32_t flags;
    pthread_mutex_t lock;

    /* Statistics, updated by request threads. */
    atomic_ullong requests;
    atomic_ullong status_4xx;
    atomic_ullong status_5xx;
    atomic_ullong latency_us;
};

struct srv_plugin_set {
    struct srv_plugin *v; /* applications: mounted */
    size_t n;
    struct srv_plugin *mw; /* middleware plugins (wrap set): not mounted */
    size_t n_mw;
    /* Mount indexes sorted by prefix length, longest first. */
    size_t *by_len;
};

/*
 * 1 when a mounted plugin (or a middleware wrapped around one) declares
 * CSGI_PLUGIN_WAITS: the server then prepares its connections for waiting.
 */
int srv_plugins_wait(const struct srv_plugin_set *set);

/* A plugin file that failed to load or init, or a --set naming no loaded plugin. */
struct srv_plugin_failure {
    char *what; /* the file name, or "--set NAME.KEY" */
    char *why;  /* the reason, as logged */
};

/* What failed while loading and initialising a set (--check-config's table). */
struct srv_plugin_report {
    struct srv_plugin_failure *v; /* in order; each was also logged */
    size_t n;
    /* How many of them are --set names that match no loaded plugin. */
    size_t n_unknown_settings;
};

/* Free what a report holds (the struct itself is the caller's). */
void srv_plugin_report_free(struct srv_plugin_report *rep);

/*
 * Load every *.so file of cfg->plugin_dir into set (sorted by file name).
 * A plugin that fails is logged with its file name and reason and skipped.
 * A --set whose plugin name matches no loaded plugin is logged as a warning
 * (not counted in the result). Returns the number of files that failed, or a
 * negative CSGI_E* code when the directory itself cannot be read.
 */
int srv_plugins_load(struct srv_plugin_set *set, const struct srv_config *cfg);
/* srv_plugins_load(), recording every failure and unknown --set in rep (zeroed first). */
int srv_plugins_load_report(struct srv_plugin_set *set, const struct srv_config *cfg,
                            struct srv_plugin_report *rep);

/*
 * Run init_worker of every loaded plugin, middleware plugins first, then put
 * the middleware each --wrap names in front of its plugin. A plugin whose
 * init fails is logged and removed from the set, and so is a mounted plugin
 * whose middleware is missing or fails to wrap it (its mount is not served:
 * a deployment that asked for a middleware never serves without it).
 * serialize: a mount gets a lock when its plugin or one of its middleware
 * is not CSGI_PLUGIN_THREADSAFE. Returns the number that failed.
 */
int srv_plugins_init(struct srv_plugin_set *set, const struct csgi_host_api *api, int serialize);
/* srv_plugins_init(), adding each failure to rep (may be NULL). */
int srv_plugins_init_report(struct srv_plugin_set *set, const struct csgi_host_api *api,
                            int serialize, struct srv_plugin_report *rep);

/* Run exit_worker (for initialized plugins), dlclose, and free the set. */
void srv_plugins_unload(struct srv_plugin_set *set);

/*
 * Find the longest mount matching path (at a '/' boundary) among mounts
 * after position *iter in longest-first order; *iter advances, so calling
 * again finds the next shorter match (for CSGI_EDECLINED). Start with
 * *iter = 0. Returns the plugin or NULL.
 */
struct srv_plugin *srv_plugins_match(const struct srv_plugin_set *set, const char *path,
                                     size_t path_len, size_t *iter);

#endif /* SRV_PLUGIN_LOADER_H */
