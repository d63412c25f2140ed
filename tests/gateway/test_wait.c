/*
 * Responses that wait (CSGI_PENDING and resume(), SPEC.md 4.14) through the
 * in-process test client: the waits fixture plugin loaded with dlopen() (its
 * path is argv[1]), and small applications for the host's refusals.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <csgi/testclient.h>

static const char *waits_path;
/* The gzip middleware plugin (built with the examples), or NULL. */
static const char *gzip_path;

static struct csgi_test_client *
open_waits(void)
{
    char err[256];
    struct csgi_test_client *c = csgi_test_client_open(waits_path, NULL, NULL, 0, err, sizeof(err));

    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

/* GET @p target and return its body (malloc'ed). */
static char *
get_body(struct csgi_test_client *c, const char *target)
{
    struct csgi_test_request rq = {.target = target};
    struct csgi_test_response *r;
    char *body;

    ck_assert_int_eq(csgi_test_client_request(c, &rq, &r), 0);
    ck_assert_int_eq(r->rc, CSGI_OK);
    body = strdup(r->body);
    csgi_test_response_free(r);
    return body;
}

static void
expect_body(struct csgi_test_client *c, const char *target, const char *want)
{
    char *body = get_body(c, target);

    ck_assert_str_eq(body, want);
    free(body);
}

static struct csgi_test_call *
start(struct csgi_test_client *c, const char *target, const char *method)
{
    struct csgi_test_request rq = {.target = target, .method = method};
    struct csgi_test_call *call;

    ck_assert_int_eq(csgi_test_client_start(c, &rq, &call), 0);
    ck_assert_ptr_nonnull(call);
    return call;
}

/* A stream waits between messages; other requests of the client run meanwhile. */
START_TEST(wait_stream_gets_each_message)
{
    struct csgi_test_client *c = open_waits();
    struct csgi_test_call *call = start(c, "/waits/stream?n=2", NULL);
    struct csgi_test_response *r;
    size_t len;

    ck_assert_int_eq(csgi_test_call_pending(call), 1);
    ck_assert_str_eq(csgi_test_call_body(call, &len), "ready\n");
    /* Not resumed: running it again does not call next() into a busy loop. */
    ck_assert_int_eq(csgi_test_call_run(call, 0), 1);
    expect_body(c, "/waits/stats", "waiting=1 closed=0 aborted=0 finished=0 refused=0\n");
    expect_body(c, "/waits/publish?msg=one", "woken=1\n");
    ck_assert_int_eq(csgi_test_call_run(call, 0), 1);
    ck_assert_str_eq(csgi_test_call_body(call, &len), "ready\none\n");
    expect_body(c, "/waits/publish?msg=two", "woken=1\n");
    ck_assert_int_eq(csgi_test_call_run(call, 0), 0);
    ck_assert_int_eq(csgi_test_call_pending(call), 0);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    ck_assert_int_eq(r->rc, CSGI_OK);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->framing, CSGI_TEST_FRAMING_CHUNKED);
    ck_assert_int_eq(r->finish_reason, CSGI_FINISH_OK);
    ck_assert_str_eq(r->body, "ready\none\ntwo\n");
    csgi_test_response_free(r);
    expect_body(c, "/waits/stats", "waiting=0 closed=1 aborted=0 finished=1 refused=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* A long poll: call() says pending, the status comes with the first message. */
START_TEST(wait_poll_delayed_start)
{
    struct csgi_test_client *c = open_waits();
    struct csgi_test_call *call = start(c, "/waits/poll", NULL);
    struct csgi_test_response *r;
    size_t len;

    ck_assert_int_eq(csgi_test_call_pending(call), 1);
    csgi_test_call_body(call, &len);
    ck_assert_uint_eq(len, 0);
    expect_body(c, "/waits/publish?msg=hello", "woken=1\n");
    ck_assert_int_eq(csgi_test_call_run(call, 0), 0);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    ck_assert_int_eq(r->rc, CSGI_OK);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(csgi_test_response_header(r, "Content-Type"), "text/plain");
    ck_assert_str_eq(r->body, "hello\n");
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

/* HTTP/1.0: a waiting stream of unknown length is close-delimited. */
START_TEST(wait_stream_http10_close)
{
    struct csgi_test_client *c = open_waits();
    struct csgi_test_request rq = {.target = "/waits/stream?n=1", .protocol = "HTTP/1.0"};
    struct csgi_test_call *call;
    struct csgi_test_response *r;

    ck_assert_int_eq(csgi_test_client_start(c, &rq, &call), 0);
    expect_body(c, "/waits/publish?msg=m", "woken=1\n");
    ck_assert_int_eq(csgi_test_call_run(call, 0), 0);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    ck_assert_int_eq(r->framing, CSGI_TEST_FRAMING_CLOSE);
    ck_assert_int_eq(r->aborted, 0);
    ck_assert_str_eq(r->body, "ready\nm\n");
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

/* HEAD of a stream that waits: the count stops at the wait; no wait for resume(). */
START_TEST(wait_head_is_cut_off)
{
    struct csgi_test_client *c = open_waits();
    struct csgi_test_call *call = start(c, "/waits/stream", "HEAD");
    struct csgi_test_response *r;

    ck_assert_int_eq(csgi_test_call_pending(call), 0);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->framing, CSGI_TEST_FRAMING_CHUNKED); /* what the GET's would say */
    ck_assert_uint_eq(r->body_len, 0);
    ck_assert_uint_eq(r->body_produced, 6);
    csgi_test_response_free(r);
    expect_body(c, "/waits/stats", "waiting=0 closed=1 aborted=0 finished=1 refused=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* The client leaves while the response waits: close() once, on_finished(CLIENT_ABORT) once. */
START_TEST(wait_client_leaves)
{
    struct csgi_test_client *c = open_waits();
    struct csgi_test_call *stream = start(c, "/waits/stream", NULL);
    struct csgi_test_call *poll = start(c, "/waits/poll", NULL);
    struct csgi_test_response *r;

    ck_assert_int_eq(csgi_test_call_end(stream, CSGI_FINISH_OK, &r), CSGI_EINVAL);
    ck_assert_int_eq(csgi_test_call_end(stream, CSGI_FINISH_CLIENT_ABORT, &r), 0);
    ck_assert_int_eq(r->rc, CSGI_ECONNRESET);
    ck_assert_int_eq(r->finish_reason, CSGI_FINISH_CLIENT_ABORT);
    ck_assert_int_eq(r->aborted, 1);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(r->body, "ready\n");
    csgi_test_response_free(r);
    ck_assert_int_eq(csgi_test_call_end(poll, CSGI_FINISH_CLIENT_ABORT, &r), 0);
    ck_assert_int_eq(r->status, 0); /* no status line was sent */
    ck_assert_int_eq(r->framing, CSGI_TEST_FRAMING_NONE);
    ck_assert_int_eq(r->finish_reason, CSGI_FINISH_CLIENT_ABORT);
    csgi_test_response_free(r);
    expect_body(c, "/waits/stats", "waiting=0 closed=2 aborted=2 finished=2 refused=0\n");
    /* Nobody waits any more: a publish wakes no one. */
    expect_body(c, "/waits/publish?msg=late", "woken=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* Host timers wake a stream in the test client too (a synchronous request). */
START_TEST(wait_timer_ticks)
{
    struct csgi_test_client *c = open_waits();
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_body(c, "/waits/tick?ms=25&n=3", "ready\ntick\ntick\ntick\n");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Three intervals of 25 ms, less a millisecond of rounding each (clocks read in ms). */
    ck_assert_int_ge((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 72);
    csgi_test_client_free(c);
}
END_TEST

/* A descriptor watch wakes a waiting stream when its pipe is written. */
START_TEST(wait_fd_watch)
{
    struct csgi_test_client *c = open_waits();
    struct csgi_test_call *call = start(c, "/waits/fdwait", NULL);
    struct csgi_test_response *r;

    ck_assert_int_eq(csgi_test_call_pending(call), 1);
    ck_assert_int_eq(csgi_test_call_run(call, 0), 1); /* nothing in the pipe yet */
    expect_body(c, "/waits/publish?msg=piped", "woken=1\n");
    ck_assert_int_eq(csgi_test_call_run(call, 1000), 0);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    ck_assert_str_eq(r->body, "ready\npiped\n");
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

/* A synchronous request waits for a resume() from the plugin's own thread. */
START_TEST(wait_resume_from_thread)
{
    struct csgi_test_client *c = open_waits();

    expect_body(c, "/waits/later?ms=30", "ready\nlate\n");
    expect_body(c, "/waits/stats", "waiting=0 closed=1 aborted=0 finished=1 refused=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* A resume() from another thread races the client leaving: each body is closed once. */
START_TEST(wait_resume_races_leaving)
{
    struct csgi_test_client *c = open_waits();
    char target[64], want[128];
    int rounds = 40, aborted = 0;

    for (int i = 0; i < rounds; i++) {
        struct csgi_test_call *call;
        struct csgi_test_response *r;
        int pending;

        snprintf(target, sizeof(target), "/waits/later?ms=%d", i % 3);
        call = start(c, target, NULL);
        if (i % 2) {
            struct timespec ts = {0, (i % 5) * 300000L};
            nanosleep(&ts, NULL);
        }
        /* A resume() during start may have let the response end already. */
        pending = csgi_test_call_pending(call);
        aborted += pending;
        ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_CLIENT_ABORT, &r), 0);
        ck_assert_int_eq(r->finish_reason, pending ? CSGI_FINISH_CLIENT_ABORT : CSGI_FINISH_OK);
        ck_assert_msg(strcmp(r->body, pending ? "ready\n" : "ready\nlate\n") == 0,
                      "pending %d, rc %d, body [%s]", pending, r->rc, r->body);
        csgi_test_response_free(r);
    }
    ck_assert_int_gt(aborted, 0);
    /*
     * A resume() that lands while the client's leaving is being taken (after
     * the abort, before the body's close) may be refused: at most one per
     * aborted call, never one for a call that ended normally.
     */
    {
        char *body = get_body(c, "/waits/stats");
        long refused = -1;
        const char *at = strstr(body, " refused=");

        snprintf(want, sizeof(want), "waiting=0 closed=%d aborted=%d finished=%d refused=", rounds,
                 aborted, rounds);
        ck_assert_msg(strncmp(body, want, strlen(want)) == 0, "stats [%s], want [%s...]", body,
                      want);
        ck_assert_ptr_nonnull(at);
        refused = strtol(at + 9, NULL, 10);
        ck_assert_msg(refused >= 0 && refused <= aborted, "refused %ld of %d aborted", refused,
                      aborted);
        free(body);
    }
    csgi_test_client_free(c);
}
END_TEST

/*
 * Through the gzip middleware plugin (the middleware kit, csgi/middleware.h):
 * CSGI_PENDING from call() and from next() passes through it, and a client
 * asking for gzip gets the waiting stream compressed chunk by chunk.
 */
START_TEST(wait_through_middleware)
{
    static const struct csgi_header gz[] = {
        {CSGI_STR_INIT("Accept-Encoding"), CSGI_STR_INIT("gzip")},
    };
    struct csgi_test_client *c = open_waits();
    struct csgi_test_request rq = {.target = "/waits/stream?n=1", .headers = gz, .n_headers = 1};
    struct csgi_test_call *poll, *stream;
    struct csgi_test_response *r;
    char err[256];

    ck_assert_msg(csgi_test_client_wrap_open(c, gzip_path, NULL, 0, err, sizeof(err)) == 0, "%s",
                  err);
    poll = start(c, "/waits/poll", NULL);
    ck_assert_int_eq(csgi_test_client_start(c, &rq, &stream), 0);
    ck_assert_int_eq(csgi_test_call_pending(poll), 1);
    ck_assert_int_eq(csgi_test_call_pending(stream), 1);
    expect_body(c, "/waits/publish?msg=through", "woken=2\n");
    ck_assert_int_eq(csgi_test_call_run(poll, 0), 0);
    ck_assert_int_eq(csgi_test_call_end(poll, CSGI_FINISH_OK, &r), 0);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(r->body, "through\n");
    csgi_test_response_free(r);
    ck_assert_int_eq(csgi_test_call_run(stream, 0), 0);
    ck_assert_int_eq(csgi_test_call_end(stream, CSGI_FINISH_OK, &r), 0);
    ck_assert_int_eq(r->rc, CSGI_OK);
    ck_assert_str_eq(csgi_test_response_header(r, "Content-Encoding"), "gzip");
    ck_assert_uint_ge(r->body_len, 18); /* a gzip member: header, data, trailer */
    ck_assert_int_eq((unsigned char)r->body[0], 0x1f);
    ck_assert_int_eq((unsigned char)r->body[1], 0x8b);
    csgi_test_response_free(r);
    expect_body(c, "/waits/stats", "waiting=0 closed=2 aborted=0 finished=2 refused=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* An application that keeps its request and resumes it after its body closed. */
struct late_app {
    const struct csgi_host_api *api;
    struct csgi_request *req;
    int rc_in_finished;
};

static int
late_next(void *ctx, struct csgi_chunk *out)
{
    (void)ctx;
    (void)out;
    return CSGI_DONE;
}

static void
late_finished(void *arg, int reason)
{
    struct late_app *a = arg;

    (void)reason;
    /* The body is closed: the request still exists, and resume() refuses it. */
    a->rc_in_finished = a->api->resume(a->req);
}

static int
late_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    struct late_app *a = state;
    struct csgi_str reason = {NULL, 0};

    a->req = env->request;
    ck_assert_int_eq(a->api->on_finished(env->request, late_finished, a), 0);
    ck_assert_int_eq(a->api->resume(env->request), 0); /* not waiting: harmless */
    out->next = late_next;
    return resp->start_response(resp->ctx, 204, reason, NULL, 0, NULL);
}

START_TEST(wait_resume_after_close_refused)
{
    struct late_app a = {0};
    char err[256];
    struct csgi_test_client *c = csgi_test_client_new_app(late_call, &a, "", err, sizeof(err));
    struct csgi_test_response *r;

    ck_assert_ptr_nonnull(c);
    a.api = csgi_test_client_host_api(c);
    ck_assert_int_ge(a.api->version, 3);
    ck_assert_int_eq(a.api->resume(NULL), CSGI_EINVAL);
    ck_assert_int_eq(csgi_test_client_request(c, NULL, &r), 0);
    ck_assert_int_eq(r->status, 204);
    ck_assert_int_eq(a.rc_in_finished, CSGI_ESTATE);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

/*
 * CSGI_PENDING from a plugin that does not declare CSGI_PLUGIN_WAITS: the
 * host fails the response (SPEC 4.14), closes the body once and says why;
 * a middleware that declares it makes the wrapped plugin one that may wait.
 */
struct undeclared {
    int pend_in_call; /* 1: call() pends after start_response(); 0: next() after a chunk */
    int nexts;
    int closes;
};

static int
undeclared_next(void *ctx, struct csgi_chunk *out)
{
    struct undeclared *u = ctx;

    if (u->nexts++ == 0 && !u->pend_in_call) {
        out->ptr = "good\n";
        out->len = 5;
        return CSGI_OK;
    }
    return CSGI_PENDING;
}

static struct undeclared undeclared_state;

static void
undeclared_close(void *ctx)
{
    struct undeclared *u = ctx;

    u->closes++;
}

static int
undeclared_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n,
                void **state)
{
    (void)api;
    (void)config;
    (void)n;
    memset(&undeclared_state, 0, sizeof(undeclared_state));
    *state = &undeclared_state;
    return CSGI_OK;
}

static int
undeclared_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
                struct csgi_body *out)
{
    struct undeclared *u = state;
    struct csgi_str reason = {NULL, 0};
    int rc = resp->start_response(resp->ctx, 200, reason, NULL, 0, NULL);

    u->pend_in_call = env->query_string.len > 0; /* "?call" */
    u->nexts = 0;
    out->ctx = u;
    out->next = undeclared_next;
    out->close = undeclared_close;
    return rc < 0 ? rc : u->pend_in_call ? CSGI_PENDING : CSGI_OK;
}

static const struct csgi_plugin undeclared_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "undeclared",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = undeclared_init,
    .call = undeclared_call,
};

static int
pass_wrap(void *state, csgi_app_fn inner, void *inner_state, const char *inner_name,
          csgi_app_fn *app, void **app_state)
{
    (void)state;
    (void)inner_name;
    *app = inner;
    *app_state = inner_state;
    return CSGI_OK;
}

/* A middleware that only declares CSGI_PLUGIN_WAITS for what it wraps. */
static const struct csgi_plugin waiting_mw = {
    CSGI_PLUGIN_HEADER,
    .name = "waiting_mw",
    .flags = CSGI_PLUGIN_THREADSAFE | CSGI_PLUGIN_WAITS,
    .wrap = pass_wrap,
};

START_TEST(wait_undeclared_plugin_fails)
{
    char err[256];
    struct csgi_test_client *c =
        csgi_test_client_new(&undeclared_plugin, "", NULL, 0, err, sizeof(err));
    struct csgi_test_request call_rq = {.target = "/x?call"}, next_rq = {.target = "/x"};
    struct csgi_test_response *r;
    struct csgi_test_call *call;

    ck_assert_msg(c != NULL, "%s", err);
    /* call() pends: nothing was sent yet, so a 500. */
    ck_assert_int_eq(csgi_test_client_request(c, &call_rq, &r), 0);
    ck_assert_int_eq(r->status, 500);
    ck_assert_int_eq(undeclared_state.closes, 1);
    ck_assert_ptr_nonnull(csgi_test_response_find_log(r, "does not declare CSGI_PLUGIN_WAITS"));
    csgi_test_response_free(r);
    /* next() pends after a chunk: the chunk went out, then the response is aborted. */
    ck_assert_int_eq(csgi_test_client_request(c, &next_rq, &r), 0);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_ne(r->rc, CSGI_OK);
    ck_assert_str_eq(r->body, "good\n");
    ck_assert_int_eq(undeclared_state.closes, 2);
    ck_assert_ptr_nonnull(csgi_test_response_find_log(r, "does not declare CSGI_PLUGIN_WAITS"));
    csgi_test_response_free(r);
    csgi_test_client_free(c);

    /* The same plugin behind a middleware that declares it: the response waits. */
    c = csgi_test_client_new(&undeclared_plugin, "", NULL, 0, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(csgi_test_client_wrap(c, &waiting_mw, NULL, 0, err, sizeof(err)), 0);
    ck_assert_int_eq(csgi_test_client_start(c, &call_rq, &call), 0);
    ck_assert_int_eq(csgi_test_call_pending(call), 1);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_CLIENT_ABORT, &r), 0);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

static Suite *
wait_suite(void)
{
    Suite *s = suite_create("wait");
    TCase *tc = tcase_create("pending");

    tcase_add_test(tc, wait_stream_gets_each_message);
    tcase_add_test(tc, wait_poll_delayed_start);
    tcase_add_test(tc, wait_stream_http10_close);
    tcase_add_test(tc, wait_head_is_cut_off);
    tcase_add_test(tc, wait_client_leaves);
    tcase_add_test(tc, wait_resume_from_thread);
    tcase_add_test(tc, wait_timer_ticks);
    tcase_add_test(tc, wait_fd_watch);
    tcase_add_test(tc, wait_resume_races_leaving);
    tcase_add_test(tc, wait_resume_after_close_refused);
    tcase_add_test(tc, wait_undeclared_plugin_fails);
    if (gzip_path)
        tcase_add_test(tc, wait_through_middleware);
    suite_add_tcase(s, tc);
    return s;
}

int
main(int argc, char **argv)
{
    SRunner *sr;
    int failed;

    if (argc < 2) {
        fprintf(stderr, "usage: test_wait WAITS_SO\n");
        return 1;
    }
    waits_path = argv[1];
    gzip_path = argc > 2 ? argv[2] : NULL;
    if (!gzip_path)
        printf("test_wait: no gzip.so given (built without the examples): "
               "wait_through_middleware left out\n");
    sr = srunner_create(wait_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
