/*
 * Unit tests for libcsgi-util's strings, header lookup, percent-decoding and
 * query/form helpers (gateway/lib/util_str.c, util_query.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/testclient.h>
#include <csgi/util.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit)  csgi_str_c(lit)

static struct csgi_str
bytes(const char *p, size_t n)
{
    struct csgi_str s = {p, n};
    return s;
}

START_TEST(util_str_eq)
{
    struct csgi_str none = {NULL, 0};

    ck_assert(csgi_str_eq(S("abc"), S("abc")));
    ck_assert(!csgi_str_eq(S("abc"), S("abd")));
    ck_assert(!csgi_str_eq(S("abc"), S("ab")));
    ck_assert(csgi_str_eq(none, S("")));
    ck_assert(csgi_str_eq(bytes("a\0b", 3), bytes("a\0b", 3)));
    ck_assert(!csgi_str_eq(bytes("a\0b", 3), bytes("a\0c", 3)));
    ck_assert(csgi_str_ieq(S("Content-TYPE"), S("content-type")));
    ck_assert(!csgi_str_ieq(S("a"), S("b")));
    /* Only A-Z fold: '@' (0x40) and '`' (0x60) differ by 0x20 too but are not letters. */
    ck_assert(!csgi_str_ieq(S("@"), S("`")));
    ck_assert(!csgi_str_ieq(S("\xc4"), S("\xe4")));
    ck_assert(csgi_str_eq_c(S("x"), "x"));
    ck_assert(!csgi_str_eq_c(S("x"), NULL));
    ck_assert(csgi_str_ieq_c(S("X"), "x"));
    ck_assert(!csgi_str_ieq_c(S(""), NULL));
    ck_assert_ptr_null(csgi_str_c(NULL).ptr);
}
END_TEST

START_TEST(util_str_prefix_trim)
{
    struct csgi_str t;

    ck_assert(csgi_str_has_prefix(S("/static/x"), S("/static/")));
    ck_assert(csgi_str_has_prefix(S("x"), S("")));
    ck_assert(!csgi_str_has_prefix(S("/st"), S("/static")));
    ck_assert(csgi_str_has_iprefix(S("Bytes=0-1"), S("bytes=")));
    ck_assert(!csgi_str_has_iprefix(S("byte"), S("bytes=")));
    t = csgi_str_trim(S(" \t a b \t"));
    ck_assert(csgi_str_eq(t, S("a b")));
    t = csgi_str_trim(S(" \t "));
    ck_assert_uint_eq(t.len, 0);
    t = csgi_str_trim(S("\r\na\n"));
    ck_assert_uint_eq(t.len, 4); /* only SP and HTAB are OWS */
}
END_TEST

static const struct {
    const char *in;
    int rc;
    int64_t v;
} i64_cases[] = {
    {"0", 0, 0},
    {"-0", 0, 0},
    {"42", 0, 42},
    {"-42", 0, -42},
    {"9223372036854775807", 0, INT64_MAX},
    {"-9223372036854775808", 0, INT64_MIN},
    {"9223372036854775808", CSGI_EINVAL, 0},
    {"-9223372036854775809", CSGI_EINVAL, 0},
    {"99999999999999999999999", CSGI_EINVAL, 0},
    {"", CSGI_EINVAL, 0},
    {"-", CSGI_EINVAL, 0},
    {"+1", CSGI_EINVAL, 0},
    {" 1", CSGI_EINVAL, 0},
    {"1 ", CSGI_EINVAL, 0},
    {"1a", CSGI_EINVAL, 0},
    {"0x10", CSGI_EINVAL, 0},
};

START_TEST(util_str_to_i64)
{
    int64_t v = 77;
    int rc = csgi_str_to_i64(S(i64_cases[_i].in), &v);

    ck_assert_msg(rc == i64_cases[_i].rc, "\"%s\": rc %d", i64_cases[_i].in, rc);
    ck_assert_int_eq(v, rc == 0 ? i64_cases[_i].v : 77);
}
END_TEST

START_TEST(util_str_to_i64_nul)
{
    int64_t v;

    ck_assert_int_eq(csgi_str_to_i64(bytes("1\0002", 3), &v), CSGI_EINVAL);
    ck_assert_int_eq(csgi_str_to_i64(S("1"), NULL), CSGI_EINVAL);
}
END_TEST

START_TEST(util_headers_find)
{
    const struct csgi_header h[] = {
        {CSGI_STR_INIT("Accept"), CSGI_STR_INIT("a")},
        {CSGI_STR_INIT("cookie"), CSGI_STR_INIT("c1")},
        {CSGI_STR_INIT("X"), CSGI_STR_INIT("x")},
        {CSGI_STR_INIT("COOKIE"), CSGI_STR_INIT(" c2 ")},
    };
    struct csgi_environ env = {.headers = h, .n_headers = N_OF(h)};
    struct csgi_str v;

    ck_assert_int_eq(csgi_headers_find(h, N_OF(h), S("Cookie"), 0, &v), 0);
    ck_assert(csgi_str_eq(v, S("c1")));
    ck_assert_int_eq(csgi_headers_find(h, N_OF(h), S("Cookie"), 1, &v), 0);
    ck_assert(csgi_str_eq(v, S(" c2 "))); /* returned as it is */
    ck_assert_int_eq(csgi_headers_find(h, N_OF(h), S("Cookie"), 2, &v), CSGI_ENOENT);
    ck_assert_int_eq(csgi_headers_find(h, N_OF(h), S("Cooki"), 0, &v), CSGI_ENOENT);
    ck_assert_int_eq(csgi_headers_find(NULL, 0, S("x"), 0, &v), CSGI_ENOENT);
    ck_assert_int_eq(csgi_headers_find(NULL, 1, S("x"), 0, &v), CSGI_EINVAL);
    ck_assert_int_eq(csgi_headers_find(h, N_OF(h), S("x"), 0, NULL), CSGI_EINVAL);
    ck_assert_int_eq(csgi_header_get(&env, "x", 0, &v), 0);
    ck_assert(csgi_str_eq(v, S("x")));
    ck_assert_int_eq(csgi_header_get(&env, "accept", 1, &v), CSGI_ENOENT);
    ck_assert_int_eq(csgi_header_get(NULL, "x", 0, &v), CSGI_EINVAL);
    ck_assert_int_eq(csgi_header_get(&env, NULL, 0, &v), CSGI_EINVAL);
}
END_TEST

static const struct {
    const char *in;
    unsigned flags;
    int rc;
    const char *out;
    size_t out_len;
} decode_cases[] = {
    {"", 0, 0, "", 0},
    {"abc", 0, 0, "abc", 3},
    {"a%20b", 0, 0, "a b", 3},
    {"a+b", 0, 0, "a+b", 3},
    {"a+b", CSGI_URL_PLUS_SPACE, 0, "a b", 3},
    {"%2B", CSGI_URL_PLUS_SPACE, 0, "+", 1},
    {"%e2%82%AC", 0, 0, "\xe2\x82\xac", 3},
    {"%", 0, CSGI_EINVAL, NULL, 0},
    {"%4", 0, CSGI_EINVAL, NULL, 0},
    {"%4g", 0, CSGI_EINVAL, NULL, 0},
    {"%%41", 0, CSGI_EINVAL, NULL, 0},
    {"%", CSGI_URL_LENIENT, 0, "%", 1},
    {"%4", CSGI_URL_LENIENT, 0, "%4", 2},
    {"%4g%41", CSGI_URL_LENIENT, 0, "%4gA", 4},
    {"%%41", CSGI_URL_LENIENT, 0, "%A", 2},
    {"a%00b", 0, 0, "a\0b", 3},
    {"a%00b", CSGI_URL_NO_NUL, CSGI_EINVAL, NULL, 0},
    {"a%00b", CSGI_URL_NO_NUL | CSGI_URL_LENIENT, CSGI_EINVAL, NULL, 0},
};

START_TEST(util_url_decode)
{
    char buf[64];
    size_t len = 999;
    int rc =
        csgi_url_decode(S(decode_cases[_i].in), decode_cases[_i].flags, buf, sizeof(buf), &len);

    ck_assert_msg(rc == decode_cases[_i].rc, "\"%s\": rc %d", decode_cases[_i].in, rc);
    if (rc == 0) {
        ck_assert_uint_eq(len, decode_cases[_i].out_len);
        ck_assert_mem_eq(buf, decode_cases[_i].out, len);
        ck_assert_int_eq(buf[len], '\0');
        ck_assert(len <= strlen(decode_cases[_i].in));
        ck_assert(
            csgi_url_decoded_eq(S(decode_cases[_i].in), decode_cases[_i].flags, bytes(buf, len)));
    } else {
        ck_assert(
            !csgi_url_decoded_eq(S(decode_cases[_i].in), decode_cases[_i].flags, bytes(buf, 0)));
    }
}
END_TEST

START_TEST(util_url_decode_buffers)
{
    char buf[8] = "xxxxxxx";
    char in_place[] = "a%41+%42";
    size_t len = 0;

    /* Exactly the decoded length fits, but then without a terminator. */
    ck_assert_int_eq(csgi_url_decode(S("a%41"), 0, buf, 2, &len), 0);
    ck_assert_uint_eq(len, 2);
    ck_assert_mem_eq(buf, "aAxx", 4);
    ck_assert_int_eq(csgi_url_decode(S("abc"), 0, buf, 2, &len), CSGI_ETOOBIG);
    ck_assert_int_eq(csgi_url_decode(S(""), 0, NULL, 0, &len), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(csgi_url_decode(S("a"), 0, NULL, 0, &len), CSGI_ETOOBIG);
    ck_assert_int_eq(csgi_url_decode(S("a"), 0, NULL, 4, &len), CSGI_EINVAL);
    /* In place. */
    ck_assert_int_eq(
        csgi_url_decode(S(in_place), CSGI_URL_PLUS_SPACE, in_place, sizeof(in_place), &len), 0);
    ck_assert_str_eq(in_place, "aA B");
    /* Input with a NUL byte is plain data. */
    ck_assert_int_eq(csgi_url_decode(bytes("a\0b", 3), 0, buf, sizeof(buf), &len), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(buf, "a\0b", 3);
}
END_TEST

START_TEST(util_query_iter)
{
    struct csgi_query_iter it;
    struct csgi_str k, v;
    const char *want[][2] = {{"a", "1"}, {"b", ""}, {"c", ""}, {"", "x"}, {"d", "=2"}};
    size_t n = 0;

    csgi_query_iter_init(&it, S("&a=1&&b=&c&=x&d==2&"));
    while (csgi_query_next(&it, &k, &v) == 1) {
        ck_assert_uint_lt(n, N_OF(want));
        ck_assert_msg(csgi_str_eq_c(k, want[n][0]), "key %zu", n);
        ck_assert_msg(csgi_str_eq_c(v, want[n][1]), "value %zu", n);
        n++;
    }
    ck_assert_uint_eq(n, N_OF(want));
    ck_assert_int_eq(csgi_query_next(&it, &k, &v), 0);
    ck_assert_int_eq(csgi_query_next(&it, NULL, &v), CSGI_EINVAL);

    csgi_query_iter_init(&it, bytes(NULL, 0));
    ck_assert_int_eq(csgi_query_next(&it, &k, &v), 0);
    csgi_query_iter_init(&it, S("&&&"));
    ck_assert_int_eq(csgi_query_next(&it, &k, &v), 0);
}
END_TEST

START_TEST(util_query_find)
{
    const struct csgi_str q = S("a=1&b%20c=x+y&a=2&e=%zz&a");
    char buf[16];
    struct csgi_str v;
    unsigned f = CSGI_URL_PLUS_SPACE;

    ck_assert_int_eq(csgi_query_find(q, S("a"), 0, f, buf, sizeof(buf), &v), 0);
    ck_assert(csgi_str_eq(v, S("1")));
    ck_assert_int_eq(csgi_query_find(q, S("a"), 1, f, buf, sizeof(buf), &v), 0);
    ck_assert(csgi_str_eq(v, S("2")));
    ck_assert_int_eq(csgi_query_find(q, S("a"), 2, f, buf, sizeof(buf), &v), 0);
    ck_assert_uint_eq(v.len, 0);
    ck_assert_int_eq(csgi_query_find(q, S("a"), 3, f, buf, sizeof(buf), &v), CSGI_ENOENT);
    ck_assert_int_eq(csgi_query_find(q, S("b c"), 0, f, buf, sizeof(buf), &v), 0);
    ck_assert(csgi_str_eq(v, S("x y")));
    ck_assert_int_eq(csgi_query_find(q, S("b%20c"), 0, f, buf, sizeof(buf), &v), CSGI_ENOENT);
    ck_assert_int_eq(csgi_query_find(q, S("e"), 0, f, buf, sizeof(buf), &v), CSGI_EINVAL);
    ck_assert_int_eq(csgi_query_find(q, S("e"), 0, f | CSGI_URL_LENIENT, buf, sizeof(buf), &v), 0);
    ck_assert(csgi_str_eq(v, S("%zz")));
    ck_assert_int_eq(csgi_query_find(q, S("b c"), 0, f, buf, 2, &v), CSGI_ETOOBIG);
}
END_TEST

/* The test client runs this app; the query or body selects what it returns. */
struct get_case {
    const char *name;
    int form;
    int rc;
    struct csgi_str value;
    char copy[64];
};

struct get_state {
    struct get_case c;
    const struct csgi_host_api *api;
};

static int
get_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    struct get_case *c = &((struct get_state *)state)->c;
    const struct csgi_host_api *api = ((struct get_state *)state)->api;
    struct csgi_str body;

    (void)out;
    if (c->form) {
        int rc = csgi_read_body(api, env, 1024, &body);
        ck_assert_int_eq(rc, 0);
        c->rc = csgi_form_get(api, env, body, c->name, &c->value);
    } else {
        c->rc = csgi_query_get(api, env, c->name, &c->value);
    }
    if (c->rc == 0) {
        ck_assert_uint_lt(c->value.len, sizeof(c->copy));
        ck_assert_int_eq(c->value.ptr[c->value.len], '\0');
        memcpy(c->copy, c->value.ptr, c->value.len);
    }
    return resp->start_response(resp->ctx, 204, (struct csgi_str){NULL, 0}, NULL, 0, NULL);
}

static int
run_get(const char *target, const char *body, int form, const char *name, struct get_state *st)
{
    char err[128];
    struct csgi_test_client *cl;
    struct csgi_test_response *r = NULL;
    struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("application/x-www-form-urlencoded")}};
    struct csgi_test_request rq = {.method = body ? "POST" : "GET", .target = target};
    int rc;

    memset(st, 0, sizeof(*st));
    st->c.name = name;
    st->c.form = form;
    st->c.rc = 12345;
    if (body) {
        rq.headers = h;
        rq.n_headers = 1;
        rq.body = body;
        rq.body_len = strlen(body);
    }
    cl = csgi_test_client_new_app(get_app, st, "", err, sizeof(err));
    ck_assert_msg(cl != NULL, "%s", err);
    st->api = csgi_test_client_host_api(cl);
    rc = csgi_test_client_request(cl, &rq, &r);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(r->status, 204);
    csgi_test_response_free(r);
    csgi_test_client_free(cl);
    return st->c.rc;
}

START_TEST(util_query_get)
{
    struct get_state st;

    ck_assert_int_eq(run_get("/?a=1&name=J%C3%B6rg+B&x=%zz&nul=a%00b", NULL, 0, "name", &st), 0);
    ck_assert_str_eq(st.c.copy, "J\xc3\xb6rg B");
    ck_assert_int_eq(run_get("/?a=1&x=%zz%41", NULL, 0, "x", &st), 0);
    ck_assert_str_eq(st.c.copy, "%zzA");
    ck_assert_int_eq(run_get("/?nul=a%00b", NULL, 0, "nul", &st), 0);
    ck_assert_uint_eq(st.c.value.len, 3);
    ck_assert_mem_eq(st.c.copy, "a\0b", 3);
    ck_assert_int_eq(run_get("/?a=1", NULL, 0, "b", &st), CSGI_ENOENT);
    ck_assert_int_eq(run_get("/", NULL, 0, "b", &st), CSGI_ENOENT);
    ck_assert_int_eq(run_get("/?first+name=x", NULL, 0, "first name", &st), 0);
    ck_assert_str_eq(st.c.copy, "x");
}
END_TEST

START_TEST(util_form_get)
{
    struct get_state st;

    ck_assert_int_eq(run_get("/", "user=ann+lee&pw=%26%3D", 1, "pw", &st), 0);
    ck_assert_str_eq(st.c.copy, "&=");
    ck_assert_int_eq(run_get("/", "user=ann+lee&pw=%26%3D", 1, "user", &st), 0);
    ck_assert_str_eq(st.c.copy, "ann lee");
    ck_assert_int_eq(run_get("/", "", 1, "user", &st), CSGI_ENOENT);
}
END_TEST

START_TEST(util_query_get_args)
{
    struct csgi_environ env = {0};
    struct csgi_str v;

    ck_assert_int_eq(csgi_query_get(NULL, &env, "a", &v), CSGI_EINVAL);
    ck_assert_int_eq(csgi_query_get(NULL, NULL, "a", &v), CSGI_EINVAL);
    ck_assert_int_eq(csgi_form_get(NULL, &env, S("a=1"), "a", &v), CSGI_EINVAL);
}
END_TEST

static Suite *
util_query_suite(void)
{
    Suite *s = suite_create("util_query");
    TCase *tc;

    tc = tcase_create("str");
    tcase_add_test(tc, util_str_eq);
    tcase_add_test(tc, util_str_prefix_trim);
    tcase_add_loop_test(tc, util_str_to_i64, 0, (int)N_OF(i64_cases));
    tcase_add_test(tc, util_str_to_i64_nul);
    suite_add_tcase(s, tc);

    tc = tcase_create("headers");
    tcase_add_test(tc, util_headers_find);
    suite_add_tcase(s, tc);

    tc = tcase_create("url_decode");
    tcase_add_loop_test(tc, util_url_decode, 0, (int)N_OF(decode_cases));
    tcase_add_test(tc, util_url_decode_buffers);
    suite_add_tcase(s, tc);

    tc = tcase_create("query");
    tcase_add_test(tc, util_query_iter);
    tcase_add_test(tc, util_query_find);
    tcase_add_test(tc, util_query_get);
    tcase_add_test(tc, util_form_get);
    tcase_add_test(tc, util_query_get_args);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(util_query_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
