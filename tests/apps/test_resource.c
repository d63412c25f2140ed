/*
 * Unit tests of csgi-resource, in process through the CSGI test client:
 * the router (precedence, typed fields, 404/405/OPTIONS/HEAD), request
 * accessors, media, typed errors and middleware order.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <csgi/resource.h>
#include <csgi/testclient.h>

/* A string literal as a handler's user pointer (literals are const with -Wwrite-strings). */
#define TAG(s) ((void *)(s))

/* Echo "<resource name>:<field or query>" as text/plain. */
static int
echo(struct csgi_res_req *req, struct csgi_res_resp *resp, const char *text)
{
    char *copy = csgi_res_req_sprintf(req, "%s", text);

    if (!copy)
        return CSGI_ENOMEM;
    csgi_res_resp_set_content_type(resp, "text/plain");
    csgi_res_resp_set_body(resp, copy, strlen(copy));
    return 0;
}

static int
field_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct csgi_str v = {"-", 1};
    int64_t n;
    char buf[128];

    csgi_res_req_param(req, "v", &v);
    if (csgi_res_req_param_int(req, "v", &n) == 0)
        snprintf(buf, sizeof(buf), "%s:int:%lld", (const char *)self, (long long)n);
    else
        snprintf(buf, sizeof(buf), "%s:%.*s", (const char *)self, (int)v.len, v.ptr);
    return echo(req, resp, buf);
}

static int
items_on_post(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct cJSON *media;
    int rc = csgi_res_req_media(req, &media);

    (void)self;
    if (rc < 0)
        return rc;
    csgi_res_resp_set_status(resp, 201);
    return csgi_res_resp_set_media(resp, cJSON_Duplicate(media, 1));
}

static const struct csgi_res_resource field_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "field",
    .on_get = field_on_get,
};

static const struct csgi_res_resource items_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "items",
    .on_get = field_on_get,
    .on_post = items_on_post,
};

static int
query_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct csgi_str q = {"", 0};
    int64_t n = 0;
    int rc_q, rc_n;
    char buf[256];

    (void)self;
    rc_q = csgi_res_req_query(req, "q", &q);
    rc_n = csgi_res_req_query_int(req, "n", &n);
    snprintf(buf, sizeof(buf), "q=%d:%.*s n=%d:%lld", rc_q, (int)q.len, q.ptr, rc_n, (long long)n);
    return echo(req, resp, buf);
}

static const struct csgi_res_resource query_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .on_get = query_on_get,
};

static int
raise_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    static const struct csgi_res_field_error f[] = {{"a", "bad"}, {"b", "worse"}};

    (void)self;
    csgi_res_resp_set_header(resp, "X-Kept", "1");
    if (strcmp(csgi_res_req_path(req).ptr, "/raise/fields") == 0)
        return csgi_res_raise_fields(req, 422, NULL, f, 2);
    if (strcmp(csgi_res_req_path(req).ptr, "/raise/fail") == 0)
        return CSGI_EIO;
    return csgi_res_raise(req, 409, "already \"there\"");
}

static const struct csgi_res_resource raise_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "raiser",
    .on_get = raise_on_get,
};

/* Resource state made by init(): a counter of inits, checked by the test. */
static int resource_inits;

static int
counted_init(void *arg, void **self)
{
    resource_inits++;
    *self = arg;
    return 0;
}

static const struct csgi_res_resource root_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .init = counted_init,
    .on_get = field_on_get,
};

/* Middleware: records the hook order in X-Order; X-Stop answers early. */
static int
mw_request(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct csgi_str v;

    csgi_res_req_set_context(req, csgi_res_req_sprintf(req, "%s:req", (const char *)self));
    if (csgi_res_req_header(req, "X-Stop", &v) == 0) {
        csgi_res_resp_set_status(resp, 418);
        csgi_res_resp_set_body(resp, "stopped", 7);
        csgi_res_resp_complete(resp);
    }
    return 0;
}

static int
mw_resource(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp, void *resource)
{
    (void)resp;
    (void)resource;
    csgi_res_req_set_context(req, csgi_res_req_sprintf(req, "%s,%s:res",
                                                       (const char *)csgi_res_req_context(req),
                                                       (const char *)self));
    return 0;
}

static void
mw_response(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp, void *resource,
            int succeeded)
{
    (void)resource;
    csgi_res_resp_set_header(resp, "X-Order",
                             csgi_res_req_sprintf(req, "%s,%s:resp%d",
                                                  (const char *)csgi_res_req_context(req),
                                                  (const char *)self, succeeded));
}

static const struct csgi_res_middleware order_mw = {
    .version = CSGI_RES_MIDDLEWARE_VERSION,
    .name = "order",
    .process_request = mw_request,
    .process_resource = mw_resource,
    .process_response = mw_response,
};

static int
app_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n, void **state)
{
    struct csgi_res_app *app = csgi_res_app_new(api);

    (void)config;
    (void)n;
    csgi_res_app_add_route(app, "/", &root_resource, TAG("root"));
    csgi_res_app_add_route(app, "/items", &items_resource, TAG("items"));
    csgi_res_app_add_route(app, "/items/new", &field_resource, TAG("literal"));
    csgi_res_app_add_route(app, "/items/{v}", &field_resource, TAG("str"));
    csgi_res_app_add_route(app, "/items/{v:int}", &field_resource, TAG("int"));
    csgi_res_app_add_route(app, "/items/{v:int}/parts", &field_resource, TAG("parts"));
    csgi_res_app_add_route(app, "/files/{v:path}", &field_resource, TAG("path"));
    csgi_res_app_add_route(app, "/query", &query_resource, NULL);
    csgi_res_app_add_route(app, "/raise/{v}", &raise_resource, NULL);
    csgi_res_app_add_middleware(app, &order_mw, TAG("m1"));
    return csgi_res_app_start(app, state);
}

static const struct csgi_plugin test_plugin = {
    CSGI_PLUGIN_HEADER,           .name = "restest", .init_worker = app_init, .call = csgi_res_call,
    .exit_worker = csgi_res_exit,
};

static struct csgi_test_client *client;

static void
setup(void)
{
    char err[256];

    resource_inits = 0;
    client = csgi_test_client_new(&test_plugin, "/app", NULL, 0, err, sizeof(err));
    ck_assert_msg(client != NULL, "%s", err);
}

static void
teardown(void)
{
    csgi_test_client_free(client);
}

static struct csgi_test_response *
run(const char *method, const char *target, const char *ctype, const char *body, const char *hname,
    const char *hvalue)
{
    struct csgi_header h[2];
    size_t n = 0;
    struct csgi_test_request rq = {.method = method, .target = target, .headers = h};
    struct csgi_test_response *resp = NULL;

    if (ctype) {
        h[n].name = (struct csgi_str)CSGI_STR_INIT("Content-Type");
        h[n].value = (struct csgi_str){ctype, strlen(ctype)};
        n++;
    }
    if (hname) {
        h[n].name = (struct csgi_str){hname, strlen(hname)};
        h[n].value = (struct csgi_str){hvalue, strlen(hvalue)};
        n++;
    }
    rq.n_headers = n;
    rq.body = body;
    rq.body_len = body ? strlen(body) : 0;
    ck_assert_int_eq(csgi_test_client_request(client, &rq, &resp), 0);
    ck_assert_int_eq(resp->rc, CSGI_OK);
    return resp;
}

static void
expect(const char *method, const char *target, int status, const char *body)
{
    struct csgi_test_response *r = run(method, target, NULL, NULL, NULL, NULL);

    ck_assert_msg(r->status == status, "%s %s: %d %s", method, target, r->status, r->body);
    if (body)
        ck_assert_msg(strcmp(r->body, body) == 0, "%s %s: \"%s\", want \"%s\"", method, target,
                      r->body, body);
    csgi_test_response_free(r);
}

START_TEST(resource_router_precedence)
{
    expect("GET", "/app/items/new", 200, "literal:-");
    expect("GET", "/app/items/42", 200, "int:int:42");
    expect("GET", "/app/items/-7", 200, "int:int:-7");
    expect("GET", "/app/items/abc", 200, "str:abc");
    expect("GET", "/app/items/12a", 200, "str:12a");
    expect("GET", "/app/items/99999999999999999999", 200, "str:99999999999999999999");
    expect("GET", "/app/items/3/parts", 200, "parts:int:3");
    expect("GET", "/app/items/x/parts", 404, NULL);
    expect("GET", "/app/files/a/b/c.txt", 200, "path:a/b/c.txt");
    expect("GET", "/app/files", 404, NULL);
    expect("GET", "/app/files/", 404, NULL);
    expect("GET", "/app", 200, "root:-");
    expect("GET", "/app/", 200, "root:-");
    expect("GET", "/app/items/", 404, "{\"status\":404,\"title\":\"Not Found\"}");
    expect("GET", "/app//items", 404, NULL);
    ck_assert_int_eq(resource_inits, 1);
}
END_TEST

START_TEST(resource_methods)
{
    struct csgi_test_response *r;

    r = run("DELETE", "/app/items", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 405);
    ck_assert_str_eq(csgi_test_response_header(r, "Allow"), "GET, HEAD, POST, OPTIONS");
    ck_assert_str_eq(csgi_test_response_header(r, "Content-Type"), "application/problem+json");
    ck_assert_str_eq(r->body, "{\"status\":405,\"title\":\"Method Not Allowed\"}");
    csgi_test_response_free(r);
    r = run("OPTIONS", "/app/items/1", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(csgi_test_response_header(r, "Allow"), "GET, HEAD, OPTIONS");
    ck_assert_uint_eq(r->body_len, 0);
    csgi_test_response_free(r);
    r = run("HEAD", "/app/items/1", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(r->body_produced, strlen("int:int:1"));
    csgi_test_response_free(r);
    /* A method no resource knows is still a 405 on a known path, a 404 elsewhere. */
    expect("BREW", "/app/items", 405, NULL);
    expect("BREW", "/app/nothing", 404, NULL);
}
END_TEST

START_TEST(resource_query)
{
    expect("GET", "/app/query?q=a+b%21&n=12", 200, "q=0:a b! n=0:12");
    expect("GET", "/app/query?x=1&%71=first&q=second&n=1x", 200, "q=0:first n=-22:0");
    expect("GET", "/app/query?n=-9223372036854775808", 200, "q=-2: n=0:-9223372036854775808");
    expect("GET", "/app/query?n=9223372036854775808&q", 200, "q=0: n=-22:0");
    expect("GET", "/app/query?q=%zz%4", 200, "q=0:%zz%4 n=-2:0");
}
END_TEST

START_TEST(resource_media)
{
    struct csgi_test_response *r;

    r = run("POST", "/app/items", "application/json", "{\"a\":[1,2]}", NULL, NULL);
    ck_assert_int_eq(r->status, 201);
    ck_assert_str_eq(csgi_test_response_header(r, "Content-Type"), "application/json");
    ck_assert_str_eq(r->body, "{\"a\":[1,2]}");
    csgi_test_response_free(r);
    r = run("POST", "/app/items", "text/plain", "{}", NULL, NULL);
    ck_assert_int_eq(r->status, 415);
    csgi_test_response_free(r);
    r = run("POST", "/app/items", "application/json", "{\"a\":}", NULL, NULL);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(
        r->body, "{\"status\":400,\"title\":\"Bad Request\",\"detail\":\"malformed JSON body\"}");
    csgi_test_response_free(r);
}
END_TEST

START_TEST(resource_errors)
{
    struct csgi_test_response *r;

    r = run("GET", "/app/raise/x", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(
        r->body, "{\"status\":409,\"title\":\"Conflict\",\"detail\":\"already \\\"there\\\"\"}");
    ck_assert_str_eq(csgi_test_response_header(r, "X-Kept"), "1");
    csgi_test_response_free(r);
    r = run("GET", "/app/raise/fields", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 422);
    ck_assert_str_eq(r->body, "{\"status\":422,\"title\":\"Unprocessable Content\",\"errors\":["
                              "{\"field\":\"a\",\"message\":\"bad\"},"
                              "{\"field\":\"b\",\"message\":\"worse\"}]}");
    csgi_test_response_free(r);
    r = run("GET", "/app/raise/fail", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 500);
    ck_assert_str_eq(r->body, "{\"status\":500,\"title\":\"Internal Server Error\"}");
    ck_assert_ptr_nonnull(csgi_test_response_find_log(r, "resource \"raiser\" failed"));
    csgi_test_response_free(r);
}
END_TEST

START_TEST(resource_middleware)
{
    struct csgi_test_response *r;

    r = run("GET", "/app/items/1", NULL, NULL, NULL, NULL);
    ck_assert_str_eq(csgi_test_response_header(r, "X-Order"), "m1:req,m1:res,m1:resp1");
    csgi_test_response_free(r);
    /* No resource: process_resource is skipped, process_response sees the failure. */
    r = run("GET", "/app/none", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 404);
    ck_assert_str_eq(csgi_test_response_header(r, "X-Order"), "m1:req,m1:resp0");
    csgi_test_response_free(r);
    r = run("GET", "/app/items/1", NULL, NULL, "X-Stop", "1");
    ck_assert_int_eq(r->status, 418);
    ck_assert_str_eq(r->body, "stopped");
    ck_assert_str_eq(csgi_test_response_header(r, "X-Order"), "m1:req,m1:resp1");
    csgi_test_response_free(r);
}
END_TEST

/* Configuration errors are logged, returned by start(), and the app is freed. */
START_TEST(resource_bad_templates)
{
    static const char *const bad[] = {"items",        "/a/",           "/a//b",   "/a/{}",
                                      "/a/{x:float}", "/a/{p:path}/b", "/a/x{y}", "/a/{1x}"};
    const struct csgi_host_api *api = csgi_test_client_host_api(client);

    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct csgi_res_app *app = csgi_res_app_new(api);
        void *state = NULL;
        ck_assert_msg(csgi_res_app_add_route(app, bad[i], &field_resource, NULL) == CSGI_EINVAL,
                      "%s", bad[i]);
        ck_assert_int_eq(csgi_res_app_start(app, &state), CSGI_EINVAL);
        ck_assert_ptr_null(state);
    }
    {
        struct csgi_res_app *app = csgi_res_app_new(api);
        void *state = NULL;
        ck_assert_int_eq(csgi_res_app_add_route(app, "/a/{x}", &field_resource, NULL), 0);
        ck_assert_int_eq(csgi_res_app_add_route(app, "/a/{y}/b", &field_resource, NULL),
                         CSGI_EINVAL);
        ck_assert_int_eq(csgi_res_app_add_route(app, "/a/{x}", &field_resource, NULL), CSGI_EINVAL);
        ck_assert_int_eq(csgi_res_app_start(app, &state), CSGI_EINVAL);
    }
    ck_assert_uint_eq(csgi_res_version(), CSGI_RES_VERSION_HEX);
}
END_TEST

static Suite *
resource_suite(void)
{
    Suite *s = suite_create("resource");
    TCase *tc = tcase_create("resource");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, resource_router_precedence);
    tcase_add_test(tc, resource_methods);
    tcase_add_test(tc, resource_query);
    tcase_add_test(tc, resource_media);
    tcase_add_test(tc, resource_errors);
    tcase_add_test(tc, resource_middleware);
    tcase_add_test(tc, resource_bad_templates);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(resource_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
