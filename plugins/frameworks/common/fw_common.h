/*
 * Request helpers shared by libcsgi-resource and libcsgi-route. Internal:
 * compiled into each library with hidden visibility, never installed, not
 * part of either library's ABI.
 */
#ifndef CSGI_FW_COMMON_H
#define CSGI_FW_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <csgi/csgi.h>

/* ASCII case-insensitive compare of n bytes: 0 when equal (csgi_str_ieq). */
int csgi__fw_casecmp_n(const char *a, const char *b, size_t n);
/*
 * Parse a decimal int64 (csgi_str_to_i64): an optional '-', then one or more
 * digits, nothing else. Returns 0, or -1 when the text is not such a number or out of range.
 */
int csgi__fw_parse_i64(const char *s, size_t len, int64_t *out);

/*
 * csgi_query_get(): look up query parameter @p name (compared decoded) and
 * store its decoded value, NUL-terminated, in request memory from api->alloc.
 * Returns 0, CSGI_ENOENT, CSGI_ENOMEM or CSGI_EINVAL.
 */
int csgi__fw_query(const struct csgi_host_api *api, const struct csgi_environ *env,
                   const char *name, struct csgi_str *value);

/*
 * Read the whole request body into request memory (NUL-terminated), with
 * csgi_read_body() and no limit of its own. Returns 0, CSGI_ENOMEM or the
 * input stream's negative code.
 */
int csgi__fw_read_body(const struct csgi_host_api *api, const struct csgi_environ *env,
                       struct csgi_str *body);

/* True when the Content-Type is application/json (parameters, case and spaces ignored). */
int csgi__fw_is_json(struct csgi_str content_type);

/*
 * Parse exactly one JSON value followed only by whitespace. Returns the value
 * (caller owns; release with cJSON_Delete()) or NULL when malformed.
 */
cJSON *csgi__fw_parse_json(struct csgi_str body);

#endif /* CSGI_FW_COMMON_H */
