/*
 * libcsgi-util: string helpers and header lookup (see csgi/util.h).
 */
#include <string.h>

#include "csgi/util.h"

static int
ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int
ieq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return 0;
    }
    return 1;
}

struct csgi_str
csgi_str_c(const char *s)
{
    struct csgi_str r = {s, s ? strlen(s) : 0};
    return r;
}

int
csgi_str_eq(struct csgi_str a, struct csgi_str b)
{
    if (a.len != b.len)
        return 0;
    return a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0;
}

int
csgi_str_ieq(struct csgi_str a, struct csgi_str b)
{
    return a.len == b.len && ieq_n(a.ptr, b.ptr, a.len);
}

int
csgi_str_eq_c(struct csgi_str a, const char *b)
{
    return b && csgi_str_eq(a, csgi_str_c(b));
}

int
csgi_str_ieq_c(struct csgi_str a, const char *b)
{
    return b && csgi_str_ieq(a, csgi_str_c(b));
}

int
csgi_str_has_prefix(struct csgi_str s, struct csgi_str prefix)
{
    if (prefix.len > s.len)
        return 0;
    return prefix.len == 0 || memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

int
csgi_str_has_iprefix(struct csgi_str s, struct csgi_str prefix)
{
    return prefix.len <= s.len && ieq_n(s.ptr, prefix.ptr, prefix.len);
}

struct csgi_str
csgi_str_trim(struct csgi_str s)
{
    while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

int
csgi_str_to_i64(struct csgi_str s, int64_t *out)
{
    uint64_t v = 0, limit = (uint64_t)INT64_MAX;
    size_t i = 0;
    int neg = 0;

    if (!out || (!s.ptr && s.len > 0))
        return CSGI_EINVAL;
    if (s.len > 0 && s.ptr[0] == '-') {
        neg = 1;
        limit += 1;
        i = 1;
    }
    if (i == s.len)
        return CSGI_EINVAL;
    for (; i < s.len; i++) {
        unsigned d = (unsigned)((unsigned char)s.ptr[i] - '0');
        if (d > 9)
            return CSGI_EINVAL;
        if (v > (limit - d) / 10)
            return CSGI_EINVAL;
        v = v * 10 + d;
    }
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

int
csgi_headers_find(const struct csgi_header *headers, size_t n, struct csgi_str name, size_t index,
                  struct csgi_str *value)
{
    if (!value || !name.ptr || (!headers && n > 0))
        return CSGI_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!csgi_str_ieq(headers[i].name, name))
            continue;
        if (index == 0) {
            *value = headers[i].value;
            return 0;
        }
        index--;
    }
    return CSGI_ENOENT;
}

int
csgi_header_get(const struct csgi_environ *env, const char *name, size_t index,
                struct csgi_str *value)
{
    if (!env || !name)
        return CSGI_EINVAL;
    return csgi_headers_find(env->headers, env->n_headers, csgi_str_c(name), index, value);
}
