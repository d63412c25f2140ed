/*
 * Unit tests for libcsgi-util's body readers (gateway/lib/util_body.c), run
 * through the in-process test client's real input stream and request arena.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/testclient.h>
#include <csgi/util.h>

struct body_state {
    const struct csgi_host_api *api;
    size_t limit;
    int use_buffer; /* csgi_input_read_all() into buf instead */
    int rc;
    size_t len;
    int terminated;
    char *copy;
    char buf[64];
};

static int
body_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    struct body_state *st = state;
    struct csgi_str body = {NULL, 0};

    (void)out;
    if (st->use_buffer) {
        st->rc = csgi_input_read_all(env->input, st->buf, st->limit, &st->len);
    } else {
        st->rc = csgi_read_body(st->api, env, st->limit, &body);
        if (st->rc == 0) {
            st->len = body.len;
            st->terminated = body.ptr[body.len] == '\0';
            st->copy = malloc(body.len + 1);
            memcpy(st->copy, body.ptr, body.len + 1);
        }
    }
    return resp->start_response(resp->ctx, 204, (struct csgi_str){NULL, 0}, NULL, 0, NULL);
}

/* POST @p len bytes of a pattern, with or without Content-Length. */
static void
run_body(size_t len, int with_cl, struct body_state *st)
{
    char err[128], cl_text[32];
    struct csgi_header h[] = {{CSGI_STR_INIT("Content-Length"), {cl_text, 0}}};
    struct csgi_test_request rq = {.method = "POST", .target = "/"};
    struct csgi_test_response *r = NULL;
    struct csgi_test_client *cl;
    char *data = malloc(len + 1);

    for (size_t i = 0; i < len; i++)
        data[i] = (char)('a' + i % 26);
    if (len > 3)
        data[3] = '\0'; /* NUL bytes are body bytes like any other */
    h[0].value.len = (size_t)snprintf(cl_text, sizeof(cl_text), "%zu", len);
    rq.body = data;
    rq.body_len = len;
    if (with_cl) {
        rq.headers = h;
        rq.n_headers = 1;
    }
    cl = csgi_test_client_new_app(body_app, st, "", err, sizeof(err));
    ck_assert_msg(cl != NULL, "%s", err);
    st->api = csgi_test_client_host_api(cl);
    st->rc = 12345;
    ck_assert_int_eq(csgi_test_client_request(cl, &rq, &r), 0);
    ck_assert_int_eq(r->status, 204);
    if (st->rc == 0 && !st->use_buffer) {
        ck_assert_uint_eq(st->len, len);
        ck_assert(st->terminated);
        ck_assert_mem_eq(st->copy, data, len);
    }
    free(st->copy);
    st->copy = NULL;
    free(data);
    csgi_test_response_free(r);
    csgi_test_client_free(cl);
}

static const struct {
    size_t len, limit;
    int with_cl, rc;
} body_cases[] = {
    {0, 0, 1, 0},
    {0, 0, 0, 0},
    {5, 5, 1, 0},
    {5, 5, 0, 0},
    {6, 5, 1, CSGI_ETOOBIG},
    {6, 5, 0, CSGI_ETOOBIG},
    {1, 0, 0, CSGI_ETOOBIG},
    {4096, 4096, 0, 0},
    {4097, 4096, 0, CSGI_ETOOBIG},
    {4097, 4097, 0, 0},
    {100000, 100000, 0, 0},
    {100000, 1u << 20, 0, 0},
    {100000, 1u << 20, 1, 0},
    {100000, SIZE_MAX, 0, 0},
    {100001, 100000, 0, CSGI_ETOOBIG},
};

START_TEST(util_read_body)
{
    struct body_state st = {.limit = body_cases[_i].limit};

    run_body(body_cases[_i].len, body_cases[_i].with_cl, &st);
    ck_assert_msg(st.rc == body_cases[_i].rc, "case %d: rc %d", _i, st.rc);
}
END_TEST

START_TEST(util_input_read_all)
{
    struct body_state st = {.use_buffer = 1, .limit = 10};

    run_body(10, 0, &st);
    ck_assert_int_eq(st.rc, 0);
    ck_assert_uint_eq(st.len, 10);
    ck_assert_mem_eq(st.buf, "abc\0efghij", 10);
    run_body(11, 1, &st);
    ck_assert_int_eq(st.rc, CSGI_ETOOBIG);
    ck_assert_uint_eq(st.len, 10);
    st.limit = 0;
    run_body(0, 0, &st);
    ck_assert_int_eq(st.rc, 0);
    ck_assert_uint_eq(st.len, 0);
}
END_TEST

START_TEST(util_read_body_args)
{
    struct csgi_environ env = {.content_length = -1};
    struct csgi_str b;

    ck_assert_int_eq(csgi_read_body(NULL, &env, 10, &b), CSGI_EINVAL);
    ck_assert_int_eq(csgi_input_read_all(NULL, NULL, 0, NULL), CSGI_EINVAL);
}
END_TEST

static Suite *
util_body_suite(void)
{
    Suite *s = suite_create("util_body");
    TCase *tc = tcase_create("read_body");

    tcase_add_loop_test(tc, util_read_body, 0, (int)(sizeof(body_cases) / sizeof(body_cases[0])));
    tcase_add_test(tc, util_input_read_all);
    tcase_add_test(tc, util_read_body_args);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(util_body_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
