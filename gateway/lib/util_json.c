/*
 * libcsgi-util: JSON responses over cJSON (see csgi/util.h).
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "csgi/util.h"

/* Most headers csgi_json_respond() passes on besides its Content-Type. */
#define JSON_MAX_HEADERS 64u

/* A one-chunk body over bytes in request memory. */
struct json_body {
    const char *ptr;
    size_t len;
    int sent;
};

static int
json_body_next(void *ctx, struct csgi_chunk *out)
{
    struct json_body *b = ctx;

    if (b->sent)
        return CSGI_DONE;
    b->sent = 1;
    out->ptr = b->ptr;
    out->len = b->len;
    return 0;
}

int
csgi_json_body(const struct csgi_host_api *api, const struct csgi_environ *env,
               const struct cJSON *root, struct csgi_body *out)
{
    struct json_body *b;
    char *text, *copy;
    size_t len;

    if (!api || !api->alloc || !env || !root || !out)
        return CSGI_EINVAL;
    text = cJSON_PrintUnformatted(root);
    if (!text)
        return CSGI_ENOMEM;
    len = strlen(text);
    /* Copied into the arena so that no close() is needed, whatever becomes of the body. */
    b = api->alloc(env->request, sizeof(*b));
    copy = b ? api->alloc(env->request, len + 1) : NULL;
    if (!copy) {
        cJSON_free(text);
        return CSGI_ENOMEM;
    }
    memcpy(copy, text, len + 1);
    cJSON_free(text);
    b->ptr = copy;
    b->len = len;
    b->sent = 0;
    memset(out, 0, sizeof(*out));
    out->version = CSGI_BODY_VERSION;
    out->total_length = (int64_t)len;
    out->ctx = b;
    out->next = json_body_next;
    return 0;
}

int
csgi_json_respond(const struct csgi_host_api *api, const struct csgi_environ *env,
                  const struct csgi_responder *resp, int status, const struct csgi_header *headers,
                  size_t n_headers, const struct cJSON *root, struct csgi_body *out)
{
    static const struct csgi_header content_type = {CSGI_STR_INIT("Content-Type"),
                                                    CSGI_STR_INIT("application/json")};
    struct csgi_header *all;
    struct csgi_body body;
    int rc;

    if (!resp || !resp->start_response || (!headers && n_headers > 0) || !out)
        return CSGI_EINVAL;
    if (n_headers > JSON_MAX_HEADERS)
        return CSGI_EHEADER;
    rc = csgi_json_body(api, env, root, &body);
    if (rc < 0)
        return rc;
    all = api->alloc(env->request, (n_headers + 1) * sizeof(*all));
    if (!all)
        return CSGI_ENOMEM;
    all[0] = content_type;
    if (n_headers > 0)
        memcpy(all + 1, headers, n_headers * sizeof(*all));
    rc = resp->start_response(resp->ctx, status, (struct csgi_str){NULL, 0}, all, n_headers + 1,
                              NULL);
    if (rc < 0)
        return rc;
    *out = body;
    return 0;
}
