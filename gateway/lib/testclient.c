/*
 * The in-process test client: a fake CSGI host that runs one request at a
 * time against a plugin or a bare application and records what a client
 * would have received. See <csgi/testclient.h>.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <csgi/testclient.h>

#include "core.h"
#include "forwarded.h"
#include "head.h"
#include "plugin_check.h"
#include "csgi_internal.h"

/* Under AddressSanitizer every alloc() gets its own heap block, so that an
 * overrun in the code under test is caught instead of landing in the arena. */
#if defined(__SANITIZE_ADDRESS__)
#define TC_ARENA_PER_ALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TC_ARENA_PER_ALLOC 1
#endif
#endif
#ifndef TC_ARENA_PER_ALLOC
#define TC_ARENA_PER_ALLOC 0
#endif

#define TC_BLOCK_SIZE 4096u
#define TC_ALIGN      (_Alignof(max_align_t))
#define TC_FILE_CHUNK 32768u
/* A body yielding this many empty chunks in a row is assumed to spin. */
#define TC_MAX_EMPTY_CHUNKS (1u << 20)

/* ------------------------------------------------------------------ */
/* Types                                                               */
/* ------------------------------------------------------------------ */

struct tc_block {
    struct tc_block *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

/* One captured line, allocated with its text so that it never moves. */
struct tc_logline {
    struct csgi_test_log pub;
    char text[];
};

/* A host timer or descriptor watch of a request (SPEC 4.14): wakes it once. */
struct tc_watch {
    struct tc_watch *next;
    long long due_ms; /* a timer: CLOCK_MONOTONIC ms; -1 for a descriptor */
    int fd;
    short events;
    int armed;
};

struct tc_finish {
    struct tc_finish *next;
    csgi_finished_fn fn;
    void *arg;
};

struct csgi_test_client {
    struct csgi_host_api api;
    pthread_mutex_t log_lock;
    struct tc_logline **logs;
    size_t n_logs;
    size_t cap_logs;

    void *dl;
    const struct csgi_plugin *plugin;
    /* The descriptor flags as mounted (csgi__wrapped_flags()); a bare app may wait. */
    uint32_t flags;
    int worker_started;
    csgi_app_fn app;
    void *app_state;
    /* The plugin's init_worker() state: app_state until middleware wraps the app. */
    void *plugin_state;
    /* Middleware plugins in front of the app (csgi_test_client_wrap), innermost first. */
    struct tc_layer *layers;
    size_t n_layers;

    char *mount;
    struct csgi_kv *config;
    size_t n_config;
    /* The copied keys and values, two per item; config[] points into them. */
    char **config_strings;
    size_t n_config_strings;

    struct csgi_request *active;
    /* csgi_test_client_trust_proxy(): the networks of trusted proxies. */
    struct csgi__cidr *trusted;
    size_t n_trusted;
    /*
     * resume() from any thread: the lock orders it against a park, and the
     * condition wakes csgi_test_call_run() waiting for it (SPEC 4.14).
     */
    pthread_mutex_t wake_lock;
    pthread_cond_t wake_cond;
    /* Request ids, as csgi-server makes them: a random prefix per client, then a counter. */
    char id_prefix[16];
    uint64_t next_id;
};

/* One middleware plugin wrapping the client's application. */
struct tc_layer {
    void *dl; /* dlopen handle, or NULL for a descriptor given directly */
    const struct csgi_plugin *mw;
    void *mw_state;
    void *instance; /* what wrap() returned, for unwrap() */
    int wrapped;
    struct csgi_kv *config; /* copied keys and values */
    size_t n_config;
};

/* In the test client a request is this struct; plugins only see the pointer. */
struct csgi_request {
    struct csgi_test_client *client;
    struct tc_block *arena;

    struct csgi_environ env;
    struct csgi_tls tls;
    struct csgi_input input;
    struct csgi_errors errors;
    struct csgi__input input_state;
    struct csgi__errors errors_state;
    /* The response side: the host core, as in csgi-server. */
    struct csgi__response core;
    struct csgi__file_body *files;
    struct tc_finish *finish;
    char request_id[CSGI__REQUEST_ID_LEN + 1];

    /* What a client received. */
    struct csgi__plan plan;
    int aborted;
    /* The client gave up (CSGI_ETOOBIG past CSGI_TEST_MAX_BODY), or 0. */
    int client_error;
    char *out;
    size_t out_len;
    size_t out_cap;

    size_t log_start;

    /* A request in progress (struct csgi_test_call is this struct). */
    csgi_app_fn app;
    void *app_state;
    int declined;
    /* The plan is made (not CSGI__PLAN_WAIT), the response has ended, the request parks. */
    int planned;
    int ended;
    int parked;
    /* The transport's reason for on_finished (CSGI_FINISH_OK until the client leaves). */
    int end_reason;
    /* Its host timers and descriptor watches, in arena memory. */
    struct tc_watch *watches;
    /*
     * An upgraded connection (SPEC 4.15): the host's end of a socketpair, the
     * client's end (csgi_test_call_upgraded()), the events the core waits
     * for, when its linger ends (0: none) and whether it is over.
     */
    int up_fd;
    int up_peer;
    unsigned up_want;
    long long up_linger_ms;
    int up_done;
    /* csgi_test_call_stop(): the host stops (stopping() answers 1). */
    int stopping;
};

struct tc_response {
    struct csgi_test_response pub;
    char *pool;
    struct csgi_header *headers;
    struct csgi_test_log *logs;
    char *body;
    char request_id[CSGI__REQUEST_ID_LEN + 1];
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static void tc_errf(char *err, size_t err_len, const char *fmt, ...) CSGI_PRINTF(3, 4);

static void
tc_errf(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (!err || err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static char *
tc_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ------------------------------------------------------------------ */
/* Log capture                                                         */
/* ------------------------------------------------------------------ */

/* Append one line (a copy of [msg, msg+len) without trailing newlines). */
static int
tc_capture(struct csgi_test_client *c, int level, const char *msg, size_t len)
{
    struct tc_logline *line;
    int rc = CSGI_OK;

    while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        len--;
    line = malloc(sizeof(*line) + len + 1);
    if (!line)
        return CSGI_ENOMEM;
    if (len)
        memcpy(line->text, msg, len);
    line->text[len] = '\0';
    line->pub.level = level;
    line->pub.text = line->text;

    pthread_mutex_lock(&c->log_lock);
    if (c->n_logs == c->cap_logs) {
        size_t cap = c->cap_logs ? c->cap_logs * 2 : 16;
        struct tc_logline **logs = realloc(c->logs, cap * sizeof(*logs));

        if (!logs) {
            free(line);
            rc = CSGI_ENOMEM;
            goto unlock;
        }
        c->logs = logs;
        c->cap_logs = cap;
    }
    c->logs[c->n_logs++] = line;
unlock:
    pthread_mutex_unlock(&c->log_lock);
    return rc;
}

static void tc_vlogf(struct csgi_test_client *c, int level, const char *fmt, va_list ap)
    CSGI_PRINTF(3, 0);

static void
tc_vlogf(struct csgi_test_client *c, int level, const char *fmt, va_list ap)
{
    char small[256], *text = small;
    va_list copy;
    int n;

    va_copy(copy, ap);
    n = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(small)) {
        text = malloc((size_t)n + 1);
        if (!text)
            return;
        vsnprintf(text, (size_t)n + 1, fmt, ap);
    }
    tc_capture(c, level, text, (size_t)n);
    if (text != small)
        free(text);
}

static void tc_logf(struct csgi_test_client *c, int level, const char *fmt, ...) CSGI_PRINTF(3, 4);

static void
tc_logf(struct csgi_test_client *c, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tc_vlogf(c, level, fmt, ap);
    va_end(ap);
}

static void tc_host_vlog(void *ctx, int level, const char *fmt, va_list ap) CSGI_PRINTF(3, 0);

static void
tc_host_vlog(void *ctx, int level, const char *fmt, va_list ap)
{
    if (!ctx || !fmt)
        return;
    tc_vlogf(ctx, level, fmt, ap);
}

static void tc_host_log(void *ctx, int level, const char *fmt, ...) CSGI_PRINTF(3, 4);

static void
tc_host_log(void *ctx, int level, const char *fmt, ...)
{
    va_list ap;

    if (!ctx || !fmt)
        return;
    va_start(ap, fmt);
    tc_vlogf(ctx, level, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The request arena                                                   */
/* ------------------------------------------------------------------ */

static void *
tc_arena_alloc(struct csgi_request *req, size_t n)
{
    struct tc_block *b;
    size_t need, size;
    void *p;

    if (n > SIZE_MAX / 2)
        return NULL;
    need = (n ? n : 1);
    need = (need + TC_ALIGN - 1) / TC_ALIGN * TC_ALIGN;

    b = req->arena;
    if (!TC_ARENA_PER_ALLOC && b && b->size - b->used >= need) {
        p = (char *)b->data + b->used;
        b->used += need;
        return p;
    }
    size = (TC_ARENA_PER_ALLOC || need > TC_BLOCK_SIZE / 4) ? need : TC_BLOCK_SIZE;
    b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->size = size;
    b->used = need;
    if (size == need && req->arena) {
        /* A block of its own: keep the current block's free space in front. */
        b->next = req->arena->next;
        req->arena->next = b;
    } else {
        b->next = req->arena;
        req->arena = b;
    }
    return b->data;
}

static void
tc_arena_free(struct csgi_request *req)
{
    struct tc_block *b = req->arena;

    while (b) {
        struct tc_block *next = b->next;
        free(b);
        b = next;
    }
    req->arena = NULL;
}

static char *
tc_arena_strndup(struct csgi_request *req, const char *s, size_t n)
{
    char *p = tc_arena_alloc(req, n + 1);

    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ------------------------------------------------------------------ */
/* Host api                                                            */
/* ------------------------------------------------------------------ */

static void *
tc_host_alloc(struct csgi_request *req, size_t n)
{
    if (!req)
        return NULL;
    return tc_arena_alloc(req, n);
}

static int
tc_host_header_get(const struct csgi_environ *env, const char *name, size_t index,
                   struct csgi_str *value)
{
    return csgi__header_get(env, name, index, value);
}

static void *
tc_core_alloc(void *ctx, size_t n)
{
    return tc_arena_alloc(ctx, n);
}

static int
tc_host_body_from_fd(struct csgi_request *req, int fd, int64_t offset, int64_t count,
                     uint32_t flags, struct csgi_body *out)
{
    if (!req) {
        if (fd >= 0 && (flags & CSGI_FD_CLOSE))
            close(fd);
        return CSGI_EINVAL;
    }
    return csgi__body_from_fd(tc_core_alloc, req, &req->files, fd, offset, count, flags, out);
}

static int
tc_host_on_finished(struct csgi_request *req, csgi_finished_fn fn, void *arg)
{
    struct tc_finish *node;

    if (!req || !fn)
        return CSGI_EINVAL;
    node = tc_arena_alloc(req, sizeof(*node));
    if (!node)
        return CSGI_ENOMEM;
    node->fn = fn;
    node->arg = arg;
    node->next = req->finish;
    req->finish = node;
    return CSGI_OK;
}

/* PEP 3333 "URL Reconstruction". */
static int
tc_host_request_url(const struct csgi_environ *env, struct csgi_str *out)
{
    if (!env || !env->request)
        return CSGI_EINVAL;
    return csgi__request_url(env, tc_core_alloc, env->request, out);
}

static int
tc_host_body_from_buffer(struct csgi_request *req, const void *data, size_t len, uint32_t flags,
                         struct csgi_body *out)
{
    if (!req)
        return CSGI_EINVAL;
    return csgi__body_from_buffer(tc_core_alloc, req, data, len, flags, out);
}

static long long
tc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A watch for @p req, or an error; the body must be open. */
static int
tc_watch_add(struct csgi_request *req, long long due_ms, int fd, short events)
{
    struct tc_watch *w;

    if (atomic_load(&req->core.wake) & CSGI__WAKE_CLOSED)
        return CSGI_ESTATE;
    w = tc_arena_alloc(req, sizeof(*w));
    if (!w)
        return CSGI_ENOMEM;
    w->due_ms = due_ms;
    w->fd = fd;
    w->events = events;
    w->armed = 1;
    w->next = req->watches;
    req->watches = w;
    return CSGI_OK;
}

static int
tc_host_timer(struct csgi_request *req, uint64_t ms)
{
    if (!req)
        return CSGI_EINVAL;
    if (ms > (uint64_t)INT32_MAX * 1000)
        ms = (uint64_t)INT32_MAX * 1000;
    return tc_watch_add(req, tc_now_ms() + (long long)ms, -1, 0);
}

static int
tc_host_watch_fd(struct csgi_request *req, int fd, uint32_t events)
{
    short ev = 0;

    if (!req || fd < 0 || !events || (events & ~(uint32_t)(CSGI_WATCH_READ | CSGI_WATCH_WRITE)))
        return CSGI_EINVAL;
    if (fcntl(fd, F_GETFD) < 0)
        return CSGI_EBADF;
    if (events & CSGI_WATCH_READ)
        ev |= POLLIN;
    if (events & CSGI_WATCH_WRITE)
        ev |= POLLOUT;
    return tc_watch_add(req, -1, fd, ev);
}

static int
tc_host_stopping(struct csgi_request *req)
{
    return req && req->stopping; /* csgi_test_call_stop() */
}

static int
tc_host_resume(struct csgi_request *req)
{
    struct csgi_test_client *c;
    int rc;

    if (!req)
        return CSGI_EINVAL;
    c = req->client;
    pthread_mutex_lock(&c->wake_lock);
    rc = csgi__response_resume(&req->core);
    if (rc == 1) {
        req->parked = 0;
        pthread_cond_broadcast(&c->wake_cond);
    }
    pthread_mutex_unlock(&c->wake_lock);
    return rc < 0 ? rc : CSGI_OK;
}

/* ------------------------------------------------------------------ */
/* Upgraded connections (SPEC 4.15): a socketpair stands in for the    */
/* client's connection                                                 */
/* ------------------------------------------------------------------ */

static void
tc_up_want(void *ctx, unsigned events)
{
    struct csgi_request *req = ctx;

    req->up_want = events;
    if (!(events & CSGI__UP_LINGER))
        req->up_linger_ms = 0;
    else if (!req->up_linger_ms)
        req->up_linger_ms = tc_now_ms() + CSGI__UPGRADE_LINGER_MS;
}

static void
tc_up_done(void *ctx)
{
    struct csgi_request *req = ctx;

    req->up_done = 1;
    if (req->up_fd >= 0)
        close(req->up_fd);
    req->up_fd = -1;
}

static const struct csgi__upgrade_ops tc_up_ops = {tc_up_want, tc_up_done};

static int
tc_host_upgrade(struct csgi_request *req, const struct csgi_upgrade_handler *handler, void *arg,
                struct csgi_upgrade **out)
{
    const struct csgi_plugin *p;

    if (!req || !handler || !out)
        return CSGI_EINVAL;
    /* An app given without a descriptor (csgi_test_client_new_app()) may upgrade. */
    p = req->client->plugin;
    return csgi__upgrade_begin(&req->core, &req->env, !p || (p->flags & CSGI_PLUGIN_UPGRADES),
                               &tc_up_ops, req, handler, arg, out);
}

static int
tc_host_upgrade_write(struct csgi_upgrade *u, const void *data, size_t len)
{
    return csgi__upgrade_write(u, data, len);
}

static int
tc_host_upgrade_close(struct csgi_upgrade *u)
{
    return csgi__upgrade_close(u);
}

/*
 * The 101 went out (inside tc_advance(), the client active): the connection
 * becomes a socketpair, the client's end the test's.
 */
static void
tc_up_start(struct csgi_request *req)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
        tc_logf(req->client, CSGI_LOG_ERROR, "upgrade: socketpair: %s", strerror(errno));
        req->aborted = 1;
        csgi__upgrade_end(req->core.upgrade, CSGI_FINISH_ERROR);
        return;
    }
    req->up_fd = sv[0];
    req->up_peer = sv[1];
    csgi__upgrade_start(req->core.upgrade, sv[0], NULL, 0);
}

/*
 * Drive an upgraded connection for up to @p timeout_ms: wait for the events
 * the core asks for and report them, end it when its linger is over.
 * Returns 1 while it is open, 0 once it is over.
 */
static int
tc_up_run(struct csgi_request *req, int timeout_ms)
{
    long long end = tc_now_ms() + timeout_ms;

    while (!req->up_done) {
        struct pollfd pfd = {.fd = req->up_fd, .events = 0};
        long long now = tc_now_ms(), wait = end - now;
        unsigned ev = 0;

        if (req->up_linger_ms && req->up_linger_ms - now < wait)
            wait = req->up_linger_ms - now;
        if (req->up_want & CSGI_WATCH_READ)
            pfd.events |= POLLIN;
        if (req->up_want & CSGI_WATCH_WRITE)
            pfd.events |= POLLOUT;
        if (poll(&pfd, 1, wait < 0 ? 0 : (int)wait) > 0) {
            if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
                ev |= CSGI_WATCH_READ;
            if (pfd.revents & (POLLOUT | POLLHUP | POLLERR))
                ev |= CSGI_WATCH_WRITE;
        }
        req->client->active = req;
        if (ev)
            csgi__upgrade_ready(req->core.upgrade, ev);
        else if (req->up_linger_ms && tc_now_ms() >= req->up_linger_ms) {
            req->up_linger_ms = 0; /* fired: asked again, a new period */
            csgi__upgrade_linger(req->core.upgrade);
        }
        req->client->active = NULL;
        if (!ev && tc_now_ms() >= end)
            break;
    }
    return !req->up_done;
}

int
csgi_test_call_upgraded(const struct csgi_test_call *call)
{
    const struct csgi_request *req = (const struct csgi_request *)call;

    return req && req->up_peer >= 0 && req->plan.kind == CSGI__PLAN_UPGRADE ? req->up_peer : -1;
}

int
csgi_test_call_stop(struct csgi_test_call *call)
{
    struct csgi_request *req = (struct csgi_request *)call;

    if (!req)
        return CSGI_EINVAL;
    if (req->client->active)
        return CSGI_ESTATE;
    req->stopping = 1;
    if (req->planned && req->plan.kind == CSGI__PLAN_UPGRADE && !req->up_done) {
        req->client->active = req;
        csgi__upgrade_stop(req->core.upgrade);
        req->client->active = NULL;
    }
    return CSGI_OK;
}

static const void *
tc_host_get_extension(void *ctx, const char *name, uint32_t min_version)
{
    (void)ctx;
    (void)name;
    (void)min_version;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The transport side of the core                                     */
/* ------------------------------------------------------------------ */

static void
tc_errors_sink(void *ctx, int level, const char *msg, size_t len)
{
    struct csgi_request *req = ctx;

    tc_capture(req->client, level, msg, len);
}

static void
tc_core_log(void *ctx, int level, const char *plugin, const char *msg)
{
    struct csgi_request *req = ctx;

    tc_logf(req->client, level, "plugin \"%s\": %s", plugin, msg);
}

static const struct csgi__host_ops tc_core_ops = {
    .alloc = tc_core_alloc,
    .log = tc_core_log,
};

/* ------------------------------------------------------------------ */
/* Building the environ                                                */
/* ------------------------------------------------------------------ */

static int
tc_set_str(struct csgi_request *req, struct csgi_str *dst, const char *s, size_t n)
{
    char *p = tc_arena_strndup(req, s, n);

    if (!p)
        return CSGI_ENOMEM;
    dst->ptr = p;
    dst->len = n;
    return CSGI_OK;
}

/*
 * The header lines a client sends: rq's, copied, plus "Host: localhost"
 * when they have none (as curl adds one). Values a client cannot send (CR,
 * LF, NUL) are refused; everything else is left to the host core's checks.
 */
static int
tc_copy_headers(struct csgi_request *req, const struct csgi_test_request *rq,
                struct csgi_header **out, size_t *n_out)
{
    struct csgi_header *headers = tc_arena_alloc(req, (rq->n_headers + 1) * sizeof(*headers));
    int have_host = 0;
    size_t n = 0;

    if (!headers)
        return CSGI_ENOMEM;
    for (size_t i = 0; i < rq->n_headers; i++) {
        const struct csgi_header *h = &rq->headers[i];

        if (!h->name.ptr || !h->value.ptr || !csgi__is_field_value(h->value.ptr, h->value.len))
            return CSGI_EINVAL;
        if (tc_set_str(req, &headers[n].name, h->name.ptr, h->name.len) < 0 ||
            tc_set_str(req, &headers[n].value, h->value.ptr, h->value.len) < 0)
            return CSGI_ENOMEM;
        have_host |= csgi__str_ieq(h->name.ptr, h->name.len, "host");
        n++;
    }
    if (!have_host) {
        headers[n].name.ptr = "Host";
        headers[n].name.len = 4;
        headers[n].value.ptr = "localhost";
        headers[n].value.len = 9;
        n++;
    }
    *out = headers;
    *n_out = n;
    return CSGI_OK;
}

/*
 * Check the request head with the host core's rules, as csgi-server does.
 * A request the server would refuse (400, 431, 501, 505) is CSGI_EINVAL,
 * logged with the status and the reason.
 */
static int
tc_check_head(struct csgi_request *req, const struct csgi_test_request *rq,
              struct csgi__head_facts *facts)
{
    const char *target = rq->target ? rq->target : "/";
    struct csgi__head head;
    char *path_buf;
    const char *why = "";
    int rc;

    memset(&head, 0, sizeof(head));
    head.method = rq->method ? rq->method : "GET";
    head.method_len = strlen(head.method);
    head.version = rq->protocol ? rq->protocol : "HTTP/1.1";
    head.version_len = strlen(head.version);
    head.raw_target = target;
    head.raw_target_len = strlen(target);
    head.any_method = 1;
    rc = tc_copy_headers(req, rq, &head.headers, &head.n_headers);
    if (rc < 0)
        return rc;
    path_buf = tc_arena_alloc(req, head.raw_target_len + 2);
    if (!path_buf)
        return CSGI_ENOMEM;
    rc = csgi__head_check(&head, path_buf, facts, &why);
    if (rc == 0 && facts->target.asterisk)
        return CSGI_EINVAL; /* "OPTIONS *" is the server's to answer */
    if (rc != 0) {
        tc_logf(req->client, CSGI_LOG_INFO, "request refused with %d, as csgi-server does: %s", rc,
                why);
        return CSGI_EINVAL;
    }
    req->env.headers = head.headers;
    req->env.n_headers = head.n_headers;
    return CSGI_OK;
}

/* The environ's strings: the test client's connection is 127.0.0.1, port 80 or 443. */
static int
tc_fill_environ(struct csgi_request *req, const struct csgi_test_request *rq,
                const struct csgi__head_facts *facts)
{
    struct csgi_test_client *c = req->client;
    struct csgi_environ *env = &req->env;
    size_t mount_len = strlen(c->mount);
    const struct {
        struct csgi_str *dst;
        const char *src;
        size_t len;
    } fields[] = {
        {&env->request_method, rq->method ? rq->method : "GET", 0},
        {&env->script_name, c->mount, 0},
        {&env->raw_target, rq->target ? rq->target : "/", 0},
        {&env->query_string, facts->target.query, facts->target.query_len},
        {&env->server_name, facts->host ? facts->host : "localhost",
         facts->host ? facts->host_len : 9},
        {&env->server_port, env->flags & CSGI_ENV_TLS ? "443" : "80", 0},
        {&env->server_protocol, rq->protocol ? rq->protocol : "HTTP/1.1", 0},
        {&env->url_scheme, env->flags & CSGI_ENV_TLS ? "https" : "http", 0},
        {&env->remote_addr, rq->remote_addr ? rq->remote_addr : "127.0.0.1", 0},
    };

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        size_t len = fields[i].len ? fields[i].len : strlen(fields[i].src);

        if (tc_set_str(req, fields[i].dst, fields[i].src, len) < 0)
            return CSGI_ENOMEM;
    }
    env->path_info.ptr = facts->target.path + mount_len;
    env->path_info.len = facts->target.path_len - mount_len;
    env->remote_port = env->remote_addr.len ? CSGI_TEST_REMOTE_PORT : 0;
    env->content_length = facts->content_length;
    env->content_type = facts->content_type;
    env->config = c->config;
    env->n_config = c->n_config;
    env->host = &c->api;
    csgi__request_id_format(req->request_id, c->id_prefix, ++c->next_id);
    env->request_id.ptr = req->request_id;
    env->request_id.len = CSGI__REQUEST_ID_LEN;
    /* The client holds the whole body, as csgi-server does: its length is known. */
    env->input_length = (int64_t)rq->body_len;
    if (c->n_trusted) {
        struct csgi__fwd_buf *buf = tc_arena_alloc(req, sizeof(*buf));
        if (!buf)
            return CSGI_ENOMEM;
        csgi__forwarded_apply(c->trusted, c->n_trusted, env, buf);
    }
    return CSGI_OK;
}

/* A peer address as a server would see it: "" (unix) or an IPv4/IPv6 address. */
static int
tc_peer_valid(const char *addr)
{
    unsigned char a[16];

    return !addr || !*addr || inet_pton(AF_INET, addr, a) == 1 || inet_pton(AF_INET6, addr, a) == 1;
}

/*
 * env->tls for an https request: the caller's facts, copied, or a TLS 1.3
 * connection without SNI or client certificate.
 */
static int
tc_fill_tls(struct csgi_request *req, const struct csgi_tls *from)
{
    static const struct csgi_tls defaults = {
        CSGI_TLS_VERSION, 0,           {"TLSv1.3", 7}, {"TLS_AES_128_GCM_SHA256", 22},
        {"", 0},          {"NONE", 4}, {"", 0},        {"", 0},
    };
    const struct csgi_tls *src = from ? from : &defaults;
    struct csgi_tls *t = &req->tls;
    const struct csgi_str *in[] = {&src->protocol,      &src->cipher,      &src->sni,
                                   &src->client_verify, &src->client_s_dn, &src->client_i_dn};
    struct csgi_str *out[] = {&t->protocol,      &t->cipher,      &t->sni,
                              &t->client_verify, &t->client_s_dn, &t->client_i_dn};

    memset(t, 0, sizeof(*t));
    t->version = CSGI_TLS_VERSION;
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        if (tc_set_str(req, out[i], in[i]->ptr ? in[i]->ptr : "", in[i]->ptr ? in[i]->len : 0) < 0)
            return CSGI_ENOMEM;
    }
    req->env.tls = t;
    return CSGI_OK;
}

static int
tc_build_environ(struct csgi_request *req, const struct csgi_test_request *rq)
{
    struct csgi_test_client *c = req->client;
    const char *scheme = rq->url_scheme ? rq->url_scheme : "http";
    struct csgi__head_facts facts;
    size_t mount_len = strlen(c->mount);
    int rc;

    req->env.version = CSGI_ENVIRON_VERSION;
    req->env.flags = CSGI_ENV_INPUT_TERMINATED | CSGI_ENV_INPUT_BUFFERED;
    req->env.request = req;
    if (strcmp(scheme, "https") == 0)
        req->env.flags |= CSGI_ENV_TLS;
    else if (strcmp(scheme, "http") != 0 || rq->tls)
        return CSGI_EINVAL;
    req->env.tls = NULL;
    if ((req->env.flags & CSGI_ENV_TLS) && tc_fill_tls(req, rq->tls) < 0)
        return CSGI_ENOMEM;
    if ((rq->body_len && !rq->body) || (rq->n_headers && !rq->headers) ||
        !tc_peer_valid(rq->remote_addr))
        return CSGI_EINVAL;
    rc = tc_check_head(req, rq, &facts);
    if (rc < 0)
        return rc;
    /* The body is the request's: a Content-Length must say its length. */
    if (facts.content_length >= 0 && (uint64_t)facts.content_length != rq->body_len)
        return CSGI_EINVAL;
    if (mount_len &&
        (facts.target.path_len < mount_len || memcmp(facts.target.path, c->mount, mount_len) ||
         (facts.target.path_len > mount_len && facts.target.path[mount_len] != '/')))
        return CSGI_ENOENT;
    rc = tc_fill_environ(req, rq, &facts);
    if (rc < 0)
        return rc;

    req->input_state.mem = rq->body;
    req->input_state.fd = -1;
    req->input_state.len = rq->body_len;
    csgi__input_init(&req->input, &req->input_state);
    req->env.input = &req->input;
    req->errors_state.sink = tc_errors_sink;
    req->errors_state.alloc = tc_core_alloc;
    req->errors_state.ctx = req;
    req->errors_state.line = NULL;
    csgi__errors_init(&req->errors, &req->errors_state);
    req->env.errors = &req->errors;
    csgi__response_init(
        &req->core, &tc_core_ops, req,
        (facts.head_request ? CSGI__RESP_HEAD : 0) | (facts.http11 ? 0 : CSGI__RESP_HTTP10), 0);
    return CSGI_OK;
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

static char *
tc_pool_put(char **pool, const char *s, size_t n)
{
    char *p = *pool;

    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    *pool += n + 1;
    return p;
}

static struct csgi_test_response *
tc_make_response(struct csgi_request *req, int declined)
{
    struct csgi_test_client *c = req->client;
    const struct csgi__plan *plan = &req->plan;
    struct tc_response *r;
    struct csgi_test_response *pub;
    struct csgi_header error_type = {CSGI_STR_INIT("Content-Type"),
                                     CSGI_STR_INIT(CSGI__ERROR_CONTENT_TYPE)};
    const struct csgi_header *headers = req->core.headers;
    size_t pool_size = 0, n_logs, n_headers = req->core.n_headers;
    const char *reason;
    size_t reason_len;
    char *pool;

    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pub = &r->pub;
    pub->rc = req->core.error     ? req->core.error
              : req->client_error ? req->client_error
              : declined          ? CSGI_EDECLINED
                                  : CSGI_OK;
    pub->finish_reason = csgi__response_finish_reason(&req->core, req->end_reason);
    if (req->end_reason != CSGI_FINISH_OK && !req->core.error && !req->client_error)
        pub->rc = req->end_reason == CSGI_FINISH_TIMEOUT ? CSGI_ETIMEDOUT : CSGI_ECONNRESET;
    pub->headers_sent = plan->kind != CSGI__PLAN_ERROR;
    memcpy(r->request_id, req->request_id, sizeof(r->request_id));
    pub->request_id = r->request_id;
    pub->body_produced = req->core.produced;
    pub->framing = (int)plan->framing;
    pub->aborted = req->aborted;
    pub->status = plan->kind == CSGI__PLAN_ERROR ? plan->status : req->core.status;
    if (plan->kind == CSGI__PLAN_ERROR) {
        headers = &error_type;
        n_headers = 1;
    }
    reason = csgi__status_reason(pub->status);
    reason_len = strlen(reason);

    pthread_mutex_lock(&c->log_lock);
    n_logs = c->n_logs - req->log_start;
    pool_size += reason_len + 1;
    for (size_t i = 0; i < n_headers; i++)
        pool_size += headers[i].name.len + headers[i].value.len + 2;
    for (size_t i = 0; i < n_logs; i++)
        pool_size += strlen(c->logs[req->log_start + i]->text) + 1;

    r->pool = malloc(pool_size);
    r->headers = n_headers ? calloc(n_headers, sizeof(*r->headers)) : NULL;
    r->logs = n_logs ? calloc(n_logs, sizeof(*r->logs)) : NULL;
    r->body = malloc(req->out_len + 1);
    if (!r->pool || (n_headers && !r->headers) || (n_logs && !r->logs) || !r->body) {
        pthread_mutex_unlock(&c->log_lock);
        csgi_test_response_free(pub);
        return NULL;
    }
    pool = r->pool;
    pub->reason = tc_pool_put(&pool, reason, reason_len);
    for (size_t i = 0; i < n_headers; i++) {
        const struct csgi_header *h = &headers[i];

        r->headers[i].name.ptr = tc_pool_put(&pool, h->name.ptr, h->name.len);
        r->headers[i].name.len = h->name.len;
        r->headers[i].value.ptr = tc_pool_put(&pool, h->value.ptr, h->value.len);
        r->headers[i].value.len = h->value.len;
    }
    for (size_t i = 0; i < n_logs; i++) {
        const struct tc_logline *line = c->logs[req->log_start + i];

        r->logs[i].level = line->pub.level;
        r->logs[i].text = tc_pool_put(&pool, line->text, strlen(line->text));
    }
    pthread_mutex_unlock(&c->log_lock);

    if (req->out_len)
        memcpy(r->body, req->out, req->out_len);
    pub->body_len = req->out_len;
    r->body[pub->body_len] = '\0';
    pub->body = r->body;
    pub->headers = r->headers;
    pub->n_headers = n_headers;
    pub->logs = r->logs;
    pub->n_logs = n_logs;
    return pub;
}

void
csgi_test_response_free(struct csgi_test_response *resp)
{
    struct tc_response *r = (struct tc_response *)resp;

    if (!r)
        return;
    free(r->pool);
    free(r->headers);
    free(r->logs);
    free(r->body);
    free(r);
}

const char *
csgi_test_response_header(const struct csgi_test_response *resp, const char *name)
{
    if (!resp || !name)
        return NULL;
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (csgi__str_ieq(resp->headers[i].name.ptr, resp->headers[i].name.len, name))
            return resp->headers[i].value.ptr;
    }
    return NULL;
}

size_t
csgi_test_response_header_count(const struct csgi_test_response *resp, const char *name)
{
    size_t n = 0;

    if (!resp || !name)
        return 0;
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (csgi__str_ieq(resp->headers[i].name.ptr, resp->headers[i].name.len, name))
            n++;
    }
    return n;
}

const char *
csgi_test_response_find_log(const struct csgi_test_response *resp, const char *needle)
{
    if (!resp || !needle)
        return NULL;
    for (size_t i = 0; i < resp->n_logs; i++) {
        if (strstr(resp->logs[i].text, needle))
            return resp->logs[i].text;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Running a request                                                   */
/* ------------------------------------------------------------------ */

/* End of request: on_finished callbacks (LIFO), then leftover file bodies. */
static void
tc_finish_request(struct csgi_request *req, int reason)
{
    while (req->finish) {
        struct tc_finish *node = req->finish;

        req->finish = node->next;
        node->fn(node->arg, reason);
    }
    csgi__file_bodies_release(req->files);
}

/* Keep body bytes as a client receives them. */
static int
tc_emit(struct csgi_request *req, const void *data, size_t len)
{
    if (len > CSGI_TEST_MAX_BODY - req->out_len) {
        tc_logf(req->client, CSGI_LOG_ERROR, "response body exceeds %u bytes", CSGI_TEST_MAX_BODY);
        len = CSGI_TEST_MAX_BODY - req->out_len;
        req->client_error = CSGI_ETOOBIG;
    }
    if (req->out_len + len + 1 > req->out_cap) {
        size_t cap = req->out_cap ? req->out_cap : 256;
        char *out;

        while (cap < req->out_len + len + 1)
            cap *= 2;
        out = realloc(req->out, cap);
        if (!out)
            return CSGI_ENOMEM;
        req->out = out;
        req->out_cap = cap;
    }
    if (len)
        memcpy(req->out + req->out_len, data, len);
    req->out_len += len;
    req->out[req->out_len] = '\0'; /* csgi_test_call_body() gives it as text too */
    return req->client_error;
}

/* A file range, read as sendfile() would send it. Returns 0, or -1 when cut short. */
static int
tc_send_file(struct csgi_request *req, int fd, int64_t offset, int64_t length)
{
    char buf[TC_FILE_CHUNK];

    while (length > 0) {
        size_t want = length < (int64_t)sizeof(buf) ? (size_t)length : sizeof(buf);
        ssize_t n = pread(fd, buf, want, (off_t)offset);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || tc_emit(req, buf, (size_t)n) < 0)
            return -1;
        offset += n;
        length -= n;
    }
    return 0;
}

/* Send the planned response as a connection would: into req->out. */
static void
tc_deliver(struct csgi_request *req)
{
    const struct csgi__plan *plan = &req->plan;
    int head = (req->core.flags & CSGI__RESP_HEAD) != 0;

    switch (plan->kind) {
    case CSGI__PLAN_ERROR:
    case CSGI__PLAN_BUFFER:
        if (!head && tc_emit(req, plan->data, plan->len) < 0)
            req->aborted = 1;
        break;
    case CSGI__PLAN_FILE:
        if (!head && tc_send_file(req, plan->fd, plan->offset, plan->length) < 0)
            req->aborted = 1;
        close(plan->fd);
        break;
    case CSGI__PLAN_UPGRADE:
        tc_up_start(req);
        break;
    case CSGI__PLAN_STREAM:
    case CSGI__PLAN_WAIT:
        break;
    }
}

/*
 * Pull a streamed body into req->out. Returns 1 when next() said
 * CSGI_PENDING (nothing is in hand), 0 when the response ended.
 */
static int
tc_stream(struct csgi_request *req)
{
    char buf[TC_FILE_CHUNK];
    int64_t n;

    while ((n = csgi__response_read(&req->core, buf, sizeof(buf))) > 0) {
        if (tc_emit(req, buf, (size_t)n) < 0)
            break;
    }
    if (n == CSGI__READ_PENDING)
        return 1;
    req->aborted = n != 0;
    if (req->plan.framing == CSGI__FRAMING_CLOSE && !req->client_error)
        req->aborted = n < 0; /* the close ends this body */
    return 0;
}

/* Park @p req under the client's wake lock: 1 parked, 0 a resume() came already. */
static int
tc_park(struct csgi_request *req)
{
    struct csgi_test_client *c = req->client;
    int parked;

    pthread_mutex_lock(&c->wake_lock);
    parked = csgi__response_park(&req->core);
    req->parked = parked;
    pthread_mutex_unlock(&c->wake_lock);
    return parked;
}

/*
 * Drive the response as far as it goes: plan it (again, after a wait),
 * send it, pull a stream. Returns 1 when it waits for resume(), 0 when it
 * ended.
 */
static int
tc_advance(struct csgi_request *req)
{
    struct csgi_test_client *c = req->client;
    int waits = 0;

    c->active = req;
    for (;;) {
        if (!req->planned) {
            csgi__response_plan(&req->core, req->declined, &req->plan);
            if (req->plan.kind == CSGI__PLAN_WAIT) {
                if (tc_park(req)) {
                    waits = 1;
                    break;
                }
                continue;
            }
            req->planned = 1;
            tc_deliver(req);
        }
        if (req->plan.kind == CSGI__PLAN_STREAM && tc_stream(req)) {
            if (tc_park(req)) {
                waits = 1;
                break;
            }
            continue;
        }
        /* An upgraded connection goes on until it is over (csgi_test_call_run()). */
        req->ended = req->plan.kind != CSGI__PLAN_UPGRADE || req->up_done;
        waits = !req->ended;
        break;
    }
    c->active = NULL;
    return waits;
}

static const char *
tc_app_name(const struct csgi_test_client *client)
{
    return client->plugin && client->plugin->name ? client->plugin->name : "app";
}

/* Free a request and what it holds (not its response). */
static void
tc_request_free(struct csgi_request *req)
{
    if (req->up_fd >= 0)
        close(req->up_fd);
    if (req->up_peer >= 0)
        close(req->up_peer);
    csgi__response_free(&req->core);
    tc_arena_free(req);
    free(req->out);
    free(req);
}

int
csgi_test_client_start_app(struct csgi_test_client *client, csgi_app_fn app, void *state,
                           const struct csgi_test_request *rq, struct csgi_test_call **call)
{
    static const struct csgi_test_request get_root = {0};
    struct csgi_request *req;
    struct csgi_body *body;
    int rc;

    if (call)
        *call = NULL;
    if (!client || !app || !call)
        return CSGI_EINVAL;
    if (client->active)
        return CSGI_ESTATE;
    if (!rq)
        rq = &get_root;
    req = calloc(1, sizeof(*req));
    if (!req)
        return CSGI_ENOMEM;
    req->client = client;
    req->app = app;
    req->app_state = state;
    req->up_fd = req->up_peer = -1;
    req->end_reason = CSGI_FINISH_OK;
    rc = tc_build_environ(req, rq);
    if (rc < 0) {
        tc_request_free(req);
        return rc;
    }

    pthread_mutex_lock(&client->log_lock);
    req->log_start = client->n_logs;
    pthread_mutex_unlock(&client->log_lock);

    client->active = req;
    body = csgi__response_begin(&req->core, tc_app_name(client), client->flags);
    req->declined =
        csgi__response_called(&req->core, app(state, &req->env, &req->core.responder, body));
    client->active = NULL;
    tc_advance(req);
    *call = (struct csgi_test_call *)req;
    return CSGI_OK;
}

int
csgi_test_client_start(struct csgi_test_client *client, const struct csgi_test_request *rq,
                       struct csgi_test_call **call)
{
    if (call)
        *call = NULL;
    if (!client)
        return CSGI_EINVAL;
    return csgi_test_client_start_app(client, client->app, client->app_state, rq, call);
}

int
csgi_test_call_pending(const struct csgi_test_call *call)
{
    const struct csgi_request *req = (const struct csgi_request *)call;

    return req && !req->ended;
}

/*
 * Fire what is due of @p req's timers and watches, waiting for them at most
 * @p wait_ms (0: only look). Each fired one wakes the request as resume() does.
 */
static void
tc_watches_run(struct csgi_request *req, int wait_ms)
{
    struct pollfd fds[16];
    struct tc_watch *by_fd[16];
    long long now = tc_now_ms();
    nfds_t n = 0;
    int fired = 0;

    for (struct tc_watch *w = req->watches; w; w = w->next) {
        if (!w->armed)
            continue;
        if (w->fd < 0 && w->due_ms <= now) {
            w->armed = 0;
            fired = 1;
        } else if (w->fd < 0 && w->due_ms - now < wait_ms) {
            wait_ms = (int)(w->due_ms - now);
        } else if (w->fd >= 0 && n < 16) {
            fds[n].fd = w->fd;
            fds[n].events = w->events;
            fds[n].revents = 0;
            by_fd[n++] = w;
        }
    }
    if (fired)
        wait_ms = 0;
    if ((n || wait_ms > 0) && poll(fds, n, wait_ms) > 0) {
        for (nfds_t k = 0; k < n; k++) {
            if (fds[k].revents) {
                by_fd[k]->armed = 0;
                fired = 1;
            }
        }
    }
    for (struct tc_watch *w = req->watches; w && !fired; w = w->next) {
        if (w->armed && w->fd < 0 && w->due_ms <= tc_now_ms()) {
            w->armed = 0;
            fired = 1;
        }
    }
    if (fired)
        tc_host_resume(req);
}

/*
 * Wait up to @p timeout_ms for @p req, parked, to be woken: by a resume()
 * from another thread or by its own timers and watches. Returns 1 when woken.
 */
static int
tc_wait_woken(struct csgi_request *req, int timeout_ms)
{
    struct csgi_test_client *c = req->client;
    long long end = tc_now_ms() + timeout_ms;

    for (;;) {
        long long left = end - tc_now_ms();
        int parked;

        tc_watches_run(req, left <= 0 ? 0 : left > 5 ? 5 : (int)left);
        pthread_mutex_lock(&c->wake_lock);
        parked = req->parked;
        pthread_mutex_unlock(&c->wake_lock);
        if (!parked)
            return 1;
        if (end - tc_now_ms() <= 0)
            return 0;
    }
}

int
csgi_test_call_run(struct csgi_test_call *call, int timeout_ms)
{
    struct csgi_request *req = (struct csgi_request *)call;

    if (!req)
        return CSGI_EINVAL;
    if (req->ended)
        return 0;
    if (req->client->active)
        return CSGI_ESTATE;
    if (req->planned && req->plan.kind == CSGI__PLAN_UPGRADE) {
        req->ended = !tc_up_run(req, timeout_ms);
        return !req->ended;
    }
    if (!tc_wait_woken(req, timeout_ms))
        return 1;
    return tc_advance(req);
}

const char *
csgi_test_call_body(const struct csgi_test_call *call, size_t *len)
{
    const struct csgi_request *req = (const struct csgi_request *)call;

    if (len)
        *len = req ? req->out_len : 0;
    return req && req->out ? req->out : "";
}

int
csgi_test_call_end(struct csgi_test_call *call, int reason, struct csgi_test_response **out)
{
    struct csgi_request *req = (struct csgi_request *)call;
    struct csgi_test_client *client;
    int rc;

    if (out)
        *out = NULL;
    if (!req || !out)
        return CSGI_EINVAL;
    client = req->client;
    if (client->active)
        return CSGI_ESTATE;
    if (!req->ended) {
        /* The client leaves (or gives up) while the response waits. */
        if (reason != CSGI_FINISH_CLIENT_ABORT && reason != CSGI_FINISH_TIMEOUT &&
            reason != CSGI_FINISH_SHUTDOWN)
            return CSGI_EINVAL;
        req->end_reason = reason;
        req->aborted = 1;
        if (!req->planned)
            req->plan.kind = CSGI__PLAN_ERROR; /* nothing was sent: no status line */
    }
    client->active = req;
    if (req->core.upgrade)
        csgi__upgrade_end(req->core.upgrade, req->end_reason);
    csgi__response_close(&req->core);
    csgi__errors_flush(&req->errors_state);
    tc_finish_request(req, csgi__response_finish_reason(&req->core, req->end_reason));
    client->active = NULL;

    *out = tc_make_response(req, req->declined);
    rc = *out ? CSGI_OK : CSGI_ENOMEM;
    tc_request_free(req);
    return rc;
}

int
csgi_test_client_request_app(struct csgi_test_client *client, csgi_app_fn app, void *state,
                             const struct csgi_test_request *rq, struct csgi_test_response **out)
{
    struct csgi_test_call *call;
    int rc;

    if (out)
        *out = NULL;
    if (!client || !app || !out)
        return CSGI_EINVAL;
    rc = csgi_test_client_start_app(client, app, state, rq, &call);
    if (rc < 0)
        return rc;
    /* A response that waits: for a resume() (or its timers), CSGI_TEST_WAIT_MS at most each. */
    while (csgi_test_call_pending(call)) {
        long long t0 = tc_now_ms();

        if (csgi_test_call_run(call, CSGI_TEST_WAIT_MS) == 0)
            break;
        if (tc_now_ms() - t0 >= CSGI_TEST_WAIT_MS) {
            tc_logf(client, CSGI_LOG_ERROR, "no resume() within %d ms: the client gives up",
                    CSGI_TEST_WAIT_MS);
            return csgi_test_call_end(call, CSGI_FINISH_TIMEOUT, out);
        }
    }
    return csgi_test_call_end(call, CSGI_FINISH_OK, out);
}

int
csgi_test_client_request(struct csgi_test_client *client, const struct csgi_test_request *rq,
                         struct csgi_test_response **out)
{
    if (out)
        *out = NULL;
    if (!client)
        return CSGI_EINVAL;
    return csgi_test_client_request_app(client, client->app, client->app_state, rq, out);
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

/*
 * A mount as the client keeps it: "" for the root, else "/x" (trailing
 * slashes dropped); otherwise csgi-server's rules (csgi__mount_valid: no
 * space, '%', "//"...). NULL when invalid.
 */
static char *
tc_mount_dup(const char *mount)
{
    size_t n = strlen(mount);
    char *m;

    while (n && mount[n - 1] == '/')
        n--; /* "/app/" is "/app", as the API always allowed */
    m = tc_strndup(mount, n);
    if (m && n && !csgi__mount_valid(m)) {
        free(m);
        return NULL;
    }
    return m;
}

static struct csgi_test_client *
tc_client_alloc(const char *mount, char *err, size_t err_len)
{
    struct csgi_test_client *c = calloc(1, sizeof(*c));

    if (!c) {
        tc_errf(err, err_len, "out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&c->log_lock, NULL) != 0) {
        tc_errf(err, err_len, "pthread_mutex_init() failed");
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->wake_lock, NULL);
    pthread_cond_init(&c->wake_cond, NULL);
    c->mount = tc_mount_dup(mount);
    if (!c->mount) {
        tc_errf(err, err_len, "mount \"%s\" is invalid (want \"\" or \"/prefix\")", mount);
        pthread_cond_destroy(&c->wake_cond);
        pthread_mutex_destroy(&c->wake_lock);
        pthread_mutex_destroy(&c->log_lock);
        free(c);
        return NULL;
    }
    c->api.version = CSGI_HOST_API_VERSION;
    c->api.size = (uint32_t)sizeof(c->api);
    c->api.abi_version = CSGI_ABI_VERSION;
    c->api.spec_version = CSGI_VERSION_HEX;
    c->api.server_software = "csgi-testclient/" CSGI_VERSION_STRING;
    c->api.ctx = c;
    c->api.log = tc_host_log;
    c->api.vlog = tc_host_vlog;
    c->api.alloc = tc_host_alloc;
    c->api.header_get = tc_host_header_get;
    c->api.body_from_fd = tc_host_body_from_fd;
    c->api.on_finished = tc_host_on_finished;
    c->api.request_url = tc_host_request_url;
    c->api.get_extension = tc_host_get_extension;
    c->api.body_from_buffer = tc_host_body_from_buffer;
    c->api.resume = tc_host_resume;
    c->api.timer = tc_host_timer;
    c->api.watch_fd = tc_host_watch_fd;
    c->api.stopping = tc_host_stopping;
    c->api.upgrade = tc_host_upgrade;
    c->api.upgrade_write = tc_host_upgrade_write;
    c->api.upgrade_close = tc_host_upgrade_close;
    csgi__request_id_prefix(c->id_prefix);
    return c;
}

static int
tc_client_set_config(struct csgi_test_client *c, const struct csgi_kv *config, size_t n_config,
                     char *err, size_t err_len)
{
    if (n_config && !config) {
        tc_errf(err, err_len, "config is NULL with %zu items", n_config);
        return CSGI_EINVAL;
    }
    if (!n_config)
        return CSGI_OK;
    c->config = calloc(n_config, sizeof(*c->config));
    c->config_strings = calloc(2 * n_config, sizeof(*c->config_strings));
    if (!c->config || !c->config_strings) {
        tc_errf(err, err_len, "out of memory");
        return CSGI_ENOMEM;
    }
    c->n_config_strings = 2 * n_config;
    for (size_t i = 0; i < n_config; i++) {
        char *key, *value;

        if (!config[i].key || !config[i].value) {
            tc_errf(err, err_len, "config item %zu has a NULL key or value", i);
            return CSGI_EINVAL;
        }
        key = tc_strndup(config[i].key, strlen(config[i].key));
        value = tc_strndup(config[i].value, strlen(config[i].value));
        c->config_strings[2 * i] = key;
        c->config_strings[2 * i + 1] = value;
        if (!key || !value) {
            tc_errf(err, err_len, "out of memory");
            return CSGI_ENOMEM;
        }
        c->config[i].key = key;
        c->config[i].value = value;
    }
    c->n_config = n_config;
    return CSGI_OK;
}

static int
tc_check_plugin(const struct csgi_plugin *p, char *err, size_t err_len)
{
    char why[256];
    int rc = csgi__descriptor_check(p, why, sizeof(why));

    if (rc < 0)
        tc_errf(err, err_len, "%s", why);
    return rc;
}

/* Check the descriptor, set the mount and config, run init_worker(). */
static struct csgi_test_client *
tc_client_start(const struct csgi_plugin *plugin, void *dl, const char *mount,
                const struct csgi_kv *config, size_t n_config, char *err, size_t err_len)
{
    struct csgi_test_client *c;
    char default_mount[72];
    int rc;

    rc = tc_check_plugin(plugin, err, err_len);
    if (rc < 0)
        return NULL;
    if (!mount) {
        mount = plugin->mount;
        if (!mount) {
            snprintf(default_mount, sizeof(default_mount), "/%s", plugin->name);
            mount = default_mount;
        }
    }
    c = tc_client_alloc(mount, err, err_len);
    if (!c)
        return NULL;
    c->dl = dl;
    c->plugin = plugin;
    c->flags = plugin->flags;
    c->app = plugin->call;
    rc = tc_client_set_config(c, config, n_config, err, err_len);
    if (rc < 0)
        goto error_free;
    if (plugin->init_worker) {
        rc = plugin->init_worker(&c->api, c->config, c->n_config, &c->plugin_state);
        c->app_state = c->plugin_state;
        if (rc < 0) {
            tc_errf(err, err_len, "plugin \"%s\": init_worker failed: %s (%s)", plugin->name,
                    csgi_strerror(rc), csgi_err_name(rc));
            goto error_free;
        }
    }
    c->worker_started = 1;
    return c;

error_free:
    /* The caller still owns the handle on failure. */
    c->dl = NULL;
    csgi_test_client_free(c);
    return NULL;
}

struct csgi_test_client *
csgi_test_client_new(const struct csgi_plugin *plugin, const char *mount,
                     const struct csgi_kv *config, size_t n_config, char *err, size_t err_len)
{
    if (!plugin) {
        tc_errf(err, err_len, "plugin is NULL");
        return NULL;
    }
    return tc_client_start(plugin, NULL, mount, config, n_config, err, err_len);
}

/*
 * dlopen() @p path as a server does and call its entry point. Returns 0 with
 * *handle and *plugin set, or a negative code with @p err set.
 */
static int
tc_dlopen_plugin(const char *path, void **handle, const struct csgi_plugin **plugin, char *err,
                 size_t err_len)
{
    csgi_plugin_entry_fn entry;
    void *sym;

    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*handle) {
        const char *msg = dlerror();
        tc_errf(err, err_len, "dlopen(\"%s\") failed: %s", path, msg ? msg : "unknown error");
        return CSGI_ENOENT;
    }
    dlerror();
    sym = dlsym(*handle, CSGI_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        tc_errf(err, err_len, "\"%s\": entry symbol \"%s\" not found", path,
                CSGI_PLUGIN_ENTRY_SYMBOL);
        goto error_dlclose;
    }
    /* POSIX guarantees a data pointer from dlsym() can hold a function. */
    _Static_assert(sizeof(entry) == sizeof(sym), "function and data pointers differ in size");
    memcpy(&entry, &sym, sizeof(entry));
    *plugin = entry(CSGI_ABI_VERSION);
    if (!*plugin) {
        tc_errf(err, err_len, "\"%s\": %s(%u) returned NULL: the plugin refuses host ABI %u", path,
                CSGI_PLUGIN_ENTRY_SYMBOL, (unsigned)CSGI_ABI_VERSION, (unsigned)CSGI_ABI_VERSION);
        goto error_dlclose;
    }
    return CSGI_OK;

error_dlclose:
    dlclose(*handle);
    *handle = NULL;
    return CSGI_EABI;
}

struct csgi_test_client *
csgi_test_client_open(const char *path, const char *mount, const struct csgi_kv *config,
                      size_t n_config, char *err, size_t err_len)
{
    struct csgi_test_client *c;
    const struct csgi_plugin *plugin;
    char why[256];
    void *handle;

    if (!path) {
        tc_errf(err, err_len, "path is NULL");
        return NULL;
    }
    if (tc_dlopen_plugin(path, &handle, &plugin, err, err_len) < 0)
        return NULL;
    why[0] = '\0';
    c = tc_client_start(plugin, handle, mount, config, n_config, why, sizeof(why));
    if (!c) {
        tc_errf(err, err_len, "\"%s\": %s", path, why);
        dlclose(handle);
        return NULL;
    }
    return c;
}

struct csgi_test_client *
csgi_test_client_new_app(csgi_app_fn app, void *state, const char *mount, char *err, size_t err_len)
{
    struct csgi_test_client *c;

    if (!app) {
        tc_errf(err, err_len, "app is NULL");
        return NULL;
    }
    c = tc_client_alloc(mount ? mount : "", err, err_len);
    if (!c)
        return NULL;
    c->app = app;
    c->app_state = state;
    c->flags = CSGI_PLUGIN_THREADSAFE | CSGI_PLUGIN_WAITS;
    return c;
}

/* exit_worker() of a wrapping layer's middleware, its config, dlclose(). */
static void
tc_layer_release(struct tc_layer *l)
{
    /* A layer that failed to start already ran exit_worker() when it should. */
    if (l->wrapped && l->mw->exit_worker)
        l->mw->exit_worker(l->mw_state);
    for (size_t i = 0; i < l->n_config; i++) {
        free((char *)l->config[i].key);
        free((char *)l->config[i].value);
    }
    free(l->config);
    if (l->dl && !getenv("CSGI_NO_DLCLOSE"))
        dlclose(l->dl);
    memset(l, 0, sizeof(*l));
}

/* Copy n config items into l. Returns 0, CSGI_EINVAL or CSGI_ENOMEM (err set). */
static int
tc_layer_config(struct tc_layer *l, const struct csgi_kv *config, size_t n, char *err,
                size_t err_len)
{
    if (n && !config) {
        tc_errf(err, err_len, "config is NULL with %zu items", n);
        return CSGI_EINVAL;
    }
    l->config = calloc(n ? n : 1, sizeof(*l->config));
    if (!l->config)
        goto error_nomem;
    for (size_t i = 0; i < n; i++) {
        if (!config[i].key || !config[i].value) {
            tc_errf(err, err_len, "config item %zu has a NULL key or value", i);
            return CSGI_EINVAL;
        }
        l->config[i].key = tc_strndup(config[i].key, strlen(config[i].key));
        l->config[i].value = tc_strndup(config[i].value, strlen(config[i].value));
        l->n_config++;
        if (!l->config[i].key || !l->config[i].value)
            goto error_nomem;
    }
    return CSGI_OK;

error_nomem:
    tc_errf(err, err_len, "out of memory");
    return CSGI_ENOMEM;
}

/* Check, init and wrap with middleware @p mw; @p l is the new layer slot (zeroed). */
static int
tc_layer_start(struct csgi_test_client *c, struct tc_layer *l, const struct csgi_plugin *mw,
               const struct csgi_kv *config, size_t n_config, char *err, size_t err_len)
{
    const char *inner = c->plugin ? c->plugin->name : "app";
    char why[512];
    int rc;

    rc = tc_check_plugin(mw, err, err_len);
    if (rc < 0)
        return rc;
    if (!csgi__plugin_is_middleware(mw)) {
        tc_errf(err, err_len, "plugin \"%s\" is not a middleware plugin (no wrap function)",
                mw->name);
        return CSGI_EINVAL;
    }
    l->mw = mw;
    rc = tc_layer_config(l, config, n_config, err, err_len);
    if (rc < 0)
        return rc;
    if (mw->init_worker) {
        rc = mw->init_worker(&c->api, l->config, l->n_config, &l->mw_state);
        if (rc < 0) {
            tc_errf(err, err_len, "plugin \"%s\": init_worker failed: %s (%s)", mw->name,
                    csgi_strerror(rc), csgi_err_name(rc));
            l->mw_state = NULL;
            return rc;
        }
    }
    rc = csgi__wrap(mw, l->mw_state, inner, &c->app, &c->app_state, &l->instance, why, sizeof(why));
    if (rc < 0) {
        tc_errf(err, err_len, "%s", why);
        if (mw->exit_worker)
            mw->exit_worker(l->mw_state);
        l->mw_state = NULL;
        return rc;
    }
    c->flags = csgi__wrapped_flags(c->flags, mw->flags);
    l->wrapped = 1;
    return CSGI_OK;
}

int
csgi_test_client_wrap(struct csgi_test_client *client, const struct csgi_plugin *mw,
                      const struct csgi_kv *config, size_t n_config, char *err, size_t err_len)
{
    struct tc_layer *v, *l;
    int rc;

    if (!client || !mw) {
        tc_errf(err, err_len, "client or middleware is NULL");
        return CSGI_EINVAL;
    }
    v = realloc(client->layers, (client->n_layers + 1) * sizeof(*v));
    if (!v) {
        tc_errf(err, err_len, "out of memory");
        return CSGI_ENOMEM;
    }
    client->layers = v;
    l = &v[client->n_layers];
    memset(l, 0, sizeof(*l));
    rc = tc_layer_start(client, l, mw, config, n_config, err, err_len);
    if (rc < 0) {
        tc_layer_release(l);
        return rc;
    }
    client->n_layers++;
    return CSGI_OK;
}

int
csgi_test_client_wrap_open(struct csgi_test_client *client, const char *path,
                           const struct csgi_kv *config, size_t n_config, char *err, size_t err_len)
{
    const struct csgi_plugin *mw;
    char why[512];
    void *handle;
    int rc;

    if (!client || !path) {
        tc_errf(err, err_len, "client or path is NULL");
        return CSGI_EINVAL;
    }
    rc = tc_dlopen_plugin(path, &handle, &mw, why, sizeof(why));
    if (rc < 0) {
        tc_errf(err, err_len, "%s", why);
        return rc;
    }
    rc = csgi_test_client_wrap(client, mw, config, n_config, why, sizeof(why));
    if (rc < 0) {
        tc_errf(err, err_len, "\"%s\": %s", path, why);
        dlclose(handle);
        return rc;
    }
    client->layers[client->n_layers - 1].dl = handle;
    return CSGI_OK;
}

void
csgi_test_client_free(struct csgi_test_client *client)
{
    if (!client)
        return;
    /* Every layer comes off before any exit_worker(), as in csgi-server. */
    for (size_t i = client->n_layers; i-- > 0;) {
        struct tc_layer *l = &client->layers[i];
        if (l->wrapped)
            csgi__unwrap(l->mw, l->mw_state, l->instance);
    }
    if (client->worker_started && client->plugin && client->plugin->exit_worker)
        client->plugin->exit_worker(client->plugin_state);
    for (size_t i = client->n_layers; i-- > 0;)
        tc_layer_release(&client->layers[i]);
    free(client->layers);
    if (client->dl && !getenv("CSGI_NO_DLCLOSE"))
        dlclose(client->dl);
    for (size_t i = 0; i < client->n_logs; i++)
        free(client->logs[i]);
    free(client->logs);
    for (size_t i = 0; i < client->n_config_strings; i++)
        free(client->config_strings[i]);
    free(client->config_strings);
    free(client->trusted);
    free(client->config);
    free(client->mount);
    pthread_cond_destroy(&client->wake_cond);
    pthread_mutex_destroy(&client->wake_lock);
    pthread_mutex_destroy(&client->log_lock);
    free(client);
}

int
csgi_test_client_trust_proxy(struct csgi_test_client *client, const char *cidr)
{
    struct csgi__cidr c, *grown;

    if (!client || !cidr || csgi__cidr_parse(cidr, &c) < 0)
        return CSGI_EINVAL;
    grown = realloc(client->trusted, (client->n_trusted + 1) * sizeof(*grown));
    if (!grown)
        return CSGI_ENOMEM;
    grown[client->n_trusted++] = c;
    client->trusted = grown;
    return CSGI_OK;
}

const struct csgi_host_api *
csgi_test_client_host_api(const struct csgi_test_client *client)
{
    return client ? &client->api : NULL;
}

void
csgi_test_client_app(const struct csgi_test_client *client, csgi_app_fn *app, void **state)
{
    if (app)
        *app = client ? client->app : NULL;
    if (state)
        *state = client ? client->app_state : NULL;
}

size_t
csgi_test_client_log_count(const struct csgi_test_client *client)
{
    return client ? client->n_logs : 0;
}

const struct csgi_test_log *
csgi_test_client_log_at(const struct csgi_test_client *client, size_t index)
{
    if (!client || index >= client->n_logs)
        return NULL;
    return &client->logs[index]->pub;
}

const char *
csgi_test_client_find_log(const struct csgi_test_client *client, const char *needle)
{
    if (!client || !needle)
        return NULL;
    for (size_t i = 0; i < client->n_logs; i++) {
        if (strstr(client->logs[i]->text, needle))
            return client->logs[i]->text;
    }
    return NULL;
}
