/*
 * HTTP/1.1 front probe suite: raw request bytes against a real csgi-server,
 * each with the status it must get, whether the connection must close, and
 * that the reply is exactly one well-formed response (its body as long as
 * its Content-Length says: a reply that is not reads as garbage, or as a
 * second response, to a client or a proxy). One row per class of
 * SECURITY.md. A few answers differ by libmicrohttpd version (MHD_VERSION,
 * the one this suite was built with); a case one version cannot pass has its
 * answer on that version asserted as it is, and its name must appear in
 * SECURITY.md's "libmicrohttpd versions" section with the reason and the
 * mitigation.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <microhttpd.h>

#include "harness.h"

static struct hserver srv;

enum { ANY = -1 };

#define MHD_1 (MHD_VERSION >= 0x01000000)

/* What a version cannot do right; the case is then listed in SECURITY.md. */
enum {
    KNOWN_09 = 1, /* libmicrohttpd 0.9.75 */
    KNOWN_10 = 2, /* libmicrohttpd 1.0.x */
    MALFORMED = 4 /* that version's own reply is not one well-formed response */
};

struct probe_case {
    const char *name;
    const char *req;
    size_t len;           /* 0: strlen(req) */
    const char *status;   /* expected status code text, e.g. "400"; "" = no reply at all */
    int closed;           /* 1 must close, 0 must stay open, ANY */
    const char *absent;   /* text that must not appear in the reply (e.g. a smuggled answer) */
    const char *status10; /* on libmicrohttpd 1.0.x when different (NULL: the same) */
    int known;            /* KNOWN_09, KNOWN_10, MALFORMED */
    const char *present;  /* text the reply must contain */
};

#define R(s)      s, sizeof(s) - 1
#define POST_ECHO "POST /probe/echo HTTP/1.1\r\nHost: t\r\n"
#define SMUGGLED  "GET /hello/smuggled HTTP/1.1\r\nHost: t\r\n\r\n"

/* Rows give the fields they need: the rest are zero (NULL, 0). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
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
    /* 1.0 answers an unknown coding itself, with 400 (RFC 9112 6.1 says 501 SHOULD). */
    {"te_gzip_chunked",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, "
       "chunked\r\n\r\n0\r\n\r\n"),
     "501", 1, NULL, "400", KNOWN_10},
    {"te_chunked_chunked",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, "
       "chunked\r\n\r\n0\r\n\r\n"),
     "400", 1, NULL},
    /*
     * Trailing whitespace is OWS, not part of the value (RFC 9110 5.5): 1.0
     * strips it and reads the body as chunked, as nginx and HAProxy do, so the
     * server does too. 0.9.75 keeps it and would not read the body as chunked:
     * refused there, so that the server and the library never disagree.
     */
    {"te_trailing_space",
     R("POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked "
       "\r\n\r\n0\r\n\r\n"),
     "400", ANY, NULL, "200"},
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
    /* 1.0 closes without a reply on a NUL in the request line. */
    {"nul_in_target_raw", R("GET /hello/a\0b HTTP/1.1\r\nHost: t\r\n\r\n"), "400", 1, "Hello", "",
     KNOWN_10},
    {"nul_in_value", R("GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n"), "400", 1, NULL},
    {"nul_in_host", R("GET /hello HTTP/1.1\r\nHost: a\0evil\r\n\r\n"), "400", 1, NULL},
    {"nul_in_content_length",
     R(POST_ECHO "Content-Length: 0\0"
                 "5\r\n\r\n" SMUGGLED),
     "400", 1, "smuggled"},
    {"bare_cr_in_value",
     R(POST_ECHO "X-A: a\rContent-Length: 36\r\nContent-Length: 0\r\n\r\n" SMUGGLED), "400", 1,
     "smuggled"},
    {"control_bytes_in_value", R("GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\001b\177\033\r\n\r\n"),
     "400", 1, NULL},
    {"obs_fold_other", R("GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n"), "400", 1, NULL},
    {"empty_name_first", R("GET /hello HTTP/1.1\r\n: v\r\nHost: t\r\n\r\n"), "400", 1, NULL},
    /* 0.9.75 drops an empty-named last line before the server sees it. */
    {"empty_name_last", R("GET /hello HTTP/1.1\r\nHost: t\r\n: v\r\n\r\n"), "200", ANY, NULL, "400",
     KNOWN_09},
    /* 0.9.75 (RFC 9112 2.2: MAY) takes a bare LF for a line end; 1.0 at level 1 refuses it. */
    {"bare_lf_lines", R("GET /hello HTTP/1.1\nHost: t\n\n"), "200", ANY, NULL, "400"},
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
    /* The plugin sees the target's authority as Host, not the Host line (RFC 9112 3.2.2). */
    {"absolute_form_host_header",
     R("GET http://example.test:8080/probe/env HTTP/1.1\r\nHost: other\r\n\r\n"), "200", 0, "other",
     NULL, 0, "host_lookup=example.test:8080\n"},
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
    /* 7. Content-Length values libmicrohttpd parses before the server sees the head. */
    {"cl_plus", R(POST_ECHO "Content-Length: +5\r\n\r\nhello"), "400", 1, NULL, NULL,
     KNOWN_09 | MALFORMED},
    {"cl_minus", R(POST_ECHO "Content-Length: -1\r\n\r\nhello"), "400", 1, NULL, NULL,
     KNOWN_09 | MALFORMED},
    {"cl_list_same", R(POST_ECHO "Content-Length: 5, 5\r\n\r\nhello"), "400", 1, NULL, NULL,
     KNOWN_09 | MALFORMED},
    {"cl_list_different", R(POST_ECHO "Content-Length: 5, 10\r\n\r\nhello"), "400", 1, NULL, NULL,
     KNOWN_09 | MALFORMED},
    {"cl_overflow", R(POST_ECHO "Content-Length: 18446744073709551621\r\n\r\nhello"), "413", 1,
     NULL, NULL, KNOWN_09 | MALFORMED},
    /* HTAB is OWS around a value (RFC 9110 5.5): 1.0 reads 5, 0.9.75 refuses the value. */
    {"cl_htab", R(POST_ECHO "Content-Length:\t5\t\r\n\r\nhello"), "400", ANY, NULL, "200",
     KNOWN_09 | MALFORMED},
    /* 8. Chunk extensions are ignored (RFC 9112 7.1.1); too long ones get a 4xx. */
    {"chunk_extension",
     R(POST_ECHO "Transfer-Encoding: chunked\r\n\r\n5;ext=x\r\nhello\r\n0\r\n\r\n"), "200", ANY,
     NULL, "400", KNOWN_10, "\r\n\r\nhello"},
    {"chunk_extension_quoted",
     R(POST_ECHO "Transfer-Encoding: chunked\r\n\r\n5;a=\"b c\";d\r\nhello\r\n0\r\n\r\n"), "200",
     ANY, NULL, "400", KNOWN_10},
    /* 9. --max-headers counts header lines as users do: 100 pass, 101 do not. */
    {"headers_100", NULL, 0, "200", 0, NULL},
    {"headers_101", NULL, 0, "431", 1, NULL},
    /*
     * A 100 KB extension fills the connection's buffer: no reply, the
     * connection waits for --conn-timeout (1.0.1 decides 413 but never sends
     * it; 0.9.75 answers 500 only when it runs its own thread, and
     * csgi-server runs its loop: mhd_loop.h).
     */
    {"chunk_extension_huge", NULL, 0, "", ANY, NULL, NULL, KNOWN_09 | KNOWN_10},
    /* Valid traffic must keep working. */
    {"keepalive_ok", R("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), "200", 0, NULL},
    {"pipelined_two",
     R("GET /hello/one HTTP/1.1\r\nHost: t\r\n\r\nGET /hello/two HTTP/1.1\r\n"
       "Host: t\r\n\r\n"),
     "200", 0, NULL},
};
#pragma GCC diagnostic pop

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

/* The generated requests (too long to write out). Returns the length, malloc'ed in *out. */
static size_t
generated(const struct probe_case *c, char **out)
{
    size_t cap = 200000, n = 0;
    char *b = malloc(cap);

    ck_assert_ptr_nonnull(b);
    if (strncmp(c->name, "headers_", 8) == 0) {
        int lines = atoi(c->name + 8);

        /* Host and lines - 1 more. */
        n += (size_t)snprintf(b + n, cap - n, "GET /hello HTTP/1.1\r\nHost: t\r\n");
        for (int i = 1; i < lines; i++)
            n += (size_t)snprintf(b + n, cap - n, "X-H%d: v\r\n", i);
        n += (size_t)snprintf(b + n, cap - n, "\r\n");
    } else {
        n += (size_t)snprintf(b + n, cap - n, POST_ECHO "Transfer-Encoding: chunked\r\n\r\n5;e=");
        memset(b + n, 'x', 100000);
        n += 100000;
        n += (size_t)snprintf(b + n, cap - n, "\r\nhello\r\n0\r\n\r\n");
    }
    *out = b;
    return n;
}

/*
 * Where the first response in [out, out+len) ends by its own framing (head,
 * then Content-Length bytes), or 0 when it has no Content-Length or is cut.
 */
static size_t
first_response_end(const char *out, size_t len)
{
    const char *end = strstr(out, "\r\n\r\n");
    const char *cl = strcasestr(out, "\r\nContent-Length:");
    size_t head;

    if (!end || !cl || cl > end)
        return 0;
    head = (size_t)(end + 4 - out);
    head += strtoul(cl + 17, NULL, 10);
    return head <= len ? head : 0;
}

/* True when SECURITY.md names case @p name (as `name`). */
static int
listed_in_security_md(const char *name)
{
    const char *path = getenv("CSGI_SECURITY_MD");
    char needle[80], line[1024];
    int found = 0;
    FILE *f = path ? fopen(path, "r") : NULL;

    ck_assert_msg(f != NULL, "cannot read SECURITY.md (CSGI_SECURITY_MD)");
    snprintf(needle, sizeof(needle), "`%s`", name);
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

START_TEST(probe_case)
{
    const struct probe_case *c = &cases[_i];
    char out[16384], want[32];
    int closed, known = c->known & (MHD_1 ? KNOWN_10 : KNOWN_09);
    const char *status = MHD_1 && c->status10 ? c->status10 : c->status;
    char *gen = NULL;
    const char *req = c->req;
    size_t len = c->len ? c->len : req ? strlen(req) : generated(c, &gen), got, end;

    if (gen)
        req = gen;
    got = h_raw(srv.port, req, len, out, sizeof(out), 1500, &closed);
    free(gen);
    if (!*status) {
        ck_assert_msg(got == 0, "%s: want no reply, got:\n%s", c->name, out);
    } else {
        snprintf(want, sizeof(want), "HTTP/1.1 %s ", status);
        ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "%s: want %s, got:\n%s", c->name, want,
                      out);
    }
    if (c->closed != ANY && *status)
        ck_assert_msg(closed == c->closed, "%s: connection %s", c->name,
                      closed ? "closed" : "left open");
    if (c->absent)
        ck_assert_msg(!strstr(out, c->absent), "%s: reply contains \"%s\":\n%s", c->name, c->absent,
                      out);
    if (c->present && !known)
        ck_assert_msg(strstr(out, c->present) != NULL, "%s: reply lacks \"%s\":\n%s", c->name,
                      c->present, out);
    if (known)
        ck_assert_msg(listed_in_security_md(c->name),
                      "%s: this libmicrohttpd version cannot pass it, and SECURITY.md does not "
                      "list it",
                      c->name);
    /* Exactly one well-formed response (libmicrohttpd 0.9.75's own errors can repeat the head). */
    if (*status && strcmp(c->name, "pipelined_two") != 0 && !(known && (c->known & MALFORMED))) {
        end = first_response_end(out, got);
        ck_assert_msg(end == got, "%s: %zu bytes, the first response's framing says %zu:\n%s",
                      c->name, got, end, out);
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
