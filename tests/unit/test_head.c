/*
 * Unit tests for gateway/core/head.c: csgi__head_check(), the request-head
 * checks both transports run (version, header lines, framing, Host, method,
 * request-target) and the facts it reports for an accepted head. Every input
 * is copied into an exact-size heap buffer (the target with its terminating
 * NUL, the path buffer with raw_target_len + 1 bytes), so that ASan reports
 * any read or write past the given lengths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "csgi_internal.h"
#include "head.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* A byte string with an explicit length (may contain NUL). */
struct bytes {
    const char *p;
    size_t n;
};

#define B(lit)                                                                                     \
    {                                                                                              \
        (lit), sizeof(lit) - 1                                                                     \
    }

/* One header line of a test head. */
struct hdr {
    struct bytes name;
    struct bytes value;
};

#define H(name, value)                                                                             \
    {                                                                                              \
        B(name), B(value)                                                                          \
    }

#define MAX_HDR 5

/*
 * One head and what csgi__head_check() must make of it. method, version and
 * target default to "GET", "HTTP/1.1" and "/" when NULL; the header list ends
 * at the first entry without a name pointer. When status is 0, the facts are
 * checked: content_length and chunked always, host always (NULL: no host),
 * path and query when given.
 */
struct head_case {
    const char *method;
    const char *version;
    struct bytes target;
    struct hdr h[MAX_HDR];
    int too_many;
    /* Pass any token method, as the test client does. */
    int any_method;
    /* Expected: 0, or the status with a substring of the reason. */
    int status;
    const char *why;
    int64_t content_length;
    int chunked;
    const char *host;
    const char *path;
    const char *query;
};

/* Copy into an exact-size heap buffer, so that ASan catches reads past n. */
static char *
exact(const char *p, size_t n)
{
    char *q = malloc(n ? n : 1);

    ck_assert_ptr_nonnull(q);
    if (n)
        memcpy(q, p, n);
    return q;
}

/* A head built from a case, owning its copies. */
struct built {
    struct csgi__head head;
    char *method;
    char *version;
    char *target;
    char *path_buf;
    struct csgi_header *h;
    size_t n;
    /* The values as built (the check may point a Host line elsewhere). */
    char *values[MAX_HDR];
};

static void
build(struct built *b, const struct head_case *c)
{
    const char *method = c->method ? c->method : "GET";
    const char *version = c->version ? c->version : "HTTP/1.1";
    struct bytes target = c->target.p ? c->target : (struct bytes){"/", 1};

    memset(b, 0, sizeof(*b));
    while (b->n < MAX_HDR && c->h[b->n].name.p)
        b->n++;
    b->method = exact(method, strlen(method));
    b->version = exact(version, strlen(version));
    /* raw_target is NUL-terminated after raw_target_len bytes (head.h). */
    b->target = malloc(target.n + 1);
    ck_assert_ptr_nonnull(b->target);
    memcpy(b->target, target.p, target.n);
    b->target[target.n] = '\0';
    b->path_buf = malloc(target.n + 1);
    ck_assert_ptr_nonnull(b->path_buf);
    b->h = b->n ? malloc(b->n * sizeof(*b->h)) : NULL;
    ck_assert(b->n == 0 || b->h != NULL);
    for (size_t i = 0; i < b->n; i++) {
        b->h[i].name.ptr = exact(c->h[i].name.p, c->h[i].name.n);
        b->h[i].name.len = c->h[i].name.n;
        b->values[i] = exact(c->h[i].value.p, c->h[i].value.n);
        b->h[i].value.ptr = b->values[i];
        b->h[i].value.len = c->h[i].value.n;
    }
    b->head.method = b->method;
    b->head.method_len = strlen(method);
    b->head.version = b->version;
    b->head.version_len = strlen(version);
    b->head.raw_target = b->target;
    b->head.raw_target_len = target.n;
    b->head.headers = b->h;
    b->head.n_headers = b->n;
    b->head.too_many_headers = c->too_many;
    b->head.any_method = c->any_method;
}

static void
unbuild(struct built *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free((void *)b->h[i].name.ptr);
        free(b->values[i]);
    }
    free(b->h);
    free(b->method);
    free(b->version);
    free(b->target);
    free(b->path_buf);
}

/* Compare a (pointer, length) span with a NUL-terminated expectation. */
static int
span_eq(const char *p, size_t n, const char *want)
{
    return p && strlen(want) == n && memcmp(p, want, n) == 0;
}

/*
 * Run one case and check its status, reason and (when accepted) facts; with
 * @p memo, through csgi__head_check_memo() and that memo.
 */
static void
check_one(const struct head_case *c, int i, struct csgi__head_memo *memo)
{
    struct built b;
    struct csgi__head_facts f;
    const char *why = NULL;
    int status;

    build(&b, c);
    status = memo ? csgi__head_check_memo(&b.head, b.path_buf, &f, &why, memo)
                  : csgi__head_check(&b.head, b.path_buf, &f, &why);
    ck_assert_msg(status == c->status, "case %d: status %d, want %d (reason \"%s\")", i, status,
                  c->status, why ? why : "(none)");
    if (c->status) {
        ck_assert_msg(why && strstr(why, c->why), "case %d: reason \"%s\" does not name \"%s\"", i,
                      why ? why : "(none)", c->why);
        unbuild(&b);
        return;
    }
    ck_assert_int_eq(f.http11, strcmp(c->version ? c->version : "HTTP/1.1", "HTTP/1.1") == 0);
    ck_assert_int_eq(f.head_request, c->method && strcmp(c->method, "HEAD") == 0);
    ck_assert_msg(f.content_length == c->content_length, "case %d: content_length %lld, want %lld",
                  i, (long long)f.content_length, (long long)c->content_length);
    ck_assert_int_eq(f.chunked, c->chunked);
    if (c->host)
        ck_assert_msg(span_eq(f.host, f.host_len, c->host), "case %d: host \"%.*s\", want \"%s\"",
                      i, f.host ? (int)f.host_len : 0, f.host ? f.host : "", c->host);
    else
        ck_assert_msg(f.host == NULL, "case %d: host set, want none", i);
    ck_assert_ptr_eq(f.target.path, b.path_buf);
    ck_assert_uint_eq(strlen(f.target.path), f.target.path_len);
    if (c->path)
        ck_assert_msg(span_eq(f.target.path, f.target.path_len, c->path),
                      "case %d: path \"%s\", want \"%s\"", i, f.target.path, c->path);
    if (c->query)
        ck_assert_msg(span_eq(f.target.query, f.target.query_len, c->query),
                      "case %d: query \"%.*s\", want \"%s\"", i, (int)f.target.query_len,
                      f.target.query, c->query);
    unbuild(&b);
}

/* Check a head through a memo that @p primer's head (built and freed here) filled. */
static void
check_after(const struct head_case *primer, const struct head_case *c, int i,
            struct csgi__head_memo *memo)
{
    struct built b;
    struct csgi__head_facts f;
    const char *why = NULL;

    build(&b, primer);
    (void)csgi__head_check_memo(&b.head, b.path_buf, &f, &why, memo);
    /* Freed before the head it may answer: a fact left pointing here is a use after free. */
    unbuild(&b);
    check_one(c, i, memo);
}

/*
 * Every case three times: checked alone; through a memo of the same head
 * (in other memory: answered from the memo when it was accepted, except
 * absolute-form targets, which are never remembered); and the memo's facts
 * must be those csgi__head_check() gives.
 */
static void
check_case(const struct head_case *c, int i)
{
    struct csgi__head_memo memo;

    check_one(c, i, NULL);
    memset(&memo, 0, sizeof(memo));
    check_after(c, c, i, &memo);
    if (c->status == 0 && !(c->target.p && c->target.p[0] != '/' && c->target.p[0] != '*')) {
        ck_assert_msg(memo.hits == 1, "case %d: an accepted head was not answered from the memo",
                      i);
    } else {
        ck_assert_msg(memo.hits == 0, "case %d: answered from the memo", i);
        ck_assert_msg(!memo.valid || c->status == 0, "case %d: a refused head remembered", i);
    }
}

/* ------------------------------------------------------------------ */
/* HTTP version                                                        */
/* ------------------------------------------------------------------ */

static const struct head_case version_cases[] = {
    {.version = "HTTP/1.1", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.version = "HTTP/1.0", .content_length = -1},
    {.version = "HTTP/1.0", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.version = "HTTP/2.0", .h = {H("Host", "h")}, .status = 505, .why = "version"},
    {.version = "HTTP/1.2", .h = {H("Host", "h")}, .status = 505, .why = "version"},
    {.version = "", .h = {H("Host", "h")}, .status = 505, .why = "version"},
    {.version = "HTTP/0.9", .h = {H("Host", "h")}, .status = 505, .why = "version"},
    {.version = "HTTP/1", .h = {H("Host", "h")}, .status = 505, .why = "version"},
    {.version = "HTTP/1.10", .h = {H("Host", "h")}, .status = 505, .why = "version"},
    {.version = "HTTP/1.1 ", .h = {H("Host", "h")}, .status = 505, .why = "version"},
    /* The protocol name is case-sensitive (RFC 9112 2.3). */
    {.version = "http/1.1", .h = {H("Host", "h")}, .status = 505, .why = "version"},
    /* The version is checked before anything else in the head. */
    {.version = "HTTP/2.0",
     .h = {H("Bad Name", "x")},
     .too_many = 1,
     .status = 505,
     .why = "version"},
};

START_TEST(head_version)
{
    check_case(&version_cases[_i], _i);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Too many header lines                                               */
/* ------------------------------------------------------------------ */

static const struct head_case limit_cases[] = {
    {.h = {H("Host", "h")}, .too_many = 1, .status = 431, .why = "too many header lines"},
    {.version = "HTTP/1.0", .too_many = 1, .status = 431, .why = "too many header lines"},
    /* The lines that were kept are not looked at: the head is refused as a whole. */
    {.h = {H("Bad Name", "x"), H("Content-Length", "1x")},
     .too_many = 1,
     .status = 431,
     .why = "too many header lines"},
};

START_TEST(head_too_many_headers)
{
    check_case(&limit_cases[_i], _i);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Header lines: names, folded framing names, controls in values       */
/* ------------------------------------------------------------------ */

static const struct head_case line_cases[] = {
    /* Names that are not tokens. */
    {.h = {H("Host", "h"), H("Bad Name", "x")}, .status = 400, .why = "not a token"},
    {.h = {H("Host", "h"), H("", "x")}, .status = 400, .why = "not a token"},
    {.h = {H("Host", "h"), H("X:Y", "x")}, .status = 400, .why = "not a token"},
    {.h = {H("Host", "h"), H("X-\x80", "x")}, .status = 400, .why = "not a token"},
    {.h = {H("Host", "h"), H("X\0Y", "x")}, .status = 400, .why = "not a token"},
    {.h = {H("Host ", "h")}, .status = 400, .why = "not a token"},
    /* libmicrohttpd's obs-fold: the continuation is glued to the name. */
    {.h = {H("Host", "h"), H("Content-Length5", "")}, .status = 400, .why = "folded"},
    {.h = {H("Host", "h"), H("Transfer-Encodingchunked", "")}, .status = 400, .why = "folded"},
    {.h = {H("Host", "h"), H("content-length0", "")}, .status = 400, .why = "folded"},
    {.h = {H("Host", "h"), H("TRANSFER-ENCODINGchunked", "")}, .status = 400, .why = "folded"},
    /* A folded framing name is refused even after a valid one. */
    {.h = {H("Host", "h"), H("Content-Length", "5"), H("Content-Length5", "")},
     .status = 400,
     .why = "folded"},
    /* A NUL inside a value (the value's recorded length includes the NUL). */
    {.h = {H("Host", "h"), H("X-A", "a\0b")}, .status = 400, .why = "control byte"},
    {.h = {H("Host", "h"), H("X-A", "\0")}, .status = 400, .why = "control byte"},
    {.h = {H("Host", "h"), H("X-A", "abc\0")}, .status = 400, .why = "control byte"},
    {.h = {H("Host", "h\0")}, .status = 400, .why = "control byte"},
    {.h = {H("Host", "h"), H("Content-Length", "5\0")}, .status = 400, .why = "control byte"},
    /* CR, LF, the other controls and DEL (RFC 9110 5.5): a bare CR is a line break to some. */
    {.h = {H("Host", "h"), H("X-A", "a\rContent-Length: 5")}, .status = 400, .why = "control byte"},
    {.h = {H("Host", "h"), H("X-A", "a\nb")}, .status = 400, .why = "control byte"},
    {.h = {H("Host", "h"), H("X-A", "\x01")}, .status = 400, .why = "control byte"},
    {.h = {H("Host", "h"), H("X-A", "a\x1b[0m")}, .status = 400, .why = "control byte"},
    {.h = {H("Host", "h"), H("X-A", "a\x7f")}, .status = 400, .why = "control byte"},
    {.h = {H("Host", "h\x1f")}, .status = 400, .why = "control byte"},
};

START_TEST(head_header_line)
{
    check_case(&line_cases[_i], _i);
}
END_TEST

/* Names that only resemble the framing headers are ordinary fields. */
static const struct head_case line_ok_cases[] = {
    {.h = {H("Host", "h"), H("Content-Lengt", "x")}, .content_length = -1, .host = "h"},
    {.h = {H("Host", "h"), H("X-Content-Length", "x")}, .content_length = -1, .host = "h"},
    {.h = {H("Host", "h"), H("Transfer-Encodin", "x")}, .content_length = -1, .host = "h"},
    {.h = {H("Host", "h"), H("TE", "trailers")}, .content_length = -1, .host = "h"},
    {.h = {H("Host", "h"), H("X-A", "")}, .content_length = -1, .host = "h"},
    /* obs-text, SP and HTAB are field-value bytes. */
    {.h = {H("Host", "h"), H("X-A", "caf\xc3\xa9")}, .content_length = -1, .host = "h"},
    {.h = {H("Host", "h"), H("X-A", "a\tb c\xff")}, .content_length = -1, .host = "h"},
    {.h = {H("Host", "h"), H("!#$%&'*+-.^_`|~09azAZ", "x")}, .content_length = -1, .host = "h"},
};

START_TEST(head_header_line_accepted)
{
    check_case(&line_ok_cases[_i], _i);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Framing: Content-Length and Transfer-Encoding                       */
/* ------------------------------------------------------------------ */

#define POST .method = "POST"

static const struct head_case framing_cases[] = {
    /* Transfer-Encoding values. */
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "chunked")}, .content_length = -1,
     .chunked = 1, .host = "h"},
    {POST, .h = {H("Host", "h"), H("transfer-encoding", "CHUNKED")}, .content_length = -1,
     .chunked = 1, .host = "h"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "gzip, chunked")}, .status = 501,
     .why = "Transfer-Encoding other than \"chunked\""},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "gzip")}, .status = 400,
     .why = "malformed Transfer-Encoding"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "identity")}, .status = 400,
     .why = "malformed Transfer-Encoding"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "chunked, gzip")}, .status = 400,
     .why = "malformed Transfer-Encoding"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "chunked, chunked")}, .status = 400,
     .why = "malformed Transfer-Encoding"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "chunked ")}, .status = 400,
     .why = "malformed Transfer-Encoding"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "")}, .status = 400,
     .why = "malformed Transfer-Encoding"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "chunked;q=1")}, .status = 400,
     .why = "malformed Transfer-Encoding"},
    /* Transfer-Encoding with Content-Length, twice, or on HTTP/1.0. */
    {POST, .h = {H("Host", "h"), H("Content-Length", "5"), H("Transfer-Encoding", "chunked")},
     .status = 400, .why = "both Content-Length and Transfer-Encoding"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "chunked"), H("Content-Length", "5")},
     .status = 400, .why = "both Content-Length and Transfer-Encoding"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "gzip"), H("Content-Length", "0")},
     .status = 400, .why = "both Content-Length and Transfer-Encoding"},
    {POST, .version = "HTTP/1.0", .h = {H("Transfer-Encoding", "chunked")}, .status = 400,
     .why = "Transfer-Encoding in an HTTP/1.0 request"},
    {POST,
     .h = {H("Host", "h"), H("Transfer-Encoding", "chunked"), H("Transfer-Encoding", "chunked")},
     .status = 400, .why = "repeated Transfer-Encoding"},
    {POST, .h = {H("Host", "h"), H("Transfer-Encoding", "gzip"), H("Transfer-Encoding", "chunked")},
     .status = 400, .why = "repeated Transfer-Encoding"},
    /* Content-Length values. */
    {POST, .h = {H("Host", "h"), H("Content-Length", "0")}, .content_length = 0, .host = "h"},
    {POST, .h = {H("Host", "h"), H("content-length", "12")}, .content_length = 12, .host = "h"},
    {POST, .h = {H("Host", "h"), H("Content-Length", "007")}, .content_length = 7, .host = "h"},
    {POST, .h = {H("Host", "h"), H("Content-Length", "999999999999999999")},
     .content_length = 999999999999999999LL, .host = "h"},
    {POST, .version = "HTTP/1.0", .h = {H("Content-Length", "3")}, .content_length = 3},
    {POST, .h = {H("Host", "h"), H("Content-Length", "+5")}, .status = 400,
     .why = "invalid Content-Length"},
    {POST, .h = {H("Host", "h"), H("Content-Length", "-1")}, .status = 400,
     .why = "invalid Content-Length"},
    {POST, .h = {H("Host", "h"), H("Content-Length", "5, 5")}, .status = 400,
     .why = "invalid Content-Length"},
    {POST, .h = {H("Host", "h"), H("Content-Length", "1x")}, .status = 400,
     .why = "invalid Content-Length"},
    {POST, .h = {H("Host", "h"), H("Content-Length", "1000000000000000000")}, .status = 400,
     .why = "invalid Content-Length"},
    {POST, .h = {H("Host", "h"), H("Content-Length", "")}, .status = 400,
     .why = "invalid Content-Length"},
    {POST, .h = {H("Host", "h"), H("Content-Length", " 5")}, .status = 400,
     .why = "invalid Content-Length"},
    {POST, .h = {H("Host", "h"), H("Content-Length", "5"), H("Content-Length", "5")}, .status = 400,
     .why = "repeated Content-Length"},
    {POST, .h = {H("Host", "h"), H("Content-Length", "5"), H("content-length", "6")}, .status = 400,
     .why = "repeated Content-Length"},
};

START_TEST(head_framing)
{
    check_case(&framing_cases[_i], _i);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Host                                                                */
/* ------------------------------------------------------------------ */

static const struct head_case host_cases[] = {
    {.h = {H("Host", "example.org")}, .content_length = -1, .host = "example.org"},
    /* facts.host is the name alone, without the port. */
    {.h = {H("Host", "example.org:8080")}, .content_length = -1, .host = "example.org"},
    {.h = {H("host", "t:65535")}, .content_length = -1, .host = "t"},
    {.h = {H("HOST", "127.0.0.1:80")}, .content_length = -1, .host = "127.0.0.1"},
    {.h = {H("Host", "[::1]:8080")}, .content_length = -1, .host = "[::1]"},
    {.h = {H("Host", "[::1]")}, .content_length = -1, .host = "[::1]"},
    /* HTTP/1.0 needs no Host. */
    {.version = "HTTP/1.0", .content_length = -1},
    {.version = "HTTP/1.0", .h = {H("X-A", "b")}, .content_length = -1},
    {.h = {H("X-A", "b")}, .status = 400, .why = "without Host"},
    {.status = 400, .why = "without Host"},
    {.h = {H("Host", "a"), H("Host", "a")}, .status = 400, .why = "repeated Host"},
    {.h = {H("Host", "a"), H("host", "b")}, .status = 400, .why = "repeated Host"},
    /* Content-Type is single-valued: a second one is refused, equal or not. */
    {.h = {H("Host", "a"), H("Content-Type", "a/b"), H("content-type", "c/d")},
     .status = 400,
     .why = "repeated Content-Type"},
    {.h = {H("Host", "a"), H("Content-Type", "a/b"), H("Content-Type", "a/b")},
     .status = 400,
     .why = "repeated Content-Type"},
    {.version = "HTTP/1.0",
     .h = {H("Host", "a"), H("Host", "b")},
     .status = 400,
     .why = "repeated Host"},
    {.h = {H("Host", "a@b")}, .status = 400, .why = "invalid Host"},
    {.h = {H("Host", "t:99999")}, .status = 400, .why = "invalid Host"},
    {.h = {H("Host", "[::1")}, .status = 400, .why = "invalid Host"},
    {.h = {H("Host", "")}, .status = 400, .why = "invalid Host"},
    {.h = {H("Host", "a b")}, .status = 400, .why = "invalid Host"},
    {.h = {H("Host", "a/b")}, .status = 400, .why = "invalid Host"},
    {.version = "HTTP/1.0", .h = {H("Host", "t:x")}, .status = 400, .why = "invalid Host"},
};

START_TEST(head_host)
{
    check_case(&host_cases[_i], _i);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Method                                                              */
/* ------------------------------------------------------------------ */

static const struct head_case method_cases[] = {
    {.method = "GET", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "HEAD", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "POST", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "PUT", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "DELETE", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "OPTIONS", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "PATCH", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "TRACE", .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "", .h = {H("Host", "h")}, .status = 400, .why = "method is not a token"},
    {.method = "GE T", .h = {H("Host", "h")}, .status = 400, .why = "method is not a token"},
    {.method = "GET:", .h = {H("Host", "h")}, .status = 400, .why = "method is not a token"},
    {.method = "G\x80T", .h = {H("Host", "h")}, .status = 400, .why = "method is not a token"},
    {.method = "(GET)", .h = {H("Host", "h")}, .status = 400, .why = "method is not a token"},
    /* Methods are case-sensitive (RFC 9110 9.1). */
    {.method = "get", .h = {H("Host", "h")}, .status = 501, .why = "method not implemented"},
    {.method = "BREW", .h = {H("Host", "h")}, .status = 501, .why = "method not implemented"},
    {.method = "CONNECT", .h = {H("Host", "h")}, .status = 501, .why = "method not implemented"},
    {.method = "HEADX", .h = {H("Host", "h")}, .status = 501, .why = "method not implemented"},
    {.method = "GE", .h = {H("Host", "h")}, .status = 501, .why = "method not implemented"},
};

START_TEST(head_method)
{
    check_case(&method_cases[_i], _i);
}
END_TEST

/* any_method (the test client) passes every token, and only tokens. */
static const struct head_case any_method_cases[] = {
    {.method = "BREW", .any_method = 1, .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "get", .any_method = 1, .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "CONNECT",
     .any_method = 1,
     .h = {H("Host", "h")},
     .content_length = -1,
     .host = "h"},
    {.method = "PROPFIND",
     .any_method = 1,
     .h = {H("Host", "h")},
     .content_length = -1,
     .host = "h"},
    {.method = "HEAD", .any_method = 1, .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "GET", .any_method = 1, .h = {H("Host", "h")}, .content_length = -1, .host = "h"},
    {.method = "",
     .any_method = 1,
     .h = {H("Host", "h")},
     .status = 400,
     .why = "method is not a token"},
    {.method = "GE T",
     .any_method = 1,
     .h = {H("Host", "h")},
     .status = 400,
     .why = "method is not a token"},
    {.method = "G\x80T",
     .any_method = 1,
     .h = {H("Host", "h")},
     .status = 400,
     .why = "method is not a token"},
    /* The other checks still apply. */
    {.method = "BREW", .any_method = 1, .status = 400, .why = "without Host"},
    {.method = "BREW",
     .any_method = 1,
     .target = B("*"),
     .h = {H("Host", "h")},
     .status = 400,
     .why = "other than OPTIONS"},
};

START_TEST(head_method_any)
{
    check_case(&any_method_cases[_i], _i);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Request-target                                                      */
/* ------------------------------------------------------------------ */

#define HOST_H .h = {H("Host", "h")}

static const struct head_case target_cases[] = {
    {.target = B("/"), HOST_H, .content_length = -1, .host = "h", .path = "/", .query = ""},
    {.target = B("/a%20b?x=%20&y"),
     HOST_H,
     .content_length = -1,
     .host = "h",
     .path = "/a b",
     .query = "x=%20&y"},
    {.target = B("/a%2Fb?"),
     HOST_H,
     .content_length = -1,
     .host = "h",
     .path = "/a/b",
     .query = ""},
    {.target = B("/caf%C3%A9"),
     HOST_H,
     .content_length = -1,
     .host = "h",
     .path = "/caf\xc3\xa9",
     .query = ""},
    {.target = B(""), HOST_H, .status = 400, .why = "empty request-target"},
    {.target = B("hello"), HOST_H, .status = 400, .why = "not origin-form"},
    {.target = B("/a#b"), HOST_H, .status = 400, .why = "'#'"},
    {.target = B("/a\x80"), HOST_H, .status = 400, .why = "control, space or '#'"},
    {.target = B("/\xff"), HOST_H, .status = 400, .why = "control, space or '#'"},
    {.target = B("/a b"), HOST_H, .status = 400, .why = "control, space or '#'"},
    {.target = B("/a\0b"), HOST_H, .status = 400, .why = "control, space or '#'"},
    {.target = B("/a%00"), HOST_H, .status = 400, .why = "encoded NUL"},
    {.target = B("/%zz"), HOST_H, .status = 400, .why = "bad %-escape"},
    {.target = B("/%4"), HOST_H, .status = 400, .why = "bad %-escape"},
    /* Asterisk-form only with OPTIONS. */
    {.method = "OPTIONS",
     .target = B("*"),
     HOST_H,
     .content_length = -1,
     .host = "h",
     .path = "*",
     .query = ""},
    {.method = "GET", .target = B("*"), HOST_H, .status = 400, .why = "other than OPTIONS"},
    {.method = "HEAD", .target = B("*"), HOST_H, .status = 400, .why = "other than OPTIONS"},
    {.method = "POST", .target = B("*"), HOST_H, .status = 400, .why = "other than OPTIONS"},
};

START_TEST(head_target)
{
    check_case(&target_cases[_i], _i);
}
END_TEST

/* Asterisk-form is reported as such. */
START_TEST(head_target_asterisk_fact)
{
    static const struct head_case c = {
        .method = "OPTIONS", .target = B("*"), HOST_H, .content_length = -1, .host = "h"};
    struct built b;
    struct csgi__head_facts f;
    const char *why = NULL;

    build(&b, &c);
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 0);
    ck_assert_int_eq(f.target.asterisk, 1);
    ck_assert_ptr_null(f.target.host);
    unbuild(&b);

    build(&b, &target_cases[0]);
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 0);
    ck_assert_int_eq(f.target.asterisk, 0);
    unbuild(&b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Absolute-form: the target's authority replaces Host                 */
/* ------------------------------------------------------------------ */

static const struct head_case absolute_cases[] = {
    {.target = B("http://example.org:81/p?q"),
     .h = {H("Host", "other")},
     .content_length = -1,
     .host = "example.org",
     .path = "/p",
     .query = "q"},
    {.target = B("https://t/a%20b"),
     .h = {H("Host", "other:8080")},
     .content_length = -1,
     .host = "t",
     .path = "/a b",
     .query = ""},
    {.target = B("http://[::1]:8080"),
     .h = {H("Host", "h")},
     .content_length = -1,
     .host = "[::1]",
     .path = "/",
     .query = ""},
    {.target = B("HTTP://Target?x"),
     .h = {H("Host", "h")},
     .content_length = -1,
     .host = "Target",
     .path = "/",
     .query = "x"},
    /* HTTP/1.0 needs no Host: the target names the host. */
    {.version = "HTTP/1.0",
     .target = B("http://only.target/x"),
     .content_length = -1,
     .host = "only.target",
     .path = "/x",
     .query = ""},
    /* HTTP/1.1 still needs a Host field, once and well formed (RFC 9112 3.2). */
    {.target = B("http://example.org/"), .status = 400, .why = "without Host"},
    {.target = B("http://example.org/"),
     .h = {H("Host", "a"), H("Host", "a")},
     .status = 400,
     .why = "repeated Host"},
    {.target = B("http://example.org/"),
     .h = {H("Host", "a@b")},
     .status = 400,
     .why = "invalid Host"},
    /* A bad authority in the target itself. */
    {.target = B("http://u@example.org/"), .h = {H("Host", "h")}, .status = 400, .why = "userinfo"},
    {.target = B("http://example.org:99999/"),
     .h = {H("Host", "h")},
     .status = 400,
     .why = "authority is invalid"},
    {.target = B("http:///p"), .h = {H("Host", "h")}, .status = 400, .why = "authority is empty"},
};

START_TEST(head_absolute_form)
{
    check_case(&absolute_cases[_i], _i);
}
END_TEST

/*
 * A connection's remembered Host (known_host) is taken as checked, with the
 * length of its name; any other value, or one that differs by a byte, is
 * parsed and checked again.
 */
START_TEST(head_known_host_memo)
{
    static const struct head_case same = {.h = {H("Host", "a.test:81")}, .content_length = -1};
    static const struct head_case other = {.h = {H("Host", "a.test:8\r")}, .content_length = -1};
    static const char memo[] = "a.test:81";
    struct built b;
    struct csgi__head_facts f;
    const char *why = NULL;

    build(&b, &same);
    b.head.known_host = memo;
    b.head.known_host_len = sizeof(memo) - 1;
    b.head.known_host_name_len = 6;
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 0);
    ck_assert_ptr_eq(f.host_field.ptr, memo);
    ck_assert(span_eq(f.host, f.host_len, "a.test"));
    unbuild(&b);

    build(&b, &other);
    b.head.known_host = memo;
    b.head.known_host_len = sizeof(memo) - 1;
    b.head.known_host_name_len = 6;
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 400);
    ck_assert_msg(strstr(why, "control byte") != NULL, "%s", why);
    unbuild(&b);
}
END_TEST

/* The Host line the application reads becomes the target's authority, port included. */
START_TEST(head_absolute_form_host_line)
{
    static const struct head_case c = {.target = B("http://example.org:81/p"),
                                       .h = {H("X-A", "1"), H("Host", "other"), H("X-B", "2")},
                                       .content_length = -1,
                                       .host = "example.org"};
    struct built b;
    struct csgi__head_facts f;
    const char *why = NULL;

    build(&b, &c);
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 0);
    ck_assert(span_eq(b.head.headers[1].value.ptr, b.head.headers[1].value.len, "example.org:81"));
    ck_assert(span_eq(b.head.headers[0].value.ptr, b.head.headers[0].value.len, "1"));
    ck_assert(span_eq(b.head.headers[2].value.ptr, b.head.headers[2].value.len, "2"));
    unbuild(&b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Accepted heads: the facts, exactly                                  */
/* ------------------------------------------------------------------ */

START_TEST(head_accepted_facts)
{
    static const struct head_case c = {
        .method = "POST",
        .target = B("/up%2Fload/x?a=1&b=%20"),
        .h = {H("Host", "example.org:8443"), H("Content-Type", "text/plain; charset=utf-8"),
              H("Content-Length", "12"), H("X-A", "b")},
    };
    struct built b;
    struct csgi__head_facts f;
    const char *why = NULL;

    build(&b, &c);
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 0);
    ck_assert_int_eq(f.http11, 1);
    ck_assert_int_eq(f.head_request, 0);
    ck_assert_int_eq(f.content_length, 12);
    ck_assert_int_eq(f.chunked, 0);
    /* host and content_type point into the header values. */
    ck_assert_ptr_eq(f.host, b.h[0].value.ptr);
    ck_assert_uint_eq(f.host_len, 11);
    ck_assert_ptr_eq(f.content_type.ptr, b.h[1].value.ptr);
    ck_assert_uint_eq(f.content_type.len, strlen("text/plain; charset=utf-8"));
    ck_assert_ptr_eq(f.target.path, b.path_buf);
    ck_assert_str_eq(f.target.path, "/up/load/x");
    ck_assert_uint_eq(f.target.path_len, 10);
    ck_assert(span_eq(f.target.raw_path, f.target.raw_path_len, "/up%2Fload/x"));
    ck_assert(span_eq(f.target.query, f.target.query_len, "a=1&b=%20"));
    ck_assert_ptr_eq(f.target.query, b.target + strlen("/up%2Fload/x?"));
    ck_assert_ptr_null(f.target.host);
    ck_assert_int_eq(f.target.asterisk, 0);
    unbuild(&b);
}
END_TEST

START_TEST(head_accepted_head_request)
{
    static const struct head_case c = {
        .method = "HEAD", .version = "HTTP/1.0", .target = B("/index.html")};
    struct built b;
    struct csgi__head_facts f;
    const char *why = NULL;

    build(&b, &c);
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 0);
    ck_assert_int_eq(f.http11, 0);
    ck_assert_int_eq(f.head_request, 1);
    ck_assert_int_eq(f.content_length, -1);
    ck_assert_int_eq(f.chunked, 0);
    ck_assert_ptr_null(f.host);
    ck_assert_uint_eq(f.host_len, 0);
    ck_assert_ptr_null(f.content_type.ptr);
    ck_assert_uint_eq(f.content_type.len, 0);
    ck_assert_str_eq(f.target.path, "/index.html");
    ck_assert(span_eq(f.target.query, f.target.query_len, ""));
    unbuild(&b);
}
END_TEST

START_TEST(head_accepted_chunked)
{
    static const struct head_case c = {
        .method = "PUT",
        .target = B("/r"),
        .h = {H("transfer-encoding", "Chunked"), H("HOST", "h"), H("content-type", "")},
    };
    struct built b;
    struct csgi__head_facts f;
    const char *why = NULL;

    build(&b, &c);
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 0);
    ck_assert_int_eq(f.http11, 1);
    ck_assert_int_eq(f.head_request, 0);
    ck_assert_int_eq(f.chunked, 1);
    ck_assert_int_eq(f.content_length, -1);
    ck_assert_ptr_eq(f.host, b.h[1].value.ptr);
    ck_assert_uint_eq(f.host_len, 1);
    /* An empty Content-Type is present, with length 0. */
    ck_assert_ptr_eq(f.content_type.ptr, b.h[2].value.ptr);
    ck_assert_uint_eq(f.content_type.len, 0);
    ck_assert_str_eq(f.target.path, "/r");
    unbuild(&b);
}
END_TEST

/* An accepted head writes every fact, whatever the struct held after an earlier refusal. */
START_TEST(head_accepted_after_refusal)
{
    static const struct head_case bad = {.method = "POST",
                                         .h = {H("Host", "h"), H("Content-Length", "x")}};
    static const struct head_case good = {.h = {H("Host", "h")}};
    struct built b;
    struct csgi__head_facts f;
    const char *why = NULL;

    build(&b, &bad);
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 400);
    unbuild(&b);
    memset(&f, 0x5a, sizeof(f));
    build(&b, &good);
    ck_assert_int_eq(csgi__head_check(&b.head, b.path_buf, &f, &why), 0);
    ck_assert_int_eq(f.content_length, -1);
    ck_assert_int_eq(f.chunked, 0);
    ck_assert_int_eq(f.head_request, 0);
    ck_assert_ptr_null(f.content_type.ptr);
    ck_assert_uint_eq(f.content_type.len, 0);
    unbuild(&b);
}
END_TEST

/*
 * A memo filled by another head answers nothing for this one: the next case
 * of the table primes it (same lines, other bytes, or other lines).
 */
START_TEST(head_memo_other_head_target)
{
    struct csgi__head_memo memo;

    memset(&memo, 0, sizeof(memo));
    check_after(&target_cases[(_i + 1) % (int)N_OF(target_cases)], &target_cases[_i], _i, &memo);
}
END_TEST

START_TEST(head_memo_other_head_host)
{
    struct csgi__head_memo memo;

    memset(&memo, 0, sizeof(memo));
    check_after(&host_cases[(_i + 1) % (int)N_OF(host_cases)], &host_cases[_i], _i, &memo);
}
END_TEST

START_TEST(head_memo_other_head_framing)
{
    struct csgi__head_memo memo;

    memset(&memo, 0, sizeof(memo));
    check_after(&framing_cases[(_i + 1) % (int)N_OF(framing_cases)], &framing_cases[_i], _i, &memo);
}
END_TEST

/*
 * A remembered head that differs from the next by one byte anywhere (the
 * method, the version, the target, a name, a value) is checked again: a
 * control byte in a value is refused even though the memo held the rest.
 */
START_TEST(head_memo_one_byte)
{
    static const struct head_case ok = {
        .method = "POST",
        .target = B("/a?b"),
        .h = {H("Host", "h:1"), H("Content-Length", "5"), H("Content-Type", "text/plain")},
        .content_length = 5,
        .host = "h",
        .path = "/a",
        .query = "b"};
    static const struct head_case bad[] = {
        {.method = "POST",
         .target = B("/a?b"),
         .h = {H("Host", "h:1"), H("Content-Length", "5"), H("Content-Type", "text/plai\x01")},
         .status = 400,
         .why = "control byte"},
        {.method = "POST",
         .target = B("/a?b"),
         .h = {H("Host", "h:1"), H("Content-Length", "6"), H("Content-Type", "text/plain")},
         .content_length = 6,
         .host = "h",
         .path = "/a",
         .query = "b"},
        {.method = "POST",
         .target = B("/a?c"),
         .h = {H("Host", "h:1"), H("Content-Length", "5"), H("Content-Type", "text/plain")},
         .content_length = 5,
         .host = "h",
         .path = "/a",
         .query = "c"},
        {.method = "POST",
         .target = B("/a?b"),
         .h = {H("Hosu", "h:1"), H("Content-Length", "5"), H("Content-Type", "text/plain")},
         .status = 400,
         .why = "without Host"},
        {.method = "PUSH",
         .target = B("/a?b"),
         .h = {H("Host", "h:1"), H("Content-Length", "5"), H("Content-Type", "text/plain")},
         .status = 501,
         .why = "not implemented"},
        {.method = "POST",
         .version = "HTTP/1.2",
         .target = B("/a?b"),
         .h = {H("Host", "h:1"), H("Content-Length", "5"), H("Content-Type", "text/plain")},
         .status = 505,
         .why = "version"},
        {.method = "POST",
         .target = B("/a?b"),
         .h = {H("Host", "h:1"), H("Content-Length", "5"), H("Content-Type", "text/plain"),
               H("Transfer-Encoding", "chunked")},
         .status = 400,
         .why = "both"},
    };
    struct csgi__head_memo memo;

    memset(&memo, 0, sizeof(memo));
    check_after(&ok, &bad[_i], _i, &memo);
    ck_assert_uint_eq(memo.hits, 0);
    /* And back: the memo holds the last accepted head, or none after a refusal. */
    check_after(&ok, &ok, 0, &memo);
    ck_assert_uint_eq(memo.hits, 1);
}
END_TEST

static Suite *
head_suite(void)
{
    Suite *s = suite_create("head");
    TCase *tc;

    tc = tcase_create("version");
    tcase_add_loop_test(tc, head_version, 0, (int)N_OF(version_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("too_many_headers");
    tcase_add_loop_test(tc, head_too_many_headers, 0, (int)N_OF(limit_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("header_lines");
    tcase_add_loop_test(tc, head_header_line, 0, (int)N_OF(line_cases));
    tcase_add_loop_test(tc, head_header_line_accepted, 0, (int)N_OF(line_ok_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("framing");
    tcase_add_loop_test(tc, head_framing, 0, (int)N_OF(framing_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("host");
    tcase_add_loop_test(tc, head_host, 0, (int)N_OF(host_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("method");
    tcase_add_loop_test(tc, head_method, 0, (int)N_OF(method_cases));
    tcase_add_loop_test(tc, head_method_any, 0, (int)N_OF(any_method_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("target");
    tcase_add_loop_test(tc, head_target, 0, (int)N_OF(target_cases));
    tcase_add_test(tc, head_target_asterisk_fact);
    suite_add_tcase(s, tc);

    tc = tcase_create("absolute_form");
    tcase_add_loop_test(tc, head_absolute_form, 0, (int)N_OF(absolute_cases));
    tcase_add_test(tc, head_absolute_form_host_line);
    tcase_add_test(tc, head_known_host_memo);
    suite_add_tcase(s, tc);

    tc = tcase_create("memo");
    tcase_add_loop_test(tc, head_memo_other_head_target, 0, (int)N_OF(target_cases));
    tcase_add_loop_test(tc, head_memo_other_head_host, 0, (int)N_OF(host_cases));
    tcase_add_loop_test(tc, head_memo_other_head_framing, 0, (int)N_OF(framing_cases));
    tcase_add_loop_test(tc, head_memo_one_byte, 0, 7);
    suite_add_tcase(s, tc);

    tc = tcase_create("accepted");
    tcase_add_test(tc, head_accepted_facts);
    tcase_add_test(tc, head_accepted_head_request);
    tcase_add_test(tc, head_accepted_chunked);
    tcase_add_test(tc, head_accepted_after_refusal);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(head_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
