/*
 * Connections taken over after a 101 (csgi_host_api.upgrade(), SPEC.md 4.15)
 * through the in-process test client: the upgrades fixture plugin loaded
 * with dlopen() (its path is argv[1]); the client's end of each upgraded
 * connection is a real socketpair, driven byte by byte.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <csgi/testclient.h>

static const char *upgrades_path;

static const struct csgi_header asks[] = {
    {CSGI_STR_INIT("Upgrade"), CSGI_STR_INIT("lines")},
    {CSGI_STR_INIT("Connection"), CSGI_STR_INIT("keep-alive, Upgrade")},
};

static struct csgi_test_client *
open_upgrades(void)
{
    char err[256];
    struct csgi_test_client *c =
        csgi_test_client_open(upgrades_path, NULL, NULL, 0, err, sizeof(err));

    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

static char *
get_body(struct csgi_test_client *c, const char *target)
{
    struct csgi_test_request rq = {.target = target};
    struct csgi_test_response *r;
    char *body;

    ck_assert_int_eq(csgi_test_client_request(c, &rq, &r), 0);
    body = strdup(r->body);
    csgi_test_response_free(r);
    return body;
}

static void
expect_stats(struct csgi_test_client *c, const char *want)
{
    char *body = get_body(c, "/upgrades/stats");

    ck_assert_str_eq(body, want);
    free(body);
}

/* Start an upgrade of @p target: the call, its 101 seen, and the client's end. */
static struct csgi_test_call *
upgrade(struct csgi_test_client *c, const char *target, int *fd)
{
    struct csgi_test_request rq = {.target = target, .headers = asks, .n_headers = 2};
    struct csgi_test_call *call;

    ck_assert_int_eq(csgi_test_client_start(c, &rq, &call), 0);
    ck_assert_int_eq(csgi_test_call_pending(call), 1);
    *fd = csgi_test_call_upgraded(call);
    ck_assert_int_ge(*fd, 0);
    return call;
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Drive @p call and read its client's end until @p want arrived (or EOF with
 * @p want NULL), for at most 5 s. Returns what was read (malloc'ed).
 */
static char *
read_until(struct csgi_test_call *call, int fd, const char *want, size_t *total)
{
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    long long end = now_ms() + 5000;

    ck_assert_ptr_nonnull(buf);
    buf[0] = '\0';
    while (now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        csgi_test_call_run(call, 5);
        if (poll(&p, 1, 5) <= 0)
            continue;
        n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
        if (n == 0 && !want)
            break;
        if (n <= 0)
            continue;
        len += (size_t)n;
        buf[len] = '\0';
        if (want && len >= strlen(want) && strstr(buf + len - strlen(want), want))
            break;
        if (len == cap) {
            len = 0; /* a flood: keep the tail only */
        }
    }
    if (total)
        *total = len;
    return buf;
}

static void
expect_read(struct csgi_test_call *call, int fd, const char *want)
{
    char *got = read_until(call, fd, want, NULL);

    ck_assert_str_eq(got, want);
    free(got);
}

static void
send_text(int fd, const char *s)
{
    ck_assert_int_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Run @p call until it is over, at most 5 s. */
static void
run_out(struct csgi_test_call *call)
{
    long long end = now_ms() + 5000;

    while (csgi_test_call_run(call, 10) == 1 && now_ms() < end)
        ;
    ck_assert_int_eq(csgi_test_call_pending(call), 0);
}

/* Echo: bytes written before the 101, each byte back, a close the app starts. */
START_TEST(upgrade_echo_and_close)
{
    struct csgi_test_client *c = open_upgrades();
    struct csgi_test_response *r;
    int fd;
    struct csgi_test_call *call = upgrade(c, "/upgrades/echo", &fd);

    expect_read(call, fd, "hello\n");
    expect_stats(c, "open=1 ok=0 abort=0 shutdown=0 error=0 writable=0\n");
    /* Byte by byte: a line split over several reads is still one line. */
    send_text(fd, "a");
    expect_read(call, fd, "a");
    send_text(fd, "bc\n");
    expect_read(call, fd, "bc\n");
    send_text(fd, "bye\n");
    /* The echo, the answer, then the end of the stream (the app closed). */
    expect_read(call, fd, "bye\nbye\n");
    free(read_until(call, fd, NULL, NULL));
    /* The client closes too: the connection ends as the application asked. */
    shutdown(fd, SHUT_WR);
    run_out(call);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    ck_assert_int_eq(r->status, 101);
    ck_assert_str_eq(csgi_test_response_header(r, "Upgrade"), "lines");
    ck_assert_uint_eq(r->body_len, 0);
    csgi_test_response_free(r);
    expect_stats(c, "open=0 ok=1 abort=0 shutdown=0 error=0 writable=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* The client leaves: on_close() says CLIENT_ABORT, once. */
START_TEST(upgrade_client_leaves)
{
    struct csgi_test_client *c = open_upgrades();
    struct csgi_test_response *r;
    int fd;
    struct csgi_test_call *call = upgrade(c, "/upgrades/echo", &fd);

    expect_read(call, fd, "hello\n");
    shutdown(fd, SHUT_RDWR);
    run_out(call);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    csgi_test_response_free(r);
    expect_stats(c, "open=0 ok=0 abort=1 shutdown=0 error=0 writable=0\n");
    /* Ended by the test while open: the reason given. */
    call = upgrade(c, "/upgrades/echo", &fd);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_SHUTDOWN, &r), 0);
    csgi_test_response_free(r);
    expect_stats(c, "open=0 ok=0 abort=1 shutdown=1 error=0 writable=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* The host stops: on_stop() says goodbye and closes; the client sees the end. */
START_TEST(upgrade_stop_notice)
{
    struct csgi_test_client *c = open_upgrades();
    struct csgi_test_response *r;
    int fd;
    struct csgi_test_call *call = upgrade(c, "/upgrades/echo", &fd);

    expect_read(call, fd, "hello\n");
    ck_assert_int_eq(csgi_test_call_stop(call), 0);
    expect_read(call, fd, "stopping\n");
    free(read_until(call, fd, NULL, NULL));
    /* A client that never closes: the linger ends it, as the application's close. */
    run_out(call);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    csgi_test_response_free(r);
    expect_stats(c, "open=0 ok=1 abort=0 shutdown=0 error=0 writable=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* A room: a callback of one connection writes to all of them. */
START_TEST(upgrade_room_broadcast)
{
    struct csgi_test_client *c = open_upgrades();
    struct csgi_test_response *r;
    int fa, fb;
    struct csgi_test_call *a = upgrade(c, "/upgrades/room", &fa);
    struct csgi_test_call *b = upgrade(c, "/upgrades/room", &fb);

    send_text(fa, "from a\n");
    expect_read(a, fa, "from a\n");
    expect_read(b, fb, "from a\n");
    send_text(fb, "from b\n");
    expect_read(b, fb, "from b\n");
    expect_read(a, fa, "from b\n");
    ck_assert_int_eq(csgi_test_call_end(a, CSGI_FINISH_CLIENT_ABORT, &r), 0);
    csgi_test_response_free(r);
    ck_assert_int_eq(csgi_test_call_end(b, CSGI_FINISH_CLIENT_ABORT, &r), 0);
    csgi_test_response_free(r);
    expect_stats(c, "open=0 ok=0 abort=2 shutdown=0 error=0 writable=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* Back-pressure: upgrade_write() says 1 above the soft bound; on_writable() once drained. */
START_TEST(upgrade_backpressure)
{
    struct csgi_test_client *c = open_upgrades();
    struct csgi_test_response *r;
    size_t total;
    int fd;
    struct csgi_test_call *call = upgrade(c, "/upgrades/flood", &fd);
    char *got;

    send_text(fd, "go\n");
    got = read_until(call, fd, "done\n", &total);
    ck_assert_msg(strstr(got, "done\n") != NULL, "no done after %zu bytes", total);
    free(got);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_CLIENT_ABORT, &r), 0);
    csgi_test_response_free(r);
    expect_stats(c, "open=0 ok=0 abort=1 shutdown=0 error=0 writable=3\n");
    csgi_test_client_free(c);
}
END_TEST

/* The host's refusals: no upgrade asked, a 101 without upgrade(), a body, no 101. */
START_TEST(upgrade_refusals)
{
    struct csgi_test_client *c = open_upgrades();
    struct csgi_test_request rq = {.target = "/upgrades/echo"};
    struct csgi_test_request rq10 = {
        .target = "/upgrades/echo", .headers = asks, .n_headers = 2, .protocol = "HTTP/1.0"};
    static const char *const fails[] = {"/upgrades/no101", "/upgrades/body101",
                                        "/upgrades/plain101"};
    struct csgi_test_response *r;

    ck_assert_int_eq(csgi_test_client_request(c, &rq, &r), 0);
    ck_assert_int_eq(r->status, 426);
    csgi_test_response_free(r);
    ck_assert_int_eq(csgi_test_client_request(c, &rq10, &r), 0);
    ck_assert_int_eq(r->status, 426);
    csgi_test_response_free(r);
    for (size_t i = 0; i < 3; i++) {
        struct csgi_test_request up = {.target = fails[i], .headers = asks, .n_headers = 2};

        ck_assert_int_eq(csgi_test_client_request(c, &up, &r), 0);
        ck_assert_msg(r->status == 500, "%s: %d", fails[i], r->status);
        csgi_test_response_free(r);
    }
    ck_assert_ptr_nonnull(
        csgi_test_client_find_log(c, "upgrade() without start_response() of status 101"));
    ck_assert_ptr_nonnull(csgi_test_client_find_log(c, "a 101 has no body"));
    ck_assert_ptr_nonnull(csgi_test_client_find_log(c, "status 101 without upgrade()"));
    /* The two that had called upgrade() heard it would not happen. */
    expect_stats(c, "open=0 ok=0 abort=0 shutdown=0 error=2 writable=0\n");
    csgi_test_client_free(c);
}
END_TEST

/* A plugin that does not declare CSGI_PLUGIN_UPGRADES: upgrade() is refused (CSGI_ENOTSUP). */
START_TEST(upgrade_needs_the_flag)
{
    static struct csgi_plugin copy;
    struct csgi_test_request rq = {.target = "/upgrades/echo", .headers = asks, .n_headers = 2};
    struct csgi_test_response *r;
    struct csgi_test_client *c;
    char err[256];
    void *dl = dlopen(upgrades_path, RTLD_NOW | RTLD_LOCAL);
    csgi_plugin_entry_fn entry;

    ck_assert_ptr_nonnull(dl);
    *(void **)&entry = dlsym(dl, CSGI_PLUGIN_ENTRY_SYMBOL);
    ck_assert(entry != NULL);
    copy = *entry(CSGI_ABI_VERSION);
    ck_assert_uint_ne(copy.flags & CSGI_PLUGIN_UPGRADES, 0);
    copy.flags &= ~(uint32_t)CSGI_PLUGIN_UPGRADES;
    c = csgi_test_client_new(&copy, NULL, NULL, 0, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(csgi_test_client_request(c, &rq, &r), 0);
    ck_assert_int_eq(r->status, 500);
    ck_assert_int_eq(r->rc, CSGI_ENOTSUP);
    csgi_test_response_free(r);
    expect_stats(c, "open=0 ok=0 abort=0 shutdown=0 error=0 writable=0\n");
    csgi_test_client_free(c);
    dlclose(dl);
}
END_TEST

/*
 * Drive @p call and read its client's end to the end of the stream, for at
 * most 10 s: how many bytes came, and whether the last 4 were "END\n".
 */
static size_t
drain_count(struct csgi_test_call *call, int fd, int *ends_with_end)
{
    char buf[65536], tail[4] = {0};
    size_t total = 0;
    long long end = now_ms() + 10000;

    while (now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        csgi_test_call_run(call, 5);
        if (poll(&p, 1, 5) <= 0)
            continue;
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n < 0)
            continue;
        total += (size_t)n;
        if (n >= 4) {
            memcpy(tail, buf + n - 4, 4);
        } else {
            memmove(tail, tail + n, 4 - (size_t)n);
            memcpy(tail + 4 - n, buf, (size_t)n);
        }
    }
    *ends_with_end = memcmp(tail, "END\n", 4) == 0;
    return total;
}

/*
 * The same core as csgi-server's (test_upgrade in tests/integration): a
 * write and a close from call() go out behind the 101, then the close; a
 * client that shuts its sending side at once still gets all of a queue of
 * 8 MiB, and the connection ends OK.
 */
START_TEST(upgrade_close_from_call_and_half_close)
{
    struct csgi_test_client *c = open_upgrades();
    struct csgi_test_response *r;
    int fd, end_seen = 0;
    struct csgi_test_call *call = upgrade(c, "/upgrades/closenow", &fd);

    expect_read(call, fd, "goodbye\n");
    free(read_until(call, fd, NULL, NULL)); /* the end of the stream */
    shutdown(fd, SHUT_WR);
    run_out(call);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    csgi_test_response_free(r);
    expect_stats(c, "open=0 ok=1 abort=0 shutdown=0 error=0 writable=0\n");

    call = upgrade(c, "/upgrades/echo", &fd);
    expect_read(call, fd, "hello\n");
    send_text(fd, "big\n");
    shutdown(fd, SHUT_WR);
    /* The echo of "big\n", 8 MiB, "END\n". */
    ck_assert_uint_eq(drain_count(call, fd, &end_seen), 4 + 128 * 65536 + 4);
    ck_assert(end_seen);
    run_out(call);
    ck_assert_int_eq(csgi_test_call_end(call, CSGI_FINISH_OK, &r), 0);
    csgi_test_response_free(r);
    expect_stats(c, "open=0 ok=2 abort=0 shutdown=0 error=0 writable=0\n");
    csgi_test_client_free(c);
}
END_TEST

static Suite *
upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = tcase_create("testclient");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, upgrade_echo_and_close);
    tcase_add_test(tc, upgrade_client_leaves);
    tcase_add_test(tc, upgrade_stop_notice);
    tcase_add_test(tc, upgrade_room_broadcast);
    tcase_add_test(tc, upgrade_backpressure);
    tcase_add_test(tc, upgrade_refusals);
    tcase_add_test(tc, upgrade_needs_the_flag);
    tcase_add_test(tc, upgrade_close_from_call_and_half_close);
    suite_add_tcase(s, tc);
    return s;
}

int
main(int argc, char **argv)
{
    SRunner *sr;
    int failed;

    if (argc < 2) {
        fprintf(stderr, "usage: %s upgrades.so\n", argv[0]);
        return 2;
    }
    upgrades_path = argv[1];
    sr = srunner_create(upgrade_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
