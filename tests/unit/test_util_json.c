/*
 * Unit tests for libcsgi-util's JSON response helpers (gateway/lib/util_json.c),
 * run through the in-process test client, which frames and checks the
 * response as csgi-server does.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <csgi/testclient.h>
#include <csgi/util.h>

struct json_state {
    const struct csgi_host_api *api;
    int status;
    const struct csgi_header *headers;
    size_t n_headers;
    int start_first; /* call start_response() before, so that the helper's fails */
    int rc;
};

static int
json_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    struct json_state *st = state;
    cJSON *root = cJSON_CreateObject();

    cJSON_AddNumberToObject(root, "n", 42);
    cJSON_AddStringToObject(root, "s", "a \"quoted\" caf\xc3\xa9\n");
    cJSON_AddNullToObject(root, "z");
    cJSON_AddItemToObject(root, "list", cJSON_CreateIntArray((const int[]){1, 2, 3}, 3));
    if (st->start_first)
        resp->start_response(resp->ctx, 200, (struct csgi_str){NULL, 0}, NULL, 0, NULL);
    st->rc =
        csgi_json_respond(st->api, env, resp, st->status, st->headers, st->n_headers, root, out);
    /* The body is a copy: the tree may go at once. */
    cJSON_Delete(root);
    if (st->rc < 0 && !st->start_first)
        return resp->start_response(resp->ctx, 500, (struct csgi_str){NULL, 0}, NULL, 0, NULL);
    return 0;
}

static struct csgi_test_response *
run_json(struct json_state *st, const char *method)
{
    char err[128];
    struct csgi_test_request rq = {.method = method, .target = "/"};
    struct csgi_test_response *r = NULL;
    struct csgi_test_client *cl = csgi_test_client_new_app(json_app, st, "", err, sizeof(err));

    ck_assert_msg(cl != NULL, "%s", err);
    st->api = csgi_test_client_host_api(cl);
    st->rc = 12345;
    ck_assert_int_eq(csgi_test_client_request(cl, &rq, &r), 0);
    csgi_test_client_free(cl);
    return r;
}

START_TEST(json_respond_sends_length_and_type)
{
    static const char expect[] =
        "{\"n\":42,\"s\":\"a \\\"quoted\\\" caf\xc3\xa9\\n\",\"z\":null,\"list\":[1,2,3]}";
    struct csgi_header extra[] = {{CSGI_STR_INIT("Cache-Control"), CSGI_STR_INIT("no-store")}};
    struct json_state st = {.status = 201, .headers = extra, .n_headers = 1};
    struct csgi_test_response *r = run_json(&st, "GET");

    ck_assert_int_eq(st.rc, 0);
    ck_assert_int_eq(r->rc, 0);
    ck_assert_int_eq(r->status, 201);
    ck_assert_str_eq(r->body, expect);
    ck_assert_str_eq(csgi_test_response_header(r, "Content-Type"), "application/json");
    ck_assert_uint_eq(csgi_test_response_header_count(r, "Content-Type"), 1);
    ck_assert_str_eq(csgi_test_response_header(r, "Cache-Control"), "no-store");
    /* Sent with Content-Length (the client reports framing, not the header). */
    ck_assert_int_eq(r->framing, CSGI_TEST_FRAMING_LENGTH);
    ck_assert_uint_eq(r->body_len, sizeof(expect) - 1);
    csgi_test_response_free(r);

    /* HEAD: the same headers, no body. */
    r = run_json(&st, "HEAD");
    ck_assert_int_eq(r->rc, 0);
    ck_assert_uint_eq(r->body_len, 0);
    ck_assert_int_eq(r->framing, CSGI_TEST_FRAMING_LENGTH);
    ck_assert_uint_eq(r->body_produced, sizeof(expect) - 1);
    csgi_test_response_free(r);
}
END_TEST

START_TEST(json_respond_passes_start_response_errors)
{
    struct csgi_header bad[] = {{CSGI_STR_INIT("X-Bad"), CSGI_STR_INIT("a\r\nInjected: 1")}};
    struct json_state st = {.status = 200, .headers = bad, .n_headers = 1};
    struct csgi_test_response *r = run_json(&st, "GET");

    ck_assert_int_eq(st.rc, CSGI_EHEADER);
    ck_assert_int_eq(r->status, 500); /* the app's own fallback could still start */
    csgi_test_response_free(r);

    st = (struct json_state){.status = 99};
    r = run_json(&st, "GET");
    ck_assert_int_eq(st.rc, CSGI_ESTATUS);
    csgi_test_response_free(r);

    st = (struct json_state){.status = 200, .start_first = 1};
    r = run_json(&st, "GET");
    ck_assert_int_eq(st.rc, CSGI_ESTATE);
    ck_assert_uint_eq(r->body_len, 0);
    csgi_test_response_free(r);
}
END_TEST

START_TEST(json_args)
{
    struct csgi_body b = {0};
    struct csgi_environ env = {0};
    cJSON *root = cJSON_CreateTrue();

    ck_assert_int_eq(csgi_json_body(NULL, &env, root, &b), CSGI_EINVAL);
    ck_assert_int_eq(csgi_json_respond(NULL, &env, NULL, 200, NULL, 0, root, &b), CSGI_EINVAL);
    ck_assert(b.next == NULL);
    cJSON_Delete(root);
}
END_TEST

static Suite *
util_json_suite(void)
{
    Suite *s = suite_create("util_json");
    TCase *tc = tcase_create("respond");

    tcase_add_test(tc, json_respond_sends_length_and_type);
    tcase_add_test(tc, json_respond_passes_start_response_errors);
    tcase_add_test(tc, json_args);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(util_json_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
