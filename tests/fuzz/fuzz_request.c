/*
 * libFuzzer target for the server's own request translation: request-target
 * parsing and percent-decoding, Host and Transfer-Encoding checks, method
 * checks, mount matching, the request-head check of the host core
 * (csgi__head_check) and the response-head validation start_response()
 * applies. Each stage asserts the invariants the rest of the server relies on.
 *
 * Input layout: one input is read three ways, so that the corpus serves every
 * stage.
 * - Split at the first '\n' into a request-target and a "response head"
 *   ("<status> <name>: <value>\n...").
 * - As a whole, as a request head: a request line ("<method> <target>
 *   <version>") and header lines ("<name>: <value>"), each ended by '\n' with
 *   an optional '\r' before it. A line without ':' is a name with an empty
 *   value; empty lines are skipped; lines beyond MAX_REQ_HEADERS set
 *   too_many_headers, as the transport's --max-headers does. A request line
 *   ended by "\r\n" is checked as the test client checks it (any token
 *   method), one ended by a bare '\n' (or by the end) as csgi-server does.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csgi_internal.h"
#include "head.h"
#include "plugin_loader.h"
#include "target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct srv_plugin plugins[4];
static size_t order[4] = {0, 1, 2, 3};
static struct srv_plugin_set set = {.v = plugins, .n = 4, .by_len = order};

static void
init_mounts(void)
{
    static char m[4][8] = {"/api/v1", "/api", "/a", "/"};

    if (plugins[0].mount)
        return;
    for (size_t i = 0; i < 4; i++) {
        plugins[i].mount = m[i];
        plugins[i].mount_len = strlen(m[i]);
    }
}

static void
fuzz_target(const char *p, size_t n)
{
    struct csgi__target t;
    const char *why = NULL;
    char *buf = malloc(n + 2);
    size_t iter = 0, last_len = (size_t)-1;
    struct srv_plugin *pl;

    if (!buf)
        return;
    if (csgi__target_parse(p, n, buf, &t, &why) == 0) {
        assert(t.path && t.path[t.path_len] == '\0');
        assert(strlen(t.path) == t.path_len);
        assert(t.path_len <= n);
        assert(t.asterisk || t.path[0] == '/');
        assert(t.query);
        if (t.query_len)
            assert(t.query >= p && t.query + t.query_len <= p + n);
        if (t.host) {
            size_t nl, pl_len;
            const char *port;
            assert(csgi__host_parse(t.host, t.host_len, &nl, &port, &pl_len) == 0);
        }
        /* Mount matching: each match is a prefix at a segment boundary, longest first. */
        while ((pl = srv_plugins_match(&set, t.path, t.path_len, &iter))) {
            size_t ml = pl->mount_len;
            assert(ml <= last_len);
            last_len = ml;
            if (ml > 1) {
                assert(t.path_len >= ml && memcmp(t.path, pl->mount, ml) == 0);
                assert(t.path_len == ml || t.path[ml] == '/');
            }
        }
    } else {
        assert(why && *why);
    }
    {
        long d = csgi__percent_decode(p, n, buf);
        if (d >= 0) {
            assert((size_t)d <= n);
            assert(memchr(buf, '\0', (size_t)d) == NULL);
        }
    }
    {
        size_t nl, pl_len;
        const char *port;
        if (csgi__host_parse(p, n, &nl, &port, &pl_len) == 0) {
            assert(nl > 0 && nl <= n);
            assert(!port || (port > p && port + pl_len == p + n && pl_len <= 5));
        }
    }
    {
        int te = csgi__te_check(p, n);
        assert(te == 0 || te == 400 || te == 501);
        if (te == 0)
            assert(n == 7);
    }
    if (csgi__method_known(p, n))
        assert(csgi__is_token(p, n));
    {
        int64_t cl = csgi__parse_content_length(p, n);
        assert(cl >= -1);
    }
    free(buf);
}

static void
fuzz_response_head(const char *p, size_t n)
{
    struct csgi_header h[16] = {{{NULL, 0}, {NULL, 0}}};
    size_t nh = 0;
    int status = 0;
    size_t i = 0;
    char why[256];
    int64_t cl = -2;

    while (i < n && i < 6 && p[i] >= '0' && p[i] <= '9')
        status = status * 10 + (p[i++] - '0');
    while (i < n && nh < 16) {
        const char *line = p + i, *colon, *end = memchr(line, '\n', n - i);
        size_t len = end ? (size_t)(end - line) : n - i;
        colon = memchr(line, ':', len);
        if (colon) {
            h[nh].name.ptr = line;
            h[nh].name.len = (size_t)(colon - line);
            h[nh].value.ptr = colon + 1;
            h[nh].value.len = len - (size_t)(colon - line) - 1;
            nh++;
        }
        i += len + 1;
    }
    {
        struct csgi_str reason = {NULL, 0};
        int rc = csgi__check_response_head(status, reason, h, nh, &cl, why, sizeof(why));
        if (rc == 0) {
            assert(status >= 200 && status <= 599);
            for (size_t k = 0; k < nh; k++) {
                assert(csgi__is_token(h[k].name.ptr, h[k].name.len));
                assert(csgi__is_field_value(h[k].value.ptr, h[k].value.len));
                assert(!csgi__is_hop_by_hop(h[k].name.ptr, h[k].name.len));
            }
            assert(cl >= -1);
        } else {
            assert(rc == CSGI_ESTATUS || rc == CSGI_EHEADER);
            assert(why[0]);
        }
    }
}

/* Header lines kept per request head; more set too_many_headers. */
#define MAX_REQ_HEADERS 24

/* An exact-size heap copy, so that ASan catches any read past n. */
static char *
dup_exact(const char *p, size_t n)
{
    char *q = malloc(n ? n : 1);

    if (q && n)
        memcpy(q, p, n);
    return q;
}

/*
 * The next line of [*p, end): its span without "\r\n" or "\n"; advances *p.
 * *crlf is set when the line ended with "\r\n".
 */
static size_t
next_line(const char **p, const char *end, const char **line, int *crlf)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t len = nl ? (size_t)(nl - *p) : (size_t)(end - *p);

    *line = *p;
    *p = nl ? nl + 1 : end;
    *crlf = nl && len && (*line)[len - 1] == '\r';
    if (len && (*line)[len - 1] == '\r')
        len--;
    return len;
}

/* The span of [p, p+n) without leading and trailing SP and HTAB, as the transport trims. */
static const char *
trim_ows(const char *p, size_t *n)
{
    while (*n && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        (*n)--;
    }
    while (*n && (p[*n - 1] == ' ' || p[*n - 1] == '\t'))
        (*n)--;
    return p;
}

static int
span_is(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* True when [q, q+qn) lies inside [p, p+n). */
static int
span_within(const char *q, size_t qn, const char *p, size_t n)
{
    return q >= p && qn <= n && (size_t)(q - p) <= n - qn;
}

/* Check the facts of an accepted head against what the head holds. */
static void
check_facts(const struct csgi__head *head, const char *path_buf, const struct csgi__head_facts *f)
{
    size_t n_cl = 0, n_te = 0, n_host = 0;
    const struct csgi_header *cl = NULL;
    int host_in_header = 0, ctype_in_header = 0;

    assert(span_is(head->version, head->version_len, "HTTP/1.0") ||
           span_is(head->version, head->version_len, "HTTP/1.1"));
    assert(f->http11 == span_is(head->version, head->version_len, "HTTP/1.1"));
    assert(!head->too_many_headers);
    assert(csgi__is_token(head->method, head->method_len));
    assert(head->any_method || csgi__method_known(head->method, head->method_len));
    assert(f->head_request == span_is(head->method, head->method_len, "HEAD"));
    /* Framing: one way at most, and a length is never negative but for "absent". */
    assert(f->content_length >= -1);
    assert(!(f->chunked && f->content_length >= 0));
    assert(!f->chunked || f->http11);
    /* The decoded path: in the caller's buffer, which it fits, NUL-terminated, no NUL inside. */
    assert(f->target.path == path_buf);
    assert(f->target.path_len <= head->raw_target_len);
    assert(f->target.path[f->target.path_len] == '\0');
    assert(memchr(f->target.path, '\0', f->target.path_len) == NULL);
    assert(f->target.asterisk || f->target.path[0] == '/');
    assert(!f->target.asterisk || span_is(head->method, head->method_len, "OPTIONS"));
    assert(
        span_within(f->target.query, f->target.query_len, head->raw_target, head->raw_target_len) ||
        f->target.query_len == 0);
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct csgi_header *h = &head->headers[i];
        assert(csgi__is_token(h->name.ptr, h->name.len));
        assert(!h->value.len || csgi__is_field_value(h->value.ptr, h->value.len));
        if (csgi__str_ieq(h->name.ptr, h->name.len, "content-length")) {
            n_cl++;
            cl = h;
        }
        n_te += (size_t)csgi__str_ieq(h->name.ptr, h->name.len, "transfer-encoding");
        if (csgi__str_ieq(h->name.ptr, h->name.len, "host")) {
            n_host++;
            host_in_header |= f->host == h->value.ptr && f->host_len <= h->value.len;
        }
        ctype_in_header |= f->content_type.ptr == h->value.ptr &&
                           f->content_type.len == h->value.len &&
                           csgi__str_ieq(h->name.ptr, h->name.len, "content-type");
    }
    assert(n_cl <= 1 && n_te <= 1 && n_host <= 1);
    assert(!(n_cl && n_te));
    assert(f->chunked == (n_te == 1));
    assert(n_cl ? f->content_length == csgi__parse_content_length(cl->value.ptr, cl->value.len)
                : f->content_length == -1);
    assert(!f->http11 || n_host == 1);
    assert(f->content_type.ptr == NULL ? f->content_type.len == 0 : ctype_in_header);
    /* The host: the target's authority when absolute-form, else Host's name, else none. */
    if (f->target.host) {
        assert(f->host == f->target.host && f->host_len == f->target.host_name_len);
        assert(span_within(f->host, f->host_len, head->raw_target, head->raw_target_len));
        /* ... and the Host line the application reads says the same (RFC 9112 3.2.2). */
        assert(!n_host || host_in_header);
    } else if (n_host) {
        assert(host_in_header);
    } else {
        assert(f->host == NULL);
    }
    assert(f->host == NULL || f->host_len > 0);
}

/* A head in memory of its own: each string an exact allocation (ASan sees reads past it). */
struct head_copy {
    struct csgi__head head;
    struct csgi_header h[MAX_REQ_HEADERS];
    char *values[MAX_REQ_HEADERS]; /* as allocated: the check may repoint a Host line */
    char *path_buf;
};

static void
head_copy_free(struct head_copy *c)
{
    for (size_t i = 0; i < c->head.n_headers; i++) {
        free((void *)c->h[i].name.ptr);
        free(c->values[i]);
    }
    free((void *)c->head.method);
    free((void *)c->head.version);
    free((void *)c->head.raw_target);
    free(c->path_buf);
}

static int
head_copy_make(struct head_copy *c, const struct csgi__head *src)
{
    char *target = malloc(src->raw_target_len + 1);

    memset(c, 0, sizeof(*c));
    c->head = *src;
    c->head.n_headers = 0;
    c->head.headers = c->h;
    c->head.method = dup_exact(src->method, src->method_len);
    c->head.version = dup_exact(src->version, src->version_len);
    c->head.raw_target = target;
    c->path_buf = malloc(src->raw_target_len + 1);
    if (target)
        memcpy(target, src->raw_target, src->raw_target_len + 1);
    for (size_t i = 0; i < src->n_headers; i++) {
        c->h[i].name.ptr = dup_exact(src->headers[i].name.ptr, src->headers[i].name.len);
        c->h[i].name.len = src->headers[i].name.len;
        c->values[i] = dup_exact(src->headers[i].value.ptr, src->headers[i].value.len);
        c->h[i].value.ptr = c->values[i];
        c->h[i].value.len = src->headers[i].value.len;
        c->head.n_headers++;
        if (!c->h[i].name.ptr || !c->h[i].value.ptr)
            return -1;
    }
    return c->head.method && c->head.version && target && c->path_buf ? 0 : -1;
}

static int
str_same(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || (a && b && memcmp(a, b, an) == 0));
}

/*
 * The memo (head.h): a head remembered in other memory (freed before the
 * second check) must be answered as csgi__head_check() answers the head.
 */
static void
check_memo(const struct csgi__head *pristine, int status, const struct csgi__head_facts *f)
{
    struct csgi__head_memo memo;
    struct csgi__head_facts f1, f2;
    struct head_copy a, b;
    const char *why = NULL;
    int s1, s2;

    memset(&memo, 0, sizeof(memo));
    if (head_copy_make(&a, pristine) == 0)
        s1 = csgi__head_check_memo(&a.head, a.path_buf, &f1, &why, &memo);
    else
        s1 = -1;
    head_copy_free(&a);
    if (s1 < 0 || head_copy_make(&b, pristine) < 0) {
        head_copy_free(&b);
        return;
    }
    s2 = csgi__head_check_memo(&b.head, b.path_buf, &f2, &why, &memo);
    assert(s1 == status && s2 == status);
    assert(memo.hits == (memo.valid && status == 0 ? 1u : 0u));
    if (status == 0) {
        check_facts(&b.head, b.path_buf, &f2);
        assert(f2.http11 == f->http11 && f2.head_request == f->head_request &&
               f2.content_length == f->content_length && f2.chunked == f->chunked);
        assert(str_same(f2.host, f2.host_len, f->host, f->host_len));
        assert(
            str_same(f2.host_field.ptr, f2.host_field.len, f->host_field.ptr, f->host_field.len));
        assert(f2.host_field_name_len == f->host_field_name_len);
        assert(str_same(f2.content_type.ptr, f2.content_type.len, f->content_type.ptr,
                        f->content_type.len));
        assert(str_same(f2.target.path, f2.target.path_len, f->target.path, f->target.path_len));
        assert(str_same(f2.target.raw_path, f2.target.raw_path_len, f->target.raw_path,
                        f->target.raw_path_len));
        assert(
            str_same(f2.target.query, f2.target.query_len, f->target.query, f->target.query_len));
        assert(str_same(f2.target.host, f2.target.host_len, f->target.host, f->target.host_len));
        assert(f2.target.asterisk == f->target.asterisk);
    }
    head_copy_free(&b);
}

static void
fuzz_request_head(const char *p, size_t n)
{
    struct csgi__head pristine;
    const char *end = p + n, *line, *sp1, *sp2;
    size_t len;
    struct csgi_header h[MAX_REQ_HEADERS];
    char *values[MAX_REQ_HEADERS]; /* as allocated: the check may repoint a Host line */
    size_t value_lens[MAX_REQ_HEADERS];
    struct csgi__head head;
    struct csgi__head_facts f;
    char *method = NULL, *version = NULL, *target = NULL, *path_buf = NULL;
    const char *why = NULL;
    int status, crlf;

    memset(&head, 0, sizeof(head));
    len = next_line(&p, end, &line, &crlf);
    head.any_method = crlf;
    sp1 = memchr(line, ' ', len);
    sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line)) : NULL;
    if (!sp2)
        return;
    head.method_len = (size_t)(sp1 - line);
    head.raw_target_len = (size_t)(sp2 - sp1 - 1);
    head.version_len = len - (size_t)(sp2 + 1 - line);
    method = dup_exact(line, head.method_len);
    version = dup_exact(sp2 + 1, head.version_len);
    target = malloc(head.raw_target_len + 1);
    path_buf = malloc(head.raw_target_len + 1);
    if (!method || !version || !target || !path_buf)
        goto out;
    memcpy(target, sp1 + 1, head.raw_target_len);
    target[head.raw_target_len] = '\0';
    head.method = method;
    head.version = version;
    head.raw_target = target;
    while (p < end) {
        const char *colon, *name, *value;
        size_t name_len, value_len;

        len = next_line(&p, end, &line, &crlf);
        if (len == 0)
            continue;
        if (head.n_headers == MAX_REQ_HEADERS) {
            head.too_many_headers = 1;
            break;
        }
        colon = memchr(line, ':', len);
        name_len = colon ? (size_t)(colon - line) : len;
        value_len = colon ? len - name_len - 1 : 0;
        value = trim_ows(colon ? colon + 1 : line + len, &value_len);
        name = dup_exact(line, name_len);
        value = dup_exact(value, value_len);
        if (!name || !value) {
            free((void *)name);
            free((void *)value);
            goto out;
        }
        h[head.n_headers].name.ptr = name;
        h[head.n_headers].name.len = name_len;
        values[head.n_headers] = (char *)value;
        value_lens[head.n_headers] = value_len;
        h[head.n_headers].value.ptr = value;
        h[head.n_headers].value.len = value_len;
        head.n_headers++;
    }
    head.headers = h;

    pristine = head; /* before the check, which may repoint an absolute-form Host line */
    status = csgi__head_check(&head, path_buf, &f, &why);
    assert(status == 0 || status == 400 || status == 431 || status == 501 || status == 505);
    if (status) {
        assert(why && *why);
        /* The version is checked first, and too many lines refuse the head as a whole. */
        assert(status != 505 || !(span_is(version, head.version_len, "HTTP/1.0") ||
                                  span_is(version, head.version_len, "HTTP/1.1")));
        assert(status == 431 || status == 505 || !head.too_many_headers);
        /* When any token method passes, only a transfer coding can be "not implemented". */
        assert(status != 501 || !head.any_method || strstr(why, "Transfer-Encoding"));
    } else {
        check_facts(&head, path_buf, &f);
    }
    {
        /* pristine's lines are h[], possibly repointed: rebuilt from values[]. */
        struct csgi_header ph[MAX_REQ_HEADERS];

        for (size_t i = 0; i < head.n_headers; i++) {
            ph[i].name = h[i].name;
            ph[i].value.ptr = values[i];
            ph[i].value.len = value_lens[i];
        }
        pristine.headers = ph;
        check_memo(&pristine, status, &f);
    }
out:
    for (size_t i = 0; i < head.n_headers; i++) {
        free((void *)h[i].name.ptr);
        free(values[i]);
    }
    free(method);
    free(version);
    free(target);
    free(path_buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nl = memchr(p, '\n', size);
    size_t tn = nl ? (size_t)(nl - p) : size;

    init_mounts();
    fuzz_target(p, tn);
    if (nl)
        fuzz_response_head(nl + 1, size - tn - 1);
    fuzz_request_head(p, size);
    return 0;
}
