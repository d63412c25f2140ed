/*
 * Request-target and header-value parsing (see target.h). These functions
 * see attacker-controlled bytes first; they are written to be fuzzed.
 */
#include <string.h>

#include "csgi_internal.h"
#include "target.h"

/* VCHAR only: the request line has no spaces or controls inside the target. */
static int
target_bytes_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f || c == '#')
            return 0;
    }
    return 1;
}

static int
ieq_prefix(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);

    return n >= l && csgi__str_ieq(p, l, lit);
}

int
csgi__target_parse(const char *raw, size_t len, char *out_buf, struct csgi__target *t, const char **why)
{
    const char *p = raw, *q, *end = raw + len;
    long dlen;

    memset(t, 0, sizeof(*t));
    t->query = "";
    if (len == 0) {
        *why = "empty request-target";
        return -1;
    }
    if (!target_bytes_ok(raw, len)) {
        *why = "request-target has a control, space or '#' byte";
        return -1;
    }
    if (len == 1 && raw[0] == '*') {
        t->asterisk = 1;
        out_buf[0] = '*';
        out_buf[1] = '\0';
        t->path = out_buf;
        t->path_len = 1;
        t->raw_path = raw;
        t->raw_path_len = 1;
        return 0;
    }
    if (raw[0] != '/') {
        size_t skip;
        const char *auth;

        if (ieq_prefix(raw, len, "http://"))
            skip = 7;
        else if (ieq_prefix(raw, len, "https://"))
            skip = 8;
        else {
            *why = "request-target is not origin-form, absolute-form or \"*\"";
            return -1;
        }
        auth = raw + skip;
        p = auth;
        while (p < end && *p != '/' && *p != '?')
            p++;
        t->host = auth;
        t->host_len = (size_t)(p - auth);
        if (t->host_len == 0 || memchr(auth, '@', t->host_len)) {
            *why = "absolute-form authority is empty or has userinfo";
            return -1;
        }
        {
            size_t pl;
            const char *port;
            if (csgi__host_parse(auth, t->host_len, &t->host_name_len, &port, &pl) < 0) {
                *why = "absolute-form authority is invalid";
                return -1;
            }
        }
        if (p == end || *p == '?') {
            /* "http://h" or "http://h?q": the path is "/". */
            static const char slash[] = "/";
            t->raw_path = slash;
            t->raw_path_len = 1;
            if (p < end) {
                t->query = p + 1;
                t->query_len = (size_t)(end - p - 1);
            }
            out_buf[0] = '/';
            out_buf[1] = '\0';
            t->path = out_buf;
            t->path_len = 1;
            return 0;
        }
    }
    q = memchr(p, '?', (size_t)(end - p));
    t->raw_path = p;
    t->raw_path_len = q ? (size_t)(q - p) : (size_t)(end - p);
    if (q) {
        t->query = q + 1;
        t->query_len = (size_t)(end - q - 1);
    }
    dlen = csgi__percent_decode(t->raw_path, t->raw_path_len, out_buf);
    if (dlen < 0) {
        *why = "path has a bad %-escape or an encoded NUL";
        return -1;
    }
    t->path = out_buf;
    t->path_len = (size_t)dlen;
    return 0;
}

static int
is_unreserved_or_sub(unsigned char c)
{
    /* RFC 3986 reg-name bytes: unreserved, sub-delims and '%' (pct-encoded). */
    static const unsigned char ok[256] = {
        ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1,
        ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1, ['%'] = 1,
    };

    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return ok[c];
}

int
csgi__host_parse(const char *p, size_t n, size_t *name_len, const char **port, size_t *port_len)
{
    size_t i = 0, nl;

    if (n == 0)
        return -1;
    if (p[0] == '[') {
        /* IP-literal: hex digits, ':' and '.', closed by ']'. */
        for (i = 1; i < n && p[i] != ']'; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!(csgi__hexval(c) >= 0 || c == ':' || c == '.'))
                return -1;
        }
        if (i >= n || i == 1)
            return -1;
        i++;
    } else {
        for (; i < n && p[i] != ':'; i++) {
            if (!is_unreserved_or_sub((unsigned char)p[i]))
                return -1;
        }
        if (i == 0)
            return -1;
    }
    nl = i;
    *name_len = nl;
    *port = NULL;
    *port_len = 0;
    if (i == n)
        return 0;
    if (p[i] != ':')
        return -1;
    i++;
    if (n - i > 5)
        return -1;
    {
        long v = 0;
        for (size_t j = i; j < n; j++) {
            if (p[j] < '0' || p[j] > '9')
                return -1;
            v = v * 10 + (p[j] - '0');
        }
        if (v > 65535)
            return -1;
    }
    *port = p + i;
    *port_len = n - i;
    return 0;
}

int
csgi__te_check(const char *p, size_t n)
{
    size_t i = 0, chunked = 0;
    int last_chunked = 0;

    if (csgi__str_ieq(p, n, "chunked"))
        return 0;
    /* A list of codings: tokens separated by commas with optional whitespace around them. */
    if (n == 0 || p[0] == ' ' || p[0] == '\t' || p[n - 1] == ' ' || p[n - 1] == '\t')
        return 400;
    while (i < n) {
        size_t start, end;

        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        start = i;
        while (i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\t')
            i++;
        end = i;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i < n && p[i] != ',')
            return 400;
        if (i < n && ++i == n)
            return 400; /* a trailing comma */
        if (!csgi__is_token(p + start, end - start))
            return 400;
        last_chunked = csgi__str_ieq(p + start, end - start, "chunked");
        chunked += (size_t)last_chunked;
    }
    /*
     * "chunked" twice is malformed (RFC 9112 6.1), and so is a list whose final
     * coding is not "chunked": the body length cannot be known (6.3). A list
     * that ends in "chunked" after codings we do not implement ("gzip,
     * chunked") is well formed: 501.
     */
    if (chunked != 1 || !last_chunked)
        return 400;
    return 501;
}

int
csgi__method_known(const char *m, size_t n)
{
    static const char *const methods[] = {"GET",     "HEAD",  "POST",  "PUT", "DELETE",
                                          "OPTIONS", "PATCH", "TRACE", NULL};

    for (size_t i = 0; methods[i]; i++) {
        if (strlen(methods[i]) == n && memcmp(methods[i], m, n) == 0)
            return 1;
    }
    return 0;
}
