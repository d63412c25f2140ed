/*
 * The host services of csgi-server's HTTP front: the csgi_host_api table
 * handed to plugins, and the transport side of the host core (memory, log
 * lines, entering plugin code). See host_api.h.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <unistd.h>

#include "build_version.h"
#include "host_api.h"
#include "log.h"
#include "request.h"
#include "wait.h"

/* ------------------------------------------------------------------ */
/* Host API                                                            */
/* ------------------------------------------------------------------ */

static void __attribute__((format(printf, 3, 0)))
api_vlog(void *ctx, int level, const char *fmt, va_list ap)
{
    (void)ctx;
    if (level < CSGI_LOG_ERROR)
        level = CSGI_LOG_ERROR;
    if (level > CSGI_LOG_TRACE)
        level = CSGI_LOG_TRACE;
    if (level <= srv_log_verbosity)
        srv__vlog(level, fmt, ap);
}

static void __attribute__((format(printf, 3, 4)))
api_log(void *ctx, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    api_vlog(ctx, level, fmt, ap);
    va_end(ap);
}

static void *
api_alloc(struct csgi_request *r, size_t n)
{
    if (!r)
        return NULL;
    return srv_arena_alloc(&r->arena, n);
}

static void *
core_alloc(void *ctx, size_t n)
{
    struct csgi_request *r = ctx;

    return srv_arena_alloc(&r->arena, n);
}

static int
api_body_from_fd(struct csgi_request *r, int fd, int64_t offset, int64_t count, uint32_t flags,
                 struct csgi_body *out)
{
    if (!r) {
        if (fd >= 0 && (flags & CSGI_FD_CLOSE))
            close(fd);
        return CSGI_EINVAL;
    }
    return csgi__body_from_fd(core_alloc, r, &r->file_bodies, fd, offset, count, flags, out);
}

static int
api_body_from_buffer(struct csgi_request *r, const void *data, size_t len, uint32_t flags,
                     struct csgi_body *out)
{
    if (!r)
        return CSGI_EINVAL;
    return csgi__body_from_buffer(core_alloc, r, data, len, flags, out);
}

static int
api_on_finished(struct csgi_request *r, csgi_finished_fn fn, void *arg)
{
    struct finished_cb *cb;

    if (!r || !fn)
        return CSGI_EINVAL;
    cb = srv_arena_alloc(&r->arena, sizeof(*cb));
    if (!cb)
        return CSGI_ENOMEM;
    cb->fn = fn;
    cb->arg = arg;
    cb->next = r->finished;
    r->finished = cb;
    return CSGI_OK;
}

static int
api_request_url(const struct csgi_environ *env, struct csgi_str *out)
{
    if (!env || !env->request)
        return CSGI_EINVAL;
    return csgi__request_url(env, core_alloc, env->request, out);
}

static const void *
api_get_extension(void *ctx, const char *name, uint32_t min_version)
{
    (void)ctx;
    (void)name;
    (void)min_version;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The transport side of the host core                                 */
/* ------------------------------------------------------------------ */

void
srv_errors_sink(void *ctx, int level, const char *msg, size_t len)
{
    struct csgi_request *r = ctx;

    srv_log(level, "plugin \"%s\" request %llu: %.*s", pname(r), (unsigned long long)r->id,
            (int)len, msg);
}

static void
core_log(void *ctx, int level, const char *plugin, const char *msg)
{
    struct csgi_request *r = ctx;

    srv_log(level, "plugin \"%s\" request %llu: %s", plugin, (unsigned long long)r->id, msg);
}

static void
core_app_enter(void *ctx, int on)
{
    struct csgi_request *r = ctx;

    if (on)
        plugin_lock(r->plugin);
    else
        plugin_unlock(r->plugin);
}

const struct csgi__host_ops srv_core_ops = {
    .alloc = core_alloc,
    .log = core_log,
    .app_enter = core_app_enter,
};

const struct csgi__host_ops srv_core_ops_threadsafe = {
    .alloc = core_alloc,
    .log = core_log,
};

void
srv_host_api_init(struct csgi_host_api *api, void *ctx)
{
    api->version = CSGI_HOST_API_VERSION;
    api->size = sizeof(*api);
    api->abi_version = CSGI_ABI_VERSION;
    api->spec_version = CSGI_VERSION_HEX;
    api->server_software = SRV_SERVER_SOFTWARE;
    api->ctx = ctx;
    api->log = api_log;
    api->vlog = api_vlog;
    api->alloc = api_alloc;
    api->header_get = csgi__header_get;
    api->body_from_fd = api_body_from_fd;
    api->on_finished = api_on_finished;
    api->request_url = api_request_url;
    api->get_extension = api_get_extension;
    api->body_from_buffer = api_body_from_buffer;
    api->resume = srv_wait_resume;
    api->timer = srv_wait_timer;
    api->watch_fd = srv_wait_watch_fd;
    api->stopping = srv_wait_stopping;
    api->upgrade = srv_upgrade_begin;
    api->upgrade_write = csgi__upgrade_write;
    api->upgrade_close = csgi__upgrade_close;
}
