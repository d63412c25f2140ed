/*
 * hostsvc: a fixture plugin without init_worker(), for the host services of
 * environ version 2 and host API version 2 (SPEC.md 4.2 and 5.1). It reaches
 * every service through env->host, so it proves that a plugin needs no
 * init_worker() just to allocate.
 *
 * Endpoints (under its mount):
 *   /id      "<request_id> <pid>\n", the body from the arena (alloc()) as a
 *            one-chunk body copied by body_from_buffer();
 *   /length  "content_length=N input_length=M read=K\n", K the bytes input
 *            yielded (the body read to its end);
 *   /static  a static text as a borrowed one-chunk body (CSGI_BUF_BORROW);
 *   /shape   "id_len=N hex=H" (H 1 when the id is all [0-9a-f]), for the
 *            differential suite, where ids differ but their form must not.
 * Any other path answers 404 from the plugin. An environ or host API older
 * than version 2 answers 501 (a newer plugin on an older server, SPEC 5.5).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <csgi/csgi.h>

static const char static_text[] = "static one-chunk body\n";

static int
path_is(const struct csgi_environ *env, const char *p)
{
    return env->path_info.len == strlen(p) &&
           memcmp(env->path_info.ptr, p, env->path_info.len) == 0;
}

/* Answer @p status with text/plain and the @p len bytes at @p text as a one-chunk body. */
static int
reply(struct csgi_environ *env, const struct csgi_responder *resp, struct csgi_body *out,
      int status, const char *text, size_t len, uint32_t flags)
{
    static const struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
    };
    struct csgi_str reason = {NULL, 0};
    int rc = resp->start_response(resp->ctx, status, reason, h, 1, NULL);

    if (rc < 0)
        return rc;
    return env->host->body_from_buffer(env->request, text, len, flags, out);
}

/* Format into the request's arena, through env->host (no init_worker). */
static int reply_fmt(struct csgi_environ *env, const struct csgi_responder *resp,
                     struct csgi_body *out, const char *fmt, ...) CSGI_PRINTF(4, 5);

static int
reply_fmt(struct csgi_environ *env, const struct csgi_responder *resp, struct csgi_body *out,
          const char *fmt, ...)
{
    char *p = env->host->alloc(env->request, 256);
    va_list ap;
    int n;

    if (!p)
        return CSGI_ENOMEM;
    va_start(ap, fmt);
    n = vsnprintf(p, 256, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= 256)
        return CSGI_EIO;
    return reply(env, resp, out, 200, p, (size_t)n, 0);
}

static int
read_all(const struct csgi_environ *env, long long *total)
{
    char buf[4096];
    int64_t n;

    *total = 0;
    while ((n = env->input->read(env->input->ctx, buf, sizeof(buf))) > 0)
        *total += n;
    return n < 0 ? (int)n : CSGI_OK;
}

static int
hostsvc_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
             struct csgi_body *out)
{
    long long got;
    int rc;
    size_t hex = 0;

    (void)state;
    if (!CSGI_HAS(env, 2) || !CSGI_HAS(env->host, 2))
        return resp->start_response(resp->ctx, 501, (struct csgi_str){NULL, 0}, NULL, 0, NULL);
    if (path_is(env, "/id"))
        return reply_fmt(env, resp, out, "%.*s %d\n", (int)env->request_id.len, env->request_id.ptr,
                         (int)getpid());
    if (path_is(env, "/length")) {
        rc = read_all(env, &got);
        if (rc < 0)
            return rc;
        return reply_fmt(env, resp, out, "content_length=%lld input_length=%lld read=%lld\n",
                         (long long)env->content_length, (long long)env->input_length, got);
    }
    if (path_is(env, "/static"))
        return reply(env, resp, out, 200, static_text, sizeof(static_text) - 1, CSGI_BUF_BORROW);
    if (path_is(env, "/shape")) {
        while (hex < env->request_id.len && strchr("0123456789abcdef", env->request_id.ptr[hex]))
            hex++;
        return reply_fmt(env, resp, out, "id_len=%zu hex=%d\n", env->request_id.len,
                         env->request_id.len > 0 && hex == env->request_id.len);
    }
    return reply(env, resp, out, 404, "no such endpoint\n", 17, CSGI_BUF_BORROW);
}

static const struct csgi_plugin hostsvc_plugin = {
    CSGI_PLUGIN_HEADER,    .name = "hostsvc",
    .plugin_version = "1", .description = "host services without init_worker",
    .mount = "/hostsvc",   .flags = CSGI_PLUGIN_THREADSAFE,
    .call = hostsvc_call,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &hostsvc_plugin;
}
