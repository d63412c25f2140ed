/*
 * Trusted proxies (see forwarded.h for the rule).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "csgi_internal.h"
#include "forwarded.h"
#include "target.h"

/* An address of family af (AF_INET, AF_INET6) from n bytes of text. 0 or -1. */
static int
ip_parse(int af, const char *p, size_t n, uint8_t out[16])
{
    char text[CSGI__ADDR_TEXT_SIZE];

    if (n == 0 || n >= sizeof(text))
        return -1;
    memcpy(text, p, n);
    text[n] = '\0';
    return inet_pton(af, text, out) == 1 ? 0 : -1;
}

/* Either family: sets *family to 4 or 6. 0 or -1. */
static int
ip_parse_any(const char *p, size_t n, uint8_t out[16], int *family)
{
    if (memchr(p, ':', n)) {
        *family = 6;
        return ip_parse(AF_INET6, p, n, out);
    }
    *family = 4;
    return ip_parse(AF_INET, p, n, out);
}

int
csgi__cidr_parse(const char *text, struct csgi__cidr *out)
{
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    unsigned max, bits = 0;

    memset(out, 0, sizeof(*out));
    if (strcmp(text, "unix") == 0)
        return 0;
    if (ip_parse_any(text, n, out->addr, &out->family) < 0)
        return CSGI_EINVAL;
    max = out->family == 4 ? 32 : 128;
    if (!slash) {
        out->bits = max;
        return 0;
    }
    if (!slash[1] || strlen(slash + 1) > 3)
        return CSGI_EINVAL;
    for (const char *d = slash + 1; *d; d++) {
        if (*d < '0' || *d > '9')
            return CSGI_EINVAL;
        bits = bits * 10 + (unsigned)(*d - '0');
    }
    if (bits > max)
        return CSGI_EINVAL;
    out->bits = bits;
    /* No address bits past the prefix: "10.0.0.1/8" is a typo, not a network. */
    for (unsigned b = bits; b < max; b++) {
        if (out->addr[b / 8] & (0x80 >> (b % 8)))
            return CSGI_EINVAL;
    }
    return 0;
}

static int
cidr_has(const struct csgi__cidr *c, int family, const uint8_t addr[16])
{
    unsigned whole = c->bits / 8, rest = c->bits % 8;

    if (c->family != family)
        return 0;
    if (memcmp(c->addr, addr, whole) != 0)
        return 0;
    return rest == 0 || ((c->addr[whole] ^ addr[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* The same for a parsed address. */
static int
trusted_addr(const struct csgi__cidr *list, size_t n, int family, const uint8_t addr[16])
{
    for (size_t i = 0; i < n; i++) {
        if (cidr_has(&list[i], family, addr))
            return 1;
    }
    return 0;
}

int
csgi__cidr_match(const struct csgi__cidr *list, size_t n, const char *addr, size_t len)
{
    uint8_t a[16];
    int family;

    if (len == 0) {
        for (size_t i = 0; i < n; i++) {
            if (list[i].family == 0)
                return 1;
        }
        return 0;
    }
    if (ip_parse_any(addr, len, a, &family) < 0)
        return 0;
    return trusted_addr(list, n, family, a);
}

/* ------------------------------------------------------------------ */
/* Lists of elements, walked right to left                             */
/* ------------------------------------------------------------------ */

/* The elements of every header line named name, last line first, last element first. */
struct rev_iter {
    const struct csgi_header *h;
    const char *name;
    size_t line;   /* lines not yet looked at: those before this index */
    const char *v; /* the line being walked (have: 1) */
    size_t end;    /* its bytes not yet walked */
    int have;
};

static int
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * The next element, right to left: the bytes between two commas outside
 * double quotes, without surrounding whitespace; empty elements are
 * skipped. Returns 1 with *p, *n set, or 0 at the end.
 */
static int
rev_next(struct rev_iter *it, const char **p, size_t *n)
{
    for (;;) {
        size_t i;
        int quoted = 0;

        while (!it->have && it->line > 0) {
            const struct csgi_header *hd = &it->h[--it->line];
            if (csgi__str_ieq(hd->name.ptr, hd->name.len, it->name)) {
                it->v = hd->value.ptr;
                it->end = hd->value.len;
                it->have = 1;
            }
        }
        if (!it->have)
            return 0;
        for (i = it->end; i > 0; i--) {
            if (it->v[i - 1] == '"')
                quoted = !quoted;
            else if (it->v[i - 1] == ',' && !quoted)
                break;
        }
        *p = it->v + i;
        *n = it->end - i;
        if (i == 0)
            it->have = 0;
        else
            it->end = i - 1;
        while (*n && is_ows(**p)) {
            (*p)++;
            (*n)--;
        }
        while (*n && is_ows((*p)[*n - 1]))
            (*n)--;
        if (*n)
            return 1;
    }
}

/* ------------------------------------------------------------------ */
/* Elements                                                            */
/* ------------------------------------------------------------------ */

/* A node: "v4", "v4:port", "[v6]", "[v6]:port", or (X-Forwarded-For) a bare v6. */
struct node {
    int family;
    uint8_t addr[16];
    int port; /* -1: none */
};

/* A port of 1 to 5 digits, at most 65535; an obfuscated one ("_x", RFC 7239 6.3) is none. */
static int
node_port(const char *p, size_t n, struct node *out)
{
    unsigned long v = 0;

    if (n && p[0] == '_') {
        out->port = -1;
        return 0;
    }
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > 65535)
        return -1;
    out->port = (int)v;
    return 0;
}

static int
node_parse(const char *p, size_t n, int bare_v6, struct node *out)
{
    const char *colon;

    out->port = -1;
    if (n && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        size_t after;
        if (!close)
            return -1;
        out->family = 6;
        if (ip_parse(AF_INET6, p + 1, (size_t)(close - p - 1), out->addr) < 0)
            return -1;
        after = n - (size_t)(close - p) - 1;
        if (after == 0)
            return 0;
        if (close[1] != ':')
            return -1;
        return node_port(close + 2, after - 1, out);
    }
    colon = memchr(p, ':', n);
    if (colon && memchr(colon + 1, ':', n - (size_t)(colon - p) - 1)) {
        /* Two colons: an IPv6 address without brackets (X-Forwarded-For only). */
        out->family = 6;
        return bare_v6 ? ip_parse(AF_INET6, p, n, out->addr) : -1;
    }
    out->family = 4;
    if (ip_parse(AF_INET, p, colon ? (size_t)(colon - p) : n, out->addr) < 0)
        return -1;
    return colon ? node_port(colon + 1, n - (size_t)(colon - p) - 1, out) : 0;
}

/* One Forwarded element's parameters (ptr NULL: absent), unquoted. */
struct fwd_elem {
    struct csgi_str for_, proto, host;
};

/* A value: a token, or a quoted string without escapes (refused: none is needed here). */
static int
fwd_value(const char *p, size_t n, struct csgi_str *out)
{
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        p++;
        n -= 2;
        if (memchr(p, '\\', n) || memchr(p, '"', n))
            return -1;
    } else if (n == 0 || !csgi__is_token(p, n)) {
        return -1;
    }
    out->ptr = p;
    out->len = n;
    return 0;
}

/* Parse "name=value;name=value" (RFC 7239 4). A parameter given twice is refused. */
static int
fwd_elem_parse(const char *p, size_t n, struct fwd_elem *e)
{
    size_t i = 0;

    memset(e, 0, sizeof(*e));
    while (i < n) {
        size_t start = i, eq = 0, end;
        int quoted = 0;
        struct csgi_str *slot = NULL, name;

        for (; i < n && (quoted || p[i] != ';'); i++) {
            if (p[i] == '"')
                quoted = !quoted;
            else if (p[i] == '=' && !eq && !quoted)
                eq = i;
        }
        end = i++;
        while (start < end && is_ows(p[start]))
            start++;
        while (end > start && is_ows(p[end - 1]))
            end--;
        if (!eq || eq <= start)
            return -1;
        name.ptr = p + start;
        name.len = eq - start;
        if (csgi__str_ieq(name.ptr, name.len, "for"))
            slot = &e->for_;
        else if (csgi__str_ieq(name.ptr, name.len, "proto"))
            slot = &e->proto;
        else if (csgi__str_ieq(name.ptr, name.len, "host"))
            slot = &e->host;
        else if (!csgi__is_token(name.ptr, name.len))
            return -1;
        if (slot && slot->ptr)
            return -1;
        if (fwd_value(p + eq + 1, end - eq - 1, slot ? slot : &name) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The rule                                                            */
/* ------------------------------------------------------------------ */

/* What the walk found: the client (found 0: the peer stands) and its element's proto/host. */
struct walk {
    int found;
    struct node client;
    struct csgi_str proto, host;
};

static void
walk_list(const struct csgi__cidr *trusted, size_t n_trusted, const struct csgi_environ *env,
          int forwarded, struct walk *w)
{
    struct rev_iter it = {
        env->headers, forwarded ? "forwarded" : "x-forwarded-for", env->n_headers, NULL, 0, 0};
    const char *p;
    size_t n;

    memset(w, 0, sizeof(*w));
    for (int hops = 0; hops < CSGI__FWD_MAX_HOPS && rev_next(&it, &p, &n); hops++) {
        struct node node;
        struct fwd_elem e;

        if (forwarded) {
            if (fwd_elem_parse(p, n, &e) < 0 || !e.for_.ptr ||
                node_parse(e.for_.ptr, e.for_.len, 0, &node) < 0)
                break;
        } else if (node_parse(p, n, 1, &node) < 0) {
            break;
        }
        w->found = 1;
        w->client = node;
        w->proto = forwarded ? e.proto : (struct csgi_str){NULL, 0};
        w->host = forwarded ? e.host : (struct csgi_str){NULL, 0};
        if (!trusted_addr(trusted, n_trusted, node.family, node.addr))
            break;
    }
}

/* The value of the one line named name when it holds a single element, else {NULL, 0}. */
static struct csgi_str
single_value(const struct csgi_environ *env, const char *name)
{
    struct csgi_str v = {NULL, 0};

    for (size_t i = 0; i < env->n_headers; i++) {
        const struct csgi_header *h = &env->headers[i];
        if (!csgi__str_ieq(h->name.ptr, h->name.len, name))
            continue;
        if (v.ptr || memchr(h->value.ptr, ',', h->value.len))
            return (struct csgi_str){NULL, 0};
        v = h->value;
    }
    return v;
}

/* Which of the fields the rule reads the request has (one pass, by length first). */
enum { HAS_FORWARDED = 1, HAS_XFF = 2, HAS_XFP = 4, HAS_XFH = 8 };

static unsigned
fields_present(const struct csgi_environ *env)
{
    unsigned has = 0;

    for (size_t i = 0; i < env->n_headers; i++) {
        const struct csgi_str *n = &env->headers[i].name;
        if (n->len == 9 && csgi__str_ieq(n->ptr, n->len, "forwarded"))
            has |= HAS_FORWARDED;
        else if (n->len == 15 && csgi__str_ieq(n->ptr, n->len, "x-forwarded-for"))
            has |= HAS_XFF;
        else if (n->len == 17 && csgi__str_ieq(n->ptr, n->len, "x-forwarded-proto"))
            has |= HAS_XFP;
        else if (n->len == 16 && csgi__str_ieq(n->ptr, n->len, "x-forwarded-host"))
            has |= HAS_XFH;
    }
    return has;
}

static int
set_proto(struct csgi_environ *env, struct csgi_str proto)
{
    if (csgi__str_ieq(proto.ptr, proto.len, "https")) {
        env->url_scheme = (struct csgi_str){"https", 5};
        env->flags |= CSGI_ENV_TLS;
        return 1;
    }
    if (csgi__str_ieq(proto.ptr, proto.len, "http")) {
        env->url_scheme = (struct csgi_str){"http", 4};
        env->flags &= ~(uint32_t)CSGI_ENV_TLS;
        return 1;
    }
    return 0;
}

/* server_name and server_port from a Host value (port: given, else the scheme's). */
static int
set_host(struct csgi_environ *env, struct csgi_str host, struct csgi__fwd_buf *buf)
{
    size_t name_len, port_len;
    const char *port;

    if (!host.ptr || host.len >= sizeof(buf->host) ||
        csgi__host_parse(host.ptr, host.len, &name_len, &port, &port_len) < 0 || name_len == 0)
        return 0;
    memcpy(buf->host, host.ptr, name_len);
    buf->host[name_len] = '\0';
    env->server_name = (struct csgi_str){buf->host, name_len};
    if (port_len) {
        memcpy(buf->port, port, port_len);
        buf->port[port_len] = '\0';
        env->server_port = (struct csgi_str){buf->port, port_len};
    } else {
        int tls = (env->flags & CSGI_ENV_TLS) != 0;
        env->server_port = tls ? (struct csgi_str){"443", 3} : (struct csgi_str){"80", 2};
    }
    return 1;
}

int
csgi__forwarded_apply(const struct csgi__cidr *trusted, size_t n_trusted, struct csgi_environ *env,
                      struct csgi__fwd_buf *buf)
{
    int forwarded, changed = 0;
    unsigned has;
    struct walk w;

    if (!n_trusted)
        return 0;
    /* The headers first: most requests have none, and that costs one pass over the names. */
    has = fields_present(env);
    if (!has || !csgi__cidr_match(trusted, n_trusted, env->remote_addr.ptr, env->remote_addr.len))
        return 0;
    forwarded = (has & HAS_FORWARDED) != 0;
    walk_list(trusted, n_trusted, env, forwarded, &w);
    if (w.found && inet_ntop(w.client.family == 4 ? AF_INET : AF_INET6, w.client.addr, buf->addr,
                             sizeof(buf->addr))) {
        env->remote_addr = (struct csgi_str){buf->addr, strlen(buf->addr)};
        env->remote_port = w.client.port < 0 ? 0 : (uint32_t)w.client.port;
        changed = 1;
    }
    if (!forwarded) {
        w.proto = has & HAS_XFP ? single_value(env, "x-forwarded-proto") : (struct csgi_str){0};
        w.host = has & HAS_XFH ? single_value(env, "x-forwarded-host") : (struct csgi_str){0};
    }
    /* The scheme first: a host without a port takes the scheme's. */
    if (w.proto.ptr)
        changed |= set_proto(env, w.proto);
    if (w.host.ptr)
        changed |= set_host(env, w.host, buf);
    return changed;
}
