/*
 * csgi-server over real HTTP on loopback, with real plugin .so files:
 * request -> environ, bodies, responses, errors, limits and logs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include <microhttpd.h>

#include "harness.h"
#include "wire.h"

static struct hserver srv;

/* One server for most tests: hello, stream, probe, init_fail; access log on. */
static void
main_setup(void)
{
    const char *extra[] = {"--workers",
                           "1",
                           "--access-log",
                           NULL,
                           "--body-buffer",
                           "64k",
                           "--header-timeout",
                           "2",
                           "--max-headers",
                           "40",
                           "--set",
                           "probe.tag=blue",
                           "--log-level",
                           "debug",
                           NULL};

    h_init(&srv);
    extra[3] = srv.access;
    h_add_plugin(&srv, "hello.so", NULL);
    h_add_plugin(&srv, "stream.so", NULL);
    h_add_plugin(&srv, "probe.so", NULL);
    h_add_plugin(&srv, "init_fail.so", NULL);
    h_start(&srv, 1, extra);
}

static void
main_teardown(void)
{
    int status = h_stop(&srv, SIGTERM, 10000);

    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "server did not exit 0 on SIGTERM (status %d)", status);
    h_cleanup(&srv);
}

/* ------------------------------------------------------------------ */

START_TEST(http_hello_keepalive)
{
    char out[4096];
    int closed;
    const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /hello/bob HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t n = h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 500, &closed);

    ck_assert_uint_gt(n, 0);
    /* Pipelined on one connection: both answered, in order, and it stays open. */
    ck_assert_msg(h_has(out, "Hello, world!\n"), "%s", out);
    ck_assert_msg(h_has(out, "Hello, bob!\n"), "%s", out);
    ck_assert_msg(strstr(out, "Hello, world!") < strstr(out, "Hello, bob!"), "order: %s", out);
    ck_assert_msg(h_has(out, "Content-Length: 14"), "%s", out);
    ck_assert_msg(!h_has(out, "Connection: close"), "%s", out);
    ck_assert_int_eq(closed, 0);
}
END_TEST

/*
 * The per-connection head memo (gateway/core/head.h) on one pipelined
 * connection: a head repeated byte for byte is answered from the memo (from
 * the third request on), and every change (the Host, the target, a header
 * value with a control byte) is checked again and answered as such.
 */
START_TEST(http_head_memo_pipelined)
{
    static char out[65536];
    int closed;
#define MEMO_REQ(target, host, xa)                                                                 \
    "GET /probe/env" target " HTTP/1.1\r\nHost: " host "\r\nX-A: " xa "\r\n\r\n"
    const char req[] = MEMO_REQ("?q=1", "a.test:1", "1") MEMO_REQ("?q=1", "a.test:1", "1")
        MEMO_REQ("?q=1", "a.test:1", "1") MEMO_REQ("?q=1", "b.test:2", "1")
            MEMO_REQ("?q=2", "b.test:2", "1") MEMO_REQ("?q=2", "b.test:2", "1")
                MEMO_REQ("?q=2", "b.test:2", "\x01");
#undef MEMO_REQ
    static const char *const want[] = {"a.test q=1", "a.test q=1", "a.test q=1",
                                       "b.test q=1", "b.test q=2", "b.test q=2"};
    const char *at = out;
    size_t n = h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out) - 1, 2000, &closed);

    ck_assert_uint_gt(n, 0);
    out[n] = '\0';
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        /* The probe prints query_string before server_name. */
        const char *q = strstr(at, "query_string="), *sn = q ? strstr(q, "server_name=") : NULL;
        char got[64];

        ck_assert_msg(sn && q, "response %zu missing: %s", i, out);
        snprintf(got, sizeof(got), "%.*s %.*s", (int)strcspn(sn + 12, "\n"), sn + 12,
                 (int)strcspn(q + 13, "\n"), q + 13);
        ck_assert_msg(strcmp(got, want[i]) == 0, "response %zu: \"%s\", want \"%s\"", i, got,
                      want[i]);
        at = sn + 12;
    }
    /* The seventh: its X-A value has a control byte, so the memo's head does not answer it. */
    ck_assert_msg(strstr(at, "HTTP/1.1 400") != NULL, "no 400 after the six: %s", at);
    ck_assert_ptr_null(strstr(at, "server_name="));
}
END_TEST

/*
 * csgi-server keeps the last small buffer response a thread sent and queues
 * it again for the next identical one (http_mhd.c, resp_cache). On one
 * pipelined connection: responses repeated (built the second time, reused
 * from the third), then the same head with other body bytes of the same
 * length, another header value with the same body, a HEAD, and a request
 * whose response must say "Connection: close": each answered as itself.
 */
START_TEST(http_response_cache_pipelined)
{
    static const struct {
        const char *method, *query, *extra;
        const char *xv, *body; /* body NULL: HEAD */
    } want[] = {
        {"GET", "h=1&b=1", "", "v1", "body 1\n"},
        {"GET", "h=1&b=1", "", "v1", "body 1\n"},
        {"GET", "h=1&b=1", "", "v1", "body 1\n"},
        {"GET", "h=1&b=2", "", "v1", "body 2\n"},
        {"GET", "h=2&b=2", "", "v2", "body 2\n"},
        {"GET", "h=2&b=2", "", "v2", "body 2\n"},
        {"GET", "h=2&b=2", "", "v2", "body 2\n"},
        {"HEAD", "h=2&b=2", "", "v2", NULL},
        {"GET", "h=2&b=2", "", "v2", "body 2\n"},
        {"GET", "h=2&b=3", "", "v2", "body 3\n"},
        {"GET", "h=2&b=2", "", "v2", "body 2\n"},
        {"GET", "h=2&b=2", "Connection: close\r\n", "v2", "body 2\n"},
    };
    const size_t n = sizeof(want) / sizeof(*want);
    struct wire_conn c = {0};
    char req[4096], v[64];
    size_t len = 0;

    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(req + len, sizeof(req) - len,
                                "%s /probe/vary?%s HTTP/1.1\r\nHost: t\r\n%s\r\n", want[i].method,
                                want[i].query, want[i].extra);
    ck_assert_uint_lt(len, sizeof(req));
    ck_assert_int_eq(wire_connect(&c, srv.port, 0), 0);
    ck_assert_int_eq(wire_send(&c, req, len), 0);
    for (size_t i = 0; i < n; i++) {
        struct wire_resp r;
        int rc = wire_read(&c, want[i].method, 5000, &r);

        ck_assert_msg(rc == 0 && r.status == 200, "response %zu: status %d", i, r.status);
        ck_assert_msg(wire_header(&r, "X-V", v, sizeof(v)) && strcmp(v, want[i].xv) == 0,
                      "response %zu: X-V %s, want %s", i, v, want[i].xv);
        ck_assert_int_eq(r.content_length, 7);
        ck_assert_uint_eq(wire_header_count(&r, "Content-Type"), 1);
        if (want[i].body)
            ck_assert_msg(r.body_len == 7 && memcmp(r.body, want[i].body, 7) == 0,
                          "response %zu: body \"%s\", want \"%s\"", i, r.body, want[i].body);
        else
            ck_assert_uint_eq(r.body_len, 0);
        /* Only the last one closes. */
        ck_assert_msg(!wire_header(&r, "Connection", v, sizeof(v)) == (i + 1 < n),
                      "response %zu: Connection header wrong:\n%s", i, r.head);
        wire_resp_free(&r);
    }
    ck_assert_int_eq(wire_wait_close(&c, 2000), 1);
    wire_close(&c);
}
END_TEST

START_TEST(http_curl_reuses_connection)
{
    CURL *c = curl_easy_init();
    char url[128];
    long connects = -1;
    FILE *null = fopen("/dev/null", "w");

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hello", srv.port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
    ck_assert_int_eq(connects, 0); /* the second request reused the connection */
    curl_easy_cleanup(c);
    fclose(null);
}
END_TEST

START_TEST(http_head_has_length_no_body)
{
    char out[4096];
    int closed;
    const char req[] = "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";

    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 500, &closed);
    /* HEAD: Content-Length 14 and no body, then the GET's body follows directly. */
    ck_assert_msg(h_has(out, "Content-Length: 14\r\n\r\nHTTP/1.1 200"), "%s", out);
    ck_assert_msg(h_has(out, "\r\n\r\nHello, world!\n"), "%s", out);
}
END_TEST

START_TEST(http_environ_fields)
{
    const char *hdrs[] = {"X-First: 1", "X-Second: two", NULL};
    struct hresp r = h_request(&srv, "GET", "/probe/env?a=1&b=%20c", NULL, 0, hdrs);

    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.body, "method=GET\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "script_name=/probe\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "path_info=/env\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "query_string=a=1&b=%20c\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "raw_target=/probe/env?a=1&b=%20c\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "server_name=127.0.0.1\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "server_protocol=HTTP/1.1\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "url_scheme=http\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "remote_addr=127.0.0.1\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "content_length=-1\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "config=tag=blue\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "host_lookup=127.0.0.1:"), "%s", r.body);
    /* Headers arrive in order with their original names. */
    ck_assert_msg(strstr(r.body, "header=X-First: 1") &&
                      strstr(r.body, "header=X-First: 1") < strstr(r.body, "header=X-Second: two"),
                  "%s", r.body);
    {
        char port[32];
        snprintf(port, sizeof(port), "server_port=%d\n", srv.port);
        ck_assert_msg(h_has(r.body, port), "%s", r.body);
    }
    h_resp_free(&r);
    r = h_get(&srv, "/probe/env");
    /* No '?': query_string is present and empty, never NULL. */
    ck_assert_msg(h_has(r.body, "\nquery_string=\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "query_string_null=0\n"), "%s", r.body);
    h_resp_free(&r);
}
END_TEST

START_TEST(http_path_decoding)
{
    struct hresp r = h_get(&srv, "/probe/%65nv?x=%2F");

    /* %65 is 'e': the decoded path selects /env; the query stays raw. */
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.body, "path_info=/env\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "raw_target=/probe/%65nv?x=%2F\n"), "%s", r.body);
    h_resp_free(&r);
    r = h_get(&srv, "/probe%2Fenv");
    /* %2F decodes to '/', so the mount still matches; raw_target keeps it. */
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.body, "path_info=/env\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "raw_target=/probe%2Fenv\n"), "%s", r.body);
    h_resp_free(&r);
    r = h_get(&srv, "/probe/env%00.txt");
    ck_assert_int_eq(r.status, 400);
    h_resp_free(&r);
    r = h_get(&srv, "/probe/%zz");
    ck_assert_int_eq(r.status, 400);
    h_resp_free(&r);
}
END_TEST

START_TEST(http_absolute_form)
{
    char out[4096];
    int closed;
    const char req[] = "GET http://example.test:8080/probe/env?q=1 HTTP/1.1\r\nHost: other\r\n\r\n";

    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 500, &closed);
    ck_assert_msg(h_has(out, "HTTP/1.1 200"), "%s", out);
    ck_assert_msg(h_has(out, "path_info=/env\n"), "%s", out);
    ck_assert_msg(h_has(out, "server_name=example.test\n"), "%s", out);
    ck_assert_msg(h_has(out, "query_string=q=1\n"), "%s", out);
}
END_TEST

START_TEST(http_post_echo_small)
{
    const char body[] = "hello body\nsecond line\n";
    const char *hdrs[] = {"Content-Type: text/x-test", NULL};
    struct hresp r = h_request(&srv, "POST", "/probe/echo", body, sizeof(body) - 1, hdrs);

    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.len, sizeof(body) - 1);
    ck_assert_mem_eq(r.body, body, sizeof(body) - 1);
    h_resp_free(&r);
    r = h_request(&srv, "POST", "/probe/lines", body, sizeof(body) - 1, NULL);
    ck_assert_msg(h_has(r.body, "lines=2 bytes=23 eof=0\n"), "%s", r.body);
    h_resp_free(&r);
    r = h_request(&srv, "POST", "/probe/env", body, sizeof(body) - 1, hdrs);
    ck_assert_msg(h_has(r.body, "content_type=text/x-test\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "content_length=23\n"), "%s", r.body);
    h_resp_free(&r);
}
END_TEST

START_TEST(http_chunked_request_body)
{
    char out[4096];
    int closed;
    const char req[] = "POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";

    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 500, &closed);
    ck_assert_msg(h_has(out, "HTTP/1.1 200"), "%s", out);
    ck_assert_msg(h_has(out, "Content-Length: 12\r\n"), "%s", out);
    ck_assert_msg(h_has(out, "\r\n\r\nhello, world"), "%s", out);
}
END_TEST

START_TEST(http_large_upload_spills_and_roundtrips)
{
    size_t len = 10 * 1024 * 1024;
    char *body = malloc(len);
    struct hresp r;
    unsigned x = 12345;
    int spills = h_log_count(&srv, "spilled");

    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        body[i] = (char)(x >> 16);
    }
    /* curl sends "Expect: 100-continue" for a body this large. */
    r = h_request(&srv, "POST", "/probe/echo", body, len, NULL);
    ck_assert_int_eq(r.curl_code, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.len, len);
    ck_assert_msg(memcmp(r.body, body, len) == 0, "echoed body differs");
    h_resp_free(&r);
    free(body);
    ck_assert_msg(h_wait_log(&srv, "spilled", spills + 1, 2000), "no spill logged");
}
END_TEST

START_TEST(http_413_before_upload)
{
    char out[4096];
    int closed;
    const char req[] = "POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n"
                       "Expect: 100-continue\r\n\r\n";

    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 2000, &closed);
    ck_assert_msg(h_has(out, "HTTP/1.1 413"), "%s", out);
    ck_assert_msg(!h_has(out, "100 Continue"), "%s", out);
    ck_assert_int_eq(closed, 1);
}
END_TEST

START_TEST(http_100_continue)
{
    char out[4096];
    int closed;
    const char req[] = "POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                       "Expect: 100-continue\r\n\r\n";

    /* Only the head: the server must answer 100 and wait for the body. */
    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 500, &closed);
    ck_assert_msg(h_has(out, "HTTP/1.1 100 Continue"), "%s", out);
}
END_TEST

/*
 * Each smuggling vector gets 400 (501 for "gzip, chunked", vector 3: a
 * transfer coding the server does not implement; libmicrohttpd 1.0 answers
 * that one with 400 itself, see SECURITY.md) and the connection is closed.
 */
static const char *const smuggle[] = {
    "POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
    "\r\n0\r\n\r\n",
    "POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
    "POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "POST /probe/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /probe/echo HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\nx",
    "POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    "GET /hello HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
    "GET /hello HTTP/1.1\r\n\r\n",
    "GET /hello HTTP/1.1\r\nHost: a@b\r\n\r\n",
    "GET /hello HTTP/1.1\r\nHost: t:99999\r\n\r\n",
    "GET /hello HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n",
    "GET * HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET hello HTTP/1.1\r\nHost: t\r\n\r\n",
};

START_TEST(http_smuggling_rejected)
{
    char out[4096];
    int closed;
    const char *req = smuggle[_i];

    h_raw(srv.port, req, strlen(req), out, sizeof(out), 3000, &closed);
    const char *want = _i == 3 && MHD_VERSION < 0x01000000 ? " 501 " : " 400 ";

    ck_assert_msg(!strncmp(out, "HTTP/1.", 7) && !strncmp(out + 8, want, 5),
                  "vector %d not refused with%s:\n%s\n--- got:\n%s", _i, want, req, out);
    ck_assert_msg(!h_has(out, "200 OK"), "vector %d answered 200:\n%s", _i, out);
    ck_assert_msg(closed, "vector %d: connection left open", _i);
}
END_TEST

START_TEST(http_unknown_method_501)
{
    char out[4096];
    int closed;
    const char req[] = "BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n";

    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 2000, &closed);
    ck_assert_msg(h_has(out, "HTTP/1.1 501"), "%s", out);
}
END_TEST

START_TEST(http_options_asterisk)
{
    char out[4096];
    int closed;
    const char req[] = "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n";

    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 500, &closed);
    ck_assert_msg(h_has(out, "HTTP/1.1 200"), "%s", out);
    ck_assert_msg(h_has(out, "Allow: GET"), "%s", out);
}
END_TEST

START_TEST(http_too_many_headers_431)
{
    char req[8192];
    size_t n = 0;
    char out[4096];
    int closed;

    n += (size_t)snprintf(req + n, sizeof(req) - n, "GET /hello HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: %d\r\n", i, i);
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
    h_raw(srv.port, req, n, out, sizeof(out), 2000, &closed);
    ck_assert_msg(h_has(out, " 431 "), "%s", out);
}
END_TEST

START_TEST(http_huge_header_431)
{
    static const char head[] = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ";
    size_t big = 40000, n = sizeof(head) - 1 + big + 4;
    char *req = malloc(n);
    char out[4096];
    int closed;

    ck_assert_ptr_nonnull(req);
    memcpy(req, head, sizeof(head) - 1);
    memset(req + sizeof(head) - 1, 'a', big);
    memcpy(req + n - 4, "\r\n\r\n", 4);
    h_raw(srv.port, req, n, out, sizeof(out), 2000, &closed);
    ck_assert_msg(h_has(out, " 431 "), "%s", out);
    free(req);
}
END_TEST

START_TEST(http_slowloris_cut_off)
{
    char out[1024];
    int closed;
    const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    time_t t0 = time(NULL);

    /* An unfinished head: --header-timeout 2 must close it (MHD's idle timer would not). */
    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 8000, &closed);
    ck_assert_msg(closed, "connection still open after 8 s");
    ck_assert_int_le(time(NULL) - t0, 6);
}
END_TEST

START_TEST(http_slowloris_trickle_cut_off)
{
    const char req[] =
        "GET /hello HTTP/1.1\r\nHost: t\r\nX-Trickle: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    struct sockaddr_in sa;
    char out[256];
    int closed = 0, sock;
    time_t t0 = time(NULL);

    /* One byte every 200 ms never idles long enough for an idle timer. */
    sock = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)srv.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    for (size_t i = 0; i < sizeof(req) - 1 && time(NULL) - t0 <= 8; i++) {
        ssize_t n = recv(sock, out, sizeof(out), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN) || send(sock, req + i, 1, MSG_NOSIGNAL) != 1) {
            closed = 1;
            break;
        }
        h_sleep_ms(200);
    }
    close(sock);
    ck_assert_msg(closed, "trickling client not cut off");
    ck_assert_int_le(time(NULL) - t0, 6);
}
END_TEST

START_TEST(http_init_fail_others_serve)
{
    struct hresp r = h_get(&srv, "/hello");

    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert_int_ge(h_log_count(&srv, "plugin \"init_fail\" (\"init_fail.so\") skipped: "
                                       "init_worker failed"),
                     1);
    r = h_get(&srv, "/init_fail");
    ck_assert_int_eq(r.status, 404);
    h_resp_free(&r);
}
END_TEST

START_TEST(http_close_once_on_disconnect)
{
    char out[8192];
    int closed;
    const char req[] = "GET /probe/stream?n=5000&size=65536 HTTP/1.1\r\nHost: t\r\n\r\n";
    long opened = 0, closed_n = -1;

    /* Read a little of a 300 MiB body and hang up. */
    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 200, &closed);
    ck_assert_msg(h_has(out, "Transfer-Encoding: chunked"), "%s", out);
    for (int tries = 0; tries < 100; tries++) {
        struct hresp r = h_get(&srv, "/probe/counts");
        ck_assert_int_eq(sscanf(r.body, "opened=%ld closed=%ld", &opened, &closed_n), 2);
        h_resp_free(&r);
        if (opened == closed_n)
            break;
        h_sleep_ms(100);
    }
    ck_assert_int_ge(opened, 1);
    ck_assert_int_eq(opened, closed_n);
}
END_TEST

START_TEST(http_stream_chunked_and_exact)
{
    struct hresp r = h_get(&srv, "/probe/stream?n=3&size=4");

    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "abcdabcdabcd");
    ck_assert_msg(h_has(r.headers, "Transfer-Encoding: chunked"), "%s", r.headers);
    h_resp_free(&r);
    r = h_get(&srv, "/probe/stream?n=3&size=4&total=12");
    ck_assert_str_eq(r.body, "abcdabcdabcd");
    ck_assert_msg(h_has(r.headers, "Content-Length: 12"), "%s", r.headers);
    h_resp_free(&r);
    /*
     * One chunk of unknown length is streamed: the server never calls next()
     * ahead to learn the length (it could wait and hold the chunk back).
     */
    r = h_get(&srv, "/probe/stream?n=1&size=7");
    ck_assert_str_eq(r.body, "abcdefg");
    ck_assert_msg(h_has(r.headers, "Transfer-Encoding: chunked"), "%s", r.headers);
    h_resp_free(&r);
}
END_TEST

START_TEST(http_http10_close_delimited)
{
    char out[4096];
    int closed;
    const char req[] = "GET /probe/stream?n=3&size=4 HTTP/1.0\r\n\r\n";

    h_raw(srv.port, req, sizeof(req) - 1, out, sizeof(out), 2000, &closed);
    ck_assert_msg(h_has(out, " 200 "), "%s", out);
    ck_assert_msg(!h_has(out, "chunked"), "%s", out);
    ck_assert_msg(h_has(out, "\r\n\r\nabcdabcdabcd"), "%s", out);
    ck_assert_int_eq(closed, 1);
}
END_TEST

START_TEST(http_write_callable)
{
    struct hresp r = h_get(&srv, "/probe/write");

    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "one\ntwo\nfrom the body\n");
    h_resp_free(&r);
    r = h_get(&srv, "/stream/write?n=2");
    ck_assert_str_eq(r.body, "line 1 of 2\nline 2 of 2\n");
    h_resp_free(&r);
}
END_TEST

START_TEST(http_file_body)
{
    struct hresp r = h_get(&srv, "/probe/file");

    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "file body via sendfile\n");
    ck_assert_msg(h_has(r.headers, "Content-Length: 23"), "%s", r.headers);
    h_resp_free(&r);
}
END_TEST

/* The line a failing look-ahead next() after one 100-byte chunk leaves. */
#define LOOKAHEAD_LINE "body next() failed after 100 bytes: "

START_TEST(http_app_errors)
{
    struct hresp r = h_get(&srv, "/probe/error");
    int lookahead_logged;

    ck_assert_int_eq(r.status, 500);
    h_resp_free(&r);
    ck_assert(h_wait_log(&srv, "plugin \"probe\" request", 1, 2000));
    ck_assert(h_wait_log(&srv, "call() failed: input/output error", 1, 2000));
    /* A body that fails at its first chunk: nothing was produced, a clean 500. */
    r = h_get(&srv, "/probe/error-mid?n=3&size=100&fail=0");
    ck_assert_int_eq(r.status, 500);
    h_resp_free(&r);
    /*
     * A body that fails in the look-ahead next(), after one good chunk: the
     * chunk counts as sent (SPEC 4.4), so it goes out and the connection is
     * aborted, as the test client reports it.
     */
    lookahead_logged = h_log_count(&srv, LOOKAHEAD_LINE);
    r = h_get(&srv, "/probe/error-mid?n=3&size=100&fail=1");
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(r.curl_code != 0, "curl should see an aborted transfer");
    ck_assert_uint_eq(r.len, 100);
    h_resp_free(&r);
    /* SPEC 4.10: the failure is logged, and the line names the error code. */
    ck_assert_msg(h_wait_log(&srv, LOOKAHEAD_LINE, lookahead_logged + 1, 2000),
                  "no \"%s\" line in %s", LOOKAHEAD_LINE, srv.log);
    {
        char *log = h_slurp(srv.log, NULL);
        const char *at = NULL, *eol;

        for (const char *p = log; (p = strstr(p, LOOKAHEAD_LINE)) != NULL; p++)
            at = p;
        eol = at ? strchr(at, '\n') : NULL;
        ck_assert_msg(at && eol && memmem(at, (size_t)(eol - at), "(EIO)", 5),
                      "the look-ahead failure's line does not name EIO: %.*s",
                      at && eol ? (int)(eol - at) : 0, at ? at : "");
        free(log);
    }
    /* A body that fails after the headers went out: the connection is aborted. */
    r = h_get(&srv, "/probe/error-mid?n=5&size=70000&fail=3");
    ck_assert_msg(r.curl_code != 0, "curl should see an aborted transfer");
    h_resp_free(&r);
    ck_assert(h_wait_log(&srv, "body next() failed after", 1, 2000));
    r = h_get(&srv, "/probe/declined");
    ck_assert_int_eq(r.status, 404);
    h_resp_free(&r);
    r = h_get(&srv, "/nowhere");
    ck_assert_int_eq(r.status, 404);
    h_resp_free(&r);
}
END_TEST

START_TEST(http_start_response_rules)
{
    struct hresp r = h_get(&srv, "/probe/badheader");

    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "name=EHEADER hop=EHEADER crlf=EHEADER status=ESTATUS\n");
    ck_assert_msg(!h_has(r.headers, "Set-Cookie"), "%s", r.headers);
    h_resp_free(&r);
    r = h_get(&srv, "/probe/twice");
    /* A second call without exc_info is refused; with exc_info it replaces. */
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "second=ESTATE\n");
    h_resp_free(&r);
    /*
     * exc_info after write(): EHEADERS_SENT, propagated. The headers count as
     * sent from the first write() (SPEC 4.4), so the write() output goes out
     * and the connection is aborted, exactly as the test client reports it.
     */
    r = h_get(&srv, "/probe/late-exc");
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(r.curl_code != 0, "curl should see an aborted transfer");
    h_resp_free(&r);
    ck_assert(h_wait_log(&srv, "exc_info after the headers were sent", 1, 2000));
    r = h_get(&srv, "/probe/empty");
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(r.len, 0);
    h_resp_free(&r);
}
END_TEST

START_TEST(http_content_length_mismatch)
{
    struct hresp r = h_get(&srv, "/probe/cl?declared=10&size=5");

    /* Under-run: 5 of 10 bytes, then the connection closes. */
    ck_assert_int_ne(r.curl_code, 0);
    h_resp_free(&r);
    ck_assert(h_wait_log(&srv, "body ended after 5 of its declared 10 bytes", 1, 2000));
    r = h_get(&srv, "/probe/cl?declared=5&size=3&n=4");
    ck_assert_int_ne(r.curl_code, 0);
    h_resp_free(&r);
    ck_assert(h_wait_log(&srv, "body longer than its declared 5 bytes", 1, 2000));
    r = h_get(&srv, "/probe/cl?declared=10&size=5&n=2");
    ck_assert_int_eq(r.curl_code, 0);
    ck_assert_str_eq(r.body, "xxxxxxxxxx");
    h_resp_free(&r);
}
END_TEST

START_TEST(http_error_stream_and_finished)
{
    struct hresp r = h_get(&srv, "/probe/log");

    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert(h_wait_log(&srv, "[warn]", 1, 2000));
    ck_assert(h_wait_log(&srv, ": probe log line", 1, 2000));
    ck_assert(h_wait_log(&srv, ": probe partial line", 1, 2000));
    r = h_get(&srv, "/probe/finished");
    h_resp_free(&r);
    r = h_get(&srv, "/probe/counts");
    ck_assert_msg(h_has(r.body, "finished=1"), "%s", r.body);
    h_resp_free(&r);
    r = h_get(&srv, "/probe/url?x=1");
    ck_assert_msg(strncmp(r.body, "http://127.0.0.1:", 17) == 0, "%s", r.body);
    ck_assert_msg(h_has(r.body, "/probe/url?x=1"), "%s", r.body);
    h_resp_free(&r);
}
END_TEST

START_TEST(http_access_log_once_per_request)
{
    char path[64];
    struct hresp r;
    char *log;
    int n = 0;

    snprintf(path, sizeof(path), "/hello/al%d", (int)getpid());
    r = h_get(&srv, path);
    h_resp_free(&r);
    h_sleep_ms(200);
    log = h_slurp(srv.access, NULL);
    for (char *p = log; (p = strstr(p, path)) != NULL; p++)
        n++;
    ck_assert_int_eq(n, 1);
    ck_assert_msg(strstr(log, " 200 ") && strstr(log, " hello "), "%s", log);
    free(log);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Servers started per test                                           */
/* ------------------------------------------------------------------ */

START_TEST(http_zero_plugins_404)
{
    struct hserver s;
    struct hresp r;

    h_init(&s);
    h_start(&s, 1, (const char *[]){"--workers", "1", NULL});
    r = h_get(&s, "/anything");
    ck_assert_int_eq(r.status, 404);
    h_resp_free(&r);
    ck_assert_int_ge(h_log_count(&s, "no plugin loaded"), 1);
    ck_assert_int_eq(WEXITSTATUS(h_stop(&s, SIGTERM, 5000)), 0);
    h_cleanup(&s);
}
END_TEST

START_TEST(http_bad_plugin_named_and_skipped)
{
    struct hserver s;
    struct hresp r;
    FILE *f;
    char path[400];

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    snprintf(path, sizeof(path), "%s/garbage.so", s.plugins);
    f = fopen(path, "w");
    fputs("this is not an ELF file\n", f);
    fclose(f);
    h_start(&s, 1, (const char *[]){"--workers", "1", NULL});
    r = h_get(&s, "/hello");
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert_int_ge(h_log_count(&s, "plugin \"garbage.so\" skipped: dlopen failed"), 1);
    h_stop(&s, SIGTERM, 5000);
    h_cleanup(&s);
}
END_TEST

START_TEST(http_mount_override_and_config_file)
{
    struct hserver s;
    struct hresp r;
    char cfg[400];
    FILE *f;

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    snprintf(cfg, sizeof(cfg), "%s/csgi.json", s.dir);
    f = fopen(cfg, "w");
    fputs("{\"workers\": 1, \"mount\": {\"/greet\": \"hello\"},"
          " \"set\": {\"hello\": {\"greeting\": \"Howdy\"}}}\n",
          f);
    fclose(f);
    h_start(&s, 1, (const char *[]){"--config", cfg, NULL});
    r = h_get(&s, "/greet/ann");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "Howdy, ann!\n");
    h_resp_free(&r);
    r = h_get(&s, "/hello");
    ck_assert_int_eq(r.status, 404);
    h_resp_free(&r);
    h_stop(&s, SIGTERM, 5000);
    h_cleanup(&s);
}
END_TEST

/* GET url with libcurl; unix_path routes it through a unix socket. Returns the body. */
static char *
curl_body(const char *url, const char *unix_path, long *status)
{
    CURL *c = curl_easy_init();
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (unix_path)
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, unix_path);
    *status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    fclose(mem);
    return buf;
}

START_TEST(http_bind_ipv6_and_unix)
{
    struct hserver s;
    char sock[400], url[128];
    const char *extra[] = {"--workers", "1", "--bind", "[::1]:0", "--bind", NULL, NULL};
    char *log, *at, *body;
    long status;
    int port6;

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    h_add_plugin(&s, "probe.so", NULL);
    snprintf(sock, sizeof(sock), "unix:%s/http.sock", s.dir);
    extra[5] = sock;
    h_start(&s, 1, extra);
    log = h_slurp(s.log, NULL);
    at = strstr(log, "listening on http://[::1]:");
    ck_assert_msg(at != NULL, "%s", log);
    port6 = atoi(at + strlen("listening on http://[::1]:"));
    ck_assert_msg(strstr(log, "listening on unix:") != NULL, "%s", log);
    free(log);

    snprintf(url, sizeof(url), "http://[::1]:%d/probe/env", port6);
    body = curl_body(url, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_msg(h_has(body, "remote_addr=::1\n"), "%s", body);
    free(body);

    body = curl_body("http://unixhost/probe/env", sock + 5, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_msg(h_has(body, "remote_addr=\n") && h_has(body, "server_name=unixhost\n") &&
                      h_has(body, "server_port=0\n"),
                  "%s", body);
    free(body);
    body = curl_body("http://x/hello/unix", sock + 5, &status);
    ck_assert_str_eq(body, "Hello, unix!\n");
    free(body);

    h_stop(&s, SIGTERM, 5000);
    h_cleanup(&s);
}
END_TEST

struct slow_arg {
    const struct hserver *s;
    long status;
};

static void *
slow_get(void *arg)
{
    struct slow_arg *a = arg;
    struct hresp r = h_get(a->s, "/probe/slow?ms=400");

    a->status = r.status;
    h_resp_free(&r);
    return NULL;
}

START_TEST(http_threads_serialize_unsafe_plugin)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", "--threads", "2", NULL};
    struct slow_arg a[2];
    pthread_t th[2];
    struct timespec t0, t1;
    double secs;
    struct hresp r;

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    h_add_plugin(&s, "probe.so", NULL);
    h_start(&s, 1, extra);
    /* Connections spread over the worker's two daemons; every one answers. */
    for (int i = 0; i < 40; i++) {
        r = h_get(&s, i % 2 ? "/hello" : "/probe/version");
        ck_assert_int_eq(r.status, 200);
        h_resp_free(&r);
    }
    r = h_get(&s, "/probe/env");
    ck_assert_msg(h_has(r.body, "flags=25\n"),
                  "want MULTITHREAD|INPUT_TERMINATED|INPUT_BUFFERED: %s", r.body);
    h_resp_free(&r);
    /* probe is not CSGI_PLUGIN_THREADSAFE: two 400 ms calls on two threads run one after the other.
     */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 2; i++) {
        a[i].s = &s;
        a[i].status = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, slow_get, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_int_eq(a[0].status, 200);
    ck_assert_int_eq(a[1].status, 200);
    ck_assert_msg(secs >= 0.79, "calls overlapped: %.3f s", secs);
    h_stop(&s, SIGTERM, 5000);
    h_cleanup(&s);
}
END_TEST

static int
connect_local(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Send one GET and wait up to ms for a reply; returns bytes read (0: none, -1: closed). */
static ssize_t
ask(int fd, int ms)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    struct pollfd p = {fd, POLLIN, 0};
    char buf[1024];
    ssize_t n;

    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0)
        return -1;
    if (poll(&p, 1, ms) <= 0)
        return 0;
    n = recv(fd, buf, sizeof(buf), 0);
    return n == 0 ? -1 : n;
}

START_TEST(http_connection_limit_queues)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", "--max-connections", "2", "--max-connections-per-ip",
                           "0",         NULL};
    int a, b, c;

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    h_start(&s, 1, extra);
    a = connect_local(s.port);
    b = connect_local(s.port);
    ck_assert_int_gt(ask(a, 2000), 0);
    ck_assert_int_gt(ask(b, 2000), 0);
    /* A third connection waits in the backlog: neither answered nor reset. */
    c = connect_local(s.port);
    ck_assert_int_eq(ask(c, 500), 0);
    /* A slot frees up: the waiting request is served. */
    close(a);
    {
        struct pollfd p = {c, POLLIN, 0};
        char buf[1024];
        ck_assert_int_gt(poll(&p, 1, 3000), 0);
        ck_assert_int_gt(recv(c, buf, sizeof(buf), 0), 0);
    }
    close(b);
    close(c);
    h_stop(&s, SIGTERM, 5000);
    h_cleanup(&s);
}
END_TEST

START_TEST(http_access_log_json)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", "--access-log", NULL, "--access-log-json", NULL};
    struct hresp r;
    char *log;

    h_init(&s);
    extra[3] = s.access;
    h_add_plugin(&s, "hello.so", NULL);
    h_start(&s, 1, extra);
    r = h_get(&s, "/hello/json?x=\"q\"");
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    h_stop(&s, SIGTERM, 5000);
    log = h_slurp(s.access, NULL);
    /* One JSON object per line, the quote in the target escaped. */
    ck_assert_msg(h_has(log, "\"method\":\"GET\",\"target\":\"/hello/json?x=\\\"q\\\"\"") &&
                      h_has(log, "\"status\":200,\"bytes\":13,") &&
                      h_has(log, "\"plugin\":\"hello\",\"request_id\":1,") &&
                      h_has(log, ",\"id\":\"") && strlen(strstr(log, ",\"id\":\"")) == 7 + 32 + 3 &&
                      log[strlen(log) - 1] == '\n',
                  "%s", log);
    free(log);
    h_cleanup(&s);
}
END_TEST

START_TEST(http_body_timeout)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", "--body-timeout", "1", NULL};
    static const char head[] =
        "POST /probe/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n";
    char out[256];
    int closed = 0, sock = -1;
    time_t t0;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    h_start(&s, 1, extra);
    /* The head is complete; the body trickles a byte every 200 ms: cut off after ~1 s. */
    sock = connect_local(s.port);
    t0 = time(NULL);
    ck_assert_int_eq(send(sock, head, sizeof(head) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(head) - 1));
    for (int i = 0; i < 40 && time(NULL) - t0 <= 6; i++) {
        ssize_t n = recv(sock, out, sizeof(out), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN) || send(sock, "x", 1, MSG_NOSIGNAL) != 1) {
            closed = 1;
            break;
        }
        h_sleep_ms(200);
    }
    close(sock);
    ck_assert_msg(closed, "trickled body not cut off");
    ck_assert_int_le(time(NULL) - t0, 4);
    h_stop(&s, SIGTERM, 5000);
    h_cleanup(&s);
}
END_TEST

static int
run_server(const char *const *args, char *out, size_t cap)
{
    int pipefd[2];
    pid_t pid;
    int status;
    size_t n = 0;
    ssize_t got;

    ck_assert_int_eq(pipe(pipefd), 0);
    pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        execv(getenv("CSGI_SERVER"), (char *const *)args);
        _exit(127);
    }
    close(pipefd[1]);
    while (n < cap - 1 && (got = read(pipefd[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = '\0';
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

START_TEST(http_command_line)
{
    char out[8192];
    const char *srvbin = getenv("CSGI_SERVER");
    struct hserver s;

    ck_assert_int_eq(run_server((const char *[]){srvbin, "--bogus", NULL}, out, sizeof(out)), 2);
    ck_assert_msg(h_has(out, "unknown option --bogus"), "%s", out);
    ck_assert_int_eq(run_server((const char *[]){srvbin, "--workers", "x", "--plugins", "/", NULL},
                                out, sizeof(out)),
                     2);
    ck_assert_msg(h_has(out, "--workers"), "%s", out);
    ck_assert_int_eq(run_server((const char *[]){srvbin, "--plugins", "/", "--max-connections",
                                                 "10", "--max-connections-per-ip", "20", NULL},
                                out, sizeof(out)),
                     2);
    ck_assert_msg(h_has(out, "--max-connections-per-ip"), "%s", out);
    ck_assert_int_eq(run_server((const char *[]){srvbin, "--version", NULL}, out, sizeof(out)), 0);
    ck_assert_msg(h_has(out, "csgi-server") && h_has(out, "ABI 1"), "%s", out);
    ck_assert_int_eq(run_server((const char *[]){srvbin, "--help", NULL}, out, sizeof(out)), 0);
    ck_assert_msg(h_has(out, "--max-body"), "%s", out);

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    ck_assert_int_eq(
        run_server((const char *[]){srvbin, "--plugins", s.plugins, "--check-config", NULL}, out,
                   sizeof(out)),
        0);
    ck_assert_msg(h_has(out, "1 plugin(s) loaded, 0 failed"), "%s", out);
    h_add_plugin(&s, "init_fail.so", NULL);
    ck_assert_int_eq(
        run_server((const char *[]){srvbin, "--plugins", s.plugins, "--check-config", NULL}, out,
                   sizeof(out)),
        1);
    ck_assert_msg(h_has(out, "init_fail"), "%s", out);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Host services of environ and host API version 2 (hostsvc fixture)  */
/* ------------------------------------------------------------------ */

#define ID_LEN      32
#define ID_REQUESTS 120

struct seen_id {
    char id[ID_LEN + 1];
    int pid;
};

/* GET /hostsvc/id until @p want ids are collected; returns how many were. */
static size_t
collect_ids(const struct hserver *s, struct seen_id *ids, size_t have, size_t want)
{
    for (size_t tries = 0; have < want && tries < 2 * want; tries++) {
        struct hresp r = h_get(s, "/hostsvc/id");
        char id[64];
        int pid = 0;

        if (r.status == 200 && sscanf(r.body, "%63s %d", id, &pid) == 2 && strlen(id) == ID_LEN) {
            memcpy(ids[have].id, id, ID_LEN + 1);
            ids[have].pid = pid;
            have++;
        }
        ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body ? r.body : "");
        ck_assert_msg(h_has(r.headers, "Content-Length: "), "%s", r.headers);
        h_resp_free(&r);
    }
    return have;
}

static size_t
distinct_pids(const struct seen_id *ids, size_t n, size_t from)
{
    size_t d = 0;

    for (size_t i = from; i < n; i++) {
        size_t j = from;
        while (j < i && ids[j].pid != ids[i].pid)
            j++;
        d += j == i;
    }
    return d;
}

/*
 * Two workers, then a reload (a second generation): every id a plugin saw is
 * unique, 32 hex digits, and the access log names each one ("id=<id>").
 * Before environ version 2 there was no id; the per-worker counter the log
 * had repeats across workers (both start at 1).
 */
START_TEST(http_request_id_unique_across_workers_and_generations)
{
    struct hserver s;
    const char *extra[] = {"--workers", "2", "--access-log", NULL, NULL};
    /* Up to 10 rounds for the first generation (below), one for the second. */
    struct seen_id *ids = calloc(11 * ID_REQUESTS, sizeof(*ids));
    size_t n, gen1;
    char *log;

    ck_assert_ptr_nonnull(ids);
    h_init(&s);
    extra[3] = s.access;
    h_add_plugin(&s, "hostsvc.so", NULL);
    h_start(&s, 2, extra);
    n = collect_ids(&s, ids, 0, ID_REQUESTS);
    ck_assert_uint_eq(n, ID_REQUESTS);
    /*
     * One request at a time may all go to one worker (whichever accepts
     * first: neither holds more than its share), more so on a loaded
     * machine: more rounds until both have served some.
     */
    while (distinct_pids(ids, n, 0) < 2 && n < 10 * ID_REQUESTS)
        n = collect_ids(&s, ids, n, n + ID_REQUESTS);
    gen1 = n;
    ck_assert_msg(distinct_pids(ids, n, 0) == 2, "one worker served all %zu requests", n);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(h_wait_log(&s, "worker ready", 4, 15000), "the reload did not start workers");
    h_sleep_ms(300);
    n = collect_ids(&s, ids, n, gen1 + ID_REQUESTS);
    ck_assert_uint_eq(n, gen1 + ID_REQUESTS);
    ck_assert_msg(distinct_pids(ids, n, 0) > 2, "no request reached the new generation");
    ck_assert_int_eq(h_stop(&s, SIGTERM, 10000) >= 0, 1);
    log = h_slurp(s.access, NULL);
    for (size_t i = 0; i < n; i++) {
        char needle[ID_LEN + 8];

        ck_assert_uint_eq(strspn(ids[i].id, "0123456789abcdef"), ID_LEN);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(ids[i].id, ids[j].id) != 0,
                          "id %s repeats (requests %zu and %zu, pids %d and %d, gen1 %zu)",
                          ids[i].id, j, i, ids[j].pid, ids[i].pid, gen1);
        snprintf(needle, sizeof(needle), " id=%s\n", ids[i].id);
        ck_assert_msg(h_has(log, needle), "the access log lacks \"%s\"", ids[i].id);
    }
    free(log);
    free(ids);
    h_cleanup(&s);
}
END_TEST

/*
 * A chunked upload, buffered whole before call(): input_length says its
 * length, content_length stays -1 (SPEC 4.2); with Content-Length both agree.
 * The plugin allocates through env->host without init_worker().
 */
START_TEST(http_chunked_upload_input_length)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", NULL};
    const char req[] = "POST /hostsvc/length HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                       "Connection: close\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    char out[4096];
    int closed;
    struct hresp r;

    h_init(&s);
    h_add_plugin(&s, "hostsvc.so", NULL);
    h_start(&s, 1, extra);
    h_raw(s.port, req, sizeof(req) - 1, out, sizeof(out), 2000, &closed);
    ck_assert_msg(h_has(out, "HTTP/1.1 200"), "%s", out);
    ck_assert_msg(h_has(out, "\r\n\r\ncontent_length=-1 input_length=12 read=12\n"), "%s", out);
    r = h_request(&s, "POST", "/hostsvc/length", "hello", 5, NULL);
    ck_assert_msg(h_has(r.body, "content_length=5 input_length=5 read=5\n"), "%s", r.body);
    h_resp_free(&r);
    r = h_get(&s, "/hostsvc/length");
    ck_assert_msg(h_has(r.body, "content_length=-1 input_length=0 read=0\n"), "%s", r.body);
    h_resp_free(&r);
    h_stop(&s, SIGTERM, 10000);
    h_cleanup(&s);
}
END_TEST

/* body_from_buffer(): one chunk with total_length, so Content-Length goes out; borrowed or copied.
 */
START_TEST(http_buffer_body_content_length)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", NULL};
    char out[4096];
    int closed;
    const char head[] = "HEAD /hostsvc/static HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    struct hresp r;

    h_init(&s);
    h_add_plugin(&s, "hostsvc.so", NULL);
    h_start(&s, 1, extra);
    r = h_get(&s, "/hostsvc/static");
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.headers, "Content-Length: 22\r\n"), "%s", r.headers);
    ck_assert_msg(!h_has(r.headers, "chunked"), "%s", r.headers);
    ck_assert_str_eq(r.body, "static one-chunk body\n");
    h_resp_free(&r);
    h_raw(s.port, head, sizeof(head) - 1, out, sizeof(out), 2000, &closed);
    ck_assert_msg(h_has(out, "Content-Length: 22\r\n"), "%s", out);
    ck_assert_msg(h_has(out, "\r\n\r\n") && strstr(out, "\r\n\r\n")[4] == '\0', "%s", out);
    r = h_get(&s, "/hostsvc/nope");
    ck_assert_int_eq(r.status, 404);
    ck_assert_msg(h_has(r.headers, "Content-Length: 17\r\n"), "%s", r.headers);
    h_resp_free(&r);
    h_stop(&s, SIGTERM, 10000);
    h_cleanup(&s);
}
END_TEST

/*
 * A plugin built against the CSGI 1.0 headers (environ and host API version
 * 1) on this server (environ version 3, host API version 4): it loads, its init_worker() host API
 * and its environ read as its header lays them out (SPEC 5.5).
 */
START_TEST(http_old_plugin_served)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", NULL};
    struct hresp r;

    h_init(&s);
    h_add_plugin(&s, "old_v1.so", NULL);
    h_start(&s, 1, extra);
    r = h_request(&s, "POST", "/old/env", "12345678", 8, NULL);
    ck_assert_int_eq(r.status, 200);
    /* env_size: the version-1 environ the plugin was compiled with (256 bytes on LP64). */
    ck_assert_msg(
        h_has(r.body, "env_version=3 api_version=4 env_size=") &&
            h_has(r.body, " method=POST path=/env content_length=8 read=8 host=1 url=1\n"),
        "%s", r.body);
#if defined(__x86_64__) && defined(__LP64__)
    ck_assert_msg(h_has(r.body, "env_size=256 "), "%s", r.body);
#endif
    ck_assert_msg(h_has(r.headers, "Content-Length: "), "%s", r.headers);
    h_resp_free(&r);
    h_stop(&s, SIGTERM, 10000);
    h_cleanup(&s);
}
END_TEST

static Suite *
http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("main");

    tcase_add_unchecked_fixture(tc, main_setup, main_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, http_hello_keepalive);
    tcase_add_test(tc, http_head_memo_pipelined);
    tcase_add_test(tc, http_response_cache_pipelined);
    tcase_add_test(tc, http_curl_reuses_connection);
    tcase_add_test(tc, http_head_has_length_no_body);
    tcase_add_test(tc, http_environ_fields);
    tcase_add_test(tc, http_path_decoding);
    tcase_add_test(tc, http_absolute_form);
    tcase_add_test(tc, http_post_echo_small);
    tcase_add_test(tc, http_chunked_request_body);
    tcase_add_test(tc, http_large_upload_spills_and_roundtrips);
    tcase_add_test(tc, http_413_before_upload);
    tcase_add_test(tc, http_100_continue);
    tcase_add_loop_test(tc, http_smuggling_rejected, 0,
                        (int)(sizeof(smuggle) / sizeof(smuggle[0])));
    tcase_add_test(tc, http_unknown_method_501);
    tcase_add_test(tc, http_options_asterisk);
    tcase_add_test(tc, http_too_many_headers_431);
    tcase_add_test(tc, http_huge_header_431);
    tcase_add_test(tc, http_slowloris_cut_off);
    tcase_add_test(tc, http_slowloris_trickle_cut_off);
    tcase_add_test(tc, http_init_fail_others_serve);
    tcase_add_test(tc, http_close_once_on_disconnect);
    tcase_add_test(tc, http_stream_chunked_and_exact);
    tcase_add_test(tc, http_http10_close_delimited);
    tcase_add_test(tc, http_write_callable);
    tcase_add_test(tc, http_file_body);
    tcase_add_test(tc, http_app_errors);
    tcase_add_test(tc, http_start_response_rules);
    tcase_add_test(tc, http_content_length_mismatch);
    tcase_add_test(tc, http_error_stream_and_finished);
    tcase_add_test(tc, http_access_log_once_per_request);
    suite_add_tcase(s, tc);

    tc = tcase_create("own_server");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, http_zero_plugins_404);
    tcase_add_test(tc, http_bad_plugin_named_and_skipped);
    tcase_add_test(tc, http_mount_override_and_config_file);
    tcase_add_test(tc, http_command_line);
    tcase_add_test(tc, http_bind_ipv6_and_unix);
    tcase_add_test(tc, http_threads_serialize_unsafe_plugin);
    tcase_add_test(tc, http_connection_limit_queues);
    tcase_add_test(tc, http_access_log_json);
    tcase_add_test(tc, http_body_timeout);
    tcase_add_test(tc, http_request_id_unique_across_workers_and_generations);
    tcase_add_test(tc, http_chunked_upload_input_length);
    tcase_add_test(tc, http_buffer_body_content_length);
    tcase_add_test(tc, http_old_plugin_served);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_suite());
    int failed;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
