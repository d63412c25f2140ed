/*
 * Option table, JSON config (cJSON) and command-line parsing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "forwarded.h"
#include "listener.h"
#include "log.h"
#include "srv_limits.h"
#include "tls.h"

enum opt_type {
    OPT_FLAG,     /* no argument */
    OPT_UINT,     /* unsigned integer */
    OPT_SIZE,     /* bytes with k/m/g suffix */
    OPT_STR,      /* string */
    OPT_BIND,     /* repeatable --bind */
    OPT_MOUNT,    /* repeatable /prefix=plugin */
    OPT_SET,      /* repeatable plugin.key=value */
    OPT_WRAP,     /* repeatable plugin=middleware[,middleware] */
    OPT_LEVEL,    /* log level name */
    OPT_CONFIG,   /* --config FILE (handled first) */
    OPT_TRUST,    /* repeatable --trusted-proxy */
    OPT_LIST,     /* repeatable string (struct srv_strlist) */
    OPT_INSTANCE, /* repeatable name=plugin */
};

struct opt {
    const char *name;
    enum opt_type type;
    size_t offset;
    unsigned min;
    const char *arg;
    const char *help;
};

#define OFF(f) offsetof(struct srv_config, f)

static const struct opt opts[] = {
    {"bind", OPT_BIND, OFF(binds), 0, "ADDR",
     "listen on host:port, [v6]:port, :port (every interface) or unix:/path (repeatable; "
     "default 127.0.0.1:8000); https://host:port serves TLS (needs --tls-cert); ADDR,proxy: "
     "each connection starts with a PROXY protocol header (v1 or v2)"},
    {"trusted-proxy", OPT_TRUST, OFF(trusted_proxies), 0, "CIDR",
     "honour Forwarded and X-Forwarded-For/-Proto/-Host from peers in CIDR (an address, "
     "10.0.0.0/8, ::1, or unix for unix-socket peers; repeatable; default none)"},
    {"tls-cert", OPT_LIST, OFF(tls_certs), 0, "FILE",
     "PEM certificate chain for https:// binds (repeatable: the first is the default, the "
     "others are chosen by the client's SNI)"},
    {"tls-key", OPT_LIST, OFF(tls_keys), 0, "FILE",
     "PEM private key of each --tls-cert, in the same order (read by the master as root)"},
    {"tls-priorities", OPT_STR, OFF(tls_priorities), 0, "STR",
     "GnuTLS priority string (default " SRV_TLS_PRIORITIES_DEFAULT ": TLS 1.2 and 1.3)"},
    {"tls-client-ca", OPT_STR, OFF(tls_client_ca), 0, "FILE",
     "ask clients for a certificate and verify it against the CAs in this PEM file"},
    {"tls-client-verify", OPT_STR, OFF(tls_client_verify), 0, "MODE",
     "with --tls-client-ca: require (no verified certificate: 403; default) or optional"},
    {"plugins", OPT_STR, OFF(plugin_dir), 0, "DIR", "load every *.so in DIR (sorted order)"},
    {"mount", OPT_MOUNT, OFF(mounts), 0, "/PREFIX=NAME",
     "mount plugin NAME at /PREFIX (repeatable; default: the plugin's own mount)"},
    {"set", OPT_SET, OFF(settings), 0, "NAME.KEY=VALUE",
     "configuration for plugin NAME, passed to its init (repeatable)"},
    {"wrap", OPT_WRAP, OFF(wraps), 0, "NAME=MW[,MW2]",
     "put middleware plugins MW, MW2 (outermost first) in front of plugin NAME (repeatable)"},
    {"instance", OPT_INSTANCE, OFF(instances), 0, "NAME=PLUGIN",
     "load plugin PLUGIN's file once more as plugin NAME, with its own mount and --set "
     "NAME.KEY (repeatable)"},
    {"config", OPT_CONFIG, OFF(config_file), 0, "FILE",
     "read options from a JSON file; the command line overrides it"},
    {"workers", OPT_UINT, OFF(workers), 1, "N", "worker processes (default: number of cores)"},
    {"threads", OPT_UINT, OFF(threads), 1, "N", "libmicrohttpd threads per worker (default 1)"},
    {"conn-timeout", OPT_UINT, OFF(conn_timeout), 1, "SEC",
     "close a connection idle this long, keep-alive included (default 15)"},
    {"header-timeout", OPT_UINT, OFF(header_timeout), 1, "SEC",
     "a request head must arrive within this time (slowloris guard; default 10)"},
    {"body-timeout", OPT_UINT, OFF(body_timeout), 1, "SEC",
     "a request body must arrive within this time (default 60)"},
    {"max-connections", OPT_UINT, OFF(max_connections), 1, "N",
     "connections per worker (default 1000)"},
    {"max-connections-per-ip", OPT_UINT, OFF(max_conn_per_ip), 0, "N",
     "connections per client address per worker, 0 = off (default 64)"},
    {"max-headers", OPT_UINT, OFF(max_headers), 1, "N",
     "request header lines, more get 431 (default 100)"},
    {"conn-memory", OPT_SIZE, OFF(conn_memory), 4096, "BYTES",
     "per-connection buffer; bounds request line + headers (414/431) (default 16k)"},
    {"max-body", OPT_SIZE, OFF(max_body), 0, "BYTES",
     "largest request body; larger gets 413 (default 16m)"},
    {"body-buffer", OPT_SIZE, OFF(body_buffer), 0, "BYTES",
     "bodies larger than this spill to an unlinked temporary file (default 64k)"},
    {"tmp-dir", OPT_STR, OFF(tmp_dir), 0, "DIR",
     "directory for spilled bodies and private plugin copies (default $TMPDIR or /tmp)"},
    {"max-spill", OPT_SIZE, OFF(max_spill), 0, "BYTES",
     "request body bytes a worker keeps in --tmp-dir at once; a body past it gets 503 "
     "(default 256m)"},
    {"access-log", OPT_STR, OFF(access_log), 0, "FILE",
     "access log in combined format, '-' = stdout (default off)"},
    {"access-log-json", OPT_FLAG, OFF(access_json), 0, NULL, "write the access log as JSON lines"},
    {"error-log", OPT_STR, OFF(error_log), 0, "FILE", "error log (default '-' = stderr)"},
    {"log-level", OPT_LEVEL, OFF(log_level), 0, "LEVEL",
     "error, warn, info, debug or trace (default info)"},
    {"health", OPT_STR, OFF(health), 0, "PATH",
     "answer PATH on every listener, before any plugin: 200 while serving, 503 once "
     "stopping (default off)"},
    {"drain-delay", OPT_UINT, OFF(drain_delay), 0, "SEC",
     "on SIGTERM, fail --health (and close each connection after its response) for SEC "
     "seconds while serving, then stop gracefully (default 0)"},
    {"graceful-timeout", OPT_UINT, OFF(graceful_timeout), 0, "SEC",
     "on reload/stop, wait this long for in-flight requests (default 30)"},
    {"timeout", OPT_UINT, OFF(timeout), 0, "SEC",
     "kill a worker stuck this long in one request, 0 = off (default 30)"},
    {"max-requests", OPT_UINT, OFF(max_requests), 0, "N",
     "recycle a worker after N requests, 0 = off (default 0)"},
    {"max-requests-jitter", OPT_UINT, OFF(max_requests_jitter), 0, "N",
     "add a random 0..N to --max-requests per worker (default 0)"},
    {"ready-timeout", OPT_UINT, OFF(ready_timeout), 1, "SEC",
     "a new worker must report ready within this time (default 30)"},
    {"pid", OPT_STR, OFF(pid_file), 0, "FILE", "write the master's pid to FILE"},
    {"stats", OPT_STR, OFF(stats), 0, "ADDR",
     "serve JSON stats on unix:/path or host:port (loopback; unauthenticated)"},
    {"socket-mode", OPT_STR, OFF(socket_mode), 0, "MODE",
     "octal mode of the unix sockets of --bind and --stats (default 0660)"},
    {"user", OPT_STR, OFF(user), 0, "USER", "drop privileges to USER after binding"},
    {"group", OPT_STR, OFF(group), 0, "GROUP", "drop privileges to GROUP after binding"},
    {"check-config", OPT_FLAG, OFF(check_config), 0, NULL,
     "load every plugin and run its init_worker here, report, exit (0 when all loaded)"},
    {"status", OPT_STR, OFF(status_addr), 0, "ADDR",
     "print the stats of a running server and exit"},
    {"status-timeout", OPT_UINT, OFF(status_timeout), 1, "SEC",
     "--status gives up after this long connecting or reading (default 5)"},
    {"version", OPT_FLAG, OFF(show_version), 0, NULL, "print the version and exit"},
    {"help", OPT_FLAG, OFF(show_help), 0, NULL, "print this help and exit"},
    {NULL, OPT_FLAG, 0, 0, NULL, NULL},
};

void
srv_config_init(struct srv_config *cfg)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    memset(cfg, 0, sizeof(*cfg));
    cfg->workers = cores > 0 ? (unsigned)cores : 1;
    cfg->threads = 1;
    cfg->conn_timeout = 15;
    cfg->header_timeout = 10;
    cfg->body_timeout = 60;
    cfg->max_connections = 1000;
    cfg->max_conn_per_ip = 64;
    cfg->max_headers = 100;
    cfg->conn_memory = 16 * 1024;
    cfg->max_body = 16 * 1024 * 1024;
    cfg->body_buffer = 64 * 1024;
    cfg->max_spill = SRV_MAX_SPILL_DEFAULT;
    cfg->log_level = SRV_LOG_INFO;
    cfg->graceful_timeout = 30;
    cfg->timeout = 30;
    cfg->ready_timeout = 30;
    cfg->status_timeout = 5;
}

static void
free_binds(struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_binds; i++)
        free(cfg->binds[i]);
    free(cfg->binds);
    cfg->binds = NULL;
    cfg->n_binds = 0;
}

static void
free_trusted(struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_trusted_proxies; i++)
        free(cfg->trusted_proxies[i]);
    free(cfg->trusted_proxies);
    cfg->trusted_proxies = NULL;
    cfg->n_trusted_proxies = 0;
}

static void
free_list(struct srv_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void
free_mounts(struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        free(cfg->mounts[i].prefix);
        free(cfg->mounts[i].plugin);
    }
    free(cfg->mounts);
    cfg->mounts = NULL;
    cfg->n_mounts = 0;
}

static void
free_settings(struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_settings; i++) {
        free(cfg->settings[i].plugin);
        free(cfg->settings[i].key);
        free(cfg->settings[i].value);
    }
    free(cfg->settings);
    cfg->settings = NULL;
    cfg->n_settings = 0;
}

static void
free_wraps(struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_wraps; i++) {
        for (size_t j = 0; j < cfg->wraps[i].n_middleware; j++)
            free(cfg->wraps[i].middleware[j]);
        free(cfg->wraps[i].middleware);
        free(cfg->wraps[i].plugin);
    }
    free(cfg->wraps);
    cfg->wraps = NULL;
    cfg->n_wraps = 0;
}

static void
free_instances(struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_instances; i++) {
        free(cfg->instances[i].name);
        free(cfg->instances[i].plugin);
    }
    free(cfg->instances);
    cfg->instances = NULL;
    cfg->n_instances = 0;
}

void
srv_config_free(struct srv_config *cfg)
{
    free_binds(cfg);
    free_trusted(cfg);
    free_instances(cfg);
    free_mounts(cfg);
    free_settings(cfg);
    free_wraps(cfg);
    for (const struct opt *o = opts; o->name; o++) {
        if (o->type == OPT_STR || o->type == OPT_CONFIG) {
            char **slot = (char **)(void *)((char *)cfg + o->offset);
            free(*slot);
            *slot = NULL;
        }
        if (o->type == OPT_LIST)
            free_list((struct srv_strlist *)(void *)((char *)cfg + o->offset));
    }
    srv_tls_free(cfg->tls);
    cfg->tls = NULL;
}

static int __attribute__((format(printf, 3, 4)))
errf(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

int
srv_config_parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v;
    unsigned long long mul = 1;

    /* strtoull() would skip spaces and take a sign: " -1" must not become SIZE_MAX. */
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1024ULL;
            break;
        case 'm':
        case 'M':
            mul = 1024ULL * 1024;
            break;
        case 'g':
        case 'G':
            mul = 1024ULL * 1024 * 1024;
            break;
        default:
            return -1;
        }
        end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end)
            return -1;
    }
    if (v > SIZE_MAX / mul)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

static int
parse_uint(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > UINT_MAX)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static char *
xstrdup(const char *s)
{
    char *p = strdup(s);

    if (!p) {
        fputs("csgi-server: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static void *
xgrow(void *p, size_t n, size_t size)
{
    p = realloc(p, n * size);
    if (!p) {
        fputs("csgi-server: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static int
add_mount(struct srv_config *cfg, const char *prefix, size_t plen, const char *plugin,
          const char *optname, char *err, size_t err_len)
{
    struct srv_mount_override *m;

    if (plen == 0 || prefix[0] != '/')
        return errf(err, err_len, "option --%s: prefix must start with '/'", optname);
    if (plen > 1 && prefix[plen - 1] == '/')
        return errf(err, err_len, "option --%s: prefix \"%.*s\" must not end with '/'", optname,
                    (int)plen, prefix);
    if (!*plugin)
        return errf(err, err_len, "option --%s: missing plugin name after '='", optname);
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        if (strlen(cfg->mounts[i].prefix) == plen &&
            memcmp(cfg->mounts[i].prefix, prefix, plen) == 0)
            return errf(err, err_len, "option --%s: prefix \"%.*s\" given twice", optname,
                        (int)plen, prefix);
        if (strcmp(cfg->mounts[i].plugin, plugin) == 0)
            return errf(err, err_len, "option --%s: plugin \"%s\" mounted twice", optname, plugin);
    }
    cfg->mounts = xgrow(cfg->mounts, cfg->n_mounts + 1, sizeof(*cfg->mounts));
    m = &cfg->mounts[cfg->n_mounts++];
    m->prefix = strndup(prefix, plen);
    m->plugin = xstrdup(plugin);
    if (!m->prefix) {
        fputs("csgi-server: out of memory\n", stderr);
        exit(1);
    }
    return 0;
}

static int
add_setting(struct srv_config *cfg, const char *plugin, size_t plugin_len, const char *key,
            size_t key_len, const char *value)
{
    struct srv_setting *s;

    cfg->settings = xgrow(cfg->settings, cfg->n_settings + 1, sizeof(*cfg->settings));
    s = &cfg->settings[cfg->n_settings++];
    s->plugin = strndup(plugin, plugin_len);
    s->key = strndup(key, key_len);
    s->value = xstrdup(value);
    if (!s->plugin || !s->key) {
        fputs("csgi-server: out of memory\n", stderr);
        exit(1);
    }
    return 0;
}

/* True when name[0..len) is a plugin name: [a-z0-9_]{1,63}. */
static int
plugin_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/*
 * --wrap NAME=MW[,MW2]: plugin NAME served through middleware MW (outermost)
 * and MW2. One --wrap per plugin; a middleware may appear once per list.
 */
static int
add_wrap(struct srv_config *cfg, const char *val, const char *optname, char *err, size_t err_len)
{
    const char *eq = strchr(val, '='), *p;
    struct srv_wrap *w;

    if (!eq || !plugin_name_ok(val, (size_t)(eq - val)))
        return errf(err, err_len, "option --%s: \"%s\" is not NAME=MIDDLEWARE[,MIDDLEWARE]",
                    optname, val);
    for (size_t i = 0; i < cfg->n_wraps; i++) {
        if (strlen(cfg->wraps[i].plugin) == (size_t)(eq - val) &&
            memcmp(cfg->wraps[i].plugin, val, (size_t)(eq - val)) == 0)
            return errf(err, err_len, "option --%s: plugin \"%.*s\" wrapped twice", optname,
                        (int)(eq - val), val);
    }
    cfg->wraps = xgrow(cfg->wraps, cfg->n_wraps + 1, sizeof(*cfg->wraps));
    w = &cfg->wraps[cfg->n_wraps++];
    memset(w, 0, sizeof(*w));
    w->plugin = strndup(val, (size_t)(eq - val));
    if (!w->plugin) {
        fputs("csgi-server: out of memory\n", stderr);
        exit(1);
    }
    for (p = eq + 1;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!plugin_name_ok(p, len))
            return errf(err, err_len, "option --%s: \"%.*s\" in \"%s\" is not a plugin name",
                        optname, (int)len, p, val);
        for (size_t j = 0; j < w->n_middleware; j++) {
            if (strlen(w->middleware[j]) == len && memcmp(w->middleware[j], p, len) == 0)
                return errf(err, err_len, "option --%s: middleware \"%.*s\" listed twice", optname,
                            (int)len, p);
        }
        w->middleware = xgrow(w->middleware, w->n_middleware + 1, sizeof(*w->middleware));
        w->middleware[w->n_middleware] = strndup(p, len);
        if (!w->middleware[w->n_middleware++]) {
            fputs("csgi-server: out of memory\n", stderr);
            exit(1);
        }
        if (!end)
            return 0;
        p = end + 1;
    }
}

/* NAME=PLUGIN; the names' syntax is the loader's check, as for plugin names. */
static int
add_instance(struct srv_config *cfg, const char *val, const char *optname, char *err,
             size_t err_len)
{
    const char *eq = strchr(val, '=');
    struct srv_instance *in;

    if (!eq || eq == val || !eq[1])
        return errf(err, err_len, "option --%s: \"%s\" is not NAME=PLUGIN", optname, val);
    for (size_t i = 0; i < cfg->n_instances; i++) {
        if (strlen(cfg->instances[i].name) == (size_t)(eq - val) &&
            memcmp(cfg->instances[i].name, val, (size_t)(eq - val)) == 0)
            return errf(err, err_len, "option --%s: instance \"%.*s\" given twice", optname,
                        (int)(eq - val), val);
    }
    cfg->instances = xgrow(cfg->instances, cfg->n_instances + 1, sizeof(*cfg->instances));
    in = &cfg->instances[cfg->n_instances++];
    in->name = strndup(val, (size_t)(eq - val));
    in->plugin = xstrdup(eq + 1);
    if (!in->name) {
        fputs("csgi-server: out of memory\n", stderr);
        exit(1);
    }
    return 0;
}

/* Apply one option value (from argv or JSON, as a string). */
static int
apply(struct srv_config *cfg, const struct opt *o, const char *val, char *err, size_t err_len)
{
    void *slot = (char *)cfg + o->offset;

    switch (o->type) {
    case OPT_FLAG:
        *(int *)slot = 1;
        return 0;
    case OPT_UINT: {
        unsigned v;
        if (parse_uint(val, &v) < 0)
            return errf(err, err_len, "option --%s: \"%s\" is not a non-negative integer", o->name,
                        val);
        if (v < o->min)
            return errf(err, err_len, "option --%s: %u is below the minimum %u", o->name, v,
                        o->min);
        *(unsigned *)slot = v;
        return 0;
    }
    case OPT_SIZE: {
        size_t v;
        if (srv_config_parse_size(val, &v) < 0)
            return errf(err, err_len, "option --%s: \"%s\" is not a size (e.g. 65536, 64k, 10m)",
                        o->name, val);
        if (v < o->min)
            return errf(err, err_len, "option --%s: %zu is below the minimum %u", o->name, v,
                        o->min);
        *(size_t *)slot = v;
        return 0;
    }
    case OPT_STR:
    case OPT_CONFIG:
        if (!*val)
            return errf(err, err_len, "option --%s: empty value", o->name);
        free(*(char **)slot);
        *(char **)slot = xstrdup(val);
        return 0;
    case OPT_LEVEL: {
        int lv = srv_log_level_parse(val);
        if (lv < 0)
            return errf(err, err_len,
                        "option --%s: \"%s\" is not one of error, warn, info, debug, trace",
                        o->name, val);
        *(int *)slot = lv;
        return 0;
    }
    case OPT_BIND:
        if (!*val)
            return errf(err, err_len, "option --%s: empty address", o->name);
        cfg->binds = xgrow(cfg->binds, cfg->n_binds + 1, sizeof(*cfg->binds));
        cfg->binds[cfg->n_binds++] = xstrdup(val);
        return 0;
    case OPT_TRUST: {
        struct csgi__cidr c;
        if (csgi__cidr_parse(val, &c) < 0)
            return errf(err, err_len,
                        "option --%s: \"%s\" is not an address, a network (10.0.0.0/8) or unix",
                        o->name, val);
        cfg->trusted_proxies =
            xgrow(cfg->trusted_proxies, cfg->n_trusted_proxies + 1, sizeof(*cfg->trusted_proxies));
        cfg->trusted_proxies[cfg->n_trusted_proxies++] = xstrdup(val);
        return 0;
    }
    case OPT_LIST: {
        struct srv_strlist *l = slot;
        if (!*val)
            return errf(err, err_len, "option --%s: empty value", o->name);
        l->v = xgrow(l->v, l->n + 1, sizeof(*l->v));
        l->v[l->n++] = xstrdup(val);
        return 0;
    }
    case OPT_MOUNT: {
        const char *eq = strchr(val, '=');
        if (!eq)
            return errf(err, err_len, "option --%s: \"%s\" is not /PREFIX=NAME", o->name, val);
        return add_mount(cfg, val, (size_t)(eq - val), eq + 1, o->name, err, err_len);
    }
    case OPT_WRAP:
        return add_wrap(cfg, val, o->name, err, err_len);
    case OPT_INSTANCE:
        return add_instance(cfg, val, o->name, err, err_len);
    case OPT_SET: {
        const char *dot = strchr(val, '.'), *eq = strchr(val, '=');
        if (!dot || !eq || dot > eq || dot == val || eq == dot + 1)
            return errf(err, err_len, "option --%s: \"%s\" is not NAME.KEY=VALUE", o->name, val);
        return add_setting(cfg, val, (size_t)(dot - val), dot + 1, (size_t)(eq - dot - 1), eq + 1);
    }
    }
    return errf(err, err_len, "option --%s: internal error", o->name);
}

static const struct opt *
find_opt(const char *name, size_t len)
{
    for (const struct opt *o = opts; o->name; o++) {
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
            return o;
    }
    return NULL;
}

/* A JSON scalar as an option string: numbers without decimals, strings, booleans. */
static int
json_scalar(const cJSON *v, char *buf, size_t size, const char **out)
{
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return 0;
    }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        /* Range first: converting an out-of-range double is undefined. */
        if (!(d >= 0 && d < 18446744073709551616.0) || d != (double)(unsigned long long)d)
            return -1;
        snprintf(buf, size, "%llu", (unsigned long long)v->valuedouble);
        *out = buf;
        return 0;
    }
    return -1;
}

/* "mount": {"/prefix": "plugin", ...}. Returns 0 or -1 with err set. */
static int
json_mounts(struct srv_config *cfg, const cJSON *item, char *err, size_t err_len)
{
    const cJSON *m;

    cJSON_ArrayForEach(m, item)
    {
        int rc;
        if (!cJSON_IsString(m))
            return errf(err, err_len, "config: mount \"%s\" must name a plugin", m->string);
        rc = add_mount(cfg, m->string, strlen(m->string), m->valuestring, "mount", err, err_len);
        if (rc)
            return rc;
    }
    return 0;
}

/* "set": {"plugin": {"key": value, ...}, ...}. Returns 0 or -1 with err set. */
static int
json_settings(struct srv_config *cfg, const cJSON *item, char *err, size_t err_len)
{
    const cJSON *p, *kv;
    char num[32];
    const char *s;

    cJSON_ArrayForEach(p, item)
    {
        if (!cJSON_IsObject(p))
            return errf(err, err_len, "config: set.%s must be an object", p->string);
        cJSON_ArrayForEach(kv, p)
        {
            if (json_scalar(kv, num, sizeof(num), &s) < 0)
                return errf(err, err_len, "config: set.%s.%s must be a string or number", p->string,
                            kv->string);
            add_setting(cfg, p->string, strlen(p->string), kv->string, strlen(kv->string), s);
        }
    }
    return 0;
}

/*
 * "wrap": {"plugin": ["mw", "mw2"] or "mw,mw2", ...}, each like one --wrap.
 * Returns 0 or -1 with err set.
 */
static int
json_wraps(struct srv_config *cfg, const cJSON *item, char *err, size_t err_len)
{
    const cJSON *p, *e;

    cJSON_ArrayForEach(p, item)
    {
        char list[1024];
        size_t n = 0;
        int len;

        if (cJSON_IsString(p)) {
            len = snprintf(list, sizeof(list), "%s=%s", p->string, p->valuestring);
        } else if (cJSON_IsArray(p)) {
            len = snprintf(list, sizeof(list), "%s=", p->string);
            cJSON_ArrayForEach(e, p)
            {
                if (!cJSON_IsString(e))
                    return errf(err, err_len, "config: wrap.%s entries must be strings", p->string);
                if (len >= 0 && (size_t)len < sizeof(list))
                    len += snprintf(list + len, sizeof(list) - (size_t)len, "%s%s", n++ ? "," : "",
                                    e->valuestring);
            }
        } else {
            return errf(err, err_len, "config: wrap.%s must be a list of middleware names",
                        p->string);
        }
        if (len < 0 || (size_t)len >= sizeof(list))
            return errf(err, err_len, "config: wrap.%s is too long", p->string);
        if (add_wrap(cfg, list, "wrap", err, err_len) < 0)
            return -1;
    }
    return 0;
}

/* "instance": {"name": "plugin", ...}. Returns 0 or -1 with err set. */
static int
json_instances(struct srv_config *cfg, const cJSON *item, char *err, size_t err_len)
{
    const cJSON *m;
    char buf[300];

    cJSON_ArrayForEach(m, item)
    {
        int rc;
        if (!cJSON_IsString(m))
            return errf(err, err_len, "config: instance \"%s\" must name a plugin", m->string);
        snprintf(buf, sizeof(buf), "%.140s=%.140s", m->string, m->valuestring);
        rc = add_instance(cfg, buf, "instance", err, err_len);
        if (rc)
            return rc;
    }
    return 0;
}

/* A repeatable option as an array of strings, each applied like one --option. */
static int
json_list(struct srv_config *cfg, const struct opt *o, const cJSON *item, char *err, size_t err_len)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, item)
    {
        int rc;
        if (!cJSON_IsString(e))
            return errf(err, err_len, "config: \"%s\" entries must be strings", o->name);
        rc = apply(cfg, o, e->valuestring, err, err_len);
        if (rc)
            return rc;
    }
    return 0;
}

/* One top-level key of a JSON config. Returns 0 or -1 with err set. */
static int
json_key(struct srv_config *cfg, const cJSON *item, char *err, size_t err_len)
{
    const struct opt *o = find_opt(item->string, strlen(item->string));
    char num[32];
    const char *s;

    if (!o || o->type == OPT_CONFIG || strcmp(o->name, "help") == 0 ||
        strcmp(o->name, "version") == 0 || strcmp(o->name, "check-config") == 0 ||
        strcmp(o->name, "status") == 0 || strcmp(o->name, "status-timeout") == 0)
        return errf(err, err_len, "config: unknown key \"%s\"", item->string);
    if (o->type == OPT_FLAG) {
        if (!cJSON_IsBool(item))
            return errf(err, err_len, "config: key \"%s\" must be true or false", o->name);
        *(int *)(void *)((char *)cfg + o->offset) = cJSON_IsTrue(item);
        return 0;
    }
    if (o->type == OPT_MOUNT && cJSON_IsObject(item))
        return json_mounts(cfg, item, err, err_len);
    if (o->type == OPT_SET && cJSON_IsObject(item))
        return json_settings(cfg, item, err, err_len);
    if (o->type == OPT_WRAP && cJSON_IsObject(item))
        return json_wraps(cfg, item, err, err_len);
    if (o->type == OPT_INSTANCE && cJSON_IsObject(item))
        return json_instances(cfg, item, err, err_len);
    if (cJSON_IsArray(item) &&
        (o->type == OPT_BIND || o->type == OPT_MOUNT || o->type == OPT_SET || o->type == OPT_WRAP ||
         o->type == OPT_TRUST || o->type == OPT_LIST || o->type == OPT_INSTANCE))
        return json_list(cfg, o, item, err, err_len);
    if (json_scalar(item, num, sizeof(num), &s) < 0)
        return errf(err, err_len, "config: key \"%s\" has a value of the wrong type", o->name);
    return apply(cfg, o, s, err, err_len);
}

/* The 1-based line of text that at points into. */
static unsigned
line_of(const char *text, const char *at)
{
    unsigned line = 1;

    for (const char *p = text; p < at && *p; p++)
        line += *p == '\n';
    return line;
}

/*
 * The line of the top-level key name in text: the first line that has it
 * quoted and followed by a colon. 0 when not found (escaped names).
 */
static unsigned
key_line(const char *text, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = text; (p = strchr(p, '"')) != NULL; p++) {
        const char *q;
        if (strncmp(p + 1, name, n) != 0 || p[n + 1] != '"')
            continue;
        q = p + n + 2;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (*q == ':')
            return line_of(text, p);
    }
    return 0;
}

int
srv_config_parse_json(struct srv_config *cfg, const char *text, char *err, size_t err_len)
{
    cJSON *root = cJSON_ParseWithOpts(text, NULL, 0), *item;
    int rc = 0;

    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        if (!at)
            return errf(err, err_len, "config: invalid JSON");
        return errf(err, err_len, "config: invalid JSON at line %u near \"%.20s\"",
                    line_of(text, at), at);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return errf(err, err_len, "config: the top level must be an object");
    }
    cJSON_ArrayForEach(item, root)
    {
        rc = json_key(cfg, item, err, err_len);
        if (rc) {
            unsigned line = key_line(text, item->string);
            size_t n = strlen(err);
            if (line && n + 1 < err_len)
                snprintf(err + n, err_len - n, " (line %u)", line);
            break;
        }
    }
    cJSON_Delete(root);
    return rc;
}

static int
load_config_file(struct srv_config *cfg, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    if (!f)
        return errf(err, err_len, "option --config: cannot open \"%s\": %s", path, strerror(errno));
    for (;;) {
        size_t n;
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > 16 * 1024 * 1024) {
                fclose(f);
                free(buf);
                return errf(err, err_len, "option --config: \"%s\" is larger than 16 MiB", path);
            }
            buf = xgrow(buf, cap, 1);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    rc = srv_config_parse_json(cfg, buf, err, err_len);
    free(buf);
    if (rc) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s", err);
        snprintf(err, err_len, "%s (in \"%s\")", tmp, path);
    }
    return rc;
}

int
srv_config_parse_args(struct srv_config *cfg, int argc, char **argv, char *err, size_t err_len)
{
    int cli_binds = 0, cli_mounts = 0, cli_sets = 0, cli_wraps = 0, cli_trusted = 0;
    int cli_certs = 0, cli_keys = 0;
    int cli_instances = 0;

    /*
     * --config first, so that every other option overrides the file. Walk the
     * arguments as the main pass does, so that an option's value that
     * happens to read "--config" is not mistaken for the option.
     */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name = a + 2, *eq, *file = NULL;
        const struct opt *o;
        size_t nlen;

        if (strncmp(a, "--", 2) != 0)
            continue;
        eq = strchr(name, '=');
        nlen = eq ? (size_t)(eq - name) : strlen(name);
        o = find_opt(name, nlen);
        if (!o || o->type == OPT_FLAG)
            continue;
        if (!eq && i + 1 < argc)
            i++;
        if (o->type != OPT_CONFIG)
            continue;
        file = eq ? eq + 1 : (i < argc && argv[i] != a ? argv[i] : NULL);
        if (!file)
            continue;
        if (cfg->config_file)
            return errf(err, err_len, "option --config given twice");
        if (load_config_file(cfg, file, err, err_len) < 0)
            return -1;
        cfg->config_file = xstrdup(file);
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *val = NULL, *eq;
        const struct opt *o;
        size_t nlen;

        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return errf(err, err_len, "unexpected argument \"%s\" (options start with --)", a);
        name = a + 2;
        eq = strchr(name, '=');
        nlen = eq ? (size_t)(eq - name) : strlen(name);
        o = find_opt(name, nlen);
        if (!o)
            return errf(err, err_len, "unknown option --%.*s (see --help)", (int)nlen, name);
        if (o->type == OPT_FLAG) {
            if (eq)
                return errf(err, err_len, "option --%s takes no value", o->name);
        } else if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                return errf(err, err_len, "option --%s needs a value (%s)", o->name, o->arg);
            val = argv[++i];
        }
        if (o->type == OPT_CONFIG)
            continue;
        /* A list given on the command line replaces the file's list. */
        if (o->type == OPT_BIND && !cli_binds++)
            free_binds(cfg);
        if (o->type == OPT_MOUNT && !cli_mounts++)
            free_mounts(cfg);
        if (o->type == OPT_SET && !cli_sets++)
            free_settings(cfg);
        if (o->type == OPT_WRAP && !cli_wraps++)
            free_wraps(cfg);
        if (o->type == OPT_TRUST && !cli_trusted++)
            free_trusted(cfg);
        if (o->type == OPT_LIST && o->offset == OFF(tls_certs) && !cli_certs++)
            free_list(&cfg->tls_certs);
        if (o->type == OPT_LIST && o->offset == OFF(tls_keys) && !cli_keys++)
            free_list(&cfg->tls_keys);
        if (o->type == OPT_INSTANCE && !cli_instances++)
            free_instances(cfg);
        if (apply(cfg, o, val, err, err_len) < 0)
            return -1;
    }
    if (cfg->n_binds == 0) {
        cfg->binds = xgrow(NULL, 1, sizeof(*cfg->binds));
        cfg->binds[0] = xstrdup("127.0.0.1:8000");
        cfg->n_binds = 1;
    }
    return 0;
}

/* An address of --bind or --stats: unix:/path, or host:port with a strict port. */
static int
check_addr(const char *opt, const char *spec, char *err, size_t err_len)
{
    char host[256], why[256], addr[512];
    const char *port;
    int proxy;

    /* --bind takes flags after the address (srv_bind_flags()); --stats none. */
    if (strcmp(opt, "--bind") == 0) {
        if (srv_bind_flags(spec, addr, sizeof(addr), &proxy, why, sizeof(why)) < 0)
            return errf(err, err_len, "option %s: %s", opt, why);
        spec = addr;
    }

    if (strncmp(spec, "unix:", 5) == 0) {
        if (!spec[5])
            return errf(err, err_len, "option %s: \"%s\": a unix socket needs a path", opt, spec);
        return 0;
    }
    if (srv_addr_split(spec, host, sizeof(host), &port, why, sizeof(why)) < 0)
        return errf(err, err_len, "option %s: %s", opt, why);
    return 0;
}

/* The TLS options agree with each other. */
static int
validate_tls(const struct srv_config *cfg, char *err, size_t err_len)
{
    if (cfg->tls_certs.n != cfg->tls_keys.n)
        return errf(err, err_len,
                    "options --tls-cert and --tls-key: %zu certificate(s) but %zu key(s) (give "
                    "one key per certificate, in the same order)",
                    cfg->tls_certs.n, cfg->tls_keys.n);
    if (cfg->tls_client_verify && strcmp(cfg->tls_client_verify, "require") != 0 &&
        strcmp(cfg->tls_client_verify, "optional") != 0)
        return errf(err, err_len, "option --tls-client-verify: \"%s\" is not require or optional",
                    cfg->tls_client_verify);
    if (cfg->tls_client_verify && !cfg->tls_client_ca)
        return errf(err, err_len, "option --tls-client-verify needs --tls-client-ca");
    if ((cfg->tls_client_ca || cfg->tls_priorities) && !cfg->tls_certs.n)
        return errf(err, err_len, "options --tls-client-ca and --tls-priorities need --tls-cert");
    return 0;
}

int
srv_config_validate(const struct srv_config *cfg, char *err, size_t err_len)
{
    if (cfg->show_help || cfg->show_version || cfg->status_addr)
        return 0;
    if (!cfg->plugin_dir)
        return errf(err, err_len, "option --plugins is required (a directory of *.so plugins)");
    if (cfg->max_conn_per_ip > cfg->max_connections)
        return errf(err, err_len,
                    "option --max-connections-per-ip (%u) is larger than --max-connections (%u)",
                    cfg->max_conn_per_ip, cfg->max_connections);
    if (cfg->threads > SRV_MAX_THREADS)
        return errf(err, err_len, "option --threads: %u is above the maximum %d", cfg->threads,
                    SRV_MAX_THREADS);
    if (cfg->workers > SRV_MAX_WORKERS)
        return errf(err, err_len, "option --workers: %u is above the maximum %d", cfg->workers,
                    SRV_MAX_WORKERS);
    if (cfg->max_requests_jitter && !cfg->max_requests)
        return errf(err, err_len, "option --max-requests-jitter needs --max-requests");
    if (cfg->conn_memory > 1024 * 1024)
        return errf(err, err_len, "option --conn-memory: above the maximum 1m");
    for (size_t i = 0; i < cfg->n_binds; i++) {
        for (size_t j = i + 1; j < cfg->n_binds; j++) {
            if (strcmp(cfg->binds[i], cfg->binds[j]) == 0)
                return errf(err, err_len, "option --bind: \"%s\" given twice", cfg->binds[i]);
        }
    }
    for (size_t i = 0; i < cfg->n_binds; i++) {
        int tls;
        if (check_addr("--bind", srv_bind_address(cfg->binds[i], &tls), err, err_len) < 0)
            return -1;
        if (tls && !cfg->tls_certs.n)
            return errf(err, err_len, "option --bind \"%s\" needs --tls-cert and --tls-key",
                        cfg->binds[i]);
    }
    if (validate_tls(cfg, err, err_len) < 0)
        return -1;
    if (cfg->stats && check_addr("--stats", cfg->stats, err, err_len) < 0)
        return -1;
    if (cfg->socket_mode && srv_config_socket_mode(cfg) < 0)
        return errf(err, err_len, "option --socket-mode: \"%s\" is not an octal mode 0..0777",
                    cfg->socket_mode);
    if (cfg->health && (cfg->health[0] != '/' || strpbrk(cfg->health, "?# ") ||
                        strlen(cfg->health) > SRV_HEALTH_PATH_MAX))
        return errf(err, err_len,
                    "option --health: \"%s\" is not a path (/..., no query, at most %d bytes)",
                    cfg->health, SRV_HEALTH_PATH_MAX);
    if (cfg->drain_delay > SRV_DRAIN_DELAY_MAX)
        return errf(err, err_len, "option --drain-delay: %u is above the maximum %d",
                    cfg->drain_delay, SRV_DRAIN_DELAY_MAX);
    if (cfg->access_json && !cfg->access_log)
        return errf(err, err_len, "option --access-log-json needs --access-log");
    /* setgid() alone would leave the process root: say so rather than half-drop. */
    if (cfg->group && !cfg->user)
        return errf(err, err_len,
                    "option --group needs --user (a group alone would keep user id %d)",
                    (int)geteuid());
    return 0;
}

int
srv_config_socket_mode(const struct srv_config *cfg)
{
    const char *m = cfg->socket_mode;
    size_t n;
    int v = 0;

    if (!m)
        return SRV_SOCKET_MODE_DEFAULT;
    n = strlen(m);
    if (n == 0 || n > 4 || strspn(m, "01234567") != n)
        return -1;
    for (size_t i = 0; i < n; i++)
        v = v * 8 + (m[i] - '0');
    return v <= 0777 ? v : -1;
}

int
srv_config_check_paths(const struct srv_config *cfg, char *err, size_t err_len)
{
    struct stat st;

    if (!cfg->plugin_dir)
        return 0;
    if (stat(cfg->plugin_dir, &st) < 0)
        return errf(err, err_len, "option --plugins: \"%s\": %s", cfg->plugin_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return errf(err, err_len, "option --plugins: \"%s\" is not a directory", cfg->plugin_dir);
    return 0;
}

int
srv_config_load_tls(struct srv_config *cfg, char *err, size_t err_len)
{
    srv_tls_free(cfg->tls);
    cfg->tls = NULL;
    return srv_tls_load(cfg, &cfg->tls, err, err_len);
}

void
srv_config_usage(FILE *f)
{
    fputs("usage: csgi-server --plugins DIR [--bind ADDR]... [options]\n\n"
          "Serve every CSGI plugin (*.so) in DIR over HTTP/1.1.\n\noptions:\n",
          f);
    for (const struct opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-30s %s\n", left, o->help);
    }
    fputs("\nSignals to the master: HUP reload, TERM graceful stop, INT/QUIT fast stop,\n"
          "TTIN/TTOU add/remove a worker, USR1 reopen log files.\n",
          f);
}
