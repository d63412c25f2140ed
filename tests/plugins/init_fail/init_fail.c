/*
 * init_fail: a fixture plugin whose init_worker always fails, to show that
 * the worker skips it (and that a reload bringing it in is rolled back).
 */
#include <csgi/csgi.h>

static int
init_fail_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
               void **state)
{
    (void)config;
    (void)n_config;
    (void)state;
    api->log(api->ctx, CSGI_LOG_ERROR, "init_fail: refusing to start on purpose");
    return CSGI_EIO;
}

static int
init_fail_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
               struct csgi_body *out)
{
    (void)state;
    (void)env;
    (void)resp;
    (void)out;
    return CSGI_EIO;
}

static const struct csgi_plugin init_fail_plugin = {
    CSGI_PLUGIN_HEADER,     .name = "init_fail",
    .plugin_version = "1",  .init_worker = init_fail_init,
    .call = init_fail_call,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &init_fail_plugin;
}
