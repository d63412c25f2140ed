/*
 * echo: the request back as JSON, written as an out-of-tree author would, on the
 * public headers, libcsgi-util and cJSON alone. GET|HEAD|POST /echo[/...][?query]
 * -> 200 {"method", "script_name", "path_info", "query": [[key, value], ...]
 * (decoded, in order), "headers": [[name, value], ...], "request_id", "body",
 * "body_length", "remote_addr", "url_scheme", "server_name"}. No init_worker():
 * env->host (environ version 2) allocates. The body is read whole, up to
 * ECHO_BODY_MAX bytes (413 beyond); bytes after a NUL are cut from "body".
 */
#include <cjson/cJSON.h>
#include <csgi/csgi.h>
#include <csgi/util.h>

#define ECHO_BODY_MAX  (64 * 1024)
#define ECHO_URL_FLAGS (CSGI_URL_PLUS_SPACE | CSGI_URL_LENIENT | CSGI_URL_NO_NUL)

/* Append [a, b] to @p arr. @return 1, or 0 when out of memory. */
static int
echo_pair(cJSON *arr, const char *a, const char *b)
{
    const char *const ab[2] = {a, b};

    return cJSON_AddItemToArray(arr, cJSON_CreateStringArray(ab, 2));
}

/* Decode @p raw into request memory. @return the string, or NULL. */
static const char *
echo_decode(const struct csgi_environ *env, struct csgi_str raw, int *rc)
{
    char *dst = env->host->alloc(env->request, raw.len + 1);

    *rc = dst ? csgi_url_decode(raw, ECHO_URL_FLAGS, dst, raw.len + 1, NULL) : CSGI_ENOMEM;
    return *rc == 0 ? dst : NULL;
}

/* Fill @p root from @p env and @p body. @return 0, CSGI_EINVAL (bad query), CSGI_ENOMEM. */
static int
echo_fill(cJSON *root, const struct csgi_environ *env, struct csgi_str body)
{
    cJSON *query = cJSON_AddArrayToObject(root, "query");
    cJSON *headers = cJSON_AddArrayToObject(root, "headers");
    struct csgi_query_iter it;
    struct csgi_str k, v;
    int rc = 0;

    if (!query || !headers)
        return CSGI_ENOMEM;
    csgi_query_iter_init(&it, env->query_string);
    while (rc == 0 && csgi_query_next(&it, &k, &v) == 1) {
        const char *key = echo_decode(env, k, &rc), *value = key ? echo_decode(env, v, &rc) : NULL;

        if (value && !echo_pair(query, key, value))
            rc = CSGI_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < env->n_headers; i++) {
        if (!echo_pair(headers, env->headers[i].name.ptr, env->headers[i].value.ptr))
            rc = CSGI_ENOMEM;
    }
    if (rc == 0 && (!cJSON_AddStringToObject(root, "method", env->request_method.ptr) ||
                    !cJSON_AddStringToObject(root, "script_name", env->script_name.ptr) ||
                    !cJSON_AddStringToObject(root, "path_info", env->path_info.ptr) ||
                    !cJSON_AddStringToObject(root, "request_id", env->request_id.ptr) ||
                    !cJSON_AddStringToObject(root, "body", body.ptr) ||
                    !cJSON_AddNumberToObject(root, "body_length", (double)body.len) ||
                    !cJSON_AddStringToObject(root, "remote_addr", env->remote_addr.ptr) ||
                    !cJSON_AddStringToObject(root, "url_scheme", env->url_scheme.ptr) ||
                    !cJSON_AddStringToObject(root, "server_name", env->server_name.ptr)))
        rc = CSGI_ENOMEM;
    return rc;
}

static int
echo_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    static const struct csgi_header allow[] = {
        {CSGI_STR_INIT("Allow"), CSGI_STR_INIT("GET, HEAD, POST")}};
    struct csgi_str body = {NULL, 0}, m = env->request_method;
    const char *err = NULL;
    cJSON *root;
    int rc, status = 200;

    (void)state;
    if (!CSGI_HAS(env, 2) || !env->host)
        return CSGI_ENOTSUP; /* a CSGI 1.0 server: no env->host */
    root = cJSON_CreateObject();
    if (!csgi_str_eq_c(m, "GET") && !csgi_str_eq_c(m, "HEAD") && !csgi_str_eq_c(m, "POST"))
        status = 405, err = "method not allowed";
    else if ((rc = csgi_read_body(env->host, env, ECHO_BODY_MAX, &body)) == CSGI_ETOOBIG)
        status = 413, err = "body too large";
    else if (rc == 0 && (rc = echo_fill(root, env, body)) == CSGI_EINVAL)
        status = 400, err = "bad query string";
    if (err) {
        cJSON_Delete(root);
        root = cJSON_CreateObject();
        rc = cJSON_AddStringToObject(root, "error", err) ? 0 : CSGI_ENOMEM;
    }
    if (rc == 0)
        rc = csgi_json_respond(env->host, env, resp, status, allow, status == 405, root, out);
    cJSON_Delete(root);
    return rc;
}

static const struct csgi_plugin echo_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "echo",
    .plugin_version = "1.0.0",
    .description = "the request back as JSON (method, query, headers, body)",
    .mount = "/echo",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .call = echo_call,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &echo_plugin;
}
