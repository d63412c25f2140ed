/*
 * libcsgi-util: Cookie parsing and Set-Cookie building (see csgi/util.h).
 */
#include <stdio.h>
#include <string.h>

#include "csgi/util.h"

void
csgi_cookie_iter_init(struct csgi_cookie_iter *it, struct csgi_str header)
{
    if (!it)
        return;
    it->p = header.ptr;
    it->end = header.ptr ? header.ptr + header.len : NULL;
}

int
csgi_cookie_next(struct csgi_cookie_iter *it, struct csgi_str *name, struct csgi_str *value)
{
    if (!it || !name || !value)
        return CSGI_EINVAL;
    while (it->p && it->p < it->end) {
        const char *semi = memchr(it->p, ';', (size_t)(it->end - it->p));
        const char *pe = semi ? semi : it->end;
        const char *eq = memchr(it->p, '=', (size_t)(pe - it->p));
        struct csgi_str n, v;

        if (!eq) {
            it->p = semi ? semi + 1 : it->end;
            continue;
        }
        n.ptr = it->p;
        n.len = (size_t)(eq - it->p);
        v.ptr = eq + 1;
        v.len = (size_t)(pe - v.ptr);
        it->p = semi ? semi + 1 : it->end;
        n = csgi_str_trim(n);
        v = csgi_str_trim(v);
        if (n.len == 0)
            continue;
        if (v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"') {
            v.ptr++;
            v.len -= 2;
        }
        *name = n;
        *value = v;
        return 1;
    }
    return 0;
}

int
csgi_cookie_get(const struct csgi_environ *env, const char *name, struct csgi_str *value)
{
    struct csgi_str want = csgi_str_c(name), h;

    if (!env || !name || !value)
        return CSGI_EINVAL;
    for (size_t i = 0; csgi_header_get(env, "Cookie", i, &h) == 0; i++) {
        struct csgi_cookie_iter it;
        struct csgi_str n, v;
        csgi_cookie_iter_init(&it, h);
        while (csgi_cookie_next(&it, &n, &v) == 1) {
            if (csgi_str_eq(n, want)) {
                *value = v;
                return 0;
            }
        }
    }
    return CSGI_ENOENT;
}

/* RFC 9110 5.6.2 tchar. */
static int
is_tchar(int c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 6265 4.1.1 cookie-octet. */
static int
is_cookie_octet(int c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
           (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

/* An attribute value: visible ASCII or SP (or SP not allowed), never ';'. */
static int
attr_ok(struct csgi_str s, int allow_space)
{
    for (size_t i = 0; i < s.len; i++) {
        int c = (unsigned char)s.ptr[i];
        if (c == ';' || c > 0x7e || c < 0x20 || (c == ' ' && !allow_space))
            return 0;
    }
    return 1;
}

static int
cookie_check(const struct csgi_cookie *c)
{
    const unsigned known =
        CSGI_COOKIE_SECURE | CSGI_COOKIE_HTTP_ONLY | CSGI_COOKIE_MAX_AGE | CSGI_COOKIE_EXPIRES;

    if (c->name.len == 0 || !c->name.ptr || (c->value.len > 0 && !c->value.ptr))
        return CSGI_EHEADER;
    for (size_t i = 0; i < c->name.len; i++) {
        if (!is_tchar((unsigned char)c->name.ptr[i]))
            return CSGI_EHEADER;
    }
    for (size_t i = 0; i < c->value.len; i++) {
        if (!is_cookie_octet((unsigned char)c->value.ptr[i]))
            return CSGI_EHEADER;
    }
    if ((c->domain.len > 0 && (!c->domain.ptr || !attr_ok(c->domain, 0))) ||
        (c->path.len > 0 && (!c->path.ptr || !attr_ok(c->path, 1))))
        return CSGI_EHEADER;
    if ((c->flags & ~known) || c->same_site < CSGI_SAME_SITE_UNSET ||
        c->same_site > CSGI_SAME_SITE_NONE)
        return CSGI_EHEADER;
    if (c->same_site == CSGI_SAME_SITE_NONE && !(c->flags & CSGI_COOKIE_SECURE))
        return CSGI_EHEADER;
    if ((c->flags & CSGI_COOKIE_EXPIRES) &&
        (c->expires < CSGI_HTTP_DATE_MIN || c->expires > CSGI_HTTP_DATE_MAX))
        return CSGI_EHEADER;
    return 0;
}

/* An output cursor that records overflow instead of writing past the end. */
struct out {
    char *p;
    size_t cap, len;
};

static void
out_put(struct out *o, const char *s, size_t n)
{
    if (n > 0 && o->len < o->cap && n <= o->cap - o->len)
        memcpy(o->p + o->len, s, n);
    o->len = n > SIZE_MAX - o->len ? SIZE_MAX : o->len + n;
}

static void
out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

/* Check @p c and write it through @p o; o->len ends as the full length needed. */
static int
cookie_render(const struct csgi_cookie *c, struct out *o)
{
    static const char *const same_site[] = {"", "; SameSite=Lax", "; SameSite=Strict",
                                            "; SameSite=None"};
    char num[32];
    int rc = cookie_check(c);

    if (rc < 0)
        return rc;
    out_put(o, c->name.ptr, c->name.len);
    out_str(o, "=");
    out_put(o, c->value.ptr, c->value.len);
    if (c->domain.len > 0) {
        out_str(o, "; Domain=");
        out_put(o, c->domain.ptr, c->domain.len);
    }
    if (c->path.len > 0) {
        out_str(o, "; Path=");
        out_put(o, c->path.ptr, c->path.len);
    }
    if (c->flags & CSGI_COOKIE_MAX_AGE) {
        /* RFC 6265 5.2.2: zero or less means "expire now"; send 0 for all of them. */
        snprintf(num, sizeof(num), "%lld", (long long)(c->max_age > 0 ? c->max_age : 0));
        out_str(o, "; Max-Age=");
        out_str(o, num);
    }
    if (c->flags & CSGI_COOKIE_EXPIRES) {
        char date[CSGI_HTTP_DATE_LEN + 1];
        csgi_http_date_format(c->expires, date); /* the range was checked */
        out_str(o, "; Expires=");
        out_str(o, date);
    }
    if (c->flags & CSGI_COOKIE_SECURE)
        out_str(o, "; Secure");
    if (c->flags & CSGI_COOKIE_HTTP_ONLY)
        out_str(o, "; HttpOnly");
    out_str(o, same_site[c->same_site]);
    return 0;
}

int
csgi_set_cookie_format(const struct csgi_cookie *cookie, char *dst, size_t cap, size_t *len)
{
    struct out o = {dst, cap, 0};
    int rc;

    if (!cookie || !dst)
        return CSGI_EINVAL;
    rc = cookie_render(cookie, &o);
    if (rc < 0)
        return rc;
    if (o.len >= cap)
        return CSGI_ETOOBIG;
    dst[o.len] = '\0';
    if (len)
        *len = o.len;
    return 0;
}

int
csgi_set_cookie_header(const struct csgi_host_api *api, const struct csgi_environ *env,
                       const struct csgi_cookie *cookie, struct csgi_header *out)
{
    struct out measure = {NULL, 0, 0};
    char *buf;
    int rc;

    if (!api || !api->alloc || !env || !cookie || !out)
        return CSGI_EINVAL;
    rc = cookie_render(cookie, &measure);
    if (rc < 0)
        return rc;
    buf = api->alloc(env->request, measure.len + 1);
    if (!buf)
        return CSGI_ENOMEM;
    rc = csgi_set_cookie_format(cookie, buf, measure.len + 1, &measure.len);
    if (rc < 0)
        return rc;
    out->name.ptr = "Set-Cookie";
    out->name.len = 10;
    out->value.ptr = buf;
    out->value.len = measure.len;
    return 0;
}
