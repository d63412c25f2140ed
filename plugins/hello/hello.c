/*
 * hello: the canonical CSGI plugin, written on the raw interface.
 *
 *   GET /hello          -> "Hello, world!\n"
 *   GET /hello/<name>   -> "Hello, <name>!\n"
 *
 * The greeting word comes from the deployer configuration key "greeting".
 */
#include <string.h>

#include <csgi/csgi.h>

/* A body of one chunk: the C form of returning [b"..."] in WSGI. */
struct hello_once {
    const char *text;
    size_t len;
    int done;
};

static int
hello_once_next(void *ctx, struct csgi_chunk *out)
{
    struct hello_once *once = ctx;

    if (once->done)
        return CSGI_DONE;
    once->done = 1;
    out->ptr = once->text;
    out->len = once->len;
    return CSGI_OK;
}

struct hello_state {
    const struct csgi_host_api *api;
    const char *greeting;
    size_t greeting_len;
};

static struct hello_state hello_singleton;

static int
hello_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
           void **state)
{
    hello_singleton.api = api;
    hello_singleton.greeting = "Hello";
    for (size_t i = 0; i < n_config; i++) {
        if (strcmp(config[i].key, "greeting") == 0)
            hello_singleton.greeting = config[i].value;
        else
            api->log(api->ctx, CSGI_LOG_WARN, "config key \"%s\" ignored", config[i].key);
    }
    /* Measured once here, not on every request. */
    hello_singleton.greeting_len = strlen(hello_singleton.greeting);
    *state = &hello_singleton;
    return CSGI_OK;
}

static int
hello_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    struct hello_state *st = state;
    const char *name = "world";
    size_t name_len = 5;
    struct hello_once *once;
    char *text;
    size_t glen = st->greeting_len, len;
    int rc;

    /* "/<name>" selects the name; anything deeper is not ours. */
    if (env->path_info.len > 1) {
        if (memchr(env->path_info.ptr + 1, '/', env->path_info.len - 1))
            return CSGI_EDECLINED;
        name = env->path_info.ptr + 1;
        name_len = env->path_info.len - 1;
    }

    len = glen + 2 + name_len + 2;
    once = st->api->alloc(env->request, sizeof(*once) + len);
    if (!once)
        return CSGI_ENOMEM;
    text = (char *)(once + 1);
    memcpy(text, st->greeting, glen);
    memcpy(text + glen, ", ", 2);
    memcpy(text + glen + 2, name, name_len);
    memcpy(text + glen + 2 + name_len, "!\n", 2);

    {
        const struct csgi_header headers[] = {
            {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain; charset=utf-8")},
        };
        const struct csgi_str reason = {NULL, 0};

        rc = resp->start_response(resp->ctx, 200, reason, headers, 1, NULL);
        if (rc < 0)
            return rc;
    }
    /* One chunk of known length: the server sends it with Content-Length. */
    once->text = text;
    once->len = len;
    once->done = 0;
    out->total_length = (int64_t)len;
    out->ctx = once;
    out->next = hello_once_next;
    return CSGI_OK;
}

static const struct csgi_plugin hello_plugin = {
    CSGI_PLUGIN_HEADER,        .name = "hello",
    .plugin_version = "1.0.0", .description = "hello world on the raw CSGI interface",
    .mount = "/hello",         .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = hello_init, .call = hello_call,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    /* The host compares ABI versions and names both if they differ. */
    (void)host_abi_version;
    return &hello_plugin;
}
