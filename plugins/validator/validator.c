/*
 * The validator as a middleware plugin: put csgi/validator.h in front of any
 * installed plugin at deploy time, with no recompiling:
 *
 *     csgi-server --plugins DIR --wrap shop=validator --set validator.mode=fail-fast
 *
 * Configuration (--set validator.KEY=VALUE):
 *   mode    report (default: violations are logged, requests behave as
 *           without the validator) or fail-fast (the request fails with
 *           CSGI_EAPP at the first violation);
 *   strict  a comma-separated list of content-type, headers, head, method,
 *           or all: the strict rules of csgi/validator.h to turn on.
 * Violations go to the error log as "csgi validator: <rule id>: <details>".
 */
#include <stdlib.h>
#include <string.h>

#include <csgi/csgi.h>
#include <csgi/validator.h>

struct vmw {
    const struct csgi_host_api *api;
    struct csgi_validator_options opts;
};

static const struct {
    const char *name;
    uint32_t flag;
} strict_names[] = {
    {"content-type", CSGI_VALIDATOR_STRICT_CONTENT_TYPE},
    {"headers", CSGI_VALIDATOR_STRICT_HEADERS},
    {"head", CSGI_VALIDATOR_STRICT_HEAD},
    {"method", CSGI_VALIDATOR_STRICT_METHOD},
    {"all", CSGI_VALIDATOR_STRICT},
};

/* Add the strict flags a comma-separated list names. Returns 0 or CSGI_EINVAL. */
static int
parse_strict(const struct csgi_host_api *api, const char *list, uint32_t *flags)
{
    while (*list) {
        size_t len = strcspn(list, ","), i;

        for (i = 0; i < sizeof(strict_names) / sizeof(strict_names[0]); i++) {
            if (strlen(strict_names[i].name) == len &&
                strncmp(strict_names[i].name, list, len) == 0)
                break;
        }
        if (i == sizeof(strict_names) / sizeof(strict_names[0])) {
            api->log(api->ctx, CSGI_LOG_ERROR,
                     "validator: strict \"%.*s\" is not content-type, headers, head, method or all",
                     (int)len, list);
            return CSGI_EINVAL;
        }
        *flags |= strict_names[i].flag;
        list += len + (list[len] == ',');
    }
    return CSGI_OK;
}

static int
vmw_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
         void **state)
{
    struct vmw *v = calloc(1, sizeof(*v));
    int rc = CSGI_OK;

    if (!v)
        return CSGI_ENOMEM;
    v->api = api;
    for (size_t i = 0; i < n_config && rc == CSGI_OK; i++) {
        const char *key = config[i].key, *value = config[i].value;

        if (strcmp(key, "mode") == 0 && strcmp(value, "fail-fast") == 0) {
            v->opts.flags |= CSGI_VALIDATOR_FAIL_FAST;
        } else if (strcmp(key, "mode") == 0 && strcmp(value, "report") != 0) {
            api->log(api->ctx, CSGI_LOG_ERROR, "validator: mode \"%s\" is not report or fail-fast",
                     value);
            rc = CSGI_EINVAL;
        } else if (strcmp(key, "strict") == 0) {
            rc = parse_strict(api, value, &v->opts.flags);
        } else if (strcmp(key, "mode") != 0) {
            api->log(api->ctx, CSGI_LOG_ERROR, "validator: unknown key \"%s\"", key);
            rc = CSGI_EINVAL;
        }
    }
    if (rc < 0) {
        free(v);
        return rc;
    }
    *state = v;
    return CSGI_OK;
}

static int
vmw_wrap(void *state, csgi_app_fn inner, void *inner_state, const char *inner_name,
         csgi_app_fn *app, void **app_state)
{
    struct vmw *v = state;
    struct csgi_validator *val = csgi_validator_new(v->api, inner, inner_state, &v->opts);

    if (!val)
        return CSGI_ENOMEM;
    v->api->log(v->api->ctx, CSGI_LOG_INFO, "validator: checking \"%s\"%s", inner_name,
                (v->opts.flags & CSGI_VALIDATOR_FAIL_FAST) ? " (fail-fast)" : "");
    *app = csgi_validator_call;
    *app_state = val;
    return CSGI_OK;
}

static void
vmw_unwrap(void *state, void *app_state)
{
    (void)state;
    csgi_validator_free(app_state);
}

static void
vmw_exit(void *state)
{
    free(state);
}

static const struct csgi_plugin validator_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "validator",
    .plugin_version = "1.0.0",
    .description = "the CSGI validator in front of any plugin (--wrap NAME=validator)",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = vmw_init,
    .exit_worker = vmw_exit,
    .wrap = vmw_wrap,
    .unwrap = vmw_unwrap,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &validator_plugin;
}
