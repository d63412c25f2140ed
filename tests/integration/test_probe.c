/*
 * HTTP/1.1 front probe suite: raw request bytes against a real csgi-server,
 * each with the status it must get and whether the connection must close.
 * One row per class of SECURITY.md; what libmicrohttpd 0.9.75 hides from
 * the server is listed there instead.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static struct hserver srv;

enum { ANY = -1 };

struct probe_case {
    const char *name;
    const char *req;
    size_t len;         /* 0: strlen(req) */
    const char *status; /* expected status code text, e.g. "400" */
    int closed;         /* 1 must close, 0 must stay open, ANY */
    const char *absent; /* text that must not appear in the reply (e.g. a smuggled answer) */
};

#define R(s) s, sizeof(s) - 1

static const struct probe_case cases[] = {
    /* 1. Ambiguous framing. */
    {"cl_and_te",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 35\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello/smuggled HTTP/1.1\r\n\r\n"),
     "400", 1, "smuggled"},
    {"cl_zero_then_cl",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
       "Content-Length: 36\r\n\r\nGET /hello/smuggled HTTP/1.1\r\nHost: t\r\n\r\n"),
     "400", 1, "smuggled"},
    {"two_te",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
     "400", 1, NULL},
    {"te_http10_keepalive",
     R("POST /probe/echo HTTP/1.0\r\nConnection: keep-alive\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello/smuggled "
       "HTTP/1.0\r\n\r\n"),
     "400", 1, "smuggled"},
    /* 2. Transfer-Encoding other than exactly "chunked". */
    {"te_xchunked",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n"), "400", 1,
     NULL},
    {"te_gzip_chunked",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, "
       "chunked\r\n\r\n0\r\n\r\n"),
     "501", 1, NULL},
    {"te_chunked_chunked",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, "
       "chunked\r\n\r\n0\r\n\r\n"),
     "400", 1, NULL},
    {"te_trailing_space",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked "
       "\r\n\r\n0\r\n\r\n"),
     "400", 1, NULL},
    {"te_identity",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n"), "400", 1,
     NULL},
    /* 3. Header-line parsing. */
    {"space_before_colon", R("GET /hello HTTP/1.1\r\nHost: t\r\nX-Name : v\r\n\r\n"), "400", 1,
     NULL},
    {"te_space_before_colon",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : "
       "chunked\r\n\r\n0\r\n\r\n"),
     "400", 1, NULL},
    {"obs_fold_content_length",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n "
       "36\r\n\r\nGET /hello/smuggled HTTP/1.1\r\nHost: t\r\n\r\n"),
     "400", 1, "smuggled"},
    {"obs_fold_te",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n"
       "\r\n0\r\n\r\n"),
     "400", 1, NULL},
    {"leading_space_line", R("GET /hello HTTP/1.1\r\n X-Lead: v\r\nHost: t\r\n\r\n"), "400", 1,
     NULL},
    {"nul_in_target_escaped", R("GET /hello/a%00b HTTP/1.1\r\nHost: t\r\n\r\n"), "400", 1, NULL},
    /* 4. Host. */
    {"host_missing", R("GET /hello HTTP/1.1\r\n\r\n"), "400", 1, NULL},
    {"host_twice", R("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), "400", 1, NULL},
    {"host_userinfo", R("GET /hello HTTP/1.1\r\nHost: user@t\r\n\r\n"), "400", 1, NULL},
    {"host_bad_port", R("GET /hello HTTP/1.1\r\nHost: t:80x\r\n\r\n"), "400", 1, NULL},
    {"host_big_port", R("GET /hello HTTP/1.1\r\nHost: t:65536\r\n\r\n"), "400", 1, NULL},
    {"host_http10_optional", R("GET /hello HTTP/1.0\r\n\r\n"), "200", ANY, NULL},
    /* 5. Absolute form: parsed, its authority replaces Host. */
    {"absolute_form", R("GET http://example.test/hello/abs HTTP/1.1\r\nHost: other\r\n\r\n"), "200",
     0, NULL},
    {"absolute_userinfo", R("GET http://u@example.test/hello HTTP/1.1\r\nHost: t\r\n\r\n"), "400",
     1, NULL},
    {"authority_form", R("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test\r\n\r\n"), "501",
     1, NULL},
    /* 6. Methods and limits. */
    {"unknown_method", R("BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n"), "501", 1, NULL},
    {"huge_content_length",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\n"
       "Content-Length: 10000000000\r\n\r\n"),
     "413", 1, NULL},
    {"expect_huge",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000000\r\n"
       "Expect: 100-continue\r\n\r\n"),
     "413", 1, "100 Continue"},
    {"bad_version", R("GET /hello HTTP/2.0\r\nHost: t\r\n\r\n"), "505", ANY, NULL},
    /* Valid traffic must keep working. */
    {"keepalive_ok", R("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), "200", 0, NULL},
    {"pipelined_two",
     R("GET /hello/one HTTP/1.1\r\nHost: t\r\n\r\nGET /hello/two HTTP/1.1\r\n"
       "Host: t\r\n\r\n"),
     "200", 0, NULL},
};

static void
setup(void)
{
    const char *extra[] = {"--workers", "1", "--header-timeout", "2", "--max-body", "1m", NULL};

    h_init(&srv);
    h_add_plugin(&srv, "hello.so", NULL);
    h_add_plugin(&srv, "probe.so", NULL);
    h_start(&srv, 1, extra);
}

static void
teardown(void)
{
    h_stop(&srv, SIGTERM, 10000);
    h_cleanup(&srv);
}

START_TEST(probe_case)
{
    const struct probe_case *c = &cases[_i];
    char out[16384], want[32];
    int closed;
    size_t len = c->len ? c->len : strlen(c->req);

    h_raw(srv.port, c->req, len, out, sizeof(out), 1500, &closed);
    snprintf(want, sizeof(want), "HTTP/1.1 %s ", c->status);
    ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "%s: want %s, got:\n%s", c->name, want,
                  out);
    if (c->closed != ANY)
        ck_assert_msg(closed == c->closed, "%s: connection %s", c->name,
                      closed ? "closed" : "left open");
    if (c->absent)
        ck_assert_msg(!strstr(out, c->absent), "%s: reply contains \"%s\":\n%s", c->name, c->absent,
                      out);
    /* Exactly one status line per reply (libmicrohttpd's own errors can repeat it). */
    if (strcmp(c->name, "pipelined_two") != 0) {
        const char *second = strstr(out + 1, "HTTP/1.");
        ck_assert_msg(!second, "%s: more than one status line:\n%s", c->name, out);
    }
}
END_TEST

START_TEST(probe_pipelined_in_order)
{
    char out[16384];
    int closed;
    static const char req[] = "GET /hello/one HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /hello/two HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /hello/three HTTP/1.1\r\nHost: t\r\n\r\n";
    const char *a, *b, *c;

    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 1000, &closed);
    a = strstr(out, "Hello, one!");
    b = strstr(out, "Hello, two!");
    c = strstr(out, "Hello, three!");
    ck_assert_msg(a && b && c && a < b && b < c, "%s", out);
    ck_assert_int_eq(closed, 0);
}
END_TEST

static Suite *
probe_suite(void)
{
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("front");

    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, probe_case, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, probe_pipelined_in_order);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(probe_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
