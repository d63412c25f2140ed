/*
 * old_v1: a plugin built against the CSGI 1.0 headers as they were before
 * environ version 2 and host API version 2 (a frozen copy in csgi-1.0/,
 * never edited), to prove SPEC.md 5.5's "a newer server loads an older
 * plugin": it loads, init_worker() gets a host API whose version-1 part
 * works, and call() reads a version-1 environ as its header lays it out.
 *
 * GET or POST <mount>/env answers, from a body of its own (total_length
 * set): "env_version=N api_version=M env_size=S method=... path=...
 * content_length=... read=... host=H url=U\n", S being the environ size
 * this plugin was compiled with (256 on x86-64), H 1 when header_get()
 * found a Host field, U 1 when request_url() ends with the request's path
 * (transport-independent, for the differential suite).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <csgi/csgi.h>

#if CSGI_ENVIRON_VERSION != 1 || CSGI_HOST_API_VERSION != 1
#error "old_v1 must be built against the frozen CSGI 1.0 headers"
#endif

struct old_state {
    const struct csgi_host_api *api;
};

static struct old_state old_state;

struct one_chunk {
    const char *p;
    size_t len;
    int done;
};

static int
one_next(void *ctx, struct csgi_chunk *out)
{
    struct one_chunk *b = ctx;

    if (b->done)
        return CSGI_DONE;
    b->done = 1;
    out->ptr = b->p;
    out->len = b->len;
    return CSGI_OK;
}

static int
old_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
         void **state)
{
    (void)config;
    (void)n_config;
    old_state.api = api;
    *state = &old_state;
    return CSGI_OK;
}

static int
old_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    const struct old_state *st = state;
    const struct csgi_header h[] = {{CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")}};
    struct csgi_str host = {NULL, 0}, url = {NULL, 0}, reason = {NULL, 0};
    struct one_chunk *b = st->api->alloc(env->request, sizeof(*b));
    char *text = st->api->alloc(env->request, 1024);
    char buf[256];
    long long got = 0;
    int64_t n;
    int len, rc, host_rc, url_ok;

    if (!b || !text)
        return CSGI_ENOMEM;
    while ((n = env->input->read(env->input->ctx, buf, sizeof(buf))) > 0)
        got += n;
    host_rc = st->api->header_get(env, "host", 0, &host);
    if (st->api->request_url(env, &url) < 0)
        return CSGI_ENOMEM;
    url_ok =
        url.len > env->path_info.len && env->path_info.len &&
        memcmp(url.ptr + url.len - env->path_info.len, env->path_info.ptr, env->path_info.len) == 0;
    len = snprintf(text, 1024,
                   "env_version=%u api_version=%u env_size=%zu method=%.*s path=%.*s "
                   "content_length=%lld read=%lld host=%d url=%d\n",
                   (unsigned)env->version, (unsigned)st->api->version, sizeof(*env),
                   (int)env->request_method.len, env->request_method.ptr, (int)env->path_info.len,
                   env->path_info.ptr, (long long)env->content_length, got,
                   host_rc == CSGI_OK && host.len > 0, url_ok);
    if (len < 0 || len >= 1024)
        return CSGI_EIO;
    rc = resp->start_response(resp->ctx, 200, reason, h, 1, NULL);
    if (rc < 0)
        return rc;
    b->p = text;
    b->len = (size_t)len;
    b->done = 0;
    out->total_length = len;
    out->ctx = b;
    out->next = one_next;
    return CSGI_OK;
}

static const struct csgi_plugin old_plugin = {
    CSGI_PLUGIN_HEADER, .name = "old_v1",        .plugin_version = "1.0.0",
    .mount = "/old",    .init_worker = old_init, .call = old_call,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &old_plugin;
}
