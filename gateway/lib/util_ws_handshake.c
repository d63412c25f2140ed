/*
 * libcsgi-util: the WebSocket opening handshake, server side (RFC 6455 4.2;
 * see csgi/websocket.h). SHA-1 and base64 come from nettle, the crypto
 * library under GnuTLS, which csgi-server links already.
 */
#include <string.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include "csgi/util.h"
#include "csgi/websocket.h"

/*
 * Call @p fn on each comma-separated, OWS-trimmed, non-empty element of
 * every @p name header, until it returns nonzero. Returns that value, or 0.
 */
static int
each_element(const struct csgi_environ *env, const char *name,
             int (*fn)(struct csgi_str elem, const void *arg), const void *arg)
{
    struct csgi_str v;

    for (size_t i = 0; csgi_header_get(env, name, i, &v) == 0; i++) {
        const char *p = v.ptr, *end = v.ptr + v.len;

        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            struct csgi_str elem = csgi_str_trim((struct csgi_str){p, (size_t)(e - p)});
            int r = elem.len > 0 ? fn(elem, arg) : 0;

            if (r)
                return r;
            p = comma ? comma + 1 : end;
        }
    }
    return 0;
}

static int
token_ieq(struct csgi_str elem, const void *token)
{
    return csgi_str_ieq_c(elem, token);
}

static int
token_eq(struct csgi_str elem, const void *token)
{
    return csgi_str_eq_c(elem, token);
}

/* The only value of @p name; CSGI_ENOENT when absent, CSGI_EINVAL when repeated. */
static int
single_header(const struct csgi_environ *env, const char *name, struct csgi_str *out)
{
    struct csgi_str extra;

    if (csgi_header_get(env, name, 0, out) < 0)
        return CSGI_ENOENT;
    if (csgi_header_get(env, name, 1, &extra) == 0)
        return CSGI_EINVAL;
    *out = csgi_str_trim(*out);
    return 0;
}

/* 1 for "HTTP/1.1" and later versions of the same form ("HTTP/x.y"). */
static int
http11_or_later(struct csgi_str proto)
{
    const char *p = proto.ptr;

    if (proto.len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '1' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9')
        return 0;
    return p[5] > '1' || p[7] >= '1';
}

/* 1 when @p key is base64 of 16 bytes: 22 alphabet characters and "==". */
static int
key_valid(struct csgi_str key)
{
    if (key.len != 24 || key.ptr[22] != '=' || key.ptr[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++) {
        char c = key.ptr[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return 0;
    }
    return 1;
}

int
csgi_ws_accept_key(struct csgi_str key, char accept[CSGI_WS_ACCEPT_SIZE])
{
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];

    if (!accept || (!key.ptr && key.len > 0))
        return CSGI_EINVAL;
    sha1_init(&ctx);
    sha1_update(&ctx, key.len, (const uint8_t *)key.ptr);
    sha1_update(&ctx, sizeof(CSGI_WS_GUID) - 1, (const uint8_t *)CSGI_WS_GUID);
    sha1_digest(&ctx, sizeof(digest), digest);
    base64_encode_raw(accept, sizeof(digest), digest);
    accept[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
    return 0;
}

int
csgi_ws_handshake_check(const struct csgi_environ *env, char accept[CSGI_WS_ACCEPT_SIZE])
{
    struct csgi_str version, key;
    int rc;

    if (!env)
        return CSGI_EINVAL;
    if (!each_element(env, "Upgrade", token_ieq, "websocket"))
        return 200;
    if (!csgi_str_eq_c(env->request_method, "GET") || !http11_or_later(env->server_protocol) ||
        !each_element(env, "Connection", token_ieq, "upgrade"))
        return 400;
    rc = single_header(env, "Sec-WebSocket-Version", &version);
    if (rc == CSGI_ENOENT)
        return 400;
    if (rc < 0 || !csgi_str_eq_c(version, "13"))
        return 426;
    if (single_header(env, "Sec-WebSocket-Key", &key) < 0 || !key_valid(key))
        return 400;
    if (accept)
        csgi_ws_accept_key(key, accept);
    return 101;
}

int
csgi_ws_select_protocol(const struct csgi_environ *env, const char *const *supported,
                        size_t n_supported, size_t *chosen)
{
    if (!env || !chosen || (!supported && n_supported > 0))
        return CSGI_EINVAL;
    for (size_t i = 0; i < n_supported; i++) {
        if (!supported[i])
            return CSGI_EINVAL;
        if (each_element(env, "Sec-WebSocket-Protocol", token_eq, supported[i])) {
            *chosen = i;
            return 0;
        }
    }
    return CSGI_ENOENT;
}
