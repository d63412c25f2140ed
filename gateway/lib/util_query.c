/*
 * libcsgi-util: percent-decoding, query strings and urlencoded forms (see
 * csgi/util.h).
 */
#include <string.h>

#include "csgi/util.h"
#include "csgi_internal.h"

/*
 * Decode the byte at in[*i], advancing *i past what it used. Returns the byte
 * (0..255) or CSGI_EINVAL for a bad escape that the flags do not allow.
 */
static int
decode_one(const char *in, size_t len, size_t *i, unsigned flags)
{
    int c = (unsigned char)in[*i];

    *i += 1;
    if (c == '+' && (flags & CSGI_URL_PLUS_SPACE))
        return ' ';
    if (c != '%')
        return c;
    if (len - *i >= 2) {
        int hi = csgi__hexval((unsigned char)in[*i]), lo = csgi__hexval((unsigned char)in[*i + 1]);
        if (hi >= 0 && lo >= 0) {
            *i += 2;
            c = hi * 16 + lo;
            if (c == 0 && (flags & CSGI_URL_NO_NUL))
                return CSGI_EINVAL;
            return c;
        }
    }
    return (flags & CSGI_URL_LENIENT) ? '%' : CSGI_EINVAL;
}

int
csgi_url_decode(struct csgi_str in, unsigned flags, char *dst, size_t cap, size_t *len)
{
    size_t i = 0, o = 0;

    if ((!dst && cap > 0) || (!in.ptr && in.len > 0))
        return CSGI_EINVAL;
    while (i < in.len) {
        /* Read before writing: dst may alias in.ptr, and o never passes i. */
        int c = decode_one(in.ptr, in.len, &i, flags);
        if (c < 0)
            return c;
        if (o >= cap)
            return CSGI_ETOOBIG;
        dst[o++] = (char)c;
    }
    if (o < cap)
        dst[o] = '\0';
    if (len)
        *len = o;
    return 0;
}

int
csgi_url_decoded_eq(struct csgi_str raw, unsigned flags, struct csgi_str name)
{
    size_t i = 0, j = 0;

    if (!raw.ptr && raw.len > 0)
        return 0;
    while (i < raw.len) {
        int c = decode_one(raw.ptr, raw.len, &i, flags);
        if (c < 0 || j >= name.len || (unsigned char)name.ptr[j] != c)
            return 0;
        j++;
    }
    return j == name.len;
}

void
csgi_query_iter_init(struct csgi_query_iter *it, struct csgi_str data)
{
    if (!it)
        return;
    it->p = data.ptr;
    it->end = data.ptr ? data.ptr + data.len : NULL;
}

int
csgi_query_next(struct csgi_query_iter *it, struct csgi_str *key, struct csgi_str *value)
{
    if (!it || !key || !value)
        return CSGI_EINVAL;
    while (it->p && it->p < it->end) {
        const char *amp = memchr(it->p, '&', (size_t)(it->end - it->p));
        const char *pe = amp ? amp : it->end;
        const char *eq = memchr(it->p, '=', (size_t)(pe - it->p));
        const char *start = it->p;

        it->p = amp ? amp + 1 : it->end;
        if (pe == start)
            continue;
        key->ptr = start;
        key->len = (size_t)((eq ? eq : pe) - start);
        value->ptr = eq ? eq + 1 : pe;
        value->len = (size_t)(pe - value->ptr);
        return 1;
    }
    return 0;
}

int
csgi_query_find(struct csgi_str data, struct csgi_str name, size_t index, unsigned flags, char *dst,
                size_t cap, struct csgi_str *value)
{
    struct csgi_query_iter it;
    struct csgi_str k, v;

    if (!value || (!name.ptr && name.len > 0))
        return CSGI_EINVAL;
    csgi_query_iter_init(&it, data);
    while (csgi_query_next(&it, &k, &v) == 1) {
        size_t n;
        int rc;
        if (!csgi_url_decoded_eq(k, flags, name))
            continue;
        if (index-- > 0)
            continue;
        rc = csgi_url_decode(v, flags, dst, cap, &n);
        if (rc < 0)
            return rc;
        value->ptr = dst;
        value->len = n;
        return 0;
    }
    return CSGI_ENOENT;
}

/* Look up @p name in @p data as a form field, decoding into request memory. */
static int
form_get(const struct csgi_host_api *api, const struct csgi_environ *env, struct csgi_str data,
         const char *name, struct csgi_str *value)
{
    const unsigned flags = CSGI_URL_PLUS_SPACE | CSGI_URL_LENIENT;
    struct csgi_query_iter it;
    struct csgi_str k, v, want;

    if (!api || !api->alloc || !env || !name || !value)
        return CSGI_EINVAL;
    want = csgi_str_c(name);
    csgi_query_iter_init(&it, data);
    while (csgi_query_next(&it, &k, &v) == 1) {
        char *buf;
        size_t n = 0;
        if (!csgi_url_decoded_eq(k, flags, want))
            continue;
        buf = api->alloc(env->request, v.len + 1);
        if (!buf)
            return CSGI_ENOMEM;
        /* Cannot fail: lenient, and the buffer holds v.len + 1 bytes. */
        csgi_url_decode(v, flags, buf, v.len + 1, &n);
        value->ptr = buf;
        value->len = n;
        return 0;
    }
    return CSGI_ENOENT;
}

int
csgi_query_get(const struct csgi_host_api *api, const struct csgi_environ *env, const char *name,
               struct csgi_str *value)
{
    if (!env)
        return CSGI_EINVAL;
    return form_get(api, env, env->query_string, name, value);
}

int
csgi_form_get(const struct csgi_host_api *api, const struct csgi_environ *env, struct csgi_str form,
              const char *name, struct csgi_str *value)
{
    return form_get(api, env, form, name, value);
}
