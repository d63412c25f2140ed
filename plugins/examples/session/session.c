/*
 * session: a cookie session on csgi/util.h (issue 15). The session lives in
 * the cookie, signed with SipHash-2-4 under the deployer's key, so every
 * worker (and every server generation) reads the same session and a client
 * cannot change it: "session=VISITS.NAME.TAG".
 *
 *   GET  /session       -> 200 {"visits": N, "name": "..."}, N counting this
 *                          visit; Set-Cookie with the new session
 *   POST /session/name  -> form field name=[A-Za-z0-9_-]{0,32}: stored, 303 to /session
 *   POST /session/clear -> 204, the cookie expired
 *
 * A cookie with a bad signature is a new session (and a warning on the error
 * stream). --set session.key=<32 hex digits> is required.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <csgi/csgi.h>
#include <csgi/util.h>

struct sess {
    uint64_t k0, k1;
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v)                                                                                \
    do {                                                                                           \
        v[0] += v[1], v[1] = ROTL(v[1], 13) ^ v[0], v[0] = ROTL(v[0], 32);                         \
        v[2] += v[3], v[3] = ROTL(v[3], 16) ^ v[2];                                                \
        v[0] += v[3], v[3] = ROTL(v[3], 21) ^ v[0];                                                \
        v[2] += v[1], v[1] = ROTL(v[1], 17) ^ v[2], v[2] = ROTL(v[2], 32);                         \
    } while (0)

/* SipHash-2-4 (Aumasson and Bernstein) of [p, p+n) under the key. */
static uint64_t
siphash(const struct sess *s, const unsigned char *p, size_t n)
{
    uint64_t v[4] = {s->k0 ^ 0x736f6d6570736575ull, s->k1 ^ 0x646f72616e646f6dull,
                     s->k0 ^ 0x6c7967656e657261ull, s->k1 ^ 0x7465646279746573ull};
    uint64_t m;
    size_t i = 0;

    for (;; i += 8) {
        m = i + 8 <= n ? 0 : (uint64_t)n << 56; /* the last word carries the length */
        for (size_t j = 0; j < 8 && i + j < n; j++)
            m |= (uint64_t)p[i + j] << (8 * j);
        v[3] ^= m;
        SIPROUND(v);
        SIPROUND(v);
        v[0] ^= m;
        if (i + 8 > n)
            break;
    }
    v[2] ^= 0xff;
    for (int r = 0; r < 4; r++)
        SIPROUND(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* Parse "VISITS.NAME.TAG" and check the tag. @return 1 when valid (visits, name set), else 0. */
static int
session_read(const struct sess *s, struct csgi_str c, long *visits, char name[33])
{
    const char *dot1 = memchr(c.ptr, '.', c.len), *dot2;
    char tag[17];
    int64_t v;

    if (!dot1 || c.len < 17 || c.ptr[c.len - 17] != '.')
        return 0;
    dot2 = c.ptr + c.len - 17;
    snprintf(tag, sizeof(tag), "%016llx",
             (unsigned long long)siphash(s, (const unsigned char *)c.ptr, (size_t)(dot2 - c.ptr)));
    if (dot2 < dot1 || dot2 - dot1 - 1 > 32 || memcmp(tag, dot2 + 1, 16) != 0 ||
        csgi_str_to_i64((struct csgi_str){c.ptr, (size_t)(dot1 - c.ptr)}, &v) != 0 || v < 0)
        return 0;
    *visits = (long)v;
    snprintf(name, 33, "%.*s", (int)(dot2 - dot1 - 1), dot1 + 1);
    return 1;
}

/* The Set-Cookie header for a session (or, with @p clear, the one that expires it). */
static int
session_cookie(const struct sess *s, const struct csgi_environ *env, long visits, const char *name,
               int clear, struct csgi_header *out)
{
    char value[80];
    int n = snprintf(value, sizeof(value), "%ld.%s", visits, name);
    struct csgi_cookie c = {.name = CSGI_STR_INIT("session"),
                            .path = CSGI_STR_INIT("/session"),
                            .flags = CSGI_COOKIE_HTTP_ONLY | (clear ? CSGI_COOKIE_MAX_AGE : 0),
                            .same_site = CSGI_SAME_SITE_LAX};

    snprintf(value + n, sizeof(value) - (size_t)n, ".%016llx",
             (unsigned long long)siphash(s, (const unsigned char *)value, (size_t)n));
    c.value = csgi_str_c(clear ? "" : value);
    return csgi_set_cookie_header(env->host, env, &c, out);
}

static int
name_ok(struct csgi_str v)
{
    if (v.len > 32)
        return 0;
    for (size_t i = 0; i < v.len; i++) {
        char ch = v.ptr[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static int
session_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
             struct csgi_body *out)
{
    static const struct csgi_str none = {NULL, 0};
    const struct sess *s = state;
    struct csgi_header h[2] = {{CSGI_STR_INIT("Location"), CSGI_STR_INIT("/session")}};
    struct csgi_str c, v;
    char name[33] = "";
    long visits = 0;
    int post = csgi_str_eq_c(env->request_method, "POST"), rc;
    cJSON *o;

    if (csgi_cookie_get(env, "session", &c) == 0 && !session_read(s, c, &visits, name)) {
        env->errors->write(env->errors->ctx, "session: bad signature, new session\n", 36);
        visits = 0;
    }
    if (post && csgi_str_eq_c(env->path_info, "/name")) {
        rc = csgi_read_body(env->host, env, 4096, &c);
        if (rc == 0)
            rc = csgi_form_get(env->host, env, c, "name", &v);
        if (rc < 0 || !name_ok(v))
            return resp->start_response(resp->ctx, 400, none, NULL, 0, NULL);
        snprintf(name, sizeof(name), "%s", v.ptr);
        rc = session_cookie(s, env, visits, name, 0, &h[1]);
        return rc ? rc : resp->start_response(resp->ctx, 303, none, h, 2, NULL);
    }
    if (post && csgi_str_eq_c(env->path_info, "/clear")) {
        rc = session_cookie(s, env, 0, "", 1, &h[1]);
        return rc ? rc : resp->start_response(resp->ctx, 204, none, &h[1], 1, NULL);
    }
    if (post || env->path_info.len)
        return resp->start_response(resp->ctx, post ? 405 : 404, none, NULL, 0, NULL);
    rc = session_cookie(s, env, ++visits, name, 0, &h[1]);
    o = cJSON_CreateObject();
    if (rc == 0 && (!o || !cJSON_AddNumberToObject(o, "visits", (double)visits) ||
                    !cJSON_AddStringToObject(o, "name", name)))
        rc = CSGI_ENOMEM;
    if (rc == 0)
        rc = csgi_json_respond(env->host, env, resp, 200, &h[1], 1, o, out);
    cJSON_Delete(o);
    return rc;
}

static int
session_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n, void **state)
{
    struct sess *s = calloc(1, sizeof(*s));
    char k0[17] = "", k1[17] = "";

    for (size_t i = 0; s && i < n; i++) {
        if (strcmp(config[i].key, "key") == 0 && strlen(config[i].value) == 32 &&
            strspn(config[i].value, "0123456789abcdefABCDEF") == 32) {
            memcpy(k0, config[i].value, 16);
            memcpy(k1, config[i].value + 16, 16);
        }
    }
    if (!s || !k0[0]) {
        api->log(api->ctx, CSGI_LOG_ERROR, "session: --set session.key=<32 hex digits> is needed");
        free(s);
        return s ? CSGI_EINVAL : CSGI_ENOMEM;
    }
    s->k0 = strtoull(k0, NULL, 16);
    s->k1 = strtoull(k1, NULL, 16);
    *state = s;
    return CSGI_OK;
}

static const struct csgi_plugin session_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "session",
    .plugin_version = "1.0.0",
    .description = "a signed cookie session",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = session_init,
    .call = session_call,
    .exit_worker = free,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &session_plugin;
}
