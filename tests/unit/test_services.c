/*
 * Unit tests for gateway/core/services.c and the inline helpers of core.h
 * it goes with: request ids (csgi__request_id_format(), its SWAR hex, and
 * csgi__request_id_prefix()) and one-chunk bodies (csgi__body_from_buffer()).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "core.h"

/* A bump allocator over a static block, counting calls. */
static _Alignas(16) char arena[4096];
static size_t arena_used;
static int arena_calls;
static int arena_fail;

static void *
test_alloc(void *ctx, size_t n)
{
    void *p;

    (void)ctx;
    arena_calls++;
    if (arena_fail || arena_used + n > sizeof(arena))
        return NULL;
    p = arena + arena_used;
    arena_used += (n + 15) & ~(size_t)15;
    return p;
}

static void
reset_arena(void)
{
    arena_used = 0;
    arena_calls = 0;
    arena_fail = 0;
}

static const uint64_t serials[] = {
    0,
    1,
    9,
    10,
    15,
    16,
    0x2a,
    0xabcdef,
    0x7fffffff,
    0x80000000,
    0xffffffff,
    1ull << 32,
    0x0123456789abcdefull,
    0xfedcba9876543210ull,
    UINT64_MAX,
};

/* The SWAR formatting agrees with printf("%016llx") for every digit value and place. */
START_TEST(services_request_id_format_matches_printf)
{
    char id[CSGI__REQUEST_ID_LEN + 8], want[64];
    uint64_t v = serials[_i];

    memset(id, '#', sizeof(id));
    csgi__request_id_format(id, "0011223344556677", v);
    snprintf(want, sizeof(want), "0011223344556677%016llx", (unsigned long long)v);
    ck_assert_str_eq(id, want);
    ck_assert_uint_eq(strlen(id), CSGI__REQUEST_ID_LEN);
    ck_assert_int_eq(id[CSGI__REQUEST_ID_LEN + 1], '#');
}
END_TEST

START_TEST(services_request_id_format_every_nibble)
{
    char id[CSGI__REQUEST_ID_LEN + 1], want[64];

    for (unsigned d = 0; d < 16; d++) {
        for (unsigned place = 0; place < 16; place++) {
            uint64_t v = (uint64_t)d << (4 * place);

            csgi__request_id_format(id, "ffffffffffffffff", v);
            snprintf(want, sizeof(want), "ffffffffffffffff%016llx", (unsigned long long)v);
            ck_assert_str_eq(id, want);
        }
    }
}
END_TEST

/* Two prefixes drawn in a row differ (64 random bits) and are lower-case hex. */
START_TEST(services_request_id_prefix_random_hex)
{
    char a[17] = {0}, b[17] = {0};

    ck_assert_int_eq(csgi__request_id_prefix(a), CSGI_OK);
    ck_assert_int_eq(csgi__request_id_prefix(b), CSGI_OK);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 16);
    ck_assert_uint_eq(strspn(b, "0123456789abcdef"), 16);
    ck_assert_str_ne(a, b);
}
END_TEST

static int
drain(const struct csgi_body *body, char *out, size_t cap, int *chunks)
{
    struct csgi_chunk c;
    size_t n = 0;
    int rc;

    *chunks = 0;
    while ((rc = body->next(body->ctx, &c)) == CSGI_OK) {
        ck_assert_uint_le(n + c.len, cap);
        memcpy(out + n, c.ptr, c.len);
        n += c.len;
        (*chunks)++;
    }
    ck_assert_int_eq(rc, CSGI_DONE);
    /* Done stays done. */
    ck_assert_int_eq(body->next(body->ctx, &c), CSGI_DONE);
    return (int)n;
}

START_TEST(services_body_from_buffer_copies)
{
    char src[] = "hello, buffer", out[64];
    struct csgi_body body;
    int chunks;

    reset_arena();
    ck_assert_int_eq(csgi__body_from_buffer(test_alloc, NULL, src, 13, 0, &body), CSGI_OK);
    ck_assert_uint_eq(body.version, CSGI_BODY_VERSION);
    ck_assert_int_eq(body.total_length, 13);
    ck_assert_uint_eq(body.flags, 0);
    ck_assert(body.close == NULL);
    memset(src, 'X', sizeof(src) - 1);
    ck_assert_int_eq(drain(&body, out, sizeof(out), &chunks), 13);
    ck_assert_int_eq(chunks, 1);
    ck_assert_int_eq(memcmp(out, "hello, buffer", 13), 0);
    ck_assert_int_eq(arena_calls, 1);
}
END_TEST

START_TEST(services_body_from_buffer_borrows)
{
    static const char text[] = "static text";
    struct csgi_body body;
    struct csgi_chunk c;

    reset_arena();
    ck_assert_int_eq(csgi__body_from_buffer(test_alloc, NULL, text, 11, CSGI_BUF_BORROW, &body),
                     CSGI_OK);
    ck_assert_int_eq(body.next(body.ctx, &c), CSGI_OK);
    ck_assert_ptr_eq(c.ptr, text);
    ck_assert_uint_eq(c.len, 11);
    ck_assert_int_eq(body.next(body.ctx, &c), CSGI_DONE);
    /* Only the state: no room for a copy. */
    ck_assert_uint_le(arena_used, 32);
}
END_TEST

START_TEST(services_body_from_buffer_empty_and_errors)
{
    struct csgi_body body, untouched;
    char out[4];
    int chunks;

    reset_arena();
    ck_assert_int_eq(csgi__body_from_buffer(test_alloc, NULL, NULL, 0, 0, &body), CSGI_OK);
    ck_assert_int_eq(body.total_length, 0);
    ck_assert_int_eq(drain(&body, out, sizeof(out), &chunks), 0);
    ck_assert_int_eq(chunks, 0);

    memset(&untouched, 0x5a, sizeof(untouched));
    body = untouched;
    ck_assert_int_eq(csgi__body_from_buffer(test_alloc, NULL, NULL, 1, 0, &body), CSGI_EINVAL);
    ck_assert_int_eq(csgi__body_from_buffer(test_alloc, NULL, "x", 1, 0x80, &body), CSGI_EINVAL);
    ck_assert_int_eq(csgi__body_from_buffer(test_alloc, NULL, "x", 1, 0, NULL), CSGI_EINVAL);
    arena_fail = 1;
    ck_assert_int_eq(csgi__body_from_buffer(test_alloc, NULL, "x", 1, 0, &body), CSGI_ENOMEM);
    ck_assert_int_eq(memcmp(&body, &untouched, sizeof(body)), 0);
}
END_TEST

static Suite *
services_suite(void)
{
    Suite *s = suite_create("services");
    TCase *tc = tcase_create("request_id");

    tcase_add_loop_test(tc, services_request_id_format_matches_printf, 0,
                        (int)(sizeof(serials) / sizeof(serials[0])));
    tcase_add_test(tc, services_request_id_format_every_nibble);
    tcase_add_test(tc, services_request_id_prefix_random_hex);
    suite_add_tcase(s, tc);

    tc = tcase_create("body_from_buffer");
    tcase_add_test(tc, services_body_from_buffer_copies);
    tcase_add_test(tc, services_body_from_buffer_borrows);
    tcase_add_test(tc, services_body_from_buffer_empty_and_errors);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(services_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
