/*
 * Unit tests for libcsgi-util's Cookie parsing and Set-Cookie building
 * (gateway/lib/util_cookie.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/testclient.h>
#include <csgi/util.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit)  csgi_str_c(lit)

START_TEST(util_cookie_iter)
{
    static const char hdr[] = " a=1;b = 2 ;;noeq; =x;c=\"q v\";d=;e=\"\";f=\";g=x=y; h\0i=j";
    const char *want[][2] = {{"a", "1"}, {"b", "2"},  {"c", "q v"}, {"d", ""},
                             {"e", ""},  {"f", "\""}, {"g", "x=y"}, {"h\0i", "j"}};
    size_t want_len[] = {1, 1, 1, 1, 1, 1, 1, 3};
    struct csgi_cookie_iter it;
    struct csgi_str n, v, h = {hdr, sizeof(hdr) - 1};
    size_t k = 0;

    csgi_cookie_iter_init(&it, h);
    while (csgi_cookie_next(&it, &n, &v) == 1) {
        ck_assert_uint_lt(k, N_OF(want));
        ck_assert_uint_eq(n.len, want_len[k]);
        ck_assert_mem_eq(n.ptr, want[k][0], n.len);
        ck_assert_msg(csgi_str_eq_c(v, want[k][1]), "value %zu", k);
        k++;
    }
    ck_assert_uint_eq(k, N_OF(want));
    ck_assert_int_eq(csgi_cookie_next(&it, &n, &v), 0);
    ck_assert_int_eq(csgi_cookie_next(&it, NULL, &v), CSGI_EINVAL);
    csgi_cookie_iter_init(&it, (struct csgi_str){NULL, 0});
    ck_assert_int_eq(csgi_cookie_next(&it, &n, &v), 0);
    csgi_cookie_iter_init(&it, S(";;; ;"));
    ck_assert_int_eq(csgi_cookie_next(&it, &n, &v), 0);
}
END_TEST

START_TEST(util_cookie_get)
{
    const struct csgi_header h[] = {
        {CSGI_STR_INIT("Cookie"), CSGI_STR_INIT("sid=one; theme=dark")},
        {CSGI_STR_INIT("Host"), CSGI_STR_INIT("x")},
        {CSGI_STR_INIT("cookie"), CSGI_STR_INIT("sid=two; lang=en")},
    };
    struct csgi_environ env = {.headers = h, .n_headers = N_OF(h)};
    struct csgi_str v;

    ck_assert_int_eq(csgi_cookie_get(&env, "sid", &v), 0);
    ck_assert(csgi_str_eq(v, S("one")));
    ck_assert_int_eq(csgi_cookie_get(&env, "lang", &v), 0);
    ck_assert(csgi_str_eq(v, S("en")));
    ck_assert_int_eq(csgi_cookie_get(&env, "SID", &v), CSGI_ENOENT); /* names are case-sensitive */
    ck_assert_int_eq(csgi_cookie_get(&env, "the", &v), CSGI_ENOENT);
    ck_assert_int_eq(csgi_cookie_get(&env, NULL, &v), CSGI_EINVAL);
    env.n_headers = 0;
    ck_assert_int_eq(csgi_cookie_get(&env, "sid", &v), CSGI_ENOENT);
}
END_TEST

static int
fmt(const struct csgi_cookie *c, char *buf, size_t cap)
{
    size_t len = 0;
    int rc = csgi_set_cookie_format(c, buf, cap, &len);
    if (rc == 0)
        ck_assert_uint_eq(len, strlen(buf));
    return rc;
}

START_TEST(util_set_cookie_format)
{
    char buf[256];
    struct csgi_cookie c = {.name = S("sid"), .value = S("abc123")};

    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "sid=abc123");
    c.value = S("");
    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "sid=");
    c = (struct csgi_cookie){.name = S("sid"),
                             .value = S("v"),
                             .domain = S("example.org"),
                             .path = S("/app x"),
                             .max_age = 3600,
                             .expires = 784111777,
                             .flags = CSGI_COOKIE_SECURE | CSGI_COOKIE_HTTP_ONLY |
                                      CSGI_COOKIE_MAX_AGE | CSGI_COOKIE_EXPIRES,
                             .same_site = CSGI_SAME_SITE_NONE};
    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "sid=v; Domain=example.org; Path=/app x; Max-Age=3600; Expires=Sun, "
                          "06 Nov 1994 08:49:37 GMT; Secure; HttpOnly; SameSite=None");
    c = (struct csgi_cookie){.name = S("a"),
                             .flags = CSGI_COOKIE_MAX_AGE,
                             .max_age = -5,
                             .same_site = CSGI_SAME_SITE_STRICT};
    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "a=; Max-Age=0; SameSite=Strict");
    c.same_site = CSGI_SAME_SITE_LAX;
    c.max_age = INT64_MAX;
    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "a=; Max-Age=9223372036854775807; SameSite=Lax");
}
END_TEST

static const struct {
    const char *name, *value, *domain, *path;
    unsigned flags;
    int same_site;
} bad_cookies[] = {
    {"", "v", NULL, NULL, 0, 0},
    {"a b", "v", NULL, NULL, 0, 0},
    {"a;b", "v", NULL, NULL, 0, 0},
    {"a=b", "v", NULL, NULL, 0, 0},
    {"a\x01", "v", NULL, NULL, 0, 0},
    {"a", "v;Secure", NULL, NULL, 0, 0},
    {"a", "v w", NULL, NULL, 0, 0},
    {"a", "v,w", NULL, NULL, 0, 0},
    {"a", "\"v\"", NULL, NULL, 0, 0},
    {"a", "v\\", NULL, NULL, 0, 0},
    {"a", "v\r\nX-Evil: 1", NULL, NULL, 0, 0},
    {"a", "\x7f", NULL, NULL, 0, 0},
    {"a", "\xc3\xa9", NULL, NULL, 0, 0},
    {"a", "v", "ex ample.org", NULL, 0, 0},
    {"a", "v", "example.org;Secure", NULL, 0, 0},
    {"a", "v", NULL, "/;HttpOnly", 0, 0},
    {"a", "v", NULL, "/\n", 0, 0},
    {"a", "v", NULL, "/\x7f", 0, 0},
    {"a", "v", NULL, NULL, 0, CSGI_SAME_SITE_NONE}, /* None needs Secure */
    {"a", "v", NULL, NULL, 0, 4},
    {"a", "v", NULL, NULL, 0, -1},
    {"a", "v", NULL, NULL, 1u << 7, 0},
};

START_TEST(util_set_cookie_rejects)
{
    char buf[256];
    struct csgi_cookie c = {.name = S(bad_cookies[_i].name),
                            .value = S(bad_cookies[_i].value),
                            .domain = S(bad_cookies[_i].domain),
                            .path = S(bad_cookies[_i].path),
                            .flags = bad_cookies[_i].flags,
                            .same_site = bad_cookies[_i].same_site};

    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), CSGI_EHEADER);
}
END_TEST

START_TEST(util_set_cookie_limits)
{
    char buf[16];
    struct csgi_cookie c = {.name = S("a"), .value = S("1234567890abcd")};
    static const char nul_value[] = {'a', '\0', 'b'};

    /* "a=1234567890abcd" is 16 bytes: no room for the terminator. */
    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), CSGI_ETOOBIG);
    c.value.len = 13;
    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "a=1234567890abc");
    ck_assert_int_eq(fmt(&c, buf, 0), CSGI_ETOOBIG);
    c.value = (struct csgi_str){nul_value, sizeof(nul_value)};
    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), CSGI_EHEADER);
    c.value = S("x");
    c.flags = CSGI_COOKIE_EXPIRES;
    c.expires = CSGI_HTTP_DATE_MAX + 1;
    ck_assert_int_eq(fmt(&c, buf, sizeof(buf)), CSGI_EHEADER);
    ck_assert_int_eq(csgi_set_cookie_format(NULL, buf, sizeof(buf), NULL), CSGI_EINVAL);
    ck_assert_int_eq(csgi_set_cookie_format(&c, NULL, 0, NULL), CSGI_EINVAL);
}
END_TEST

/* csgi_set_cookie_header() in a real request: the header reaches the response. */
struct hdr_state {
    const struct csgi_host_api *api;
    int rc;
};

static int
cookie_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    struct hdr_state *st = state;
    struct csgi_cookie c = {.name = S("sid"),
                            .value = S("xyz"),
                            .path = S("/"),
                            .flags = CSGI_COOKIE_HTTP_ONLY,
                            .same_site = CSGI_SAME_SITE_LAX};
    struct csgi_cookie bad = {.name = S("sid"), .value = S("x\r\ny")};
    struct csgi_header h[2];

    (void)out;
    ck_assert_int_eq(csgi_set_cookie_header(st->api, env, &bad, &h[0]), CSGI_EHEADER);
    st->rc = csgi_set_cookie_header(st->api, env, &c, &h[0]);
    c.value = S("");
    c.flags |= CSGI_COOKIE_MAX_AGE;
    if (st->rc == 0)
        st->rc = csgi_set_cookie_header(st->api, env, &c, &h[1]);
    return resp->start_response(resp->ctx, 204, (struct csgi_str){NULL, 0}, h, 2, NULL);
}

START_TEST(util_set_cookie_header)
{
    char err[128];
    struct hdr_state st = {0};
    struct csgi_test_client *cl = csgi_test_client_new_app(cookie_app, &st, "", err, sizeof(err));
    struct csgi_test_response *r = NULL;

    ck_assert_msg(cl != NULL, "%s", err);
    st.api = csgi_test_client_host_api(cl);
    ck_assert_int_eq(csgi_test_client_request(cl, NULL, &r), 0);
    ck_assert_int_eq(st.rc, 0);
    ck_assert_int_eq(r->status, 204);
    ck_assert_uint_eq(csgi_test_response_header_count(r, "Set-Cookie"), 2);
    ck_assert_str_eq(csgi_test_response_header(r, "Set-Cookie"),
                     "sid=xyz; Path=/; HttpOnly; SameSite=Lax");
    csgi_test_response_free(r);
    csgi_test_client_free(cl);
}
END_TEST

static Suite *
util_cookie_suite(void)
{
    Suite *s = suite_create("util_cookie");
    TCase *tc;

    tc = tcase_create("parse");
    tcase_add_test(tc, util_cookie_iter);
    tcase_add_test(tc, util_cookie_get);
    suite_add_tcase(s, tc);

    tc = tcase_create("set_cookie");
    tcase_add_test(tc, util_set_cookie_format);
    tcase_add_loop_test(tc, util_set_cookie_rejects, 0, (int)N_OF(bad_cookies));
    tcase_add_test(tc, util_set_cookie_limits);
    tcase_add_test(tc, util_set_cookie_header);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(util_cookie_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
