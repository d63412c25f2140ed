/*
 * Unit tests for libcsgi-util's Range evaluation (gateway/lib/util_range.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/util.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
    const char *header;
    int64_t length;
    int status;
    int64_t first, last;
} range_cases[] = {
    {"bytes=0-499", 1000, 206, 0, 499},
    {"bytes=500-999", 1000, 206, 500, 999},
    {"bytes=500-", 1000, 206, 500, 999},
    {"bytes=-500", 1000, 206, 500, 999},
    {"bytes=-5000", 1000, 206, 0, 999},
    {"bytes=0-0", 1, 206, 0, 0},
    {"bytes=0-99999", 1000, 206, 0, 999},
    {"bytes=0-99999999999999999999999", 1000, 206, 0, 999}, /* saturates: to the end */
    {"Bytes=1-2", 10, 206, 1, 2},
    {" bytes=1-2 ", 10, 206, 1, 2},
    {"bytes= 1-2 ,", 10, 206, 1, 2},
    {"bytes=,,1-2,,", 10, 206, 1, 2},
    /* Several ranges: merged when they overlap or touch, else ignored. */
    {"bytes=0-1,2-3", 10, 206, 0, 3},
    {"bytes=2-3,0-1", 10, 206, 0, 3},
    {"bytes=0-5, 3-8", 10, 206, 0, 8},
    {"bytes=8-9,0-1,2-7", 10, 206, 0, 9},
    {"bytes=0-1,50-60", 10, 206, 0, 1}, /* the unsatisfiable one is dropped */
    {"bytes=0-1,3-4", 10, 200, 0, 0},
    {"bytes=0-0,-1", 10, 200, 0, 0},
    /* Unsatisfiable. */
    {"bytes=1000-", 1000, 416, 0, 0},
    {"bytes=1000-2000", 1000, 416, 0, 0},
    {"bytes=-0", 1000, 416, 0, 0},
    {"bytes=0-0", 0, 416, 0, 0},
    {"bytes=-1", 0, 416, 0, 0},
    {"bytes=99999999999999999999-", 1000, 416, 0, 0},
    {"bytes=20-30,40-50", 10, 416, 0, 0},
    /* Ignored: not bytes, malformed. */
    {"", 10, 200, 0, 0},
    {"items=0-1", 10, 200, 0, 0},
    {"bytes 0-1", 10, 200, 0, 0},
    {"bytes=", 10, 200, 0, 0},
    {"bytes=,", 10, 200, 0, 0},
    {"bytes=-", 10, 200, 0, 0},
    {"bytes=5-4", 10, 200, 0, 0},
    {"bytes=a-b", 10, 200, 0, 0},
    {"bytes=1 -2", 10, 200, 0, 0},
    {"bytes=+1-2", 10, 200, 0, 0},
    {"bytes=--1", 10, 200, 0, 0},
    {"bytes=0-1;x", 10, 200, 0, 0},
    {"bytes=0-1,x", 10, 200, 0, 0}, /* one bad spec spoils the set */
    {"bytes=0-1,5-", 10, 200, 0, 0},
    /* Up to CSGI_RANGE_MAX_SPECS specs (16) are read; more are ignored. */
    {"bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15", 100, 206,
     0, 15},
    {"bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16", 100,
     200, 0, 0},
};

START_TEST(util_range_parse)
{
    struct csgi_range r = {-7, -7};
    int st = csgi_range_parse(csgi_str_c(range_cases[_i].header), range_cases[_i].length, &r);

    ck_assert_msg(st == range_cases[_i].status, "\"%s\": %d", range_cases[_i].header, st);
    if (st == 206) {
        ck_assert_int_eq(r.first, range_cases[_i].first);
        ck_assert_int_eq(r.last, range_cases[_i].last);
    } else {
        ck_assert_int_eq(r.first, -7); /* untouched */
    }
}
END_TEST

START_TEST(util_range_parse_edges)
{
    struct csgi_range r;
    static const char nul[] = "bytes=0-1\0";

    ck_assert_int_eq(csgi_range_parse((struct csgi_str){NULL, 0}, 10, &r), 200);
    ck_assert_int_eq(csgi_range_parse((struct csgi_str){nul, sizeof(nul) - 1}, 10, &r), 200);
    ck_assert_int_eq(csgi_range_parse(csgi_str_c("bytes=0-1"), -1, &r), CSGI_EINVAL);
    ck_assert_int_eq(csgi_range_parse(csgi_str_c("bytes=0-1"), 10, NULL), CSGI_EINVAL);
    ck_assert_int_eq(csgi_range_parse(csgi_str_c("bytes=-9223372036854775807"), INT64_MAX, &r),
                     206);
    ck_assert_int_eq(r.first, 0);
    ck_assert_int_eq(r.last, INT64_MAX - 1);
    ck_assert_int_eq(csgi_range_parse(csgi_str_c("bytes=9223372036854775806-"), INT64_MAX, &r),
                     206);
    ck_assert_int_eq(r.first, INT64_MAX - 1);
    ck_assert_int_eq(r.last, INT64_MAX - 1);
}
END_TEST

static Suite *
util_range_suite(void)
{
    Suite *s = suite_create("util_range");
    TCase *tc = tcase_create("range_parse");

    tcase_add_loop_test(tc, util_range_parse, 0, (int)N_OF(range_cases));
    tcase_add_test(tc, util_range_parse_edges);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(util_range_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
