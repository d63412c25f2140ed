/*
 * Request-target and header-value parsing (see target.h). These functions
 * see attacker-controlled bytes first; they are written to be fuzzed.
 */
#include <string.h>

#include "csgi_internal.h"
#include "target.h"

/*
 * Request-target bytes, one lookup each. B: never in a target (controls,
 * space, DEL, non-ASCII, '#': the request line carries VCHAR only). S: ends
 * a run of path bytes that are copied as they are ('%' escapes, '?').
 */
enum { B = 1, S = 2 };

static const unsigned char tclass[256] = {
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0x0_ */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0x1_ */
    B, 0, 0, B, 0, S, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x2_ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, S, /* 0x3_ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x4_ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x5_ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x6_ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, B, /* 0x7_ */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0x8_ */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0x9_ */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0xa_ */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0xb_ */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0xc_ */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0xd_ */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0xe_ */
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, /* 0xf_ */
};

/* VCHAR only: the request line has no spaces or controls inside the target. */
static int
target_bytes_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (tclass[(unsigned char)p[i]] & B)
            return 0;
    }
    return 1;
}

/*
 * The common origin-form target ("/path" or "/path?query", no %-escape in
 * the path), in one pass that checks and copies. Returns 0 when it did the
 * whole parse, -1 when the general parse must run (it then decides, with
 * its reasons, in its order).
 */
static int
origin_fast(const char *raw, size_t len, char *out_buf, struct csgi__target *t)
{
    const unsigned char *u = (const unsigned char *)raw;
    size_t i = 0, j;

    while (i < len && !tclass[u[i]]) {
        out_buf[i] = raw[i];
        i++;
    }
    if (i < len && u[i] != '?')
        return -1;
    for (j = i + 1; j < len; j++) {
        if (tclass[u[j]] & B)
            return -1;
    }
    out_buf[i] = '\0';
    t->path = out_buf;
    t->path_len = i;
    t->raw_path = raw;
    t->raw_path_len = i;
    if (i < len) {
        t->query = raw + i + 1;
        t->query_len = len - i - 1;
    }
    return 0;
}

static int
ieq_prefix(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);

    return n >= l && csgi__str_ieq(p, l, lit);
}

int
csgi__target_parse(const char *raw, size_t len, char *out_buf, struct csgi__target *t,
                   const char **why)
{
    const char *p = raw, *q, *end = raw + len;
    long dlen;

    memset(t, 0, sizeof(*t));
    t->query = "";
    if (len == 0) {
        *why = "empty request-target";
        return -1;
    }
    if (raw[0] == '/' && origin_fast(raw, len, out_buf, t) == 0)
        return 0;
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

/*
 * Host bytes. H_REG: RFC 3986 reg-name (unreserved, sub-delims and '%' of
 * pct-encoded). H_IP6: inside an IP-literal's brackets (hex digits, ':', '.').
 */
enum { H_REG = 1, H_IP6 = 2 };

static const unsigned char host_class[256] = {
    ['!'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1,
    ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 3, ['0'] = 3,  ['1'] = 3, ['2'] = 3, ['3'] = 3,
    ['4'] = 3, ['5'] = 3, ['6'] = 3, ['7'] = 3, ['8'] = 3,  ['9'] = 3, [':'] = 2, [';'] = 1,
    ['='] = 1, ['A'] = 3, ['B'] = 3, ['C'] = 3, ['D'] = 3,  ['E'] = 3, ['F'] = 3, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,  ['M'] = 1, ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,  ['U'] = 1, ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['_'] = 1, ['a'] = 3,  ['b'] = 3, ['c'] = 3, ['d'] = 3,
    ['e'] = 3, ['f'] = 3, ['g'] = 1, ['h'] = 1, ['i'] = 1,  ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1,  ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,  ['z'] = 1, ['~'] = 1,
};

int
csgi__host_parse(const char *p, size_t n, size_t *name_len, const char **port, size_t *port_len)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    unsigned v = 0;

    if (n == 0)
        return -1;
    if (p[0] == '[') {
        /* IP-literal: hex digits, ':' and '.', closed by ']'. */
        for (i = 1; i < n && p[i] != ']'; i++) {
            if (!(host_class[u[i]] & H_IP6))
                return -1;
        }
        if (i >= n || i == 1)
            return -1;
        i++;
    } else {
        /* Four lookups per branch, then byte by byte to the end of the name. */
        while (i + 4 <= n && (host_class[u[i]] & host_class[u[i + 1]] & host_class[u[i + 2]] &
                              host_class[u[i + 3]] & H_REG))
            i += 4;
        while (i < n && (host_class[u[i]] & H_REG))
            i++;
        if (i == 0 || (i < n && p[i] != ':'))
            return -1;
    }
    *name_len = i;
    *port = NULL;
    *port_len = 0;
    if (i == n)
        return 0;
    if (p[i] != ':')
        return -1;
    i++;
    if (n - i > 5)
        return -1;
    for (size_t j = i; j < n; j++) {
        unsigned d = (unsigned)u[j] - '0';
        if (d > 9)
            return -1;
        v = v * 10 + d;
    }
    if (v > 65535)
        return -1;
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
    /* Length first, then one fixed-size compare. */
    switch (n) {
    case 3:
        return memcmp(m, "GET", 3) == 0 || memcmp(m, "PUT", 3) == 0;
    case 4:
        return memcmp(m, "HEAD", 4) == 0 || memcmp(m, "POST", 4) == 0;
    case 5:
        return memcmp(m, "PATCH", 5) == 0 || memcmp(m, "TRACE", 5) == 0;
    case 6:
        return memcmp(m, "DELETE", 6) == 0;
    case 7:
        return memcmp(m, "OPTIONS", 7) == 0;
    default:
        return 0;
    }
}
