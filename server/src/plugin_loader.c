/*
 * Plugin loading (see plugin_loader.h). Each plugin is copied to a private
 * file without a name (O_TMPFILE, or unlinked at once) and dlopen()ed
 * through /proc/self/fd: a .so overwritten in place under a running server
 * cannot crash it, a reload always maps the new code (glibc would return
 * the old object for a path it still has open), and no name in --tmp-dir
 * can be swapped for the copy or left behind by a crash.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csgi_internal.h"
#include "log.h"
#include "plugin_check.h"
#include "plugin_loader.h"

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Copy src to a private file in dir that has no name: O_TMPFILE, or where
 * the file system lacks it, mkstemp() unlinked at once, before a byte is
 * written. Nothing in dir can be swapped for it, and nothing is left behind
 * whatever happens next (a plugin constructor that crashes included).
 * Returns the descriptor (read-write; the caller dlopen()s it through
 * /proc/self/fd) or -1 with why set.
 */
static int
private_copy(const char *src, const char *dir, char *why, size_t why_len)
{
    char path[4096];
    int in, out;
    char buf[65536];

    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf(why, why_len, "cannot open: %s", strerror(errno));
        return -1;
    }
    out = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0700);
    if (out < 0) {
        if ((size_t)snprintf(path, sizeof(path), "%s/csgi-plugin-XXXXXX", dir) >= sizeof(path)) {
            snprintf(why, why_len, "--tmp-dir path too long");
            goto error_close_in;
        }
        out = mkostemp(path, O_CLOEXEC);
        if (out < 0) {
            snprintf(why, why_len, "cannot create a private copy in \"%s\": %s", dir,
                     strerror(errno));
            goto error_close_in;
        }
        unlink(path);
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(why, why_len, "read failed: %s", strerror(errno));
            goto error_close_out;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                snprintf(why, why_len, "private copy failed: %s", strerror(errno));
                goto error_close_out;
            }
            off += w;
        }
    }
    fchmod(out, 0500);
    close(in);
    return out;

error_close_out:
    close(out);
error_close_in:
    close(in);
    return -1;
}

/* Replace the private copy's path in a dlerror() message with the file name. */
static void
clean_dlerror(char *out, size_t out_len, const char *msg, const char *copy, const char *file)
{
    const char *at = strstr(msg, copy);

    if (!at) {
        snprintf(out, out_len, "%s", msg);
        return;
    }
    snprintf(out, out_len, "%.*s%s%s", (int)(at - msg), msg, file, at + strlen(copy));
}

static const char *
plugin_tmp_dir(const struct srv_config *cfg)
{
    const char *d = cfg->tmp_dir;

    if (!d)
        d = getenv("TMPDIR");
    if (!d || !*d)
        d = "/tmp";
    return d;
}

/* Remember a failure for the caller (--check-config's table). Out of memory: not kept. */
static void
note_failure(struct srv_plugin_report *rep, const char *what, const char *why)
{
    struct srv_plugin_failure *f;

    if (!rep)
        return;
    f = realloc(rep->v, (rep->n + 1) * sizeof(*f));
    if (!f)
        return;
    rep->v = f;
    f = &f[rep->n];
    f->what = strdup(what);
    f->why = strdup(why);
    if (!f->what || !f->why) {
        free(f->what);
        free(f->why);
        return;
    }
    rep->n++;
}

void
srv_plugin_report_free(struct srv_plugin_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        free(rep->v[i].what);
        free(rep->v[i].why);
    }
    free(rep->v);
    memset(rep, 0, sizeof(*rep));
}

/* Log "plugin FILE skipped: WHY" and record it. */
static void __attribute__((format(printf, 3, 4)))
skip(struct srv_plugin_report *rep, const char *file, const char *fmt, ...)
{
    char why[640];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    srv_log(SRV_LOG_ERROR, "plugin \"%s\" skipped: %s", file, why);
    note_failure(rep, file, why);
}

/* Load one file; on success fills p and returns 0, else logs and returns -1. */
static int
load_one(struct srv_plugin_report *rep, struct srv_plugin *p, const char *dir, const char *file,
         const struct srv_config *cfg)
{
    char *src = NULL;
    char copy[64], why[512];
    int fd;
    void *h;
    csgi_plugin_entry_fn entry;
    const struct csgi_plugin *d;
    size_t n;

    memset(p, 0, sizeof(*p));
    if (asprintf(&src, "%s/%s", dir, file) < 0)
        return -1;
    fd = private_copy(src, plugin_tmp_dir(cfg), why, sizeof(why));
    if (fd < 0)
        goto error_log;
    /*
     * The copy is mapped by its descriptor, which stays open while the plugin
     * is loaded: glibc finds an already loaded object by its name first, and
     * a reused descriptor number would name the old one. A failed plugin's
     * descriptor stays open too (one per plugin file; loading happens once
     * per process), in case dlclose() did not unmap it.
     */
    snprintf(copy, sizeof(copy), "/proc/self/fd/%d", fd);
    dlerror();
    h = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        char msg[512];
        const char *e = dlerror();
        clean_dlerror(msg, sizeof(msg), e ? e : "unknown error", copy, file);
        snprintf(why, sizeof(why), "dlopen failed: %.480s", msg);
        goto error_log;
    }
    *(void **)&entry = dlsym(h, CSGI_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(why, sizeof(why), "no \"%s\" symbol: not a CSGI plugin", CSGI_PLUGIN_ENTRY_SYMBOL);
        goto error_dlclose;
    }
    d = entry(CSGI_ABI_VERSION);
    if (!d) {
        snprintf(why, sizeof(why), "plugin refused this server's CSGI ABI %d", CSGI_ABI_VERSION);
        goto error_dlclose;
    }
    /* The host core's descriptor checks: the test client refuses the same plugins. */
    if (csgi__descriptor_check(d, why, sizeof(why)) < 0)
        goto error_dlclose;
    /* Newer plugin: read our part; older plugin: missing fields stay NULL. */
    n = d->size < sizeof(p->desc) ? d->size : sizeof(p->desc);
    memcpy(&p->desc, d, n);
    p->flags = p->desc.flags;
    p->file = strdup(file);
    p->handle = h;
    p->copy_fd = fd;
    free(src);
    return 0;

error_dlclose:
    if (!getenv("CSGI_NO_DLCLOSE"))
        dlclose(h);
error_log:
    skip(rep, file, "%s", why);
    free(src);
    return -1;
}

static const char *
mount_for(const struct srv_plugin *p, const struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        if (strcmp(cfg->mounts[i].plugin, p->desc.name) == 0)
            return cfg->mounts[i].prefix;
    }
    return p->desc.mount;
}

static int
cmp_len_desc(const void *a, const void *b, void *arg)
{
    const struct srv_plugin_set *set = arg;
    size_t la = set->v[*(const size_t *)a].mount_len;
    size_t lb = set->v[*(const size_t *)b].mount_len;

    if (la != lb)
        return la < lb ? 1 : -1;
    return 0;
}

static int
build_index(struct srv_plugin_set *set)
{
    free(set->by_len);
    set->by_len = NULL;
    if (set->n == 0)
        return 0;
    set->by_len = malloc(set->n * sizeof(*set->by_len));
    if (!set->by_len)
        return CSGI_ENOMEM;
    for (size_t i = 0; i < set->n; i++)
        set->by_len[i] = i;
    qsort_r(set->by_len, set->n, sizeof(*set->by_len), cmp_len_desc, set);
    return 0;
}

static void
free_plugin(struct srv_plugin *p)
{
    for (size_t i = 0; i < p->n_config; i++) {
        free((char *)p->config[i].key);
        free((char *)p->config[i].value);
    }
    free(p->config);
    for (size_t i = 0; i < p->n_wrap_names; i++)
        free(p->wrap_names[i]);
    free(p->wrap_names);
    free(p->layers);
    free(p->mount);
    free(p->file);
    free(p->instance_name);
    /*
     * The copy's descriptor stays open, as for a plugin that failed to load:
     * glibc finds loaded objects by their name (/proc/self/fd/N), and an
     * object dlclose() could not unmap would be handed back to the next
     * plugin whose copy reused the number. One descriptor per plugin file,
     * for the life of the process.
     */
    if (p->handle && !getenv("CSGI_NO_DLCLOSE"))
        dlclose(p->handle);
    memset(p, 0, sizeof(*p));
}

static int
attach_config(struct srv_plugin *p, const struct srv_config *cfg)
{
    size_t n = 0;

    for (size_t i = 0; i < cfg->n_settings; i++)
        n += strcmp(cfg->settings[i].plugin, p->desc.name) == 0;
    if (n == 0)
        return 0;
    p->config = calloc(n + 1, sizeof(*p->config));
    if (!p->config)
        return CSGI_ENOMEM;
    for (size_t i = 0; i < cfg->n_settings; i++) {
        if (strcmp(cfg->settings[i].plugin, p->desc.name) != 0)
            continue;
        p->config[p->n_config].key = strdup(cfg->settings[i].key);
        p->config[p->n_config].value = strdup(cfg->settings[i].value);
        if (!p->config[p->n_config].key || !p->config[p->n_config].value)
            return CSGI_ENOMEM;
        p->n_config++;
    }
    return 0;
}

/* Index of the loaded plugin named name, or set->n. */
static size_t
find_named(const struct srv_plugin_set *set, const char *name)
{
    size_t j;

    for (j = 0; j < set->n; j++) {
        if (strcmp(set->v[j].desc.name, name) == 0)
            break;
    }
    return j;
}

/* The loaded middleware plugin named name, or NULL. */
static struct srv_plugin *
find_middleware(const struct srv_plugin_set *set, const char *name)
{
    for (size_t j = 0; j < set->n_mw; j++) {
        if (strcmp(set->mw[j].desc.name, name) == 0)
            return &set->mw[j];
    }
    return NULL;
}

/* The loaded plugin, mounted or middleware, named name, or NULL. */
static const struct srv_plugin *
find_any(const struct srv_plugin_set *set, const char *name)
{
    size_t j = find_named(set, name);

    return j < set->n ? &set->v[j] : find_middleware(set, name);
}

/* Copy the --wrap list naming p into p->wrap_names. Returns 0 or CSGI_ENOMEM. */
static int
attach_wraps(struct srv_plugin *p, const struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_wraps; i++) {
        const struct srv_wrap *w = &cfg->wraps[i];

        if (strcmp(w->plugin, p->desc.name) != 0)
            continue;
        p->wrap_names = calloc(w->n_middleware, sizeof(*p->wrap_names));
        if (!p->wrap_names)
            return CSGI_ENOMEM;
        for (size_t j = 0; j < w->n_middleware; j++) {
            p->wrap_names[j] = strdup(w->middleware[j]);
            if (!p->wrap_names[j])
                return CSGI_ENOMEM;
            p->n_wrap_names++;
        }
    }
    return 0;
}

/* Index of the loaded plugin mounted at mount, or set->n. */
static size_t
find_mounted(const struct srv_plugin_set *set, const char *mount)
{
    size_t j;

    for (j = 0; j < set->n; j++) {
        if (strcmp(set->v[j].mount, mount) == 0)
            break;
    }
    return j;
}

/*
 * A --set for a plugin name that is not loaded is a typo or a plugin that
 * failed: warn once per name and key, and record it.
 */
static void
check_settings(const struct srv_plugin_set *set, const struct srv_config *cfg,
               struct srv_plugin_report *rep)
{
    for (size_t i = 0; i < cfg->n_settings; i++) {
        const struct srv_setting *st = &cfg->settings[i];
        char what[256], why[256];

        if (find_any(set, st->plugin))
            continue;
        snprintf(what, sizeof(what), "--set %.100s.%.100s", st->plugin, st->key);
        snprintf(why, sizeof(why), "no plugin named \"%.100s\" is loaded", st->plugin);
        srv_log(SRV_LOG_WARN, "%s: %s (ignored)", what, why);
        note_failure(rep, what, why);
        if (rep)
            rep->n_unknown_settings++;
    }
}

/*
 * A --wrap for a plugin that is not loaded, or for a middleware plugin, wraps
 * nothing: warn and record it. (A missing middleware is the wrapped plugin's
 * failure, found when the wrap is applied.)
 */
static void
check_wraps(const struct srv_plugin_set *set, const struct srv_config *cfg,
            struct srv_plugin_report *rep)
{
    for (size_t i = 0; i < cfg->n_wraps; i++) {
        const char *name = cfg->wraps[i].plugin;
        char what[128], why[256];

        if (find_named(set, name) < set->n)
            continue;
        snprintf(what, sizeof(what), "--wrap %.100s", name);
        if (find_middleware(set, name))
            snprintf(why, sizeof(why), "\"%.100s\" is a middleware plugin: it is not mounted",
                     name);
        else
            snprintf(why, sizeof(why), "no plugin named \"%.100s\" is loaded", name);
        srv_log(SRV_LOG_WARN, "%s: %s (ignored)", what, why);
        note_failure(rep, what, why);
        if (rep)
            rep->n_unknown_settings++;
    }
}

int
srv_plugins_load(struct srv_plugin_set *set, const struct srv_config *cfg)
{
    return srv_plugins_load_report(set, cfg, NULL);
}

/* The "*.so" file names in @p dir, sorted; *@p out is malloc'd. Returns the count or -errno. */
static long
list_plugin_files(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;

    *out = NULL;
    if (!d) {
        int err = errno;
        srv_log(SRV_LOG_ERROR, "cannot open plugin directory \"%s\": %s", dir, strerror(err));
        return -err;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0 || e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn;
            cap = cap ? cap * 2 : 16;
            nn = realloc(names, cap * sizeof(*names));
            if (!nn)
                break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    *out = names;
    return (long)n;
}

static void
free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/*
 * Keep the middleware plugin just loaded into @p p (the next free slot of
 * set->v) in set->mw instead: it is configured but never mounted. Returns 0,
 * or -1 (skipped, logged) when memory is short.
 */
static int
add_middleware(struct srv_plugin_set *set, const struct srv_config *cfg,
               struct srv_plugin_report *rep, struct srv_plugin *p)
{
    if (attach_config(p, cfg) < 0) {
        skip(rep, p->file, "out of memory");
        free_plugin(p);
        return -1;
    }
    srv_log(SRV_LOG_INFO, "middleware plugin \"%s\" loaded from \"%s\" (version %s)", p->desc.name,
            p->file, p->desc.plugin_version ? p->desc.plugin_version : "-");
    set->mw[set->n_mw++] = *p;
    memset(p, 0, sizeof(*p));
    return 0;
}

/*
 * Mount the plugin just loaded into the next free slot of @p set and attach
 * its configuration (a middleware plugin goes to set->mw); @p what names it in
 * refusals (its file, or "--instance NAME"). Returns 0 when it joined the set,
 * -1 when it was skipped (logged, noted in @p rep, the slot freed).
 */
static int
place_plugin(struct srv_plugin_set *set, const struct srv_config *cfg,
             struct srv_plugin_report *rep, const char *what)
{
    struct srv_plugin *p = &set->v[set->n];
    const char *m;
    size_t j;

    if (find_any(set, p->desc.name)) {
        skip(rep, what, "duplicate plugin name \"%s\" (already loaded from \"%s\")", p->desc.name,
             find_any(set, p->desc.name)->file);
        goto error_free;
    }
    if (csgi__plugin_is_middleware(&p->desc))
        return add_middleware(set, cfg, rep, p);
    m = mount_for(p, cfg);
    if (m)
        p->mount = strdup(m);
    else if (asprintf(&p->mount, "/%s", p->desc.name) < 0)
        p->mount = NULL;
    if (p->mount)
        p->mount_len = strlen(p->mount);
    if (!p->mount || !csgi__mount_valid(p->mount)) {
        skip(rep, what, "invalid mount \"%s\"", m ? m : "(none)");
        goto error_free;
    }
    j = find_mounted(set, p->mount);
    if (j < set->n) {
        skip(rep, what, "mount \"%s\" is already used by plugin \"%s\"", p->mount,
             set->v[j].desc.name);
        goto error_free;
    }
    if (attach_config(p, cfg) < 0 || attach_wraps(p, cfg) < 0) {
        skip(rep, what, "out of memory");
        goto error_free;
    }
    srv_log(SRV_LOG_INFO, "plugin \"%s\" loaded from \"%s\" (version %s) at \"%s\"", p->desc.name,
            p->file, p->desc.plugin_version ? p->desc.plugin_version : "-", p->mount);
    set->n++;
    return 0;

error_free:
    free_plugin(p);
    return -1;
}

/*
 * Load plugin file @p name into the next free slot of @p set, mount it and
 * attach its configuration (a middleware plugin goes to set->mw). Returns 0
 * when it joined the set, -1 when it was skipped (logged and noted in @p rep).
 */
static int
add_plugin(struct srv_plugin_set *set, const struct srv_config *cfg, struct srv_plugin_report *rep,
           const char *name)
{
    struct srv_plugin *p = &set->v[set->n];
    struct stat st;
    char *path = NULL;

    if (asprintf(&path, "%s/%s", cfg->plugin_dir, name) < 0)
        return -1;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        skip(rep, name, "not a regular file");
        free(path);
        return -1;
    }
    free(path);
    if (load_one(rep, p, cfg->plugin_dir, name, cfg) < 0)
        return -1;
    return place_plugin(set, cfg, rep, name);
}

/*
 * --instance NAME=PLUGIN: load the file plugin PLUGIN came from once more, as
 * its own private copy (own static state, own handle), and call it NAME: it
 * gets its own mount, --set NAME.KEY configuration, --wrap NAME list and
 * init_worker() call. Returns 0, or -1 when skipped (logged and noted in @p rep).
 */
static int
add_instance(struct srv_plugin_set *set, const struct srv_config *cfg,
             struct srv_plugin_report *rep, const struct srv_instance *in)
{
    struct srv_plugin *p = &set->v[set->n];
    const struct srv_plugin *orig;
    char what[128];

    snprintf(what, sizeof(what), "--instance %.100s", in->name);
    if (!csgi__plugin_name_valid(in->name)) {
        skip(rep, what, "invalid instance name (want [a-z0-9_]{1,63})");
        return -1;
    }
    orig = find_any(set, in->plugin);
    if (!orig || orig->instance_name) {
        skip(rep, what, "no plugin file named \"%s\" is loaded", in->plugin);
        return -1;
    }
    if (load_one(rep, p, cfg->plugin_dir, orig->file, cfg) < 0)
        return -1;
    p->instance_name = strdup(in->name);
    if (!p->instance_name) {
        skip(rep, what, "out of memory");
        free_plugin(p);
        return -1;
    }
    p->desc.name = p->instance_name;
    return place_plugin(set, cfg, rep, what);
}

/* Warn about each --mount that names a plugin that did not load. */
static void
warn_unused_mounts(const struct srv_plugin_set *set, const struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        if (find_named(set, cfg->mounts[i].plugin) == set->n)
            srv_log(SRV_LOG_WARN, "mount \"%s\" names plugin \"%s\", which is not loaded",
                    cfg->mounts[i].prefix, cfg->mounts[i].plugin);
    }
}

int
srv_plugins_load_report(struct srv_plugin_set *set, const struct srv_config *cfg,
                        struct srv_plugin_report *rep)
{
    char **names;
    long n;
    int failed = 0;

    memset(set, 0, sizeof(*set));
    if (rep)
        memset(rep, 0, sizeof(*rep));
    n = list_plugin_files(cfg->plugin_dir, &names);
    if (n < 0)
        return (int)n;
    set->v = calloc((size_t)n + cfg->n_instances + 1, sizeof(*set->v));
    set->mw = calloc((size_t)n + cfg->n_instances + 1, sizeof(*set->mw));
    if (!set->v || !set->mw) {
        free(set->v);
        free(set->mw);
        memset(set, 0, sizeof(*set));
        free_names(names, (size_t)n);
        return CSGI_ENOMEM;
    }
    for (long i = 0; i < n; i++) {
        if (add_plugin(set, cfg, rep, names[i]) < 0)
            failed++;
    }
    for (size_t i = 0; i < cfg->n_instances; i++) {
        if (add_instance(set, cfg, rep, &cfg->instances[i]) < 0)
            failed++;
    }
    warn_unused_mounts(set, cfg);
    check_settings(set, cfg, rep);
    check_wraps(set, cfg, rep);
    free_names(names, (size_t)n);
    if (build_index(set) < 0)
        return CSGI_ENOMEM;
    if (set->n == 0)
        srv_log(SRV_LOG_WARN, "no plugin loaded from \"%s\": every request will get 404",
                cfg->plugin_dir);
    return failed;
}

int
srv_plugins_init(struct srv_plugin_set *set, const struct csgi_host_api *api, int serialize)
{
    return srv_plugins_init_report(set, api, serialize, NULL);
}

/*
 * Run init_worker() of every plugin in v[0..*n), removing (logged, noted,
 * freed) those that fail and closing the gaps. Returns the number that failed.
 */
static int
init_all(struct srv_plugin *v, size_t *n, const struct csgi_host_api *api,
         struct srv_plugin_report *rep)
{
    int failed = 0;
    size_t out = 0;

    for (size_t i = 0; i < *n; i++) {
        struct srv_plugin *p = &v[i];
        int rc = 0;

        p->state = NULL;
        if (p->desc.init_worker)
            rc = p->desc.init_worker(api, p->config, p->n_config, &p->state);
        if (rc < 0) {
            char why[256];
            snprintf(why, sizeof(why), "plugin \"%s\": init_worker failed: %s (%s)", p->desc.name,
                     csgi_strerror(rc), csgi_err_name(rc));
            srv_log(SRV_LOG_ERROR, "plugin \"%s\" (\"%s\") skipped: init_worker failed: %s (%s)",
                    p->desc.name, p->file, csgi_strerror(rc), csgi_err_name(rc));
            note_failure(rep, p->file, why);
            free_plugin(p);
            failed++;
            continue;
        }
        if (out != i) {
            v[out] = *p;
            memset(p, 0, sizeof(*p));
            p = &v[out];
        }
        p->initialized = 1;
        p->app = p->desc.call;
        p->app_state = p->state;
        pthread_mutex_init(&p->lock, NULL);
        out++;
    }
    *n = out;
    return failed;
}

/* Undo p's middleware layers, outermost first; p calls its own app again. */
static void
unwrap_all(struct srv_plugin *p)
{
    while (p->n_layers > 0) {
        const struct srv_wrap_layer *l = &p->layers[--p->n_layers];
        csgi__unwrap(&l->middleware->desc, l->middleware->state, l->instance);
    }
    p->app = p->desc.call;
    p->app_state = p->state;
    p->flags = p->desc.flags;
}

/*
 * Put p's --wrap middleware in front of it, innermost (last listed) first.
 * Returns 0, or a negative code with why set and every layer undone.
 */
static int
wrap_one(struct srv_plugin_set *set, struct srv_plugin *p, char *why, size_t why_len)
{
    if (p->n_wrap_names == 0)
        return 0;
    p->layers = calloc(p->n_wrap_names, sizeof(*p->layers));
    if (!p->layers) {
        snprintf(why, why_len, "out of memory");
        return CSGI_ENOMEM;
    }
    for (size_t k = p->n_wrap_names; k-- > 0;) {
        struct srv_plugin *mw = find_middleware(set, p->wrap_names[k]);
        void *instance = NULL;
        int rc;

        if (!mw) {
            const struct srv_plugin *other = find_any(set, p->wrap_names[k]);
            snprintf(why, why_len, "--wrap middleware \"%s\" %s", p->wrap_names[k],
                     other ? "is not a middleware plugin (it has no wrap function)"
                           : "is not loaded");
            unwrap_all(p);
            return CSGI_ENOENT;
        }
        rc = csgi__wrap(&mw->desc, mw->state, p->desc.name, &p->app, &p->app_state, &instance, why,
                        why_len);
        if (rc < 0) {
            unwrap_all(p);
            return rc;
        }
        p->layers[p->n_layers++] = (struct srv_wrap_layer){.middleware = mw, .instance = instance};
        p->flags = csgi__wrapped_flags(p->flags, mw->desc.flags);
        if (!(mw->desc.flags & CSGI_PLUGIN_THREADSAFE))
            p->serialize = 1;
    }
    return 0;
}

int
srv_plugins_wait(const struct srv_plugin_set *set)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (set->v[i].flags & CSGI_PLUGIN_WAITS)
            return 1;
    return 0;
}

/* Apply every mounted plugin's --wrap; a plugin that cannot be wrapped is removed. */
static int
wrap_all(struct srv_plugin_set *set, struct srv_plugin_report *rep)
{
    int failed = 0;
    size_t out = 0;

    for (size_t i = 0; i < set->n; i++) {
        struct srv_plugin *p = &set->v[i];
        char why[512];

        if (wrap_one(set, p, why, sizeof(why)) < 0) {
            srv_log(SRV_LOG_ERROR, "plugin \"%s\" (\"%s\") not served: %s", p->desc.name, p->file,
                    why);
            note_failure(rep, p->file, why);
            if (p->desc.exit_worker)
                p->desc.exit_worker(p->state);
            pthread_mutex_destroy(&p->lock);
            free_plugin(p);
            failed++;
            continue;
        }
        if (p->n_layers)
            srv_log(SRV_LOG_INFO, "plugin \"%s\" served through %zu middleware plugin(s)",
                    p->desc.name, p->n_layers);
        if (out != i) {
            set->v[out] = *p;
            memset(p, 0, sizeof(*p));
        }
        out++;
    }
    set->n = out;
    return failed;
}

int
srv_plugins_init_report(struct srv_plugin_set *set, const struct csgi_host_api *api, int serialize,
                        struct srv_plugin_report *rep)
{
    /* Middleware first: wrap() needs its state, and it outlives the plugins it wraps. */
    int failed = init_all(set->mw, &set->n_mw, api, rep);

    failed += init_all(set->v, &set->n, api, rep);
    for (size_t i = 0; i < set->n; i++)
        set->v[i].serialize = serialize && !(set->v[i].desc.flags & CSGI_PLUGIN_THREADSAFE);
    failed += wrap_all(set, rep);
    if (!serialize) {
        for (size_t i = 0; i < set->n; i++)
            set->v[i].serialize = 0;
    }
    build_index(set);
    return failed;
}

/* exit_worker (when initialized), dlclose and free every plugin of v[0..n). */
static void
unload_all(struct srv_plugin *v, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        struct srv_plugin *p = &v[i];
        if (p->initialized) {
            if (p->desc.exit_worker)
                p->desc.exit_worker(p->state);
            pthread_mutex_destroy(&p->lock);
        }
        free_plugin(p);
    }
}

void
srv_plugins_unload(struct srv_plugin_set *set)
{
    /* Every layer comes off before any exit_worker(): of the middleware or of its plugin. */
    for (size_t i = 0; i < set->n; i++)
        unwrap_all(&set->v[i]);
    unload_all(set->v, set->n);
    unload_all(set->mw, set->n_mw);
    free(set->v);
    free(set->mw);
    free(set->by_len);
    memset(set, 0, sizeof(*set));
}

struct srv_plugin *
srv_plugins_match(const struct srv_plugin_set *set, const char *path, size_t path_len, size_t *iter)
{
    for (size_t k = *iter; k < set->n; k++) {
        struct srv_plugin *p = &set->v[set->by_len[k]];
        size_t ml = p->mount_len;

        if (ml == 1) {
            *iter = k + 1;
            return p;
        }
        if (path_len >= ml && csgi__bytes_eq(path, p->mount, ml) &&
            (path_len == ml || path[ml] == '/')) {
            *iter = k + 1;
            return p;
        }
    }
    *iter = set->n;
    return NULL;
}
