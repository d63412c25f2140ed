/*
 * Unit tests for libcsgi-util's HTTP-date helpers (gateway/lib/util_date.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <csgi/util.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
    int64_t t;
    const char *text;
} fmt_cases[] = {
    {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
    {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
    {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
    {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
    {4107542400, "Mon, 01 Mar 2100 00:00:00 GMT"},
    {CSGI_HTTP_DATE_MIN, "Mon, 01 Jan 0001 00:00:00 GMT"},
    {CSGI_HTTP_DATE_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"},
};

START_TEST(util_http_date_format)
{
    char buf[CSGI_HTTP_DATE_LEN + 1];
    int64_t back = 0;

    memset(buf, 'x', sizeof(buf));
    ck_assert_int_eq(csgi_http_date_format(fmt_cases[_i].t, buf), 0);
    ck_assert_str_eq(buf, fmt_cases[_i].text);
    ck_assert_int_eq(csgi_http_date_parse(csgi_str_c(buf), &back), 0);
    ck_assert_int_eq(back, fmt_cases[_i].t);
}
END_TEST

START_TEST(util_http_date_format_matches_gmtime)
{
    /* Every ~37 hours over 1970..2100 against the C library (TZ-independent gmtime_r). */
    char buf[CSGI_HTTP_DATE_LEN + 1], want[64];

    for (int64_t t = 0; t < 4102444800; t += 133333) {
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        snprintf(want, sizeof(want), "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday],
                 tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        ck_assert_int_eq(csgi_http_date_format(t, buf), 0);
        ck_assert_str_eq(buf, want);
    }
}
END_TEST

START_TEST(util_http_date_format_range)
{
    char buf[CSGI_HTTP_DATE_LEN + 1];

    ck_assert_int_eq(csgi_http_date_format(CSGI_HTTP_DATE_MAX + 1, buf), CSGI_EINVAL);
    ck_assert_int_eq(csgi_http_date_format(CSGI_HTTP_DATE_MIN - 1, buf), CSGI_EINVAL);
    ck_assert_int_eq(csgi_http_date_format(INT64_MIN, buf), CSGI_EINVAL);
    ck_assert_int_eq(csgi_http_date_format(INT64_MAX, buf), CSGI_EINVAL);
    ck_assert_int_eq(csgi_http_date_format(0, NULL), CSGI_EINVAL);
}
END_TEST

static const struct {
    const char *text;
    int rc;
    int64_t t;
} parse_cases[] = {
    /* The three forms of RFC 9110 5.6.7's example. */
    {"Sun, 06 Nov 1994 08:49:37 GMT", 0, 784111777},
    {"Sunday, 06-Nov-94 08:49:37 GMT", 0, 784111777},
    {"Sun Nov  6 08:49:37 1994", 0, 784111777},
    {"Sun Nov 16 08:49:37 1994", 0, 784975777},
    /* The day name is not checked against the date. */
    {"Mon, 06 Nov 1994 08:49:37 GMT", 0, 784111777},
    {"Sun, 29 Feb 2000 00:00:00 GMT", 0, 951782400},
    {"Sun, 31 Dec 1994 23:59:60 GMT", 0, 788918400}, /* leap second: the next second */
    {"Thu, 01 Jan 1970 00:00:00 GMT", 0, 0},
    {"Sun, 29 Feb 1900 00:00:00 GMT", CSGI_EINVAL, 0},
    {"Sun, 31 Apr 1994 00:00:00 GMT", CSGI_EINVAL, 0},
    {"Sun, 00 Nov 1994 08:49:37 GMT", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 1994 24:00:00 GMT", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 1994 08:60:00 GMT", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 1994 08:49:61 GMT", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 1994 08:49:37 UTC", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 1994 08:49:37 GMT ", CSGI_EINVAL, 0},
    {" Sun, 06 Nov 1994 08:49:37 GMT", CSGI_EINVAL, 0},
    {"sun, 06 Nov 1994 08:49:37 GMT", CSGI_EINVAL, 0},
    {"Sun, 06 nov 1994 08:49:37 GMT", CSGI_EINVAL, 0},
    {"Sun, 6 Nov 1994 08:49:37 GMT", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 94 08:49:37 GMT", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 1994 8:49:37 GMT", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 1994 08:49:37", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 1994", CSGI_EINVAL, 0},
    {"Sunday, 06 Nov 1994 08:49:37 GMT", CSGI_EINVAL, 0},
    {"Sun, 06-Nov-94 08:49:37 GMT", CSGI_EINVAL, 0},
    {"Sun Nov 6 08:49:37 1994", CSGI_EINVAL, 0},
    {"Sun Nov  6 08:49:37 1994 GMT", CSGI_EINVAL, 0},
    {"Sun Nov 06 08:49:37 1994", 0, 784111777},
    {"", CSGI_EINVAL, 0},
    {"S", CSGI_EINVAL, 0},
    {"Sun, +6 Nov 1994 08:49:37 GMT", CSGI_EINVAL, 0},
    {"Sun, 06 Nov 1994 08:49:37 GMT\0", CSGI_EINVAL, 0},
};

START_TEST(util_http_date_parse)
{
    int64_t t = 4242;
    const char *text = parse_cases[_i].text;
    /* The last case carries a NUL inside its length. */
    struct csgi_str s = {text, strlen(text) + (_i == (int)N_OF(parse_cases) - 1)};
    int rc = csgi_http_date_parse(s, &t);

    ck_assert_msg(rc == parse_cases[_i].rc, "\"%s\": rc %d", text, rc);
    ck_assert_int_eq(t, rc == 0 ? parse_cases[_i].t : 4242);
}
END_TEST

START_TEST(util_http_date_rfc850_century)
{
    /* A two-digit year more than 50 years ahead belongs to the previous century. */
    time_t now = time(NULL);
    struct tm tm;
    char text[64];
    int64_t t;
    int yy;

    gmtime_r(&now, &tm);
    yy = (tm.tm_year + 1900 + 51) % 100;
    snprintf(text, sizeof(text), "Monday, 01-Jan-%02d 00:00:00 GMT", yy);
    ck_assert_int_eq(csgi_http_date_parse(csgi_str_c(text), &t), 0);
    ck_assert_int_lt(t, (int64_t)now);
    yy = (tm.tm_year + 1900 + 10) % 100;
    snprintf(text, sizeof(text), "Monday, 01-Jan-%02d 00:00:00 GMT", yy);
    ck_assert_int_eq(csgi_http_date_parse(csgi_str_c(text), &t), 0);
    ck_assert_int_gt(t, (int64_t)now);
}
END_TEST

START_TEST(util_http_date_parse_args)
{
    int64_t t;
    struct csgi_str none = {NULL, 0};

    ck_assert_int_eq(csgi_http_date_parse(none, &t), CSGI_EINVAL);
    ck_assert_int_eq(csgi_http_date_parse(csgi_str_c("Sun, 06 Nov 1994 08:49:37 GMT"), NULL),
                     CSGI_EINVAL);
}
END_TEST

static Suite *
util_date_suite(void)
{
    Suite *s = suite_create("util_date");
    TCase *tc;

    tc = tcase_create("format");
    tcase_add_loop_test(tc, util_http_date_format, 0, (int)N_OF(fmt_cases));
    tcase_add_test(tc, util_http_date_format_matches_gmtime);
    tcase_add_test(tc, util_http_date_format_range);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_loop_test(tc, util_http_date_parse, 0, (int)N_OF(parse_cases));
    tcase_add_test(tc, util_http_date_rfc850_century);
    tcase_add_test(tc, util_http_date_parse_args);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(util_date_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
