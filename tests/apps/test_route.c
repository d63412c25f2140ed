/*
 * Unit tests of csgi-route, in process through the CSGI test client: route
 * tables (static before wildcard, registration order, filters), 404/405,
 * automatic HEAD/OPTIONS, bodies, hooks and error handlers.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <csgi/route.h>
#include <csgi/testclient.h>

/* A string literal as a handler's user pointer (literals are const with -Wwrite-strings). */
#define TAG(s) ((void *)(s))

static const struct csgi_route_body *
name_of(struct csgi_route_req *req, void *user)
{
    struct csgi_str v = csgi_route_param(req, "v");
    int64_t n;
    char *text;

    if (csgi_route_param_int(req, "v", &n) == 0)
        text = csgi_route_sprintf(req, "%s:int:%lld", (const char *)user, (long long)n);
    else
        text = csgi_route_sprintf(req, "%s:%.*s", (const char *)user, v.ptr ? (int)v.len : 1,
                                  v.ptr ? v.ptr : "-");
    return text ? csgi_route_text(req, text, strlen(text)) : NULL;
}

static const struct csgi_route_body *
make_json(struct csgi_route_req *req, void *user)
{
    struct cJSON *in;
    int rc = csgi_route_json_body(req, &in);

    (void)user;
    if (rc == CSGI_ENOTSUP)
        return csgi_route_abort(req, 415, "json only");
    if (rc < 0)
        return csgi_route_abort(req, 400, NULL);
    return csgi_route_status(req, 201, csgi_route_json(req, cJSON_Duplicate(in, 1)));
}

static const struct csgi_route_body *
query(struct csgi_route_req *req, void *user)
{
    struct csgi_str q = {"", 0};
    int64_t n = 0;
    int rc_q = csgi_route_query(req, "q", &q), rc_n = csgi_route_query_int(req, "n", &n);
    char *text =
        csgi_route_sprintf(req, "q=%d:%.*s n=%d:%lld", rc_q, (int)q.len, q.ptr, rc_n, (long long)n);

    (void)user;
    return text ? csgi_route_text(req, text, strlen(text)) : NULL;
}

static const struct csgi_route_body *
teapot(struct csgi_route_req *req, void *user)
{
    (void)user;
    return csgi_route_abort(req, 418, "short and stout");
}

/* Aborts with the decoded query value q as the detail (request data: it may hold CR, LF, tab). */
static const struct csgi_route_body *
refuse(struct csgi_route_req *req, void *user)
{
    struct csgi_str q = {"", 0};
    char *detail;

    (void)user;
    csgi_route_query(req, "q", &q);
    detail = csgi_route_sprintf(req, "%.*s", (int)q.len, q.ptr);
    return csgi_route_abort(req, 403, detail);
}

static const struct csgi_route_body *
nothing(struct csgi_route_req *req, void *user)
{
    (void)req;
    (void)user;
    return NULL;
}

static const struct csgi_route_body *
any(struct csgi_route_req *req, void *user)
{
    (void)user;
    csgi_route_set_header(req, "X-Method",
                          csgi_route_sprintf(req, "%.*s", (int)csgi_route_method(req).len,
                                             csgi_route_method(req).ptr));
    return csgi_route_status(req, 204, csgi_route_empty(req));
}

/* Before: X-Stop answers early. After: X-After carries the final status. */
static const struct csgi_route_body *
before(struct csgi_route_req *req, void *user)
{
    struct csgi_str v;

    (void)user;
    if (csgi_route_header(req, "X-Stop", &v) == 0)
        return csgi_route_status(req, 403, csgi_route_text(req, "stopped", 7));
    return NULL;
}

static void
after(struct csgi_route_req *req, const struct csgi_route_body *body, void *user)
{
    (void)body;
    (void)user;
    csgi_route_set_header(req, "X-After",
                          csgi_route_sprintf(req, "%d", csgi_route_get_status(req)));
}

/* Errors as JSON for 404 only; every other status keeps the default page. */
static const struct csgi_route_body *
on_404(struct csgi_route_req *req, const struct csgi_route_error *err, void *user)
{
    cJSON *o = cJSON_CreateObject();

    (void)user;
    cJSON_AddNumberToObject(o, "error", err->status);
    return csgi_route_json(req, o);
}

static int
app_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n, void **state)
{
    struct csgi_route_app *app = csgi_route_app_new(api);

    (void)config;
    (void)n;
    csgi_route_add(app, "GET", "/", name_of, TAG("root"));
    csgi_route_add(app, "GET", "/items/<v:int>", name_of, TAG("int"));
    csgi_route_add(app, "GET", "/items/new", name_of, TAG("static"));
    csgi_route_add(app, "GET", "/items/<v>", name_of, TAG("str"));
    csgi_route_add(app, "POST", "/items/<v>", make_json, NULL);
    csgi_route_add(app, "DELETE", "/items/<v:int>", name_of, TAG("del"));
    csgi_route_add(app, "GET", "/files/<v:path>", name_of, TAG("path"));
    csgi_route_add(app, "GET", "/query", query, NULL);
    csgi_route_add(app, "GET", "/teapot", teapot, NULL);
    csgi_route_add(app, "GET", "/refuse", refuse, NULL);
    csgi_route_add(app, "GET", "/nothing", nothing, NULL);
    csgi_route_add(app, "ANY", "/any", any, NULL);
    csgi_route_add(app, "PURGE", "/cache", any, NULL);
    csgi_route_before(app, before, NULL);
    csgi_route_after(app, after, NULL);
    csgi_route_on_error(app, 404, on_404, NULL);
    return csgi_route_app_start(app, state);
}

static const struct csgi_plugin test_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "routetest",
    .init_worker = app_init,
    .call = csgi_route_call,
    .exit_worker = csgi_route_exit,
};

static struct csgi_test_client *client;

static void
setup(void)
{
    char err[256];

    client = csgi_test_client_new(&test_plugin, "/app", NULL, 0, err, sizeof(err));
    ck_assert_msg(client != NULL, "%s", err);
}

static void
teardown(void)
{
    csgi_test_client_free(client);
}

static struct csgi_test_response *
run(const char *method, const char *target, const char *ctype, const char *body, const char *hname)
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
        h[n].value = (struct csgi_str)CSGI_STR_INIT("1");
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
    struct csgi_test_response *r = run(method, target, NULL, NULL, NULL);

    ck_assert_msg(r->status == status, "%s %s: %d %s", method, target, r->status, r->body);
    if (body)
        ck_assert_msg(strcmp(r->body, body) == 0, "%s %s: \"%s\", want \"%s\"", method, target,
                      r->body, body);
    csgi_test_response_free(r);
}

START_TEST(route_matching)
{
    expect("GET", "/app/items/new", 200, "static:-");
    expect("GET", "/app/items/5", 200, "int:int:5");
    expect("GET", "/app/items/-5", 200, "int:int:-5");
    expect("GET", "/app/items/5x", 200, "str:5x");
    expect("GET", "/app/files/a/b", 200, "path:a/b");
    expect("GET", "/app", 200, "root:-");
    expect("GET", "/app/", 200, "root:-");
    expect("GET", "/app/items", 404, "{\"error\":404}");
    expect("GET", "/app/items/", 404, NULL);
    expect("GET", "/app/items/5/x", 404, NULL);
}
END_TEST

START_TEST(route_methods)
{
    struct csgi_test_response *r;

    /* POST matches the second wildcard rule even though the first also matches the path. */
    r = run("POST", "/app/items/5", "application/json", "[1]", NULL);
    ck_assert_int_eq(r->status, 201);
    ck_assert_str_eq(r->body, "[1]");
    ck_assert_str_eq(csgi_test_response_header(r, "Content-Type"), "application/json");
    csgi_test_response_free(r);
    r = run("PUT", "/app/items/5", NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 405);
    ck_assert_str_eq(csgi_test_response_header(r, "Allow"), "GET, HEAD, POST, DELETE, OPTIONS");
    ck_assert_str_eq(r->body, "Error 405: Method Not Allowed\n");
    csgi_test_response_free(r);
    r = run("OPTIONS", "/app/items/new", NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(csgi_test_response_header(r, "Allow"), "GET, HEAD, POST, OPTIONS");
    csgi_test_response_free(r);
    r = run("HEAD", "/app/items/7", NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(r->body_produced, strlen("int:int:7"));
    csgi_test_response_free(r);
    r = run("PATCH", "/app/any", NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 204);
    ck_assert_str_eq(csgi_test_response_header(r, "X-Method"), "PATCH");
    csgi_test_response_free(r);
    r = run("GET", "/app/cache", NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 405);
    ck_assert_str_eq(csgi_test_response_header(r, "Allow"), "OPTIONS, PURGE");
    csgi_test_response_free(r);
}
END_TEST

START_TEST(route_bodies_and_errors)
{
    struct csgi_test_response *r;

    r = run("POST", "/app/items/x", "text/plain", "x", NULL);
    ck_assert_int_eq(r->status, 415);
    ck_assert_str_eq(r->body, "Error 415: Unsupported Media Type: json only\n");
    ck_assert_str_eq(csgi_test_response_header(r, "Content-Type"), "text/plain; charset=utf-8");
    csgi_test_response_free(r);
    r = run("POST", "/app/items/x", "application/json", "{", NULL);
    ck_assert_int_eq(r->status, 400);
    csgi_test_response_free(r);
    expect("GET", "/app/teapot", 418, "Error 418: Client Error: short and stout\n");
    /* The default page keeps the abort() detail on one line: control bytes become '?',
     * and a detail longer than 200 bytes is cut there; an empty detail adds nothing. */
    expect("GET", "/app/refuse?q=a%0D%0ASet-Cookie:%20x%09%7F", 403,
           "Error 403: Forbidden: a??Set-Cookie: x??\n");
    expect("GET", "/app/refuse?q=", 403, "Error 403: Forbidden\n");
    {
        char target[400], want[300];

        memcpy(target, "/app/refuse?q=", 14);
        memset(target + 14, 'x', 250);
        target[264] = '\0';
        memcpy(want, "Error 403: Forbidden: ", 22);
        memset(want + 22, 'x', 200);
        memcpy(want + 222, "\n", 2);
        expect("GET", target, 403, want);
    }
    r = run("GET", "/app/nothing", NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 500);
    ck_assert_ptr_nonnull(csgi_test_response_find_log(r, "returned no body"));
    csgi_test_response_free(r);
    expect("GET", "/app/query?q=a+b%21&n=12", 200, "q=0:a b! n=0:12");
    expect("GET", "/app/query?n=x&q", 200, "q=0: n=-22:0");
    expect("GET", "/app/query", 200, "q=-2: n=-2:0");
}
END_TEST

START_TEST(route_hooks)
{
    struct csgi_test_response *r;

    r = run("GET", "/app/items/1", NULL, NULL, NULL);
    ck_assert_str_eq(csgi_test_response_header(r, "X-After"), "200");
    csgi_test_response_free(r);
    r = run("GET", "/app/items/1", NULL, NULL, "X-Stop");
    ck_assert_int_eq(r->status, 403);
    ck_assert_str_eq(r->body, "stopped");
    ck_assert_str_eq(csgi_test_response_header(r, "X-After"), "403");
    csgi_test_response_free(r);
    r = run("GET", "/app/nope", NULL, NULL, NULL);
    ck_assert_str_eq(csgi_test_response_header(r, "X-After"), "404");
    csgi_test_response_free(r);
}
END_TEST

START_TEST(route_bad_patterns)
{
    static const char *const bad[] = {"items",        "/a/",           "/a//b",   "/a/<>",
                                      "/a/<x:float>", "/a/<p:path>/b", "/a/x<y>", "/a/<1x>"};
    const struct csgi_host_api *api = csgi_test_client_host_api(client);

    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct csgi_route_app *app = csgi_route_app_new(api);
        void *state = NULL;
        ck_assert_msg(csgi_route_add(app, "GET", bad[i], name_of, NULL) == CSGI_EINVAL, "%s",
                      bad[i]);
        ck_assert_int_eq(csgi_route_app_start(app, &state), CSGI_EINVAL);
        ck_assert_ptr_null(state);
    }
    {
        struct csgi_route_app *app = csgi_route_app_new(api);
        void *state = NULL;
        ck_assert_int_eq(csgi_route_add(app, "GET", "/a/<x>", name_of, NULL), 0);
        ck_assert_int_eq(csgi_route_add(app, "GET", "/a/<x>", name_of, NULL), CSGI_EINVAL);
        ck_assert_int_eq(csgi_route_on_error(app, 200, on_404, NULL), CSGI_EINVAL);
        ck_assert_int_eq(csgi_route_app_start(app, &state), CSGI_EINVAL);
    }
    {
        /* 16 wildcards fit the request's parameter slots; a 17th is refused. */
        struct csgi_route_app *app = csgi_route_app_new(api);
        void *state = NULL;
        char pat[256];
        size_t n = 0;

        for (int i = 0; i < 16; i++)
            n += (size_t)snprintf(pat + n, sizeof(pat) - n, "/<a%d:int>", i);
        ck_assert_int_eq(csgi_route_add(app, "GET", pat, name_of, NULL), 0);
        snprintf(pat + n, sizeof(pat) - n, "/<a16>");
        ck_assert_int_eq(csgi_route_add(app, "GET", pat, name_of, NULL), CSGI_EINVAL);
        ck_assert_int_eq(csgi_route_app_start(app, &state), CSGI_EINVAL);
    }
    ck_assert_uint_eq(csgi_route_version(), CSGI_ROUTE_VERSION_HEX);
}
END_TEST

static Suite *
route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("route");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, route_matching);
    tcase_add_test(tc, route_methods);
    tcase_add_test(tc, route_bodies_and_errors);
    tcase_add_test(tc, route_hooks);
    tcase_add_test(tc, route_bad_patterns);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(route_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
