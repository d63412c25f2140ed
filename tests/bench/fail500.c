/*
 * fail500: a fixture plugin for the benchmark harness's smoke test. Every
 * request under its mount gets "500 Internal Server Error" with a short body,
 * so that the harness must count (and flag) the errors.
 *
 *   GET /fail500[/anything]  -> 500 "failing on purpose\n"
 */
#include <csgi/csgi.h>

static const char fail_text[] = "failing on purpose\n";

static int
fail_write_body(const struct csgi_responder *resp)
{
    const struct csgi_header headers[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
    };
    const struct csgi_str reason = {NULL, 0};
    int rc = resp->start_response(resp->ctx, 500, reason, headers, 1, NULL);

    if (rc < 0)
        return rc;
    return resp->write(resp->ctx, fail_text, sizeof(fail_text) - 1);
}

static int
fail_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    (void)state;
    (void)env;
    (void)out;
    return fail_write_body(resp);
}

static const struct csgi_plugin fail_plugin = {
    CSGI_PLUGIN_HEADER,        .name = "fail500",
    .plugin_version = "1.0.0", .description = "answers 500 to everything (bench fixture)",
    .mount = "/fail500",       .flags = CSGI_PLUGIN_THREADSAFE,
    .call = fail_call,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &fail_plugin;
}
