/*
 * csgi-server configuration: one table of options, read from a JSON file
 * (--config) and then from the command line, which overrides it.
 */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "srv_limits.h"
#include <stdio.h>

struct srv_mount_override {
    char *prefix;
    char *plugin;
};

struct srv_setting {
    char *plugin;
    char *key;
    char *value;
};

/* --wrap NAME=MW[,MW2...]: middleware plugins in front of plugin NAME, outermost first. */
struct srv_wrap {
    char *plugin;
    char **middleware;
    size_t n_middleware;
};

/* A repeatable string option (--tls-cert, --tls-key). */
struct srv_strlist {
    char **v;
    size_t n;
};

struct srv_tls;

/* --instance NAME=PLUGIN: the plugin file loaded a second time, under another name. */
struct srv_instance {
    char *name;
    char *plugin;
};

struct srv_config {
    char **binds;
    size_t n_binds;
    /* --trusted-proxy: networks whose Forwarded / X-Forwarded-* are honoured. */
    char **trusted_proxies;
    size_t n_trusted_proxies;
    char *plugin_dir;
    struct srv_mount_override *mounts;
    size_t n_mounts;
    struct srv_setting *settings;
    size_t n_settings;
    struct srv_wrap *wraps;
    size_t n_wraps;

    unsigned workers;
    unsigned threads;

    unsigned conn_timeout;
    unsigned header_timeout;
    unsigned body_timeout;
    unsigned max_connections;
    unsigned max_conn_per_ip;
    unsigned max_headers;
    size_t conn_memory;
    size_t max_body;
    size_t body_buffer;
    size_t max_spill; /* spilled body bytes per worker at once (0: no bound) */

    char *access_log;
    char *error_log;
    int access_json;
    int log_level;

    char *health;         /* --health: the path answered 200, or 503 once draining */
    unsigned drain_delay; /* --drain-delay: seconds of failing health before a stop drains */
    unsigned graceful_timeout;
    unsigned timeout;
    unsigned max_requests;
    unsigned max_requests_jitter;
    unsigned ready_timeout;
    char *pid_file;
    char *stats;
    char *socket_mode; /* octal text; srv_config_socket_mode() */
    char *user;
    char *group;
    char *tmp_dir;

    char *config_file;
    int check_config;
    int show_help;
    int show_version;
    char *status_addr;
    unsigned status_timeout;

    /* TLS (https:// binds): files and settings as given; see tls.h. */
    struct srv_strlist tls_certs;
    struct srv_strlist tls_keys;
    char *tls_priorities;
    char *tls_client_ca;
    char *tls_client_verify; /* "require" (default) or "optional" */
    /*
     * What srv_tls_load() read from those files (the master's, at start and
     * for each reload's configuration; workers inherit it). Freed with the
     * configuration. NULL: no certificate.
     */
    struct srv_tls *tls;
    struct srv_instance *instances;
    size_t n_instances;
};

/* Defaults; see the option table in config.c (and README.md). */
void srv_config_init(struct srv_config *cfg);
void srv_config_free(struct srv_config *cfg);

/*
 * Parse argv (with --config FILE applied first). On error writes a one-line
 * message naming the option into err and returns -1 (the caller exits 2).
 */
int srv_config_parse_args(struct srv_config *cfg, int argc, char **argv, char *err, size_t err_len);

/* Parse a JSON document into cfg. Returns 0 or -1 with err set. */
int srv_config_parse_json(struct srv_config *cfg, const char *text, char *err, size_t err_len);

/* Check cross-option consistency. Returns 0 or -1 with err set. */
int srv_config_validate(const struct srv_config *cfg, char *err, size_t err_len);

/*
 * Check what must exist on disk before the server starts or reloads: the
 * --plugins directory. Returns 0 or -1 with a one-line err naming it.
 */
int srv_config_check_paths(const struct srv_config *cfg, char *err, size_t err_len);

/*
 * The mode of the unix sockets cfg binds (--socket-mode, octal; default
 * SRV_SOCKET_MODE_DEFAULT). Returns the mode, or -1 when the text is not an
 * octal mode 0..0777.
 */
int srv_config_socket_mode(const struct srv_config *cfg);

/*
 * Load cfg's TLS files into cfg->tls (srv_tls_load()), and check that every
 * https:// bind has a certificate. Returns 0 or -1 with err set.
 */
int srv_config_load_tls(struct srv_config *cfg, char *err, size_t err_len);

/* Print --help (the option table) to f. */
void srv_config_usage(FILE *f);

/* Parse "64k", "10M", "1g" or plain bytes. Returns 0 or -1. */
int srv_config_parse_size(const char *s, size_t *out);

#endif /* SRV_CONFIG_H */
