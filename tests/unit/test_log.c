/*
 * Unit tests for server/src/log.c: whatever bytes a client or a plugin puts
 * in a logged field, one call writes one line, and a JSON access record is
 * valid JSON in valid UTF-8.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "log.h"

static char path[256];

static void
log_setup(void)
{
    const char *tmp = getenv("TMPDIR");
    int fd;

    snprintf(path, sizeof(path), "%s/test_log.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static void
log_teardown(void)
{
    srv_log_close();
    unlink(path);
}

/* The whole log file, NUL-terminated; caller frees. */
static char *
slurp(size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 20);
    size_t n;

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(buf);
    n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Split buf into lines (in place); returns their count, every line ended by '\n'. */
static int
split_lines(char *buf, size_t len, char **lines, int max)
{
    int n = 0;
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n') {
            ck_assert_int_lt(n, max);
            buf[i] = '\0';
            lines[n++] = buf + start;
            start = i + 1;
        }
    }
    ck_assert_msg(start == len, "the file does not end with a newline");
    return n;
}

/* True when s is well-formed UTF-8 (iconv is the independent judge). */
static int
valid_utf8(const char *s)
{
    iconv_t cd = iconv_open("UTF-32LE", "UTF-8");
    size_t in_left = strlen(s), out_cap = in_left * 4 + 4, out_left = out_cap;
    char *in = (char *)s, *out_buf = malloc(out_cap), *out = out_buf;
    size_t rc;

    ck_assert_ptr_ne(cd, (iconv_t)-1);
    rc = iconv(cd, &in, &in_left, &out, &out_left);
    iconv_close(cd);
    free(out_buf);
    return rc != (size_t)-1 && in_left == 0;
}

static char *
repeat(int c, size_t n)
{
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void
fill_record(struct srv_access_record *r, const char *ua, const char *referer, const char *target)
{
    memset(r, 0, sizeof(*r));
    r->remote_addr = "127.0.0.1";
    r->method = "GET";
    r->target = target;
    r->target_len = strlen(target);
    r->protocol = "HTTP/1.1";
    r->status = 200;
    r->bytes = 5;
    r->referer = referer;
    r->user_agent = ua;
    r->plugin = "hello";
    r->request_id = 7;
}

/* Runs of control bytes fill the record: it must still end in its own newline. */
START_TEST(log_access_combined_control_runs_one_line)
{
    struct srv_access_record r;
    char *ctl = repeat(0x01, 8000), *lines[8], *buf;
    size_t len;
    int n;

    ck_assert_int_eq(srv_log_open(NULL, path, 0), 0);
    fill_record(&r, ctl, ctl, "/a\r\nb");
    srv_access_log_write(&r);
    fill_record(&r, "next", "-", "/next");
    srv_access_log_write(&r);
    buf = slurp(&len);
    n = split_lines(buf, len, lines, 8);
    ck_assert_int_eq(n, 2);
    ck_assert_ptr_nonnull(strstr(lines[0], "/a\\x0d\\x0ab"));
    ck_assert_ptr_nonnull(strstr(lines[0], "\\x01\\x01"));
    ck_assert_ptr_nonnull(strstr(lines[0], " hello 7 pid="));
    ck_assert_msg(strncmp(lines[1], "127.0.0.1 - - [", 15) == 0, "second record glued: %.80s",
                  lines[1]);
    ck_assert_ptr_nonnull(strstr(lines[1], "\"GET /next HTTP/1.1\" 200 5"));
    free(buf);
    free(ctl);
}
END_TEST

/* JSON: control runs, raw invalid UTF-8 and valid UTF-8 give valid records. */
START_TEST(log_access_json_valid)
{
    static const char bad[] = "a\xff"
                              "b\xc0\x80"
                              "c\xed\xa0\x80"
                              "d\xf4\x90\x80\x80"
                              "e\xe2\x82";
    static const char good[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    struct srv_access_record r;
    char *ctl = repeat(0x1b, 8000), *high = repeat(0xfe, 8000), *lines[8], *buf;
    size_t len;
    int n;

    ck_assert_int_eq(srv_log_open(NULL, path, 1), 0);
    fill_record(&r, ctl, high, "/t\x01\"\\");
    srv_access_log_write(&r);
    fill_record(&r, bad, good, "/\xff");
    srv_access_log_write(&r);
    buf = slurp(&len);
    n = split_lines(buf, len, lines, 8);
    ck_assert_int_eq(n, 2);
    for (int i = 0; i < n; i++) {
        cJSON *j = cJSON_Parse(lines[i]);
        ck_assert_msg(j != NULL, "record %d is not JSON: %.120s", i, lines[i]);
        ck_assert_msg(valid_utf8(lines[i]), "record %d is not UTF-8", i);
        ck_assert_int_eq(cJSON_GetObjectItem(j, "request_id")->valueint, 7);
        if (i == 0) {
            ck_assert_str_eq(cJSON_GetObjectItem(j, "target")->valuestring, "/t\x01\"\\");
        } else {
            ck_assert_str_eq(cJSON_GetObjectItem(j, "referer")->valuestring, good);
            ck_assert_str_eq(cJSON_GetObjectItem(j, "user_agent")->valuestring,
                             "a\xef\xbf\xbd"
                             "b\xef\xbf\xbd\xef\xbf\xbd"
                             "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                             "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                             "e\xef\xbf\xbd\xef\xbf\xbd");
        }
        cJSON_Delete(j);
    }
    free(buf);
    free(ctl);
    free(high);
}
END_TEST

/*
 * The environ's request id closes the record: " id=<id>" (JSON "id"), and
 * "-" (null) for a record without one or with one that is not a plain token.
 */
START_TEST(log_access_request_id)
{
    static const char id[] = "0123456789abcdef000000000000002a";
    struct srv_access_record r;
    char *lines[8], *buf;
    size_t len;
    int n;

    for (int json = 0; json <= 1; json++) {
        ck_assert_int_eq(srv_log_open(NULL, path, json), 0);
        fill_record(&r, "ua", "-", "/x");
        r.request_id_text = id;
        srv_access_log_write(&r);
        r.request_id_text = NULL;
        srv_access_log_write(&r);
        r.request_id_text = "a b\"";
        srv_access_log_write(&r);
        buf = slurp(&len);
        n = split_lines(buf, len, lines, 8);
        ck_assert_int_eq(n, 3);
        for (int i = 0; i < n; i++) {
            const char *want = i == 0 ? id : "-";

            if (json) {
                cJSON *j = cJSON_Parse(lines[i]);
                cJSON *v;

                ck_assert_msg(j != NULL, "record %d is not JSON: %.160s", i, lines[i]);
                v = cJSON_GetObjectItem(j, "id");
                ck_assert_ptr_nonnull(v);
                if (i == 0)
                    ck_assert_str_eq(v->valuestring, id);
                else
                    ck_assert(cJSON_IsNull(v));
                ck_assert_int_eq(cJSON_GetObjectItem(j, "request_id")->valueint, 7);
                cJSON_Delete(j);
            } else {
                const char *tail = strstr(lines[i], " id=");

                ck_assert_msg(tail && strcmp(tail + 4, want) == 0, "%s", lines[i]);
                ck_assert_ptr_nonnull(strstr(lines[i], " hello 7 pid="));
            }
        }
        free(buf);
        srv_log_close();
        unlink(path);
    }
}
END_TEST

/*
 * Status 0 (no response was sent, or its status is unknown) is written as a
 * marker, "-" and JSON null, never as a status code 0.
 */
START_TEST(log_access_no_status_marker)
{
    struct srv_access_record r;
    char *lines[8], *buf;
    size_t len;
    cJSON *j;

    ck_assert_int_eq(srv_log_open(NULL, path, 0), 0);
    fill_record(&r, "ua", "-", "/gone");
    r.status = 0;
    r.bytes = 0;
    srv_access_log_write(&r);
    ck_assert_int_eq(srv_log_open(NULL, path, 1), 0);
    srv_access_log_write(&r);
    buf = slurp(&len);
    ck_assert_int_eq(split_lines(buf, len, lines, 8), 2);
    ck_assert_msg(strstr(lines[0], "\"GET /gone HTTP/1.1\" - 0 ") != NULL, "%s", lines[0]);
    j = cJSON_Parse(lines[1]);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(cJSON_IsNull(cJSON_GetObjectItem(j, "status")), "%s", lines[1]);
    cJSON_Delete(j);
    free(buf);
}
END_TEST

/* An error-log call with CR, LF and other control bytes is one line. */
START_TEST(log_error_one_line)
{
    char *nl = repeat('\n', 6000), *lines[8], *buf;
    size_t len;
    int n;

    ck_assert_int_eq(srv_log_open(path, NULL, 0), 0);
    srv_log(SRV_LOG_ERROR, "bad request \"%s\"", "GET /x\r\n2026 [error] forged\x1b[31m");
    srv_log(SRV_LOG_ERROR, "plugin says: %s|end", nl);
    srv_log(SRV_LOG_ERROR, "trailing newline kept off\n");
    buf = slurp(&len);
    n = split_lines(buf, len, lines, 8);
    ck_assert_int_eq(n, 3);
    ck_assert_ptr_nonnull(strstr(lines[0], "\"GET /x\\x0d\\x0a2026 [error] forged\\x1b[31m\""));
    ck_assert_ptr_nonnull(strstr(lines[1], "plugin says: \\x0a\\x0a"));
    ck_assert_ptr_nonnull(strstr(lines[1], "\\x0a..."));
    ck_assert_ptr_nonnull(strstr(lines[2], "trailing newline kept off"));
    free(buf);
    free(nl);
}
END_TEST

static Suite *
log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("access");

    tcase_add_checked_fixture(tc, log_setup, log_teardown);
    tcase_add_test(tc, log_access_combined_control_runs_one_line);
    tcase_add_test(tc, log_access_json_valid);
    tcase_add_test(tc, log_access_request_id);
    tcase_add_test(tc, log_access_no_status_marker);
    suite_add_tcase(s, tc);

    tc = tcase_create("error");
    tcase_add_checked_fixture(tc, log_setup, log_teardown);
    tcase_add_test(tc, log_error_one_line);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
