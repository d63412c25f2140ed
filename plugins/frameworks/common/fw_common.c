/*
 * Request helpers shared by the two frameworks (see fw_common.h). The parsing
 * itself lives in libcsgi-util (csgi/util.h), one rule in one place; these
 * wrappers keep the frameworks' internal names.
 */
#include <string.h>

#include <csgi/util.h>

#include "fw_common.h"

int
csgi__fw_casecmp_n(const char *a, const char *b, size_t n)
{
    struct csgi_str sa = {a, n}, sb = {b, n};
    return !csgi_str_ieq(sa, sb);
}

int
csgi__fw_parse_i64(const char *s, size_t len, int64_t *out)
{
    struct csgi_str str = {s, len};
    return csgi_str_to_i64(str, out) == 0 ? 0 : -1;
}

int
csgi__fw_query(const struct csgi_host_api *api, const struct csgi_environ *env, const char *name,
               struct csgi_str *value)
{
    return csgi_query_get(api, env, name, value);
}

int
csgi__fw_read_body(const struct csgi_host_api *api, const struct csgi_environ *env,
                   struct csgi_str *body)
{
    /* No limit of its own: the server bounds request bodies. */
    return csgi_read_body(api, env, SIZE_MAX, body);
}

int
csgi__fw_is_json(struct csgi_str ct)
{
    size_t len;

    if (!ct.ptr)
        return 0;
    len = ct.len;
    for (size_t i = 0; i < ct.len; i++) {
        if (ct.ptr[i] == ';') {
            len = i;
            break;
        }
    }
    while (len > 0 && (ct.ptr[len - 1] == ' ' || ct.ptr[len - 1] == '\t'))
        len--;
    return csgi_str_ieq((struct csgi_str){ct.ptr, len}, csgi_str_c("application/json"));
}

cJSON *
csgi__fw_parse_json(struct csgi_str body)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(body.ptr, body.len, &end, 0);

    if (v && end) {
        /* One value and nothing but whitespace after it. */
        while (end < body.ptr + body.len &&
               (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end != body.ptr + body.len) {
            cJSON_Delete(v);
            v = NULL;
        }
    }
    return v;
}
