/*
 * Unit tests for gateway/lib/httpcheck.c: the HTTP syntax checks shared by
 * the server and the helper library (tokens, field values, Content-Length and
 * the start_response() head check of SPEC.md section 4.4).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "csgi_internal.h"

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

/* ------------------------------------------------------------------ */
/* csgi__is_token                                                      */
/* ------------------------------------------------------------------ */

static const struct {
    struct bytes in;
    int ok;
} token_cases[] = {
    {B("Content-Type"), 1},
    {B("x"), 1},
    {B("X-Custom_Header.v2"), 1},
    {B("!#$%&'*+-.^_`|~"), 1},
    {B("0123456789"), 1},
    {B(""), 0},
    {B("a b"), 0},
    {B("a:b"), 0},
    {B("a\tb"), 0},
    {B("a\"b"), 0},
    {B("a(b)"), 0},
    {B("a,b"), 0},
    {B("a/b"), 0},
    {B("a;b"), 0},
    {B("a=b"), 0},
    {B("a@b"), 0},
    {B("a[b]"), 0},
    {B("a{b}"), 0},
    {B("a\\b"), 0},
    {B("a?b"), 0},
    {B("<a>"), 0},
    {B("a\x7f"), 0},
    {B("a\x80"), 0},
    {B("\xc3\xa9"), 0},
    {B("a\0b"), 0},
    {B("a\r\n"), 0},
};

START_TEST(httpcheck_is_token)
{
    char *p = exact(token_cases[_i].in.p, token_cases[_i].in.n);

    ck_assert_msg(csgi__is_token(p, token_cases[_i].in.n) == token_cases[_i].ok,
                  "case %d: \"%.*s\" should %sbe a token", _i, (int)token_cases[_i].in.n,
                  token_cases[_i].in.p, token_cases[_i].ok ? "" : "not ");
    free(p);
}
END_TEST

START_TEST(httpcheck_is_token_null)
{
    ck_assert_int_eq(csgi__is_token(NULL, 0), 0);
    ck_assert_int_eq(csgi__is_token(NULL, 3), 0);
    /* Only the first n bytes count. */
    ck_assert_int_eq(csgi__is_token("ab cd", 2), 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* csgi__is_field_value / csgi__is_reason                              */
/* ------------------------------------------------------------------ */

static const struct {
    struct bytes in;
    int ok;
} value_cases[] = {
    {B(""), 1},
    {B("text/html; charset=utf-8"), 1},
    {B("a b\tc"), 1},
    {B("\x80\xff obs-text"), 1},
    {B("~!@#$%^&*()"), 1},
    {B(" leading and trailing "), 1},
    {B("a\rb"), 0},
    {B("a\nb"), 0},
    {B("a\r\nX-Injected: 1"), 0},
    {B("a\0b"), 0},
    {B("\x01"), 0},
    {B("\x1f"), 0},
    {B("a\x7f"), 0},
    {B("\x0b"), 0},
};

START_TEST(httpcheck_is_field_value)
{
    char *p = exact(value_cases[_i].in.p, value_cases[_i].in.n);

    ck_assert_msg(csgi__is_field_value(p, value_cases[_i].in.n) == value_cases[_i].ok,
                  "case %d: field value check should give %d", _i, value_cases[_i].ok);
    ck_assert_msg(csgi__is_reason(p, value_cases[_i].in.n) == value_cases[_i].ok,
                  "case %d: reason check should give %d", _i, value_cases[_i].ok);
    free(p);
}
END_TEST

START_TEST(httpcheck_is_field_value_null)
{
    ck_assert_int_eq(csgi__is_field_value(NULL, 0), 1);
    ck_assert_int_eq(csgi__is_field_value(NULL, 1), 0);
    ck_assert_int_eq(csgi__is_reason(NULL, 0), 1);
    ck_assert_int_eq(csgi__is_reason(NULL, 2), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* csgi__str_ieq                                                       */
/* ------------------------------------------------------------------ */

static const struct {
    struct bytes a;
    const char *b;
    int eq;
} ieq_cases[] = {
    {B("Content-Length"), "content-length", 1},
    {B("CONTENT-LENGTH"), "content-length", 1},
    {B("content-length"), "Content-Length", 1},
    {B(""), "", 1},
    {B("a"), "", 0},
    {B(""), "a", 0},
    {B("content-lengt"), "content-length", 0},
    {B("content-lengthx"), "content-length", 0},
    {B("content_length"), "content-length", 0},
    /* Only ASCII letters fold: '@' (0x40) is not '`' (0x60), '[' is not '{'. */
    {B("@"), "`", 0},
    {B("["), "{", 0},
    {B("^"), "~", 0},
    {B("\xc9"), "\xe9", 0},
    {B("a\0"), "a", 0},
};

START_TEST(httpcheck_str_ieq)
{
    char *p = exact(ieq_cases[_i].a.p, ieq_cases[_i].a.n);

    ck_assert_msg(csgi__str_ieq(p, ieq_cases[_i].a.n, ieq_cases[_i].b) == ieq_cases[_i].eq,
                  "case %d: \"%.*s\" vs \"%s\" should give %d", _i, (int)ieq_cases[_i].a.n,
                  ieq_cases[_i].a.p, ieq_cases[_i].b, ieq_cases[_i].eq);
    free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* csgi__bytes_eq                                                      */
/* ------------------------------------------------------------------ */

/*
 * Every length from 0 to 100, each with one byte changed at every position
 * (and with none), both ways round: equal exactly when
 * memcmp() says so, reading nothing outside the strings (exact() copies
 * each into a block of its own size, so ASan and valgrind see an overread).
 */
START_TEST(httpcheck_bytes_eq)
{
    size_t n = (size_t)_i;
    char src[100];

    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (char)('a' + i % 26);
    for (size_t pos = 0; pos <= n; pos++) {
        char *a = exact(src, n), *b = exact(src, n);

        if (pos < n)
            b[pos] ^= 0x40;
        ck_assert_msg(csgi__bytes_eq(a, b, n) == (memcmp(a, b, n) == 0),
                      "length %zu, byte %zu changed", n, pos);
        ck_assert_msg(csgi__bytes_eq(b, a, n) == (memcmp(a, b, n) == 0),
                      "length %zu, byte %zu changed (swapped)", n, pos);
        free(a);
        free(b);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* csgi__is_hop_by_hop                                                 */
/* ------------------------------------------------------------------ */

static const struct {
    const char *name;
    int hop;
} hop_cases[] = {
    {"Connection", 1},
    {"connection", 1},
    {"Keep-Alive", 1},
    {"KEEP-ALIVE", 1},
    {"Proxy-Connection", 1},
    {"TE", 1},
    {"te", 1},
    {"Trailer", 1},
    {"Transfer-Encoding", 1},
    {"transfer-encoding", 1},
    {"Upgrade", 1},
    {"Connections", 0},
    {"Trailers", 0},
    {"T", 0},
    {"Upgrade-Insecure-Requests", 0},
    {"Proxy-Authorization", 0},
    {"Content-Length", 0},
    {"Content-Encoding", 0},
    {"", 0},
};

START_TEST(httpcheck_is_hop_by_hop)
{
    const char *name = hop_cases[_i].name;

    ck_assert_msg(csgi__is_hop_by_hop(name, strlen(name)) == hop_cases[_i].hop,
                  "\"%s\" should %sbe hop-by-hop", name, hop_cases[_i].hop ? "" : "not ");
}
END_TEST

/* ------------------------------------------------------------------ */
/* csgi__status_reason                                                 */
/* ------------------------------------------------------------------ */

START_TEST(httpcheck_status_reason)
{
    ck_assert_str_eq(csgi__status_reason(200), "OK");
    ck_assert_str_eq(csgi__status_reason(204), "No Content");
    ck_assert_str_eq(csgi__status_reason(304), "Not Modified");
    ck_assert_str_eq(csgi__status_reason(404), "Not Found");
    ck_assert_str_eq(csgi__status_reason(413), "Content Too Large");
    ck_assert_str_eq(csgi__status_reason(500), "Internal Server Error");
    ck_assert_str_eq(csgi__status_reason(299), "Unknown");
    ck_assert_str_eq(csgi__status_reason(0), "Unknown");
    ck_assert_str_eq(csgi__status_reason(-200), "Unknown");
    ck_assert_str_eq(csgi__status_reason(1000), "Unknown");
    /* Every phrase is itself a valid reason phrase. */
    for (int s = 100; s < 600; s++) {
        const char *r = csgi__status_reason(s);

        ck_assert_ptr_nonnull(r);
        ck_assert_msg(r[0] != '\0' && csgi__is_reason(r, strlen(r)), "status %d: \"%s\"", s, r);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* csgi__parse_content_length                                          */
/* ------------------------------------------------------------------ */

static const struct {
    struct bytes in;
    int64_t value;
} cl_cases[] = {
    {B("0"), 0},
    {B("42"), 42},
    {B("000"), 0},
    {B("0012"), 12},
    {B("999999999999999999"), 999999999999999999LL},
    {B("1000000000000000000"), -1},
    {B("99999999999999999999"), -1},
    {B(""), -1},
    {B("-1"), -1},
    {B("+1"), -1},
    {B(" 1"), -1},
    {B("1 "), -1},
    {B("1,1"), -1},
    {B("5, 5"), -1},
    {B("0x10"), -1},
    {B("1e3"), -1},
    {B("1.0"), -1},
    {B("1\0"), -1},
    {B("\xd9\xa1"), -1},
};

START_TEST(httpcheck_parse_content_length)
{
    char *p = exact(cl_cases[_i].in.p, cl_cases[_i].in.n);
    int64_t v = csgi__parse_content_length(p, cl_cases[_i].in.n);

    ck_assert_msg(v == cl_cases[_i].value, "case %d \"%.*s\": got %lld, want %lld", _i,
                  (int)cl_cases[_i].in.n, cl_cases[_i].in.p, (long long)v,
                  (long long)cl_cases[_i].value);
    free(p);
}
END_TEST

START_TEST(httpcheck_parse_content_length_bounds)
{
    ck_assert_int_eq(csgi__parse_content_length(NULL, 0), -1);
    ck_assert_int_eq(csgi__parse_content_length(NULL, 3), -1);
    /* Only the first n bytes count. */
    ck_assert_int_eq(csgi__parse_content_length("123", 2), 12);
    ck_assert_int_eq(csgi__parse_content_length("12x", 2), 12);
}
END_TEST

/* ------------------------------------------------------------------ */
/* csgi__check_response_head                                           */
/* ------------------------------------------------------------------ */

#define S(lit)                                                                                     \
    {                                                                                              \
        (lit), sizeof(lit) - 1                                                                     \
    }
#define NO_STR                                                                                     \
    {                                                                                              \
        NULL, 0                                                                                    \
    }
#define MAX_H 4

static const struct head_case {
    const char *what;
    int status;
    struct csgi_str reason;
    size_t n_headers;
    struct csgi_header headers[MAX_H];
    int rc;
    int64_t content_length; /* on success */
    const char *why;        /* on failure: a fragment of the reason */
} head_cases[] = {
    {"plain 200", 200, NO_STR, 0, {{NO_STR, NO_STR}}, CSGI_OK, -1, NULL},
    {"lowest status", 200, S("OK"), 0, {{NO_STR, NO_STR}}, CSGI_OK, -1, NULL},
    {"highest status", 599, S("Whatever"), 0, {{NO_STR, NO_STR}}, CSGI_OK, -1, NULL},
    {"1xx refused", 199, NO_STR, 0, {{NO_STR, NO_STR}}, CSGI_ESTATUS, 0, "199"},
    {"100 refused", 100, NO_STR, 0, {{NO_STR, NO_STR}}, CSGI_ESTATUS, 0, "100"},
    {"600 refused", 600, NO_STR, 0, {{NO_STR, NO_STR}}, CSGI_ESTATUS, 0, "600"},
    {"0 refused", 0, NO_STR, 0, {{NO_STR, NO_STR}}, CSGI_ESTATUS, 0, "0"},
    {"negative refused", -200, NO_STR, 0, {{NO_STR, NO_STR}}, CSGI_ESTATUS, 0, "-200"},
    {"empty reason", 200, {"", 0}, 0, {{NO_STR, NO_STR}}, CSGI_OK, -1, NULL},
    {"reason with tab and obs-text",
     200,
     S("Fine\t\xe9"),
     0,
     {{NO_STR, NO_STR}},
     CSGI_OK,
     -1,
     NULL},
    {"reason with CRLF",
     200,
     S("OK\r\nX-Evil: 1"),
     0,
     {{NO_STR, NO_STR}},
     CSGI_ESTATUS,
     0,
     "reason"},
    {"reason with DEL", 200, S("O\x7fK"), 0, {{NO_STR, NO_STR}}, CSGI_ESTATUS, 0, "reason"},
    {"reason NULL with length", 200, {NULL, 3}, 0, {{NO_STR, NO_STR}}, CSGI_ESTATUS, 0, "reason"},
    {"content-type", 200, NO_STR, 1, {{S("Content-Type"), S("text/plain")}}, CSGI_OK, -1, NULL},
    {"duplicate set-cookie",
     200,
     NO_STR,
     2,
     {{S("Set-Cookie"), S("a=1")}, {S("Set-Cookie"), S("b=2")}},
     CSGI_OK,
     -1,
     NULL},
    {"empty value", 200, NO_STR, 1, {{S("X-Empty"), S("")}}, CSGI_OK, -1, NULL},
    {"obs-text value", 200, NO_STR, 1, {{S("X-Latin"), S("caf\xe9")}}, CSGI_OK, -1, NULL},
    {"name with space", 200, NO_STR, 1, {{S("Bad Name"), S("x")}}, CSGI_EHEADER, 0, "Bad Name"},
    {"name with colon", 200, NO_STR, 1, {{S("X:Y"), S("x")}}, CSGI_EHEADER, 0, "X:Y"},
    {"empty name", 200, NO_STR, 1, {{S(""), S("x")}}, CSGI_EHEADER, 0, "header name"},
    {"NULL name", 200, NO_STR, 1, {{{NULL, 4}, S("x")}}, CSGI_EHEADER, 0, "header name"},
    {"value with LF", 200, NO_STR, 1, {{S("X-A"), S("a\nb")}}, CSGI_EHEADER, 0, "X-A"},
    {"value with CR", 200, NO_STR, 1, {{S("X-A"), S("a\rb")}}, CSGI_EHEADER, 0, "X-A"},
    {"value with NUL", 200, NO_STR, 1, {{S("X-A"), S("a\0b")}}, CSGI_EHEADER, 0, "X-A"},
    {"value NULL with length", 200, NO_STR, 1, {{S("X-A"), {NULL, 2}}}, CSGI_EHEADER, 0, "X-A"},
    {"Status header", 200, NO_STR, 1, {{S("Status"), S("200")}}, CSGI_EHEADER, 0, "Status"},
    {"status header", 200, NO_STR, 1, {{S("status"), S("200")}}, CSGI_EHEADER, 0, "status"},
    {"Connection", 200, NO_STR, 1, {{S("Connection"), S("close")}}, CSGI_EHEADER, 0, "Connection"},
    {"Keep-Alive", 200, NO_STR, 1, {{S("keep-alive"), S("5")}}, CSGI_EHEADER, 0, "keep-alive"},
    {"Proxy-Connection",
     200,
     NO_STR,
     1,
     {{S("Proxy-Connection"), S("x")}},
     CSGI_EHEADER,
     0,
     "Proxy-Connection"},
    {"TE", 200, NO_STR, 1, {{S("TE"), S("trailers")}}, CSGI_EHEADER, 0, "TE"},
    {"Trailer", 200, NO_STR, 1, {{S("Trailer"), S("X")}}, CSGI_EHEADER, 0, "Trailer"},
    {"Transfer-Encoding",
     200,
     NO_STR,
     1,
     {{S("Transfer-Encoding"), S("chunked")}},
     CSGI_EHEADER,
     0,
     "Transfer-Encoding"},
    {"Upgrade", 200, NO_STR, 1, {{S("Upgrade"), S("h2c")}}, CSGI_EHEADER, 0, "Upgrade"},
    {"content-length", 200, NO_STR, 1, {{S("Content-Length"), S("5")}}, CSGI_OK, 5, NULL},
    {"content-length 0", 200, NO_STR, 1, {{S("content-length"), S("0")}}, CSGI_OK, 0, NULL},
    {"content-length max",
     200,
     NO_STR,
     1,
     {{S("Content-Length"), S("999999999999999999")}},
     CSGI_OK,
     999999999999999999LL,
     NULL},
    {"content-length twice",
     200,
     NO_STR,
     2,
     {{S("Content-Length"), S("5")}, {S("content-length"), S("5")}},
     CSGI_EHEADER,
     0,
     "duplicate"},
    {"content-length twice, first zero",
     200,
     NO_STR,
     2,
     {{S("Content-Length"), S("0")}, {S("Content-Length"), S("0")}},
     CSGI_EHEADER,
     0,
     "duplicate"},
    {"content-length list",
     200,
     NO_STR,
     1,
     {{S("Content-Length"), S("5, 5")}},
     CSGI_EHEADER,
     0,
     "Content-Length"},
    {"content-length negative",
     200,
     NO_STR,
     1,
     {{S("Content-Length"), S("-1")}},
     CSGI_EHEADER,
     0,
     "-1"},
    {"content-length empty",
     200,
     NO_STR,
     1,
     {{S("Content-Length"), S("")}},
     CSGI_EHEADER,
     0,
     "Content-Length"},
    {"content-length 19 digits",
     200,
     NO_STR,
     1,
     {{S("Content-Length"), S("1000000000000000000")}},
     CSGI_EHEADER,
     0,
     "Content-Length"},
    {"204 with content-length",
     204,
     NO_STR,
     1,
     {{S("Content-Length"), S("0")}},
     CSGI_EHEADER,
     0,
     "204"},
    {"304 with content-length",
     304,
     NO_STR,
     1,
     {{S("Content-Length"), S("10")}},
     CSGI_EHEADER,
     0,
     "304"},
    {"204 without content-length", 204, NO_STR, 1, {{S("X-A"), S("b")}}, CSGI_OK, -1, NULL},
    {"205 with content-length", 205, NO_STR, 1, {{S("Content-Length"), S("0")}}, CSGI_OK, 0, NULL},
    {"bad header after good ones",
     200,
     NO_STR,
     3,
     {{S("Content-Type"), S("text/plain")}, {S("Content-Length"), S("3")}, {S("TE"), S("x")}},
     CSGI_EHEADER,
     0,
     "TE"},
};

START_TEST(httpcheck_response_head)
{
    const struct head_case *c = &head_cases[_i];
    char why[256] = "";
    int64_t cl = 12345;
    int rc = csgi__check_response_head(c->status, c->reason, c->n_headers ? c->headers : NULL,
                                       c->n_headers, &cl, why, sizeof(why));

    ck_assert_msg(rc == c->rc, "%s: got %d (%s), want %d", c->what, rc, why, c->rc);
    if (rc == CSGI_OK) {
        ck_assert_msg(cl == c->content_length, "%s: content length %lld, want %lld", c->what,
                      (long long)cl, (long long)c->content_length);
    } else {
        ck_assert_msg(strstr(why, c->why) != NULL, "%s: why \"%s\" lacks \"%s\"", c->what, why,
                      c->why);
    }
}
END_TEST

START_TEST(httpcheck_response_head_null_headers)
{
    char why[128] = "";

    ck_assert_int_eq(
        csgi__check_response_head(200, (struct csgi_str)NO_STR, NULL, 0, NULL, NULL, 0), CSGI_OK);
    ck_assert_int_eq(
        csgi__check_response_head(200, (struct csgi_str)NO_STR, NULL, 2, NULL, why, sizeof(why)),
        CSGI_EHEADER);
    ck_assert_ptr_nonnull(strstr(why, "NULL"));
}
END_TEST

/*
 * BUG (httpcheck.c:214, fail()): csgi_internal.h promises "a one-line reason"
 * in why, but fail() quotes the offending reason phrase or header name
 * verbatim, control characters included, so an application can put CR/LF
 * into the server's error log line (log forging). This test asserts the
 * documented behaviour and fails until fail() escapes bytes < 0x20 and 0x7f
 * (for example as \xHH, like the access log does).
 */
START_TEST(httpcheck_response_head_why_one_line)
{
    static const struct csgi_header crlf_name = {S("X-A\r\nX-Forged"), S("1")};
    char why[256];

    ck_assert_int_eq(csgi__check_response_head(200, (struct csgi_str)S("OK\r\nforged line"), NULL,
                                               0, NULL, why, sizeof(why)),
                     CSGI_ESTATUS);
    ck_assert_msg(strpbrk(why, "\r\n") == NULL, "BUG httpcheck.c:214: why has CR/LF: \"%s\"", why);
    ck_assert_int_eq(csgi__check_response_head(200, (struct csgi_str)NO_STR, &crlf_name, 1, NULL,
                                               why, sizeof(why)),
                     CSGI_EHEADER);
    ck_assert_msg(strpbrk(why, "\r\n") == NULL, "BUG httpcheck.c:214: why has CR/LF: \"%s\"", why);
}
END_TEST

/* why is optional, and a short buffer is truncated and terminated. */
START_TEST(httpcheck_response_head_why_buffer)
{
    struct csgi_header h = {S("Bad Name"), S("x")};
    char small[8];
    int64_t cl = 77;

    ck_assert_int_eq(csgi__check_response_head(200, (struct csgi_str)NO_STR, &h, 1, &cl, NULL, 0),
                     CSGI_EHEADER);
    memset(small, 'x', sizeof(small));
    ck_assert_int_eq(
        csgi__check_response_head(200, (struct csgi_str)NO_STR, &h, 1, NULL, small, sizeof(small)),
        CSGI_EHEADER);
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
    /* Only the first byte may be written when why_len is 1. */
    memset(small, 'x', sizeof(small));
    csgi__check_response_head(700, (struct csgi_str)NO_STR, NULL, 0, NULL, small, 1);
    ck_assert_int_eq(small[0], '\0');
    ck_assert_int_eq(small[1], 'x');
}
END_TEST

/* A huge header name is quoted, but the reason stays bounded. */
START_TEST(httpcheck_response_head_long_name)
{
    char name[1000], why[2048];
    struct csgi_header h;

    memset(name, 'a', sizeof(name));
    name[500] = ' ';
    h.name.ptr = name;
    h.name.len = sizeof(name);
    h.value.ptr = "x";
    h.value.len = 1;
    ck_assert_int_eq(
        csgi__check_response_head(200, (struct csgi_str)NO_STR, &h, 1, NULL, why, sizeof(why)),
        CSGI_EHEADER);
    ck_assert_uint_lt(strlen(why), 300);
}
END_TEST

static Suite *
httpcheck_suite(void)
{
    Suite *s = suite_create("httpcheck");
    TCase *tc;

    tc = tcase_create("is_token");
    tcase_add_loop_test(tc, httpcheck_is_token, 0, (int)N_OF(token_cases));
    tcase_add_test(tc, httpcheck_is_token_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("is_field_value");
    tcase_add_loop_test(tc, httpcheck_is_field_value, 0, (int)N_OF(value_cases));
    tcase_add_test(tc, httpcheck_is_field_value_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("str_ieq");
    tcase_add_loop_test(tc, httpcheck_str_ieq, 0, (int)N_OF(ieq_cases));
    tcase_add_loop_test(tc, httpcheck_bytes_eq, 0, 101);
    suite_add_tcase(s, tc);

    tc = tcase_create("is_hop_by_hop");
    tcase_add_loop_test(tc, httpcheck_is_hop_by_hop, 0, (int)N_OF(hop_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("status_reason");
    tcase_add_test(tc, httpcheck_status_reason);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_content_length");
    tcase_add_loop_test(tc, httpcheck_parse_content_length, 0, (int)N_OF(cl_cases));
    tcase_add_test(tc, httpcheck_parse_content_length_bounds);
    suite_add_tcase(s, tc);

    tc = tcase_create("check_response_head");
    tcase_add_loop_test(tc, httpcheck_response_head, 0, (int)N_OF(head_cases));
    tcase_add_test(tc, httpcheck_response_head_null_headers);
    tcase_add_test(tc, httpcheck_response_head_why_buffer);
    tcase_add_test(tc, httpcheck_response_head_why_one_line);
    tcase_add_test(tc, httpcheck_response_head_long_name);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(httpcheck_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
