/*
 * Request helpers shared by the two frameworks (see fw_common.h).
 */
#include <string.h>

#include "fw_common.h"

int
csgi__fw_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

int
csgi__fw_casecmp_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int d = csgi__fw_lower((unsigned char)a[i]) - csgi__fw_lower((unsigned char)b[i]);
        if (d)
            return d;
    }
    return 0;
}

int
csgi__fw_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = csgi__fw_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int
csgi__fw_parse_i64(const char *s, size_t len, int64_t *out)
{
    uint64_t v = 0, limit = (uint64_t)INT64_MAX;
    size_t i = 0;
    int neg = 0;

    if (len > 0 && s[0] == '-') {
        neg = 1;
        limit += 1;
        i = 1;
    }
    if (i == len)
        return -1;
    for (; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

/* Decode a query component ('+' is a space; a bad %-escape stays as it is). */
static size_t
qs_decode(char *dst, const char *src, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (src[i] == '+') {
            dst[o++] = ' ';
        } else if (src[i] == '%' && i + 2 < len &&
                   (hi = csgi__fw_hex((unsigned char)src[i + 1])) >= 0 &&
                   (lo = csgi__fw_hex((unsigned char)src[i + 2])) >= 0) {
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    return o;
}

/* Compare a raw (encoded) query key with a decoded name without allocating. */
static int
qs_key_eq(const char *raw, size_t len, const char *name)
{
    size_t j = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)raw[i], hi, lo;
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < len && (hi = csgi__fw_hex((unsigned char)raw[i + 1])) >= 0 &&
                   (lo = csgi__fw_hex((unsigned char)raw[i + 2])) >= 0) {
            c = hi * 16 + lo;
            i += 2;
        }
        if (name[j] == '\0' || (unsigned char)name[j] != c)
            return 0;
        j++;
    }
    return name[j] == '\0';
}

int
csgi__fw_query(const struct csgi_host_api *api, const struct csgi_environ *env, const char *name,
               struct csgi_str *value)
{
    const char *p, *end;

    if (!api || !env || !name || !value)
        return CSGI_EINVAL;
    p = env->query_string.ptr;
    end = p ? p + env->query_string.len : p;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;

        if (qs_key_eq(p, (size_t)(ke - p), name)) {
            const char *v = eq ? eq + 1 : pe;
            char *buf = api->alloc(env->request, (size_t)(pe - v) + 1);
            if (!buf)
                return CSGI_ENOMEM;
            value->len = qs_decode(buf, v, (size_t)(pe - v));
            buf[value->len] = '\0';
            value->ptr = buf;
            return 0;
        }
        p = pe + 1;
    }
    return CSGI_ENOENT;
}

int
csgi__fw_read_body(const struct csgi_host_api *api, const struct csgi_environ *env,
                   struct csgi_str *body)
{
    const struct csgi_input *in = env->input;
    size_t cap = env->content_length >= 0 ? (size_t)env->content_length : 4096, len = 0;
    char *buf = api->alloc(env->request, cap + 1);

    if (!buf)
        return CSGI_ENOMEM;
    for (;;) {
        int64_t n;
        if (len == cap) {
            /* Only a chunked body (no Content-Length) gets here with data left. */
            char *nb;
            if (env->content_length >= 0)
                break;
            nb = api->alloc(env->request, cap * 2 + 1);
            if (!nb)
                return CSGI_ENOMEM;
            memcpy(nb, buf, len);
            buf = nb;
            cap *= 2;
        }
        n = in->read(in->ctx, buf + len, cap - len);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    body->ptr = buf;
    body->len = len;
    return 0;
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
    return len == 16 && csgi__fw_casecmp_n(ct.ptr, "application/json", 16) == 0;
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
