/*
 * stream: a CSGI plugin whose body is produced in several chunks, of unknown
 * total length (so the server sends it chunked on HTTP/1.1).
 *
 *   GET /stream            -> 5 lines, one chunk each
 *   GET /stream?n=N        -> N lines (1..10000)
 *   GET /stream/write      -> the same lines sent through write()
 *
 * Configuration: "prefix" sets the text that starts each line ("line").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/csgi.h>

struct stream_state {
    const struct csgi_host_api *api;
    char prefix[64];
};

struct stream_iter {
    const struct stream_state *st;
    long line;
    long lines;
    char buf[96];
};

static struct stream_state stream_singleton;

static int
stream_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
            void **state)
{
    stream_singleton.api = api;
    snprintf(stream_singleton.prefix, sizeof(stream_singleton.prefix), "line");
    for (size_t i = 0; i < n_config; i++) {
        if (strcmp(config[i].key, "prefix") == 0) {
            snprintf(stream_singleton.prefix, sizeof(stream_singleton.prefix), "%s",
                     config[i].value);
        } else {
            api->log(api->ctx, CSGI_LOG_WARN, "config key \"%s\" ignored", config[i].key);
        }
    }
    *state = &stream_singleton;
    return CSGI_OK;
}

static int
stream_line(const struct stream_iter *it, char *buf, size_t size)
{
    return snprintf(buf, size, "%s %ld of %ld\n", it->st->prefix, it->line + 1, it->lines);
}

static int
stream_next(void *ctx, struct csgi_chunk *out)
{
    struct stream_iter *it = ctx;
    int n;

    if (it->line >= it->lines)
        return CSGI_DONE;
    n = stream_line(it, it->buf, sizeof(it->buf));
    it->line++;
    out->ptr = it->buf;
    out->len = (size_t)n;
    return CSGI_OK;
}

static long
stream_count(struct csgi_str query)
{
    long n = 5;

    /* Only "n=<digits>" is understood; anything else keeps the default. */
    if (query.len > 2 && memcmp(query.ptr, "n=", 2) == 0) {
        char *end;
        n = strtol(query.ptr + 2, &end, 10);
        if (end != query.ptr + query.len || n < 1 || n > 10000)
            return -1;
    }
    return n;
}

static int
stream_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
            struct csgi_body *out)
{
    const struct stream_state *st = state;
    const struct csgi_header headers[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain; charset=utf-8")},
    };
    const struct csgi_str no_reason = {NULL, 0};
    struct stream_iter *it;
    long lines = stream_count(env->query_string);
    int rc;

    if (lines < 0) {
        static const char msg[] = "n must be an integer in 1..10000\n";
        rc = resp->start_response(resp->ctx, 400, no_reason, headers, 1, NULL);
        if (rc < 0)
            return rc;
        return resp->write(resp->ctx, msg, sizeof(msg) - 1);
    }
    it = st->api->alloc(env->request, sizeof(*it));
    if (!it)
        return CSGI_ENOMEM;
    it->st = st;
    it->line = 0;
    it->lines = lines;

    if (env->path_info.len == 0 || (env->path_info.len == 1 && env->path_info.ptr[0] == '/')) {
        rc = resp->start_response(resp->ctx, 200, no_reason, headers, 1, NULL);
        if (rc < 0)
            return rc;
        out->ctx = it;
        out->next = stream_next;
        return CSGI_OK;
    }
    if (env->path_info.len == 6 && memcmp(env->path_info.ptr, "/write", 6) == 0) {
        rc = resp->start_response(resp->ctx, 200, no_reason, headers, 1, NULL);
        if (rc < 0)
            return rc;
        for (; it->line < it->lines; it->line++) {
            char buf[96];
            int n = stream_line(it, buf, sizeof(buf));
            rc = resp->write(resp->ctx, buf, (size_t)n);
            if (rc < 0)
                return rc;
        }
        return CSGI_OK;
    }
    return CSGI_EDECLINED;
}

static const struct csgi_plugin stream_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "stream",
    .plugin_version = "1.0.0",
    .description = "a body streamed in several chunks, and the same through write()",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = stream_init,
    .call = stream_call,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    /* The host compares ABI versions and names both if they differ. */
    (void)host_abi_version;
    return &stream_plugin;
}
