/*
 * Deploy-time middleware (SPEC.md 6.1) in a real csgi-server: --wrap puts the
 * gzip and validator middleware plugins in front of installed plugins, from
 * the command line and from the configuration file; --check-config reports
 * it; a missing middleware leaves only its mount unserved; a reload applies
 * a changed wrap list. The gzip output is decoded by curl and compared with
 * the unwrapped bytes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* The stream plugin's default body: five lines. */
static const char stream_body[] =
    "line 1 of 5\nline 2 of 5\nline 3 of 5\nline 4 of 5\nline 5 of 5\n";

static void
add_plugins(struct hserver *s)
{
    h_add_plugin(s, "hello.so", NULL);
    h_add_plugin(s, "stream.so", NULL);
    h_add_plugin(s, "validator.so", NULL);
    h_add_plugin(s, "examples/gzip.so", "gzip.so");
}

static void
stop(struct hserver *s)
{
    int status = h_stop(s, SIGTERM, 15000);

    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "server did not exit 0 on SIGTERM (status %d)", status);
    h_cleanup(s);
}

/* Run csgi-server with @p args (NULL-terminated) and capture stdout; returns the exit status. */
static int
run_check(const char *const *args, char *out, size_t cap)
{
    char cmd[4096];
    size_t n = 0, len = 0;
    FILE *p;

    n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, "'%s' --error-log /dev/null",
                          getenv("CSGI_SERVER"));
    for (size_t i = 0; args[i]; i++)
        n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " '%s'", args[i]);
    ck_assert_uint_lt(n, sizeof(cmd));
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    while (len + 1 < cap) {
        size_t got = fread(out + len, 1, cap - 1 - len, p);
        if (got == 0)
            break;
        len += got;
    }
    out[len] = '\0';
    return pclose(p);
}

/* True when one line of @p out contains both @p a and @p b. */
static int
line_has(const char *out, const char *a, const char *b)
{
    for (const char *p = out; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024];

        snprintf(line, sizeof(line), "%.*s", (int)len, p);
        if (strstr(line, a) && strstr(line, b))
            return 1;
        p = eol ? eol + 1 : NULL;
    }
    return 0;
}

/* GET @p path with Accept-Encoding @p enc (NULL: none; curl decodes gzip). */
static struct hresp
get_enc(struct hserver *s, const char *path, const char *enc)
{
    s->accept_encoding = enc;
    return h_get(s, path);
}

START_TEST(wrap_check_config_reports)
{
    struct hserver s;
    char out[8192];
    int status;

    h_init(&s);
    add_plugins(&s);
    status = run_check((const char *[]){"--plugins", s.plugins, "--check-config", "--wrap",
                                        "hello=validator,gzip", "--wrap", "stream=nosuch", "--wrap",
                                        "ghost=gzip", "--set", "gzip.level=1", NULL},
                       out, sizeof(out));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d:\n%s", status, out);
    ck_assert_msg(strstr(out, "/hello (hello.so) wrapped by validator,gzip\n"), "%s", out);
    ck_assert_msg(strstr(out, "middleware (gzip.so) --set level\n"), "%s", out);
    ck_assert_msg(strstr(out, "middleware (validator.so)\n"), "%s", out);
    ck_assert_msg(line_has(out, "FAILED  stream.so ", "--wrap middleware \"nosuch\" is not loaded"),
                  "%s", out);
    ck_assert_msg(line_has(out, "FAILED  --wrap ghost ", "no plugin named \"ghost\" is loaded"),
                  "%s", out);
    /* A middleware's own init refuses a bad setting: its mounts are then not served. */
    status = run_check((const char *[]){"--plugins", s.plugins, "--check-config", "--wrap",
                                        "hello=gzip", "--set", "gzip.level=12", NULL},
                       out, sizeof(out));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d:\n%s", status, out);
    ck_assert_msg(line_has(out, "FAILED  gzip.so ", "plugin \"gzip\": init_worker failed: "), "%s",
                  out);
    ck_assert_msg(line_has(out, "FAILED  hello.so ", "--wrap middleware \"gzip\" is not loaded"),
                  "%s", out);
    h_cleanup(&s);
}
END_TEST

START_TEST(wrap_serves_gzip_and_isolates_a_missing_middleware)
{
    struct hserver s;
    struct hresp plain, zipped, hello;

    h_init(&s);
    add_plugins(&s);
    h_start(&s, 1,
            (const char *[]){"--workers", "1", "--wrap", "stream=gzip", "--wrap", "hello=nosuch",
                             NULL});
    plain = get_enc(&s, "/stream", NULL);
    zipped = get_enc(&s, "/stream", "gzip");
    ck_assert_int_eq(plain.status, 200);
    ck_assert_str_eq(plain.body, stream_body);
    ck_assert_msg(h_has(plain.headers, "Vary: Accept-Encoding\r\n"), "%s", plain.headers);
    ck_assert_msg(!h_has(plain.headers, "Content-Encoding"), "%s", plain.headers);
    ck_assert_int_eq(zipped.status, 200);
    ck_assert_msg(h_has(zipped.headers, "Content-Encoding: gzip\r\n"), "%s", zipped.headers);
    ck_assert_str_eq(zipped.body, stream_body);
    /* The mount whose middleware is missing is not served; the log says why. */
    hello = get_enc(&s, "/hello", NULL);
    ck_assert_int_eq(hello.status, 404);
    ck_assert_int_eq(h_log_count(&s, "plugin \"hello\" (\"hello.so\") not served: --wrap "
                                     "middleware \"nosuch\" is not loaded"),
                     1);
    h_resp_free(&plain);
    h_resp_free(&zipped);
    h_resp_free(&hello);
    stop(&s);
}
END_TEST

/*
 * The validator plugin in front of a plugin that breaks a rule (a body for
 * HEAD, with the strict HEAD rule): reported and passed on, or failed fast.
 */
static void
validated_head(const char *mode, long want_status)
{
    struct hserver s;
    struct hresp r;
    char tmpdir[400], mode_set[64];

    h_init(&s);
    h_add_plugin(&s, "cases.so", NULL);
    h_add_plugin(&s, "validator.so", NULL);
    snprintf(tmpdir, sizeof(tmpdir), "cases.tmpdir=%s", s.dir);
    snprintf(mode_set, sizeof(mode_set), "validator.mode=%s", mode);
    h_start(&s, 1,
            (const char *[]){"--workers", "1", "--wrap", "cases=validator", "--set", tmpdir,
                             "--set", mode_set, "--set", "validator.strict=head", NULL});
    r = h_get(&s, "/cases/one");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "one chunk\n");
    h_resp_free(&r);
    ck_assert_int_eq(h_log_count(&s, "csgi validator: "), 0);
    r = h_request(&s, "HEAD", "/cases/one", NULL, 0, NULL);
    ck_assert_int_eq(r.status, want_status);
    h_resp_free(&r);
    ck_assert(h_wait_log(&s, "csgi validator: app.head_body: ", 1, 5000));
    stop(&s);
}

START_TEST(wrap_validator_reports_and_fails_fast)
{
    validated_head("report", 200);
    validated_head("fail-fast", 500);
}
END_TEST

/*
 * Send a request tagged @p tag through gzip and read until @p keep bytes came
 * (0: until the server closes or 3 s pass), then close the connection.
 */
static void
tagged_request(const struct hserver *s, const char *path, const char *tag, size_t keep)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    struct timeval tv = {3, 0};
    char req[512], buf[4096];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0), n;

    ck_assert_int_ge(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nX-Case-Tag: %s\r\n"
                 "Connection: close\r\n\r\n",
                 path, tag);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    while ((keep == 0 || got < keep) && (n = (int)read(fd, buf, sizeof(buf))) > 0)
        got += (size_t)n;
    ck_assert_uint_gt(got, 0);
    close(fd);
}

/* Through gzip in csgi-server the inner body is closed once: at its end, and when the client goes.
 */
START_TEST(wrap_gzip_closes_inner_once)
{
    struct hserver s;
    char tmpdir[400];

    h_init(&s);
    h_add_plugin(&s, "cases.so", NULL);
    h_add_plugin(&s, "examples/gzip.so", "gzip.so");
    snprintf(tmpdir, sizeof(tmpdir), "cases.tmpdir=%s", s.dir);
    h_start(&s, 1,
            (const char *[]){"--workers", "1", "--wrap", "cases=gzip", "--set", tmpdir, NULL});
    tagged_request(&s, "/cases/chunks?n=20&size=100", "done1", 0);
    ck_assert(h_wait_log(&s, "cases[done1] finished reason=0", 1, 5000));
    ck_assert_int_eq(h_log_count(&s, "cases[done1] close after 20 chunks"), 1);
    /* 400 chunks 10 ms apart; the client leaves after the first bytes. */
    tagged_request(&s, "/cases/chunks?n=400&size=100&delay_ms=10", "gone1", 300);
    ck_assert(h_wait_log(&s, "cases[gone1] finished reason=2", 1, 10000));
    ck_assert_int_eq(h_log_count(&s, "cases[gone1] close after"), 1);
    stop(&s);
}
END_TEST

/* A wrap list in the configuration file, changed and applied by SIGHUP. */
START_TEST(wrap_config_file_and_reload)
{
    struct hserver s;
    struct hresp r;
    char cfg[400];
    FILE *f;
    long long deadline;
    int zipped = 0;

    h_init(&s);
    add_plugins(&s);
    snprintf(cfg, sizeof(cfg), "%s/csgi.json", s.dir);
    f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"workers\": 1}\n", f);
    fclose(f);
    h_start(&s, 1, (const char *[]){"--config", cfg, NULL});
    r = get_enc(&s, "/stream", "gzip");
    ck_assert_msg(!h_has(r.headers, "Content-Encoding"), "%s", r.headers);
    h_resp_free(&r);

    f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"workers\": 1, \"wrap\": {\"stream\": [\"gzip\"]}}\n", f);
    fclose(f);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    deadline = h_ms_now() + 15000;
    while (!zipped && h_ms_now() < deadline) {
        r = get_enc(&s, "/stream", "gzip");
        zipped = h_has(r.headers, "Content-Encoding: gzip\r\n") && strcmp(r.body, stream_body) == 0;
        h_resp_free(&r);
        if (!zipped)
            h_sleep_ms(100);
    }
    ck_assert_msg(zipped, "the reload did not put gzip in front of stream (log %s)", s.log);
    stop(&s);
}
END_TEST

static Suite *
wrap_suite(void)
{
    Suite *s = suite_create("wrap");
    TCase *tc = tcase_create("wrap");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, wrap_check_config_reports);
    tcase_add_test(tc, wrap_serves_gzip_and_isolates_a_missing_middleware);
    tcase_add_test(tc, wrap_validator_reports_and_fails_fast);
    tcase_add_test(tc, wrap_gzip_closes_inner_once);
    tcase_add_test(tc, wrap_config_file_and_reload);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(wrap_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
